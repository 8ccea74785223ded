import { binaryCodec, type Codec, clusterIdOf, EnvelopeGuard, jsonCodec } from "../codec/index.js";
import {
  Acceptor,
  type AcceptorBugs,
  type Ballot,
  ballotGreater,
  Client,
  type ClusterMembers,
  type Command,
  clusterMembers,
  createQuorumSystem,
  DEFAULT_LIMITS,
  DEFAULT_PROPOSER_TIMING,
  type Decision,
  InvariantViolation,
  Learner,
  type LearnerBugs,
  type Limits,
  type Message,
  type NodeId,
  type Output,
  Prng,
  Proposer,
  type ProposerBugs,
  type QuorumSystem,
  Refusals,
  Replica,
  type ReplicaBugs,
  type Role,
  ZERO_BALLOT,
} from "../core/index.js";
import { type AppCommand, type AppResult, KvLockApp, type NodeBugs, PaxosNode } from "../rsm/index.js";
import {
  type AddressBook,
  ClusterAddressBook,
  type ClusterConfig,
  clusterEnvelope,
  clusterIdOfConfig,
  Driver,
  GroupAddressBook,
  openDataDir,
  type Scheduler,
  type StateMachine,
} from "../runtime/index.js";
import { type DurableState, type Storage, toReplicaState, type WalBugs } from "../storage/index.js";
import type { Endpoint } from "../transport/index.js";
import { SafetyChecker, type Violation } from "./checker.js";
import { PromiseWatch, SIM_DATA_DIR, SimDisk } from "./disk.js";
import { TraceHash } from "./hash.js";
import { EventQueue } from "./heap.js";
import { KvReference, KvWorkload, LockWatch } from "./kv-workload.js";
import { SimMachine } from "./machine.js";
import { SimTransport, type SimWire } from "./network.js";
import { type Scenario, STEPS_PER_TICK } from "./scenario.js";
import { type StrayAttack, type StrayFrame, StrayPeer, type StrayView } from "./stray.js";
import type { TraceDropReason, TraceEvent, TraceEventBody, TraceMessage } from "./trace-event.js";

/** Deliberate bugs to switch on, to prove the checkers catch them. Tests only. */
export interface SimBugs {
  readonly acceptor?: AcceptorBugs;
  readonly proposer?: ProposerBugs;
  readonly learner?: LearnerBugs;
  /** Passed to every replica (e.g. the rejoin rule before issue 8). */
  readonly replica?: ReplicaBugs;
  /** Quorums one acceptor smaller than needed (a majority of 3 becomes 1). */
  readonly quorumOneSmaller?: boolean;
  /** The replicas' state machine hands `snapshot()` its state one slot behind (the last change missing). */
  readonly snapshotOneSlotBehind?: boolean;
  /** The replicas' state machine installs a snapshot only after applying the next decision. */
  readonly decideBeforeInstall?: boolean;
  /** The replicas' state machine throws a `TypeError` when it applies a decision. */
  readonly applyThrows?: boolean;
  /**
   * At a restart the role gets the promise made durable before the newest one (the newest promise
   * forgotten): an acceptor that forgets one promise on restart.
   */
  readonly forgetNewestPromise?: boolean;
  /** Every log is built with these deliberate bugs (`WalBugs`). */
  readonly wal?: WalBugs;
  /** Key-value runs (`Scenario.kv`): every replica's `PaxosNode` is built with these bugs. */
  readonly node?: NodeBugs;
  /** Key-value runs: the lock service grants a held lock again (`LockService` bugs). */
  readonly lockGrantWhileHeld?: boolean;
}

export interface SimOptions {
  readonly bugs?: SimBugs;
  /** Called with a line per event (for `paxos sim --trace`). */
  readonly trace?: (line: string) => void;
  /**
   * Called with every event as data (`TraceEvent`: what `trace` prints, what becomes of each frame,
   * decisions, violations), for tools such as the dashboard's replay. Watching changes nothing in
   * the run: it draws no random numbers and schedules nothing (the trace hash is the same).
   */
  readonly onEvent?: (event: TraceEvent) => void;
}

export interface RunResult {
  readonly seed: number;
  readonly events: number;
  /** Driver turns run (not counted in `events`: a turn follows the events that scheduled it). */
  readonly turns: number;
  readonly ticks: number;
  readonly decisions: number;
  readonly deliveredCommands: number;
  readonly submitted: number;
  readonly messagesSent: number;
  readonly messagesDropped: number;
  readonly crashes: number;
  readonly partitions: number;
  readonly diskFaults: number;
  /** Logs found damaged when reopened (the replica then rejoins, as `paxos node` does). */
  readonly damagedLogs: number;
  /** Snapshots replicas took, snapshots they installed from peers, and `snapshot-chunk` messages sent. */
  readonly snapshotsTaken: number;
  readonly snapshotsInstalled: number;
  readonly snapshotChunksSent: number;
  /** What the stray peer sent and what came of it (null: the run had none). */
  readonly stray: StrayReport | null;
  /** Key-value runs: the clients' operations by outcome (null: the run had none). */
  readonly kv: string | null;
  readonly violations: readonly Violation[];
  readonly traceHash: string;
}

/** What the stray peer (`Scenario.stray`) did in a run. */
export interface StrayReport {
  /** Frames it sent, by attack (a frame to a whole role counts once). */
  readonly sent: Readonly<Partial<Record<StrayAttack, number>>>;
  readonly framesSent: number;
  /** Copies of its frames that reached a listening process (after the network's faults). */
  readonly framesDelivered: number;
  /** Of those, frames the receiving driver could not decode (dropped, counted in `decodeErrors`). */
  readonly decodeErrors: number;
  /** Frames the cluster sent to the stray peer's address (answers to its requests) and their bytes. */
  readonly repliesFrames: number;
  readonly repliesBytes: number;
  /**
   * Input the roles refused over the run, by reason (`Refusals`, summed over every process and
   * incarnation; all input, not only the stray peer's). Empty while the roles keep no `refusals`.
   */
  readonly refusals: Readonly<Record<string, number>>;
}

type Kind = "acceptor" | "proposer" | "learner" | "replica" | "client" | "stray";
type RoleObject = Acceptor | Proposer | Learner | Replica | Client;

/** A replica's application as the simulator drives and checks it (`encode`: its state as text). */
type SimApp = StateMachine & { encode(): string };

/** A key-value run's replica application: its node's session machine (state: its snapshot text). */
class KvSimMachine implements SimApp {
  constructor(
    private readonly node: PaxosNode<AppCommand, AppResult, KvLockApp>,
    private readonly watch: LockWatch,
  ) {}
  apply(decision: Decision): void {
    this.node.machine.apply(decision);
  }
  snapshot(): string {
    return this.node.machine.snapshot();
  }
  restore(state: string, slot: number): void {
    this.node.machine.restore(state, slot);
    this.watch.reset(this.node.app.holders(), this.node.app.lastToken);
  }
  encode(): string {
    return this.node.machine.snapshot();
  }
}

/** One simulated process (a role at an address); each start is a new `Life`. */
interface SimProcess {
  readonly key: string;
  readonly kind: Kind;
  readonly id: number;
  /** Where it listens: `{ host: key, port: 1 }`. */
  readonly endpoint: Endpoint;
  readonly prng: Prng;
  /**
   * Its disk, kept across restarts (acceptors, proposers, replicas: a `WalStorage` on it); null for
   * learners and clients, which keep nothing (`MemoryStorage`, as `paxos learner` without `--data`).
   */
  readonly disk: SimDisk | null;
  /** Whether it ever started (opened its state): later starts are not told `--new`. */
  started: boolean;
  /** Damage done to its log while it was down, applied before it next opens it (see `damageLog`). */
  pendingDamage: "bit flip" | "lost newest segment" | null;
  /** Whether the last life knew itself rejoining (to keep disk faults to what the quorums spare). */
  rejoining: boolean;
  /** The newest durable promise and the one before it (for the `forgetNewestPromise` variant). */
  promises: { durable: Ballot; prior: Ballot };
  life: Life | null;
  incarnation: number;
}

/** One incarnation of a process: the real `Driver` running the real role over simulated I/O. */
interface Life {
  readonly process: SimProcess;
  readonly incarnation: number;
  alive: boolean;
  readonly transport: SimTransport;
  /** Set once the process has opened its storage and built its role. */
  role: RoleObject | null;
  driver: Driver<RoleObject> | null;
  machine: SimApp | null;
  /** Key-value runs: the replica's node (its machine is the node's session machine). */
  node: PaxosNode<AppCommand, AppResult, KvLockApp> | null;
  /** Key-value runs: the lock checker of the node's application. */
  lockWatch?: LockWatch;
}

interface Timer {
  cancelled: boolean;
}

type SimEvent =
  | {
      readonly kind: "frame";
      readonly to: SimProcess;
      readonly from: SimProcess;
      readonly fromEndpoint: Endpoint;
      readonly frame: Uint8Array;
      /** For `SimOptions.onEvent`: when it was sent, and the message it carries (null: unknown). */
      readonly sentMs?: number;
      readonly info?: TraceMessage | null;
    }
  | { readonly kind: "immediate"; readonly life: Life; readonly fn: () => void }
  | {
      readonly kind: "every";
      readonly life: Life;
      readonly fn: () => void;
      readonly steps: number;
      readonly timer: Timer;
    }
  | { readonly kind: "io"; readonly process: SimProcess; readonly done: () => void }
  | { readonly kind: "submit"; readonly process: SimProcess; readonly payload: string }
  | { readonly kind: "restart"; readonly process: SimProcess }
  | {
      readonly kind: "crash";
      readonly process: SimProcess;
      readonly incarnation: number;
      /** A crash of the targeted sequence: no random disk fault, down this many steps. */
      readonly downSteps?: number;
      /** A disk fault the targeted sequence does to it (if the quorums can spare it). */
      readonly damage?: "lost newest segment";
    }
  | { readonly kind: "heal" }
  | { readonly kind: "release" }
  /** The end of a campaign-crash's deaf spell: the sequence's cut links heal. */
  | { readonly kind: "hear" }
  | { readonly kind: "laggard"; readonly process: SimProcess; readonly away: boolean }
  | { readonly kind: "world" }
  | { readonly kind: "stray" }
  /** A timer of a key-value node or client (`PaxosNode` timeouts, client think time). */
  | { readonly kind: "call"; readonly fn: () => void; readonly timer: Timer };

const GROUP_PREFIX = "group:";

/** Ticks a deaf-leader-rejoin sequence waits for the new leader to decide past the deaf one's slots. */
const LED_WAIT_TICKS = 150;

