import { randomInt } from "node:crypto";
import { codecByName } from "../codec/index.js";
import {
  type Ballot,
  type Command,
  createQuorumSystem,
  DEFAULT_LIMITS,
  type Decision,
  emptyOutput,
  type Message,
  mergeOutput,
  type Output,
  Prng,
  type ReadOutcome,
  Replica,
  type Snapshot,
  sessionLimitsProblem,
} from "../core/index.js";
import { type Logger, NodeMetrics, type NodeMetricsSample } from "../observe/index.js";
import {
  ClusterAddressBook,
  type ClusterConfig,
  type ClusterKeys,
  clusterEnvelope,
  Driver,
  lockDataDirOrError,
  NO_KEYS,
  nextIncarnation,
  openDataDir,
  prepareDataDirPath,
  RUNTIME_TIMING,
  replicaOptionsOf,
  UNAUTHENTICATED_WARNING,
} from "../runtime/index.js";
import { type Storage, toReplicaState, WalStorage } from "../storage/index.js";
import {
  type Endpoint,
  type TcpTlsOptions,
  TcpTransport,
  type Transport,
  UdpTransport,
} from "../transport/index.js";
import {
  type Application,
  type NodeEvents,
  type NodeStatus,
  PaxosError,
  type PaxosNodeApi,
  type ProposeOptions,
} from "./api.js";
import {
  DEFAULT_NODE_LIMITS,
  DEFAULT_SESSION_LIMITS,
  type NodeLimits,
  type SessionLimits,
  utf8Bytes,
} from "./limits.js";
import {
  encodeEnvelope,
  type SessionEnvelope,
  SessionMachine,
  type SessionOutcome,
} from "./session-machine.js";

/** What `startNode` needs. */
export interface NodeOptions<C, R, A extends Application<C, R>> {
  /** The cluster (`parseClusterConfig`'s value): every node runs with the same one. */
  readonly cluster: ClusterConfig;
  /** This node's id in it. */
  readonly id: number;
  /** The application every node of the cluster runs (deterministic; see `Application`). */
  readonly app: A;
  /**
   * Where durable state lives (a write-ahead log; locked while the node runs). Absent: memory only,
   * lost when the node stops (then a restarted node must rejoin: start it with a directory).
   */
  readonly dataDir?: string;
  /**
   * A new member of a new cluster (default true): with no state on disk it starts as a voter.
   * False: a node that finds no state takes itself for one that lost it and rejoins as a learner.
   */
  readonly isNew?: boolean;
  /** The cluster key (default: none; the node logs that traffic is unauthenticated). */
  readonly keys?: ClusterKeys;
  /** Mutual TLS for `"transport": "tcp"`. */
  readonly tls?: TcpTlsOptions;
  /** Where the node logs (pino). Default: silent. */
  readonly logger?: Logger;
  /** This node's bounds and timeouts (defaults: `DEFAULT_NODE_LIMITS`). */
  readonly limits?: Partial<NodeLimits>;
  /**
   * The session layer's bounds (defaults: `DEFAULT_SESSION_LIMITS`). They decide outcomes: every
   * node of a cluster must run with the same ones.
   */
  readonly sessionLimits?: Partial<SessionLimits>;
  /** Seed of the node's random choices (election jitter); default from the OS. */
  readonly seed?: number;
  /**
   * The operator declares this node's state lost (a new disk): it starts empty in `dataDir` and
   * rejoins as a learner (docs/durability.md, "Rejoin").
   */
  readonly rejoin?: boolean;
  /**
   * The node stopped on a fatal error (a broken invariant, a failed write): it stops itself; a
   * process embedding it should not serve on. Default: logged.
   */
  readonly onFatal?: (error: Error) => void;
  /** A snapshot was taken here or installed from a peer (for logs). */
  readonly onSnapshot?: (snapshot: Snapshot, how: "taken" | "installed") => void;
  /** Every message sent and received (for `--debug`), with its encoded size. */
  readonly onTrace?: (direction: "in" | "out", message: Message, peer: string, bytes: number) => void;
  /**
   * Also put prom-client's process metrics (CPU, memory, event-loop lag) in the node's registry
   * (`PaxosNode.metrics`). Default false: give it to one node per process (`paxos node --http` does).
   */
  readonly processMetrics?: boolean;
  /**
   * Drops frames to or from a peer when it answers true (the dashboard's "cut off" and loss
   * controls; see `DriverOptions.dropFrame`). Default: none dropped.
   */
  readonly dropFrame?: (direction: "in" | "out", peer: Endpoint) => boolean;
}

