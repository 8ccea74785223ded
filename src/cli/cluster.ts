import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { printableLine } from "../core/index.js";
import {
  type AppReport,
  type Dashboard,
  type NodeControl,
  type NodeReport,
  startDashboard,
} from "../dashboard/index.js";
import {
  isLogFileName,
  nodeDataDirFileSystem,
  parseClusterConfig,
  prepareDataDirPath,
  RUNTIME_TIMING,
} from "../runtime/index.js";
import { parseCommandArgs } from "./args.js";
import { ClusterControls } from "./cluster-controls.js";
import { describeQuorum, parseWeights, quorumFlags, quorumOption } from "./cluster-options.js";
import { StartError, UsageError } from "./errors.js";
import { NodeClient, SessionWriter, watchChanges } from "./http-client.js";
import { parseHttpAddress } from "./kv-node.js";
import { readLines } from "./lines.js";
import { lockDataDir, parsePositiveInt } from "./process-kit.js";
import { separateRolesCommand } from "./separate-roles.js";

export const CLUSTER_HELP = `Usage: paxos cluster [--nodes N] [options]

Starts a local cluster on loopback: one "paxos node --http" process per node, collapsed replicas
(majority quorums unless --weights or --quorum say otherwise), each running the replicated
key-value store and lock service and serving its HTTP API (docs/applications.md) on a port of its
own, written into the cluster file and printed.
Type a value and press Enter to have it decided (it is written to the key "input"); each decided
value is printed once, as node 1 applies it. "paxos kv" and "paxos lock" work against the printed
addresses. Ctrl-C stops every node cleanly; if this process is killed, the nodes exit too.

Options:
  --nodes N          how many nodes (default 3)
  --transport T      udp (default) or tcp
  --base-port P      node i listens on 127.0.0.1:(P + i - 1) (default 7101)
  --http-base-port P node i serves HTTP on 127.0.0.1:(P + i - 1) (default: free ports)
  --data DIR         keep each node's durable state in DIR/node-<i>; without it, state is in memory.
                     A cluster whose node directories are all missing or empty starts new (its
                     nodes get --new); otherwise each node loads its state, and a node whose
                     directory is missing or empty rejoins as a learner
  --weights W1,W2,.. each node's voting weight (e.g. 2,1,1; --nodes defaults to their count); with
                     it the quorum is weighted: more than half the total weight
  --quorum KIND      majority (default; counts nodes), weighted (more than half the total weight), or
                     flexible: phase-1 (prepare) quorums of --phase1-weight and phase-2 (accept)
                     quorums of --phase2-weight, which must add up to more than the total weight
  --phase1-weight W  with --quorum flexible: the weight a phase-1 quorum needs
  --phase2-weight W  with --quorum flexible: the weight a phase-2 quorum needs
  --separate-roles   the seed projects' layout instead: acceptors, proposers and learners as separate
                     processes ("paxos acceptor|proposer|learner") over UDP multicast on loopback,
                     and a "paxos client" taking the typed values; majority quorums of acceptors
  --acceptors N      with --separate-roles: how many acceptors (default 3)
  --proposers N      with --separate-roles: how many proposers (default 2: one leads, one stands by)
  --learners N       with --separate-roles: how many learners (default 1; learner 1's values are printed)
  --demo             also submit a value every half second, to watch the cluster work
  --dashboard [H:P]  serve the live dashboard (docs/dashboard.md) on H:P (default 127.0.0.1:7100;
                     port 0: any free port) and print its address. Without --data, the nodes then
                     keep durable state in the temporary folder, so a crashed node restarts on it
  -h, --help         this text

Exit status: 0 after Ctrl-C (or SIGTERM) stopped every node; 1 when a node failed to start or
exited on its own (the line before says which and why); 2 on a usage error. Without --data the
cluster's state is in a temporary folder, removed when it stops.

With PAXOS_CLUSTER_KEY set, the nodes authenticate every frame between them with it (see
docs/security.md); without it they warn that cluster traffic is unauthenticated.`;

