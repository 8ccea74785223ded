import { isIP } from "node:net";
import type { EnvelopeGuard, NoticeReason, Party } from "../codec/index.js";
import {
  Acceptor,
  Client,
  createQuorumSystem,
  type Decision,
  type Destination,
  Learner,
  type Output,
  Proposer,
  printableLine,
  type QuorumSystem,
  type Role,
} from "../core/index.js";
import { createLogger, debugTracer, LOG_MESSAGES, proposerModeMessage } from "../observe/index.js";
import {
  type AddressBook,
  ClusterAddressBook,
  type ClusterConfig,
  COURSE_GROUPS,
  clusterEnvelope,
  courseEnvelope,
  Driver,
  GroupAddressBook,
  nextIncarnation,
  parseClusterConfig,
  parseCourseConfig,
  type RoleLike,
  UNAUTHENTICATED_WARNING,
} from "../runtime/index.js";
import {
  isMulticastAddress,
  MulticastTransport,
  TcpTransport,
  type Transport,
  UdpTransport,
} from "../transport/index.js";
import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";
import { readLines } from "./lines.js";
import {
  clusterKeys,
  fatalHandler,
  handleSignals,
  NOTICE_MESSAGE,
  noticeExplanation,
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

/**
 * Socket receive buffer asked for (the kernel caps it at net.core.rmem_max). The default (about
 * 200 KiB) holds only a few full 48 KiB batches: a busy process would lose datagrams to overflow.
 */
export const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

export type RoleCommand = "acceptor" | "proposer" | "learner" | "client";

export const ROLE_HELP = `Usage: paxos acceptor|proposer|learner|client <id> <config> [options]

Runs one Paxos role as its own process, over UDP multicast as the classic course harness does. The
config has one line per group, "<group> <ip> <port>", for clients, proposers, acceptors and learners
(e.g. "acceptors 239.0.0.1 7000"); unknown lines get a warning. Acceptors have ids 1..N (N = 3 unless
--acceptors says otherwise) and form majority quorums.

  acceptor   promises and votes
  proposer   leads (one at a time, chosen by heartbeats) and proposes the clients' values
  learner    prints each decided value on its own line, in decision order, and nothing else on stdout
  client     reads values from stdin, one per line, and resends each until it is decided; exits when
             stdin is closed and every value is decided (exit 0; 1 if a value was refused). Blank
             lines are skipped; a line that is not valid UTF-8 is refused (said, exit 1). When
             values wait 3 s with no decision it says so on stderr; on --timeout-ms or Ctrl-C it
             exits 1 saying how many values were not decided (SIGTERM says so too, and exits 0). The config may also be a cluster JSON
             file (see "paxos node --help"): the client then talks to that cluster's nodes.

Options:
  --acceptors N     how many acceptors the config's group has (default 3)
  --data DIR        acceptor, proposer: keep durable state in DIR (a write-ahead log, locked by DIR.lock
                    while the process runs). Without it, state lives in memory only.
  --new             acceptor: a new member of a new deployment. An acceptor that finds no state (no
                    --data, or an empty DIR) and was not told --new may have voted before and forgotten
                    it: it does not vote at all (it cannot tell when it would be safe to again). The
                    course script acceptor.sh passes --new on an acceptor's first start in a run.
  --interface IP    the interface to join and send multicast on (default 127.0.0.1: this machine only)
  --codec NAME      binary (default) or json; every process of a deployment must use the same
  --key-file F      the cluster key (else a cluster JSON's "auth": {"keyFile": F}, else
                    PAXOS_CLUSTER_KEY). Every process of a deployment must use the same; without one
                    a process warns once that its traffic is unauthenticated (the course harness runs
                    so). A client without the key that a cluster requires gets an error and exits 1.
  --timeout-ms MS   client: give up (exit 1) when values have waited this long with none decided
                    (default: keep trying)
  --bind IP         client of a cluster JSON file: the address to send from and answer to (default
                    127.0.0.1 when every node is on loopback, else 0.0.0.0)
  --tick-ms MS      milliseconds per protocol tick (default 10)
  --debug           print every message sent and received on stderr
  --drop-rate P     testing only: drop this share of received datagrams at random (or set
                    PAXOS_DROP_RATE, which is how the harness runner injects loss)
  --seed N          seed for this process's random choices (default: from the OS)
  -h, --help        this text

Logs go to stderr as JSON lines (PAXOS_LOG_LEVEL=debug|info|warn|error). Stop with SIGTERM or Ctrl-C.`;

export async function roleCommand(kind: RoleCommand, args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(kind, args, {
    acceptors: { type: "string" },
    data: { type: "string" },
    new: { type: "boolean", default: false },
    interface: { type: "string" },
    codec: { type: "string" },
    "key-file": { type: "string" },
    "tick-ms": { type: "string" },
    debug: { type: "boolean", default: false },
    "drop-rate": { type: "string" },
    "timeout-ms": { type: "string" },
    bind: { type: "string" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) {
    process.stdout.write(`${ROLE_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 2)
    throw new UsageError(`expected <id> <config>, got ${positionals.length} argument(s)`);
  const id = parseId(positionals[0], kind);
  const configPath = positionals[1] as string;
  const text = readConfigFile(configPath);
  const acceptorCount = parsePositiveInt(values.acceptors, "--acceptors", 3);
  const tickMs = parsePositiveInt(values["tick-ms"], "--tick-ms", 10);
  // The harness runner drops datagrams through the environment: the course scripts take no flags.
  const dropRate = parseRate(values["drop-rate"] ?? process.env.PAXOS_DROP_RATE, "--drop-rate");
  const codec = pickCodec(values.codec);
  const prng = processPrng(values.seed);
  const name = `${kind} ${id}`;
  const logger = createLogger(name);

  let transport: Transport;
  let addressBook: AddressBook;
  let clientTarget: Destination = { role: "proposer" };
  let quorum: QuorumSystem;
  let makeEnvelope: (self: Party, keys: ReturnType<typeof clusterKeys>, incarnation: number) => EnvelopeGuard;
  let keys = clusterKeys({ keyFile: values["key-file"] });
  if (text.trimStart().startsWith("{")) {
    if (kind !== "client")
      throw new UsageError(`${configPath}: a cluster JSON file is for "paxos node" and "paxos client"`);
    const cluster = parseClusterConfig(text);
    if (!cluster.ok) throw new UsageError(`${configPath}: ${cluster.error}`);
    const q = createQuorumSystem(cluster.value.acceptors, cluster.value.quorum);
    if (!q.ok) throw new UsageError(q.error);
    quorum = q.value;
    const bindHost = clientBindHost(cluster.value, values.bind);
    transport =
      cluster.value.transport === "tcp"
        ? new TcpTransport({
            host: bindHost,
            port: 0,
            ...tlsOption(tcpTls(cluster.value, configPath, { kind: "client", id })),
          })
        : // Answers come back to the source address.
          new UdpTransport({ host: bindHost, port: 0, receiveBufferBytes: RECEIVE_BUFFER_BYTES });
    addressBook = new ClusterAddressBook(cluster.value);
    clientTarget = { role: "proposer" };
    keys = clusterKeys({ keyFile: values["key-file"], auth: cluster.value.auth, configPath });
    makeEnvelope = (self, k, incarnation) => clusterEnvelope(cluster.value, self, { keys: k, incarnation });
  } else {
    const course = parseCourseConfig(text);
    if (!course.ok) throw new UsageError(`${configPath}: ${course.error}`);
    for (const warning of course.value.warnings)
      process.stderr.write(`paxos ${kind}: ${configPath}: ${warning}\n`);
    // The role commands talk over UDP multicast: say so at once, naming the group, not at bind time.
    for (const [group, role] of Object.entries(COURSE_GROUPS)) {
      const { host } = course.value.groups[role];
      if (!isMulticastAddress(host))
        throw new UsageError(
          `${configPath}: ${group} ${host} is not a multicast address (224.0.0.0 to 239.255.255.255); ` +
            'the role commands talk over UDP multicast (for unicast, use a cluster JSON file and "paxos node")',
        );
    }
    const interfaceAddress = values.interface ?? "127.0.0.1";
    if (isIP(interfaceAddress) !== 4)
      throw new UsageError(
        `--interface wants the IPv4 address of this machine's interface (like 127.0.0.1), got "${interfaceAddress}"`,
      );
    const ids = Array.from({ length: acceptorCount }, (_, i) => ({ id: i + 1 }));
    const q = createQuorumSystem(ids, { kind: "majority" });
    if (!q.ok) throw new UsageError(q.error);
    quorum = q.value;
    const role: Role = kind;
    transport = new MulticastTransport({
      groups: [course.value.groups[role]],
      interfaceAddress,
      receiveBufferBytes: RECEIVE_BUFFER_BYTES,
    });
    addressBook = new GroupAddressBook(course.value.groups);
    makeEnvelope = (self, k, incarnation) => courseEnvelope(course.value, self, { keys: k, incarnation });
  }
  if (values.new && kind !== "acceptor") throw new UsageError("--new is for acceptors");
  if (values["timeout-ms"] !== undefined && kind !== "client")
    throw new UsageError("--timeout-ms is for clients");
  if (values.bind !== undefined && kind !== "client") throw new UsageError("--bind is for clients");
  if (values.bind !== undefined && !text.trimStart().startsWith("{"))
    throw new UsageError("--bind is for a client of a cluster JSON file (a course client uses --interface)");
  const timeoutMs =
    values["timeout-ms"] === undefined ? null : parsePositiveInt(values["timeout-ms"], "--timeout-ms", 1);
  if (kind === "acceptor" && !quorum.isAcceptor(id))
    throw new UsageError(`acceptor id ${id} is not one of 1..${acceptorCount}`);
  // Only an acceptor's votes and promises need the "new or existing" decision; a proposer keeps its
  // ballot round if it has a directory, and learners and clients keep nothing.
  const { storage, state } = await openStorage(
    kind === "acceptor" || kind === "proposer" ? values.data : undefined,
    logger,
    { isNew: kind === "acceptor" ? values.new : true, onLostState: "refuse" },
  );

  const write = pacedWriter(process.stdout, () => driver);
  let role: RoleLike;
  let onDecision: ((decision: Decision) => void) | undefined;
  switch (kind) {
    case "acceptor":
      // Without its state (and not told it is new) it stays silent: a separate acceptor has no
      // learner to tell it when the deployment has moved past every slot it might have voted in.
      role = new Acceptor({
        id,
        restore: { promised: state.promised, accepted: state.accepted },
        rejoining: state.rejoining,
        // The disruption guard; the course layout does not name its proposers, so any id proposes.
        electionTimeoutTicks: RUNTIME_TIMING.electionTimeoutTicks,
      });
      break;
    case "proposer":
      role = new Proposer({ id, quorum, prng, timing: RUNTIME_TIMING, restore: { round: state.round } });
      break;
    case "learner":
      role = new Learner({ id, quorum });
      onDecision = (decision) => {
        if (decision.commands.length === 0) return;
        // In decision order; a slow reader pauses the intake rather than filling memory.
        // One line a value, escaped where it must be (see `printableLine`).
        write(`${decision.commands.map((c) => printableLine(c.payload)).join("\n")}\n`);
      };
      break;
    case "client":
      // Sequence numbers start from the clock (in thousandths of a millisecond), so a later run with
      // the same client id is not taken for a resend of an earlier run's values.
      role = new Client({ id, prng, to: clientTarget, firstSeq: Date.now() * 1000 });
      break;
  }
  // A proposer logs each change of its mode (follower, candidate, leader) at info level.
  let lastMode = "";
  const onTurnEnd =
    role instanceof Proposer
      ? (proposer: RoleLike) => {
          const { mode, ballot } = proposer as Proposer;
          if (mode === lastMode) return;
          lastMode = mode;
          logger.info({ mode, ballot }, proposerModeMessage(mode));
        }
      : undefined;
  // Only a process with a data directory can keep its incarnation above a clock that stepped back.
  const envelope = makeEnvelope(
    { kind, id },
    keys,
    nextIncarnation(kind === "acceptor" || kind === "proposer" ? values.data : undefined),
  );
  if (!envelope.authenticated) logger.warn({ clusterId: envelope.clusterId }, UNAUTHENTICATED_WARNING);
  const logNotice = noticeLogger(logger);
  let noticeExit: ((reason: NoticeReason) => void) | null = null;
  const driver = new Driver({
    name,
    role,
    envelope,
    onNotice: (reason, sender) => {
      // A client without a key that the cluster requires: nothing it sends will be decided. (The
      // notice is unauthenticated, but so is everything a keyless client hears.) A client with a key
      // only logs it: a forged notice must not stop it.
      if (kind === "client" && !envelope.authenticated && reason === "unauthenticated" && noticeExit !== null)
        noticeExit(reason);
      else logNotice(reason, sender);
    },
    ...(onTurnEnd ? { onTurnEnd } : {}),
    transport,
    codec,
    addressBook,
    storage,
    tickMs,
    onFatal: fatalHandler(logger),
    prng,
    ...(onDecision ? { onDecision } : {}),
    // The roles' peers are multicast groups and ports, not named members: lines show addresses.
    ...(values.debug ? { onTrace: debugTracer(name, new Map()) } : {}),
    ...(dropRate !== undefined ? { dropRate } : {}),
  });
  try {
    await driver.start();
  } catch (error) {
    throw new UsageError(`cannot start ${name}: ${(error as Error).message}`);
  }
  // Signal handlers first: a test (or an operator) acting on "started" may stop it at once. A client
  // handles its own: an interrupted client says what it leaves undecided.
  const interrupted = kind === "client" ? clientInterrupt() : null;
  const stopped = interrupted === null ? handleSignals(driver, logger) : new Promise<number>(() => {});
  logger.info(
    { transport: transport.localEndpoint, codec: codec.name, data: values.data ?? null },
    LOG_MESSAGES.started,
  );
  if (kind === "client") {
    const refusedByCluster = new Promise<number>((resolve) => {
      noticeExit = (reason) => {
        noticeExit = null;
        logger.error({ reason }, NOTICE_MESSAGE);
        process.stderr.write(`paxos client: the cluster refuses this client: ${noticeExplanation(reason)}\n`);
        void driver.stop().then(() => resolve(1));
      };
    });
    return Promise.race([
      refusedByCluster,
      feedClient(driver as unknown as Driver<Client>, logger, {
        timeoutMs,
        interrupted: interrupted as Promise<string>,
      }),
    ]);
  }
  return stopped;
}

/** How long values may wait with no answer from any node before the client says so: 3 s. */
export const CLIENT_SILENCE_WARNING_MS = 3000;

/** Resolves with the signal's name on the first SIGINT or SIGTERM; a second one exits at once. */
function clientInterrupt(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => {
      process.once(signal, () => process.exit(130));
      resolve(signal);
    };
    process.once("SIGINT", () => on("SIGINT"));
    process.once("SIGTERM", () => on("SIGTERM"));
  });
}

/**
 * The address a cluster client binds: `--bind`, or else 127.0.0.1 when every node is on this
 * machine's loopback (nothing else stays open to the network), and 0.0.0.0 when some node is on
 * another host (its answers come back to the address the client sent from).
 */
export function clientBindHost(cluster: ClusterConfig, bind: string | undefined): string {
  if (bind !== undefined) {
    if (isIP(bind) === 0) throw new UsageError(`--bind wants an IP address of this machine, got "${bind}"`);
    return bind;
  }
  return cluster.nodes.every((node) => isLoopback(node.host)) ? "127.0.0.1" : "0.0.0.0";
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}

/**
 * Submits stdin's lines (blank lines skipped, lines that are not UTF-8 refused: see `readLines`);
 * resolves once stdin is closed and every value is acked or refused: 0 if all were acked, 1 if any
 * line was not sent or was refused by the cluster (each said on stderr). Says on stderr when values
 * have waited `CLIENT_SILENCE_WARNING_MS` with no answer; gives up (exit 1, saying how many values
 * were not decided) after `timeoutMs` without a decision, or when interrupted.
 */
function feedClient(
  driver: Driver<Client>,
  logger: ReturnType<typeof createLogger>,
  options: { timeoutMs: number | null; interrupted: Promise<string> },
): Promise<number> {
  return new Promise((resolve) => {
    let closed = false;
    let submitted = 0;
    let pendingLines = 0;
    let refused = 0;
    let finished = false;
    // Lines read in one event-loop turn go out together, in as few requests as fit.
    let batch: string[] = [];
    const flush = () => {
      const payloads = batch;
      batch = [];
      pendingLines += payloads.length; // counted now: the driver takes them on its next turn
      driver.run((client): Output => {
        pendingLines -= payloads.length;
        const result = client.submitAll(payloads);
        for (const { problem } of result.refused) {
          refused++;
          process.stderr.write(`paxos client: line not sent: ${problem}\n`);
        }
        submitted += payloads.length - result.refused.length;
        return result.output;
      });
    };
    const lines = readLines(process.stdin, {
      onLine: (line) => {
        if (batch.length === 0) setImmediate(flush);
        batch.push(line);
      },
      onRefused: (problem) => {
        refused++;
        process.stderr.write(`paxos client: ${problem}\n`);
      },
      onEnd: () => {
        closed = true;
      },
    });
    const undecided = () => batch.length + pendingLines + driver.role.unackedCount;
    const finish = (code: number, why: string | null) => {
      if (finished) return;
      finished = true;
      clearInterval(check);
      lines.close();
      const left = undecided();
      // A SIGTERM with nothing left to decide is an ordinary stop: nothing to say.
      if (why !== null && (code !== 0 || left > 0)) {
        process.stderr.write(`paxos client: ${why}: ${left} value${left === 1 ? "" : "s"} not decided\n`);
      }
      logger.info({ submitted, refused, stats: driver.stats }, why ?? "every value decided");
      void driver.stop().then(() => resolve(code));
    };
    // Ctrl-C is a user giving up: exit 1. SIGTERM is how harnesses (compat/usi) stop a client on
    // purpose, and their checks read the learners: it says the same, and exits 0 as it always has.
    void options.interrupted.then((signal) => finish(signal === "SIGINT" ? 1 : 0, `interrupted (${signal})`));
    const busy = busyReporter("paxos client");
    // Progress: the last time a value was decided (or refused), or values began to wait.
    let progress = driver.role.acked + driver.role.refused;
    let sinceMs = performance.now();
    let warned = false;
    const check = setInterval(() => {
      busy(driver.role);
      // A refused value is an error for its seq: never applied (the cluster's session limits).
      for (const { seq, reason } of driver.role.drainRefused()) {
        refused++;
        process.stderr.write(`paxos client: seq ${seq} refused by the cluster (${reason}); not applied\n`);
      }
      const nowMs = performance.now();
      const done = driver.role.acked + driver.role.refused;
      if (done !== progress || undecided() === 0) {
        progress = done;
        sinceMs = nowMs;
        warned = false;
      }
      const waitedMs = nowMs - sinceMs;
      if (!warned && waitedMs >= CLIENT_SILENCE_WARNING_MS) {
        warned = true;
        const heard = driver.stats.framesIn === 0 ? "no node has answered" : "nothing was decided";
        process.stderr.write(
          `paxos client: ${heard} in ${(waitedMs / 1000).toFixed(0)} s; ${undecided()} values waiting (is the cluster running? --timeout-ms gives up)\n`,
        );
      }
      if (options.timeoutMs !== null && waitedMs >= options.timeoutMs) {
        finish(1, `timed out: nothing decided in ${options.timeoutMs} ms`);
        return;
      }
      if (
        closed &&
        batch.length === 0 &&
        pendingLines === 0 &&
        driver.role.unackedCount === 0 &&
        driver.role.acked + driver.role.refused >= submitted
      ) {
        finish(refused > 0 ? 1 : 0, null);
      }
    }, 20);
  });
}

/**
 * Says on stderr, at most once a second, that the leader could not take some values for now (its
 * pending queue, or this client's share of it, is full: `BusyReason`). Those values are not lost:
 * the client sends them again with backoff. Call it often with the client; it drains the counts.
 * `write` and `nowMs` are for tests (stderr and the monotonic clock by default).
 */
export function busyReporter(
  name: string,
  write: (text: string) => void = (text) => process.stderr.write(text),
  nowMs: () => number = () => performance.now(),
): (client: Client) => void {
  const counts = new Map<string, number>();
  let lastReportMs: number | null = null;
  return (client) => {
    for (const { reason, count } of client.drainBusy()) counts.set(reason, (counts.get(reason) ?? 0) + count);
    if (counts.size === 0 || (lastReportMs !== null && nowMs() - lastReportMs < 1000)) return;
    lastReportMs = nowMs();
    const said = [...counts].map(([reason, count]) => `${count} (${reason})`).join(", ");
    counts.clear();
    write(`${name}: the cluster is busy: values not taken for now: ${said}; sending them again\n`);
  };
}
