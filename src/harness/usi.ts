import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parsePrintedLine } from "../core/index.js";
import { LOG_MESSAGES } from "../observe/index.js";
import { startProcess } from "../test-support/index.js";
import { readLines } from "./lines.js";

/**
 * A runner that reproduces the course harness's black-box runs against the four scripts of
 * `compat/usi/` (or any project's: `scriptsDir`). Processes start group by group about 1 s apart;
 * clients start about 3 s after the proposers; everything is stopped (SIGTERM, SIGKILL a second
 * later) 5 s after the last client starts. Then the learners' outputs are checked.
 */
export interface UsiRunOptions {
  readonly scriptsDir: string;
  /** Values each client sends. */
  readonly valuesPerClient: number;
  /** Which acceptors run (default 1, 2, 3). */
  readonly acceptors?: readonly number[];
  /** Learner 2 starts 1 s after client 1 (and 1 s before client 2). */
  readonly lateLearner?: boolean;
  /** Share of datagrams dropped at random (passed as PAXOS_DROP_RATE). */
  readonly dropRate?: number;
  /** SIGKILL one process mid-run (and restart it if `restart`). */
  readonly kill?: {
    readonly role: "proposer" | "acceptor";
    /** An id, or (for proposers, ids 1 and 2) whichever leads or follows at that moment. */
    readonly id: number | "leader" | "follower";
    readonly restart?: boolean;
  };
  /** Spread each client's values over this many seconds of its stdin (default 0: all at once). */
  readonly feedSeconds?: number;
  /** Seconds between group starts (default 1). */
  readonly stepSeconds?: number;
  /** Seconds from the last client start to the stop (default 5). */
  readonly runSeconds?: number;
  /** Multicast group address (default 239.0.0.1) and base port (default: random in 20000..59999). */
  readonly group?: string;
  readonly basePort?: number;
  /** Keep the work directory (logs) after the run. */
  readonly keep?: boolean;
}

export interface UsiRunResult {
  readonly sent: readonly string[];
  readonly learned: readonly (readonly string[])[];
  /** Problems found; empty when the run passed. */
  readonly problems: string[];
  /** Per process: exit code or signal, and CPU seconds used. */
  readonly processes: readonly { name: string; exit: string; cpuSeconds: number }[];
  /** Milliseconds from the first client's start until both learners had printed every value (null if never). */
  readonly learnedAllMs: number | null;
  readonly workDir: string;
  /** The process killed on purpose, if any (e.g. "proposer 2"). */
  readonly killed: string | null;
}

interface Running {
  readonly name: string;
  readonly child: ChildProcess;
  readonly stdout: string[];
  exit: string | null;
  cpuSeconds: number;
  readonly exited: Promise<void>;
}

