import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client, emptyOutput } from "../core/index.js";
import { createLogger } from "../observe/index.js";
import {
  ClusterAddressBook,
  clusterEnvelope,
  Driver,
  isLogFileName,
  nodeDataDirFileSystem,
  parseClusterConfig,
  prepareDataDirPath,
} from "../runtime/index.js";
import { MemoryStorage } from "../storage/index.js";
import { TcpTransport, UdpTransport } from "../transport/index.js";
import { StartError, UsageError } from "./errors.js";
import {
  clusterKeys,
  fatalHandler,
  lockDataDir,
  noticeLogger,
  parsePositiveInt,
  pickCodec,
  processPrng,
} from "./process-kit.js";
import { busyReporter, RECEIVE_BUFFER_BYTES } from "./roles.js";

export const CLUSTER_HELP = `Usage: paxos cluster [--nodes N] [options]

Starts a local cluster on loopback: one "paxos node" process per node, collapsed replicas with
majority quorums. Type a value and press Enter to have it decided; each decided value is printed
once, as node 1 delivers it. Ctrl-C stops every node cleanly.

Options:
  --nodes N          how many nodes (default 3)
  --transport T      udp (default) or tcp
  --base-port P      node i listens on 127.0.0.1:(P + i - 1) (default 7101)
  --data DIR         keep each node's durable state in DIR/node-<i>; without it, state is in memory.
                     A cluster whose node directories are all missing or empty starts new (its
                     nodes get --new); otherwise each node loads its state, and a node whose
                     directory is missing or empty rejoins as a learner
  --demo             also submit a value every half second, to watch the cluster work
  -h, --help         this text

With PAXOS_CLUSTER_KEY set, the nodes and the client authenticate every frame with it (see
docs/security.md); without it the nodes warn that cluster traffic is unauthenticated.`;

const BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));

export async function clusterCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      nodes: { type: "string" },
      transport: { type: "string" },
      "base-port": { type: "string" },
      data: { type: "string" },
      demo: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
    strict: true,
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
  const nodes = Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    host: "127.0.0.1",
    port: basePort + i,
  }));
  const configText = `${JSON.stringify({ name: "local", nodes, quorum: { kind: "majority" }, transport: transportName }, null, 2)}\n`;
  writeFileSync(configPath, configText);
  const cluster = parseClusterConfig(configText);
  if (!cluster.ok) throw new Error(`generated cluster file is invalid: ${cluster.error}`);
  const logger = createLogger("cluster");
  process.stderr.write(
    `paxos cluster: ${count} nodes on 127.0.0.1:${basePort}..${basePort + count - 1} over ${transportName}; config ${configPath}\n`,
  );

  const children: ChildProcess[] = nodes.map((node) => {
    const args = [BIN, "node", "--config", configPath, "--id", String(node.id)];
    if (values.data !== undefined) args.push("--data", join(dir, `node-${node.id}`));
    if (isNew) args.push("--new");
    if (node.id !== 1) args.push("--quiet");
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PAXOS_LOG_LEVEL: process.env.PAXOS_LOG_LEVEL ?? "warn" },
    });
    prefixLines(child.stdout, process.stdout, (line) => `decided: ${line}\n`);
    prefixLines(child.stderr, process.stderr, (line) => `[node ${node.id}] ${line}\n`);
    return child;
  });

  // An in-process client submits what is typed (and, with --demo, a value every half second).
  const prng = processPrng(undefined);
  const client = new Client({ id: 1_000_000 + (process.pid % 1_000_000), prng });
  const busy = busyReporter("paxos cluster");
  const driver = new Driver({
    name: "cluster client",
    role: client,
    envelope: clusterEnvelope(
      cluster.value,
      { kind: "client", id: client.id },
      { keys: clusterKeys({}), incarnation: Date.now() },
    ),
    onNotice: noticeLogger(logger),
    transport:
      transportName === "tcp"
        ? new TcpTransport({ host: "127.0.0.1", port: 0 })
        : new UdpTransport({ host: "127.0.0.1", port: 0, receiveBufferBytes: RECEIVE_BUFFER_BYTES }),
    codec: pickCodec(cluster.value.codec),
    addressBook: new ClusterAddressBook(cluster.value),
    storage: new MemoryStorage(),
    tickMs: cluster.value.tickMs,
    onFatal: fatalHandler(logger),
    // A value refused by the cluster's session limits is an error, never applied.
    onTurnEnd: (c) => {
      busy(c);
      for (const { seq, reason } of c.drainRefused())
        process.stderr.write(`paxos cluster: seq ${seq} refused by the cluster (${reason}); not applied\n`);
    },
  });
  await driver.start();
  const submit = (payload: string) =>
    driver.run((c) => {
      const result = c.submit(payload);
      if (!result.ok) process.stderr.write(`paxos cluster: not sent: ${result.error}\n`);
      return result.ok ? result.value.output : emptyOutput();
    });
  let demo: NodeJS.Timeout | null = null;
  if (values.demo) {
    let n = 0;
    demo = setInterval(() => submit(`demo-${++n}`), 500);
  }
  if (process.stdin.isTTY) process.stderr.write("type a value and press Enter; Ctrl-C stops the cluster\n");
  const input = createInterface({ input: process.stdin });
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
      process.stderr.write("paxos cluster: stopping\n");
      for (const child of children) child.kill("SIGTERM");
      setTimeout(() => {
        for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
      }, 2000).unref();
      void driver.stop();
    };
    for (const child of children) {
      child.on("exit", (code, signal) => {
        if (!stopping) {
          process.stderr.write(`paxos cluster: a node exited (${signal ?? code}); stopping\n`);
          stop();
        }
        if (++exited === children.length) resolve(0);
      });
    }
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
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