export const BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));

/** The key typed and demo values are written to; node 1's changes to it are printed. */
const INPUT_KEY = "input";
/** Values typed or made up but not yet written, past which stdin is paused (the demo skips a beat). */
const INPUT_QUEUE_MAX = 1000;
/** Where `--dashboard` alone serves the dashboard. */
const DASHBOARD_DEFAULT = "127.0.0.1:7100";

/** `--dashboard` takes an optional HOST:PORT: alone (last, or before another option) it means the default. */
function withDashboardDefault(args: string[]): string[] {
  return args.map((arg, i) =>
    arg === "--dashboard" && (i + 1 >= args.length || (args[i + 1] as string).startsWith("-"))
      ? `--dashboard=${DASHBOARD_DEFAULT}`
      : arg,
  );
}

export async function clusterCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("cluster", withDashboardDefault(args), {
    nodes: { type: "string" },
    transport: { type: "string" },
    "base-port": { type: "string" },
    "http-base-port": { type: "string" },
    data: { type: "string" },
    weights: { type: "string" },
    quorum: { type: "string" },
    "phase1-weight": { type: "string" },
    "phase2-weight": { type: "string" },
    "separate-roles": { type: "boolean", default: false },
    acceptors: { type: "string" },
    proposers: { type: "string" },
    learners: { type: "string" },
    demo: { type: "boolean", default: false },
    dashboard: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${CLUSTER_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values["separate-roles"]) {
    if (values.dashboard !== undefined)
      throw new UsageError("--dashboard shows collapsed nodes: leave out --separate-roles");
    return separateRolesCommand(values);
  }
  for (const flag of ["acceptors", "proposers", "learners"] as const)
    if (values[flag] !== undefined) throw new UsageError(`--${flag} is for --separate-roles (use --nodes)`);
  const weights = parseWeights(values.weights);
  const count = parsePositiveInt(values.nodes, "--nodes", weights?.length ?? 3);
  if (weights !== null && weights.length !== count)
    throw new UsageError(`--weights gives ${weights.length} weights for ${count} nodes`);
  const quorum = quorumOption(values, weights !== null);
  if (count > 15) throw new UsageError("--nodes: at most 15 local nodes");
  const basePort = parsePositiveInt(values["base-port"], "--base-port", 7101);
  if (basePort + count - 1 > 65535) throw new UsageError("--base-port: the ports run past 65535");
  const httpBasePort =
    values["http-base-port"] === undefined
      ? null
      : parsePositiveInt(values["http-base-port"], "--http-base-port", 1);
  if (httpBasePort !== null && httpBasePort + count - 1 > 65535)
    throw new UsageError("--http-base-port: the ports run past 65535");
  const transportName = values.transport ?? "udp";
  if (transportName !== "udp" && transportName !== "tcp")
    throw new UsageError(`--transport wants udp or tcp, got "${transportName}"`);
  const dashboardAddress =
    values.dashboard === undefined ? null : parseHttpAddress(values.dashboard, "--dashboard");

  // Checked before anything is made: a quorum the nodes would refuse is a usage error here.
  const checked = parseClusterConfig(
    JSON.stringify({
      nodes: Array.from({ length: count }, (_, i) => ({
        id: i + 1,
        host: "127.0.0.1",
        port: basePort + i,
        ...(weights === null ? {} : { weight: weights[i] }),
      })),
      quorum,
    }),
  );
  if (!checked.ok) throw new UsageError(quorumFlags(checked.error));
  const dir =
    values.data === undefined ? mkdtempSync(join(tmpdir(), "paxos-cluster-")) : await dataDir(values.data);
  const removeTemporary = () => {
    if (values.data === undefined) rmSync(dir, { recursive: true, force: true });
  };
  // A whole cluster's first start is one command: if no node has a log yet, every node is new.
  // With the dashboard a crashed node restarts on its state: keep it on disk, in the temporary folder.
  const durable = values.data !== undefined || dashboardAddress !== null;
  const isNew =
    values.data === undefined ||
    Array.from({ length: count }, (_, i) => join(dir, `node-${i + 1}`)).every(holdsNoLog);
  const configPath = join(dir, "cluster.json");
  const httpPorts =
    httpBasePort === null
      ? await freeTcpPorts(count)
      : Array.from({ length: count }, (_, i) => httpBasePort + i);
  const nodes = Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    host: "127.0.0.1",
    port: basePort + i,
    http: `127.0.0.1:${httpPorts[i]}`,
    ...(weights === null ? {} : { weight: weights[i] }),
  }));
  const configText = `${JSON.stringify({ name: "local", nodes, quorum, transport: transportName }, null, 2)}\n`;
  writeFileSync(configPath, configText);
  const cluster = parseClusterConfig(configText);
  if (!cluster.ok) {
    removeTemporary();
    throw new Error(`generated cluster file is invalid: ${cluster.error}`);
  }
  const httpList = nodes.map((node) => node.http).join(",");
  process.stderr.write(
    `paxos cluster: ${count} nodes on 127.0.0.1:${basePort}..${basePort + count - 1} over ${transportName}; config ${configPath}\n` +
      `paxos cluster: quorum ${describeQuorum(quorum, weights)}\n` +
      `paxos cluster: HTTP API ${nodes.map((node) => `node ${node.id} http://${node.http}`).join(", ")}\n` +
      `paxos cluster: try: paxos kv put greeting hello --node ${httpList}\n`,
  );

  let controls: ClusterControls | null = null;
  let dashboard: Dashboard | null = null;
  if (dashboardAddress !== null) {
    try {
      dashboard = await startDashboard({
        host: dashboardAddress.host,
        port: dashboardAddress.port,
        nodeIds: nodes.map((node) => node.id),
        electionTimeoutMs: cluster.value.tickMs * RUNTIME_TIMING.electionTimeoutTicks,
        control: async (request) =>
          controls === null ? { ok: false, message: "the cluster is starting" } : controls.run(request),
      });
    } catch (error) {
      removeTemporary();
      throw new UsageError(`cannot serve the dashboard on ${values.dashboard}: ${(error as Error).message}`);
    }
  }
  const processes = new Map<number, NodeProcess>();
  /** Each node's last line that is not a JSON log line: its one-line error, when it fails. */
  const lastWords = new Map<string, string>();
  /** Set once the cluster stops: nodes that exit then are expected to. */
  let stopping = false;
  let onNodeExit: (proc: NodeProcess) => void = () => {};
  /** Starts node `id`'s process (again, after a crash: on the same data directory, not new). */
  const spawnNode = (id: number, first: boolean): NodeProcess => {
    const args = [BIN, "node", "--config", configPath, "--id", String(id)];
    if (durable) args.push("--data", join(dir, `node-${id}`));
    if (isNew && first) args.push("--new");
    // An IPC channel: the node reports to the dashboard over it, takes its controls, and exits
    // when it closes (this process exited or was killed), rather than hold its ports.
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: { ...process.env, PAXOS_LOG_LEVEL: process.env.PAXOS_LOG_LEVEL ?? "warn" },
    });
    const proc: NodeProcess = { id, child, crashing: false, exited: false };
    if (dashboard !== null) child.send({ type: "report" } satisfies NodeControl);
    processes.set(id, proc);
    relayStderr(child, `node ${id}`, lastWords);
    child.on("message", (message: unknown) => {
      if (!isReport(message, id)) return;
      if (processes.get(id) === proc && dashboard !== null) {
        dashboard.nodeProcess(id, "running");
        dashboard.report(message);
      }
    });
    child.on("exit", (code, signal) => {
      proc.exited = true;
      proc.exitDescription = signal ?? `status ${code}`;
      onNodeExit(proc);
    });
    return proc;
  };
  for (const node of nodes) spawnNode(node.id, true);

  // Values are written to the key "input" through the HTTP API, one at a time, each exactly once;
  // node 1's changes to the key are printed as it applies them.
  const client = new NodeClient(
    nodes.map((node) => node.http),
    { deadlineMs: 20_000 },
  );
  const writer = new SessionWriter(client);
  // With the dashboard, node 1 may be crashed: the watch then goes on on another node.
  const watcher = new NodeClient(
    dashboardAddress === null ? [nodes[0]?.http as string] : nodes.map((node) => node.http),
    { deadlineMs: 20_000 },
  );
  const watching = new AbortController();
  let watchReady = false;
  const queue: string[] = [];
  let writing = false;
  // One value a line; blank lines skipped, lines that are not UTF-8 refused (as "paxos client" does).
  const input = readLines(process.stdin, {
    onLine: (line) => submit(line),
    onRefused: (problem) => process.stderr.write(`paxos cluster: ${problem}\n`),
    onEnd: () => {},
  });
  const pump = async () => {
    if (writing || !watchReady) return;
    writing = true;
    for (let value = queue.shift(); value !== undefined; value = queue.shift()) {
      if (queue.length < INPUT_QUEUE_MAX / 2) input.resume();
      const outcome = await writer.write("PUT", `/kv/${INPUT_KEY}`, value);
      if (outcome.kind === "failed") process.stderr.write(`paxos cluster: not sent: ${outcome.message}\n`);
      if (outcome.kind === "unknown") process.stderr.write(`paxos cluster: ${outcome.message}\n`);
    }
    writing = false;
  };
  const submit = (value: string) => {
    queue.push(value);
    if (queue.length >= INPUT_QUEUE_MAX) input.pause();
    void pump();
  };
  const watch = watchChanges(watcher, INPUT_KEY, {
    fromRevision: null,
    signal: watching.signal,
    onOpen: () => {
      watchReady = true;
      void pump();
    },
    onChange: (change) => {
      if (change.key === INPUT_KEY && change.value !== null)
        process.stdout.write(`decided: ${printableLine(change.value)}\n`);
    },
  }).catch((error: Error) =>
    process.stderr.write(`paxos cluster: the watch of node 1 failed: ${error.message}\n`),
  );
  let demo: NodeJS.Timeout | null = null;
  if (values.demo) {
    let n = 0;
    demo = setInterval(() => {
      if (queue.length < INPUT_QUEUE_MAX) submit(`demo-${++n}`);
    }, 500);
  }
  if (process.stdin.isTTY) process.stderr.write("type a value and press Enter; Ctrl-C stops the cluster\n");

  controls = new ClusterControls({
    client,
    submit: (value) => submit(value),
    processOf: (id) => processes.get(id) ?? null,
    restart: (id) => {
      dashboard?.nodeProcess(id, "starting");
      spawnNode(id, false);
    },
  });
  if (dashboard !== null) process.stderr.write(`paxos cluster: dashboard ${dashboard.url}\n`);

  return new Promise((resolve) => {
    let status = 0;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      if (demo !== null) clearInterval(demo);
      input.close();
      watching.abort();
      controls?.close();
      process.stderr.write("paxos cluster: stopping\n");
      terminate([...processes.values()].filter((proc) => !proc.exited).map((proc) => proc.child));
      finishIfDone();
    };
    const finishIfDone = () => {
      if (!stopping || [...processes.values()].some((proc) => !proc.exited)) return;
      void watch
        .finally(() => dashboard?.close())
        .finally(() => {
          client.close();
          watcher.close();
          removeTemporary();
          resolve(status);
        });
    };
    onNodeExit = (proc) => {
      if (proc.crashing) {
        // Crashed from the dashboard: it stays down until restarted from there.
        if (processes.get(proc.id) === proc) dashboard?.nodeProcess(proc.id, "crashed");
      } else if (!stopping) {
        // Failed to start (a port in use, a data directory it cannot use) or stopped on its own.
        status = 1;
        process.stderr.write(exitedLine(`node ${proc.id}`, proc.exitDescription ?? "", lastWords));
        stop();
      }
      finishIfDone();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}

/** One node's process (a node crashed and restarted from the dashboard has had several). */
export interface NodeProcess {
  readonly id: number;
  readonly child: ChildProcess;
  /** SIGKILLed from the dashboard: its exit does not stop the cluster. */
  crashing: boolean;
  exited: boolean;
  exitDescription?: string;
}

/** Whether `message` (from node `id`'s IPC channel) is one of its reports. */
function isReport(message: unknown, id: number): message is NodeReport | AppReport {
  if (typeof message !== "object" || message === null) return false;
  const report = message as { type?: unknown; id?: unknown };
  return (report.type === "report" || report.type === "app") && report.id === id;
}

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago (listened on with port 0 and
 * released), for the nodes' HTTP APIs. A port may be taken before its node listens: the node then
 * exits with a one-line error, and the cluster stops.
 */
async function freeTcpPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address !== null && typeof address === "object") ports.add(address.port);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return [...ports];
}

