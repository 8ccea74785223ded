import { createQuorumSystem, printableLine, Replica, sessionLimitsProblem } from "../core/index.js";
import { createLogger, debugTracer, LOG_MESSAGES, type LogLevel, parseLogLevel } from "../observe/index.js";
import {
  ClusterAddressBook,
  type ClusterConfig,
  clusterEnvelope,
  DigestMachine,
  Driver,
  nextIncarnation,
  parseClusterConfig,
  parseCourseConfig,
  replicaOptionsOf,
  UNAUTHENTICATED_WARNING,
} from "../runtime/index.js";
import { toReplicaState } from "../storage/index.js";
import { TcpTransport, type Transport, UdpTransport } from "../transport/index.js";
import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";
import { parseHttpAddress, runKvNode } from "./kv-node.js";
import {
  clusterKeys,
  fatalHandler,
  handleSignals,
  noticeLogger,
  openStorage,
  pacedWriter,
  parseId,
  parsePositiveInt,
  parseRate,
  pickCodec,
  processPrng,
  RUNTIME_TIMING,
  readConfigFile,
  tcpTls,
  tlsOption,
} from "./process-kit.js";
import { RECEIVE_BUFFER_BYTES } from "./roles.js";

export const NODE_HELP = `Usage: paxos node --config cluster.json --id N [options]

Runs one collapsed Paxos node (proposer, acceptor and learner in one process) of a cluster over UDP
or TCP unicast, and prints each decided value on its own line on stdout. The cluster file names the
nodes, and optionally weights, quorums, the transport and the codec:

  {"nodes": [{"id": 1, "host": "127.0.0.1", "port": 7101},
             {"id": 2, "host": "127.0.0.1", "port": 7102},
             {"id": 3, "host": "127.0.0.1", "port": 7103, "weight": 1}],
   "quorum": {"kind": "majority"}, "transport": "udp", "codec": "binary", "tickMs": 10,
   "batchCommandsMax": 512, "windowSlots": 64, "snapshotLogBytes": 33554432, "logRetainSlots": 128,
   "clientsMax": 100000, "clientRangesMax": 16384}

"quorum" is {"kind": "majority"}, {"kind": "weighted"} or {"kind": "flexible", "phase1Weight": W1,
"phase2Weight": W2}. A node with "acceptor": false proposes and learns but does not vote.
Clients reach the cluster with "paxos client <id> cluster.json".

Identity and authentication (docs/security.md): every frame carries the cluster's id ("clusterId",
default: a hash of the name and the nodes), so two clusters never mix. "auth": {"keyFile": F} (or
PAXOS_CLUSTER_KEY, or --key-file) turns on an HMAC-SHA256 on every frame; "acceptKeyFile" names a
second key accepted while the key is rotated. With "transport": "tcp", "tls": {"caFile": C,
"certFile": "node-{id}.pem", "keyFile": "node-{id}.key", "clientCertFile": ..., "clientKeyFile": ...}
turns on mutual TLS: a peer's certificate must name a member (node-<id>) or a client (client-<id>).

"clientsMax" (distinct client ids the cluster ever serves) and "clientRangesMax" (gaps in one client's
sequence numbers) bound the sessions that make delivery exactly-once. Past them a value is refused,
never applied, and its client told. They are the cluster's: every node must read the same values,
and a node will not start from a snapshot on disk built under other ones.

The node's state machine counts the values applied and keeps a digest of them. Once the values decided
since its last snapshot reach "snapshotLogBytes" (estimated; default 32 MiB, 0: never), the node
snapshots that state and drops its log below it, on disk and in memory; a node that has fallen behind
a peer's snapshot receives the snapshot. Stdout then shows the values decided since the snapshot the
node started from or installed (stderr logs each snapshot with its count and digest; an install
also logs "stdoutLines", the lines printed before it: the values in the gap it leaves are not printed).
A node whose stdout reader falls behind (more than 8 MiB waiting) stops taking in messages until the
output drains: it falls behind and catches up, rather than filling its memory.

The key-value store and lock service: with --http HOST:PORT, or an "http": "HOST:PORT" for this
node in the cluster file (the flag wins), the node runs the replicated key-value store and lock
service instead of the digest machine (nothing is printed on stdout) and serves their HTTP API on
that address (docs/applications.md; "paxos kv" and "paxos lock" are its command line). Give every
node its "http" in the cluster file: a follower forwards reads to the leader's address there. The
"started" log line carries the address ("http"). SIGTERM or SIGINT closes the API, then the node.
The same port serves GET /metrics (Prometheus text) and GET /health (200 when the node is a member
in good standing, else 503 naming why); docs/operations.md lists every metric.
With --http, --drop-rate and --stats-ms are not supported yet.

Options:
  --config FILE   the cluster file (required)
  --http H:P      serve the key-value store and lock service over HTTP on H:P (port 0: any free
                  port); bind 127.0.0.1 unless the address says otherwise
  --id N          this node's id in the file (required)
  --data DIR      keep durable state (promises, votes, ballot round, the decided log) in DIR, a
                  write-ahead log, locked by DIR.lock while the node runs. Without it, state lives
                  in memory only and is lost when the process stops. Damaged state is moved aside
                  (DIR.damaged-<time>) and the node rejoins as a learner.
  --new           this node is a new member of a new cluster: with no durable state (no --data, or
                  an empty DIR) it starts as a voter. Without --new, a node that finds no state
                  takes itself for a member that lost it, and rejoins as a learner. Ignored when
                  DIR holds state. "paxos cluster" passes it on a cluster's first start.
  --rejoin        this node's state was lost (say, a new disk): start empty in DIR and rejoin as a
                  learner, voting again only once the cluster has moved past every slot it might
                  have voted in
  --key-file F    the cluster key (wins over the cluster file's "auth": {"keyFile": F} and over
                  PAXOS_CLUSTER_KEY). With a key every frame carries an HMAC-SHA256 and frames
                  without a valid one are refused; without one the node warns once that cluster
                  traffic is unauthenticated. See docs/security.md.
  --debug         print every message sent and received on stderr, one line each: time, this
                  node, -> (sent) or <- (received), the peer, the kind, then ballot=R.N, slot=S
                  (or a range), counts and bytes=N, the encoded size
  --log-level L   the JSON log's level: silent, fatal, error, warn, info (default), debug or
                  trace; PAXOS_LOG_LEVEL sets it too (the flag wins)
  --quiet         do not print decided values
  --seed N        seed for this process's random choices (default: from the OS)
  --drop-rate P   testing only: drop this share of received datagrams at random
  --stats-ms N    every N ms, log one line {"msg":"stats", ...} on stderr: the driver's and the
                  transport's counters, the input refused by reason ("refusals"), the proposer's
                  mode and ballot, and the state machine's count and digest (NodeStats)
  -h, --help      this text`;