/** How far the scenario's targeted fault sequence (`Scenario.targeted`) has got. */
interface PlanState {
  /**
   * deaf-leader-rejoin: wait -> cut (C deaf) -> led (B leads) -> rejoin (A wiped) -> done (B down).
   * promise-crash: wait -> slow (the leader's messages held back, acceptors crash after promising).
   * campaign-crash: wait -> armed (the leader crashed: an election follows) -> done (a candidate crashed).
   */
  stage: "wait" | "cut" | "led" | "rejoin" | "slow" | "armed" | "done";
  /** When the current stage's wait ends, in steps. */
  at: number;
  /** The deaf leader, or the slow one. */
  c: SimProcess | null;
  /** The leader that takes over from the deaf one. */
  b: SimProcess | null;
  /** The follower that loses its disk. */
  a: SimProcess | null;
  /** The slow leader's ballot: acceptors crash right after promising a higher one. */
  ballot: Ballot;
  /** The highest slot the deaf leader proposed in (what its heartbeats say), as far as seen. */
  deafProposedThrough: number;
  /** Acceptors crashed after a promise (each once). */
  readonly crashed: Set<SimProcess>;
  /** What the slow leader sent while slow, held back: released to an acceptor as it restarts. */
  held: HeldFrame[];
  /**
   * deaf-leader-rejoin: late copies of the last frames the deaf leader sent each replica while it
   * still led (its heartbeats among them), delivered to A as it comes back from losing its disk.
   */
  stale: HeldFrame[];
}

/** A frame kept to be sent on later (`sentMs`, `info`: as on a queued frame, for `onEvent`). */
interface HeldFrame {
  readonly to: SimProcess;
  readonly fromEndpoint: Endpoint;
  readonly frame: Uint8Array;
  readonly sentMs?: number;
  readonly info?: TraceMessage | null;
}

/** How many of the deaf leader's frames to each replica a deaf-leader-rejoin keeps late copies of. */
const STALE_FRAMES_KEPT = 4;

/**
 * A deterministic simulation of a whole Paxos deployment, in the way of TigerBeetle's VOPR: each
 * process runs the production `Driver` with the real core role, the real codec (every message is
 * encoded and decoded), the real address book and real storage (`MemoryStorage`), and for replicas
 * the driver applies decisions, installs and takes snapshots through a `StateMachine`. Only the
 * outermost I/O is simulated: the clock and timers (`Scheduler`), the sockets (`SimTransport` over a
 * network that drops, duplicates, delays, reorders and partitions frames, and delivers a frame to
 * whichever incarnation of its destination listens when it arrives), and the disk's latency and
 * crashes (`SimDisk`). One seed chooses everything; the same seed replays event for event.
 */
export class Simulation implements SimWire {
  readonly checker: SafetyChecker;
  private readonly prng: Prng;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly hash = new TraceHash();
  readonly processes: SimProcess[] = [];
  private readonly byRole = new Map<string, SimProcess[]>();
  /** The stray peer's envelopes, one per sender it claims (see `straySeal`). */
  private readonly strayGuards = new Map<string, EnvelopeGuard>();
  private readonly byHost = new Map<string, SimProcess>();
  /** Who listens at each address now (a process's current incarnation, once started). */
  private readonly listeners = new Map<string, SimTransport>();
  private readonly quorum: QuorumSystem;
  private readonly limits: Partial<Limits>;
  private readonly codec: Codec;
  private readonly clusterConfig: ClusterConfig;
  private readonly blocked = new Set<string>();
  private now = 0;
  private events = 0;
  private turns = 0;
  private faultsOn = true;
  private messagesSent = 0;
  private messagesDropped = 0;
  private crashes = 0;
  private partitions = 0;
  private diskFaults = 0;
  /** Logs `WalStorage.open()` found damaged (a replica then rejoins). */
  private damagedLogs = 0;
  private snapshotsTaken = 0;
  private snapshotsInstalled = 0;
  private snapshotChunksSent = 0;
  private partitionActive = false;
  /** When each process's last disk write completes: writes complete in the order they were made. */
  private readonly ioDoneAt = new Map<SimProcess, number>();
  /** An event resolved promises (I/O, a start): let their continuations run before the next event. */
  private settleDue = false;
  /** An error that is not a protocol violation (a bug in the simulator or the runtime): rethrown. */
  private fatalError: Error | null = null;
  /** A replica cut off from everyone (`SnapshotSettings.laggard`), apart from any partition. */
  private isolated: SimProcess | null = null;
  /** A replica kept down (`SnapshotSettings.laggard`): restarts wait until it is released. */
  private heldDown: SimProcess | null = null;
  /** The targeted fault sequence's progress (`Scenario.targeted`; stays at `wait` when there is none). */
  private readonly plan: PlanState = {
    stage: "wait",
    at: 0,
    c: null,
    b: null,
    a: null,
    ballot: ZERO_BALLOT,
    deafProposedThrough: 0,
    crashed: new Set(),
    held: [],
    stale: [],
  };
  /** Links (`from>to`) the targeted sequence cuts, apart from random partitions (which heal on their own). */
  private readonly planBlocked = new Set<string>();
  /** The stray peer (`Scenario.stray`), its process (an address, never started) and its tallies. */
  private readonly stray: StrayPeer | null = null;
  private readonly strayProcess: SimProcess | null = null;
  private readonly strayStats = { framesDelivered: 0, decodeErrors: 0, repliesFrames: 0, repliesBytes: 0 };
  /** Key-value runs: the clients calling the replicas' nodes (`Scenario.kv`); null otherwise. */
  private readonly kv: KvWorkload | null = null;
  /** Refusals counted by the roles of lives that ended (see `collectRefusals`). */
  private readonly refusals = new Map<string, number>();
  /** The highest ballot round any process sent, and the newest leader's ballot (for the stray peer). */
  private highestRound = 0;
  /** The tick the network healed (the liveness phase began); null before. */
  private healTick: number | null = null;
  private leaderBallot: Ballot = ZERO_BALLOT;
  /**
   * `SimOptions.onEvent` only: the message a driver is sending (its trace comes just before the
   * frame reaches `send`), the frame being delivered (and the message its driver took in, if any),
   * and how many of the checker's violations have been reported as events.
   */
  private outgoing: { readonly host: string; readonly peer: string; readonly message: TraceMessage } | null =
    null;
  private delivering: { taken: TraceMessage | null } | null = null;
  private violationsReported = 0;

  constructor(
    readonly scenario: Scenario,
    private readonly options: SimOptions = {},
  ) {
    // Keyed runs (Scenario.clusterKey): every Driver gets the key (see `envelope`); the stray peer
    // never has it, so its frames, forged ones included, must be dropped by the envelope check.
    this.prng = new Prng(scenario.seed ^ 0x5eed);
    this.checker = new SafetyChecker(
      true,
      scenario.kv === null
        ? undefined
        : new KvReference(
            scenario.kv,
            options.bugs?.node?.applyRetries === true,
            options.bugs?.lockGrantWhileHeld === true,
          ),
    );
    const quorum = createQuorumSystem(scenario.acceptors, scenario.quorum);
    if (!quorum.ok) throw new Error(`seed ${scenario.seed}: bad scenario quorum: ${quorum.error}`);
    this.quorum = options.bugs?.quorumOneSmaller ? oneSmaller(quorum.value) : quorum.value;
    this.limits = {
      windowSlots: scenario.windowSlots,
      batchCommandsMax: scenario.batchCommandsMax,
      ...(scenario.snapshots
        ? {
            snapshotChunkUnits: scenario.snapshots.chunkUnits,
            snapshotChunksPerRequest: scenario.snapshots.chunksPerRequest,
          }
        : {}),
    };
    this.codec = scenario.codec === "json" ? jsonCodec : binaryCodec;
    this.clusterConfig = {
      name: `sim-${scenario.seed}`,
      nodes: scenario.acceptors.map((a) => ({ id: a.id, host: `replica:${a.id}`, port: 1 })),
      acceptors: scenario.acceptors,
      quorum: scenario.quorum,
      transport: "udp",
      codec: scenario.codec,
      tickMs: STEPS_PER_TICK,
      snapshotLogBytes: scenario.snapshots?.snapshotLogBytes ?? 0,
      sessionLimits: {
        clientsMax: this.limits.clientsMax ?? DEFAULT_LIMITS.clientsMax,
        clientRangesMax: this.limits.clientRangesMax ?? DEFAULT_LIMITS.clientRangesMax,
      },
    };
    this.buildProcesses();
    if (scenario.stray !== null) {
      const key = "stray:1";
      const process: SimProcess = {
        key,
        kind: "stray",
        id: 1,
        endpoint: { host: key, port: 1 },
        prng: this.prng.fork(),
        disk: null,
        started: false,
        pendingDamage: null,
        rejoining: false,
        promises: { durable: ZERO_BALLOT, prior: ZERO_BALLOT },
        life: null,
        incarnation: 0,
      };
      // Known at its address (frames from it are sent, frames to it arrive nowhere), but not among
      // `processes`: it is never started, crashed or waited for.
      this.byHost.set(key, process);
      this.strayProcess = process;
      this.stray = new StrayPeer(scenario.stray, process.prng.fork(), this.codec);
    }
    if (scenario.kv !== null) {
      const replicas = this.processes.filter((p) => p.kind === "replica");
      this.kv = new KvWorkload(scenario.kv, new Prng((scenario.seed ^ 0x6b76) >>> 0), {
        replicas: replicas.length,
        node: (index) => {
          const life = replicas[index]?.life;
          return life?.alive ? life.node : null;
        },
        after: (steps, fn) => this.after(steps, fn),
        now: () => this.events,
      });
    }
  }

  /** Runs `fn` after `steps` (a key-value node's or client's timer); its continuations run next. */
  private after(steps: number, fn: () => void): () => void {
    const timer: Timer = { cancelled: false };
    this.queue.push(this.now + Math.max(1, steps), { kind: "call", fn, timer });
    return () => {
      timer.cancelled = true;
    };
  }

  /** Runs the fault phase, heals everything, then requires liveness. */
  async run(): Promise<RunResult> {
    const s = this.scenario;
    await this.begin();
    await this.runWhile(
      () => this.events < s.faultPhaseEventsMin || this.now < s.faultPhaseTicksMin * STEPS_PER_TICK,
    );
    return this.finish();
  }

  /** Starts every process and schedules the clients' submissions. */
  async begin(): Promise<void> {
    for (const process of this.processes) this.startLife(process);
    this.scheduleSubmissions();
    this.scheduleLaggard();
    this.kv?.start();
    this.queue.push(STEPS_PER_TICK, { kind: "world" });
    if (this.scenario.stray !== null)
      this.queue.push(this.scenario.stray.startTick * STEPS_PER_TICK, { kind: "stray" });
    await this.settle();
  }

  /** Processes events up to virtual tick `tick` (for drivers that pace a run in real time). */
  async advanceTo(tick: number): Promise<void> {
    const until = tick * STEPS_PER_TICK;
    await this.runWhile(() => this.queue.peekTime() <= until);
    this.now = Math.max(this.now, until);
  }

  get tick(): number {
    return Math.floor(this.now / STEPS_PER_TICK);
  }

  /** The processes currently leading (normally one). */
  leaders(): string[] {
    return this.processes.filter((p) => leaderOf(p.life?.role ?? null)).map((p) => p.key);
  }

