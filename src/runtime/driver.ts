import type { Codec, EnvelopeGuard, NoticeReason, Party } from "../codec/index.js";
import {
  type Decision,
  type DurableDelta,
  type Envelope,
  InvariantViolation,
  Learner,
  type Message,
  type MessageType,
  type Output,
  type Prng,
  type Refusals,
  type Snapshot,
} from "../core/index.js";
import type { Storage } from "../storage/index.js";
import type { Endpoint, Transport } from "../transport/index.js";
import type { AddressBook } from "./address-book.js";
import type { StateMachine } from "./state-machine.js";

/**
 * Most notices (telling a sender its frames are refused) a driver sends a second, in all: a flood of
 * bad frames costs the node at most this many tiny replies.
 */
export const NOTICES_PER_SECOND_MAX = 10;

/** Whether a delta holds delivered slots only (no promise, vote, round, floor, rejoin flag or snapshot). */
function onlyDelivered(delta: DurableDelta): boolean {
  for (const key in delta)
    if (key !== "decided" && (delta as Record<string, unknown>)[key] !== undefined) return false;
  return true;
}

/** Anything the driver can run: every core role has this shape. */
export interface RoleLike {
  step(message: Message): Output;
  tick(): Output;
  /** Whether the role would ignore every message of this type now (so it need not be decoded). */
  ignores?(type: MessageType): boolean;
  /** A replica: whether a snapshot is due, and taking one as of its last delivered slot. */
  readonly snapshotDue?: boolean;
  snapshot?(app: string): Output;
  /** The role's learner (a replica's or a proposer's), whose snapshots from peers are checked. */
  readonly learner?: Learner;
}

/**
 * The driver's only view of time: run a callback soon (after the current event) and run one every so
 * often. Processes use {@link REAL_SCHEDULER} (the default); the simulator and tests pass one that
 * runs on virtual time, so the same driver runs there unchanged.
 */
