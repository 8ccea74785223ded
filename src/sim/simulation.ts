import {
  type AcceptedEntry,
  Acceptor,
  type AcceptorBugs,
  type Ballot,
  ballotGreater,
  Client,
  createQuorumSystem,
  type Decision,
  type Destination,
  type DurableDelta,
  type Envelope,
  InvariantViolation,
  Learner,
  type LearnerBugs,
  type Limits,
  type Message,
  type Output,
  Prng,
  Proposer,
  type ProposerBugs,
  type QuorumSystem,
  Replica,
  type ReplicaBugs,
  type Snapshot,
  type Value,
  ZERO_BALLOT,
} from "../core/index.js";
import { AppDigest } from "./app.js";
import { SafetyChecker, type Violation } from "./checker.js";
import { TraceHash } from "./hash.js";
import { EventQueue } from "./heap.js";
import { type Scenario, STEPS_PER_TICK } from "./scenario.js";

/** Deliberate bugs to switch on, to prove the checkers catch them. Tests only. */
export interface SimBugs {
  readonly acceptor?: AcceptorBugs;
  readonly proposer?: ProposerBugs;
  readonly learner?: LearnerBugs;
  /** Passed to every replica (e.g. the rejoin rule before issue 8). */
  readonly replica?: ReplicaBugs;
  /** Quorums one acceptor smaller than needed (a majority of 3 becomes 1). */
  readonly quorumOneSmaller?: boolean;
  /** Replicas hand `snapshot()` their application's state one slot behind (the last change missing). */
  readonly snapshotOneSlotBehind?: boolean;
  /** Replicas apply an output's `decided` before installing its `snapshot` (the contract says after). */
  readonly decideBeforeInstall?: boolean;
}

export interface SimOptions {
  readonly bugs?: SimBugs;
  /** Called with a line per event (for `paxos sim --trace`). */
  readonly trace?: (line: string) => void;
}

export interface RunResult {
  readonly seed: number;
  readonly events: number;
  readonly ticks: number;
  readonly decisions: number;
  readonly deliveredCommands: number;
  readonly submitted: number;
  readonly messagesSent: number;
  readonly messagesDropped: number;
  readonly crashes: number;
  readonly partitions: number;
  readonly diskFaults: number;
  /** Snapshots replicas took, snapshots they installed from peers, and `snapshot-chunk` messages sent. */
  readonly snapshotsTaken: number;
  readonly snapshotsInstalled: number;
  readonly snapshotChunksSent: number;
  readonly violations: readonly Violation[];
  readonly traceHash: string;
}

type Kind = "acceptor" | "proposer" | "learner" | "replica" | "client";
type RoleObject = Acceptor | Proposer | Learner | Replica | Client;

interface DurableState {
  promised: Ballot;
  readonly accepted: Map<number, AcceptedEntry>;
  round: number;
  floorSlot: number;
  /** Marked when the disk was found damaged; cleared (durably) when the rejoin completes. */
  rejoining: boolean;
  /** A replica's delivered log past its snapshot, by slot. */
  readonly decided: Map<number, Value>;
  /** A replica's newest snapshot: the decided log through its slot is in it. */
  snapshot: Snapshot | null;
}

interface PendingWrite {
  readonly delta: DurableDelta | null;
  readonly messages: Envelope[];
}

interface SimProcess {
  readonly key: string;
  readonly kind: Kind;
  readonly id: number;
  node: RoleObject | null;
  incarnation: number;
  readonly durable: DurableState;
  /** Writes not yet durable, in order; their messages leave when they complete. */
  readonly disk: PendingWrite[];
  readonly prng: Prng;
  /** A replica's application (see `AppDigest`), rebuilt from its durable state at each start. */
  app: AppDigest | null;
  /** The slot through which `app` has applied. */
  appliedThrough: number;
}