  /** Heals the network, restarts the crashed, stops faults, and runs until everything is decided. */
  async finish(): Promise<RunResult> {
    const s = this.scenario;
    this.faultsOn = false;
    this.healTick = this.tick;
    this.blocked.clear();
    this.planBlocked.clear();
    this.partitionActive = false;
    this.isolated = null;
    this.heldDown = null;
    for (const process of this.processes) if (process.life === null) this.restart(process);
    this.kv?.stop();
    await this.settle();
    const deadline = this.now + s.livenessTicksMax * STEPS_PER_TICK;
    let late = false;
    await this.runWhile(() => {
      if (this.allDone()) return false;
      late = this.now > deadline;
      return !late;
    });
    if (late && !this.checker.failed) this.checker.fail("liveness", this.livenessReport(), this.events);
    if (this.kv !== null && !this.checker.failed) {
      const problem = this.kv.check();
      if (problem !== null) this.checker.fail("linearizability", problem, this.events);
    }
    this.reportViolations();
    return {
      seed: s.seed,
      events: this.events,
      turns: this.turns,
      ticks: Math.floor(this.now / STEPS_PER_TICK),
      decisions: this.checker.decisions,
      deliveredCommands: this.checker.deliveredCommands,
      submitted: this.checker.submittedCount(),
      messagesSent: this.messagesSent,
      messagesDropped: this.messagesDropped,
      crashes: this.crashes,
      partitions: this.partitions,
      diskFaults: this.diskFaults,
      damagedLogs: this.damagedLogs,
      snapshotsTaken: this.snapshotsTaken,
      snapshotsInstalled: this.snapshotsInstalled,
      snapshotChunksSent: this.snapshotChunksSent,
      stray: this.strayReport(),
      kv: this.kv?.summary() ?? null,
      violations: this.checker.violations,
      traceHash: this.hash.digest(),
    };
  }

  // --- setup ---------------------------------------------------------------------------------------

  private buildProcesses(): void {
    const s = this.scenario;
    const add = (kind: Kind, id: number) => {
      const key = `${kind}:${id}`;
      const process: SimProcess = {
        key,
        kind,
        id,
        endpoint: { host: key, port: 1 },
        prng: this.prng.fork(),
        disk: kind === "learner" || kind === "client" ? null : this.newDisk(key),
        started: false,
        pendingDamage: null,
        rejoining: false,
        promises: { durable: ZERO_BALLOT, prior: ZERO_BALLOT },
        life: null,
        incarnation: 0,
      };
      this.processes.push(process);
      this.byHost.set(key, process);
    };
    if (s.layout === "separate") {
      for (const a of s.acceptors) add("acceptor", a.id);
      for (let id = 1; id <= s.proposers; id++) add("proposer", id);
      for (let id = 1; id <= s.learners; id++) add("learner", id);
    } else {
      for (const a of s.acceptors) add("replica", a.id);
    }
    for (let id = 1; id <= s.clients; id++) add("client", id);
    for (const role of ["acceptor", "proposer", "learner", "client"]) {
      const kinds: Kind[] =
        role === "client" ? ["client"] : s.layout === "separate" ? [role as Kind] : ["replica"];
      this.byRole.set(
        role,
        this.processes.filter((p) => kinds.includes(p.kind)),
      );
    }
  }

  private newDisk(key: string): SimDisk {
    const bugs = this.options.bugs?.wal;
    return new SimDisk((done) => this.diskWrite(key, done), {
      segmentBytesMax: this.scenario.segmentBytesMax,
      ...(bugs ? { bugs } : {}),
    });
  }

  /** A disk's sync completes after the scenario's latency, in order with the disk's others. */
  private diskWrite(key: string, done: () => void): void {
    const process = this.byHost.get(key) as SimProcess;
    const s = this.scenario;
    const at = Math.max(
      this.now + this.prng.range(s.syncStepsMin, s.syncStepsMax),
      this.ioDoneAt.get(process) ?? 0,
    );
    this.ioDoneAt.set(process, at);
    this.queue.push(at, { kind: "io", process, done });
  }

  /**
   * The envelope a process's driver seals and opens frames with, as production builds it: the
   * cluster's id, and for one seed in three a cluster key (so that the MAC, the incarnations and the
   * replay window run under the simulator's duplicated, reordered and delayed frames). A process's
   * incarnation is its life's number, strictly increasing across its restarts.
   */
  private envelope(process: SimProcess, life: Life): EnvelopeGuard {
    const clusterKey = this.scenario.clusterKey;
    const key = clusterKey === null ? null : new TextEncoder().encode(clusterKey);
    if (process.kind === "stray") throw new Error("sim: the stray peer has no driver");
    const kind = process.kind === "replica" ? "node" : process.kind;
    const self = { kind, id: process.id } as const;
    const keys = { key, acceptKey: null };
    if (this.scenario.layout === "collapsed")
      return clusterEnvelope(this.clusterConfig, self, { keys, incarnation: life.incarnation });
    return new EnvelopeGuard({
      clusterId: this.clusterId(),
      self,
      roles: [kind === "node" ? "proposer" : kind],
      incarnation: life.incarnation,
      key,
      groupDelivery: true,
    });
  }

  /** The address book a process's driver resolves destinations with: what production uses. */
  private addressBook(): AddressBook {
    if (this.scenario.layout === "collapsed") return new ClusterAddressBook(this.clusterConfig);
    // The course layout: one multicast group per role.
    const group = (role: Role): Endpoint => ({ host: `${GROUP_PREFIX}${role}`, port: 1 });
    return new GroupAddressBook({
      acceptor: group("acceptor"),
      proposer: group("proposer"),
      learner: group("learner"),
      client: group("client"),
    });
  }

  /** The cluster's members by role (learners serve and take catch-up only among them). */
  private members(): ClusterMembers {
    const ids = (kind: Kind) => this.processes.filter((p) => p.kind === kind).map((p) => p.id);
    if (this.scenario.layout === "collapsed") return clusterMembers(ids("replica"));
    return { acceptors: ids("acceptor"), proposers: ids("proposer"), learners: ids("learner") };
  }

  private createRole(process: SimProcess, state: DurableState): RoleObject {
    const bugs = this.options.bugs ?? {};
    const prng = process.prng.fork();
    const promised = bugs.forgetNewestPromise ? process.promises.prior : state.promised;
    const acceptorState = { promised, accepted: state.accepted, floorSlot: state.trimmedBelowSlot };
    // The membership the roles check messages against (issue 9): who may prepare, accept, heartbeat.
    const proposers =
      this.scenario.layout === "separate"
        ? Array.from({ length: this.scenario.proposers }, (_, i) => i + 1)
        : this.scenario.acceptors.map((a) => a.id);
    switch (process.kind) {
      case "acceptor":
        return new Acceptor({
          id: process.id,
          limits: this.limits,
          restore: acceptorState,
          proposers,
          electionTimeoutTicks: DEFAULT_PROPOSER_TIMING.electionTimeoutTicks,
          ...(state.rejoining ? { rejoining: true } : {}),
          ...(bugs.acceptor ? { bugs: bugs.acceptor } : {}),
        });
      case "proposer":
        return new Proposer({
          id: process.id,
          quorum: this.quorum,
          prng,
          limits: this.limits,
          members: this.members(),
          restore: { round: state.round },
          proposers,
          bugs: { ...bugs.proposer, ...(bugs.learner ? { learner: bugs.learner } : {}) },
        });
      case "learner":
        return new Learner({
          id: process.id,
          quorum: this.quorum,
          limits: this.limits,
          members: this.members(),
          ...(bugs.learner ? { bugs: bugs.learner } : {}),
        });
      case "replica": {
        const snapshots = this.scenario.snapshots;
        return new Replica({
          id: process.id,
          quorum: this.quorum,
          prng,
          limits: this.limits,
          members: this.members(),
          restore: { ...toReplicaState(state), acceptor: acceptorState },
          proposers,
          ...(state.rejoining ? { rejoining: true } : {}),
          ...(snapshots
            ? { snapshotLogBytes: snapshots.snapshotLogBytes, logRetainSlots: snapshots.logRetainSlots }
            : {}),
          bugs,
        });
      }
      case "client":
        return new Client({ id: process.id, prng, retryTicks: 20, retryTicksMax: 80 });
      case "stray":
        throw new Error("sim: the stray peer is not a role");
    }
  }

  /** Starts a new incarnation of `process`; it comes up once its storage is open (see `boot`). */
  private startLife(process: SimProcess): void {
    process.incarnation++;
    const life: Life = {
      process,
      incarnation: process.incarnation,
      alive: true,
      transport: new SimTransport(this, process.endpoint),
      role: null,
      driver: null,
      machine: null,
      node: null,
    };
    process.life = life;
    this.settleDue = true;
    this.boot(life).catch((error: unknown) => {
      if (!life.alive) return; // a file-system call in flight when the process crashed failed
      // A role that cannot start from its durable state (e.g. a ballot a stray frame got persisted)
      // is a process that exits: a violation of the run, not a failure of the simulator.
      this.processFailed(process, error);
    });
  }