/** Logged once when a rejoining node has rejoined and votes again. */
export const NODE_REJOINED_MESSAGE = "rejoined: voting again";

/**
 * The fields of a `--stats-ms` line (`LOG_MESSAGES.stats`; the tests of docs/security.md read it). A running node's counters, for tests and operators
 * of a node without `--http` (one with it serves these and more on /metrics: docs/operations.md):
 * - `driver`: the driver's `DriverStats` (frames in, decode errors, drops, decisions, ...);
 * - `transport`: the transport's `TransportStats`;
 * - `refusals`: the role's refusals by reason (`Refusals.byReason()`; see docs/security.md), and
 *   `refusalsTotal` their sum; `frameRefusals`: the driver's, for frames refused before they reach
 *   the role (e.g. by an authentication envelope), empty when the driver counts none;
 * - `mode`, `ballot`, `leader`: the proposer's mode ("leader", "follower", ...), its ballot, and the
 *   leader it follows;
 * - `deliveredThrough`, `commands`, `digest`: the learner's last delivered slot and the state
 *   machine's count and digest (two nodes with the same count and digest applied the same values);
 * - `heapUsedMiB`: the process's heap in use.
 */
export interface NodeStats {
  readonly driver: Readonly<Record<string, number>>;
  readonly transport: Readonly<Record<string, number>>;
  readonly refusals: Readonly<Record<string, number>>;
  readonly refusalsTotal: number;
  readonly frameRefusals: Readonly<Record<string, number>>;
  readonly mode: string;
  readonly ballot: { readonly round: number; readonly node: number };
  readonly leader: number;
  readonly deliveredThrough: number;
  readonly commands: number;
  readonly digest: string;
  readonly heapUsedMiB: number;
}