type SimEvent =
  | {
      readonly kind: "deliver";
      readonly to: SimProcess;
      readonly from: SimProcess;
      readonly message: Message;
      readonly incarnation: number;
    }
  | { readonly kind: "tick"; readonly process: SimProcess; readonly incarnation: number }
  | { readonly kind: "synced"; readonly process: SimProcess; readonly incarnation: number }
  | { readonly kind: "submit"; readonly process: SimProcess; readonly payload: string }
  | { readonly kind: "restart"; readonly process: SimProcess }
  | { readonly kind: "heal" }
  | { readonly kind: "laggard"; readonly process: SimProcess; readonly away: boolean }
  | { readonly kind: "world" };

/**
 * A deterministic simulation of a whole Paxos deployment: virtual time, a network that drops,
 * duplicates, delays and reorders messages and can be partitioned, disks whose unsynced writes are
 * lost in a crash, and processes that crash and restart with only what they had persisted. The core
 * roles run unchanged. One seed chooses everything; the same seed replays event for event.
 */
export class Simulation {
  readonly checker = new SafetyChecker();
  private readonly prng: Prng;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly hash = new TraceHash();
  readonly processes: SimProcess[] = [];
  private readonly byRole = new Map<string, SimProcess[]>();
  private readonly quorum: QuorumSystem;
  private readonly limits: Partial<Limits>;
  private readonly blocked = new Set<string>();
  private now = 0;
  private events = 0;
  private faultsOn = true;
  private messagesSent = 0;
  private messagesDropped = 0;
  private crashes = 0;
  private partitions = 0;
  private diskFaults = 0;
  private snapshotsTaken = 0;
  private snapshotsInstalled = 0;
  private snapshotChunksSent = 0;
  private partitionActive = false;
  /** A replica cut off from everyone (`SnapshotSettings.laggard`), apart from any partition. */
  private isolated: SimProcess | null = null;
  /** A replica kept down (`SnapshotSettings.laggard`): restarts wait until it is released. */
  private heldDown: SimProcess | null = null;

  constructor(
    readonly scenario: Scenario,
    private readonly options: SimOptions = {},
  ) {
    this.prng = new Prng(scenario.seed ^ 0x5eed);
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
    this.buildProcesses();
  }

  /** Runs the fault phase, heals everything, then requires liveness. */
  run(): RunResult {
    const s = this.scenario;
    this.begin();
    const faultEnd = () =>
      this.events >= s.faultPhaseEventsMin && this.now >= s.faultPhaseTicksMin * STEPS_PER_TICK;
    while (!this.checker.failed && !faultEnd()) if (!this.step()) break;
    return this.finish();
  }

  /** Starts every process and schedules the clients' submissions. */
  begin(): void {
    for (const process of this.processes) this.startProcess(process, this.prng.int(STEPS_PER_TICK));
    this.scheduleSubmissions();
    this.scheduleLaggard();
    this.queue.push(STEPS_PER_TICK, { kind: "world" });
  }

  /** Processes events up to virtual tick `tick` (for drivers that pace a run in real time). */
  advanceTo(tick: number): void {
    const until = tick * STEPS_PER_TICK;
    while (!this.checker.failed && this.queue.peekTime() <= until) if (!this.step()) break;
    this.now = Math.max(this.now, until);
  }

  get tick(): number {
    return Math.floor(this.now / STEPS_PER_TICK);
  }

  /** The processes currently leading (normally one). */
  leaders(): string[] {
    return this.processes.filter((p) => p.node !== null && leaderOf(p.node)).map((p) => p.key);
  }

