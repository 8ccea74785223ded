import { assert } from "./assert.js";
import { type Ballot, ballotGreater, ballotKey, ballotRefusal, type NodeId, VouchedLevel } from "./ballot.js";
import { DEFAULT_LIMITS, type Limits } from "./limits.js";
import { type ClusterMembers, MemberSet } from "./members.js";
import type {
  AcceptedMessage,
  CatchupMessage,
  Command,
  DecideMessage,
  Decision,
  HeartbeatMessage,
  Message,
  RefusalReason,
  Role,
  SlotValue,
  SnapshotChunkMessage,
  SnapshotRequestMessage,
  Value,
} from "./messages.js";
import { valuesEqual } from "./messages.js";
import { emptyOutput, mergeDelta, mergeOutput, type Output } from "./output.js";
import type { QuorumSystem } from "./quorum.js";
import { Refusals } from "./refusals.js";
import { type SessionBugs, SessionTable } from "./sessions.js";
import { chunkEnd, decodeSnapshot, encodeSnapshot, type Snapshot, textChecksum } from "./snapshot.js";
import { valueBytesEstimate } from "./value-size.js";

/** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
export interface LearnerBugs {
  /** Count accepted messages instead of distinct acceptors: a duplicated datagram fakes a quorum. */
  readonly countMessages?: boolean;
  /** Bugs of the session table (see `SessionBugs`). */
  readonly sessions?: SessionBugs;
}

export interface LearnerOptions {
  readonly id: NodeId;
  readonly quorum: QuorumSystem;
  /**
   * Whether the learner screens the ballots of votes, accepts and heartbeats itself (ceiling and
   * jump: see `ballotRefusal`). True by default; a proposer that embeds a learner screens every
   * message before its learner sees it, and passes false.
   */
  readonly screenBallots?: boolean;
  readonly limits?: Partial<Limits>;
  /** Ticks a hole may stay open before the learner asks for it (again). */
  readonly catchupTicks?: number;
  /** The roles asked for missing slots. */
  readonly catchupFrom?: readonly Role[];
  /** The role this learner answers as (a proposer embeds a learner of its own). */
  readonly role?: Role;
  /**
   * The cluster's members: requests are answered, and decided values, snapshot chunks, heartbeats
   * and copies of accepts taken, only from them. Absent: membership is not known (the course
   * layout), and only the other rules hold. Votes count only from the quorum's acceptors either way.
   */
  readonly members?: ClusterMembers;
  /** Where refused input is counted (a replica shares one among its roles). */
  readonly refusals?: Refusals;
  /** Ask for every delivered slot to be persisted (`Output.persist.decided`). */
  readonly durableLog?: boolean;
  /** The snapshot from a previous run: the learner starts as of its slot. */
  readonly restoreSnapshot?: Snapshot;
  /**
   * The delivered log from a previous run (slots 1, 2, ..., or from just past `restoreSnapshot`):
   * learned again silently.
   */
  readonly restoreLog?: readonly Value[];
  /**
   * Say a snapshot is due (`snapshotDue`) once the values delivered since the last one reach this
   * many estimated bytes (`valueBytesEstimate`). 0 (the default): never.
   */
  readonly snapshotLogBytes?: number;
  /**
   * Delivered slots kept in memory below a new snapshot's slot, so that a peer a little behind
   * catches up from the log rather than with the whole snapshot. Default
   * {@link DEFAULT_LOG_RETAIN_SLOTS}.
   */
  readonly logRetainSlots?: number;
  readonly bugs?: LearnerBugs;
}

/** A snapshot being put together from `snapshot-chunk` messages. */
interface Assembly {
  /**
   * Who we ask for the rest (the first sender, answering a request of ours). Chunks are taken from
   * it, or from any member once the stalled transfer was asked of everyone (`askedAll`).
   */
  readonly from: NodeId;
  askedAll: boolean;
  readonly slot: number;
  readonly length: number;
  readonly checksum: number;
  /** Chunks that arrived ahead of `received`, by offset. */
  readonly ahead: Map<number, string>;
  readonly parts: string[];
  /** Characters received in order from 0. */
  received: number;
  /** The offset through which chunks have been asked for. */
  requestedTo: number;
  idleTicks: number;
  retries: number;
}

/** Retries of a stalled snapshot transfer before the learner gives it up and starts over. */
const SNAPSHOT_RETRIES_MAX = 8;

/**
 * Highest slot a heartbeat may claim decided at all: 2^52. Far above any real log (a million slots
 * a second for 140 years), far enough below 2^53 that slot arithmetic past it (a horizon, a window)
 * stays exact. A heartbeat above it is refused outright ("heartbeat-beyond-horizon").
 */
export const CLAIMED_SLOT_CEILING = 2 ** 52;

/**
 * A request this learner sent and still takes answers to: a catch-up for slots `fromSlot ..=
 * toSlot`, or a snapshot request (`fromSlot` 0). `peer` is who was asked (null: every member of the
 * roles asked). A `decide` is taken only for slots of such a request, from its peer; the first chunk
 * of a snapshot only from a peer some request went to.
 */
interface Request {
  readonly peer: NodeId | null;
  readonly fromSlot: number;
  readonly toSlot: number;
  readonly sentTick: number;
}

/** A peer's token bucket for the requests this learner answers (see `serveRequestsBurst`). */
interface Bucket {
  tokens: number;
  tick: number;
}

/**
 * Chunks a learner sends for one snapshot request: `snapshotChunksPerRequest`, fewer if their
 * estimated bytes (3 a unit) would pass `snapshotAnswerBytesMax`; at least one. Receivers use the
 * same number for the window they ask for.
 */
export function snapshotWindowChunks(limits: Limits): number {
  const byBytes = Math.floor(limits.snapshotAnswerBytesMax / (limits.snapshotChunkUnits * 3));
  return Math.max(1, Math.min(limits.snapshotChunksPerRequest, byBytes));
}

/**
 * A snapshot a learner keeps serving to one peer until that peer's transfer is over: the snapshot
 * the transfer started on, even after the learner has taken newer ones.
 */
interface Pin {
  readonly slot: number;
  /** The snapshot's text as it was sent (shared with the learner's own while that is the same). */
  readonly text: string;
  readonly checksum: number;
  /** Ticks since the peer last asked for it (a pin idle past `snapshotPinIdleTicks` is dropped). */
  idleTicks: number;
}

/**
 * Delivered slots a learner keeps below a new snapshot by default: 128. A slot holds up to a whole
 * batch (512 commands by default), so these slots can be the larger part of a replica's memory:
 * with 1024, a leader of a busy cluster outgrew a 256 MiB heap (`npm run bench -- bounded`).
 */
