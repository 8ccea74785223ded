import { Acceptor, type AcceptorBugs, type AcceptorState } from "./acceptor.js";
import {
  type Ballot,
  ballotAtLeast,
  ballotEquals,
  ballotGreater,
  maxBallot,
  type NodeId,
  ZERO_BALLOT,
} from "./ballot.js";
import type { Learner, LearnerBugs } from "./learner.js";
import { DEFAULT_LIMITS } from "./limits.js";
import type { Command, Message, RejoinReportMessage, Value } from "./messages.js";
import { emptyOutput, mergeOutput, type Output } from "./output.js";
import {
  DEFAULT_PROPOSER_TIMING,
  Proposer,
  type ProposerBugs,
  type ProposerMode,
  type ProposerOptions,
} from "./proposer.js";
import type { QuorumSystem } from "./quorum.js";
import { ReadIndex, type ReadOutcome } from "./read-index.js";
import { Refusals } from "./refusals.js";
import type { Snapshot } from "./snapshot.js";

/** What a replica keeps on stable storage: its acceptor's state and its proposer's round. */
export interface ReplicaState {
  readonly acceptor: AcceptorState;
  readonly round: number;
  /** The newest snapshot, if one was taken or installed. */
  readonly snapshot?: Snapshot | null;
  /** The delivered log past the snapshot (from slot 1 without one): a replica keeps it durable. */
  readonly log?: readonly Value[];
}

/** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
export interface ReplicaBugs {
  /**
   * The rejoin rule before issue 8: the floor comes from the first heartbeat of any leader, however
   * stale its ballot, and no other acceptor is asked (breaks safety: see docs/durability.md).
   */
  readonly rejoinFloorFromAnyLeader?: boolean;
}

export interface ReplicaOptions
  extends Pick<
    ProposerOptions,
    "id" | "quorum" | "prng" | "limits" | "timing" | "catchupTicks" | "members" | "proposers"
  > {
  /** Where refused input is counted; a new one by default. Shared by the replica's roles. */
  readonly refusals?: Refusals;
  readonly restore?: ReplicaState;
  /**
   * This node's durable state was lost or found damaged. It comes back as a learner: it neither
   * promises nor votes nor campaigns until the cluster has moved past every slot it might have
   * voted in (Paxos Made Live, section 5.1). See `checkRejoin`.
   */
  readonly rejoining?: boolean;
  /**
   * Say a snapshot is due (`snapshotDue`) once this many estimated bytes of values were delivered
   * since the last one. 0 (the default): never.
   */
  readonly snapshotLogBytes?: number;
  /** Delivered slots kept in memory below a snapshot, for peers a little behind (default 128). */
  readonly logRetainSlots?: number;
  readonly bugs?: {
    acceptor?: AcceptorBugs;
    proposer?: ProposerBugs;
    learner?: LearnerBugs;
    replica?: ReplicaBugs;
  };
}

/**
 * True when `voters`, acceptors other than `self`, meet every phase-1 quorum in an acceptor other
 * than `self`: their weight exceeds the total weight less the phase-1 threshold. (A phase-1 quorum
 * Q less `self` weighs at least phase1Weight - weight(self); a set of others that misses it weighs
 * at most totalWeight - weight(self) - (phase1Weight - weight(self)).) A rejoining replica waits for
 * reports from such a set: one of them promised every ballot whose phase 1 this node took part in.
 * With majorities of an odd number of acceptors it is a majority; of an even number, half of them;
 * with flexible quorums it can take more than a phase-1 quorum. When `self` alone is a phase-1 quorum no set of others will do: such a node cannot
 * rejoin safely, and it never does.
 *
 * @example
 * rejoinReportsSuffice(majorityOf(3), 1, [2, 3]); // true: 2 of 3 > 3 - 2
 * rejoinReportsSuffice(majorityOf(3), 1, [2]);    // false
 */
export function rejoinReportsSuffice(quorum: QuorumSystem, self: NodeId, voters: Iterable<NodeId>): boolean {
  let weight = 0;
  const counted = new Set<NodeId>();
  for (const id of voters) {
    if (id === self || counted.has(id)) continue;
    counted.add(id);
    weight += quorum.weightOf(id);
  }
  return weight > quorum.totalWeight - quorum.phase1Weight;
}