/**
 * What a node needs from its surroundings besides the replica: real timers and the wall clock in a
 * process (`startNode`), virtual ones in the simulator, which runs this same class over its own
 * driver, network and disks.
 */
export interface NodeHost {
  /** Runs `call` on the replica in its driver's next turn, carrying its output. */
  run(call: (replica: Replica) => Output): void;
  /** Calls `fn` after `ms` milliseconds; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
  /** The wall clock in milliseconds (stamped into commands: the log's time). */
  nowMs(): number;
  /** Every command this node submits, as it submits it (the simulator's checkers watch them). */
  onSubmit?(command: Command): void;
}

/** What a `PaxosNode` is built from (`startNode` builds it; so does the simulator). */
export interface NodeParts<A> {
  readonly id: number;
  readonly app: A;
  readonly replica: Replica;
  /** The core client this incarnation proposes as: a new one every start (see `startNode`). */
  readonly clientId: number;
  readonly host: NodeHost;
  readonly limits?: Partial<NodeLimits>;
  readonly sessionLimits?: Partial<SessionLimits>;
  readonly logger?: Logger;
  /** Closes the node's driver (transport, storage); absent: nothing to close. */
  readonly close?: () => Promise<void>;
  /** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
  readonly bugs?: NodeBugs;
  /** The node's metrics (`startNode` builds them): commit latency, batch sizes and leader changes are observed here. */
  readonly metrics?: NodeMetrics;
}

/** Deliberately broken variants of the node (see `NodeParts.bugs`). */
export interface NodeBugs {
  /** A read is answered at once from this node's own state, leader or not, without confirmation. */
  readonly readLocally?: boolean;
  /** The session machine applies a retried command again instead of returning its kept result. */
  readonly applyRetries?: boolean;
}

interface Waiter {
  /** When it was proposed (`performance.now()`; 0 without metrics). */
  readonly startedMs: number;
  readonly resolve: (outcome: SessionOutcome<unknown>) => void;
  readonly reject: (error: PaxosError) => void;
  readonly cancel: () => void;
}

interface PendingRead {
  readonly run: () => void;
  readonly reject: (error: PaxosError) => void;
  readonly cancel: () => void;
  /** Set once the leader confirmed it: the slot to have applied through. */
  index: number | null;
}

/** A silent logger, for a node embedded without one. */
const SILENT: Logger = new Proxy({} as Logger, {
  get: (_target, property) => (property === "child" ? () => SILENT : () => {}),
});

/**
 * Starts one node of a replicated state machine in this process: a collapsed Paxos replica
 * (proposer, acceptor and learner) over the cluster's transport, with durable state in `dataDir`,
 * applying decided commands to `app` through a session machine (exactly-once results). Resolves once
 * the node listens.
 *
 * @example
 * const node = await startNode({ cluster, id: 1, dataDir: "/var/lib/app/paxos-1", app: new KvLockApp() });
 * await node.propose({ op: "put", key: "a", value: "1" });
 * const value = await node.read((kv) => kv.get("a")?.value);
 * await node.stop();
 */
