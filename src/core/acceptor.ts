import {
  type Ballot,
  ballotAtLeast,
  ballotEquals,
  ballotGreater,
  ballotRefusal,
  maxBallot,
  type NodeId,
  ZERO_BALLOT,
} from "./ballot.js";
import { DEFAULT_LIMITS, type Limits } from "./limits.js";
import type {
  AcceptedEntry,
  AcceptMessage,
  Destination,
  Envelope,
  Message,
  PrepareMessage,
} from "./messages.js";
import { valuesEqual } from "./messages.js";
import { emptyOutput, type Output } from "./output.js";
import { Refusals } from "./refusals.js";
import { valueBytesEstimate } from "./value-size.js";

/** What an acceptor keeps on stable storage. */
export interface AcceptorState {
  readonly promised: Ballot;
  readonly accepted: readonly AcceptedEntry[];
  /** No votes are kept below this slot, and every slot below it is decided (0: none dropped). */
  readonly floorSlot?: number;
}

/** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
export interface AcceptorBugs {
  /** Accept at any ballot, ignoring the promise (breaks safety). */
  readonly ignorePromiseInPhase2?: boolean;
  /**
   * No disruption guard: promise a higher ballot though the leader is alive (the acceptor before
   * issue 9). Not a safety bug: the simulator's canaries use it to reach the deaf-leader traces
   * that the guard and check-quorum now cut short.
   */
  readonly noDisruptionGuard?: boolean;
}

export interface AcceptorOptions {
  readonly id: NodeId;
  readonly limits?: Partial<Limits>;
  /**
   * Where votes (accepted messages) go. `proposer-and-learners` (default) suits separate roles;
   * `learners` suits collapsed replicas, where each node's learner tells its own proposer.
   */
  readonly votesTo?: "proposer-and-learners" | "learners";
  /** Durable state from a previous run. */
  readonly restore?: AcceptorState;
  /**
   * The acceptor's state was lost or found damaged: it must not vote or promise until `rejoin()` is
   * called, once the cluster has moved past every slot it might have voted in (see `Replica`).
   */
  readonly rejoining?: boolean;
  readonly bugs?: AcceptorBugs;
  /** Where refused input is counted (a `Replica` passes the one its roles share). */
  readonly refusals?: Refusals;
  /**
   * The proposers' ids: a prepare or accept from any other id is refused ("not-a-proposer").
   * Absent: any id is taken (tests, and drivers that do not know the membership).
   */
  readonly proposers?: readonly NodeId[];
  /**
   * The disruption guard: while the leader at the promised ballot was heard within this many ticks
   * (an accept or a prepare of its own at that ballot, or `noteLeader`), a prepare at a higher ballot
   * from another proposer is refused ("leader-alive") and answered with a reject. Absent: no guard.
   */
  readonly electionTimeoutTicks?: number;
  /**
   * The highest slot the node knows decided, from outside the acceptor (a `Replica` passes its
   * learner's knowledge): the slot horizon is measured from it too, so a lagging replica's acceptor
   * votes again as soon as its learner has caught up.
   */
  readonly knownSlot?: () => number;
  /** The highest ballot round the node knows of from outside the acceptor (its co-located proposer). */
  readonly knownRound?: () => number;
}

/**
 * The acceptor (Lamport's "Paxos Made Simple", section 2.2): it promises never to accept below the
 * highest ballot it has promised, and accepts proposals at or above it. It answers a prepare with
 * every vote it holds from the prepare's first slot on, paged to bound message size, and answers a
 * refused request with its promised ballot so the proposer can jump past it.
 *
 * Every reply depends on state that must be durable first, so replies go to `sendAfterPersist`.
 *
 * @example
 * const acceptor = new Acceptor({ id: 1 });
 * const out = acceptor.step({ type: "prepare", from: 1, ballot: { round: 1, node: 1 }, firstSlot: 1 });
 * // out.persist = { promised: 1.1 }; out.sendAfterPersist = [promise to proposer 1]
 */
