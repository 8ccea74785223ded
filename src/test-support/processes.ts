import { type ChildProcess, type StdioOptions, spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait.js";

/** The `paxos` command (bin/paxos.js), to run with `process.execPath`. */
export const PAXOS_BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));

/**
 * Most ms to wait, after a process exited, for its pipes to close (its last output read). They close
 * at once unless a process it started holds them. (With 1 s, one run on a 2-core machine under a
 * load of 20 missed a node's last log line; whether this wait was the cause is not known.)
 */
const PIPES_CLOSE_MS = 5000;

/** How a process ended: an exit code, or the signal that ended it. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** A name for messages (default: the command and its first argument). */
  readonly name?: string;
  /** Give the process a stdin pipe (default: no stdin). */
  readonly stdin?: boolean;
  /**
   * What happens to stdout and stderr (default "collect"): "collect" pipes each and keeps its text
   * in `stdout` / `stderr`; "pipe" pipes and leaves reading to the caller (`child.stdout`), for
   * output too large to keep; "inherit" and "ignore" as in `spawn`.
   */
  readonly stdout?: "collect" | "pipe" | "inherit" | "ignore";
  readonly stderr?: "collect" | "pipe" | "inherit" | "ignore";
  /** Added to (and overriding) `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Working directory (default: this process's). */
  readonly cwd?: string;
}

/**
 * One child process this code started: its output so far (when collected) and how it ended. It is
 * only ever signalled by its own pid.
 */
export class StartedProcess {
  /** Everything it wrote on stdout / stderr so far, when collected. */
  stdout = "";
  stderr = "";
  /** How it ended; null while it runs. */
  exit: Exit | null = null;
  /** Resolves when it has exited ("exit": its pipes may still hold its last output, see `closed`). */
  readonly exited: Promise<Exit>;
  /** Resolves when it has exited and its pipes have closed (its last output is in). */
  readonly closed: Promise<Exit>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      // A spawn that fails (no such command) never sees "exit".
      child.once("error", () => {
        this.exit ??= { code: null, signal: null };
        resolve(this.exit);
      });
      child.once("exit", (code, signal) => {
        this.exit ??= { code, signal };
        resolve(this.exit);
      });
    });
    this.closed = new Promise((resolve) => {
      child.once("error", () => resolve(this.exit ?? { code: null, signal: null }));
      child.once("close", (code, signal) => resolve(this.exit ?? { code, signal }));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True once it has exited. */
  done(): boolean {
    return this.exit !== null;
  }

  /** Sends `signal` to this process (by its pid) if it still runs. */
  kill(signal: NodeJS.Signals): void {
    if (!this.done()) this.child.kill(signal);
  }

  /**
   * Stops it: SIGTERM, then SIGKILL after `graceMs` if it has not exited. Resolves with how it
   * ended once it has, and its pipes have closed (see `settled`).
   */
  async stop(graceMs = 3000): Promise<Exit> {
    this.kill("SIGTERM");
    const killer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(killer);
    }
    return this.settled();
  }

  /** Waits for it to exit on its own, SIGKILLing it after `timeoutMs`; then for its pipes to close. */
  async finish(timeoutMs: number): Promise<Exit> {
    const killer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(killer);
    }
    return this.settled();
  }

  /**
   * How it ended, once its pipes have closed ("exit" can come before the last "data"): at most
   * `PIPES_CLOSE_MS` more, since a process it started may hold them open.
   */
  private async settled(): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closed,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, PIPES_CLOSE_MS);
      }),
    ]);
    clearTimeout(timer);
    return this.exit as Exit;
  }
}

/**
 * Starts `command args` as a child process (the one process-start helper of the tests, harnesses
 * and benchmarks).
 *
 * @example
 * const proc = startProcess("sh", ["compat/usi/learner.sh", "1", "paxos.conf"]);
 * await waitFor(() => proc.stdout.includes("hello\n"), "the learner to print hello");
 * await proc.stop();
 */
export function startProcess(
  command: string,
  args: readonly string[],
  options: StartOptions = {},
): StartedProcess {
  const stream = (how: StartOptions["stdout"]) => (how === undefined || how === "collect" ? "pipe" : how);
  const stdio: StdioOptions = [
    options.stdin ? "pipe" : "ignore",
    stream(options.stdout),
    stream(options.stderr),
  ];
  const child = spawn(command, [...args], {
    stdio,
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    env: options.env === undefined ? process.env : { ...process.env, ...options.env },
  });
  const started = new StartedProcess(options.name ?? `${command} ${args[0] ?? ""}`.trim(), child);
  if ((options.stdout ?? "collect") === "collect") {
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      started.stdout += chunk;
    });
  }
  if ((options.stderr ?? "collect") === "collect") {
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      started.stderr += chunk;
    });
  }
  return started;
}