export async function startNode<C, R, A extends Application<C, R>>(
  options: NodeOptions<C, R, A>,
): Promise<PaxosNode<C, R, A>> {
  const { cluster, id } = options;
  const logger = options.logger ?? SILENT;
  const self = cluster.nodes.find((node) => node.id === id);
  if (self === undefined) throw new PaxosError("bad-request", `the cluster has no node ${id}`);
  const quorum = createQuorumSystem(cluster.acceptors, cluster.quorum);
  if (!quorum.ok) throw new PaxosError("bad-request", quorum.error);
  const codec = codecByName(cluster.codec);
  if (!codec.ok) throw new PaxosError("bad-request", codec.error);
  const dataDir = await lockedDataDir(options.dataDir);
  // Read at each scrape only: by then the node and its driver exist.
  let driver: Driver<Replica> | null = null;
  let node: PaxosNode<C, R, A> | null = null;
  let wal: WalStorage | null = null;
  const metrics = new NodeMetrics({
    nodeId: id,
    processMetrics: options.processMetrics ?? false,
    sample: () => metricsSample(driver as Driver<Replica>, node as PaxosNode<C, R, A>, storage, wal),
  });
  const opened = await openDataDir({
    dir: dataDir,
    isNew: options.isNew ?? true,
    ...(options.rejoin !== undefined ? { rejoin: options.rejoin } : {}),
    onLostState: "rejoin",
    createLog: (logDir) => {
      wal = new WalStorage({ dir: logDir, onCommit: (durationMs) => metrics.walSynced(durationMs) });
      return wal;
    },
    nowMs: Date.now(),
    onEvent: ({ level, message, fields }) => logger[level](fields, message),
  });
  if (!opened.ok) throw new PaxosError("bad-request", opened.error.message);
  const { storage, state } = opened.value;
  if (state.snapshot !== null) {
    const problem = sessionLimitsProblem(state.snapshot.sessions, cluster.sessionLimits);
    if (problem !== null)
      throw new PaxosError("bad-request", `the snapshot on disk does not fit the cluster: ${problem}`);
  }
  const incarnation = nextIncarnation(dataDir);
  const limits = { ...DEFAULT_NODE_LIMITS, ...options.limits };
  const clusterOptions = replicaOptionsOf(cluster);
  const replica = new Replica({
    id,
    quorum: quorum.value,
    prng: new Prng(options.seed ?? randomInt(2 ** 31)),
    timing: RUNTIME_TIMING,
    ...clusterOptions,
    limits: { ...clusterOptions.limits, readsPendingMax: limits.readsPendingMax },
    restore: toReplicaState(state),
    rejoining: state.rejoining,
  });
  const transport: Transport =
    cluster.transport === "tcp"
      ? new TcpTransport({
          host: self.host,
          port: self.port,
          ...(options.tls !== undefined ? { tls: options.tls } : {}),
        })
      : new UdpTransport({ host: self.host, port: self.port, receiveBufferBytes: 8 * 1024 * 1024 });
  const envelope = clusterEnvelope(
    cluster,
    { kind: "node", id },
    { keys: options.keys ?? NO_KEYS, incarnation },
  );
  if (!envelope.authenticated) logger.warn({ clusterId: envelope.clusterId }, UNAUTHENTICATED_WARNING);
  const paxosNode = new PaxosNode<C, R, A>({
    id,
    app: options.app,
    replica,
    // A new core client every start: the cluster's session table remembers each client's delivered
    // seqs, so a restarted node numbering from 1 again must be another client. Incarnations are
    // milliseconds (2^41 now), times 1,024, plus the node's id: unique unless two nodes whose ids
    // agree modulo 1,024 start in the same millisecond.
    clientId: incarnation * 1024 + (id % 1024) + 1,
    host: {
      run: (call) => driver?.run(call),
      after: (ms, fn) => {
        const timer = setTimeout(fn, ms);
        return () => clearTimeout(timer);
      },
      nowMs: () => Date.now(),
    },
    limits,
    ...(options.sessionLimits !== undefined ? { sessionLimits: options.sessionLimits } : {}),
    logger,
    metrics,
    close: async () => {
      await driver?.stop();
    },
  });
  node = paxosNode;
  paxosNode.restore(replica);
  driver = new Driver<Replica>({
    name: `node ${id}`,
    role: replica,
    envelope,
    transport,
    codec: codec.value,
    addressBook: new ClusterAddressBook(cluster),
    storage,
    tickMs: cluster.tickMs,
    stateMachine: paxosNode.machine,
    onDecision: (decision) => paxosNode.decided(decision),
    onTurnEnd: () => paxosNode.turnEnded(),
    onFatal: (error) => {
      logger.fatal({ error: error.message }, "node stopped on a fatal error");
      void paxosNode.stop();
      options.onFatal?.(error);
    },
    ...(options.onSnapshot !== undefined ? { onSnapshot: options.onSnapshot } : {}),
    ...(options.onTrace !== undefined ? { onTrace: options.onTrace } : {}),
    ...(options.dropFrame !== undefined ? { dropFrame: options.dropFrame } : {}),
  });
  await driver.start();
  logger.info({ endpoint: transport.localEndpoint, data: dataDir ?? null }, "node started");
  return paxosNode;
}