/**
 * One collapsed node that plays proposer, acceptor and learner, as most deployments run Paxos.
 * Messages it sends to a role group (`{ role: "acceptor" }`) include itself; drivers deliver those
 * like any other message, after the persist they depend on.
 *
 * If this node is not an acceptor in `quorum`, it plays only proposer and learner.
 *
 * @example
 * const replica = new Replica({ id: 1, quorum, prng: new Prng(1) });
 * let out = replica.tick();           // ... eventually runs phase 1
 * out = replica.submit([{ client: 9, seq: 1, payload: "hello" }]);
 *
 * Snapshots: when `snapshotDue` says so, and the application has applied every decision delivered,
 * `snapshot(app)` records the application's state; the learner drops its log below it and the
 * acceptor its votes (those slots are decided and held in the snapshot). A snapshot installed from a
 * peer (`Output.snapshot`) trims the same way.
 */
export class Replica {
  readonly id: NodeId;
  readonly acceptor: Acceptor | null;
  readonly proposer: Proposer;
  /** Refused input of all three roles, counted by reason (see docs/security.md). */
  readonly refusals: Refusals;
  private readonly quorum: QuorumSystem;
  private readonly bugs: ReplicaBugs;
  private readonly proposers: ReadonlySet<NodeId> | null;
  private readonly limits: { readonly ballotRoundMax: number };
  private rejoinFloor = 0;
  private rejoinTicks = 0;
  /** This incarnation's rejoin queries carry it; reports with another are ignored. */
  private readonly rejoinNonce: number;
  /** Acceptors (not this one) that reported voting, to a query of this incarnation. */
  private readonly rejoinVoters = new Set<NodeId>();
  /** The highest promise, voted slot and decided slot reported (P*, V*, D*). */
  private rejoinPromised: Ballot = ZERO_BALLOT;
  private rejoinVotedThrough = 0;
  private rejoinDecidedThrough = 0;
  /** The highest leader ballot reported, and the most it reported proposed at that ballot. */
  private rejoinLeaderBallot: Ballot = ZERO_BALLOT;
  private rejoinLeaderProposedThrough = 0;
  /** The ballot of the leader the floor was taken from. */
  private rejoinFloorBallot: Ballot = ZERO_BALLOT;
  /** Rejoin reports taken into account (for tests and traces). */
  rejoinReports = 0;
  /** Linearizable reads waiting for this leader to confirm it still leads (see `read`). */
  private readonly readIndex: ReadIndex;

  constructor(options: ReplicaOptions) {
    this.id = options.id;
    this.quorum = options.quorum;
    this.bugs = options.bugs?.replica ?? {};
    this.proposers = options.proposers ? new Set(options.proposers) : null;
    this.limits = { ballotRoundMax: options.limits?.ballotRoundMax ?? DEFAULT_LIMITS.ballotRoundMax };
    // Drawn only when rejoining, so a node that is not does not shift its random stream.
    this.rejoinNonce = options.rejoining ? options.prng.uint32() : 0;
    this.readIndex = new ReadIndex(
      options.id,
      options.quorum,
      options.limits?.readsPendingMax ?? DEFAULT_LIMITS.readsPendingMax,
      options.timing?.heartbeatTicks ?? DEFAULT_PROPOSER_TIMING.heartbeatTicks,
    );
    const refusals = options.refusals ?? new Refusals();
    this.refusals = refusals;
    this.acceptor = options.quorum.isAcceptor(options.id)
      ? new Acceptor({
          id: options.id,
          votesTo: "learners",
          refusals,
          electionTimeoutTicks:
            options.timing?.electionTimeoutTicks ?? DEFAULT_PROPOSER_TIMING.electionTimeoutTicks,
          // The horizon and the jump are measured from what the whole node knows: a replica whose
          // learner has caught up votes again, however far behind its acceptor was.
          knownSlot: () => Math.max(this.learner.knownDecidedThrough, this.proposer.vouchedSlot.level),
          knownRound: () => Math.max(this.proposer.highestBallotSeen.round, this.proposer.vouchedRound.level),
          ...(options.proposers ? { proposers: options.proposers } : {}),
          ...(options.limits ? { limits: options.limits } : {}),
          ...(options.restore ? { restore: options.restore.acceptor } : {}),
          ...(options.rejoining ? { rejoining: true } : {}),
          ...(options.bugs?.acceptor ? { bugs: options.bugs.acceptor } : {}),
        })
      : null;
    this.proposer = new Proposer({
      id: options.id,
      quorum: options.quorum,
      prng: options.prng,
      colocated: true,
      durableLog: true,
      refusals,
      ...(options.proposers ? { proposers: options.proposers } : {}),
      ...(options.restore?.log ? { restoreLog: options.restore.log } : {}),
      ...(options.restore?.snapshot ? { restoreSnapshot: options.restore.snapshot } : {}),
      ...(options.snapshotLogBytes !== undefined ? { snapshotLogBytes: options.snapshotLogBytes } : {}),
      ...(options.logRetainSlots !== undefined ? { logRetainSlots: options.logRetainSlots } : {}),
      ...(options.rejoining ? { holdElection: true } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.timing ? { timing: options.timing } : {}),
      ...(options.catchupTicks !== undefined ? { catchupTicks: options.catchupTicks } : {}),
      ...(options.members ? { members: options.members } : {}),
      ...(options.restore
        ? { restore: { round: options.restore.round }, seenBallot: options.restore.acceptor.promised }
        : {}),
      bugs: {
        ...options.bugs?.proposer,
        ...(options.bugs?.learner ? { learner: options.bugs.learner } : {}),
      },
    });
  }