  /**
   * What `paxos node` and `paxos acceptor` do at start: open the storage (setting up a rejoin first
   * if the state was lost), build the role from what it holds, restore the application, start the
   * driver.
   */
  private async boot(life: Life): Promise<void> {
    const process = life.process;
    if (process.pendingDamage !== null && process.disk !== null) {
      await this.damageLog(process, process.disk, process.pendingDamage);
      process.pendingDamage = null;
    }
    const opened = await this.openState(life);
    if (opened === null) return;
    let { storage } = opened;
    const { state } = opened;
    if (this.options.bugs?.forgetNewestPromise && process.disk !== null) {
      storage = new PromiseWatch(storage, process.promises, (promises) => {
        process.promises = promises;
      });
    }
    process.rejoining = state.rejoining;
    if (state.rejoining) this.checker.stateLost(process.key);
    if (!life.alive) return;
    const role = this.createRole(process, state);
    const node = role instanceof Replica && this.scenario.kv !== null ? this.kvNode(life, role) : null;
    const machine: SimApp | null =
      node !== null
        ? new KvSimMachine(node, life.lockWatch as LockWatch)
        : role instanceof Replica
          ? new SimMachine(this.options.bugs ?? {}, (slot) =>
              this.checker.fail(
                "snapshot",
                `${process.key}: snapshot through slot ${slot} has no application state`,
                this.events,
              ),
            )
          : null;
    life.role = role;
    life.machine = machine;
    life.node = node;
    if (role instanceof Replica && machine !== null) this.restoreApplication(process, role, machine);
    else if (role instanceof Learner || role instanceof Proposer)
      this.checker.learnerRestarted(process.key, 0);
    const driver = new Driver<RoleObject>({
      name: process.key,
      role,
      envelope: this.envelope(process, life),
      transport: life.transport,
      codec: this.codec,
      addressBook: this.addressBook(),
      storage,
      tickMs: STEPS_PER_TICK,
      scheduler: this.scheduler(life),
      ...(machine !== null ? { stateMachine: machine } : {}),
      onDecision: (decision) => {
        if (this.options.onEvent !== undefined)
          this.emit({
            kind: "decide",
            process: process.key,
            slot: decision.slot,
            commands: decision.commands.length,
          });
        this.checker.decision(process.key, decision, this.events);
        node?.decided(decision);
        if (machine !== null)
          this.checker.appState(process.key, decision.slot, machine.encode(), this.events);
      },
      onSnapshot: (snapshot, how) => {
        if (how === "taken") {
          this.snapshotsTaken++;
          this.record(`k ${this.now} ${process.key} ${snapshot.slot}`, {
            kind: "snapshot",
            process: process.key,
            slot: snapshot.slot,
            how: "taken",
          });
          this.checker.snapshotTaken(process.key, snapshot, this.events);
          return;
        }
        this.snapshotsInstalled++;
        this.record(`i ${this.now} ${process.key} ${snapshot.slot}`, {
          kind: "snapshot",
          process: process.key,
          slot: snapshot.slot,
          how: "installed",
        });
        this.checker.snapshotInstalled(process.key, snapshot, this.events);
        if (machine !== null)
          this.checker.appState(process.key, snapshot.slot, machine.encode(), this.events);
      },
      onTrace: (direction, message, peer) => this.observe(life, direction, message, peer),
      ...(node !== null
        ? {
            onTurnEnd: () => {
              const ended = node.callsEnded;
              node.turnEnded();
              // A caller's promise settled this turn: its continuation runs before the next event.
              if (node.callsEnded !== ended) this.settleDue = true;
            },
          }
        : {}),
      onFatal: (error) => {
        if (!life.alive) return; // a call in flight when the process crashed failed: it is gone
        this.processFailed(process, error);
      },
    });
    life.driver = driver;
    await driver.start();
  }

  /**
   * Opens the process's state with the processes' own code (`openDataDir`, runtime/data-dir.ts), as
   * `paxos node` (a replica: lost or damaged state means rejoin) and `paxos acceptor`/`proposer`
   * (refuse) do, over the simulated disk; learners and clients keep nothing (memory). The first
   * start of each process is told `--new` (as `paxos cluster` does on a first start); later ones are
   * not, so a wiped directory makes a replica rejoin. Null: the process crashed meanwhile, or (a
   * separate role) refused to start on a damaged log.
   */
  private async openState(life: Life): Promise<{ storage: Storage; state: DurableState } | null> {
    const process = life.process;
    const disk = process.disk;
    const opened = await openDataDir({
      dir: disk === null ? undefined : SIM_DATA_DIR,
      isNew: disk === null || process.kind === "proposer" || !process.started,
      onLostState: process.kind === "replica" ? "rejoin" : "refuse",
      ...(disk !== null ? { fs: disk.dataDirFs } : {}),
      createLog: (dir: string) => (disk as SimDisk).log(dir),
      nowMs: this.now,
    });
    if (!life.alive) return null;
    if (!opened.ok) {
      if (opened.error.kind === "operator") throw new Error(`${process.key}: ${opened.error.message}`);
      // A separate role refuses to vote with a damaged log; the simulator damages no such log (a
      // crash loses only unsynced writes), so the log misread what a crash left.
      this.checker.fail("durability", `${process.key}: ${opened.error.message}`, this.events);
      return null;
    }
    process.started = true;
    if (opened.value.reason !== null) {
      if (opened.value.reason === "damaged") this.damagedLogs++;
      this.record(`j ${this.now} ${process.key} ${opened.value.reason}`, {
        kind: "open",
        process: process.key,
        detail: opened.value.reason,
      });
    }
    return opened.value;
  }

  /**
   * Damages a log at rest, the way disks do: a bit of synced data flips (in any segment, headers
   * included), or the newest segment is lost. `WalStorage.open` must notice either (then the replica
   * rejoins); a log that did not would roll back promises and votes, which the checkers would see.
   */
  private async damageLog(
    process: SimProcess,
    disk: SimDisk,
    damage: "bit flip" | "lost newest segment",
  ): Promise<void> {
    const fs = disk.fs;
    if (!fs.exists(SIM_DATA_DIR)) return;
    const segments = (await fs.readdir(SIM_DATA_DIR)).filter((name) => /^wal-\d+\.log$/.test(name)).sort();
    const sizes: number[] = [];
    for (const name of segments) sizes.push((await fs.stat(`${SIM_DATA_DIR}/${name}`)).size);
    if (damage === "lost newest segment") {
      const newest = segments[segments.length - 1];
      if (newest === undefined) return;
      fs.loseFile(`${SIM_DATA_DIR}/${newest}`);
      this.record(`F ${this.now} ${process.key} lost ${newest}`, {
        kind: "disk-fault",
        process: process.key,
        detail: `lost ${newest}`,
      });
      return;
    }
    const candidates = segments.filter((_, i) => (sizes[i] as number) > 0);
    if (candidates.length === 0) return;
    const name = this.prng.pick(candidates);
    const bit = fs.flipRandomBit(`${SIM_DATA_DIR}/${name}`, this.prng);
    this.record(`F ${this.now} ${process.key} flipped ${name} bit ${bit}`, {
      kind: "disk-fault",
      process: process.key,
      detail: `flipped ${name} bit ${bit}`,
    });
  }

  /** A replica's application comes back from its durable snapshot and log, as in `paxos node`. */
  /**
   * A key-value run's replica: the real `PaxosNode` over this life's driver (which is built next),
   * with simulated timers and clock; the checker sees every command it proposes.
   */
  private kvNode(life: Life, replica: Replica): PaxosNode<AppCommand, AppResult, KvLockApp> {
    const kv = this.scenario.kv as NonNullable<Scenario["kv"]>;
    const process = life.process;
    const watch = new LockWatch(process.key, (detail) => this.checker.fail("lock", detail, this.events));
    const app = new KvLockApp({
      onGrant: (grant) => watch.grant(grant),
      onFree: (name, client) => watch.free(name, client),
      ...(this.options.bugs?.lockGrantWhileHeld ? { lockBugs: { grantWhileHeld: true } } : {}),
    });
    life.lockWatch = watch;
    return new PaxosNode<AppCommand, AppResult, KvLockApp>({
      id: process.id,
      app,
      replica,
      // A new core client every life, as `startNode` makes one (ids far from the clients' own).
      clientId: 2 ** 40 + process.id * 2 ** 20 + process.incarnation,
      host: {
        run: (call) => {
          if (life.alive) life.driver?.run(call as (role: RoleObject) => Output);
        },
        after: (steps, fn) => this.after(steps, () => life.alive && fn()),
        nowMs: () => this.now,
        onSubmit: (command) => this.checker.submitOptional(command),
      },
      sessionLimits: { sessionTtlMs: kv.sessionTtlMs },
      // The clients' own timeouts come first (`KvSettings.callTimeoutSteps`).
      limits: {
        proposeTimeoutMs: 10 * kv.callTimeoutSteps,
        readTimeoutMs: 10 * kv.callTimeoutSteps,
        // A leader's time goes into the log five times a session TTL (see `SessionMachine`).
        clockIntervalMs: Math.floor(kv.sessionTtlMs / 5),
      },
      ...(this.options.bugs?.node ? { bugs: this.options.bugs.node } : {}),
    });
  }

  private restoreApplication(process: SimProcess, replica: Replica, machine: SimApp): void {
    const restored = replica.learner.drainRestored();
    const through = replica.learner.deliveredThrough;
    this.checker.learnerRestarted(process.key, through, restored.snapshot, this.events);
    let appliedThrough = 0;
    try {
      if (restored.snapshot !== null) {
        machine.restore(restored.snapshot.app, restored.snapshot.slot);
        appliedThrough = restored.snapshot.slot;
      }
      for (const decision of restored.decisions) {
        machine.apply(decision);
        appliedThrough = decision.slot;
      }
    } catch {
      return; // the machine reported the bad state to the checker
    }
    if (appliedThrough !== through) {
      this.checker.fail(
        "snapshot",
        `${process.key} restarted delivered through slot ${through}, its application through ${appliedThrough}`,
        this.events,
      );
    }
    this.checker.appState(process.key, appliedThrough, machine.encode(), this.events);
  }

  /**
   * A process stopped on an error: an `InvariantViolation` from the core is an `assertion`
   * violation; anything else a role, the codec or the application threw (a `SyntaxError` from a
   * state that does not restore, a `RangeError`) is a `crash`. Either way the run reports it as a
   * violation with the seed, rather than the simulator dying with it.
   */
  private processFailed(process: SimProcess, error: unknown): void {
    if (error instanceof InvariantViolation) {
      this.checker.fail("assertion", `${process.key}: ${error.message}`, this.events);
      return;
    }
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.checker.fail("crash", `${process.key} stopped on ${text}`, this.events);
  }

  /** The checkers watch every message a driver sends and receives. */
  private observe(life: Life, direction: "in" | "out", message: Message, peer: string): void {
    const process = life.process;
    if (direction === "in") {
      this.record(`d ${this.now} ${peer}>${process.key} ${summarize(message)}`);
      if (this.delivering !== null) this.delivering.taken = traceMessage(message);
      return;
    }
    if (this.options.onEvent !== undefined)
      this.outgoing = { host: process.endpoint.host, peer, message: traceMessage(message) };
    if (this.stray !== null) this.watchBallots(message);
    if (this.scenario.targeted?.kind === "promise-crash") this.advancePromiseCrash(life, message);
    if (this.scenario.targeted?.kind === "campaign-crash") this.advanceCampaignCrash(life, message);
    if (message.type === "accept")
      this.checker.proposal(message.ballot, process.key, life.incarnation, this.events);
    if (message.type === "accepted" || message.type === "accept") this.checker.vote(message, this.events);
    else if (message.type === "prepare")
      this.checker.prepare(message.ballot, process.key, life.incarnation, this.events);
    else if (message.type === "snapshot-chunk") this.snapshotChunksSent++;
  }

  /** Timers on virtual time, for one incarnation: they die with it. */
  private scheduler(life: Life): Scheduler {
    return {
      immediate: (fn) => this.queue.push(this.now, { kind: "immediate", life, fn }),
      every: (ms, fn) => {
        const timer: Timer = { cancelled: false };
        // A random phase, so that processes do not tick in lockstep.
        this.queue.push(this.now + 1 + this.prng.int(ms), { kind: "every", life, fn, steps: ms, timer });
        return () => {
          timer.cancelled = true;
        };
      },
    };
  }