export const DEFAULT_LOG_RETAIN_SLOTS = 128;

interface Tally {
  readonly ballot: Ballot;
  /** The value proposed at this (slot, ballot), once known (from a vote or `knowProposal`). */
  value: Value | null;
  readonly voters: Set<NodeId>;
  messages: number;
}

/**
 * The learner: a value is chosen in a slot when a phase-2 quorum of *distinct* acceptors voted for it
 * at one ballot. Chosen values are delivered in slot order with no gaps; a hole (a slot missing
 * below one that is chosen, or below what the leader's heartbeat says is decided, which also catches a
 * missing *last* value) is asked for again with `catchup` until someone answers with `decide`.
 * A learner that starts late learns everything from slot 1 the same way.
 *
 * Snapshots bound the log: once the application has applied every delivered slot it may hand the
 * learner its state (`compact`), and the learner keeps that snapshot and drops its log below it (all
 * but `logRetainSlots` slots). A peer that asks for a dropped slot gets the snapshot instead, in
 * chunks, and installs it (`Output.snapshot`) before it goes on from the log. The snapshot a peer's
 * transfer started on stays pinned for it until the transfer ends or goes idle, so newer snapshots
 * taken meanwhile never restart it (see `onSnapshotRequest`).
 *
 * @example
 * const learner = new Learner({ id: 1, quorum });
 * learner.step(vote1); // nothing yet
 * const out = learner.step(vote2); // out.decided = [{ slot: 1, value, commands }]
 */
export class Learner {
  readonly id: NodeId;
  private readonly quorum: QuorumSystem;
  private readonly limits: Limits;
  private readonly catchupTicks: number;
  private readonly catchupFrom: readonly Role[];
  private readonly role: Role;
  private readonly bugs: LearnerBugs;
  /** Refused input, by reason (docs/security.md, "Validation in the core: learner, catch-up and snapshots"). */
  private readonly screensBallots: boolean;
  /** The highest ballot round this learner has taken (standalone learners: see `ballotRefused`). */
  private knownRound = 0;
  private readonly vouchedRound: VouchedLevel;
  readonly refusals: Refusals;
  private readonly members: MemberSet;
  /** Ticks since the start (the clock of requests and token buckets). */
  private now = 0;
  /** Requests still awaiting answers, oldest first (at most `learnerRequestsMax`). */
  private requests: Request[] = [];
  /** Token buckets of the peers we serve, by `pinKey`. */
  private readonly buckets = new Map<string, Bucket>();
  /** Checks an assembled snapshot restores before it is installed (see `checkSnapshotsWith`). */
  private snapshotCheck: ((snapshot: Snapshot) => string | null) | null = null;

  /** Delivered values still held; `log[i]` is slot `logStart + i`. */
  private log: Value[] = [];
  private logStart = 1;
  private snapshotValue: Snapshot | null = null;
  /** The snapshot as `encodeSnapshot` gives it, and its checksum (what peers are sent). */
  private snapshotText = "";
  private snapshotChecksum = 0;
  private bytesSinceSnapshot = 0;
  private readonly snapshotLogBytes: number;
  private readonly logRetainSlots: number;
  private assembly: Assembly | null = null;
  /** Snapshots pinned for peers' transfers, by peer (`pinKey`), oldest pin first. */
  private readonly pins = new Map<string, Pin>();
  private restoredSnapshot: Snapshot | null = null;
  /** Chosen but not yet delivered (waiting for a hole below them). */
  private readonly chosen = new Map<number, Value>();
  private readonly tallies = new Map<number, Map<string, Tally>>();
  private sessions: SessionTable;
  private readonly durableLog: boolean;
  private restored: Decision[] = [];
  private newlyChosen: SlotValue[] = [];
  private highestChosenSlot = 0;
  /** The highest `decidedThrough` a member's heartbeat claimed (taken only up to the horizon). */
  private claimedDecidedThrough = 0;
  private ticksSinceProgress = 0;
  private requestedThrough = 0;
  /** Votes that named a value other than the one first seen at the same (slot, ballot). */
  conflictingVotes = 0;
  /**
   * Snapshot chunks or assembled snapshots refused (malformed, too large, failed checksum, or built
   * under other session limits than this cluster's).
   */
  snapshotsRefused = 0;
  /** Why the last assembled snapshot was refused, if one was. */
  snapshotRefusal: string | null = null;
  /** Snapshots installed from peers. */
  snapshotsInstalled = 0;
  /** Pins dropped because `snapshotPinsMax` peers had one (their transfers start over). */
  snapshotPinsEvicted = 0;

  constructor(options: LearnerOptions) {
    this.id = options.id;
    this.quorum = options.quorum;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.catchupTicks = options.catchupTicks ?? 10;
    this.catchupFrom = options.catchupFrom ?? ["learner", "proposer"];
    this.role = options.role ?? "learner";
    this.bugs = options.bugs ?? {};
    this.refusals = options.refusals ?? new Refusals();
    this.screensBallots = options.screenBallots ?? true;
    this.vouchedRound = new VouchedLevel(this.quorum);
    this.members = new MemberSet(options.members ?? null);
    this.sessions = this.newSessionTable();
    this.durableLog = options.durableLog ?? false;
    this.snapshotLogBytes = options.snapshotLogBytes ?? 0;
    this.logRetainSlots = options.logRetainSlots ?? DEFAULT_LOG_RETAIN_SLOTS;
    if (options.restoreSnapshot !== undefined) {
      const problem = this.sessions.import(options.restoreSnapshot.sessions);
      // A driver checks this first (`sessionLimitsProblem`) and tells its operator; here it is a bug.
      assert(problem === null, `learner ${this.id}: restored snapshot: ${problem}`);
      this.setSnapshot(options.restoreSnapshot);
      this.logStart = options.restoreSnapshot.slot + 1;
      this.restoredSnapshot = options.restoreSnapshot;
    }
    for (const value of options.restoreLog ?? []) {
      this.log.push(value);
      this.countTowardsSnapshot(value);
      this.restored.push(this.applySessions(this.deliveredThrough, value));
    }
  }

  /**
   * What was restored, once (for a driver that replays it to its application): the snapshot to
   * install, then the decisions of the restored log, commands filtered the same way as when they
   * were first delivered.
   */
  drainRestored(): { snapshot: Snapshot | null; decisions: Decision[] } {
    const restored = { snapshot: this.restoredSnapshot, decisions: this.restored };
    this.restored = [];
    this.restoredSnapshot = null;
    return restored;
  }