export async function nodeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("node", args, {
    config: { type: "string" },
    id: { type: "string" },
    data: { type: "string" },
    new: { type: "boolean", default: false },
    rejoin: { type: "boolean", default: false },
    "key-file": { type: "string" },
    debug: { type: "boolean", default: false },
    "log-level": { type: "string" },
    quiet: { type: "boolean", default: false },
    seed: { type: "string" },
    "drop-rate": { type: "string" },
    "stats-ms": { type: "string" },
    http: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${NODE_HELP}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.config === undefined) throw new UsageError("missing --config cluster.json");
  const id = parseId(values.id, "node");
  const logLevel = logLevelOf(values["log-level"]);
  const configText = readConfigFile(values.config);
  if (!configText.trimStart().startsWith("{") && parseCourseConfig(configText).ok)
    throw new UsageError(
      `${values.config} is a course config (multicast groups): it is for "paxos acceptor|proposer|learner|client"; "paxos node" takes a cluster JSON file`,
    );
  const parsed = parseClusterConfig(configText);
  const keys = clusterKeys({
    keyFile: values["key-file"],
    auth: parsed.ok ? parsed.value.auth : undefined,
    configPath: values.config,
  });
  if (!parsed.ok) throw new UsageError(`${values.config}: ${parsed.error}`);
  const cluster: ClusterConfig = parsed.value;
  const self = cluster.nodes.find((node) => node.id === id);
  if (self === undefined) throw new UsageError(`${values.config}: no node with id ${id}`);
  const httpText = values.http ?? self.http;
  if (httpText !== undefined) {
    // The replicated key-value store and lock service, over HTTP (src/cli/kv-node.ts).
    for (const flag of ["drop-rate", "stats-ms"] as const)
      if (values[flag] !== undefined) throw new UsageError(`--${flag} is not supported with --http yet`);
    if (values.seed !== undefined && !/^\d+$/.test(values.seed))
      throw new UsageError(`--seed wants a non-negative integer, got "${values.seed}"`);
    if (values.rejoin && values.data === undefined) throw new UsageError("--rejoin needs --data DIR");
    if (values.rejoin && values.new) throw new UsageError("--rejoin and --new contradict each other");
    const logger = createLogger(`node ${id}`, logLevel);
    return runKvNode({
      rejoin: values.rejoin,
      ...(values.debug ? { onTrace: debugTracer(`node ${id}`, peerNames(cluster)) } : {}),
      cluster,
      id,
      http: parseHttpAddress(httpText, values.http !== undefined ? "--http" : `${values.config}: "http"`),
      dataDir: values.data,
      isNew: values.new,
      keys,
      tls: tcpTls(cluster, values.config, { kind: "node", id }),
      seed: values.seed === undefined ? undefined : Number(values.seed),
      logger,
    });
  }
  const quorum = createQuorumSystem(cluster.acceptors, cluster.quorum);
  if (!quorum.ok) throw new UsageError(quorum.error);
  const dropRate = parseRate(values["drop-rate"] ?? process.env.PAXOS_DROP_RATE, "--drop-rate");
  const statsMs = parsePositiveInt(values["stats-ms"], "--stats-ms", 0);
  const codec = pickCodec(cluster.codec);
  const prng = processPrng(values.seed);
  const name = `node ${id}`;
  const logger = createLogger(name, logLevel);
  if (values.rejoin && values.data === undefined) throw new UsageError("--rejoin needs --data DIR");
  if (values.rejoin && values.new) throw new UsageError("--rejoin and --new contradict each other");
  const { storage, state } = await openStorage(values.data, logger, {
    isNew: values.new,
    rejoin: values.rejoin,
    onLostState: "rejoin",
  });
  // Session limits are the cluster's: a snapshot on disk built under others means this data belongs
  // to another configuration. Applying the log under other limits would diverge from the peers.
  if (state.snapshot !== null) {
    const problem = sessionLimitsProblem(state.snapshot.sessions, cluster.sessionLimits);
    if (problem !== null)
      throw new UsageError(
        `${values.data}: the snapshot on disk (slot ${state.snapshot.slot}) does not fit ${values.config}: ${problem}`,
      );
  }
  const transport: Transport =
    cluster.transport === "tcp"
      ? new TcpTransport({
          host: self.host,
          port: self.port,
          ...tlsOption(tcpTls(cluster, values.config, { kind: "node", id })),
        })
      : new UdpTransport({ host: self.host, port: self.port, receiveBufferBytes: RECEIVE_BUFFER_BYTES });
  const replica = new Replica({
    id,
    quorum: quorum.value,
    prng,
    timing: RUNTIME_TIMING,
    // Every node of the cluster proposes: prepares, accepts and heartbeats from other ids are refused.
    ...replicaOptionsOf(cluster),
    restore: toReplicaState(state),
    rejoining: state.rejoining,
  });
  // A slow stdout reader pauses the node's intake rather than filling its memory; `driver` exists
  // by the time anything is printed (the restored log is applied after it is built).
  const write = pacedWriter(process.stdout, () => driver);
  // Lines printed so far: an install from a peer logs it, so a reader of stdout knows which line
  // comes first after the gap the install leaves.
  let stdoutLines = 0;
  const machine = new DigestMachine((command) => {
    if (values.quiet) return;
    write(`${printableLine(command.payload)}\n`);
    stdoutLines++;
  });
  // A rejoining node says once when it votes again (operators and tests wait for it).
  let rejoining = replica.rejoining;
  const envelope = clusterEnvelope(
    cluster,
    { kind: "node", id },
    { keys, incarnation: nextIncarnation(values.data) },
  );
  if (!envelope.authenticated) logger.warn({ clusterId: envelope.clusterId }, UNAUTHENTICATED_WARNING);
  const driver = new Driver({
    name,
    role: replica,
    envelope,
    onNotice: noticeLogger(logger),
    onTurnEnd: () => {
      if (!rejoining || replica.rejoining) return;
      rejoining = false;
      logger.info({ floorSlot: replica.rejoinFloorSlot }, NODE_REJOINED_MESSAGE);
    },
    transport,
    codec,
    addressBook: new ClusterAddressBook(cluster),
    storage,
    tickMs: cluster.tickMs,
    onFatal: fatalHandler(logger),
    prng,
    stateMachine: machine,
    onSnapshot: (snapshot, how) =>
      logger.info(
        {
          slot: snapshot.slot,
          commands: machine.commands,
          digest: machine.digest,
          how,
          ...(how === "installed" ? { stdoutLines } : {}),
        },
        how === "taken" ? LOG_MESSAGES.snapshotTaken : LOG_MESSAGES.snapshotInstalled,
      ),
    ...(values.debug ? { onTrace: debugTracer(name, peerNames(cluster)) } : {}),
    ...(dropRate !== undefined ? { dropRate } : {}),
  });
  // What this node applied before it stopped comes back from its snapshot and log: the log past the
  // snapshot is printed again, so stdout is the whole decided sequence since that snapshot.
  const restored = replica.learner.drainRestored();
  if (restored.snapshot !== null) {
    machine.restore(restored.snapshot.app);
    logger.info(
      { slot: restored.snapshot.slot, commands: machine.commands, digest: machine.digest },
      LOG_MESSAGES.restoredFromSnapshot,
    );
  }
  for (const decision of restored.decisions) machine.apply(decision);
  try {
    await driver.start();
  } catch (error) {
    throw new UsageError(`cannot start ${name} on ${self.host}:${self.port}: ${(error as Error).message}`);
  }
  // Signal handlers first: a test (or an operator) acting on "started" may stop it at once.
  const stopped = handleSignals(driver, logger, () =>
    logger.info(
      {
        deliveredThrough: replica.learner.deliveredThrough,
        commands: machine.commands,
        digest: machine.digest,
        snapshotSlot: replica.learner.currentSnapshot?.slot ?? 0,
        heldSlots: replica.learner.heldSlots,
        snapshotsRefused: replica.learner.snapshotsRefused,
        // Input the node's roles refused, by reason (docs/security.md; the envelope's are logged apart).
        roleRefusals: replica.refusals.byReason(),
        ...(replica.learner.snapshotRefusal !== null
          ? { snapshotRefusal: replica.learner.snapshotRefusal }
          : {}),
        votes: replica.acceptor?.voteCount ?? 0,
        heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      },
      LOG_MESSAGES.stateMachine,
    ),
  );
  if (statsMs > 0) {
    // The refusals the node's roles count (issue 9), and the driver's for frames the roles never see.
    const refusals = replica.refusals;
    const frameRefusals = driver.refusals;
    const stats = (): NodeStats => {
      const byReason = refusals?.byReason() ?? {};
      return {
        driver: { ...driver.stats },
        transport: { ...transport.stats },
        refusals: byReason,
        refusalsTotal: refusals?.total ?? 0,
        frameRefusals: frameRefusals?.byReason() ?? {},
        mode: replica.proposer.mode,
        ballot: replica.proposer.ballot,
        leader: replica.proposer.leader,
        deliveredThrough: replica.learner.deliveredThrough,
        commands: machine.commands,
        digest: machine.digest,
        heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      };
    };
    setInterval(() => logger.info(stats(), LOG_MESSAGES.stats), statsMs).unref();
  }
  logger.info(
    {
      endpoint: transport.localEndpoint,
      transport: cluster.transport,
      quorum: quorum.value.description,
      data: values.data ?? null,
      clusterId: envelope.clusterId,
      authenticated: envelope.authenticated,
      incarnation: envelope.incarnation,
    },
    LOG_MESSAGES.started,
  );
  return stopped;
}

/** `--log-level`, else `PAXOS_LOG_LEVEL`, else "info"; a usage error naming the one that is wrong. */
function logLevelOf(flag: string | undefined): LogLevel {
  const [text, what] =
    flag !== undefined ? [flag, "--log-level"] : [process.env.PAXOS_LOG_LEVEL, "PAXOS_LOG_LEVEL"];
  if (text === undefined) return "info";
  const level = parseLogLevel(text, what);
  if (!level.ok) throw new UsageError(level.error);
  return level.value;
}

/** The members' addresses and names ("127.0.0.1:7102" -> "node 2"), for `--debug` lines. */
function peerNames(cluster: ClusterConfig): Map<string, string> {
  return new Map(cluster.nodes.map((node) => [`${node.host}:${node.port}`, `node ${node.id}`]));
}