  /** Keeps one replica away for a while (see `SnapshotSettings.laggard`). */
  private scheduleLaggard(): void {
    const laggard = this.scenario.snapshots?.laggard;
    if (!laggard) return;
    // The drawn replica, or the next one whose absence leaves the others both quorums (else the
    // cluster would stop while it is away, and nobody would snapshot past it).
    const replicas = this.processes.filter((p) => p.kind === "replica");
    const first = replicas.findIndex((p) => p.id === laggard.replica);
    let process: SimProcess | undefined;
    for (let i = 0; i < replicas.length && process === undefined; i++) {
      const candidate = replicas[(first + i) % replicas.length] as SimProcess;
      const others = replicas.filter((p) => p !== candidate).map((p) => p.id);
      if (this.quorum.isPhase1Quorum(others) && this.quorum.isPhase2Quorum(others)) process = candidate;
    }
    if (process === undefined) return;
    const start = laggard.startTick * STEPS_PER_TICK;
    this.queue.push(start, { kind: "laggard", process, away: true });
    this.queue.push(start + laggard.ticks * STEPS_PER_TICK, { kind: "laggard", process, away: false });
  }

  private scheduleSubmissions(): void {
    const s = this.scenario;
    const spread = s.faultPhaseTicksMin * STEPS_PER_TICK;
    for (const client of this.byRole.get("client") ?? []) {
      for (let i = 1; i <= s.valuesPerClient; i++) {
        this.queue.push(this.prng.int(spread) + 1, {
          kind: "submit",
          process: client,
          payload: `c${client.id}v${i}`,
        });
      }
    }
  }

  // --- the network (SimWire) -----------------------------------------------------------------------

  listen(local: Endpoint, transport: SimTransport): void {
    this.listeners.set(local.host, transport);
    const process = this.byHost.get(local.host);
    // An acceptor back from a crash right after a promise hears the slow leader's late accepts first.
    if (process !== undefined && this.plan.crashed.has(process) && this.plan.held.length > 0)
      this.releaseHeld((to) => to === process);
    // A replica back from losing its disk in a deaf-leader-rejoin hears the deaf leader's old frames
    // first: heartbeats it sent while it led, long delayed (a floor must not be taken from them).
    if (process !== undefined && process === this.plan.a && this.plan.stage === "rejoin") {
      const stale = this.plan.stale.filter((copy) => copy.to === process);
      this.plan.stale = [];
      stale.forEach((copy, i) => {
        this.queue.push(this.now + 1 + i, { kind: "frame", from: this.plan.c as SimProcess, ...copy });
      });
      if (stale.length > 0)
        this.record(`P ${this.now} stale ${stale.length}`, { kind: "plan", detail: `stale ${stale.length}` });
    }
  }

  /** Sends on the slow leader's held-back frames to the destinations `which` picks (see `transmit`). */
  private releaseHeld(which: (to: SimProcess) => boolean): void {
    const kept: PlanState["held"] = [];
    let released = 0;
    for (const held of this.plan.held) {
      if (!which(held.to)) {
        kept.push(held);
        continue;
      }
      released++;
      this.queue.push(this.now + 1 + released, { kind: "frame", from: this.plan.c as SimProcess, ...held });
    }
    if (released > 0)
      this.record(`P ${this.now} released ${released}`, { kind: "plan", detail: `released ${released}` });
    this.plan.held = kept;
  }

  unlisten(local: Endpoint, transport: SimTransport): void {
    if (this.listeners.get(local.host) === transport) this.listeners.delete(local.host);
  }

  send(fromEndpoint: Endpoint, to: Endpoint, frame: Uint8Array): void {
    const from = this.byHost.get(fromEndpoint.host);
    if (from === undefined) throw new Error(`sim: a frame from unknown ${fromEndpoint.host}`);
    const info = this.takeOutgoing(fromEndpoint, to);
    if (to.host.startsWith(GROUP_PREFIX)) {
      for (const member of this.byRole.get(to.host.slice(GROUP_PREFIX.length)) ?? [])
        this.transmit(from, fromEndpoint, member, frame, info);
      return;
    }
    const target = this.byHost.get(to.host);
    if (target === undefined) {
      this.messagesDropped++; // nobody at that address
      if (this.options.onEvent !== undefined)
        this.emit({
          kind: "drop",
          from: from.key,
          to: to.host,
          sentMs: this.now,
          message: info,
          reason: "no such address",
        });
      return;
    }
    this.transmit(from, fromEndpoint, target, frame, info);
  }

  /**
   * `onEvent` only: the message of the frame `send` got, which its driver traced just before (a frame
   * the driver sent without a trace, an envelope notice, finds none: null).
   */
  private takeOutgoing(fromEndpoint: Endpoint, to: Endpoint): TraceMessage | null {
    const outgoing = this.outgoing;
    this.outgoing = null;
    if (outgoing === null || outgoing.host !== fromEndpoint.host || outgoing.peer !== `${to.host}:${to.port}`)
      return null;
    return outgoing.message;
  }

  /** One frame on its way: lost, duplicated, delayed (reordered by the spread) as the seed says. */
  private transmit(
    from: SimProcess,
    fromEndpoint: Endpoint,
    to: SimProcess,
    frame: Uint8Array,
    info: TraceMessage | null = null,
  ): void {
    this.messagesSent++;
    const sentMs = this.now;
    if (to === from) {
      // To itself (a replica's proposer to its own acceptor): loopback, no network faults.
      this.queue.push(this.now + 1, { kind: "frame", to, from, fromEndpoint, frame, sentMs, info });
      return;
    }
    const faults = this.scenario.network;
    if (this.faultsOn && this.prng.chance(faults.dropRate)) {
      this.messagesDropped++;
      if (this.options.onEvent !== undefined)
        this.emit({ kind: "drop", from: from.key, to: to.key, sentMs, message: info, reason: "lost" });
      return;
    }
    if (
      this.scenario.targeted?.kind === "promise-crash" &&
      this.faultsOn &&
      this.plan.stage === "slow" &&
      from === this.plan.c &&
      this.now < this.plan.at
    ) {
      // The slow leader of a promise-crash sequence: what it sends is held back (`releaseHeld`).
      this.plan.held.push({ to, fromEndpoint, frame, sentMs, info });
      if (this.options.onEvent !== undefined)
        this.emit({ kind: "hold", from: from.key, to: to.key, message: info });
      return;
    }
    if (
      this.plan.stage === "cut" &&
      from === this.plan.c &&
      this.faultsOn &&
      leaderOf(from.life?.role ?? null)
    ) {
      // The deaf leader's frames while it still leads: a late copy of the last few is kept.
      this.plan.stale.push({ to, fromEndpoint, frame, sentMs, info });
      const mine = this.plan.stale.filter((copy) => copy.to === to);
      if (mine.length > STALE_FRAMES_KEPT)
        this.plan.stale.splice(this.plan.stale.indexOf(mine[0] as (typeof mine)[0]), 1);
    }
    const copies = this.faultsOn && this.prng.chance(faults.duplicateRate) ? 2 : 1;
    if (copies === 2 && this.options.onEvent !== undefined)
      this.emit({ kind: "duplicate", from: from.key, to: to.key, message: info });
    for (let i = 0; i < copies; i++) {
      let delay = this.prng.range(faults.delayStepsMin, faults.delayStepsMax);
      if (this.faultsOn && this.prng.chance(faults.longDelayRate)) {
        delay += this.prng.int(faults.longDelayStepsMax);
        // Now and then far longer than many election timeouts.
        if (this.prng.chance(0.1)) delay += this.prng.int(faults.veryLongDelayStepsMax);
      }
      this.queue.push(this.now + delay, { kind: "frame", to, from, fromEndpoint, frame, sentMs, info });
    }
  }

  /** A line of the trace (hashed; `SimOptions.trace`), and the same event as data (`onEvent`). */
  private record(line: string, event?: TraceEventBody): void {
    this.hash.update(line);
    this.options.trace?.(line);
    if (event !== undefined) this.emit(event);
  }

  /** Hands `SimOptions.onEvent` an event, numbered and timed now. */
  private emit(body: TraceEventBody): void {
    this.options.onEvent?.({ event: this.events, timeMs: this.now, ...body } as TraceEvent);
  }

  /** `onEvent`: the checker's violations not yet reported, as events. */
  private reportViolations(): void {
    if (this.options.onEvent === undefined) return;
    const violations = this.checker.violations;
    for (; this.violationsReported < violations.length; this.violationsReported++) {
      const v = violations[this.violationsReported] as Violation;
      this.options.onEvent({
        event: v.event,
        timeMs: this.now,
        kind: "violation",
        property: v.property,
        detail: v.detail,
      });
    }
  }

  /** `onEvent`: what became of a queued frame that reached no driver. */
  private dropped(event: Extract<SimEvent, { kind: "frame" }>, reason: TraceDropReason): void {
    if (this.options.onEvent === undefined) return;
    const { from, to } = event;
    this.emit({
      kind: "drop",
      from: from.key,
      to: to.key,
      sentMs: event.sentMs ?? this.now,
      message: event.info ?? null,
      reason,
    });
  }

  // --- the event loop ------------------------------------------------------------------------------

  /** Runs events while `more()` holds and nothing failed; lets promise continuations run between. */
  private async runWhile(more: () => boolean): Promise<void> {
    while (!this.checker.failed && more()) {
      if (!this.step()) break;
      if (this.settleDue) await this.settle();
      if (this.fatalError !== null) throw this.fatalError;
      this.reportViolations();
    }
    this.reportViolations();
  }