/** The cluster's directory for `--data`, created if missing and locked for this process's lifetime. */
export async function dataDir(path: string): Promise<string> {
  if (path.trim() === "")
    throw new UsageError("--data needs a directory (an empty path would be the working directory)");
  const prepared = await prepareDataDirPath(path);
  if (!prepared.ok) throw new StartError(prepared.error.message);
  const dir = prepared.value;
  const kind = await nodeDataDirFileSystem.kind(dir);
  if (kind === null) {
    try {
      mkdirSync(dir);
    } catch (error) {
      throw new StartError(`cannot create --data ${dir}: ${(error as NodeJS.ErrnoException).code}`);
    }
  } else if (kind !== "directory") {
    throw new StartError(`--data ${dir} is not a directory`);
  }
  lockDataDir(dir);
  return dir;
}

/** Whether a node's directory is missing or holds no log file. */
export function holdsNoLog(dir: string): boolean {
  try {
    return !readdirSync(dir).some(isLogFileName);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw new StartError(`cannot read ${dir}: ${(error as NodeJS.ErrnoException).code}`);
  }
}

/** Most ms a child of `paxos cluster` may take to stop after SIGTERM before it is SIGKILLed. */
const CHILD_STOP_MS = 4000;

/** SIGTERM to each child; SIGKILL to those still running `CHILD_STOP_MS` later. */
export function terminate(children: readonly ChildProcess[]): void {
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }, CHILD_STOP_MS).unref();
}