  get learner(): Learner {
    return this.proposer.learner;
  }

  get mode(): ProposerMode {
    return this.proposer.mode;
  }

  state(): ReplicaState {
    return {
      acceptor: this.acceptor?.state() ?? { promised: { round: 0, node: 0 }, accepted: [] },
      round: this.proposer.state().round,
      ...(this.learner.currentSnapshot !== null ? { snapshot: this.learner.currentSnapshot } : {}),
    };
  }

  submit(commands: readonly Command[]): Output {
    return this.proposer.submit(commands);
  }

  /**
   * Begins linearizable read `id` (see `ReadIndex`): its outcome, from `takeReads`, says once the
   * application may answer it (after applying through the outcome's index), or that this node does
   * not lead. The output carries the confirmation query, if one is to go out now.
   */
  read(id: number): Output {
    const nonce = this.readIndex.begin(
      id,
      this.proposer.mode === "leader",
      this.proposer.leader,
      this.proposer.ballot,
      Math.max(this.proposer.proposedThrough, this.learner.deliveredThrough),
      this.selfPromised(),
    );
    return this.readProbe(nonce);
  }

  /** Read outcomes reached since the last call. */
  takeReads(): ReadOutcome[] {
    return this.readIndex.drain();
  }

  /** Reads waiting for a confirmation. */
  get readsPending(): number {
    return this.readIndex.pending;
  }

  private selfPromised(): Ballot | null {
    const acceptor = this.acceptor;
    return acceptor !== null && !acceptor.rejoining ? acceptor.promised : null;
  }

  /** The confirmation query of a read probe, to every replica (answers are read-only). */
  private readProbe(nonce: number | null, output: Output = emptyOutput()): Output {
    if (nonce === null) return output;
    output.send.push({
      to: { role: "proposer" },
      message: { type: "rejoin-query", from: this.id, nonce, promised: this.proposer.ballot },
    });
    return output;
  }

  /** Moves the read index on: fails its reads if we stopped leading, starts or resends a probe. */
  private advanceReads(output: Output, tick: boolean): void {
    const leading = this.proposer.mode === "leader";
    const args = [leading, this.proposer.leader, this.proposer.ballot, this.selfPromised()] as const;
    this.readProbe(tick ? this.readIndex.tick(...args) : this.readIndex.next(...args), output);
  }

  /** True once enough has been delivered since the last snapshot (see `snapshotLogBytes`). */
  get snapshotDue(): boolean {
    return this.learner.snapshotDue;
  }

  /**
   * Takes a snapshot as of the last delivered slot, with `app` the application's state. Call it
   * only when the application has applied every decision delivered so far (a driver does so at
   * the end of a turn, after delivering that turn's decisions).
   */
  snapshot(app: string): Output {
    return this.trimVotes(this.learner.compact(app), this.learner.currentSnapshot);
  }

  /** After a snapshot through slot S, every vote below S + 1 is for a decided slot held in it. */
  private trimVotes(output: Output, snapshot: Snapshot | null): Output {
    if (snapshot === null || this.acceptor === null) return output;
    return mergeOutput(output, this.acceptor.trimBelow(snapshot.slot + 1));
  }