  /**
   * Runs every promise continuation that the last event made ready (a completed sync resumes the
   * driver's group commit; a start opens storage and starts the driver), before the next event. A
   * macrotask turn drains the microtask queue completely; nothing else runs on this thread's loop,
   * so the order is the same on every run.
   */
  private async settle(): Promise<void> {
    this.settleDue = false;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.fatalError !== null) throw this.fatalError;
  }

  private step(): boolean {
    const next = this.queue.pop();
    if (next === undefined) return false;
    this.now = next.time;
    const event = next.item;
    if (event.kind === "immediate") this.turns++;
    else this.events++;
    try {
      this.handle(event);
      // B goes down the moment A has rejoined, before A learns more from it.
      if (this.plan.stage === "rejoin" && this.faultsOn) this.advanceDeafLeaderRejoin();
    } catch (error) {
      if (error instanceof InvariantViolation) {
        this.checker.fail("assertion", error.message, this.events);
        return false;
      }
      throw error;
    }
    return true;
  }

  private handle(event: SimEvent): void {
    switch (event.kind) {
      case "frame": {
        const { to, from } = event;
        if (to === this.strayProcess) {
          // The cluster answering the stray peer (an ack to a made-up client, a catch-up): nobody
          // listens there; counted, to show what the stray peer's requests cost.
          this.strayStats.repliesFrames++;
          this.strayStats.repliesBytes += event.frame.length;
          this.messagesDropped++;
          this.dropped(event, "to the stray peer");
          return;
        }
        if (this.blocked.has(`${from.key}>${to.key}`) || this.planBlocked.has(`${from.key}>${to.key}`)) {
          this.messagesDropped++;
          this.dropped(event, "partition");
          return;
        }
        if (this.isolated !== null && from !== to && (this.isolated === to || this.isolated === from)) {
          this.messagesDropped++;
          this.dropped(event, "kept away");
          return;
        }
        const transport = this.listeners.get(to.key);
        if (transport === undefined) {
          this.messagesDropped++; // nobody listening there now (down, or still starting)
          this.dropped(event, "nobody listening");
          return;
        }
        if (this.options.onEvent !== undefined) this.delivering = { taken: null };
        if (from === this.strayProcess) {
          this.strayStats.framesDelivered++;
          const driver = to.life?.driver ?? null;
          const before = driver?.stats.decodeErrors ?? 0;
          transport.deliver(event.frame, event.fromEndpoint);
          this.strayStats.decodeErrors += (driver?.stats.decodeErrors ?? 0) - before;
        } else {
          transport.deliver(event.frame, event.fromEndpoint);
        }
        this.delivered(event);
        return;
      }
      case "immediate": {
        const { life } = event;
        if (!life.alive) return;
        const persists = life.driver?.stats.persists ?? 0;
        event.fn();
        // A turn that wrote to storage started a sync: let the log's continuations run (up to the
        // file system's durability call, which completes as a later event).
        if ((life.driver?.stats.persists ?? 0) !== persists) this.settleDue = true;
        return;
      }
      case "every": {
        const { life, timer } = event;
        if (!life.alive || timer.cancelled) return;
        this.record(`t ${this.now} ${life.process.key}`, { kind: "timer", process: life.process.key });
        event.fn();
        this.queue.push(this.now + event.steps, event);
        return;
      }
      case "io":
        this.record(`s ${this.now} ${event.process.key}`, { kind: "sync", process: event.process.key });
        event.done();
        this.settleDue = true;
        return;
      case "submit": {
        const { process, payload } = event;
        const driver = process.life?.driver;
        if (driver === undefined || driver === null) throw new Error(`sim: ${process.key} is not running`);
        this.record(`c ${this.now} ${process.key}`, { kind: "submit", process: process.key, payload });
        driver.run((role) => {
          const submitted = (role as Client).submit(payload);
          if (!submitted.ok) throw new Error(`sim client refused its own payload: ${submitted.error}`);
          const { seq, output } = submitted.value;
          this.checker.submit({ client: process.id, seq, payload });
          return output;
        });
        return;
      }
      case "restart":
        if (event.process.life === null && event.process !== this.heldDown) this.restart(event.process);
        return;
      case "crash": {
        const { process } = event;
        if (this.faultsOn && process.life !== null && process.incarnation === event.incarnation) {
          this.crash(process, event.downSteps === undefined, event.downSteps);
          if (event.damage !== undefined) this.damageDisk(process, event.damage);
        }
        return;
      }
      case "laggard":
        if (this.faultsOn) this.keepAway(event.process, event.away);
        return;
      case "release":
        this.releaseHeld(() => true);
        return;
      case "hear":
        this.planBlocked.clear();
        return;
      case "heal":
        this.blocked.clear();
        this.partitionActive = false;
        this.record(`h ${this.now}`, { kind: "heal" });
        return;
      case "stray":
        if (this.strayTick()) this.queue.push(this.now + STEPS_PER_TICK, event);
        return;
      case "call":
        if (event.timer.cancelled) return;
        event.fn();
        this.settleDue = true; // a promise settled, or a client went on: its continuations run now
        return;
      case "world":
        if (this.faultsOn) {
          this.advanceDeafLeaderRejoin();
          this.armCampaignCrash();
          this.injectFaults();
          this.queue.push(this.now + STEPS_PER_TICK, event);
        }
        return;
    }
  }

  /** `onEvent`: a frame handed to a listening process (`accepted`: its driver took it in). */
  private delivered(event: Extract<SimEvent, { kind: "frame" }>): void {
    const delivering = this.delivering;
    this.delivering = null;
    if (delivering === null) return;
    this.emit({
      kind: "deliver",
      from: event.from.key,
      to: event.to.key,
      sentMs: event.sentMs ?? this.now,
      message: event.info ?? delivering.taken,
      accepted: delivering.taken !== null,
    });
  }

  // --- faults --------------------------------------------------------------------------------------

  private injectFaults(): void {
    const s = this.scenario;
    if (!this.partitionActive && this.prng.chance(s.partitionChance)) this.startPartition();
    if (this.prng.chance(s.crashChance)) {
      // Half the crashes hit the leader: its loss is what stresses recovery the most.
      const leaders = this.processes.filter((p) => leaderOf(p.life?.role ?? null));
      // Any process that is up or starting (a crash may come in the middle of its recovery).
      const candidates = this.processes.filter((p) => p.kind !== "client" && p.life !== null);
      const pool = leaders.length > 0 && this.prng.chance(0.5) ? leaders : candidates;
      if (pool.length > 0) this.crash(this.prng.pick(pool));
    }
  }

  private startPartition(): void {
    const members = this.processes;
    // One-way cuts are as common as the other shapes together: a node that hears nobody but is
    // still heard (a deaf leader) is what stresses rejoin and leader changes the most.
    const shape = this.prng.pick(["symmetric", "one-way", "leader", "deaf", "deaf"] as const);
    this.partitionActive = true;
    this.partitions++;
    if (shape === "leader" || shape === "deaf") {
      const leaders = members.filter((p) => leaderOf(p.life?.role ?? null));
      const cut = leaders.length > 0 ? leaders : [this.prng.pick(members)];
      for (const isolated of cut) {
        for (const other of members) {
          if (other === isolated) continue;
          this.blocked.add(`${other.key}>${isolated.key}`);
          if (shape === "leader") this.blocked.add(`${isolated.key}>${other.key}`);
        }
      }
    } else {
      const side = new Set(members.filter(() => this.prng.chance(0.5)).map((p) => p.key));
      for (const a of members) {
        for (const b of members) {
          if (side.has(a.key) && !side.has(b.key)) {
            this.blocked.add(`${a.key}>${b.key}`);
            if (shape === "symmetric") this.blocked.add(`${b.key}>${a.key}`);
          }
        }
      }
    }
    this.record(`p ${this.now} ${shape} ${this.blocked.size}`, {
      kind: "partition",
      shape,
      links: this.blocked.size,
    });
    const duration = this.prng.range(10, 150) * STEPS_PER_TICK;
    this.queue.push(this.now + duration, { kind: "heal" });
  }

  /**
   * The process dies at once: its timers and socket with it; its disk keeps only what was synced.
   * It restarts after `downSteps`, or (random crashes) after a quick reboot or a long outage.
   */
  private crash(process: SimProcess, diskFaults = true, downSteps?: number): void {
    this.crashes++;
    this.record(`x ${this.now} ${process.key}`, { kind: "crash", process: process.key });
    const life = process.life;
    if (life !== null) {
      this.collectRefusals(life);
      life.alive = false;
      life.transport.drop();
      if (life.node !== null) {
        life.node.abandon(); // its callers' calls end as of unknown outcome
        this.settleDue = true;
      }
      if (life.role instanceof Replica) process.rejoining = life.role.rejoining;
    }
    process.life = null;
    process.disk?.crash(this.prng);
    if (diskFaults) this.injectDiskFault(process);
    // Half the crashes are quick reboots, back before the others notice; half are long outages.
    const downtime =
      downSteps ??
      (this.prng.chance(0.5) ? this.prng.range(1, 10) : this.prng.range(10, 100)) * STEPS_PER_TICK;
    this.queue.push(this.now + downtime, { kind: "restart", process });
  }

  /** Whether a replica is rejoining (as far as its last life knew, or its disk was wiped since). */
  private rejoiningOrDamaged(process: SimProcess): boolean {
    const role = process.life?.role;
    return role instanceof Replica ? role.rejoining : process.rejoining;
  }

  /**
   * Disk faults, on a minority of replicas at a time, besides what every crash does to unsynced
   * writes (lost, torn or reordered: `MemoryFileSystem.crash`): a torn write (nothing more), a wiped
   * data directory, a flipped bit of synced data, or a lost newest segment. The log must notice the
   * last three when it is opened (no state, or damage), and the node rejoins (see `openState`).
   */
  private injectDiskFault(process: SimProcess): void {
    const s = this.scenario;
    if (process.kind !== "replica" || !this.prng.chance(s.diskFaultChance)) return;
    // Only as many at a time as the quorums can spare: the healthy replicas must still form both a
    // phase-1 and a phase-2 quorum, or nothing could be decided and no one could rejoin.
    const healthy = this.processes.filter(
      (p) => p.kind === "replica" && p !== process && !this.rejoiningOrDamaged(p),
    );
    const ids = healthy.map((p) => p.id);
    if (
      this.rejoiningOrDamaged(process) ||
      !this.quorum.isPhase1Quorum(ids) ||
      !this.quorum.isPhase2Quorum(ids)
    )
      return;
    const kind = this.prng.pick([
      "torn write",
      "wiped directory",
      "bit flip",
      "lost newest segment",
    ] as const);
    this.damageDisk(process, kind);
  }

  /** Damages a crashed replica's disk: it must rejoin when it next starts (unless a torn write). */
  private damageDisk(
    process: SimProcess,
    kind: "torn write" | "wiped directory" | "bit flip" | "lost newest segment",
  ): void {
    this.diskFaults++;
    this.record(`f ${this.now} ${process.key} ${kind}`, {
      kind: "disk-fault",
      process: process.key,
      detail: kind,
    });
    if (kind === "torn write" || process.disk === null) return; // the crash did it
    if (kind === "wiped directory") {
      if (process.disk.fs.exists(SIM_DATA_DIR)) process.disk.fs.wipeDirectory(SIM_DATA_DIR);
    } else {
      process.pendingDamage = kind; // done to the log at rest, before the next start opens it
    }
    process.rejoining = true; // its next start finds no state, or damage, and rejoins
    process.promises = { durable: ZERO_BALLOT, prior: ZERO_BALLOT };
  }

  // --- targeted fault sequences (Scenario.targeted) ---------------------------------------------------

  /**
   * The `deaf-leader-rejoin` sequence, one step per tick (the trace of issue 8, 1a): the leader C is
   * cut off one way (it hears nobody, it is still heard); once another replica B leads and has had
   * `voteTicks` to get values chosen, the third replica A crashes and loses its data directory, and
   * B's messages to it are held back until `muteTicks` after its reboot, so that it hears C first.
   * Once A has rejoined (or `rejoinWaitTicks` passed), B crashes for `downTicks` and C hears
   * everyone again: C runs phase 1 at a higher ballot with A. A rejoin floor taken from C's
   * heartbeats lets C choose a second value in a slot B got chosen.
   */
  private advanceDeafLeaderRejoin(): void {
    const t = this.scenario.targeted;
    if (t?.kind !== "deaf-leader-rejoin") return;
    const plan = this.plan;
    const replicas = this.processes.filter((p) => p.kind === "replica");
    switch (plan.stage) {
      case "wait": {
        if (this.now < t.startTick * STEPS_PER_TICK) return;
        const leaders = replicas.filter((p) => leaderOf(p.life?.role ?? null));
        const c = leaders[0];
        if (c === undefined || leaders.length !== 1) return;
        for (const other of this.processes) if (other !== c) this.planBlocked.add(`${other.key}>${c.key}`);
        // Its heartbeats keep the others following it: one of them, B, stops hearing it until it
        // leads; the rest (A) still hear it.
        const b = this.prng.pick(replicas.filter((p) => p !== c));
        this.planBlocked.add(`${c.key}>${b.key}`);
        plan.b = b;
        plan.c = c;
        plan.stage = "cut";
        this.record(`P ${this.now} deaf ${c.key}`, { kind: "plan", detail: `deaf ${c.key}` });
        return;
      }
      case "cut": {
        const b = replicas.find((p) => p !== plan.c && leaderOf(p.life?.role ?? null));
        if (b === undefined) return;
        this.planBlocked.delete(`${(plan.c as SimProcess).key}>${(plan.b as SimProcess).key}`);
        plan.b = b;
        plan.at = this.now + t.voteTicks * STEPS_PER_TICK;
        plan.stage = "led";
        this.record(`P ${this.now} led ${b.key}`, { kind: "plan", detail: `led ${b.key}` });
        return;
      }
      case "led": {
        const b = plan.b as SimProcess;
        const c = (plan.c as SimProcess).life?.role;
        if (c instanceof Replica)
          plan.deafProposedThrough = Math.max(plan.deafProposedThrough, c.proposer.proposedThrough);
        // B must have got a value chosen (with A's vote: C hears nobody) past what C proposed; up to
        // LED_WAIT_TICKS more are given for it.
        const bRole = b.life?.role;
        const bDelivered = bRole instanceof Replica ? bRole.learner.deliveredThrough : 0;
        if (this.now < plan.at) return;
        if (
          bDelivered <= plan.deafProposedThrough + 1 &&
          this.now < plan.at + LED_WAIT_TICKS * STEPS_PER_TICK
        )
          return;
        // A's loss must leave the others both quorums, as with random disk faults.
        const a = replicas.find((p) => {
          if (p === plan.c || p === b || p.life === null || this.rejoiningOrDamaged(p)) return false;
          const healthy = replicas.filter((q) => q !== p && !this.rejoiningOrDamaged(q)).map((q) => q.id);
          return this.quorum.isPhase1Quorum(healthy) && this.quorum.isPhase2Quorum(healthy);
        });
        if (a === undefined) return; // try again next tick
        plan.a = a;
        this.crash(a, false, t.rebootTicks * STEPS_PER_TICK);
        this.damageDisk(a, "wiped directory");
        this.planBlocked.add(`${b.key}>${a.key}`);
        plan.at = this.now + (t.rebootTicks + t.muteTicks) * STEPS_PER_TICK;
        plan.stage = "rejoin";
        this.record(`P ${this.now} wiped ${a.key}`, { kind: "plan", detail: `wiped ${a.key}` });
        return;
      }
      case "rejoin": {
        const a = plan.a as SimProcess;
        const b = plan.b as SimProcess;
        if (this.now < plan.at) return;
        this.planBlocked.delete(`${b.key}>${a.key}`);
        const role = a.life?.role;
        const rejoined = role instanceof Replica && !role.rejoining;
        if (!rejoined && this.now < plan.at + t.rejoinWaitTicks * STEPS_PER_TICK) return;
        this.planBlocked.clear();
        const bRole = b.life?.role;
        const bDelivered = bRole instanceof Replica ? bRole.learner.deliveredThrough : 0;
        if (b.life !== null) this.crash(b, false, t.downTicks * STEPS_PER_TICK);
        plan.stage = "done";
        const detail =
          `down ${b.key} ${rejoined ? "rejoined" : "not rejoined"} ` +
          `(decided through: ${a.key} ${role instanceof Replica ? role.learner.deliveredThrough : "-"}, ` +
          `${b.key} ${bDelivered}; ${(plan.c as SimProcess).key} proposed through ${plan.deafProposedThrough})`;
        this.record(`P ${this.now} ${detail}`, { kind: "plan", detail });
        return;
      }
      default:
        return;
    }
  }

  /**
   * The `promise-crash` sequence, driven by what processes send (the trace an acceptor that forgets
   * its newest promise breaks): the first leader to send an accept from `startTick` on goes slow
   * (everything it sends for `slowTicks` is held back, see `transmit`), so another proposer takes
   * over; every acceptor that promises a ballot above the slow leader's crashes right after the
   * promise is sent (it was persisted first) and reboots `rebootTicks` later, and the slow leader's
   * held-back accepts reach it first as it starts listening (`listen`); the rest go out `lateTicks`
   * after the slow spell ends.
   */
  private advancePromiseCrash(life: Life, message: Message): void {
    const t = this.scenario.targeted;
    if (t?.kind !== "promise-crash" || !this.faultsOn) return;
    const plan = this.plan;
    const process = life.process;
    if (plan.stage === "wait") {
      if (message.type !== "accept" || this.now < t.startTick * STEPS_PER_TICK || !leaderOf(life.role))
        return;
      plan.c = process;
      plan.ballot = message.ballot;
      plan.at = this.now + t.slowTicks * STEPS_PER_TICK;
      plan.stage = "slow";
      this.queue.push(plan.at + t.lateTicks * STEPS_PER_TICK, { kind: "release" });
      this.record(`P ${this.now} slow ${process.key}`, { kind: "plan", detail: `slow ${process.key}` });
      return;
    }
    if (
      plan.stage !== "slow" ||
      message.type !== "promise" ||
      (process.kind !== "acceptor" && process.kind !== "replica") ||
      this.now >= plan.at + t.lateTicks * STEPS_PER_TICK ||
      plan.crashed.has(process) ||
      !ballotGreater(message.ballot, plan.ballot) ||
      (process.kind === "replica" && message.ballot.node === process.id)
    )
      return;
    plan.crashed.add(process);
    this.record(`P ${this.now} promised ${process.key}`, { kind: "plan", detail: `promised ${process.key}` });
    this.queue.push(this.now + 1, {
      kind: "crash",
      process,
      incarnation: life.incarnation,
      downSteps: t.rebootTicks * STEPS_PER_TICK,
    });
  }

  /**
   * The `campaign-crash` sequence (the trace a log that does not notice a lost newest segment
   * breaks): the first replica to send a prepare as a candidate from `startTick` on crashes right
   * after it (the round was durable before the prepare left), its newest log segment is lost, and it
   * reboots `rebootTicks` later, hearing nobody for `deafTicks` more, so that it campaigns again
   * before it hears a higher ballot: a log that noticed the loss rejoins (and waits); one that did
   * not comes back with the round before and reuses its ballot.
   */
  private advanceCampaignCrash(life: Life, message: Message): void {
    const t = this.scenario.targeted;
    const process = life.process;
    const role = life.role;
    if (
      t?.kind !== "campaign-crash" ||
      !this.faultsOn ||
      (this.plan.stage !== "wait" && this.plan.stage !== "armed") ||
      message.type !== "prepare" ||
      this.now < t.startTick * STEPS_PER_TICK ||
      !(role instanceof Replica) ||
      role.proposer.mode !== "candidate" ||
      message.ballot.node !== process.id ||
      this.rejoiningOrDamaged(process) ||
      // Losing the only segment loses the whole log, which any log notices: wait for two.
      segmentsOf(process) < 2
    )
      return;
    // Its loss must leave the others both quorums, as with random disk faults.
    const healthy = this.processes
      .filter((p) => p.kind === "replica" && p !== process && !this.rejoiningOrDamaged(p))
      .map((p) => p.id);
    if (!this.quorum.isPhase1Quorum(healthy) || !this.quorum.isPhase2Quorum(healthy)) return;
    this.plan.stage = "done";
    this.record(`P ${this.now} campaigned ${process.key}`, {
      kind: "plan",
      detail: `campaigned ${process.key}`,
    });
    for (const other of this.processes)
      if (other !== process) this.planBlocked.add(`${other.key}>${process.key}`);
    this.queue.push(this.now + (t.rebootTicks + t.deafTicks) * STEPS_PER_TICK, { kind: "hear" });
    this.queue.push(this.now + 1, {
      kind: "crash",
      process,
      incarnation: life.incarnation,
      downSteps: t.rebootTicks * STEPS_PER_TICK,
      damage: "lost newest segment",
    });
  }

  /**
   * Under a stable leader there may be no election to catch: once every other replica's log has two
   * segments, the campaign-crash sequence crashes the leader (no disk fault) for `leaderDownTicks`.
   */
  private armCampaignCrash(): void {
    const t = this.scenario.targeted;
    if (t?.kind !== "campaign-crash" || this.plan.stage !== "wait" || this.now < t.startTick * STEPS_PER_TICK)
      return;
    const replicas = this.processes.filter((p) => p.kind === "replica");
    const leader = replicas.find((p) => leaderOf(p.life?.role ?? null));
    if (leader === undefined) return;
    if (replicas.some((p) => p !== leader && (p.life === null || segmentsOf(p) < 2))) return;
    this.plan.stage = "armed";
    this.record(`P ${this.now} armed ${leader.key}`, { kind: "plan", detail: `armed ${leader.key}` });
    this.crash(leader, false, t.leaderDownTicks * STEPS_PER_TICK);
  }

  /**
   * Sends a replica away (crashed, or cut off from everyone) or brings it back. While it is away the
   * others decide and snapshot past it; back, it must catch up from a snapshot.
   */
  private keepAway(process: SimProcess, away: boolean): void {
    const how = this.scenario.snapshots?.laggard?.how;
    this.record(`a ${this.now} ${process.key} ${away ? "away" : "back"}`, {
      kind: "laggard",
      process: process.key,
      away,
    });
    if (how === "partition") {
      this.isolated = away ? process : null;
      return;
    }
    if (away) {
      this.heldDown = process;
      if (process.life !== null) this.crash(process, false);
    } else {
      this.heldDown = null;
      if (process.life === null) this.restart(process);
    }
  }

  private restart(process: SimProcess): void {
    this.record(`r ${this.now} ${process.key}`, { kind: "restart", process: process.key });
    this.startLife(process);
    // A third of the restarts of a replica that lost its disk crash again within a few syncs: in
    // the middle of opening its state and setting up the rejoin (which must come back rejoining).
    if (this.faultsOn && process.kind === "replica" && process.rejoining && this.prng.chance(1 / 3)) {
      const at = this.now + this.prng.range(1, 3 * this.scenario.syncStepsMax + 3);
      this.queue.push(at, { kind: "crash", process, incarnation: process.incarnation });
    }
  }

  // --- the stray peer (Scenario.stray) ---------------------------------------------------------------

  /**
   * Once a tick while the stray peer attacks (`StraySettings`: in the fault phase, and for a while
   * after healing): its frames for this tick go out on the network. False once it has stopped.
   */
  private strayTick(): boolean {
    const stray = this.stray;
    const from = this.strayProcess;
    if (stray === null || from === null) return false;
    if (!stray.active(this.tick, this.healTick)) return this.healTick === null && this.faultsOn;
    const known = stray.commands.length;
    const frames = stray.framesFor(this.strayView());
    for (let i = known; i < stray.commands.length; i++)
      this.checker.submitStray(stray.commands[i] as Command);
    for (const frame of frames) this.straySend(from, frame);
    return true;
  }

  private straySend(from: SimProcess, frame: StrayFrame): void {
    const { role, id } = frame.to;
    const target = `${role}${id === undefined ? "" : `:${id}`}`;
    this.record(`S ${this.now} ${frame.attack} ${target} ${frame.summary}`, {
      kind: "stray",
      attack: frame.attack,
      to: target,
      detail: frame.summary,
    });
    const members = (this.byRole.get(role) ?? []).filter((p) => id === undefined || p.id === id);
    const sealed = this.straySeal(frame);
    const info = this.options.onEvent === undefined ? null : strayMessage(this.codec, frame);
    for (const to of members) this.transmit(from, from.endpoint, to, sealed, info);
  }

  /**
   * The stray peer's envelope: the right cluster id and, without a key, whatever sender its message
   * claims (nothing authenticates it, so it reaches validation); it never has the cluster key, so in
   * a keyed run every frame of it must be refused by the envelope check.
   */
  private straySeal(frame: StrayFrame): Uint8Array {
    const decoded = this.codec.decode(frame.frame);
    const request = decoded.ok && decoded.value.type === "request";
    const kind = request ? "client" : this.scenario.layout === "collapsed" ? "node" : "proposer";
    const id = frame.from;
    const key = `${kind}:${id}`;
    let guard = this.strayGuards.get(key);
    if (guard === undefined) {
      guard = new EnvelopeGuard({
        clusterId: this.clusterId(),
        self: { kind, id },
        roles: [],
        incarnation: 1,
        key: null,
      });
      this.strayGuards.set(key, guard);
    }
    return guard.seal(frame.frame, frame.to);
  }

  /** The cluster id every process's envelope carries (as production derives it). */
  private clusterId(): number {
    return this.scenario.layout === "collapsed"
      ? clusterIdOfConfig(this.clusterConfig)
      : clusterIdOf(`sim ${this.scenario.seed}`);
  }

  /** The acceptors the cluster can do without: the others form a phase-1 and a phase-2 quorum. */
  private get spareAcceptors(): readonly NodeId[] {
    const ids = this.quorum.acceptors;
    return ids.filter((id) => {
      const others = ids.filter((other) => other !== id);
      return this.quorum.isPhase1Quorum(others) && this.quorum.isPhase2Quorum(others);
    });
  }

  /** What the stray peer sees of the run: who is there, the ballots sent, what is decided. */
  private strayView(): StrayView {
    const ids = (role: string) => (this.byRole.get(role) ?? []).map((p) => p.id);
    return {
      tick: this.tick,
      ids: { proposer: ids("proposer"), acceptor: ids("acceptor"), learner: ids("learner") },
      membersKnown: this.scenario.layout === "collapsed",
      spareAcceptors: this.spareAcceptors,
      highestRound: this.highestRound,
      leaderBallot: this.leaderBallot,
      decidedThrough: this.checker.decidedLog().length,
      healed: this.healTick !== null,
    };
  }

  /** Follows the ballots processes send (the stray peer aims past them). */
  private watchBallots(message: Message): void {
    if (message.type === "prepare" || message.type === "accept" || message.type === "heartbeat") {
      if (message.ballot.round > this.highestRound) this.highestRound = message.ballot.round;
      if (message.type !== "prepare" && ballotGreater(message.ballot, this.leaderBallot))
        this.leaderBallot = message.ballot;
    }
  }

  /** Adds a life's role's refusals (`Refusals`, where the role keeps them) to the run's. */
  private collectRefusals(life: Life, into: Map<string, number> = this.refusals): void {
    const refusals = refusalsOf(life.role);
    if (refusals === null) return;
    for (const [reason, n] of Object.entries(refusals.byReason()))
      into.set(reason, (into.get(reason) ?? 0) + n);
  }

  private strayReport(): StrayReport | null {
    const stray = this.stray;
    if (stray === null) return null;
    const refusals = new Map(this.refusals);
    for (const process of this.processes)
      if (process.life !== null) this.collectRefusals(process.life, refusals);
    return {
      sent: Object.fromEntries([...stray.sent].sort(([a], [b]) => (a < b ? -1 : 1))),
      framesSent: stray.totalSent,
      ...this.strayStats,
      refusals: Object.fromEntries([...refusals].sort(([a], [b]) => (a < b ? -1 : 1))),
    };
  }

  // --- liveness ------------------------------------------------------------------------------------

  private learnerKeys(): SimProcess[] {
    return this.processes.filter(
      (p) => p.kind === "learner" || p.kind === "replica" || p.kind === "proposer",
    );
  }

  private allDone(): boolean {
    if (this.kv !== null && !this.kv.done) return false;
    // A replica whose disk was damaged must have rejoined as an acceptor by the end.
    for (const process of this.processes) {
      const role = process.life?.role ?? null;
      if (role === null) return false;
      if (role instanceof Replica && role.rejoining) return false;
      if (role instanceof Client && role.unackedCount > 0) return false;
    }
    for (const process of this.learnerKeys()) if (!this.checker.deliveredAll(process.key)) return false;
    return true;
  }

  private livenessReport(): string {
    const lines: string[] = [];
    for (const process of this.learnerKeys()) {
      const missing = this.checker.missingFor(process.key);
      if (missing.length > 0)
        lines.push(`${process.key} misses ${missing.length} (${missing.slice(0, 3).join(",")})`);
    }
    for (const process of this.processes) {
      const role = process.life?.role ?? null;
      if (role === null) lines.push(`${process.key} is not running`);
      else if (role instanceof Client && role.unackedCount > 0)
        lines.push(`${process.key} has ${role.unackedCount} unacked`);
      else if (role instanceof Replica && role.rejoining)
        lines.push(`${process.key} has not rejoined (floor ${role.rejoinFloorSlot})`);
    }
    if (this.kv !== null && !this.kv.done) lines.push(`key-value clients: ${this.kv.summary()}`);
    return `not everything decided ${this.scenario.livenessTicksMax} ticks after healing: ${lines.join("; ")}`;
  }
}