/** Runs one harness scenario and checks the learners' outputs. */
export async function runUsi(options: UsiRunOptions): Promise<UsiRunResult> {
  const step = (options.stepSeconds ?? 1) * 1000;
  const runMs = (options.runSeconds ?? 5) * 1000;
  const workDir = mkdtempSync(join(tmpdir(), "paxos-usi-"));
  const basePort = options.basePort ?? 20000 + Math.floor(Math.random() * 40000);
  const group = options.group ?? "239.0.0.1";
  const config = join(workDir, "paxos.conf");
  writeFileSync(
    config,
    `clients ${group} ${basePort}\nproposers ${group} ${basePort + 1}\nacceptors ${group} ${basePort + 2}\nlearners ${group} ${basePort + 3}\n`,
  );
  const env = {
    ...process.env,
    PAXOS_LOG_LEVEL: process.env.PAXOS_LOG_LEVEL ?? "warn",
    ...(options.dropRate !== undefined ? { PAXOS_DROP_RATE: String(options.dropRate) } : {}),
  };
  const running: Running[] = [];
  /** The proposer that last said it leads (from its log), if any. */
  let leader: number | null = null;
  const start = (role: string, id: number, input?: string): Running => {
    const { child } = startProcess("sh", [join(options.scriptsDir, `${role}.sh`), String(id), config], {
      cwd: options.scriptsDir,
      // Proposers log their mode changes at info level: the runner finds the leader from them.
      env: role === "proposer" ? { ...env, PAXOS_LOG_LEVEL: "info" } : env,
      stdin: input !== undefined,
      stdout: "pipe",
      stderr: "pipe",
    });
    const name = `${role} ${id}${running.some((r) => r.name.startsWith(`${role} ${id}`)) ? " (restarted)" : ""}`;
    const stdout: string[] = [];
    readLines(child.stdout, (line) => stdout.push(line));
    const log: string[] = [];
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      if (log.length < 10_000) log.push(chunk);
      if (chunk.includes(`"msg":"${LOG_MESSAGES.nowLeader}"`)) leader = id;
    });
    const entry: Running = {
      name,
      child,
      stdout,
      exit: null,
      cpuSeconds: 0,
      exited: new Promise((resolve) => {
        child.on("exit", (code, signal) => {
          entry.exit = signal ?? String(code);
          writeFileSync(join(workDir, `${name.replaceAll(" ", "-")}.log`), log.join(""));
          resolve();
        });
      }),
    };
    if (input !== undefined) feed(child, input, options.feedSeconds ?? 0);
    running.push(entry);
    return entry;
  };

  const clients = [1, 2];
  const sent: string[] = [];
  const inputs = clients.map((client) => {
    const values = Array.from(
      { length: options.valuesPerClient },
      (_, i) => `${client}${String(i + 1).padStart(7, "0")}`,
    );
    for (const value of values) sent.push(value);
    return `${values.join("\n")}\n`;
  });
  const acceptors = options.acceptors ?? [1, 2, 3];
  const learners: Running[] = [];
  const sentSet = new Set(sent);
  let learnedAllAt: number | null = null;
  let killed: string | null = null;
  let clientsStartedAt = 0;
  const watch = setInterval(() => {
    if (
      learnedAllAt === null &&
      learners.length === 2 &&
      learners.every((l) => new Set(l.stdout).size >= sentSet.size)
    ) {
      learnedAllAt = performance.now();
    }
  }, 5);

  try {
    for (const id of acceptors) start("acceptor", id);
    await sleep(step);
    for (const id of [1, 2]) start("proposer", id);
    const proposersAt = performance.now();
    await sleep(step);
    learners.push(start("learner", 1));
    if (!options.lateLearner) learners.push(start("learner", 2));
    // Clients start about 3 s after the proposers.
    await sleep(Math.max(0, proposersAt + 3 * step - performance.now()));
    clientsStartedAt = performance.now();
    start("client", 1, inputs[0]);
    if (options.lateLearner) {
      await sleep(step);
      learners.push(start("learner", 2));
      await sleep(step);
    }
    start("client", 2, inputs[1]);
    const lastClientAt = performance.now();
    if (options.kill !== undefined) {
      const { role, restart } = options.kill;
      await sleep(runMs / 5);
      const id =
        options.kill.id === "leader"
          ? (leader ?? 1)
          : options.kill.id === "follower"
            ? 3 - (leader ?? 1)
            : options.kill.id;
      killed = `${role} ${id}`;
      const victim = running.find((r) => r.name === killed);
      victim?.child.kill("SIGKILL");
      if (restart) {
        await sleep(step / 2);
        start(role, id);
      }
    }
    await sleep(Math.max(0, lastClientAt + runMs - performance.now()));
  } finally {
    clearInterval(watch);
    for (const r of running) r.cpuSeconds = cpuSecondsOf(r.child.pid);
    for (const r of running) if (r.exit === null) r.child.kill("SIGTERM");
    const killer = setTimeout(() => {
      for (const r of running) if (r.exit === null) r.child.kill("SIGKILL");
    }, 1000);
    await Promise.all(running.map((r) => r.exited));
    clearTimeout(killer);
  }

  const learned = learners.map((l) => l.stdout);
  const problems = checkOutputs(sent, learned, options);
  for (const r of running) {
    const killedOnPurpose = r.name === killed;
    if (!killedOnPurpose && r.exit !== "0" && !(r.name.startsWith("client") && r.exit === "SIGTERM")) {
      problems.push(`${r.name} ended with ${r.exit} (logs in ${workDir})`);
    }
  }
  if (!options.keep && problems.length === 0) rmSync(workDir, { recursive: true, force: true });
  return {
    sent,
    learned,
    problems,
    processes: running.map((r) => ({ name: r.name, exit: r.exit ?? "?", cpuSeconds: r.cpuSeconds })),
    learnedAllMs: learnedAllAt === null ? null : Math.round(learnedAllAt - clientsStartedAt),
    workDir,
    killed,
  };
}

/** Writes a client's values to its stdin, all at once or spread over `seconds`, then closes it. */
function feed(child: ChildProcess, input: string, seconds: number): void {
  const stdin = child.stdin;
  if (stdin === null) return;
  stdin.on("error", () => {});
  if (seconds <= 0) {
    stdin.end(input);
    return;
  }
  const lines = input.split("\n").filter((line) => line !== "");
  const steps = Math.max(1, Math.round((seconds * 1000) / 50));
  const perStep = Math.ceil(lines.length / steps);
  let next = 0;
  const timer = setInterval(() => {
    if (child.exitCode !== null || child.signalCode !== null) {
      clearInterval(timer);
      return;
    }
    const chunk = lines.slice(next, next + perStep);
    next += perStep;
    if (chunk.length > 0) stdin.write(`${chunk.join("\n")}\n`);
    if (next >= lines.length) {
      clearInterval(timer);
      stdin.end();
    }
  }, 50);
}

function checkOutputs(
  sent: readonly string[],
  learned: readonly (readonly string[])[],
  options: UsiRunOptions,
): string[] {
  const problems: string[] = [];
  const sentSet = new Set(sent);
  const quorumRuns = (options.acceptors ?? [1, 2, 3]).length >= 2;
  learned.forEach((lines, index) => {
    const seen = new Set<string>();
    for (const printed of lines) {
      // Learners print each value on one line, escaped where it must be (see `printableLine`).
      const parsed = parsePrintedLine(printed);
      const line = parsed.ok ? parsed.value : printed;
      if (!sentSet.has(line)) problems.push(`learner ${index + 1} printed "${line}", which no client sent`);
      if (seen.has(line)) problems.push(`learner ${index + 1} printed "${line}" twice`);
      seen.add(line);
      if (problems.length > 20) return;
    }
    if (quorumRuns && seen.size !== sentSet.size) {
      problems.push(`learner ${index + 1} printed ${seen.size} of ${sentSet.size} values`);
    }
    if (!quorumRuns && lines.length > 0)
      problems.push(`learner ${index + 1} printed ${lines.length} values without a quorum`);
  });
  const [first, second] = learned;
  if (first !== undefined && second !== undefined) {
    const common = Math.min(first.length, second.length);
    for (let i = 0; i < common; i++) {
      if (first[i] !== second[i]) {
        problems.push(`learners disagree at line ${i + 1}: "${first[i]}" vs "${second[i]}"`);
        break;
      }
    }
    if (first.length !== second.length)
      problems.push(`learners printed ${first.length} and ${second.length} lines`);
  }
  return problems;
}

/** CPU seconds (user + system) a live process has used, from /proc (0 where unavailable). */
function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return 0;
  }
}