  /** True while this replica waits to rejoin after losing its state. */
  get rejoining(): boolean {
    return this.acceptor?.rejoining ?? false;
  }

  /** The slot a rejoining replica waits to see decided (0 until it has heard from a leader). */
  get rejoinFloorSlot(): number {
    return this.rejoinFloor;
  }

  step(message: Message): Output {
    let output: Output;
    switch (message.type) {
      case "prepare": {
        if (this.acceptor === null) {
          output = this.proposer.step(message);
          break;
        }
        const refused = this.refusals.total;
        output = this.acceptor.step(message);
        // The co-located proposer notices a higher ballot and stands down, unless our acceptor
        // refused the prepare (out of range, or the disruption guard: our leader is alive).
        if (this.refusals.total === refused) mergeOutput(output, this.proposer.step(message, true));
        break;
      }
      case "accept": {
        if (this.acceptor === null) {
          output = this.proposer.step(message);
          break;
        }
        const refused = this.refusals.total;
        output = this.acceptor.step(message);
        if (this.refusals.total !== refused) break;
        // Votes between replicas carry no value: our learner takes it from the accept our acceptor took.
        const vote = this.acceptor?.voteFor(message.slot);
        if (vote !== undefined && ballotEquals(vote.ballot, message.ballot)) {
          mergeOutput(output, this.learner.knowProposal(message.slot, message.ballot, message.value));
        }
        mergeOutput(output, this.proposer.step(message, true));
        // Below our acceptor's floor the slot is decided and our vote is gone: the acceptor stays
        // silent, so tell the proposer's learner the outcome instead (the value, or our snapshot if
        // the slot is compacted), or a leader that missed the votes would retry it forever.
        if (message.slot < this.acceptor.floorSlot && message.from !== this.id) {
          mergeOutput(output, this.learner.offerDecided(message.from, message.slot));
        }
        break;
      }
      case "rejoin-query":
        // Answered for members only: a report tells the asker our promise and our log's extent.
        if (this.proposers !== null && !this.proposers.has(message.from)) {
          this.refusals.count("not-a-proposer");
          output = emptyOutput();
          break;
        }
        // The asker needs a leader at its P* or above: a leader below steps down and everyone's next
        // campaign goes above it (changes no acceptor state, so the answer stays read-only). A P*
        // past the ballot ceiling or jump is refused like any ballot from the wire.
        if (message.from !== this.id) {
          const refusal = this.proposer.ballotRefusal(message.promised);
          if (refusal !== null) this.refusals.count(refusal);
          else this.proposer.noteBallot(message.promised);
        }
        output = this.reportForRejoin(message.from, message.nonce);
        break;
      case "rejoin-report": {
        const refusal = this.screenRejoinReport(message);
        if (refusal !== null) this.refusals.count(refusal);
        else this.noteRejoinReport(message);
        output = emptyOutput();
        if (message.from !== this.id) {
          this.readIndex.report(message.from, message.nonce, message.voting, message.promised);
          this.advanceReads(output, false);
        }
        break;
      }
      case "heartbeat": {
        const refused = this.refusals.total;
        output = this.proposer.step(message);
        // The node heard the leader: our acceptor's disruption guard holds while it is heard.
        // (Our own heartbeats too: a leader is alive to itself, until check-quorum says otherwise.)
        if (this.refusals.total === refused && this.acceptor !== null)
          this.acceptor.noteLeader(message.ballot);
        break;
      }
      default:
        output = this.proposer.step(message);
    }
    return this.checkRejoin(this.trimVotes(output, output.snapshot));
  }

  tick(): Output {
    this.acceptor?.tick();
    const output = this.proposer.tick();
    this.advanceReads(output, true);
    if (this.rejoining) {
      this.rejoinTicks++;
      if (this.rejoinFloor > 0 && this.rejoinTicks % REJOIN_NUDGE_TICKS === 0) {
        // An idle cluster decides nothing new: ask the leader for a slot (a no-op) past our floor.
        // We may not follow it (a failed candidate's higher prepare makes its heartbeats look
        // stale to us): then ask the newest leader that reported itself to our queries.
        mergeOutput(output, this.proposer.requestNoop(this.rejoinLeaderBallot.node));
      }
      if (!this.bugs.rejoinFloorFromAnyLeader && this.rejoinTicks % REJOIN_QUERY_TICKS === 1) {
        // Asked again and again until the rejoin completes: answers are lost, leaders change, and
        // the promise the acceptor rejoins with rises with every round of answers.
        output.send.push({
          to: { role: "proposer" },
          message: {
            type: "rejoin-query",
            from: this.id,
            nonce: this.rejoinNonce,
            promised: this.rejoinPromised,
          },
        });
      }
    }
    return this.checkRejoin(output);
  }