/** A role's `Refusals`, where it keeps them (issue 9: every core role; a client keeps none). */
function refusalsOf(role: RoleObject | null): Refusals | null {
  if (role === null || !("refusals" in role)) return null;
  const refusals = (role as { refusals?: unknown }).refusals;
  return refusals instanceof Refusals ? refusals : null;
}

/** How many log segments a process's data directory holds (0 without a disk). */
function segmentsOf(process: SimProcess): number {
  return process.disk?.fs.namesIn(SIM_DATA_DIR).filter((name) => /^wal-\d+\.log$/.test(name)).length ?? 0;
}

function leaderOf(node: RoleObject | null): boolean {
  if (node instanceof Proposer || node instanceof Replica) return node.mode === "leader";
  return false;
}

function summarize(message: Message): string {
  switch (message.type) {
    case "prepare":
      return `prepare ${message.ballot.round}.${message.ballot.node} ${message.firstSlot}`;
    case "promise":
      return `promise ${message.ballot.round}.${message.ballot.node} ${message.accepted.length} ${message.nextSlot}`;
    case "accept":
    case "accepted":
      return `${message.type} ${message.ballot.round}.${message.ballot.node} ${message.slot} ${message.value?.commands.length ?? "-"}`;
    case "reject":
      return `reject ${message.promised.round}.${message.promised.node} ${message.slot}`;
    case "decide":
      return `decide ${message.entries.length}`;
    case "heartbeat":
      return `heartbeat ${message.ballot.round}.${message.ballot.node} ${message.decidedThrough}`;
    case "catchup":
      return `catchup ${message.fromSlot}-${message.toSlot}`;
    case "request":
      return `request ${message.commands.length}`;
    case "ack":
      return `ack ${message.seqs.length}`;
    case "refuse":
      return `refuse ${message.seqs.length}`;
    case "snapshot-request":
      return `snapshot-request ${message.slot} ${message.offset}`;
    case "snapshot-chunk":
      return `snapshot-chunk ${message.slot} ${message.offset} ${message.data.length}/${message.length}`;
    case "rejoin-query":
      return "rejoin-query";
    case "rejoin-report":
      return `rejoin-report ${message.voting ? `${message.promised.round}.${message.promised.node}` : "-"} ${message.votedThrough} ${message.leaderBallot.round}.${message.leaderBallot.node} ${message.proposedThrough}`;
  }
}