  /** Every slot up to this one is delivered. */
  get deliveredThrough(): number {
    return this.logStart - 1 + this.log.length;
  }

  /** The newest snapshot (taken here or installed from a peer), if any. */
  get currentSnapshot(): Snapshot | null {
    return this.snapshotValue;
  }

  /** The first slot whose value this learner still holds (slots below it are in the snapshot only). */
  get firstHeldSlot(): number {
    return this.logStart;
  }

  /** Delivered slots held in memory. */
  get heldSlots(): number {
    return this.log.length;
  }

  /** Peers with a snapshot pinned for their transfer (at most `snapshotPinsMax`). */
  get pinnedSnapshots(): number {
    return this.pins.size;
  }

  /** True once enough has been delivered since the last snapshot (see `snapshotLogBytes`). */
  get snapshotDue(): boolean {
    return this.snapshotLogBytes > 0 && this.bytesSinceSnapshot >= this.snapshotLogBytes;
  }

  /**
   * Takes a snapshot as of the last delivered slot. Call it only when the application has applied
   * every decision delivered so far; `app` is its state. The log below the snapshot is dropped (all
   * but `logRetainSlots` slots); with a durable log, the snapshot is persisted and replaces the
   * decided log on disk.
   */
  compact(app: string): Output {
    const output = emptyOutput();
    const slot = this.deliveredThrough;
    if (slot === 0 || slot <= (this.snapshotValue?.slot ?? 0)) return output;
    const snapshot: Snapshot = { slot, sessions: this.sessions.export(), app };
    this.setSnapshot(snapshot);
    this.trimLog(slot + 1 - this.logRetainSlots);
    if (this.durableLog) output.persist = { snapshot };
    return output;
  }

  /** Keeps `snapshot` (and its text, which peers are sent) as the newest. */
  private setSnapshot(
    snapshot: Snapshot,
    text = encodeSnapshot(snapshot),
    checksum = textChecksum(text),
  ): void {
    this.snapshotValue = snapshot;
    this.snapshotText = text;
    this.snapshotChecksum = checksum;
    this.bytesSinceSnapshot = 0;
  }

  /** Counts a delivered value towards the next snapshot (only when snapshots are on: not free). */
  private countTowardsSnapshot(value: Value): void {
    if (this.snapshotLogBytes > 0) this.bytesSinceSnapshot += valueBytesEstimate(value);
  }

  /** Drops held slots below `slot` (never ones the snapshot does not cover). */
  private trimLog(slot: number): void {
    const first = Math.min(slot, (this.snapshotValue?.slot ?? 0) + 1);
    if (first <= this.logStart) return;
    const drop = Math.min(first - this.logStart, this.log.length);
    this.log = this.log.slice(drop);
    this.logStart += drop;
  }

  /**
   * The highest slot known to be chosen, or said decided by a member's heartbeat (taken only up to
   * the horizon: see `horizonSlot`). It drives catch-up, and a new leader fills up to it.
   */
  get knownDecidedThrough(): number {
    return Math.max(
      this.highestChosenSlot,
      Math.min(this.claimedDecidedThrough, this.horizonSlot),
      this.deliveredThrough,
    );
  }

  /**
   * The last slot this learner tracks: votes, chosen values and heartbeat claims past it are refused
   * (`learnerMarginSlots`). It moves on with the delivered prefix, so no input can push it on.
   */
  get horizonSlot(): number {
    return this.deliveredThrough + this.limits.windowSlots + this.limits.learnerMarginSlots;
  }

  /** Slots with votes tallied or a chosen value waiting for a hole (all within the horizon). */
  get trackedSlots(): number {
    let ballots = 0;
    for (const bySlot of this.tallies.values()) ballots = Math.max(ballots, bySlot.size);
    assert(
      ballots <= this.limits.tallyBallotsPerSlotMax,
      `learner ${this.id}: a slot has ${ballots} tallies`,
    );
    return new Set([...this.tallies.keys(), ...this.chosen.keys()]).size;
  }

  /** Requests awaiting answers (at most `learnerRequestsMax`). */
  get outstandingRequests(): number {
    return this.requests.length;
  }

  /** Peers with a token bucket (members, or at most `servePeersMax`). */
  get servedPeers(): number {
    return this.buckets.size;
  }

  /**
   * Has every snapshot assembled from peers checked by `check` before it is installed: `check`
   * returns null if the application took the state (it has restored it: the driver then does not
   * restore it again), or why not, and then the snapshot is refused ("snapshot-restore-failed") and
   * nothing of it is kept. Called during `step`; the application must not change its state when it
   * refuses one. Null: snapshots are installed unchecked.
   */
  checkSnapshotsWith(check: ((snapshot: Snapshot) => string | null) | null): void {
    this.snapshotCheck = check;
  }

  /**
   * The chosen value of a slot, if this learner holds it (a slot compacted into the snapshot is
   * decided, but its value is gone: see `firstHeldSlot`).
   */
  chosenValue(slot: number): Value | undefined {
    if (slot < this.logStart) return undefined;
    return slot <= this.deliveredThrough ? this.log[slot - this.logStart] : this.chosen.get(slot);
  }

  /** Whether a command's (client, seq) has been delivered already. */
  isDelivered(command: { client: NodeId; seq: number; payload: string }): boolean {
    return this.sessions.isDelivered(command);
  }

  /** Slots chosen since the last call, in the order they were learned. */
  drainChosen(): SlotValue[] {
    const drained = this.newlyChosen;
    this.newlyChosen = [];
    return drained;
  }

  step(message: Message): Output {
    switch (message.type) {
      case "accepted":
      case "accept":
      case "heartbeat":
        if (this.ballotRefused(message.from, message.ballot, message.type === "accepted"))
          return emptyOutput();
        break;
    }
    switch (message.type) {
      case "accepted":
        return this.onAccepted(message);
      case "decide":
        return this.onDecide(message);
      case "catchup":
        return this.onCatchup(message);
      case "snapshot-request":
        return this.onSnapshotRequest(message);
      case "snapshot-chunk":
        return this.onSnapshotChunk(message);
      case "accept":
        // With separate roles the leader copies its accepts to the learners: votes carry no value.
        if (!this.members.has("proposer", message.from)) {
          this.refusals.count("accept-non-member");
          return emptyOutput();
        }
        return this.noteProposal(message.slot, message.ballot, message.value, false);
      case "heartbeat":
        this.onHeartbeat(message);
        return emptyOutput();
      default:
        return emptyOutput();
    }
  }

