import { assert } from "./assert.js";
import { type Ballot, ballotKey, type NodeId } from "./ballot.js";
import { DEFAULT_LIMITS, type Limits } from "./limits.js";
import type {
  AcceptedMessage,
  CatchupMessage,
  DecideMessage,
  Decision,
  Message,
  Role,
  SlotValue,
  Value,
} from "./messages.js";
import { valuesEqual } from "./messages.js";
import { emptyOutput, mergeDelta, mergeOutput, type Output } from "./output.js";
import type { QuorumSystem } from "./quorum.js";
import { SessionTable } from "./sessions.js";
import { valueBytesEstimate } from "./value-size.js";

/** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
export interface LearnerBugs {
  /** Count accepted messages instead of distinct acceptors: a duplicated datagram fakes a quorum. */
  readonly countMessages?: boolean;
}

export interface LearnerOptions {
  readonly id: NodeId;
  readonly quorum: QuorumSystem;
  readonly limits?: Partial<Limits>;
  /** Ticks a hole may stay open before the learner asks for it (again). */
  readonly catchupTicks?: number;
  /** The roles asked for missing slots. */
  readonly catchupFrom?: readonly Role[];
  /** The role this learner answers as (a proposer embeds a learner of its own). */
  readonly role?: Role;
  /** Votes for slots further than this past the delivered prefix are not tallied (memory bound). */
  readonly aheadSlotsMax?: number;
  /** Ask for every delivered slot to be persisted (`Output.persist.decided`). */
  readonly durableLog?: boolean;
  /** The delivered log from a previous run (slots 1, 2, ...): learned again silently. */
  readonly restoreLog?: readonly Value[];
  readonly bugs?: LearnerBugs;
}

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
  private readonly aheadSlotsMax: number;
  private readonly bugs: LearnerBugs;

  /** Delivered values; `log[i]` is slot i + 1. */
  private readonly log: Value[] = [];
  /** Chosen but not yet delivered (waiting for a hole below them). */
  private readonly chosen = new Map<number, Value>();
  private readonly tallies = new Map<number, Map<string, Tally>>();
  private readonly sessions: SessionTable;
  private readonly durableLog: boolean;
  private restored: Decision[] = [];
  private newlyChosen: SlotValue[] = [];
  private highestChosenSlot = 0;
  private leaderDecidedThrough = 0;
  private ticksSinceProgress = 0;
  private requestedThrough = 0;
  /** Votes that named a value other than the one first seen at the same (slot, ballot). */
  conflictingVotes = 0;

  constructor(options: LearnerOptions) {
    this.id = options.id;
    this.quorum = options.quorum;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.catchupTicks = options.catchupTicks ?? 10;
    this.catchupFrom = options.catchupFrom ?? ["learner", "proposer"];
    this.role = options.role ?? "learner";
    this.aheadSlotsMax = options.aheadSlotsMax ?? 100_000;
    this.bugs = options.bugs ?? {};
    this.sessions = new SessionTable(this.limits.clientsMax, this.limits.clientRangesMax);
    this.durableLog = options.durableLog ?? false;
    for (const value of options.restoreLog ?? []) {
      this.log.push(value);
      const commands = value.commands.filter((command) => this.sessions.deliver(command));
      this.restored.push({ slot: this.log.length, value, commands });
    }
  }

  /**
   * The decisions of the restored log, once (for a driver that replays them to its application):
   * the same decisions, commands filtered the same way, as when they were first delivered.
   */
  drainRestored(): Decision[] {
    const restored = this.restored;
    this.restored = [];
    return restored;
  }

  /** Every slot up to this one is delivered. */
  get deliveredThrough(): number {
    return this.log.length;
  }

  /** The highest slot known to be chosen, or said decided by the leader. */
  get knownDecidedThrough(): number {
    return Math.max(this.highestChosenSlot, this.leaderDecidedThrough, this.log.length);
  }

  /** The chosen value of a slot, if this learner knows it. */
  chosenValue(slot: number): Value | undefined {
    return slot <= this.log.length ? this.log[slot - 1] : this.chosen.get(slot);
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
        return this.onAccepted(message);
      case "decide":
        return this.onDecide(message);
      case "catchup":
        return this.onCatchup(message);
      case "accept":
        // With separate roles the leader copies its accepts to the learners: votes carry no value.
        return this.knowProposal(message.slot, message.ballot, message.value);
      case "heartbeat":
        // Only noted: votes in flight usually close the gap. If it stays open for catchupTicks,
        // tick() asks. (Asking at every heartbeat had every learner answer every learner.)
        this.leaderDecidedThrough = Math.max(this.leaderDecidedThrough, message.decidedThrough);
        return emptyOutput();
      default:
        return emptyOutput();
    }
  }

  /** Notes that every slot up to `slot` is decided (so holes below it get fetched). */
  noteDecidedThrough(slot: number): void {
    this.leaderDecidedThrough = Math.max(this.leaderDecidedThrough, slot);
  }

  /** Learns a chosen value from outside the message flow (a co-located proposer). */
  learn(slot: number, value: Value): Output {
    const output = emptyOutput();
    this.markChosen(slot, value, output);
    return output;
  }

  tick(): Output {
    if (this.log.length >= this.knownDecidedThrough) {
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
    const output = emptyOutput();
    const tally = this.tallyFor(slot, ballot);
    if (tally === undefined) return output;
    if (tally.value === null) tally.value = value;
    else if (!valuesEqual(tally.value, value)) this.conflictingVotes++;
    this.checkTally(slot, tally, output);
    return output;
  }

  private tallyFor(slot: number, ballot: Ballot): Tally | undefined {
    if (slot < 1 || slot <= this.log.length || this.chosen.has(slot)) return undefined;
    if (slot > this.log.length + this.aheadSlotsMax) return undefined;
    let bySlot = this.tallies.get(slot);
    if (bySlot === undefined) {
      bySlot = new Map();
      this.tallies.set(slot, bySlot);
    }
    const key = ballotKey(ballot);
    let tally = bySlot.get(key);
    if (tally === undefined) {
      tally = { ballot, value: null, voters: new Set(), messages: 0 };
      bySlot.set(key, tally);
    }
    return tally;
  }

  private onAccepted(message: AcceptedMessage): Output {
    const output = emptyOutput();
    if (!this.quorum.isAcceptor(message.from)) return output;
    const tally = this.tallyFor(message.slot, message.ballot);
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
    if (tally.value !== null) this.markChosen(slot, tally.value, output);
    // Chosen, but the value has not reached us: the slot is a hole that catch-up will fill.
    else if (slot > this.highestChosenSlot) this.highestChosenSlot = slot;
  }

  private onDecide(message: DecideMessage): Output {
    const output = emptyOutput();
    for (const entry of message.entries) this.markChosen(entry.slot, entry.value, output);
    mergeOutput(output, this.maybeRequestNow());
    return output;
  }

  private onCatchup(message: CatchupMessage): Output {
    const output = emptyOutput();
    if (message.from === this.id && message.role === this.role) return output;
    const toSlot = Math.min(message.toSlot, message.fromSlot + this.limits.catchupSlotsMax - 1);
    let entries: SlotValue[] = [];
    let bytes = 0;
    for (let slot = Math.max(1, message.fromSlot); slot <= toSlot; slot++) {
      const value = this.chosenValue(slot);
      if (value === undefined) continue;
      const size = valueBytesEstimate(value);
      if (
        entries.length > 0 &&
        (entries.length >= this.limits.entriesPerMessageMax || bytes + size > this.limits.bytesPerMessageMax)
      ) {
        output.send.push(this.decideTo(message, entries));
        entries = [];
        bytes = 0;
      }
      entries.push({ slot, value });
      bytes += size;
    }
    if (entries.length > 0) output.send.push(this.decideTo(message, entries));
    return output;
  }

  private decideTo(request: CatchupMessage, entries: SlotValue[]) {
    return {
      to: { role: request.role, id: request.from },
      message: { type: "decide" as const, from: this.id, entries },
    };
  }

  private markChosen(slot: number, value: Value, output: Output): void {
    if (slot < 1) return;
    const known = this.chosenValue(slot);
    if (known !== undefined) {
      assert(valuesEqual(known, value), `learner ${this.id}: two different values chosen in slot ${slot}`);
      return;
    }
    if (slot > this.log.length + this.aheadSlotsMax) return;
    this.chosen.set(slot, value);
    this.tallies.delete(slot);
    this.newlyChosen.push({ slot, value });
    if (slot > this.highestChosenSlot) this.highestChosenSlot = slot;
    this.deliverReady(output);
  }

  private deliverReady(output: Output): void {
    let next = this.log.length + 1;
    let value = this.chosen.get(next);
    if (value === undefined) return;
    while (value !== undefined) {
      this.chosen.delete(next);
      this.log.push(value);
      const commands = value.commands.filter((command) => this.sessions.deliver(command));
      const decision: Decision = { slot: next, value, commands };
      output.decided.push(decision);
      if (this.durableLog) output.persist = mergeDelta(output.persist, { decided: [{ slot: next, value }] });
      next++;
      value = this.chosen.get(next);
    }
    this.ticksSinceProgress = 0;
  }

  /** Asks for the next range at once when the last request has been answered and we are still behind. */
  private maybeRequestNow(): Output {
    if (this.log.length >= this.knownDecidedThrough) return emptyOutput();
    if (this.log.length < this.requestedThrough) return emptyOutput();
    return this.requestMissing();
  }

  private requestMissing(): Output {
    const output = emptyOutput();
    const fromSlot = this.log.length + 1;
    const toSlot = Math.min(this.knownDecidedThrough, fromSlot + this.limits.catchupSlotsMax - 1);
    if (toSlot < fromSlot) return output;
    this.requestedThrough = toSlot;
    const message = { type: "catchup" as const, from: this.id, role: this.role, fromSlot, toSlot };
    for (const role of this.catchupFrom) output.send.push({ to: { role }, message });
    return output;
  }
}