export class Acceptor {
  readonly id: NodeId;
  private promisedBallot: Ballot;
  /** Votes by slot. */
  private readonly votes = new Map<number, AcceptedEntry>();
  private floor: number;
  private isRejoining: boolean;
  private seenBallot: Ballot = ZERO_BALLOT;
  /** The highest slot seen in any accept. */
  highestSlot = 0;
  /** Prepares and accepts left unanswered (rejoining, or below the floor). */
  unanswered = 0;
  private readonly limits: Limits;
  private readonly votesTo: "proposer-and-learners" | "learners";
  private readonly bugs: AcceptorBugs;
  /** Refused input, counted by reason (see docs/security.md). */
  readonly refusals: Refusals;
  private readonly proposers: ReadonlySet<NodeId> | null;
  private readonly guardTicks: number;
  private readonly knownSlotOutside: () => number;
  private readonly knownRoundOutside: () => number;
  /** Ticks since the leader at `leaderHeardBallot` was last heard (Infinity: never). */
  private leaderSilentTicks = Number.POSITIVE_INFINITY;
  private leaderHeardBallot: Ballot = ZERO_BALLOT;
  /** The first slot of the last prepare promised: its proposer has delivered every slot below it. */
  private promisedFirstSlot = 0;

  constructor(options: AcceptorOptions) {
    this.id = options.id;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.votesTo = options.votesTo ?? "proposer-and-learners";
    this.bugs = options.bugs ?? {};
    this.promisedBallot = options.restore?.promised ?? ZERO_BALLOT;
    this.floor = options.restore?.floorSlot ?? 0;
    for (const entry of options.restore?.accepted ?? [])
      if (entry.slot >= this.floor) this.votes.set(entry.slot, entry);
    this.isRejoining = options.rejoining ?? false;
    this.refusals = options.refusals ?? new Refusals();
    this.proposers = options.proposers ? new Set(options.proposers) : null;
    this.guardTicks = options.electionTimeoutTicks ?? 0;
    this.knownSlotOutside = options.knownSlot ?? (() => 0);
    this.knownRoundOutside = options.knownRound ?? (() => 0);
    for (const entry of this.votes.values()) if (entry.slot > this.highestSlot) this.highestSlot = entry.slot;
  }

  /** The highest ballot promised. */
  get promised(): Ballot {
    return this.promisedBallot;
  }

  /** Votes below this slot are not kept; every slot below it is decided. */
  get floorSlot(): number {
    return this.floor;
  }

  /** True while the acceptor waits to rejoin after losing its state: it neither promises nor votes. */
  get rejoining(): boolean {
    return this.isRejoining;
  }

  /** The highest ballot seen in any prepare or accept. */
  get highestBallotSeen(): Ballot {
    return this.seenBallot;
  }

  /**
   * Ends the rejoin: from now on the acceptor promises and votes again, never below `promised`
   * and never in a slot below `floorSlot` (it has no record of those: they are all decided).
   * Both go to stable storage before anything that depends on them leaves.
   */
  rejoin(promised: Ballot, floorSlot: number): Output {
    const output = emptyOutput();
    if (!this.isRejoining) return output;
    this.isRejoining = false;
    this.promisedBallot = maxBallot(this.promisedBallot, maxBallot(promised, this.seenBallot));
    this.floor = Math.max(this.floor, floorSlot);
    output.persist = { promised: this.promisedBallot, floorSlot: this.floor, rejoining: false };
    return output;
  }

  /**
   * Drops every vote below `slot`, which the caller knows decided and kept elsewhere (its replica's
   * snapshot covers it). The floor only rises; promises report it, so no proposer counts this
   * acceptor's silence about those slots as "never voted".
   */
  trimBelow(slot: number): Output {
    const output = emptyOutput();
    if (slot <= this.floor) return output;
    this.floor = slot;
    for (const voted of this.votes.keys()) if (voted < slot) this.votes.delete(voted);
    output.persist = { floorSlot: slot };
    return output;
  }

  /**
   * The highest slot this acceptor holds a vote in, or has dropped votes below (its floor less one):
   * what it tells a rejoining replica (`rejoin-report`). 0 when it has neither.
   */
  get votedThrough(): number {
    let highest = Math.max(0, this.floor - 1);
    for (const slot of this.votes.keys()) if (slot > highest) highest = slot;
    return highest;
  }

  /** Votes held. */
  get voteCount(): number {
    return this.votes.size;
  }

  /** The vote held for `slot`, if any. */
  voteFor(slot: number): AcceptedEntry | undefined {
    return this.votes.get(slot);
  }