  /**
   * A standalone learner's ballot screen: past the ceiling, or further past every round it has taken
   * (or a quorum of acceptors vouches for) than a jump allows, a ballot is refused and counted, as
   * acceptors and proposers refuse it. An acceptor's vote is a claim toward the vouched round, taken
   * or not: a learner that was away learns from a quorum of them how far the rounds have got.
   */
  private ballotRefused(from: NodeId, ballot: Ballot, acceptorVote: boolean): boolean {
    if (!this.screensBallots) return false;
    if (acceptorVote && ballot.round <= this.limits.ballotRoundMax)
      this.vouchedRound.claim(from, ballot.round);
    const refusal = ballotRefusal(ballot, this.knownRound, this.limits, () => this.vouchedRound.level);
    if (refusal !== null) {
      this.refusals.count(refusal);
      return true;
    }
    this.knownRound = Math.max(this.knownRound, ballot.round);
    return false;
  }

  /**
   * Only noted: votes in flight usually close the gap. If it stays open for catchupTicks, tick()
   * asks. (Asking at every heartbeat had every learner answer every learner.) A claim past the
   * horizon is taken only up to it, as the delivered prefix moves on: a learner far behind catches
   * up one horizon at a time, and no heartbeat can make it (or a new leader it serves) believe in
   * slots far ahead.
   */
  private onHeartbeat(message: HeartbeatMessage): void {
    if (!this.members.has("proposer", message.from)) {
      this.refusals.count("heartbeat-non-member");
      return;
    }
    const claimed = message.decidedThrough;
    if (claimed > CLAIMED_SLOT_CEILING) {
      this.refusals.count("heartbeat-beyond-horizon");
      return;
    }
    if (claimed > this.horizonSlot) this.refusals.count("heartbeat-beyond-horizon");
    this.claimedDecidedThrough = Math.max(this.claimedDecidedThrough, claimed);
  }

  /** Notes that every slot up to `slot` is decided (so holes below it get fetched). */
  noteDecidedThrough(slot: number): void {
    this.claimedDecidedThrough = Math.max(this.claimedDecidedThrough, Math.min(slot, CLAIMED_SLOT_CEILING));
  }

  /**
   * Tells learner `peer` that `slot` is decided, unasked: the value if we hold it, else our snapshot,
   * as if it had asked to catch up from `slot` (members only, at the same bounded rate). A replica
   * does so for an accept below its acceptor's floor (see `Replica.step`). Unlike a catch-up of the
   * peer's own, an offer never moves a snapshot pinned for its transfer.
   */
  offerDecided(peer: NodeId, slot: number): Output {
    const ask = { type: "catchup", from: peer, role: "learner", fromSlot: slot, toSlot: slot } as const;
    return this.onCatchup(ask, true);
  }

  /** Learns a chosen value from outside the message flow (a co-located proposer). */
  learn(slot: number, value: Value): Output {
    const output = emptyOutput();
    if (slot >= 1 && slot <= this.horizonSlot && !this.markChosen(slot, value, output))
      this.refusals.count("chosen-conflict");
    return output;
  }

  tick(): Output {
    this.now++;
    this.expireRequests();
    this.agePins();
    if (this.assembly !== null) return this.tickAssembly(this.assembly);
    if (this.deliveredThrough >= this.knownDecidedThrough) {
      this.ticksSinceProgress = 0;
      return emptyOutput();
    }
    this.ticksSinceProgress++;
    if (this.ticksSinceProgress < this.catchupTicks) return emptyOutput();
    this.ticksSinceProgress = 0;
    return this.requestMissing();
  }

  /**
   * Tells the learner the value proposed in `slot` at `ballot` (by its own proposer, or in an accept
   * its replica's acceptor took), so that votes without a value can be counted for it.
   */
  knowProposal(slot: number, ballot: Ballot, value: Value): Output {
    return this.noteProposal(slot, ballot, value, true);
  }

  /** `own`: from this node (its proposer or acceptor), which always gets a tally. */
  private noteProposal(slot: number, ballot: Ballot, value: Value, own: boolean): Output {
    const output = emptyOutput();
    const tally = this.tallyFor(slot, ballot, own);
    if (tally === undefined) return output;
    if (tally.value === null) tally.value = value;
    else if (!valuesEqual(tally.value, value)) this.conflictingVotes++;
    this.checkTally(slot, tally, output);
    return output;
  }

  /**
   * The tally of (slot, ballot), made if needed; undefined if the slot is decided or beyond the
   * horizon, or if it has `tallyBallotsPerSlotMax` ballots already (a vote's is then refused; our
   * own proposal's replaces the lowest ballot's). Our own proposals are tallied beyond the horizon
   * too (a leader whose learner lags still learns what it proposed: they are as many as its window),
   * and so are votes for a (slot, ballot) of ours.
   */
  private tallyFor(slot: number, ballot: Ballot, own: boolean): Tally | undefined {
    if (slot < 1 || slot <= this.deliveredThrough || this.chosen.has(slot)) return undefined;
    let bySlot = this.tallies.get(slot);
    if (slot > this.horizonSlot && !own && bySlot?.get(ballotKey(ballot)) === undefined) {
      this.refusals.count("vote-beyond-horizon");
      return undefined;
    }
    if (bySlot === undefined) {
      bySlot = new Map();
      this.tallies.set(slot, bySlot);
    }
    const key = ballotKey(ballot);
    let tally = bySlot.get(key);
    if (tally === undefined) {
      if (bySlot.size >= this.limits.tallyBallotsPerSlotMax) {
        if (!own) {
          this.refusals.count("tally-ballots-full");
          return undefined;
        }
        let lowest: string | null = null;
        let lowestBallot: Ballot | null = null;
        for (const [other, t] of bySlot) {
          if (lowestBallot === null || ballotGreater(lowestBallot, t.ballot)) {
            lowest = other;
            lowestBallot = t.ballot;
          }
        }
        if (lowest !== null) bySlot.delete(lowest);
      }
      tally = { ballot, value: null, voters: new Set(), messages: 0 };
      bySlot.set(key, tally);
    }
    return tally;
  }

  private onAccepted(message: AcceptedMessage): Output {
    const output = emptyOutput();
    if (!this.quorum.isAcceptor(message.from)) {
      this.refusals.count("vote-non-member");
      return output;
    }
    const tally = this.tallyFor(message.slot, message.ballot, false);
    if (tally === undefined) return output;
    if (message.value !== null) {
      if (tally.value === null) tally.value = message.value;
      else if (!valuesEqual(tally.value, message.value)) {
        // Two values at one (slot, ballot) can only come from a reused ballot; never count them together.
        this.conflictingVotes++;
        return output;
      }
    }
    tally.voters.add(message.from);
    tally.messages++;
    this.checkTally(message.slot, tally, output);
    return output;
  }