/** A message as the structured trace shows it (`TraceMessage`). */
function traceMessage(message: Message): TraceMessage {
  const ballot = (b: Ballot) => `${b.round}.${b.node}`;
  const summary = summarize(message);
  switch (message.type) {
    case "prepare":
      return { type: message.type, ballot: ballot(message.ballot), slot: message.firstSlot, summary };
    case "promise":
    case "heartbeat":
      return { type: message.type, ballot: ballot(message.ballot), slot: null, summary };
    case "accept":
    case "accepted":
      return { type: message.type, ballot: ballot(message.ballot), slot: message.slot, summary };
    case "reject":
      return { type: message.type, ballot: ballot(message.promised), slot: message.slot, summary };
    case "decide":
      return { type: message.type, ballot: null, slot: message.entries[0]?.slot ?? null, summary };
    case "catchup":
      return { type: message.type, ballot: null, slot: message.fromSlot, summary };
    case "snapshot-request":
    case "snapshot-chunk":
      return { type: message.type, ballot: null, slot: message.slot, summary };
    default:
      return { type: message.type, ballot: null, slot: null, summary };
  }
}

/** A stray frame's message, where it decodes (garbage does not: null). */
function strayMessage(codec: Codec, frame: StrayFrame): TraceMessage | null {
  const decoded = codec.decode(frame.frame);
  return decoded.ok ? traceMessage(decoded.value) : null;
}

/** A deliberately broken quorum system: thresholds one acceptor weight too small. */
function oneSmaller(quorum: QuorumSystem): QuorumSystem {
  const smaller = (threshold: number) => Math.max(1, threshold - 1);
  const sum = (ids: Iterable<number>) => {
    let total = 0;
    for (const id of ids) total += quorum.weightOf(id);
    return total;
  };
  return {
    acceptors: quorum.acceptors,
    phase1Weight: smaller(quorum.phase1Weight),
    phase2Weight: smaller(quorum.phase2Weight),
    totalWeight: quorum.totalWeight,
    description: `${quorum.description} minus one (broken)`,
    isAcceptor: (id) => quorum.isAcceptor(id),
    weightOf: (id) => quorum.weightOf(id),
    isPhase1Quorum: (ids) => sum(ids) >= smaller(quorum.phase1Weight),
    isPhase2Quorum: (ids) => sum(ids) >= smaller(quorum.phase2Weight),
  };
}