  /** A copy of the durable state (for snapshots and tests). */
  state(): AcceptorState {
    return {
      promised: this.promisedBallot,
      accepted: [...this.votes.values()].sort((a, b) => a.slot - b.slot),
      floorSlot: this.floor,
    };
  }

  /** Advances the disruption guard's clock; acceptors have no other timeouts. */
  tick(): Output {
    this.leaderSilentTicks++;
    return emptyOutput();
  }

  /**
   * The node heard the leader at `ballot` (its co-located proposer took that leader's heartbeat):
   * if it is the ballot promised, the disruption guard holds for another election timeout.
   */
  noteLeader(ballot: Ballot): void {
    if (ballotEquals(ballot, this.promisedBallot)) this.heardLeader(ballot);
  }

  private heardLeader(ballot: Ballot): void {
    this.leaderHeardBallot = ballot;
    this.leaderSilentTicks = 0;
  }

  /** True while the leader at the promised ballot was heard within the election timeout. */
  get leaderAlive(): boolean {
    return (
      !this.bugs.noDisruptionGuard &&
      this.guardTicks > 0 &&
      this.leaderSilentTicks < this.guardTicks &&
      !ballotEquals(this.promisedBallot, ZERO_BALLOT) &&
      ballotEquals(this.leaderHeardBallot, this.promisedBallot)
    );
  }

  /**
   * The last slot an accept may name: one window plus a margin past the highest slot this node knows
   * of (voted in, dropped votes below, promised a prepare from, or known decided by its learner).
   */
  get slotHorizon(): number {
    return Math.max(this.ownKnownSlot, this.knownSlotOutside()) + this.horizonMarginSlots;
  }

  private get ownKnownSlot(): number {
    return Math.max(this.highestSlot, this.floor - 1, this.promisedFirstSlot - 1);
  }

  private get horizonMarginSlots(): number {
    return this.limits.windowSlots + this.limits.slotHorizonMarginSlots;
  }

  /** The horizon check, cheap first: what the node knows from outside is asked only when needed. */
  private beyondHorizon(slot: number): boolean {
    if (slot <= this.ownKnownSlot + this.horizonMarginSlots) return false;
    return slot > this.slotHorizon;
  }

  /**
   * Why a prepare or accept must be refused before it touches anything, or null: a sender that is
   * not a proposer, a ballot that is not the sender's, past the ceiling or too far above every round
   * known here, or (an accept) a slot past the horizon. Refused input is dropped unanswered.
   */
  private screen(message: PrepareMessage | AcceptMessage): string | null {
    if (this.proposers !== null && !this.proposers.has(message.from)) return "not-a-proposer";
    if (message.ballot.node !== message.from) return "ballot-not-sender";
    const knownRound = Math.max(this.promisedBallot.round, this.seenBallot.round);
    const refusal = ballotRefusal(message.ballot, knownRound, this.limits, this.knownRoundOutside);
    if (refusal !== null) return refusal;
    if (message.type === "accept" && this.beyondHorizon(message.slot)) return "slot-beyond-horizon";
    return null;
  }

  step(message: Message): Output {
    switch (message.type) {
      case "prepare":
        return this.onPrepare(message);
      case "accept":
        return this.onAccept(message);
      default:
        return emptyOutput();
    }
  }