  private checkTally(slot: number, tally: Tally, output: Output): void {
    const reached = this.bugs.countMessages
      ? tally.messages >= this.quorum.phase2Weight
      : this.quorum.isPhase2Quorum(tally.voters);
    if (!reached) return;
    if (tally.value !== null) {
      // A quorum of votes for another value than one already chosen: forged votes or a real
      // disagreement (the simulator's checkers catch the latter). Refused, never asserted.
      if (!this.markChosen(slot, tally.value, output)) this.refusals.count("chosen-conflict");
    }
    // Chosen, but the value has not reached us: the slot is a hole that catch-up will fill.
    else if (slot > this.highestChosenSlot) this.highestChosenSlot = slot;
  }

  /**
   * Decided values, taken only for slots of a request of ours still awaiting answers, from the peer
   * it went to (any member, for a request to every member). The rest are refused
   * ("decide-unrequested"); from a member, they prompt a request of our own to that peer (the
   * leader's learner hears this way of a slot below an acceptor's floor: see `Replica.step`).
   */
  private onDecide(message: DecideMessage): Output {
    const output = emptyOutput();
    const from = message.from;
    if (!this.isServer(from)) {
      this.refusals.count("decide-non-member");
      return output;
    }
    const delivered = this.deliveredThrough;
    let lastSlot = 0;
    let unrequestedSlot = 0;
    for (const entry of message.entries) {
      const slot = entry.slot;
      if (slot <= this.deliveredThrough && slot < this.logStart) continue; // compacted: nothing to check
      if (!this.answersRequest(from, slot)) {
        if (slot > this.deliveredThrough) unrequestedSlot = Math.max(unrequestedSlot, slot);
        else if (!this.sameAsDelivered(slot, entry.value)) this.refusals.count("decide-conflict");
        continue;
      }
      if (slot > this.horizonSlot) continue; // within a request, but the request ran ahead of us
      if (!this.markChosen(slot, entry.value, output)) this.refusals.count("decide-conflict");
      lastSlot = Math.max(lastSlot, slot);
    }
    if (unrequestedSlot > 0) {
      this.refusals.count("decide-unrequested");
      if (!this.askedRecently(from)) this.requestFrom(from, unrequestedSlot, output);
    }
    if (this.deliveredThrough > delivered && this.deliveredThrough >= lastSlot) {
      // The answer is used up and we are still behind: ask its sender for the next range at once
      // (an answer is one decide message, so a long catch-up is a chain of them).
      if (this.deliveredThrough < this.knownDecidedThrough && this.assembly === null) {
        this.requestFrom(from, this.knownDecidedThrough, output);
        return output;
      }
    }
    mergeOutput(output, this.maybeRequestNow());
    return output;
  }

  /** Whether a delivered slot (still held) has this value; slots compacted away count as the same. */
  private sameAsDelivered(slot: number, value: Value): boolean {
    const known = this.chosenValue(slot);
    return known === undefined || valuesEqual(known, value);
  }

  /** A member that serves catch-up: a learner, or a proposer (its embedded learner). */
  private isServer(id: NodeId): boolean {
    return this.members.has("learner", id) || this.members.has("proposer", id);
  }

  /** Whether a decided value for `slot` from `from` answers a request of ours. */
  private answersRequest(from: NodeId, slot: number): boolean {
    for (const request of this.requests)
      if (
        request.fromSlot <= slot &&
        slot <= request.toSlot &&
        (request.peer === null || request.peer === from)
      )
        return true;
    return false;
  }

  /** Whether some request of ours went to `from` (or to every member): it may start a transfer. */
  private hasRequestTo(from: NodeId): boolean {
    for (const request of this.requests) if (request.peer === null || request.peer === from) return true;
    return false;
  }

  /** Whether we sent `from` a request of its own within the last `catchupTicks`. */
  private askedRecently(from: NodeId): boolean {
    for (const request of this.requests)
      if (request.peer === from && request.sentTick > this.now - this.catchupTicks) return true;
    return false;
  }

  /** Keeps track of a request sent (dropping the oldest past `learnerRequestsMax`). */
  private noteRequest(peer: NodeId | null, fromSlot: number, toSlot: number): void {
    this.requests.push({ peer, fromSlot, toSlot, sentTick: this.now });
    if (this.requests.length > this.limits.learnerRequestsMax)
      this.requests.splice(0, this.requests.length - this.limits.learnerRequestsMax);
  }

  /** Forgets requests older than `learnerRequestTicks`, and catch-ups for slots delivered since. */
  private expireRequests(): void {
    const delivered = this.deliveredThrough;
    const oldest = this.now - this.limits.learnerRequestTicks;
    if (this.requests.every((r) => r.sentTick >= oldest && (r.fromSlot === 0 || r.toSlot > delivered)))
      return;
    this.requests = this.requests.filter(
      (r) => r.sentTick >= oldest && (r.fromSlot === 0 || r.toSlot > delivered),
    );
  }

  /** Asks one peer for the slots from the first undelivered one, up to `throughSlot` (bounded). */
  private requestFrom(peer: NodeId, throughSlot: number, output: Output): void {
    const fromSlot = this.deliveredThrough + 1;
    const toSlot = Math.min(throughSlot, fromSlot + this.limits.catchupSlotsMax - 1, this.horizonSlot);
    if (toSlot < fromSlot) return;
    this.requestedThrough = Math.max(this.requestedThrough, toSlot);
    this.noteRequest(peer, fromSlot, toSlot);
    const role: Role = this.catchupFrom.includes("learner") ? "learner" : (this.catchupFrom[0] ?? "learner");
    const message = { type: "catchup" as const, from: this.id, role: this.role, fromSlot, toSlot };
    output.send.push({ to: { role, id: peer }, message });
  }

