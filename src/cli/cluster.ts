import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { printableLine } from "../core/index.js";
import {
  isLogFileName,
  nodeDataDirFileSystem,
  parseClusterConfig,
  prepareDataDirPath,
} from "../runtime/index.js";
import { parseCommandArgs } from "./args.js";
import { StartError, UsageError } from "./errors.js";
import { NodeClient, SessionWriter, watchChanges } from "./http-client.js";
import { lockDataDir, parsePositiveInt } from "./process-kit.js";

export const CLUSTER_HELP = `Usage: paxos cluster [--nodes N] [options]

Starts a local cluster on loopback: one "paxos node --http" process per node, collapsed replicas
with majority quorums, each running the replicated key-value store and lock service and serving its
HTTP API (docs/applications.md) on a port of its own, written into the cluster file and printed.
Type a value and press Enter to have it decided (it is written to the key "input"); each decided
value is printed once, as node 1 applies it. "paxos kv" and "paxos lock" work against the printed
addresses. Ctrl-C stops every node cleanly.

Options:
  --nodes N          how many nodes (default 3)
  --transport T      udp (default) or tcp
  --base-port P      node i listens on 127.0.0.1:(P + i - 1) (default 7101)
  --http-base-port P node i serves HTTP on 127.0.0.1:(P + i - 1) (default: free ports)
  --data DIR         keep each node's durable state in DIR/node-<i>; without it, state is in memory.
                     A cluster whose node directories are all missing or empty starts new (its
                     nodes get --new); otherwise each node loads its state, and a node whose
                     directory is missing or empty rejoins as a learner
  --demo             also submit a value every half second, to watch the cluster work
  -h, --help         this text

With PAXOS_CLUSTER_KEY set, the nodes authenticate every frame between them with it (see
docs/security.md); without it they warn that cluster traffic is unauthenticated.`;

const BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));

/** The key typed and demo values are written to; node 1's changes to it are printed. */
const INPUT_KEY = "input";
/** Values typed or made up but not yet written, past which stdin is paused (the demo skips a beat). */
const INPUT_QUEUE_MAX = 1000;

export async function clusterCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("cluster", args, {
    nodes: { type: "string" },
    transport: { type: "string" },
    "base-port": { type: "string" },
    "http-base-port": { type: "string" },
    data: { type: "string" },
    demo: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${CLUSTER_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const count = parsePositiveInt(values.nodes, "--nodes", 3);
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

  const dir =
    values.data === undefined ? mkdtempSync(join(tmpdir(), "paxos-cluster-")) : await dataDir(values.data);
  // A whole cluster's first start is one command: if no node has a log yet, every node is new.
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
  }));
  const configText = `${JSON.stringify({ name: "local", nodes, quorum: { kind: "majority" }, transport: transportName }, null, 2)}\n`;
  writeFileSync(configPath, configText);
  const cluster = parseClusterConfig(configText);
  if (!cluster.ok) throw new Error(`generated cluster file is invalid: ${cluster.error}`);
  const httpList = nodes.map((node) => node.http).join(",");
  process.stderr.write(
    `paxos cluster: ${count} nodes on 127.0.0.1:${basePort}..${basePort + count - 1} over ${transportName}; config ${configPath}\n` +
      `paxos cluster: HTTP API ${nodes.map((node) => `node ${node.id} http://${node.http}`).join(", ")}\n` +
      `paxos cluster: try: paxos kv put greeting hello --node ${httpList}\n`,
  );

  const children: ChildProcess[] = nodes.map((node) => {
    const args = [BIN, "node", "--config", configPath, "--id", String(node.id)];
    if (values.data !== undefined) args.push("--data", join(dir, `node-${node.id}`));
    if (isNew) args.push("--new");
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, PAXOS_LOG_LEVEL: process.env.PAXOS_LOG_LEVEL ?? "warn" },
    });
    prefixLines(child.stderr, process.stderr, (line) => `[node ${node.id}] ${line}\n`);
    return child;
  });

  // Values are written to the key "input" through the HTTP API, one at a time, each exactly once;
  // node 1's changes to the key are printed as it applies them.
  const client = new NodeClient(
    nodes.map((node) => node.http),
    { deadlineMs: 20_000 },
  );
  const writer = new SessionWriter(client);
  const watcher = new NodeClient([nodes[0]?.http as string], { deadlineMs: 20_000 });
  const watching = new AbortController();
  let watchReady = false;
  const queue: string[] = [];
  let writing = false;
  const input = createInterface({ input: process.stdin });
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
  input.on("line", (line) => {
    if (line.trim() !== "") submit(line);
  });

  return new Promise((resolve) => {
    let stopping = false;
    let exited = 0;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      if (demo !== null) clearInterval(demo);
      input.close();
      watching.abort();
      process.stderr.write("paxos cluster: stopping\n");
      for (const child of children) child.kill("SIGTERM");
      setTimeout(() => {
        for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
      }, 4000).unref();
    };
    for (const child of children) {
      child.on("exit", (code, signal) => {
        if (!stopping) {
          process.stderr.write(`paxos cluster: a node exited (${signal ?? code}); stopping\n`);
          stop();
        }
        if (++exited === children.length)
          void watch.finally(() => {
            client.close();
            watcher.close();
            resolve(0);
          });
      });
    }
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
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
async function dataDir(path: string): Promise<string> {
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
function holdsNoLog(dir: string): boolean {
  try {
    return !readdirSync(dir).some(isLogFileName);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw new StartError(`cannot read ${dir}: ${(error as NodeJS.ErrnoException).code}`);
  }
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