/** What a node's metrics read at a scrape: the counters its driver, replica, log and API keep. */
function metricsSample<C, R, A extends Application<C, R>>(
  driver: Driver<Replica>,
  node: PaxosNode<C, R, A>,
  storage: Storage,
  wal: WalStorage | null,
): NodeMetricsSample {
  const replica = driver.role;
  const proposer = replica.proposer;
  const learner = replica.learner;
  // The write-ahead log's counters (a memory-only node's storage counts its own).
  const stats = storage.stats;
  // Copies: a scrape reads the sample across awaits, while the driver counts on.
  return {
    driver: { ...driver.stats },
    messagesIn: { ...driver.messageCounts.in },
    messagesOut: { ...driver.messageCounts.out },
    frameRefusals: driver.refusals.byReason(),
    roleRefusals: replica.refusals.byReason(),
    proposer: {
      mode: proposer.mode,
      ballot: proposer.ballot,
      leader: proposer.leader,
      electionsStarted: proposer.electionsStarted,
      prepareResends: proposer.prepareResends,
      acceptResends: proposer.acceptResends,
      checkQuorumStepDowns: proposer.checkQuorumStepDowns,
      droppedCommands: proposer.droppedCommands,
    },
    promised: replica.acceptor?.promised ?? null,
    appliedThroughSlot: node.machine.appliedThrough,
    knownDecidedThroughSlot: learner.knownDecidedThrough,
    snapshotsRefused: learner.snapshotsRefused,
    rejoining: replica.rejoining,
    proposals: node.proposals,
    commandsDecided: node.commandsDecided,
    pendingProposals: node.pendingProposals,
    pendingReads: node.pendingReads,
    sessionsOpen: node.machine.sessionCount,
    storage: {
      syncs: stats.syncs,
      bytes: stats.bytes,
      diskBytes: stats.diskBytes,
      segments: stats.segments,
      compactions: stats.compactions,
    },
    storageFailed: (wal?.failed ?? null) !== null,
    walSyncRunningMs: wal?.commitRunningMs ?? 0,
  };
}

/** Locks and prepares a data directory (see `lockDataDirOrError`). */
async function lockedDataDir(dir: string | undefined): Promise<string | undefined> {
  if (dir === undefined) return undefined;
  const prepared = await prepareDataDirPath(dir);
  if (!prepared.ok) throw new PaxosError("bad-request", prepared.error.message);
  const locked = lockDataDirOrError(prepared.value);
  if (!locked.ok) throw new PaxosError("bad-request", locked.error);
  return prepared.value;
}

/**
 * A node of a replicated state machine: the API over a replica and the session machine its driver
 * applies decisions to (see `startNode`, which builds one over real I/O; the simulator builds one
 * over its own). Whoever builds it wires its driver to `machine`, `decided` and `turnEnded`.
 */
export class PaxosNode<C, R, A extends Application<C, R>> implements PaxosNodeApi<C, R, A> {
  readonly id: number;
  readonly app: A;
  /** The state machine the driver applies decisions to (the application behind sessions). */
  readonly machine: SessionMachine<C, R>;
  private readonly replica: Replica;
  private readonly host: NodeHost;
  private readonly limits: NodeLimits;
  private readonly logger: Logger;
  private readonly clientId: number;
  private readonly bugs: NodeBugs;
  private nextSeq = 0;
  /** Commands proposed since the last submit to the replica (see `enqueue`). */
  private readonly outgoing: Command[] = [];
  private readonly waiters = new Map<number, Waiter>();
  private nextReadId = 0;
  private readonly reads = new Map<number, PendingRead>();
  private readonly listeners = {
    leader: new Set<NodeEvents["leader"]>(),
    applied: new Set<NodeEvents["applied"]>(),
  };
  private knownLeader: number | null = null;
  private stopped = false;
  /** When this node last put its time in the log (a stamped command or a clock entry). */
  private lastStampMs = Number.NEGATIVE_INFINITY;
  /** Stops the clock entries' timer (see `scheduleClock`). */
  private cancelClock: () => void = () => {};
  /** Calls (proposals, reads) that ended, resolved or rejected: a driver's turn may settle some. */
  callsEnded = 0;
  /** Commands proposed through this node's API (proposals, session opens and keep-alives). */
  proposals = 0;
  /** Commands this node applied (in the decisions its driver delivered). */
  commandsDecided = 0;
  /**
   * The node's metrics (a prom-client registry of its own: `metrics.text()` is the Prometheus text,
   * `metrics.registry` the registry), or null when it was built without (the simulator).
   */
  readonly metrics: NodeMetrics | null;