export interface Scheduler {
  /** Runs `fn` once, after the current event and the I/O already due (like `setImmediate`). */
  immediate(fn: () => void): void;
  /** Runs `fn` every `ms` milliseconds until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
}

/** Node's timers: `setImmediate` and `setInterval`. */
export const REAL_SCHEDULER: Scheduler = {
  immediate(fn) {
    setImmediate(fn);
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
};

export interface DriverOptions<R extends RoleLike> {
  /** For logs: "acceptor 1", "node 3". */
  readonly name: string;
  readonly role: R;
  readonly transport: Transport;
  readonly codec: Codec;
  /**
   * Seals every frame sent (cluster id, sender, receiver, incarnation, seq, MAC with a key) and opens
   * every frame received; refused frames are dropped and counted in its `refusals` (docs/security.md).
   */
  readonly envelope: EnvelopeGuard;
  /**
   * A peer said it refuses our frames (see `EnvelopeGuard.notice`). Unauthenticated: a hint for a log
   * line or a clear error, never proof.
   */
  readonly onNotice?: (reason: NoticeReason, sender: Party, from: Endpoint) => void;
  readonly addressBook: AddressBook;
  /** Where persisted state goes. The role must have been built from what `open()` returned. */
  readonly storage: Storage;
  /** Real milliseconds per core tick. */
  readonly tickMs: number;
  /** Timers (default {@link REAL_SCHEDULER}); the simulator passes virtual time. */
  readonly scheduler?: Scheduler;
  /** Delivered decisions, in slot order (at the end of the turn that delivered them). */
  readonly onDecision?: (decision: Decision) => void;
  /**
   * The replicated state machine. The driver applies each delivered decision to it, installs
   * snapshots from peers into it, and when the role says a snapshot is due (after a turn's decisions
   * are applied) takes one from it, persists it and compacts storage.
   */
  readonly stateMachine?: StateMachine;
  /** A snapshot was taken here or installed from a peer (for logs). */
  readonly onSnapshot?: (snapshot: Snapshot, how: "taken" | "installed") => void;
  /**
   * Every message, for `--debug`; `bytes`: its encoded size (the body, without the envelope). A
   * message sent is traced before `dropFrame` may drop it.
   */
  readonly onTrace?: (direction: "in" | "out", message: Message, peer: string, bytes: number) => void;
  /** Called after every turn (for watching a role's state, e.g. its leadership). */
  readonly onTurnEnd?: (role: R) => void;
  /** Fatal trouble: an invariant violation or a failed sync. The process must stop. */
  readonly onFatal: (error: Error) => void;
  /**
   * Drops a frame going out to, or coming in from, `peer` when it answers true (counted in
   * `framesDroppedByHook`): the dashboard's "cut off" and message-loss controls. Checked before a
   * frame goes to the socket, and before a received one is opened. Absent (the default, and always
   * in the simulator): nothing dropped.
   */
  readonly dropFrame?: (direction: "in" | "out", peer: Endpoint) => boolean;
  /** Test-only fault injection: drop this share of incoming frames (uses `prng`). */
  readonly dropRate?: number;
  readonly prng?: Prng;
  /** Most messages waiting in the mailbox; beyond it frames are dropped and counted. */
  readonly mailboxMax?: number;
  /** Most messages handled in one turn (default 64); the rest wait for the next turn. */
  readonly turnMessagesMax?: number;
}

export interface DriverStats {
  framesIn: number;
  framesOut: number;
  /** Frames that did not decode (malformed, truncated, oversized): dropped, state untouched. */
  decodeErrors: number;
  /** Frames the envelope refused (wrong cluster, bad MAC, replay, ...; by reason in `refusals`). */
  framesRefused: number;
  /** Notices sent to senders whose frames were refused (rate-limited), and received from peers. */
  noticesSent: number;
  noticesReceived: number;
  /** Frames dropped because the mailbox was full, or by test fault injection. */
  framesDropped: number;
  /** Frames the `dropFrame` hook dropped, in and out (a cut-off node, a chosen loss rate). */
  framesDroppedByHook: number;
  /** Frames the role would have ignored, dropped before decoding. */
  framesIgnored: number;
  /** Frames dropped while intake was paused (`pauseIntake`: the application could not keep up). */
  framesPaused: number;
  /** Times intake was paused. */
  intakePauses: number;
  turns: number;
  persists: number;
  decisions: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  /** Storage compactions after snapshots. */
  compactions: number;
}

/**
 * The runtime's heart: it drives one core role with real time, a transport and storage. Once per
 * event-loop turn it drains the mailbox (messages, the tick, local calls), merges the outputs,
 * appends every delta to storage and syncs once (group commit), sends what may go now, sends the
 * rest when the sync is done, and delivers decisions. Order is kept across turns: a message that
 * depends on an unsynced write never overtakes it.
 */
export class Driver<R extends RoleLike> {
  readonly stats: DriverStats = {
    framesIn: 0,
    framesOut: 0,
    decodeErrors: 0,
    framesRefused: 0,
    noticesSent: 0,
    noticesReceived: 0,
    framesDropped: 0,
    framesDroppedByHook: 0,
    framesIgnored: 0,
    framesPaused: 0,
    intakePauses: 0,
    turns: 0,
    persists: 0,
    decisions: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    compactions: 0,
  };
  /**
   * Messages received (decoded, past the envelope) and sent (one per destination endpoint), by
   * message type: `paxos_messages_*_total` and the catch-up and snapshot metrics read them.
   */
  readonly messageCounts: {
    readonly in: Partial<Record<MessageType, number>>;
    readonly out: Partial<Record<MessageType, number>>;
  } = { in: {}, out: {} };
  private readonly mailbox: Array<Message | (() => Output)> = [];
  private readonly mailboxMax: number;
  private readonly turnMessagesMax: number;
  private turnScheduled = false;
  private ticksDue = 0;
  private readonly scheduler: Scheduler;
  /** Stops the tick timer (null: not started, or stopped). */
  private cancelTicks: (() => void) | null = null;
  /** `turn` bound once, so that scheduling a turn allocates nothing. */
  private readonly turnCallback = () => this.turn();
  private syncing = false;
  /** Messages waiting for the sync that covers the writes they depend on. */
  private afterSync: Envelope[] = [];
  private dirty = false;
  /** Appended delivered slots wait for a sync (see `turn`): the next one, at the latest a tick away. */
  private lazyDirty = false;
  /** A snapshot was persisted: the next flush compacts storage instead of a plain sync. */
  private compactDue = false;
  private stopped = false;
  private intakePaused = false;
  /** stop() has released the transport and storage (also after a fatal error stopped the turns). */
  private closed = false;
  private lastMessage: Message | null = null;
  /** What the current turn delivered so far and the application has not yet seen. */
  private turnDelivered: Array<Decision | Snapshot> = [];
  /** Snapshots from peers the application restored already, when the learner asked (see below). */
  private readonly restoredEarly = new WeakSet<Snapshot>();
  private lastBody: Uint8Array | null = null;
  /** Notices that may still go out in the current second (see NOTICES_PER_SECOND_MAX). */
  private noticeBudget = NOTICES_PER_SECOND_MAX;
  private ticksSinceNoticeRefill = 0;

  constructor(private readonly options: DriverOptions<R>) {
    this.mailboxMax = options.mailboxMax ?? 100_000;
    this.turnMessagesMax = options.turnMessagesMax ?? 64;
    this.scheduler = options.scheduler ?? REAL_SCHEDULER;
    // A snapshot from a peer is restored into the application before the learner installs it: one
    // the application cannot restore is refused and counted by the learner, never fatal (issue 9).
    const learner = options.role instanceof Learner ? options.role : options.role.learner;
    const machine = options.stateMachine;
    if (learner !== undefined && machine !== undefined)
      learner.checkSnapshotsWith((snapshot) => this.restoreFromPeer(machine, snapshot));
  }

  /**
   * Restores a snapshot a learner has assembled, in the middle of a turn: first the application
   * gets what the turn delivered before it (so it stands where the snapshot takes over), then the
   * state. Null if it took it; otherwise why not, with the application as it was (a `restore` that
   * throws must change nothing: see `StateMachine`).
   */
  private restoreFromPeer(machine: StateMachine, snapshot: Snapshot): string | null {
    this.deliver(this.turnDelivered.splice(0));
    try {
      machine.restore(snapshot.app, snapshot.slot);
    } catch (error) {
      return `the state machine cannot restore it: ${error instanceof Error ? error.message : String(error)}`;
    }
    this.restoredEarly.add(snapshot);
    return null;
  }

  get role(): R {
    return this.options.role;
  }

  /** Frames the envelope refused, by reason (and `sender-mismatch`: a message whose `from` is not its sender). */
  get refusals(): Refusals {
    return this.options.envelope.refusals;
  }

  /** Starts the transport and the tick timer. */
  async start(): Promise<void> {
    const { transport } = this.options;
    transport.onFrame((frame, from) => this.receive(frame, from));
    await transport.start();
    this.cancelTicks = this.scheduler.every(this.options.tickMs, () => {
      if (++this.ticksSinceNoticeRefill * this.options.tickMs >= 1000) {
        this.ticksSinceNoticeRefill = 0;
        this.noticeBudget = NOTICES_PER_SECOND_MAX;
      }
      if (this.intakePaused) return; // a paused node's time stands still (see pauseIntake)
      this.ticksDue++;
      this.schedule();
    });
  }

  /** Runs `call` on the role inside the next turn (e.g. a client submitting), and carries its output. */
  run(call: (role: R) => Output): void {
    if (this.stopped) return;
    this.mailbox.push(() => call(this.options.role));
    this.schedule();
  }

  /**
   * Drops every frame received from now on (counted in `framesPaused`) until `resumeIntake`: for an
   * application that cannot keep up with the decisions (a node whose stdout reader is slow), so that
   * they do not pile up in memory. Its ticks stop too, so the node falls silent like a stalled one:
   * a paused leader sends no heartbeats, and the others elect a new leader and go on without it.
   * Local calls, the mailbox already queued and sends waiting for a sync still run. The protocol
   * treats the dropped frames as lost, so the node falls behind and catches up once resumed.
   */
  pauseIntake(): void {
    if (this.intakePaused) return;
    this.intakePaused = true;
    this.stats.intakePauses++;
  }

  /** Takes frames in again after `pauseIntake`. */
  resumeIntake(): void {
    this.intakePaused = false;
  }

  /** Stops ticking and receiving; makes written state durable; closes the transport. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopped = true;
    this.stopTicks();
    await this.options.transport.close();
    await this.options.storage.close().catch(() => {});
  }

  private receive(frame: Uint8Array, from: Endpoint): void {
    if (this.stopped) return;
    this.stats.framesIn++;
    if (this.intakePaused) {
      this.stats.framesPaused++;
      return;
    }
    if (this.options.dropRate !== undefined && this.options.prng?.chance(this.options.dropRate)) {
      this.stats.framesDropped++;
      return;
    }
    if (this.options.dropFrame?.("in", from)) {
      this.stats.framesDroppedByHook++;
      return;
    }
    const opened = this.options.envelope.open(frame);
    if (opened.kind !== "message") {
      this.unopened(opened, from);
      return;
    }
    const body = opened.body;
    const type = this.options.codec.peekType(body);
    if (type !== null && this.options.role.ignores?.(type)) {
      this.stats.framesIgnored++;
      return;
    }
    const decoded = this.options.codec.decode(body);
    if (!decoded.ok) {
      this.stats.decodeErrors++;
      return;
    }
    // The envelope names who sent it (and, with a key, proves it): the message must agree. A client
    // only sends requests.
    if (
      decoded.value.from !== opened.sender.id ||
      (opened.sender.kind === "client" && decoded.value.type !== "request")
    ) {
      this.stats.framesRefused++;
      this.options.envelope.refusals.count("sender-mismatch");
      return;
    }
    if (this.mailbox.length >= this.mailboxMax) {
      this.stats.framesDropped++;
      return;
    }
    this.options.addressBook.observe(decoded.value, from);
    const counts = this.messageCounts.in;
    counts[decoded.value.type] = (counts[decoded.value.type] ?? 0) + 1;
    this.options.onTrace?.("in", decoded.value, `${from.host}:${from.port}`, body.length);
    this.mailbox.push(decoded.value);
    this.schedule();
  }

  /** A frame that carries no message for us: a notice, another member's multicast, or a refusal. */
  private unopened(
    opened: Exclude<ReturnType<EnvelopeGuard["open"]>, { kind: "message" }>,
    from: Endpoint,
  ): void {
    if (opened.kind === "ignored") {
      this.stats.framesIgnored++;
      return;
    }
    if (opened.kind === "notice") {
      this.stats.noticesReceived++;
      this.options.onNotice?.(opened.reason, opened.sender, from);
      return;
    }
    this.stats.framesRefused++;
    // Tell the sender why, so a client without the key (or with the wrong one) gets a clear error
    // instead of silence. Rate-limited, and smaller than the frame refused: no amplifier.
    if (opened.notify !== null && opened.sender !== null && this.noticeBudget > 0) {
      this.noticeBudget--;
      this.stats.noticesSent++;
      this.options.transport.send(from, this.options.envelope.notice(opened.notify, opened.sender));
    }
  }

  private schedule(): void {
    if (this.turnScheduled || this.stopped) return;
    this.turnScheduled = true;
    this.scheduler.immediate(this.turnCallback);
  }

  /** One turn: drain, merge, persist once, send, deliver. */
  private turn(): void {
    this.turnScheduled = false;
    if (this.stopped) return;
    this.stats.turns++;
    const { role, storage } = this.options;
    const send: Envelope[] = [];
    const sendAfterPersist: Envelope[] = [];
    /** Decisions and installed snapshots, in the order the role produced them. */
    const delivered = this.turnDelivered;
    let persisted = false;
    const take = (output: Output) => {
      if (output.persist !== null) {
        storage.append(output.persist);
        // Delivered slots alone need no sync of their own: nothing waits for them, and a node that
        // loses them in a crash learns them again from its peers (they are decided: a quorum holds
        // them). They ride along with the next sync (of a vote, a promise, a snapshot), or the one
        // a tick makes (`lazyDirty`), rather than taking a turn of the one-at-a-time group commit
        // that votes wait behind.
        if (onlyDelivered(output.persist)) this.lazyDirty = true;
        else persisted = true;
        if (output.persist.snapshot !== undefined) this.compactDue = true;
      }
      for (const envelope of output.send) send.push(envelope);
      for (const envelope of output.sendAfterPersist) sendAfterPersist.push(envelope);
      if (output.snapshot !== null) delivered.push(output.snapshot);
      for (const decision of output.decided) delivered.push(decision);
    };
    try {
      // A bounded share per turn: timers, sockets and syncs get their turn too, so a leader under a
      // burst of requests still sends its heartbeats on time.
      const items = this.mailbox.splice(0, Math.min(this.mailbox.length, this.turnMessagesMax));
      for (const item of items) take(typeof item === "function" ? item() : role.step(item));
      if (this.ticksDue > 0 && this.lazyDirty) {
        // At most a tick after delivered slots were appended, they are synced.
        this.lazyDirty = false;
        persisted = true;
      }
      while (this.ticksDue > 0) {
        this.ticksDue--;
        take(role.tick());
      }
      // The application sees this turn's decisions now: a snapshot taken below must include them.
      this.deliver(delivered.splice(0));
      const machine = this.options.stateMachine;
      if (machine !== undefined && role.snapshotDue === true && role.snapshot !== undefined) {
        const out = role.snapshot(machine.snapshot());
        take(out);
        if (out.persist?.snapshot !== undefined) {
          this.stats.snapshotsTaken++;
          this.options.onSnapshot?.(out.persist.snapshot, "taken");
        }
      }
    } catch (error) {
      this.fatal(error);
      return;
    }
    try {
      for (const envelope of send) this.send(envelope);
    } catch (error) {
      this.fatal(error); // a message the codec cannot carry is a bug upstream: stop loudly
      return;
    }
    if (persisted) {
      this.stats.persists++;
      this.dirty = true;
    }
    if (persisted || this.syncing || this.afterSync.length > 0) {
      for (const envelope of sendAfterPersist) this.afterSync.push(envelope);
      void this.flushDurable();
    } else {
      for (const envelope of sendAfterPersist) this.send(envelope);
    }
    this.options.onTurnEnd?.(role);
    if (this.mailbox.length > 0) this.schedule();
  }

  /** Hands decisions and installed snapshots to the application, in order. */
  private deliver(delivered: ReadonlyArray<Decision | Snapshot>): void {
    const machine = this.options.stateMachine;
    for (const item of delivered) {
      if ("sessions" in item) {
        this.stats.snapshotsInstalled++;
        if (!this.restoredEarly.has(item)) machine?.restore(item.app, item.slot);
        this.options.onSnapshot?.(item, "installed");
        continue;
      }
      this.stats.decisions++;
      machine?.apply(item);
      this.options.onDecision?.(item);
    }
  }

  /** Group commit: one sync at a time; whatever was appended meanwhile rides the next one. */
  private async flushDurable(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      while (this.dirty || this.afterSync.length > 0) {
        const batch = this.afterSync;
        this.afterSync = [];
        if (this.dirty) {
          this.dirty = false;
          if (this.compactDue) {
            // The snapshot replaces the log below it: rewrite the state compactly (this also makes
            // everything appended so far durable) and free what it replaces.
            this.compactDue = false;
            await this.options.storage.compact();
            this.stats.compactions++;
          } else await this.options.storage.sync();
        }
        if (this.stopped) return;
        for (const envelope of batch) this.send(envelope);
      }
    } catch (error) {
      this.fatal(error);
    } finally {
      this.syncing = false;
    }
  }

  private send(envelope: Envelope): void {
    const endpoints = this.options.addressBook.resolve(envelope.to);
    if (endpoints.length === 0) return;
    // One message often goes to several destinations (acceptors and learners): encode it once. The
    // envelope is per destination (it names the receiver and takes a sequence number); every endpoint
    // of one destination gets the same frame.
    let body = this.lastBody;
    if (envelope.message !== this.lastMessage || body === null) {
      body = this.options.codec.encode(envelope.message);
      this.lastMessage = envelope.message;
      this.lastBody = body;
    }
    const dropFrame = this.options.dropFrame;
    const frame = this.options.envelope.seal(body, envelope.to);
    const counts = this.messageCounts.out;
    const type = envelope.message.type;
    counts[type] = (counts[type] ?? 0) + endpoints.length;
    for (const endpoint of endpoints) {
      this.options.onTrace?.("out", envelope.message, `${endpoint.host}:${endpoint.port}`, body.length);
      // After the trace: a watcher sees the message, then whether the hook dropped it.
      if (dropFrame?.("out", endpoint)) {
        this.stats.framesDroppedByHook++;
        continue;
      }
      this.options.transport.send(endpoint, frame);
      this.stats.framesOut++;
    }
  }

  private fatal(error: unknown): void {
    const wrapped =
      error instanceof InvariantViolation
        ? error
        : error instanceof Error
          ? error
          : new Error(`non-error thrown: ${String(error)}`);
    this.stopped = true;
    this.stopTicks();
    this.options.onFatal(wrapped);
  }

  private stopTicks(): void {
    this.cancelTicks?.();
    this.cancelTicks = null;
  }
}