  /** Answers a rejoining replica's query from our state as it stands; changes nothing. */
  private reportForRejoin(to: NodeId, nonce: number): Output {
    const output = emptyOutput();
    if (to === this.id) return output;
    const acceptor = this.acceptor;
    const voting = acceptor !== null && !acceptor.rejoining;
    const leading = this.proposer.mode === "leader";
    output.send.push({
      to: { role: "proposer", id: to },
      message: {
        type: "rejoin-report",
        from: this.id,
        nonce,
        voting,
        promised: voting ? acceptor.promised : ZERO_BALLOT,
        votedThrough: voting ? acceptor.votedThrough : 0,
        decidedThrough: this.learner.knownDecidedThrough,
        leaderBallot: leading ? this.proposer.ballot : ZERO_BALLOT,
        proposedThrough: leading ? this.proposer.proposedThrough : 0,
      },
    });
    return output;
  }

  /**
   * Why a rejoin report must be refused, or null: a reporter that is not a proposer, a ballot past
   * the ceiling or the jump, a slot past the horizon. Refusing a whole report is safe: the rejoin
   * only waits for more reports (a refused reporter does not count towards the set it needs).
   * A voting acceptor's claims are noted first, so a wiped node learns how far the cluster has got.
   */
  private screenRejoinReport(report: RejoinReportMessage): string | null {
    if (!this.rejoining || report.nonce !== this.rejoinNonce || report.from === this.id) return null;
    if (this.proposers !== null && !this.proposers.has(report.from)) return "not-a-proposer";
    const proposer = this.proposer;
    if (report.voting && this.quorum.isAcceptor(report.from)) {
      if (report.promised.round <= this.limits.ballotRoundMax)
        proposer.vouchedRound.claim(report.from, report.promised.round);
      proposer.vouchedSlot.claim(report.from, report.votedThrough);
    }
    const refusal = proposer.ballotRefusal(report.promised) ?? proposer.ballotRefusal(report.leaderBallot);
    if (refusal !== null) return refusal;
    const slot = Math.max(report.votedThrough, report.decidedThrough, report.proposedThrough);
    return proposer.slotBeyondHorizon(slot) ? "slot-beyond-horizon" : null;
  }

  private noteRejoinReport(report: RejoinReportMessage): void {
    if (!this.rejoining || report.nonce !== this.rejoinNonce || report.from === this.id) return;
    this.rejoinReports++;
    if (report.voting && this.quorum.isAcceptor(report.from)) {
      this.rejoinVoters.add(report.from);
      this.rejoinPromised = maxBallot(this.rejoinPromised, report.promised);
      this.rejoinVotedThrough = Math.max(this.rejoinVotedThrough, report.votedThrough);
    }
    this.rejoinDecidedThrough = Math.max(this.rejoinDecidedThrough, report.decidedThrough);
    if (ballotGreater(report.leaderBallot, this.rejoinLeaderBallot)) {
      this.rejoinLeaderBallot = report.leaderBallot;
      this.rejoinLeaderProposedThrough = report.proposedThrough;
    } else if (ballotEquals(report.leaderBallot, this.rejoinLeaderBallot)) {
      this.rejoinLeaderProposedThrough = Math.max(this.rejoinLeaderProposedThrough, report.proposedThrough);
    }
  }

  /**
   * The highest slot proposed by a leader whose word covers every vote this node might have cast
   * before it lost its state, or null if no such leader is known yet (see `checkRejoin`).
   */
  private coveringLeader(): { ballot: Ballot; proposedThrough: number } | null {
    if (!rejoinReportsSuffice(this.quorum, this.id, this.rejoinVoters)) return null;
    const promised = this.rejoinPromised;
    // A leader's own report answers a query of ours: sent after we lost our state, so at the
    // promised ballot itself it counts every slot we voted in at that ballot.
    if (
      !ballotEquals(this.rejoinLeaderBallot, ZERO_BALLOT) &&
      ballotAtLeast(this.rejoinLeaderBallot, promised)
    ) {
      return { ballot: this.rejoinLeaderBallot, proposedThrough: this.rejoinLeaderProposedThrough };
    }
    // A heartbeat may be older than our loss: only one above every promise reported will do.
    const followed = this.proposer.followedBallot;
    if (
      this.proposer.leader !== this.id &&
      this.proposer.leaderProposedThrough > 0 &&
      ballotGreater(followed, promised)
    ) {
      return { ballot: followed, proposedThrough: this.proposer.leaderProposedThrough };
    }
    return null;
  }