  constructor(private readonly parts: NodeParts<A>) {
    this.id = parts.id;
    this.app = parts.app;
    this.replica = parts.replica;
    this.host = parts.host;
    this.clientId = parts.clientId;
    this.limits = { ...DEFAULT_NODE_LIMITS, ...parts.limits };
    this.logger = parts.logger ?? SILENT;
    this.bugs = parts.bugs ?? {};
    this.metrics = parts.metrics ?? null;
    this.scheduleClock();
    this.machine = new SessionMachine<C, R>(parts.app, {
      ...DEFAULT_SESSION_LIMITS,
      ...parts.sessionLimits,
      ...(this.bugs.applyRetries ? { bugs: { applyRetries: true } } : {}),
      onOutcome: (command, outcome) => this.settle(command, outcome),
      onApplied: (slot) => this.applied(slot),
    });
  }

  /**
   * While this node leads and sessions are open, it puts its time in the log at least every
   * `clockIntervalMs` (a `clock` envelope, proposed like any command and waited for by nobody,
   * unless it stamped a command of its own since), so the log's clock moves, and sessions expire,
   * however the clients spread over the nodes. With no session open there is nothing to expire and
   * the log stays idle: an idle log is what lets a replica far behind, fetching a snapshot, catch up
   * (seed 1403837: a clock entry every 30 ticks outran a rejoining replica's transfers for good).
   */
  private scheduleClock(): void {
    this.cancelClock = this.host.after(this.limits.clockIntervalMs, () => {
      if (this.stopped) return;
      const now = this.host.nowMs();
      if (
        this.replica.proposer.mode === "leader" &&
        this.machine.sessionCount > 0 &&
        now - this.lastStampMs >= this.limits.clockIntervalMs
      ) {
        this.lastStampMs = now;
        const seq = ++this.nextSeq;
        const payload = encodeEnvelope<C>({ t: now, clock: true });
        const command: Command = { client: this.clientId, seq, payload };
        this.host.onSubmit?.(command);
        this.enqueue(command);
      }
      this.scheduleClock();
    });
  }

  /** Replays what the replica restored from disk (its snapshot, then its log) into the machine. */
  restore(replica: Replica): void {
    const restored = replica.learner.drainRestored();
    if (restored.snapshot !== null) this.machine.restore(restored.snapshot.app, restored.snapshot.slot);
    for (const decision of restored.decisions) this.machine.apply(decision);
  }

  /** The time this node stamps on what it proposes: its clock while it leads, else none (see `SessionMachine`). */
  private stamp(): number | null {
    if (this.replica.proposer.mode !== "leader") return null;
    this.lastStampMs = this.host.nowMs();
    return this.lastStampMs;
  }

  propose(command: C, options: ProposeOptions = {}): Promise<R> {
    const session = options.session;
    const t = this.stamp();
    return this.submit(
      session === undefined
        ? { t, c: command }
        : { t, s: session.session, q: session.seq, a: session.ackedThrough ?? session.seq - 1, c: command },
      options.timeoutMs,
    ).then((outcome) => (outcome as { result: R }).result);
  }

  async openSession(): Promise<number> {
    const outcome = await this.submit({ t: this.stamp(), open: true });
    return (outcome as { session: number }).session;
  }

  async keepAlive(session: number): Promise<void> {
    await this.submit({ t: this.stamp(), s: session, keepalive: true });
  }

