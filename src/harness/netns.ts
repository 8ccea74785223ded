/**
 * A small lab of Linux network namespaces for real-process tests: N "hosts", each a namespace with
 * `lo` up and one interface `eth0` (10.213.S.i/24), joined by a bridge that lives in its own "switch"
 * namespace, so the machine's own network is never touched. A host's link can be cut and restored
 * (its bridge port set down and up), and commands run inside a host with `ip netns exec`.
 *
 * Needs Linux, iproute2 (`ip`) and the right to create namespaces (root, CAP_SYS_ADMIN and
 * CAP_NET_ADMIN). `probeNetns()` says whether that holds here and, if not, why, so a test can skip.
 *
 * @example
 * const probe = probeNetns();
 * if (probe.ok) {
 *   const lab = NetnsLab.create({ hosts: 3 });
 *   try {
 *     const node = lab.spawn(1, process.execPath, ["-e", "console.log('hi')"]);
 *     await waitFor(() => node.lines.includes("hi"), 5000, "hi");
 *     lab.setLink(3, false); // host 3 is cut off
 *   } finally {
 *     await lab.destroy(); // stops what it spawned, deletes the namespaces
 *   }
 * }
 */

import { type ChildProcess, spawnSync } from "node:child_process";
import { startProcess } from "../test-support/index.js";
import { readLines } from "./lines.js";

/** Whether namespaces can be made here, and if not, why (for a test's skip message). */
export type NetnsProbe = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Every name this module gives a namespace starts with this, then the pid and a per-process number. */
const NAMESPACE_PREFIX = "pxnt";

/** A command of `ip` longer than this is stuck: fail it rather than hang the test. */
const IP_TIMEOUT_MS = 10_000;

/** Lines of stderr kept per process for failure messages (the newest). */
const STDERR_LINES_MAX = 200;

/** Lines of stdout kept per process: far above what a test prints, a bound against a runaway. */
const STDOUT_LINES_MAX = 1_000_000;

/** How long a process has after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 1000;

let labsMade = 0;

function runIp(args: readonly string[]): { ok: true } | { ok: false; error: string } {
  const run = spawnSync("ip", args, { encoding: "utf8", timeout: IP_TIMEOUT_MS });
  if (run.error !== undefined) return { ok: false, error: `ip ${args.join(" ")}: ${run.error.message}` };
  if (run.status !== 0) {
    const said = (run.stderr || run.stdout).trim() || `exit status ${run.status ?? run.signal}`;
    return { ok: false, error: `ip ${args.join(" ")}: ${said}` };
  }
  return { ok: true };
}

function ip(args: readonly string[]): void {
  const run = runIp(args);
  if (!run.ok) throw new Error(run.error);
}

/**
 * Checks that this machine lets us build a lab: Linux, `ip` installed, and a throw-away namespace
 * can be added, given a bridge and a veth pair, and entered with `ip netns exec`. Cleans up after
 * itself. Synchronous and quick (a few `ip` commands).
 */
export function probeNetns(): NetnsProbe {
  if (process.platform !== "linux") return { ok: false, reason: `not Linux (${process.platform})` };
  const version = spawnSync("ip", ["-V"], { encoding: "utf8", timeout: IP_TIMEOUT_MS });
  if (version.error !== undefined) {
    const code = (version.error as NodeJS.ErrnoException).code;
    return {
      ok: false,
      reason:
        code === "ENOENT"
          ? "the `ip` command (iproute2) is not installed"
          : `cannot run \`ip\`: ${version.error.message}`,
    };
  }
  const name = `${NAMESPACE_PREFIX}-${process.pid}-probe`;
  const added = runIp(["netns", "add", name]);
  if (!added.ok) return { ok: false, reason: added.error };
  try {
    for (const args of [
      ["-n", name, "link", "set", "lo", "up"],
      ["-n", name, "link", "add", "pxprobe0", "type", "bridge"],
      ["-n", name, "link", "add", "pxprobe1", "type", "veth", "peer", "name", "pxprobe2"],
    ]) {
      const run = runIp(args);
      if (!run.ok) return { ok: false, reason: run.error };
    }
    const entered = spawnSync("ip", ["netns", "exec", name, process.execPath, "-e", "0"], {
      encoding: "utf8",
      timeout: IP_TIMEOUT_MS,
    });
    if (entered.status !== 0) {
      const said = (entered.stderr ?? "").trim() || entered.error?.message || `exit status ${entered.status}`;
      return { ok: false, reason: `ip netns exec: ${said}` };
    }
    return { ok: true };
  } finally {
    runIp(["netns", "delete", name]);
  }
}