  /**
   * Whether to answer a request from `role` `id`: members only, at a bounded rate (a token bucket
   * per peer, `serveRequestsBurst` deep, `serveRequestsPerTick` back each tick).
   */
  private mayServe(role: Role, id: NodeId, kind: "catchup" | "snapshot-request"): boolean {
    if ((role !== "learner" && role !== "proposer") || !this.members.has(role, id)) {
      this.refusals.count(`${kind}-non-member`);
      return false;
    }
    const key = pinKey(id, role);
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.limits.servePeersMax) this.dropFullBuckets();
      if (this.buckets.size >= this.limits.servePeersMax) {
        this.refusals.count("serve-peers-full");
        return false;
      }
      bucket = { tokens: this.limits.serveRequestsBurst, tick: this.now };
      this.buckets.set(key, bucket);
    }
    this.refill(bucket);
    if (bucket.tokens < 1) {
      this.refusals.count("serve-rate");
      return false;
    }
    bucket.tokens--;
    return true;
  }

  private refill(bucket: Bucket): void {
    const added = (this.now - bucket.tick) * this.limits.serveRequestsPerTick;
    bucket.tokens = Math.min(this.limits.serveRequestsBurst, bucket.tokens + added);
    bucket.tick = this.now;
  }

  /** Forgets the buckets of peers idle long enough to be full again (they start full anyway). */
  private dropFullBuckets(): void {
    for (const [key, bucket] of this.buckets) {
      this.refill(bucket);
      if (bucket.tokens >= this.limits.serveRequestsBurst) this.buckets.delete(key);
    }
  }

  /**
   * Answers a catch-up with one `decide` message (at most `entriesPerMessageMax` slots and
   * `bytesPerMessageMax` estimated bytes): the asker asks again from where the answer ends. Slots
   * held only in the snapshot are answered with a window of the snapshot instead.
   */
  private onCatchup(message: CatchupMessage, offered = false): Output {
    const output = emptyOutput();
    if (message.from === this.id && message.role === this.role) return output;
    if (!this.mayServe(message.role, message.from, "catchup")) return output;
    // Slots we hold only in the snapshot: send the snapshot (the asker then asks for the rest).
    if (message.fromSlot < this.logStart && this.snapshotValue !== null) {
      const key = pinKey(message.from, message.role);
      const pin = this.pins.get(key);
      // An offer (see `offerDecided`) to a peer with a transfer pinned here: that transfer is how it
      // learns the slot. A new pin would restart it on every late accept (seed 726829).
      if (offered && pin !== undefined) return output;
      // A snapshot already pinned for this peer that covers what it asks for is the one its
      // transfer is on (a catch-up that was delayed or duplicated, or a transfer it gave up):
      // keep to it. Otherwise a new transfer starts, on our newest snapshot.
      if (pin !== undefined && pin.slot >= message.fromSlot) {
        pin.idleTicks = 0;
        this.sendSnapshot(message.from, message.role, pin, 0, output);
      } else {
        this.sendSnapshot(message.from, message.role, this.pinNewest(key), 0, output);
      }
      return output;
    }
    // Only slots we could hold: a range far past them (up to 2^53) would not even count up exactly.
    const toSlot = Math.min(
      message.toSlot,
      message.fromSlot + this.limits.catchupSlotsMax - 1,
      this.horizonSlot,
    );
    const entries: SlotValue[] = [];
    let bytes = 0;
    for (let slot = Math.max(1, message.fromSlot); slot <= toSlot; slot++) {
      const value = this.chosenValue(slot);
      if (value === undefined) continue;
      const size = valueBytesEstimate(value);
      if (
        entries.length > 0 &&
        (entries.length >= this.limits.entriesPerMessageMax || bytes + size > this.limits.bytesPerMessageMax)
      )
        break;
      entries.push({ slot, value });
      bytes += size;
    }
    if (entries.length > 0) output.send.push(this.decideTo(message, entries));
    return output;
  }

  /**
   * Serves the next window of a transfer. The snapshot a transfer started on stays pinned for its
   * peer, so a transfer finishes however often we take snapshots: while the peer keeps asking
   * (at least every `snapshotPinIdleTicks`) and at most `snapshotPinsMax` peers transfer at once,
   * every request it sends for that slot is answered from one and the same text, so every answer
   * that arrives moves its assembly on by at least one chunk, and a finite text is done after
   * finitely many. (Before pins, each request found a newer snapshot and restarted the transfer
   * from offset 0: with a snapshot every slot and small chunks, none ever finished; seed 810285.)
   * The peer leaves the pinned snapshot only for a newer one that it asked everyone for (after
   * repeated silence), which starts a transfer pinned the same way at its sender.
   */
  private onSnapshotRequest(message: SnapshotRequestMessage): Output {
    const output = emptyOutput();
    if (this.snapshotValue === null || (message.from === this.id && message.role === this.role))
      return output;
    if (!this.mayServe(message.role, message.from, "snapshot-request")) return output;
    const key = pinKey(message.from, message.role);
    const pin = this.pins.get(key);
    if (pin !== undefined && message.slot <= pin.slot) {
      // Older than its pin: a delayed or duplicated request from before the peer moved on to the
      // pinned snapshot. Answering it would move the pin and restart the transfer the peer is on.
      if (message.slot < pin.slot) return output;
      pin.idleTicks = 0;
      this.sendSnapshot(message.from, message.role, pin, message.offset, output);
      return output;
    }
    // No transfer pinned here for that slot: it is our newest snapshot (a transfer started on it
    // whose pin was dropped, or one from a peer with the same snapshot), or it is not ours any more,
    // and the peer gets our newest from the start (it takes a newer one, ignores an older one).
    const offset = message.slot === this.snapshotValue.slot ? message.offset : 0;
    this.sendSnapshot(message.from, message.role, this.pinNewest(key), offset, output);
    return output;
  }

  /** Pins our newest snapshot for the peer `key` (in place of its old pin), making room if needed. */
  private pinNewest(key: string): Pin {
    this.pins.delete(key);
    if (this.pins.size >= this.limits.snapshotPinsMax) {
      let idlest: string | null = null;
      let idlestTicks = -1;
      for (const [other, pin] of this.pins) {
        if (pin.idleTicks > idlestTicks) {
          idlest = other;
          idlestTicks = pin.idleTicks;
        }
      }
      if (idlest !== null) {
        this.pins.delete(idlest);
        this.snapshotPinsEvicted++;
      }
    }
    const pin: Pin = {
      slot: (this.snapshotValue as Snapshot).slot,
      text: this.snapshotText,
      checksum: this.snapshotChecksum,
      idleTicks: 0,
    };
    if (this.limits.snapshotPinsMax > 0) this.pins.set(key, pin);
    assert(this.pins.size <= Math.max(0, this.limits.snapshotPinsMax), `learner ${this.id}: too many pins`);
    return pin;
  }

  /** Drops the pins of peers that have not asked for `snapshotPinIdleTicks` ticks. */
  private agePins(): void {
    for (const [key, pin] of this.pins)
      if (++pin.idleTicks > this.limits.snapshotPinIdleTicks) this.pins.delete(key);
  }

  /** Sends a window of chunks of a pinned snapshot from `offset` on (`snapshotWindowChunks`). */
  private sendSnapshot(to: NodeId, role: Role, pin: Pin, offset: number, output: Output): void {
    const { text, slot } = pin;
    let at = Math.max(0, Math.min(offset, text.length));
    const chunks = snapshotWindowChunks(this.limits);
    for (let i = 0; i < chunks && (at < text.length || i === 0); i++) {
      const end = chunkEnd(text, at, this.limits.snapshotChunkUnits);
      const message: SnapshotChunkMessage = {
        type: "snapshot-chunk",
        from: this.id,
        slot,
        length: text.length,
        checksum: pin.checksum,
        offset: at,
        data: text.slice(at, end),
      };
      output.send.push({ to: { role, id: to }, message });
      at = end;
    }
  }

  /** Units of a snapshot a receiver takes ahead of what it has assembled: two windows. */
  private get chunkWindowUnits(): number {
    return 2 * snapshotWindowChunks(this.limits) * this.limits.snapshotChunkUnits;
  }

  /**
   * Takes a chunk only for a transfer this learner asked for: the first chunks of a snapshot from a
   * peer it sent a request to, within the first window; then only from that peer (or any member,
   * once the stalled transfer was asked of everyone), of the same text, at offsets within the window
   * it expects. Anything else is refused and counted, and no assembly grows past two windows ahead.
   */
  private onSnapshotChunk(message: SnapshotChunkMessage): Output {
    const output = emptyOutput();
    if (message.slot <= this.deliveredThrough) return output; // we are past it already
    if (!this.isServer(message.from)) {
      this.refusals.count("snapshot-chunk-non-member");
      return output;
    }
    const end = message.offset + message.data.length;
    if (message.length > this.limits.snapshotUnitsMax) {
      this.refuseChunk("snapshot-too-large");
      return output;
    }
    if (
      end > message.length ||
      message.data.length === 0 ||
      message.data.length > this.limits.snapshotChunkUnits
    ) {
      if (message.length !== 0) this.refuseChunk("snapshot-chunk-malformed");
      return output;
    }
    const horizon =
      Math.max(this.claimedDecidedThrough, this.knownDecidedThrough) +
      this.limits.windowSlots +
      this.limits.learnerMarginSlots;
    if (message.slot > horizon) {
      this.refuseChunk("snapshot-beyond-horizon");
      return output;
    }
    let assembly = this.assembly;
    const sameText =
      assembly !== null &&
      message.slot === assembly.slot &&
      message.length === assembly.length &&
      message.checksum === assembly.checksum;
    if (
      assembly === null ||
      (!sameText && message.slot > assembly.slot && this.mayRestart(assembly, message.from))
    ) {
      // A new transfer: only from a peer we asked, only its first window.
      if (!this.hasRequestTo(message.from) || message.offset >= this.chunkWindowUnits) {
        this.refuseChunk("snapshot-chunk-unrequested");
        // A member offering a snapshot we did not ask for (a replica answering our leader's accept
        // below its floor: see `Replica.step`) is asked for those slots; its answer is then ours.
        if (this.assembly === null && !this.askedRecently(message.from))
          this.requestFrom(message.from, message.slot, output);
        return output;
      }
      assembly = {
        from: message.from,
        askedAll: false,
        slot: message.slot,
        length: message.length,
        checksum: message.checksum,
        ahead: new Map(),
        parts: [],
        received: 0,
        requestedTo: 0,
        idleTicks: 0,
        retries: 0,
      };
      this.assembly = assembly;
    } else if (!sameText) {
      return output; // an older snapshot, or another text for the same slot: not the one we assemble
    } else if (message.from !== assembly.from && !assembly.askedAll) {
      this.refuseChunk("snapshot-chunk-unrequested");
      return output;
    }
    if (message.offset < assembly.received) return output; // a duplicate
    if (
      message.offset >= assembly.received + this.chunkWindowUnits ||
      (!assembly.ahead.has(message.offset) && assembly.ahead.size >= 2 * snapshotWindowChunks(this.limits))
    ) {
      this.refuseChunk("snapshot-chunk-unexpected");
      return output;
    }
    assembly.ahead.set(message.offset, message.data);
    let next = assembly.ahead.get(assembly.received);
    while (next !== undefined) {
      assembly.ahead.delete(assembly.received);
      assembly.parts.push(next);
      assembly.received += next.length;
      assembly.idleTicks = 0;
      assembly.retries = 0;
      next = assembly.ahead.get(assembly.received);
    }
    if (assembly.received > assembly.length) {
      // Overlapping chunks (offsets that are not where chunks start) ran past the text.
      this.assembly = null;
      this.refuseChunk("snapshot-chunk-unexpected");
    } else if (assembly.received === assembly.length) {
      this.assembly = null;
      this.install(assembly, output);
    } else if (assembly.received >= assembly.requestedTo) {
      this.requestChunks(assembly, output);
    }
    return output;
  }

  /**
   * Whether a newer snapshot may replace the one being assembled. A transfer that makes progress is
   * finished first, even when peers have taken newer snapshots since: any snapshot at or above the
   * hole gets delivery going, and the values learned meanwhile (a leader's own decisions above all)
   * carry it on from there. Restarting on every newer snapshot never finishes a transfer that takes
   * longer than the peers take between snapshots (seed 726829: a leader whose learner lagged
   * restarted 1,400 times in 3,000 ticks). A newer snapshot is taken from the peer we assemble from
   * (it no longer serves ours), or once ours has stalled for a catch-up interval.
   */
  private mayRestart(assembly: Assembly, from: NodeId): boolean {
    return from === assembly.from || assembly.retries > 0;
  }

  private refuseChunk(reason: string): void {
    this.refusals.count(reason);
    this.snapshotsRefused++;
  }

  private requestChunks(assembly: Assembly, output: Output, from: NodeId | null = assembly.from): void {
    assembly.requestedTo =
      assembly.received + this.limits.snapshotChunkUnits * snapshotWindowChunks(this.limits);
    const message: SnapshotRequestMessage = {
      type: "snapshot-request",
      from: this.id,
      role: this.role,
      slot: assembly.slot,
      offset: assembly.received,
    };
    this.noteRequest(from, 0, 0);
    if (from !== null) output.send.push({ to: { role: "learner", id: from }, message });
    else {
      assembly.askedAll = true;
      for (const role of this.catchupFrom) output.send.push({ to: { role }, message });
    }
  }

  /** A stalled transfer is asked again; after repeated silence, of everyone; then given up. */
  private tickAssembly(assembly: Assembly): Output {
    const output = emptyOutput();
    if (this.deliveredThrough >= assembly.slot) {
      this.assembly = null;
      return output;
    }
    if (++assembly.idleTicks < this.catchupTicks) return output;
    assembly.idleTicks = 0;
    assembly.retries++;
    if (assembly.retries > SNAPSHOT_RETRIES_MAX) {
      this.assembly = null; // its sender is gone: the next catch-up finds another
      return this.requestMissing();
    }
    this.requestChunks(assembly, output, assembly.retries > SNAPSHOT_RETRIES_MAX / 2 ? null : assembly.from);
    return output;
  }

  /**
   * Installs an assembled snapshot: the application's state and the sessions as of its slot replace
   * ours, and delivery goes on from the slot after it. Everything is checked before anything is
   * kept: the checksum, the text, the sessions (built into a table of their own), then whether the
   * application takes the state (`checkSnapshotsWith`). A refusal leaves the learner as it was.
   */
  private install(assembly: Assembly, output: Output): void {
    const text = assembly.parts.join("");
    if (textChecksum(text) !== assembly.checksum) {
      this.refuseChunk("snapshot-checksum");
      return;
    }
    const decoded = decodeSnapshot(text);
    if (!decoded.ok || decoded.value.slot !== assembly.slot) {
      this.refuseChunk("snapshot-malformed");
      return;
    }
    const snapshot = decoded.value;
    if (snapshot.slot <= this.deliveredThrough) return;
    const sessions = this.newSessionTable();
    const problem = sessions.import(snapshot.sessions);
    if (problem !== null) {
      // Sessions built under other limits would make this replica refuse or apply other commands
      // than its peers from here on: refuse the snapshot rather than diverge (docs/durability.md).
      this.refuseChunk("snapshot-sessions");
      this.snapshotRefusal = `snapshot through slot ${snapshot.slot} from learner ${assembly.from}: ${problem}`;
      return;
    }
    const restoreProblem = this.snapshotCheck?.(snapshot) ?? null;
    if (restoreProblem !== null) {
      this.refuseChunk("snapshot-restore-failed");
      this.snapshotRefusal = `snapshot through slot ${snapshot.slot} from learner ${assembly.from}: ${restoreProblem}`;
      return;
    }
    this.sessions = sessions;
    this.snapshotsInstalled++;
    this.setSnapshot(snapshot, text, assembly.checksum);
    this.log = [];
    this.logStart = snapshot.slot + 1;
    for (const slot of this.chosen.keys()) if (slot <= snapshot.slot) this.chosen.delete(slot);
    for (const slot of this.tallies.keys()) if (slot <= snapshot.slot) this.tallies.delete(slot);
    if (snapshot.slot > this.highestChosenSlot) this.highestChosenSlot = snapshot.slot;
    this.requestedThrough = snapshot.slot;
    mergeOutput(output, { ...emptyOutput(), snapshot });
    if (this.durableLog) output.persist = mergeDelta(output.persist, { snapshot });
    this.deliverReady(output);
    mergeOutput(output, this.maybeRequestNow());
  }

  private newSessionTable(): SessionTable {
    return new SessionTable(
      { clientsMax: this.limits.clientsMax, clientRangesMax: this.limits.clientRangesMax },
      this.bugs.sessions,
    );
  }

  private decideTo(request: CatchupMessage, entries: SlotValue[]) {
    return {
      to: { role: request.role, id: request.from },
      message: { type: "decide" as const, from: this.id, entries },
    };
  }

  /**
   * Takes `value` as chosen in `slot` (which callers keep within the horizon). False, and nothing
   * changed, if another value is known chosen there: the caller counts the refusal.
   */
  private markChosen(slot: number, value: Value, output: Output): boolean {
    if (slot < this.logStart) return true; // delivered, and compacted into the snapshot
    const known = this.chosenValue(slot);
    if (known !== undefined) return valuesEqual(known, value);
    this.chosen.set(slot, value);
    this.tallies.delete(slot);
    this.newlyChosen.push({ slot, value });
    if (slot > this.highestChosenSlot) this.highestChosenSlot = slot;
    this.deliverReady(output);
    return true;
  }

  private deliverReady(output: Output): void {
    let next = this.deliveredThrough + 1;
    let value = this.chosen.get(next);
    if (value === undefined) return;
    while (value !== undefined) {
      this.chosen.delete(next);
      this.log.push(value);
      this.countTowardsSnapshot(value);
      output.decided.push(this.applySessions(next, value));
      if (this.durableLog) output.persist = mergeDelta(output.persist, { decided: [{ slot: next, value }] });
      next++;
      value = this.chosen.get(next);
    }
    this.ticksSinceProgress = 0;
  }

  /**
   * Runs a delivered slot's commands through the session table: the decision applies the ones
   * delivered for the first time, and names the ones refused (whose clients must be told).
   */
  private applySessions(slot: number, value: Value): Decision {
    const commands: Command[] = [];
    let refused: { command: Command; reason: RefusalReason }[] | undefined;
    for (const command of value.commands) {
      const outcome = this.sessions.deliver(command);
      if (outcome === "delivered") commands.push(command);
      else if (outcome !== "duplicate") {
        refused ??= [];
        refused.push({ command, reason: outcome });
      }
    }
    return refused === undefined ? { slot, value, commands } : { slot, value, commands, refused };
  }

  /**
   * Why a command not delivered yet is certain to be refused when decided (see
   * `SessionTable.refusal`), or null.
   */
  refusal(command: Command): RefusalReason | null {
    return this.sessions.refusal(command);
  }

  /** Asks for the next range at once when the last request has been answered and we are still behind. */
  private maybeRequestNow(): Output {
    if (this.deliveredThrough >= this.knownDecidedThrough) return emptyOutput();
    if (this.deliveredThrough < this.requestedThrough || this.assembly !== null) return emptyOutput();
    return this.requestMissing();
  }

  private requestMissing(): Output {
    const output = emptyOutput();
    const fromSlot = this.deliveredThrough + 1;
    const toSlot = Math.min(this.knownDecidedThrough, fromSlot + this.limits.catchupSlotsMax - 1);
    if (toSlot < fromSlot) return output;
    this.requestedThrough = toSlot;
    this.noteRequest(null, fromSlot, toSlot);
    const message = { type: "catchup" as const, from: this.id, role: this.role, fromSlot, toSlot };
    for (const role of this.catchupFrom) output.send.push({ to: { role }, message });
    return output;
  }
}

/** The key of a peer's pin: a node may ask both as a learner and as a proposer. */
function pinKey(id: NodeId, role: Role): string {
  return `${role}:${id}`;
}