  /** Proposes one envelope as a command of this node's core client; resolves with its outcome. */
  private submit(envelope: SessionEnvelope<C>, timeoutMs?: number): Promise<SessionOutcome<unknown>> {
    if (this.stopped) return Promise.reject(new PaxosError("stopped", "the node is stopped"));
    let payload: string;
    try {
      payload = encodeEnvelope(envelope);
    } catch (error) {
      return Promise.reject(new PaxosError("bad-request", (error as Error).message));
    }
    const bytes = utf8Bytes(payload);
    if (bytes > DEFAULT_LIMITS.payloadBytesMax)
      return Promise.reject(
        new PaxosError(
          "too-large",
          `the command is ${bytes} bytes encoded; at most ${DEFAULT_LIMITS.payloadBytesMax}`,
        ),
      );
    if (this.waiters.size >= this.limits.pendingProposalsMax)
      return Promise.reject(
        new PaxosError("busy", `${this.waiters.size} proposals are pending on this node`),
      );
    const seq = ++this.nextSeq;
    const command: Command = { client: this.clientId, seq, payload };
    this.proposals++;
    const startedMs = this.metrics === null ? 0 : performance.now();
    return new Promise<SessionOutcome<unknown>>((resolve, reject) => {
      const cancel = this.host.after(timeoutMs ?? this.limits.proposeTimeoutMs, () => {
        this.waiters.delete(seq);
        reject(new PaxosError("timeout", "no outcome in time: the command may or may not be applied"));
      });
      this.waiters.set(seq, { startedMs, resolve, reject, cancel });
      this.host.onSubmit?.(command);
      this.enqueue(command);
    }).then((outcome) => {
      if (!outcome.ok) throw new PaxosError(outcome.code, outcome.message);
      return outcome;
    });
  }

  /**
   * Hands `command` to the replica with every other command proposed before the driver's next turn,
   * in one `submit`: a follower forwards them to the leader in one request, not one each (a busy
   * HTTP node proposes many commands between two turns).
   */
  private enqueue(command: Command): void {
    this.outgoing.push(command);
    if (this.outgoing.length > 1) return; // a submit is scheduled already
    this.host.run((replica) => {
      // In pieces a request may hold (a proposer takes at most `requestCommandsMax` of one).
      const output = emptyOutput();
      while (this.outgoing.length > 0)
        mergeOutput(output, replica.submit(this.outgoing.splice(0, DEFAULT_LIMITS.requestCommandsMax)));
      return output;
    });
  }

  /** A command of ours was applied (on this replica): its proposer learns the outcome. */
  private settle(command: Command, outcome: SessionOutcome<R>): void {
    if (command.client !== this.clientId) return;
    const waiter = this.waiters.get(command.seq);
    if (waiter === undefined) return;
    this.waiters.delete(command.seq);
    this.callsEnded++;
    waiter.cancel();
    this.metrics?.committed(performance.now() - waiter.startedMs);
    waiter.resolve(outcome);
  }

  /** After the driver applied `decision`: commands of ours the cluster's session table refused. */
  decided(decision: Decision): void {
    this.commandsDecided += decision.commands.length;
    this.metrics?.decided(decision.value.commands.length);
    for (const { command, reason } of decision.refused ?? []) {
      if (command.client !== this.clientId) continue;
      const waiter = this.waiters.get(command.seq);
      if (waiter === undefined) continue;
      this.waiters.delete(command.seq);
      this.callsEnded++;
      waiter.cancel();
      waiter.reject(new PaxosError("busy", `the cluster refused the command (${reason})`));
    }
  }