/**
 * Copies a child's stderr to ours, each line behind `[name]`, and keeps in `lastWords` its last line
 * that is not a JSON log line: a process's own one-line error, which says why it stopped.
 */
export function relayStderr(child: ChildProcess, name: string, lastWords: Map<string, string>): void {
  prefixLines(child.stderr, process.stderr, (line) => {
    if (!line.startsWith("{")) lastWords.set(name, line);
    return `[${name}] ${line}\n`;
  });
}

/** The line for a child that exited while the cluster ran (`exit`: its signal or "status N"). */
export function exitedLine(name: string, exit: string, lastWords: ReadonlyMap<string, string>): string {
  const why = lastWords.get(name)?.replace(/^paxos \w+: /, "");
  return `paxos cluster: ${name} exited (${exit})${why === undefined ? "" : `: ${why}`}; stopping the cluster\n`;
}

/**
 * Copies each line of a child's `stream` to `out` through `format`. When `out` is backed up, the
 * child's stream is paused until `out` drains: the child's own output then waits in its pipe, and a
 * node that cannot write pauses its intake (see `pacedWriter`), so nothing piles up in memory.
 */
function prefixLines(
  stream: NodeJS.ReadableStream | null,
  out: NodeJS.WritableStream,
  format: (line: string) => string,
): void {
  if (stream === null) return;
  const lines = createInterface({ input: stream });
  let paused = false;
  lines.on("line", (line) => {
    // Lines already read still arrive after a pause: written, they wait in `out` (one chunk's worth).
    if (out.write(format(line)) || paused) return;
    paused = true;
    lines.pause();
    out.once("drain", () => {
      paused = false;
      lines.resume();
    });
  });
}