  private onPrepare(message: PrepareMessage): Output {
    const output = emptyOutput();
    const refusal = this.screen(message);
    if (refusal !== null) {
      this.refusals.count(refusal);
      return output;
    }
    if (
      this.leaderAlive &&
      !this.isRejoining &&
      ballotGreater(message.ballot, this.promisedBallot) &&
      message.from !== this.promisedBallot.node
    ) {
      // The disruption guard: a leader we hear is alive. A candidate that does not hear it (cut off,
      // or disruptive) gets our promised ballot back and waits; once the leader has been silent for
      // the election timeout, prepares are promised again.
      this.refusals.count("leader-alive");
      output.sendAfterPersist.push(this.reject({ role: "proposer", id: message.from }, message.ballot, 0));
      return output;
    }
    this.seenBallot = maxBallot(this.seenBallot, message.ballot);
    if (this.isRejoining) {
      this.unanswered++;
      return output;
    }
    const proposer: Destination = { role: "proposer", id: message.from };
    // A prepare at the promised ballot is answered again: duplicates and paging requests are
    // idempotent because a proposer never reuses a ballot.
    if (!ballotAtLeast(message.ballot, this.promisedBallot)) {
      output.sendAfterPersist.push(this.reject(proposer, message.ballot, 0));
      return output;
    }
    if (!ballotEquals(message.ballot, this.promisedBallot)) {
      this.promisedBallot = message.ballot;
      output.persist = { promised: message.ballot };
    } else if (message.from === message.ballot.node) {
      // The leader at the promised ballot asks again (a page, or its check-quorum probe): alive.
      this.heardLeader(message.ballot);
    }
    const firstSlot = Math.max(1, message.firstSlot);
    this.promisedFirstSlot = Math.max(this.promisedFirstSlot, Math.min(firstSlot, this.slotHorizon));
    const slots: number[] = [];
    for (const slot of this.votes.keys()) if (slot >= firstSlot) slots.push(slot);
    slots.sort((a, b) => a - b);
    const accepted: AcceptedEntry[] = [];
    let bytes = 0;
    let nextSlot: number | null = null;
    for (const slot of slots) {
      const entry = this.votes.get(slot) as AcceptedEntry;
      const size = valueBytesEstimate(entry.value);
      if (
        accepted.length > 0 &&
        (accepted.length >= this.limits.entriesPerMessageMax || bytes + size > this.limits.bytesPerMessageMax)
      ) {
        nextSlot = slot;
        break;
      }
      accepted.push(entry);
      bytes += size;
    }
    output.sendAfterPersist.push({
      to: proposer,
      // floorSlot tells the proposer: nothing to report below it, and all of that is decided.
      message: {
        type: "promise",
        from: this.id,
        ballot: message.ballot,
        firstSlot,
        accepted,
        nextSlot,
        floorSlot: this.floor,
      },
    });
    return output;
  }

  private onAccept(message: AcceptMessage): Output {
    const output = emptyOutput();
    const refusal = this.screen(message);
    if (refusal !== null) {
      this.refusals.count(refusal);
      return output;
    }
    this.seenBallot = maxBallot(this.seenBallot, message.ballot);
    if (message.slot > this.highestSlot) this.highestSlot = message.slot;
    if (this.isRejoining || message.slot < this.floor) {
      // Rejoining: silent. Below the floor: that slot is decided, and our vote there is gone.
      this.unanswered++;
      return output;
    }
    const proposer: Destination = { role: "proposer", id: message.from };
    const allowed = this.bugs.ignorePromiseInPhase2 || ballotAtLeast(message.ballot, this.promisedBallot);
    if (!allowed || message.slot < 1) {
      output.sendAfterPersist.push(this.reject(proposer, message.ballot, message.slot));
      return output;
    }
    const existing = this.votes.get(message.slot);
    const duplicate =
      existing !== undefined &&
      ballotEquals(existing.ballot, message.ballot) &&
      valuesEqual(existing.value, message.value);
    if (!duplicate) {
      const entry: AcceptedEntry = { slot: message.slot, ballot: message.ballot, value: message.value };
      this.votes.set(message.slot, entry);
      const promised = maxBallot(this.promisedBallot, message.ballot);
      const delta: { promised?: Ballot; accepted: AcceptedEntry[] } = { accepted: [entry] };
      if (!ballotEquals(promised, this.promisedBallot)) {
        this.promisedBallot = promised;
        delta.promised = promised;
      }
      output.persist = delta;
    }
    this.heardLeader(message.ballot);
    // Votes carry no value: the proposer knows what it proposed, separate learners get a copy of
    // the accept, and a replica's learner takes it from the accept its own acceptor took.
    const vote = {
      type: "accepted" as const,
      from: this.id,
      ballot: message.ballot,
      slot: message.slot,
      value: null,
    };
    if (this.votesTo === "proposer-and-learners")
      output.sendAfterPersist.push({ to: proposer, message: vote });
    output.sendAfterPersist.push({ to: { role: "learner" }, message: vote });
    return output;
  }

  private reject(to: Destination, ballot: Ballot, slot: number): Envelope {
    return { to, message: { type: "reject", from: this.id, ballot, promised: this.promisedBallot, slot } };
  }
}