  read<T>(query: (app: A) => T, options: { readonly timeoutMs?: number } = {}): Promise<T> {
    if (this.stopped) return Promise.reject(new PaxosError("stopped", "the node is stopped"));
    if (this.bugs.readLocally) {
      try {
        return Promise.resolve(query(this.app));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.reads.size >= this.limits.readsPendingMax)
      return Promise.reject(new PaxosError("busy", `${this.reads.size} reads are pending on this node`));
    const id = ++this.nextReadId;
    return new Promise<T>((resolve, reject) => {
      const cancel = this.host.after(options.timeoutMs ?? this.limits.readTimeoutMs, () => {
        this.reads.delete(id);
        reject(new PaxosError("timeout", "the read was not confirmed in time"));
      });
      this.reads.set(id, {
        index: null,
        cancel,
        reject,
        run: () => {
          try {
            resolve(query(this.app));
          } catch (error) {
            reject(error);
          }
        },
      });
      this.host.run((replica) => replica.read(id));
    });
  }

  /** After every driver turn: read outcomes, and whether the leader changed. */
  turnEnded(): void {
    const replica = this.replica;
    for (const outcome of replica.takeReads()) this.readOutcome(outcome);
    const leader = replica.proposer.mode === "leader" ? this.id : replica.proposer.leader || null;
    if (leader !== this.knownLeader) {
      this.knownLeader = leader;
      this.metrics?.leaderChanged();
      for (const listener of this.listeners.leader) listener(leader);
    }
  }

  private readOutcome(outcome: ReadOutcome): void {
    const read = this.reads.get(outcome.id);
    if (read === undefined) return;
    if (!outcome.ok) {
      this.reads.delete(outcome.id);
      this.callsEnded++;
      read.cancel();
      const leader = outcome.leader === 0 ? null : outcome.leader;
      read.reject(
        leader === this.id
          ? new PaxosError("busy", "too many reads are waiting for a confirmation")
          : leader === null
            ? new PaxosError("no-leader", "no leader is known yet")
            : new PaxosError("not-leader", `node ${this.id} does not lead; node ${leader} does`, leader),
      );
      return;
    }
    read.index = outcome.index;
    this.runReads();
  }

  /** Answers every confirmed read whose index the application has applied through. */
  private runReads(): void {
    const applied = this.machine.appliedThrough;
    for (const [id, read] of this.reads) {
      if (read.index === null || read.index > applied) continue;
      this.reads.delete(id);
      this.callsEnded++;
      read.cancel();
      read.run();
    }
  }

  private applied(slot: number): void {
    if (this.reads.size > 0) this.runReads();
    for (const listener of this.listeners.applied) listener(slot);
  }

  /** Proposals waiting for their result. */
  get pendingProposals(): number {
    return this.waiters.size;
  }

  /** Reads waiting for their confirmation. */
  get pendingReads(): number {
    return this.reads.size;
  }

  status(): NodeStatus {
    const replica = this.replica;
    return {
      id: this.id,
      mode: this.stopped ? "stopped" : replica.proposer.mode,
      leader: this.knownLeader,
      ballot: replica.proposer.ballot,
      appliedThrough: this.machine.appliedThrough,
      rejoining: replica.rejoining,
    };
  }

  /**
   * The replica's protocol state, for watching it (the dashboard): its acceptor's promised ballot
   * (null: no acceptor, or rejoining), the slot below which it keeps no votes, and the slot its
   * learner has delivered through.
   */
  protocolState(): { promised: Ballot | null; floorSlot: number; deliveredThrough: number } {
    const acceptor = this.replica.acceptor;
    return {
      promised: acceptor === null || this.replica.rejoining ? null : acceptor.promised,
      floorSlot: acceptor?.floorSlot ?? 0,
      deliveredThrough: this.replica.learner.deliveredThrough,
    };
  }

  on<E extends keyof NodeEvents>(event: E, listener: NodeEvents[E]): void {
    (this.listeners[event] as Set<NodeEvents[E]>).add(listener);
  }

  off<E extends keyof NodeEvents>(event: E, listener: NodeEvents[E]): void {
    (this.listeners[event] as Set<NodeEvents[E]>).delete(listener);
  }

  /**
   * Fails every call in flight with `stopped` (their outcome is unknown) and refuses new ones; the
   * simulator calls it when a node crashes. `stop` does this and closes the driver.
   */
  abandon(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelClock();
    const error = () => new PaxosError("stopped", "the node stopped: the outcome is unknown");
    for (const waiter of this.waiters.values()) {
      waiter.cancel();
      waiter.reject(error());
    }
    this.waiters.clear();
    for (const read of this.reads.values()) {
      read.cancel();
      read.reject(error());
    }
    this.reads.clear();
  }

  async stop(): Promise<void> {
    if (this.stopped && this.parts.close === undefined) return;
    this.abandon();
    const close = this.parts.close;
    if (close !== undefined) await close();
    this.logger.info({}, "node stopped");
  }
}