/** One host of a lab. */
export interface LabHost {
  /** 1-based, as in `spawn(1, ...)`. */
  readonly index: number;
  readonly namespace: string;
  /** This host's IPv4 address on the lab's bridge. */
  readonly address: string;
  /** The host's port on the bridge (in the switch namespace): set down to cut the host off. */
  readonly bridgePort: string;
}

export interface NetnsLabOptions {
  /** Hosts on the bridge, 1..250. */
  readonly hosts: number;
  /**
   * Third octet of the lab's subnet 10.213.S.0/24 (default: chosen from the pid and a counter). The
   * addresses exist only inside the lab's namespaces, so two labs never clash whatever they choose.
   */
  readonly subnet?: number;
}

/** A process started in a lab host, its stdout split into lines as they arrive. */
export class LabProcess {
  /** Complete stdout lines so far. */
  readonly lines: string[] = [];
  /** The newest stderr lines (at most `STDERR_LINES_MAX`). */
  readonly stderrLines: string[] = [];
  /** Exit code, or the signal's name; null while it runs. */
  exit: string | null = null;
  readonly exited: Promise<string>;
  readonly startedAt = performance.now();
  private readonly stdout: { rest(): string };
  private readonly stderr: { rest(): string };

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.stdout = readLines(child.stdout, (line) => {
      if (this.lines.length < STDOUT_LINES_MAX) this.lines.push(line);
    });
    this.stderr = readLines(child.stderr, (line) => {
      this.stderrLines.push(line);
      if (this.stderrLines.length > STDERR_LINES_MAX) this.stderrLines.shift();
    });
    child.stdin?.on("error", () => {}); // a process that exits early closes its stdin: not our error
    this.exited = new Promise((resolve) => {
      child.on("error", (error) => {
        this.stderrLines.push(`spawn failed: ${error.message}`);
        this.exit ??= "spawn-error";
        resolve(this.exit);
      });
      child.on("close", (code, signal) => {
        if (this.stdout.rest() !== "") this.lines.push(this.stdout.rest());
        if (this.stderr.rest() !== "") this.stderrLines.push(this.stderr.rest());
        this.exit ??= signal ?? String(code);
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Writes `lines` to stdin, one per line; stdin stays open (see `closeInput`). */
  write(lines: readonly string[]): void {
    this.child.stdin?.write(lines.map((line) => `${line}\n`).join(""));
  }

  /** Closes stdin: end of input. */
  closeInput(): void {
    this.child.stdin?.end();
  }

  /** SIGTERM, then SIGKILL if it still runs `STOP_GRACE_MS` later; resolves once it has exited. */
  async stop(): Promise<string> {
    if (this.exit !== null) return this.exit;
    this.child.kill("SIGTERM");
    const killer = setTimeout(() => {
      if (this.exit === null) this.child.kill("SIGKILL");
    }, STOP_GRACE_MS);
    try {
      return await this.exited;
    } finally {
      clearTimeout(killer);
    }
  }

  /** The last `count` stderr lines, for a failure message. */
  stderrTail(count = 20): string {
    return this.stderrLines.slice(-count).join("\n");
  }
}

/**
 * Namespaces `<prefix>-<pid>-<n>-sw` (the switch, holding bridge `br0` and one port `hI` per host)
 * and `<prefix>-<pid>-<n>-hI` (host I, `eth0` at 10.213.S.I/24). Build with `create`, always end
 * with `destroy` (in a `finally`).
 */
export class NetnsLab {
  readonly hosts: readonly LabHost[];
  readonly switchNamespace: string;
  private readonly processes: LabProcess[] = [];
  private destroyed = false;

  private constructor(switchNamespace: string, hosts: readonly LabHost[]) {
    this.switchNamespace = switchNamespace;
    this.hosts = hosts;
  }

  /** Builds the lab; on any failure deletes what it made and throws, naming the `ip` command. */
  static create(options: NetnsLabOptions): NetnsLab {
    if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > 250) {
      throw new RangeError(`hosts must be 1..250, got ${options.hosts}`);
    }
    const serial = ++labsMade;
    const subnet = options.subnet ?? 1 + ((process.pid + serial) % 250);
    if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) {
      throw new RangeError(`subnet must be 0..255, got ${subnet}`);
    }
    const base = `${NAMESPACE_PREFIX}-${process.pid}-${serial}`;
    const hosts: LabHost[] = Array.from({ length: options.hosts }, (_, i) => ({
      index: i + 1,
      namespace: `${base}-h${i + 1}`,
      address: `10.213.${subnet}.${i + 1}`,
      bridgePort: `h${i + 1}`,
    }));
    const lab = new NetnsLab(`${base}-sw`, hosts);
    const made: string[] = [];
    try {
      const sw = lab.switchNamespace;
      ip(["netns", "add", sw]);
      made.push(sw);
      ip(["-n", sw, "link", "set", "lo", "up"]);
      ip(["-n", sw, "link", "add", "br0", "type", "bridge"]);
      ip(["-n", sw, "link", "set", "br0", "up"]);
      for (const host of hosts) {
        ip(["netns", "add", host.namespace]);
        made.push(host.namespace);
        ip(["-n", host.namespace, "link", "set", "lo", "up"]);
        // One veth pair: its switch end is a bridge port, its other end is the host's eth0.
        ip([
          "-n",
          sw,
          "link",
          "add",
          host.bridgePort,
          "type",
          "veth",
          "peer",
          "name",
          "eth0",
          "netns",
          host.namespace,
        ]);
        ip(["-n", sw, "link", "set", host.bridgePort, "master", "br0"]);
        ip(["-n", sw, "link", "set", host.bridgePort, "up"]);
        ip(["-n", host.namespace, "addr", "add", `${host.address}/24`, "dev", "eth0"]);
        ip(["-n", host.namespace, "link", "set", "eth0", "up"]);
      }
    } catch (error) {
      for (const name of made.reverse()) runIp(["netns", "delete", name]);
      throw error;
    }
    return lab;
  }

  host(index: number): LabHost {
    const host = this.hosts[index - 1];
    if (host === undefined) throw new RangeError(`no host ${index} (the lab has ${this.hosts.length})`);
    return host;
  }

  /** Cuts host `index` off the bridge (`up` false) or puts it back (`up` true). */
  setLink(index: number, up: boolean): void {
    ip(["-n", this.switchNamespace, "link", "set", this.host(index).bridgePort, up ? "up" : "down"]);
  }

  /**
   * Runs `command args` inside host `index` (`ip netns exec` execs it, so the child's pid is the
   * command's own). stdin is a pipe (see `LabProcess.write`), stdout and stderr are captured.
   */
  spawn(
    index: number,
    command: string,
    args: readonly string[],
    options: { name?: string; env?: NodeJS.ProcessEnv } = {},
  ): LabProcess {
    if (this.destroyed) throw new Error("the lab is destroyed");
    const host = this.host(index);
    const { child } = startProcess("ip", ["netns", "exec", host.namespace, command, ...args], {
      stdin: true,
      stdout: "pipe",
      stderr: "pipe",
      ...(options.env !== undefined ? { env: options.env } : {}),
    });
    const started = new LabProcess(options.name ?? `${command} on host ${index}`, child);
    this.processes.push(started);
    return started;
  }

  /** Stops every process this lab started (SIGTERM, SIGKILL 1 s later), then deletes its namespaces. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(this.processes.map((p) => p.stop()));
    const failures: string[] = [];
    // Deleting a namespace destroys its interfaces, and a veth goes with either of its ends.
    for (const name of [...this.hosts.map((h) => h.namespace), this.switchNamespace]) {
      const run = runIp(["netns", "delete", name]);
      if (!run.ok) failures.push(run.error);
    }
    if (failures.length > 0) throw new Error(`lab clean-up failed: ${failures.join("; ")}`);
  }
}