  /** Heals the network, restarts the crashed, stops faults, and runs until everything is decided. */
  finish(): RunResult {
    const s = this.scenario;
    this.faultsOn = false;
    this.blocked.clear();
    this.partitionActive = false;
    this.isolated = null;
    this.heldDown = null;
    for (const process of this.processes) if (process.node === null) this.restart(process);
    const deadline = this.now + s.livenessTicksMax * STEPS_PER_TICK;
    while (!this.checker.failed && !this.allDone()) {
      if (this.now > deadline) {
        this.checker.fail("liveness", this.livenessReport(), this.events);
        break;
      }
      if (!this.step()) break;
    }
    return {
      seed: s.seed,
      events: this.events,
      ticks: Math.floor(this.now / STEPS_PER_TICK),
      decisions: this.checker.decisions,
      deliveredCommands: this.checker.deliveredCommands,
      submitted: this.checker.submittedCount(),
      messagesSent: this.messagesSent,
      messagesDropped: this.messagesDropped,
      crashes: this.crashes,
      partitions: this.partitions,
      diskFaults: this.diskFaults,
      snapshotsTaken: this.snapshotsTaken,
      snapshotsInstalled: this.snapshotsInstalled,
      snapshotChunksSent: this.snapshotChunksSent,
      violations: this.checker.violations,
      traceHash: this.hash.digest(),
    };
  }

  // --- setup ---------------------------------------------------------------------------------------