export interface PaxosStartOptions extends StartOptions {
  /** Node.js flags before the script (e.g. `--max-old-space-size=256`). */
  readonly execArgs?: readonly string[];
  /** `PAXOS_LOG_LEVEL` (default "info": the tests read the JSON log lines). */
  readonly logLevel?: string;
}

/**
 * Starts `paxos args` (bin/paxos.js under this Node.js) with logs at `logLevel`.
 *
 * @example
 * const node = startPaxos(["node", "--config", path, "--id", "1"], { name: "node 1" });
 */
export function startPaxos(args: readonly string[], options: PaxosStartOptions = {}): StartedProcess {
  return startProcess(process.execPath, [...(options.execArgs ?? []), PAXOS_BIN, ...args], {
    ...options,
    name: options.name ?? `paxos ${args[0] ?? ""}`.trim(),
    env: { PAXOS_LOG_LEVEL: options.logLevel ?? "info", ...options.env },
  });
}

/**
 * Runs `paxos args` to completion, synchronously (for commands that exit at once: usage errors,
 * `--help`), SIGKILLed after `timeoutMs`; `status` is null if it did not exit on its own.
 *
 * @example
 * const { status, stderr } = runPaxosSync(["node"]); // 2, "paxos node: missing --config ..."
 */
export function runPaxosSync(
  args: readonly string[],
  options: { timeoutMs?: number } = {},
): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [PAXOS_BIN, ...args], {
    encoding: "utf8",
    timeout: options.timeoutMs ?? 60_000,
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/**
 * The processes of one test: everything started through it is stopped by `stopAll` (SIGTERM, then
 * SIGKILL by pid after 3 s), which a test calls in `finally`.
 */
export class ProcessGroup {
  readonly all: StartedProcess[] = [];
  /** Processes started by ours (e.g. `paxos cluster`'s nodes), to make sure they are gone too. */
  readonly grandchildren = new Set<number>();

  /** Starts `paxos args` (see `startPaxos`) and keeps it for `stopAll`. */
  start(name: string, args: readonly string[], options: PaxosStartOptions = {}): StartedProcess {
    const proc = startPaxos(args, { ...options, name });
    this.all.push(proc);
    return proc;
  }

  /** Runs `paxos args` to completion (for commands that exit on their own), with a deadline. */
  async run(name: string, args: readonly string[], timeoutMs = 10_000) {
    const proc = this.start(name, args);
    const exit = await proc.finish(timeoutMs);
    return { ...exit, stdout: proc.stdout, stderr: proc.stderr };
  }

  /** Stops one process (SIGTERM; SIGKILL after 3 s). */
  stop(proc: StartedProcess): Promise<Exit> {
    return proc.stop();
  }

  /**
   * Stops every process, then kills by pid whatever `grandchildren` left behind (after 3 s), and
   * throws if anything is still alive.
   */
  async stopAll(): Promise<void> {
    await Promise.all(this.all.map((proc) => proc.stop()));
    const leftovers = [...this.grandchildren].filter(isAlive);
    if (leftovers.length > 0) {
      await waitFor(() => leftovers.every((pid) => !isAlive(pid)), "grandchildren to exit", {
        timeoutMs: 3000,
      }).catch(() => {
        for (const pid of leftovers) if (isAlive(pid)) process.kill(pid, "SIGKILL");
      });
    }
    const running = this.all.filter((proc) => !proc.done() || isAlive(proc.pid as number));
    if (running.length > 0)
      throw new Error(`still running: ${running.map((p) => `${p.name} (pid ${p.pid})`).join(", ")}`);
    const stray = leftovers.filter(isAlive);
    if (stray.length > 0) throw new Error(`processes started by our children still run: ${stray.join(", ")}`);
  }
}

/** Whether `pid` runs (a zombie, exited and not yet reaped, counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !readFileSync(`/proc/${pid}/stat`, "utf8")
      .replace(/^.*\) /, "")
      .startsWith("Z");
  } catch {
    // No /proc (not Linux): the signal reached it, so it exists.
    return true;
  }
}

/** The pids whose parent is `pid` (Linux /proc). */
export function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.replace(/^.*\) /, "").split(" ")[1]);
      if (parent === pid) found.push(Number(entry));
    } catch {
      // It exited while we looked.
    }
  }
  return found;
}