  /**
   * The rejoin rule (the proof is in docs/durability.md, "Rejoin: why the floor is safe"). Until it
   * completes the node neither promises, votes nor campaigns; its learner catches up as any does.
   * 1. It asks every replica, read-only (`rejoin-query`, every REJOIN_QUERY_TICKS), for its
   *    acceptor's promise and highest voted slot, its learner's decided slot, and, if it leads, its
   *    ballot and highest proposed slot. It waits for voting reports from acceptors R (not itself)
   *    that meet every phase-1 quorum less itself (`rejoinReportsSuffice`); P* is the highest promise
   *    reported. Every ballot this node voted at is at most P*.
   * 2. The floor F comes from a leader at ballot at least P*: its own report, or a heartbeat at a
   *    ballot above P*. F is one past every slot that leader proposed, every slot reported voted or
   *    decided, and every slot this node saw in an accept: F is above every slot the node voted in.
   *    It asks the leader for a slot (a no-op if the cluster is idle). Its queries carry P*: a
   *    leader below P* steps down, and the next campaign of every replica that hears one goes
   *    above it (a promise reported once may since have been lost with a wiped disk, leaving a
   *    stable leader below it that no one would otherwise replace: seed 157184).
   * 3. Once its learner has delivered every slot through F, the acceptor rejoins: it promises the
   *    highest of P*, the floor leader's ballot and every ballot seen, keeps no votes below F
   *    (promises report F as their floor, so no proposer counts this node for those slots), and the
   *    proposer may campaign again, above every ballot seen.
   */
  private checkRejoin(output: Output): Output {
    const acceptor = this.acceptor;
    if (acceptor === null || !acceptor.rejoining) return output;
    if (this.rejoinFloor === 0) {
      let leaderProposedThrough: number;
      if (this.bugs.rejoinFloorFromAnyLeader) {
        const leader = this.proposer.leader;
        if (leader === 0 || leader === this.id || this.proposer.leaderProposedThrough === 0) return output;
        leaderProposedThrough = this.proposer.leaderProposedThrough;
      } else {
        const covering = this.coveringLeader();
        if (covering === null) return output;
        this.rejoinFloorBallot = covering.ballot;
        leaderProposedThrough = covering.proposedThrough;
      }
      this.rejoinFloor =
        Math.max(
          leaderProposedThrough,
          this.rejoinVotedThrough,
          this.rejoinDecidedThrough,
          acceptor.highestSlot,
          this.learner.knownDecidedThrough,
        ) + 1;
      mergeOutput(output, this.proposer.requestNoop(this.rejoinLeaderBallot.node));
      return output;
    }
    if (this.learner.deliveredThrough < this.rejoinFloor) return output;
    const seen = maxBallot(
      maxBallot(this.proposer.highestBallotSeen, acceptor.highestBallotSeen),
      maxBallot(this.rejoinPromised, this.rejoinFloorBallot),
    );
    mergeOutput(output, acceptor.rejoin(seen, this.rejoinFloor));
    // The rounds this node used before are lost. Any ballot of ours that reached phase 2 had a
    // phase-1 quorum promise it before we lost our state, so some reporter promised it or more: it
    // is at most P*, and our acceptor now promises P* or more. The proposer campaigns above that,
    // so it never sends an accept at a ballot it used before (a ballot it only prepared with carries
    // no value, and preparing it again is harmless). Rounds stay within the jump the others take.
    return mergeOutput(output, this.proposer.releaseElection(acceptor.promised));
  }
}

/** How often a rejoining replica asks the leader for a fresh slot while it waits. */
const REJOIN_NUDGE_TICKS = 20;

/**
 * How often a rejoining replica asks every replica for a report (from its first tick on): often
 * enough that a lost answer costs little, rarely enough that a rejoin costs a message per replica
 * per 10 ticks.
 */
const REJOIN_QUERY_TICKS = 10;