  private buildProcesses(): void {
    const s = this.scenario;
    const add = (kind: Kind, id: number) => {
      const process: SimProcess = {
        key: `${kind}:${id}`,
        kind,
        id,
        node: null,
        incarnation: 0,
        durable: {
          promised: ZERO_BALLOT,
          accepted: new Map(),
          round: 0,
          floorSlot: 0,
          rejoining: false,
          decided: new Map(),
          snapshot: null,
        },
        disk: [],
        prng: this.prng.fork(),
        app: null,
        appliedThrough: 0,
      };
      this.processes.push(process);
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

  private createNode(process: SimProcess): RoleObject {
    const bugs = this.options.bugs ?? {};
    const prng = process.prng.fork();
    const durable = process.durable;
    const restore = {
      promised: durable.promised,
      accepted: [...durable.accepted.values()].sort((a, b) => a.slot - b.slot),
      floorSlot: durable.floorSlot,
    };
    switch (process.kind) {
      case "acceptor":
        return new Acceptor({
          id: process.id,
          limits: this.limits,
          restore,
          ...(bugs.acceptor ? { bugs: bugs.acceptor } : {}),
        });
      case "proposer":
        return new Proposer({
          id: process.id,
          quorum: this.quorum,
          prng,
          limits: this.limits,
          restore: { round: durable.round },
          bugs: { ...bugs.proposer, ...(bugs.learner ? { learner: bugs.learner } : {}) },
        });
      case "learner":
        return new Learner({
          id: process.id,
          quorum: this.quorum,
          limits: this.limits,
          ...(bugs.learner ? { bugs: bugs.learner } : {}),
        });
      case "replica": {
        const snapshots = this.scenario.snapshots;
        return new Replica({
          id: process.id,
          quorum: this.quorum,
          prng,
          limits: this.limits,
          restore: {
            acceptor: restore,
            round: durable.round,
            snapshot: durable.snapshot,
            log: contiguousLog(durable.decided, (durable.snapshot?.slot ?? 0) + 1),
          },
          ...(durable.rejoining ? { rejoining: true } : {}),
          ...(snapshots
            ? { snapshotLogBytes: snapshots.snapshotLogBytes, logRetainSlots: snapshots.logRetainSlots }
            : {}),
          bugs,
        });
      }
      case "client":
        return new Client({ id: process.id, prng, retryTicks: 20, retryTicksMax: 80 });
    }
  }

  private startProcess(process: SimProcess, phase: number): void {
    const node = this.createNode(process);
    process.node = node;
    process.incarnation++;
    if (node instanceof Replica) {
      // The application comes back from the durable state: the snapshot, then the log past it.
      const restored = node.learner.drainRestored();
      const through = node.learner.deliveredThrough;
      this.checker.learnerRestarted(process.key, through, restored.snapshot, this.events);
      process.app = new AppDigest();
      process.appliedThrough = 0;
      if (restored.snapshot !== null) this.installApp(process, restored.snapshot);
      for (const decision of restored.decisions) this.applyDecision(process, decision);
      if (process.appliedThrough !== through) {
        this.checker.fail(
          "snapshot",
          `${process.key} restarted delivered through slot ${through}, its application through ${process.appliedThrough}`,
          this.events,
        );
      }
      this.checker.appState(process.key, process.appliedThrough, process.app.encode(), this.events);
    } else if (process.kind === "learner" || process.kind === "proposer") {
      this.checker.learnerRestarted(process.key, 0);
    }
    this.queue.push(this.now + 1 + phase, { kind: "tick", process, incarnation: process.incarnation });
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

  // --- the event loop ------------------------------------------------------------------------------

  private step(): boolean {
    const next = this.queue.pop();
    if (next === undefined) return false;
    this.now = next.time;
    this.events++;
    const event = next.item;
    try {
      this.handle(event);
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
      case "deliver": {
        const { to, message } = event;
        if (to.node === null || to.incarnation !== event.incarnation) return;
        if (
          this.blocked.has(`${event.from.key}>${to.key}`) ||
          (this.isolated !== null &&
            event.from !== to &&
            (this.isolated === to || this.isolated === event.from))
        ) {
          this.messagesDropped++;
          return;
        }
        this.record(`d ${this.now} ${event.from.key}>${to.key} ${summarize(message)}`);
        this.apply(to, to.node.step(message));
        this.takeSnapshotIfDue(to);
        return;
      }
      case "tick": {
        const { process } = event;
        if (process.node === null || process.incarnation !== event.incarnation) return;
        this.record(`t ${this.now} ${process.key}`);
        this.apply(process, process.node.tick());
        this.takeSnapshotIfDue(process);
        this.queue.push(this.now + STEPS_PER_TICK, event);
        return;
      }
      case "synced": {
        const { process } = event;
        if (process.node === null || process.incarnation !== event.incarnation) return;
        const write = process.disk.shift();
        if (write === undefined) return;
        this.record(`s ${this.now} ${process.key}`);
        if (write.delta !== null) applyDelta(process.durable, write.delta);
        for (const envelope of write.messages) this.send(process, envelope);
        return;
      }
      case "submit": {
        const { process } = event;
        const client = process.node as Client;
        const submitted = client.submit(event.payload);
        if (!submitted.ok) throw new Error(`sim client refused its own payload: ${submitted.error}`);
        const { seq, output } = submitted.value;
        this.checker.submit({ client: process.id, seq, payload: event.payload });
        this.record(`c ${this.now} ${process.key} ${seq}`);
        this.apply(process, output);
        return;
      }
      case "restart":
        if (event.process.node === null && event.process !== this.heldDown) this.restart(event.process);
        return;
      case "laggard":
        if (this.faultsOn) this.keepAway(event.process, event.away);
        return;
      case "heal":
        this.blocked.clear();
        this.partitionActive = false;
        this.record(`h ${this.now}`);
        return;
      case "world":
        if (this.faultsOn) {
          this.injectFaults();
          this.queue.push(this.now + STEPS_PER_TICK, event);
        }
        return;
    }
  }

  /**
   * Carries out a role's output: a snapshot and decisions to the checker and the application (the
   * snapshot first), writes to disk, messages to the network.
   */
  private apply(process: SimProcess, output: Output): void {
    const snapshot = output.snapshot;
    if (snapshot !== null) {
      this.snapshotsInstalled++;
      this.record(`i ${this.now} ${process.key} ${snapshot.slot}`);
      this.checker.snapshotInstalled(process.key, snapshot, this.events);
    }
    for (const decision of output.decided) this.checker.decision(process.key, decision, this.events);
    if (process.app !== null && (snapshot !== null || output.decided.length > 0)) {
      // The application: the snapshot replaces its state, then the decisions past it apply.
      const wrongOrder = this.options.bugs?.decideBeforeInstall === true;
      if (snapshot !== null && !wrongOrder) this.installApp(process, snapshot);
      for (const decision of output.decided) this.applyDecision(process, decision);
      if (snapshot !== null && wrongOrder) this.installApp(process, snapshot);
      this.checker.appState(process.key, process.appliedThrough, process.app.encode(), this.events);
    }
    for (const envelope of output.send) this.send(process, envelope);
    if (output.persist !== null || (output.sendAfterPersist.length > 0 && process.disk.length > 0)) {
      const s = this.scenario;
      if (output.persist !== null) {
        process.disk.push({ delta: output.persist, messages: [...output.sendAfterPersist] });
        const delay = this.prng.range(s.syncStepsMin, s.syncStepsMax);
        // Writes complete in order: each sync lands no earlier than the one before it.
        this.queue.push(this.now + delay, { kind: "synced", process, incarnation: process.incarnation });
      } else {
        // Nothing new to write, but an earlier write these messages depend on is still in flight.
        const last = process.disk[process.disk.length - 1] as PendingWrite;
        last.messages.push(...output.sendAfterPersist);
      }
    } else {
      for (const envelope of output.sendAfterPersist) this.send(process, envelope);
    }
  }

  /** Replaces a replica's application with the state in a snapshot (restored or installed). */
  private installApp(process: SimProcess, snapshot: Snapshot): void {
    const app = AppDigest.decode(snapshot.app);
    if (app === null) {
      this.checker.fail(
        "snapshot",
        `${process.key}: snapshot through slot ${snapshot.slot} has no application state`,
        this.events,
      );
      return;
    }
    process.app = app;
    process.appliedThrough = snapshot.slot;
  }

  private applyDecision(process: SimProcess, decision: Decision): void {
    (process.app as AppDigest).applyDecision(decision);
    process.appliedThrough = decision.slot;
  }

  /**
   * At the end of a replica's turn its application has applied everything delivered: the moment to
   * take a snapshot when one is due. Its output (persist the snapshot and the acceptor's new floor)
   * goes the way of every other output.
   */
  private takeSnapshotIfDue(process: SimProcess): void {
    const node = process.node;
    if (!(node instanceof Replica) || !node.snapshotDue || process.app === null) return;
    const app = this.options.bugs?.snapshotOneSlotBehind
      ? process.app.encodePrevious()
      : process.app.encode();
    const output = node.snapshot(app);
    const snapshot = output.persist?.snapshot;
    if (snapshot !== undefined) {
      this.snapshotsTaken++;
      this.record(`k ${this.now} ${process.key} ${snapshot.slot}`);
      this.checker.snapshotTaken(process.key, snapshot, this.events);
    }
    this.apply(process, output);
  }

  private send(from: SimProcess, envelope: Envelope): void {
    const message = envelope.message;
    if (message.type === "accepted" || message.type === "accept") this.checker.vote(message, this.events);
    if (message.type === "prepare")
      this.checker.prepare(message.ballot, from.key, from.incarnation, this.events);
    for (const to of this.resolve(envelope.to)) {
      this.messagesSent++;
      if (message.type === "snapshot-chunk") this.snapshotChunksSent++;
      if (to === from) {
        // Local delivery inside one process: no network faults.
        this.queue.push(this.now + 1, { kind: "deliver", to, from, message, incarnation: to.incarnation });
        continue;
      }
      const faults = this.scenario.network;
      if (this.faultsOn && this.prng.chance(faults.dropRate)) {
        this.messagesDropped++;
        continue;
      }
      const copies = this.faultsOn && this.prng.chance(faults.duplicateRate) ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        let delay = this.prng.range(faults.delayStepsMin, faults.delayStepsMax);
        if (this.faultsOn && this.prng.chance(faults.longDelayRate))
          delay += this.prng.int(faults.longDelayStepsMax);
        this.queue.push(this.now + delay, {
          kind: "deliver",
          to,
          from,
          message,
          incarnation: to.incarnation,
        });
      }
    }
  }

  private resolve(destination: Destination): SimProcess[] {
    const members = this.byRole.get(destination.role) ?? [];
    if (destination.id === undefined) return members;
    return members.filter((p) => p.id === destination.id);
  }

  private record(line: string): void {
    this.hash.update(line);
    this.options.trace?.(line);
  }

  // --- faults --------------------------------------------------------------------------------------

  private injectFaults(): void {
    const s = this.scenario;
    if (!this.partitionActive && this.prng.chance(s.partitionChance)) this.startPartition();
    if (this.prng.chance(s.crashChance)) {
      // Half the crashes hit the leader: its loss is what stresses recovery the most.
      const leaders = this.processes.filter((p) => p.node !== null && leaderOf(p.node));
      const candidates = this.processes.filter((p) => p.kind !== "client" && p.node !== null);
      const pool = leaders.length > 0 && this.prng.chance(0.5) ? leaders : candidates;
      if (pool.length > 0) this.crash(this.prng.pick(pool));
    }
  }

  private startPartition(): void {
    const members = this.processes;
    const shape = this.prng.pick(["symmetric", "one-way", "leader"] as const);
    this.partitionActive = true;
    this.partitions++;
    if (shape === "leader") {
      const leaders = members.filter((p) => p.node !== null && leaderOf(p.node));
      const cut = leaders.length > 0 ? leaders : [this.prng.pick(members)];
      for (const isolated of cut) {
        for (const other of members) {
          if (other === isolated) continue;
          this.blocked.add(`${isolated.key}>${other.key}`);
          this.blocked.add(`${other.key}>${isolated.key}`);
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
    this.record(`p ${this.now} ${shape} ${this.blocked.size}`);
    const duration = this.prng.range(10, 150) * STEPS_PER_TICK;
    this.queue.push(this.now + duration, { kind: "heal" });
  }

  private crash(process: SimProcess, diskFaults = true): void {
    this.crashes++;
    this.record(`x ${this.now} ${process.key}`);
    if (diskFaults) this.injectDiskFault(process);
    process.node = null;
    process.app = null;
    // Unsynced writes are lost, and so are the messages waiting for them.
    process.disk.length = 0;
    process.incarnation++;
    // Half the crashes are quick reboots, back before the others notice; half are long outages.
    const downtime =
      (this.prng.chance(0.5) ? this.prng.range(1, 10) : this.prng.range(10, 100)) * STEPS_PER_TICK;
    this.queue.push(this.now + downtime, { kind: "restart", process });
  }

  /**
   * Disk faults, on a minority of replicas at a time: a torn write (the record being written when the
   * crash came is cut off: the same as losing the unsynced writes, which every crash does), a bit
   * flip in the middle of the log, or a lost file. The last two are detected when the log is opened
   * (checksums, segment numbers): the node comes back with nothing and must rejoin (see `Replica`).
   */
  private injectDiskFault(process: SimProcess): void {
    const s = this.scenario;
    if (process.kind !== "replica" || !this.prng.chance(s.diskFaultChance)) return;
    // Only as many at a time as the quorums can spare: the healthy replicas must still form both a
    // phase-1 and a phase-2 quorum, or nothing could be decided and no one could rejoin.
    const healthy = this.processes.filter(
      (p) => p.kind === "replica" && p !== process && !p.durable.rejoining,
    );
    const ids = healthy.map((p) => p.id);
    if (process.durable.rejoining || !this.quorum.isPhase1Quorum(ids) || !this.quorum.isPhase2Quorum(ids))
      return;
    const kind = this.prng.pick(["torn write", "bit flip", "lost file"] as const);
    this.diskFaults++;
    this.record(`f ${this.now} ${process.key} ${kind}`);
    if (kind === "torn write") return; // process.disk (the unsynced writes) is dropped by the crash
    process.durable.promised = ZERO_BALLOT;
    process.durable.accepted.clear();
    process.durable.round = 0;
    process.durable.floorSlot = 0;
    process.durable.decided.clear();
    process.durable.snapshot = null;
    process.durable.rejoining = true; // the runtime writes this mark before the node starts again
  }

  /**
   * Sends a replica away (crashed, or cut off from everyone) or brings it back. While it is away the
   * others decide and snapshot past it; back, it must catch up from a snapshot.
   */
  private keepAway(process: SimProcess, away: boolean): void {
    const how = this.scenario.snapshots?.laggard?.how;
    this.record(`a ${this.now} ${process.key} ${away ? "away" : "back"}`);
    if (how === "partition") {
      this.isolated = away ? process : null;
      return;
    }
    if (away) {
      this.heldDown = process;
      if (process.node !== null) this.crash(process, false);
    } else {
      this.heldDown = null;
      if (process.node === null) this.restart(process);
    }
  }

  private restart(process: SimProcess): void {
    this.record(`r ${this.now} ${process.key}`);
    this.startProcess(process, this.prng.int(STEPS_PER_TICK));
  }

  // --- liveness ------------------------------------------------------------------------------------

  private learnerKeys(): SimProcess[] {
    return this.processes.filter(
      (p) => p.kind === "learner" || p.kind === "replica" || p.kind === "proposer",
    );
  }

  private allDone(): boolean {
    // A replica whose disk was damaged must have rejoined as an acceptor by the end.
    for (const process of this.processes)
      if (process.node instanceof Replica && process.node.rejoining) return false;
    for (const process of this.learnerKeys()) if (!this.checker.deliveredAll(process.key)) return false;
    for (const process of this.byRole.get("client") ?? []) {
      if ((process.node as Client).unackedCount > 0) return false;
    }
    return true;
  }

  private livenessReport(): string {
    const lines: string[] = [];
    for (const process of this.learnerKeys()) {
      const missing = this.checker.missingFor(process.key);
      if (missing.length > 0)
        lines.push(`${process.key} misses ${missing.length} (${missing.slice(0, 3).join(",")})`);
    }
    for (const process of this.byRole.get("client") ?? []) {
      const unacked = (process.node as Client).unackedCount;
      if (unacked > 0) lines.push(`${process.key} has ${unacked} unacked`);
    }
    for (const process of this.processes) {
      if (process.node instanceof Replica && process.node.rejoining) {
        lines.push(`${process.key} has not rejoined (floor ${process.node.rejoinFloorSlot})`);
      }
    }
    return `not everything decided ${this.scenario.livenessTicksMax} ticks after healing: ${lines.join("; ")}`;
  }
}

/** Applies a durable write: a snapshot first, superseding the decided log through its slot. */
function applyDelta(state: DurableState, delta: DurableDelta): void {
  if (delta.promised !== undefined && ballotGreater(delta.promised, state.promised))
    state.promised = delta.promised;
  if (delta.proposerRound !== undefined) state.round = Math.max(state.round, delta.proposerRound);
  for (const entry of delta.accepted ?? []) state.accepted.set(entry.slot, entry);
  if (delta.rejoining !== undefined) state.rejoining = delta.rejoining;
  if (delta.snapshot !== undefined) {
    state.snapshot = delta.snapshot;
    for (const slot of state.decided.keys()) if (slot <= delta.snapshot.slot) state.decided.delete(slot);
  }
  const snapshotSlot = state.snapshot?.slot ?? 0;
  for (const { slot, value } of delta.decided ?? []) if (slot > snapshotSlot) state.decided.set(slot, value);
  if (delta.floorSlot !== undefined && delta.floorSlot > state.floorSlot) {
    state.floorSlot = delta.floorSlot;
    for (const slot of state.accepted.keys()) if (slot < delta.floorSlot) state.accepted.delete(slot);
  }
}

/** The durable log from slot `from` on, as far as it is contiguous. */
function contiguousLog(decided: ReadonlyMap<number, Value>, from: number): Value[] {
  const log: Value[] = [];
  for (let slot = from; decided.has(slot); slot++) log.push(decided.get(slot) as Value);
  return log;
}

function leaderOf(node: RoleObject): boolean {
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
