import { assert } from "./assert.js";
import {
  type Ballot,
  ballotAtLeast,
  ballotEquals,
  ballotGreater,
  ballotRefusal,
  ballot as makeBallot,
  maxBallot,
  type NodeId,
  VouchedLevel,
  ZERO_BALLOT,
} from "./ballot.js";
import { CommandSet } from "./command-set.js";
import { Learner, type LearnerBugs } from "./learner.js";
import { commandBytesEstimate, DEFAULT_LIMITS, type Limits } from "./limits.js";
import type { ClusterMembers } from "./members.js";
import type {
  AcceptedEntry,
  BusyReason,
  Command,
  Envelope,
  HeartbeatMessage,
  Message,
  MessageType,
  PromiseMessage,
  RefuseReason,
  RejectMessage,
  RequestMessage,
  SlotValue,
  Value,
} from "./messages.js";
import { NOOP, valuesEqual } from "./messages.js";
import { emptyOutput, mergeOutput, type Output } from "./output.js";
import { payloadProblem } from "./payload.js";
import type { Prng } from "./prng.js";
import type { QuorumSystem } from "./quorum.js";
import { Refusals } from "./refusals.js";
import type { Snapshot } from "./snapshot.js";
import { backoffTicks, Timeout } from "./timeout.js";
import { valueBytesEstimate } from "./value-size.js";

/** Timeouts of a proposer, in ticks. */
export interface ProposerTiming {
  /** A leader sends a heartbeat this often. */
  readonly heartbeatTicks: number;
  /**
   * A follower that hears no leader for this long (plus jitter of up to as much again) runs phase 1;
   * doubled after each preempted attempt, up to 8 times.
   */
  readonly electionTimeoutTicks: number;
  /** First wait before a prepare is sent again; doubles per attempt. */
  readonly prepareRetryTicks: number;
  /** First wait before an accept is sent again; doubles per attempt. */
  readonly acceptRetryTicks: number;
  /** Cap for the doubling waits, so a proposer without a quorum idles instead of spinning. */
  readonly retryTicksMax: number;
}

export const DEFAULT_PROPOSER_TIMING: ProposerTiming = Object.freeze({
  heartbeatTicks: 3,
  electionTimeoutTicks: 12,
  prepareRetryTicks: 4,
  acceptRetryTicks: 6,
  retryTicksMax: 64,
});

/** What a proposer keeps on stable storage: the highest ballot round it has used. */
export interface ProposerState {
  readonly round: number;
}

/** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
export interface ProposerBugs {
  /** Ignore the votes reported in promises and propose fresh values (breaks safety). */
  readonly ignorePromisedValues?: boolean;
  /** Do not persist the ballot round, so a restarted proposer reuses ballots (breaks safety). */
  readonly reuseBallotAfterRestart?: boolean;
  /**
   * No check-quorum: a leader neither asks silent acceptors nor steps down when no phase-2 quorum
   * answers it (the proposer before issue 9). Not a safety bug: the simulator's canaries use it to
   * reach the deaf-leader traces that check-quorum now cuts short.
   */
  readonly noCheckQuorum?: boolean;
}

export interface ProposerOptions {
  readonly id: NodeId;
  readonly quorum: QuorumSystem;
  readonly prng: Prng;
  readonly limits?: Partial<Limits>;
  readonly timing?: Partial<ProposerTiming>;
  /** Ticks a learner hole may stay open before it is asked for again. */
  readonly catchupTicks?: number;
  /**
   * True when every proposer shares its node with a learner (a collapsed `Replica`): heartbeats and
   * catch-up then go to the proposers only, and votes reach this proposer through its own learner.
   */
  readonly colocated?: boolean;
  /** Durable state from a previous run. */
  readonly restore?: ProposerState;
  /** A ballot known to have been used (a co-located acceptor's restored promise): start above it. */
  readonly seenBallot?: Ballot;
  /** Do not campaign until `releaseElection()` (a replica rejoining after losing its state). */
  readonly holdElection?: boolean;
  /** Keep the embedded learner's log durable, and the log it had (see `LearnerOptions`). */
  readonly durableLog?: boolean;
  readonly restoreLog?: readonly Value[];
  /** The embedded learner's snapshots (see `LearnerOptions`). */
  readonly restoreSnapshot?: Snapshot;
  readonly snapshotLogBytes?: number;
  readonly logRetainSlots?: number;
  /** The cluster's members, for the embedded learner (see `LearnerOptions`). */
  readonly members?: ClusterMembers;
  readonly bugs?: ProposerBugs & { readonly learner?: LearnerBugs };
  /** Where refused input is counted (a `Replica` passes the one its roles share; so does the learner). */
  readonly refusals?: Refusals;
  /**
   * The proposers' ids: a heartbeat, prepare or accept from any other id is refused
   * ("not-a-proposer"). Absent: any id is taken (tests, drivers that do not know the membership).
   */
  readonly proposers?: readonly NodeId[];
}

export type ProposerMode = "follower" | "candidate" | "leader";

interface InFlightSlot {
  readonly value: Value;
  readonly timer: Timeout;
  attempt: number;
  /** Proposed with a batch that had room left (see `PARTIAL_SLOTS_MAX`). */
  readonly partial: boolean;
}

/**
 * Adaptive batching: while this many slots with part-filled batches are in flight, new commands wait
 * for a full batch or for one of those slots to be decided. Under light load a command is proposed
 * at once; under heavy load batches fill up by themselves, with no timer.
 */
const PARTIAL_SLOTS_MAX = 2;

/** Prepare retries a candidate waits for reports that cover slots below some acceptor's floor. */
const UNCOVERED_WAIT_ATTEMPTS = 4;

interface Phase1Report {
  /** The first slot of the page asked for next; null once the report is complete. */
  expectedSlot: number | null;
  /** The acceptor keeps no votes below this slot (it trimmed them, or rejoined past them). */
  floorSlot: number;
}

interface Phase1 {
  readonly firstSlot: number;
  readonly reports: Map<NodeId, Phase1Report>;
  /** The highest-ballot vote reported per slot. */
  readonly votes: Map<number, AcceptedEntry>;
  readonly timer: Timeout;
  attempt: number;
  /** Acceptors whose disruption guard refused this phase 1 (they hear a live leader). */
  readonly guardRefused: Set<NodeId>;
}

/**
 * Phase 1 carried on by a leader for the slots it left to its learner: slots below some acceptors'
 * floors, where the complete reports did not cover a phase-1 quorum (see `coveredFrom`). Those slots
 * are decided, and the learner normally fetches them. But the nodes that knew them decided may have
 * lost that knowledge since (a wiped disk), while a chosen value survives as votes on acceptors that
 * had not answered: so the leader keeps asking those, and proposes the recovered values itself once
 * the reports cover a slot.
 */
interface Gap {
  readonly phase1: Phase1;
  /** The last slot left to recover; slots after it were recovered or covered already. */
  throughSlot: number;
}

/**
 * The proposer, and the distinguished proposer (leader) of Multi-Paxos.
 *
 * - A follower watches the leader's heartbeats. When they stop, it picks a ballot higher than any it
 *   has seen (persisting the round first, so a restart never reuses it) and runs phase 1 once for
 *   every slot from its first undecided one on.
 * - With a phase-1 quorum of complete reports it leads: for each open slot it re-proposes the value
 *   voted at the highest ballot, fills holes with no-ops, then proposes batches of client commands,
 *   at most `windowSlots` slots in flight, and only phase 2 while it stays leader.
 * - Timeouts resend prepares and accepts with backoff and jitter. A client command stays pending until
 *   it is delivered, so a retry or a change of leader never loses it; a refusal with a higher ballot
 *   makes the proposer step down and return its undecided commands to the pending queue.
 *
 * The proposer embeds a learner: it must know what is decided to fill its window and to ack clients.
 */
export class Proposer {
  readonly id: NodeId;
  readonly learner: Learner;
  private readonly quorum: QuorumSystem;
  private readonly prng: Prng;
  private readonly limits: Limits;
  private readonly timing: ProposerTiming;
  private readonly colocated: boolean;
  private readonly bugs: ProposerBugs;

  private modeValue: ProposerMode = "follower";
  /** Highest round this proposer has used (durable). */
  private round: number;
  /** Highest ballot seen from anyone. */
  private highestSeen: Ballot = ZERO_BALLOT;
  /**
   * The highest leader ballot an acceptor's disruption guard named when it refused a higher prepare
   * of ours: that leader is alive, though our own refused ballot is above it.
   */
  private guardVouched: Ballot = ZERO_BALLOT;
  /** Our ballot while candidate or leader. */
  private current: Ballot = ZERO_BALLOT;
  private leaderBallot: Ballot = ZERO_BALLOT;
  private phase1: Phase1 | null = null;

  private readonly electionTimer = new Timeout("election");
  private readonly heartbeatTimer = new Timeout("heartbeat");
  /** Held while a rejoining replica must not campaign (see `releaseElection`). */
  private electionHeld: boolean;
  /** The highest slot the leader we follow has proposed in, from its heartbeats (0: not heard). */
  private leaderProposed = 0;
  /** A no-op was asked for (by a rejoining replica that needs a fresh slot decided). */
  private noopWanted = false;
  /** Ballots given up because a promise showed them used before. */
  reusedBallots = 0;
  private readonly forwardTimer = new Timeout("forward-pending");
  private electionAttempts = 0;

  /** Commands waiting for a slot, oldest first, with an index for duplicate checks. */
  private pending: Command[] = [];
  private pendingHead = 0;
  private readonly pendingKeys = new CommandSet();
  private readonly inFlight = new Map<number, InFlightSlot>();
  private readonly inFlightKeys = new CommandSet();
  private partialInFlight = 0;
  /** Next slot this leader will propose in. */
  private nextSlot = 1;
  /** Slots below this, at or after the phase-1 start, must re-propose a reported vote or a no-op. */
  private recoveryThrough = 0;
  private recoveryVotes = new Map<number, AcceptedEntry>();
  /** Slots below our first open one that no phase-1 quorum reported on yet (leader only). */
  private gap: Gap | null = null;
  /** Requests dropped because the pending queue was full. */
  droppedCommands = 0;
  /** Refused input, counted by reason (see docs/security.md). */
  readonly refusals: Refusals;
  private readonly proposerIds: ReadonlySet<NodeId> | null;
  /** The ballot round and the slot a quorum of acceptors vouches for (see `VouchedLevel`). */
  readonly vouchedRound: VouchedLevel;
  readonly vouchedSlot: VouchedLevel;
  /** Check-quorum: acceptors that answered us since the last check, while we lead. */
  private heardAcceptors = new Set<NodeId>();
  private readonly checkQuorumTimer = new Timeout("check-quorum");
  /** Times this proposer stepped down because no phase-2 quorum answered it within the timeout. */
  checkQuorumStepDowns = 0;
  /** Campaigns begun: phase 1 started with a new ballot (for metrics; see docs/operations.md). */
  electionsStarted = 0;
  /** Prepares sent again because an acceptor's report had not come in time (phase-1 retries). */
  prepareResends = 0;
  /** Accepts sent again because a slot was not chosen in time (phase-2 retries). */
  acceptResends = 0;

  constructor(options: ProposerOptions) {
    this.id = options.id;
    assert(Number.isSafeInteger(this.id) && this.id > 0, `proposer id ${this.id} must be a positive integer`);
    this.quorum = options.quorum;
    this.prng = options.prng;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.timing = { ...DEFAULT_PROPOSER_TIMING, ...options.timing };
    this.colocated = options.colocated ?? false;
    this.bugs = options.bugs ?? {};
    this.refusals = options.refusals ?? new Refusals();
    this.proposerIds = options.proposers ? new Set(options.proposers) : null;
    this.vouchedRound = new VouchedLevel(this.quorum);
    this.vouchedSlot = new VouchedLevel(this.quorum);
    this.electionHeld = options.holdElection ?? false;
    this.round = this.bugs.reuseBallotAfterRestart ? 0 : (options.restore?.round ?? 0);
    this.learner = new Learner({
      id: this.id,
      quorum: this.quorum,
      // Every message is screened here before the learner sees it (see `step`).
      screenBallots: false,
      limits: this.limits,
      role: this.colocated ? "learner" : "proposer",
      // Holes are asked of the learners only: a busy leader should not also serve catch-up.
      catchupFrom: ["learner"],
      ...(options.catchupTicks !== undefined ? { catchupTicks: options.catchupTicks } : {}),
      ...(options.bugs?.learner ? { bugs: options.bugs.learner } : {}),
      ...(options.durableLog ? { durableLog: true } : {}),
      ...(options.restoreLog ? { restoreLog: options.restoreLog } : {}),
      ...(options.restoreSnapshot ? { restoreSnapshot: options.restoreSnapshot } : {}),
      ...(options.snapshotLogBytes !== undefined ? { snapshotLogBytes: options.snapshotLogBytes } : {}),
      ...(options.logRetainSlots !== undefined ? { logRetainSlots: options.logRetainSlots } : {}),
      ...(options.members ? { members: options.members } : {}),
      refusals: this.refusals,
    });
    // Our own earlier ballots count as seen: a leader heartbeating below them is stale.
    if (this.round > 0) this.highestSeen = makeBallot(this.round, this.id);
    if (options.seenBallot !== undefined) this.highestSeen = maxBallot(this.highestSeen, options.seenBallot);
    this.electionTimer.start(this.electionWaitTicks());
  }

  get mode(): ProposerMode {
    return this.modeValue;
  }

  /** The ballot we lead (or try to lead) with; zero while following. */
  get ballot(): Ballot {
    return this.current;
  }

  /** The leader this proposer believes in (its own id when leading), 0 if none known. */
  get leader(): NodeId {
    return this.modeValue === "leader" ? this.id : this.leaderBallot.node;
  }

  get pendingCount(): number {
    return this.pendingKeys.size;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The highest ballot seen from anyone. */
  get highestBallotSeen(): Ballot {
    return this.highestSeen;
  }

  /** The highest slot the leader we follow says it has proposed in (0 until a heartbeat says). */
  get leaderProposedThrough(): number {
    return this.leaderProposed;
  }

  /** The ballot of the leader we follow (zero if none; our own while we lead). */
  get followedBallot(): Ballot {
    return this.leaderBallot;
  }

  /**
   * While leading: the highest slot we have proposed in, or that our phase 1 found voted or decided
   * (what our heartbeats say). 0 unless leading.
   */
  get proposedThrough(): number {
    if (this.modeValue !== "leader") return 0;
    return Math.max(this.nextSlot - 1, this.recoveryThrough);
  }

  /**
   * Lets a rejoined replica campaign again, above every ballot it has seen and at round `minRound`
   * or higher (the rounds it used before it lost its state are unknown: see `Replica.checkRejoin`).
   */
  releaseElection(seen: Ballot, minRound = 0): Output {
    const output = emptyOutput();
    this.electionHeld = false;
    this.highestSeen = maxBallot(this.highestSeen, seen);
    if (minRound - 1 > this.round) {
      // Durable at once: a restart before our next prepare must not fall back below it.
      this.round = minRound - 1;
      output.persist = { proposerRound: this.round };
    }
    return output;
  }

  /**
   * Asks the leader for a slot even if it has nothing to propose (it proposes a no-op): the live
   * leader we follow, or else `otherwise` (a leader known some other way; 0: none).
   */
  requestNoop(otherwise: NodeId = 0): Output {
    const output = emptyOutput();
    if (this.requestOfLeader([], output) || otherwise === 0 || otherwise === this.id) return output;
    output.send.push({
      to: { role: "proposer", id: otherwise },
      message: { type: "request", from: this.id, commands: [] },
    });
    return output;
  }

  /** Sends `commands` to the live leader we follow (nothing if we lead or know none). */
  private requestOfLeader(commands: Command[], output: Output): boolean {
    const leader = this.leaderBallot.node;
    if (!this.followsLiveLeader() || leader === this.id) return false;
    output.send.push({
      to: { role: "proposer", id: leader },
      message: { type: "request", from: this.id, commands },
    });
    return true;
  }

  /** Durable state, as it would be after every persist so far. */
  state(): ProposerState {
    return { round: this.round };
  }

  /**
   * Submits commands from a local client (the library API); equivalent to receiving a request.
   *
   * @example
   * const out = proposer.submit([{ client: 7, seq: 1, payload: "x=1" }]);
   */
  submit(commands: readonly Command[]): Output {
    return this.onRequest({ type: "request", from: 0, commands });
  }

  /** A follower that knows a live leader ignores client requests (see `onRequest`). */
  ignores(type: MessageType): boolean {
    return type === "request" && this.followsLiveLeader();
  }

  private followsLiveLeader(): boolean {
    return this.modeValue === "follower" && this.leaderBallot.node !== 0 && this.electionTimer.isRunning;
  }

  /**
   * Takes one message. Every ballot and slot in it is checked first (see `screen`): refused input is
   * counted in `refusals` and changes nothing. `screened`: a co-located acceptor has checked this
   * prepare or accept already (a `Replica`), so it is not counted twice.
   */
  step(message: Message, screened = false): Output {
    const output = emptyOutput();
    const refusal = screened ? null : this.screen(message);
    if (refusal !== null) {
      this.refusals.count(refusal);
      return output;
    }
    switch (message.type) {
      case "request":
        mergeOutput(output, this.onRequest(message));
        break;
      case "promise":
        mergeOutput(output, this.onPromise(message));
        break;
      case "reject":
        mergeOutput(output, this.onReject(message));
        break;
      case "heartbeat":
        mergeOutput(output, this.learner.step(message));
        mergeOutput(output, this.onHeartbeat(message));
        break;
      case "accepted":
        this.noteAnswer(message.from, message.ballot);
        this.noteLeaderActivity(message.ballot);
        mergeOutput(output, this.learner.step(message));
        break;
      case "decide":
      case "catchup":
      case "snapshot-request":
      case "snapshot-chunk":
        mergeOutput(output, this.learner.step(message));
        break;
      case "prepare":
        // A candidate above everything we have seen is running phase 1 (a co-located acceptor shows
        // us its prepares): give it time before campaigning ourselves, or candidates with long
        // phase-1 reports keep preempting each other.
        if (
          this.modeValue === "follower" &&
          message.from !== this.id &&
          ballotGreater(message.ballot, this.highestSeen)
        ) {
          this.electionTimer.start(this.electionWaitTicks());
        }
        this.observeBallot(message.ballot);
        break;
      case "accept":
        // Another proposer is active at this ballot.
        this.observeBallot(message.ballot);
        break;
      case "ack":
        break;
    }
    mergeOutput(output, this.afterLearning(output));
    return output;
  }

  tick(): Output {
    const output = emptyOutput();
    mergeOutput(output, this.learner.tick());
    switch (this.modeValue) {
      case "follower":
        if (this.electionTimer.tick()) {
          if (this.electionHeld) {
            // A rejoining replica does not campaign: it lost the round it last used. The leader it
            // followed fell silent all the same: it follows nobody until a leader shows itself.
            this.leaderBallot = ZERO_BALLOT;
            this.leaderProposed = 0;
            this.electionTimer.start(this.electionWaitTicks());
          } else mergeOutput(output, this.startPhase1());
        } else if (this.forwardTimer.tick() || (!this.forwardTimer.isRunning && this.pendingCount > 0)) {
          mergeOutput(output, this.forwardPending());
        }
        break;
      case "candidate":
        mergeOutput(output, this.tickPhase1());
        break;
      case "leader":
        mergeOutput(output, this.tickLeader());
        break;
    }
    mergeOutput(output, this.afterLearning(output));
    return output;
  }

  // --- client commands -------------------------------------------------------------------------

  private onRequest(message: RequestMessage): Output {
    const output = emptyOutput();
    const local = message.from === 0;
    if (message.commands.length === 0) {
      // A request for a slot: a rejoining replica waits for one to be decided past its floor.
      if (this.modeValue === "leader") {
        this.noopWanted = true;
        mergeOutput(output, this.fillWindow());
      }
      return output;
    }
    if (this.followsLiveLeader() && !local) {
      // A client's request (sent to every proposer) is left to the live leader: the client resends
      // until it is acked, so if the leader dies the request reaches whoever leads next.
      return output;
    }
    const acks = new Map<NodeId, number[]>();
    const refusals = new Map<string, RefusalList>();
    /** Commands of a local submit queued here now (a follower hands them to the leader at once). */
    const queued: Command[] = [];
    const count = Math.min(message.commands.length, this.limits.requestCommandsMax);
    this.droppedCommands += message.commands.length - count;
    for (let i = 0; i < count; i++) {
      const command = message.commands[i] as Command;
      if (!validCommand(command, this.limits)) {
        this.droppedCommands++;
        continue;
      }
      if (this.learner.isDelivered(command)) {
        // Decided already; the client missed our ack. Only the leader acks, to avoid a storm.
        if (this.modeValue === "leader") pushAck(acks, command);
        continue;
      }
      const refusal = this.learner.refusal(command);
      if (refusal !== null) {
        // The session table would refuse it whenever it is decided (that only ever stays true):
        // say so now rather than spend a slot on it. Only the leader answers, as with acks.
        if (this.modeValue === "leader") pushRefusal(refusals, command, refusal);
        continue;
      }
      if (this.pendingKeys.has(command) || this.inFlightKeys.has(command)) continue;
      // Over a pending bound the command is not taken, for now: the leader says so (not final: the
      // client sends it again later), as it acks; the client's other commands still count.
      const busy: BusyReason | null =
        this.pendingCount >= this.limits.pendingCommandsMax
          ? "pending-full"
          : this.pendingKeys.countOf(command.client) >= this.limits.clientPendingCommandsMax
            ? "client-pending-full"
            : null;
      if (busy !== null) {
        this.droppedCommands++;
        if (this.modeValue === "leader") pushRefusal(refusals, command, busy);
        continue;
      }
      this.pending.push(command);
      this.pendingKeys.add(command);
      if (local) queued.push(command);
    }
    this.sendAcks(acks, output);
    this.sendRefusals(refusals, output);
    if (this.modeValue === "leader") mergeOutput(output, this.fillWindow());
    // A local submit has no client to resend it: it stays pending here, and a follower hands it to
    // the leader now, then all its pending commands again every `forwardTimer` until delivered.
    // Only the new ones go now: resending every pending command at each submit made a busy
    // follower's submits cost O(pending) each.
    else if (local && queued.length > 0) {
      this.requestOfLeader(queued, output);
      if (!this.forwardTimer.isRunning) this.forwardTimer.start(this.timing.acceptRetryTicks * 4);
    }
    return output;
  }

  /** Sends pending commands to the live leader (they stay pending until delivered). */
  private forwardPending(): Output {
    const output = emptyOutput();
    this.forwardTimer.start(this.timing.acceptRetryTicks * 4);
    let commands: Command[] = [];
    for (let i = this.pendingHead; i < this.pending.length; i++) {
      const command = this.pending[i] as Command;
      if (!this.pendingKeys.has(command)) continue;
      commands.push(command);
      if (commands.length >= this.limits.requestCommandsMax) {
        if (!this.requestOfLeader(commands, output)) return output;
        commands = [];
      }
    }
    if (commands.length > 0) this.requestOfLeader(commands, output);
    return output;
  }

  private sendAcks(acks: Map<NodeId, number[]>, output: Output): void {
    for (const [client, seqs] of acks) {
      output.send.push({
        to: { role: "client", id: client },
        message: { type: "ack", from: this.id, client, seqs },
      });
    }
  }

  private sendRefusals(refusals: Map<string, RefusalList>, output: Output): void {
    for (const { client, reason, seqs } of refusals.values()) {
      output.send.push({
        to: { role: "client", id: client },
        message: { type: "refuse", from: this.id, client, reason, seqs },
      });
    }
  }

  // --- phase 1 -----------------------------------------------------------------------------------

  private startPhase1(): Output {
    const output = emptyOutput();
    const round = Math.max(this.round, this.highestSeen.round) + 1;
    if (round > this.limits.ballotRoundMax) {
      // Out of rounds: an error the node reports (counted), never an assertion. Only an operator can
      // help (see docs/security.md); the node goes on following and learning.
      this.refusals.count("ballot-rounds-exhausted");
      this.electionTimer.start(this.electionWaitTicks());
      return output;
    }
    this.stepDown();
    this.electionsStarted++;
    this.round = round;
    this.current = makeBallot(this.round, this.id);
    this.highestSeen = maxBallot(this.highestSeen, this.current);
    this.modeValue = "candidate";
    this.electionTimer.stop();
    const firstSlot = this.learner.deliveredThrough + 1;
    const reports = new Map<NodeId, Phase1Report>();
    for (const acceptor of this.quorum.acceptors)
      reports.set(acceptor, { expectedSlot: firstSlot, floorSlot: 0 });
    this.phase1 = {
      firstSlot,
      reports,
      votes: new Map(),
      timer: new Timeout("prepare-retry"),
      attempt: 0,
      guardRefused: new Set(),
    };
    this.phase1.timer.start(
      backoffTicks(this.prng, this.timing.prepareRetryTicks, this.timing.retryTicksMax, 0),
    );
    // The round must be durable before a prepare with it leaves: a restart must never reuse it.
    if (!this.bugs.reuseBallotAfterRestart) output.persist = { proposerRound: this.round };
    output.sendAfterPersist.push(this.prepareTo({ role: "acceptor" }, firstSlot));
    return output;
  }

  /**
   * A prepare at our ballot. Every one goes out after persist (`sendAfterPersist`), resends and
   * pages too: the round it carries must be durable before any acceptor hears of it, and a resend
   * may come while the sync of that round is still under way (seed 1019476: a slow log roll held
   * the sync past the first retry, which went out as `send`; the node crashed and prepared at the
   * same ballot again). A driver holds `sendAfterPersist` behind every write made so far.
   */
  private prepareTo(to: Envelope["to"], firstSlot: number): Envelope {
    return { to, message: { type: "prepare", from: this.id, ballot: this.current, firstSlot } };
  }

  private tickPhase1(): Output {
    const output = emptyOutput();
    const phase1 = this.phase1;
    assert(phase1 !== null, "a candidate has a phase 1 in progress");
    if (!phase1.timer.tick()) return output;
    phase1.attempt++;
    const leading = this.maybeLead(phase1);
    if (this.modeValue === "leader") return leading;
    // Ask again every acceptor whose report is incomplete, from the page it owes us.
    for (const [acceptor, report] of phase1.reports) {
      if (report.expectedSlot !== null) {
        output.sendAfterPersist.push(this.prepareTo({ role: "acceptor", id: acceptor }, report.expectedSlot));
        this.prepareResends++;
      }
    }
    phase1.timer.start(
      backoffTicks(this.prng, this.timing.prepareRetryTicks, this.timing.retryTicksMax, phase1.attempt),
    );
    return output;
  }

  private onPromise(message: PromiseMessage): Output {
    const output = emptyOutput();
    this.noteAnswer(message.from, message.ballot);
    this.observeBallot(message.ballot);
    if (this.modeValue === "leader") return this.onGapPromise(message);
    const phase1 = this.phase1;
    if (this.modeValue !== "candidate" || phase1 === null || !ballotEquals(message.ballot, this.current)) {
      return output;
    }
    const report = phase1.reports.get(message.from);
    if (report === undefined) return output;
    report.floorSlot = Math.max(report.floorSlot, message.floorSlot);
    if (message.accepted.some((entry) => ballotEquals(entry.ballot, this.current))) {
      // A vote at the ballot we are only now preparing: it was used before, by an incarnation of us
      // that lost its state. Never reuse it: give it up, and campaign again above it.
      this.reusedBallots++;
      this.stepDown();
      this.electionTimer.start(this.electionWaitTicks());
      return output;
    }
    if (!this.bugs.ignorePromisedValues) {
      for (const entry of message.accepted) {
        if (entry.slot < phase1.firstSlot) continue;
        const known = phase1.votes.get(entry.slot);
        if (known === undefined || ballotGreater(entry.ballot, known.ballot))
          phase1.votes.set(entry.slot, entry);
      }
    }
    if (report.expectedSlot === null || message.firstSlot !== report.expectedSlot) return output;
    report.expectedSlot = message.nextSlot;
    if (message.nextSlot !== null) {
      output.sendAfterPersist.push(this.prepareTo({ role: "acceptor", id: message.from }, message.nextSlot));
      return output;
    }
    mergeOutput(output, this.maybeLead(phase1));
    return output;
  }

  /**
   * Leads once a phase-1 quorum has sent complete reports that cover every open slot. If acceptors
   * with floors leave the first open slots uncovered (see `coveredFrom`), it waits a few prepare
   * retries for more reports before it leads anyway and leaves those slots to its learner.
   */
  private maybeLead(phase1: Phase1): Output {
    const complete: NodeId[] = [];
    for (const [acceptor, r] of phase1.reports) if (r.expectedSlot === null) complete.push(acceptor);
    if (!this.quorum.isPhase1Quorum(complete)) return emptyOutput();
    const covered = coveredFrom(phase1, this.quorum) <= phase1.firstSlot;
    if (!covered && complete.length < phase1.reports.size && phase1.attempt < UNCOVERED_WAIT_ATTEMPTS) {
      return emptyOutput();
    }
    return this.becomeLeader(phase1);
  }

  private becomeLeader(phase1: Phase1): Output {
    this.modeValue = "leader";
    this.phase1 = null;
    this.electionAttempts = 0;
    this.leaderBallot = this.current;
    // Slots below an acceptor's floor are decided, but their votes are gone from it: our learner must
    // fetch them (catch-up), and we must not fill them with no-ops.
    const firstOpen = Math.max(phase1.firstSlot, coveredFrom(phase1, this.quorum));
    if (firstOpen > phase1.firstSlot) this.learner.noteDecidedThrough(firstOpen - 1);
    // Every slot up to the highest one voted in, or known decided, gets its reported value or a no-op.
    let highestVoted = this.learner.knownDecidedThrough;
    for (const slot of phase1.votes.keys()) highestVoted = Math.max(highestVoted, slot);
    const gapVotes = new Map<number, AcceptedEntry>();
    for (const [slot, vote] of phase1.votes) {
      if (slot >= firstOpen) continue;
      gapVotes.set(slot, vote);
      phase1.votes.delete(slot);
    }
    this.recoveryVotes = phase1.votes;
    this.recoveryThrough = highestVoted;
    this.nextSlot = firstOpen;
    // Commands already voted somewhere will be re-proposed in their slots: stop holding them.
    for (const entry of phase1.votes.values()) this.forgetPending(entry.value);
    this.gap = null;
    if (firstOpen > phase1.firstSlot) {
      const timer = new Timeout("gap-prepare-retry");
      timer.start(this.gapRetryTicks(0));
      this.gap = {
        phase1: {
          firstSlot: phase1.firstSlot,
          reports: phase1.reports,
          votes: gapVotes,
          timer,
          attempt: 0,
          guardRefused: new Set(),
        },
        throughSlot: firstOpen - 1,
      };
    }
    this.heartbeatTimer.start(this.timing.heartbeatTicks);
    // The promises just received are answers: check-quorum starts from them.
    this.heardAcceptors = new Set(complete(phase1));
    this.checkQuorumTimer.start(this.timing.electionTimeoutTicks);
    const output = this.heartbeat();
    mergeOutput(output, this.fillWindow());
    return output;
  }

  /**
   * A promise at our ballot while we lead: a late report for the slots we left to our learner (see
   * `Gap`). Only votes in those slots matter; the rest of the acceptor's log is not asked for.
   */
  private onGapPromise(message: PromiseMessage): Output {
    const output = emptyOutput();
    const gap = this.gap;
    if (gap === null || !ballotEquals(message.ballot, this.current)) return output;
    const report = gap.phase1.reports.get(message.from);
    if (report === undefined || report.expectedSlot === null) return output;
    report.floorSlot = Math.max(report.floorSlot, message.floorSlot);
    for (const entry of message.accepted) {
      if (entry.slot < gap.phase1.firstSlot || entry.slot > gap.throughSlot) continue;
      const known = gap.phase1.votes.get(entry.slot);
      if (known === undefined || ballotGreater(entry.ballot, known.ballot))
        gap.phase1.votes.set(entry.slot, entry);
    }
    if (message.firstSlot !== report.expectedSlot) return output;
    const next = message.nextSlot;
    report.expectedSlot = next !== null && next <= gap.throughSlot ? next : null;
    if (report.expectedSlot !== null) {
      output.sendAfterPersist.push(
        this.prepareTo({ role: "acceptor", id: message.from }, report.expectedSlot),
      );
      return output;
    }
    return this.fillWindow();
  }

  /** Asks again, with backoff, the acceptors whose reports on the gap are incomplete. */
  private tickGap(output: Output): void {
    const gap = this.gap;
    if (gap === null || !gap.phase1.timer.tick()) return;
    gap.phase1.attempt++;
    let asked = false;
    for (const [acceptor, report] of gap.phase1.reports) {
      if (report.expectedSlot === null) continue;
      output.sendAfterPersist.push(this.prepareTo({ role: "acceptor", id: acceptor }, report.expectedSlot));
      this.prepareResends++;
      asked = true;
    }
    // Every report is in and some slots are still uncovered: only the learner can fetch those.
    if (!asked) return;
    gap.phase1.timer.start(this.gapRetryTicks(gap.phase1.attempt));
  }

  /** Backoff without jitter: one leader asking a few acceptors has nobody to collide with. */
  private gapRetryTicks(attempt: number): number {
    const wait = this.timing.prepareRetryTicks * 2 ** Math.min(attempt, 20);
    return Math.max(1, Math.min(this.timing.retryTicksMax, wait));
  }

  /**
   * Proposes, within the window, the gap slots that the reports now cover and that are not decided:
   * the value voted at the highest ballot among the covering reports, or a no-op where they report
   * none (standard Paxos on that phase-1 quorum; the promises need not have arrived together).
   */
  private recoverGap(output: Output): void {
    const gap = this.gap;
    if (gap === null) return;
    if (this.learner.deliveredThrough >= gap.throughSlot) {
      this.gap = null;
      return;
    }
    const covered = coveredFrom(gap.phase1, this.quorum);
    const from = Math.max(covered, this.learner.deliveredThrough + 1);
    for (let slot = from; slot <= gap.throughSlot; slot++) {
      if (this.learner.chosenValue(slot) !== undefined || this.inFlight.has(slot)) continue;
      // Full window, or past what our learner tracks (see `fillWindow`): the rest waits, gap kept.
      if (this.inFlight.size >= this.limits.windowSlots || slot > this.learner.horizonSlot) return;
      this.propose(slot, gap.phase1.votes.get(slot)?.value ?? NOOP, output);
    }
    if (covered > gap.throughSlot) return;
    gap.throughSlot = covered - 1;
    if (gap.throughSlot <= this.learner.deliveredThrough) this.gap = null;
  }

  // --- phase 2 -----------------------------------------------------------------------------------

  /** Proposes into free slots while the window has room and there is something to propose. */
  private fillWindow(): Output {
    const output = emptyOutput();
    if (this.modeValue !== "leader") return output;
    this.recoverGap(output);
    while (this.inFlight.size < this.limits.windowSlots) {
      const slot = this.nextSlot;
      // No further than our own learner tracks: it keeps every value we get chosen until it can
      // deliver it, so a leader whose learner lags (waiting for a snapshot) would otherwise hold
      // every slot it decides meanwhile (seed 726829: 1,600 and rising). It goes on once delivery does.
      if (slot > this.learner.horizonSlot) break;
      // Decided already: delivered (perhaps compacted into a snapshot since phase 1), or known chosen.
      if (slot <= this.learner.deliveredThrough || this.learner.chosenValue(slot) !== undefined) {
        this.nextSlot++;
        continue;
      }
      let value: Value;
      if (slot <= this.recoveryThrough) {
        const vote = this.recoveryVotes.get(slot);
        this.recoveryVotes.delete(slot);
        value = vote?.value ?? NOOP;
      } else {
        if (this.pendingCount === 0) {
          if (!this.noopWanted) break;
          this.noopWanted = false;
          value = NOOP;
        } else {
          if (this.pendingCount < this.limits.batchCommandsMax && this.partialInFlight >= PARTIAL_SLOTS_MAX)
            break;
          value = this.takeBatch();
          if (value.commands.length === 0) break;
        }
      }
      this.nextSlot++;
      this.propose(slot, value, output);
    }
    if (this.nextSlot > this.recoveryThrough) this.recoveryVotes.clear();
    return output;
  }

  private propose(slot: number, value: Value, output: Output): void {
    const timer = new Timeout("accept-retry");
    timer.start(backoffTicks(this.prng, this.timing.acceptRetryTicks, this.timing.retryTicksMax, 0));
    const partial =
      value.commands.length > 0 &&
      value.commands.length < this.limits.batchCommandsMax &&
      valueBytesEstimate(value) * 2 < this.limits.batchBytesMax;
    if (partial) this.partialInFlight++;
    this.inFlight.set(slot, { value, timer, attempt: 0, partial });
    for (const command of value.commands) this.inFlightKeys.add(command);
    // Votes come back without the value: our learner must know what we proposed.
    mergeOutput(output, this.learner.knowProposal(slot, this.current, value));
    this.sendAccept(slot, value, output);
  }

  /**
   * The accept goes to the acceptors and, with separate roles, to the learners too: votes carry no
   * value, so learners take it from here (one copy instead of one per acceptor).
   */
  private sendAccept(slot: number, value: Value, output: Output): void {
    const message = { type: "accept" as const, from: this.id, ballot: this.current, slot, value };
    output.send.push({ to: { role: "acceptor" }, message });
    if (!this.colocated) output.send.push({ to: { role: "learner" }, message });
  }

  /** Takes the oldest pending commands that fit one slot and are not delivered already. */
  private takeBatch(): Value {
    const commands: Command[] = [];
    let bytes = 16;
    while (this.pendingHead < this.pending.length && commands.length < this.limits.batchCommandsMax) {
      const command = this.pending[this.pendingHead] as Command;
      const size = commandBytesEstimate(command.payload.length);
      if (commands.length > 0 && bytes + size > this.limits.batchBytesMax) break;
      this.pendingHead++;
      if (!this.pendingKeys.delete(command)) continue; // forgotten: delivered or voted elsewhere
      if (this.learner.isDelivered(command) || this.inFlightKeys.has(command)) continue;
      commands.push(command);
      bytes += size;
    }
    this.compactPending();
    return { commands };
  }

  private tickLeader(): Output {
    const output = emptyOutput();
    if (this.checkQuorumTimer.tick() && !this.bugs.noCheckQuorum) {
      if (!this.quorum.isPhase2Quorum(this.heardAcceptors)) {
        // Check-quorum: no phase-2 quorum answered within the election timeout (we may be cut off
        // one way, hearing nobody while our heartbeats still go out). Stepping down lets the
        // acceptors' disruption guard lapse, so the rest of the cluster can elect a leader.
        this.checkQuorumStepDowns++;
        this.stepDown();
        this.electionAttempts++;
        this.electionTimer.start(this.electionWaitTicks());
        return output;
      }
      this.heardAcceptors = new Set();
      this.checkQuorumTimer.start(this.timing.electionTimeoutTicks);
    }
    if (this.heartbeatTimer.tick()) {
      mergeOutput(output, this.heartbeat());
      this.heartbeatTimer.start(this.timing.heartbeatTicks);
      // An idle leader gets no votes: it asks the acceptors it has not heard from since the last
      // check for a promise at its own ballot, from its next slot on (an empty report, normally).
      if (!this.bugs.noCheckQuorum && !this.quorum.isPhase2Quorum(this.heardAcceptors)) {
        for (const acceptor of this.quorum.acceptors)
          if (!this.heardAcceptors.has(acceptor))
            output.sendAfterPersist.push(this.prepareTo({ role: "acceptor", id: acceptor }, this.nextSlot));
      }
    }
    for (const [slot, flight] of this.inFlight) {
      if (!flight.timer.tick()) continue;
      flight.attempt++;
      flight.timer.start(
        backoffTicks(this.prng, this.timing.acceptRetryTicks, this.timing.retryTicksMax, flight.attempt),
      );
      this.acceptResends++;
      this.sendAccept(slot, flight.value, output);
    }
    this.tickGap(output);
    return output;
  }

  private heartbeat(): Output {
    const output = emptyOutput();
    const message: HeartbeatMessage = {
      type: "heartbeat",
      from: this.id,
      ballot: this.current,
      decidedThrough: this.learner.deliveredThrough,
      // Every slot voted in before our phase 1 is at most recoveryThrough (quorums intersect);
      // every slot since is below nextSlot. A rejoining replica relies on this bound.
      proposedThrough: this.proposedThrough,
    };
    output.send.push({ to: { role: "proposer" }, message });
    if (!this.colocated) output.send.push({ to: { role: "learner" }, message });
    return output;
  }

  // --- learning decisions ------------------------------------------------------------------------

  /** Folds what the learner has learned into the window, the pending queue and client acks. */
  private afterLearning(learned: Output): Output {
    const output = emptyOutput();
    if (learned.snapshot !== null) this.skipPast(learned.snapshot.slot);
    const delivered = learned.decided;
    // Acks promise "decided and delivered": they follow delivery, in slot order. Commands the
    // session table refused are never acked: their clients are told they were refused.
    if (this.modeValue === "leader" && delivered.length > 0) {
      const acks = new Map<NodeId, number[]>();
      const refusals = new Map<string, RefusalList>();
      for (const decision of delivered) {
        for (const command of decision.commands) pushAck(acks, command);
        if (decision.refused !== undefined)
          for (const { command, reason } of decision.refused) pushRefusal(refusals, command, reason);
      }
      this.sendAcks(acks, output);
      this.sendRefusals(refusals, output);
    }
    const chosen: SlotValue[] = this.learner.drainChosen();
    if (chosen.length === 0 && learned.snapshot === null) return output;
    for (const { slot, value } of chosen) {
      const flight = this.inFlight.get(slot);
      // Our value lost this slot to an earlier leader's: its commands need another slot.
      if (flight !== undefined) this.settle(slot, flight, !valuesEqual(flight.value, value));
      this.forgetPending(value);
    }
    mergeOutput(output, this.fillWindow());
    return output;
  }

  /**
   * Our learner installed a snapshot through `slot`: those slots are decided, with values we will not
   * see. Slots of ours in flight there are settled; their commands go back to the queue unless the
   * snapshot's sessions say they were delivered.
   */
  private skipPast(slot: number): void {
    for (const [inFlightSlot, flight] of this.inFlight)
      if (inFlightSlot <= slot) this.settle(inFlightSlot, flight, true);
    for (const voted of this.recoveryVotes.keys()) if (voted <= slot) this.recoveryVotes.delete(voted);
    if (this.nextSlot <= slot) this.nextSlot = slot + 1;
  }

  /** One of our slots is decided: it leaves the window, and with `requeue` its commands go back. */
  private settle(slot: number, flight: InFlightSlot, requeue: boolean): void {
    this.inFlight.delete(slot);
    if (flight.partial) this.partialInFlight--;
    for (const command of flight.value.commands) this.inFlightKeys.delete(command);
    if (requeue) this.requeue(flight.value);
  }

  private forgetPending(value: Value): void {
    if (this.pendingKeys.size === 0) return;
    for (const command of value.commands) this.pendingKeys.delete(command);
  }

  /**
   * Puts commands back at the end of the pending queue unless they are delivered or queued, or sure
   * to be refused (their clients hear so when they ask again).
   */
  private requeue(value: Value): void {
    for (const command of value.commands) {
      if (
        this.learner.isDelivered(command) ||
        this.learner.refusal(command) !== null ||
        this.pendingKeys.has(command) ||
        this.inFlightKeys.has(command)
      )
        continue;
      this.pending.push(command);
      this.pendingKeys.add(command);
    }
  }

  private compactPending(): void {
    // Drop consumed entries and entries no longer pending (delivered elsewhere) now and then.
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.pendingHead).filter((c) => this.pendingKeys.has(c));
      this.pendingHead = 0;
    }
  }

  // --- leadership ----------------------------------------------------------------------------------

  private onHeartbeat(message: HeartbeatMessage): Output {
    const output = emptyOutput();
    if (message.from === this.id) return output;
    this.noteLeaderActivity(message.ballot);
    if (ballotEquals(message.ballot, this.leaderBallot)) {
      this.leaderProposed = Math.max(this.leaderProposed, message.proposedThrough);
    }
    return output;
  }

  /**
   * A heartbeat, or a vote for another proposer's ballot, shows that proposer leading: a follower
   * holds its election off. Votes count because a busy leader's heartbeats can be late while its
   * accepts flow. Activity below the highest ballot seen does not count: that leader was preempted
   * without noticing (an idle leader sends no accepts, so no acceptor refuses it), and following it
   * would block every election. A leader an acceptor's disruption guard named when it refused our
   * higher prepare is the exception: it was not preempted (our ballot was refused), and not
   * following it would have us campaign against it forever.
   */
  private noteLeaderActivity(ballot: Ballot): void {
    const stale = ballotGreater(this.highestSeen, ballot) && !ballotEquals(ballot, this.guardVouched);
    this.observeBallot(ballot);
    if (
      this.modeValue === "follower" &&
      !stale &&
      ballot.node !== this.id &&
      ballotAtLeast(ballot, this.leaderBallot)
    ) {
      if (!ballotEquals(ballot, this.leaderBallot)) this.leaderProposed = 0;
      this.leaderBallot = ballot;
      this.electionAttempts = 0;
      this.electionTimer.start(this.electionWaitTicks());
    }
  }

  /**
   * Notes a ballot someone needs a leader at or above (a rejoining replica's P*: see
   * `Replica.checkRejoin`): a leader or candidate below it steps down, and our next campaign goes
   * above it.
   */
  noteBallot(ballot: Ballot): void {
    this.observeBallot(ballot);
  }

  private onReject(message: RejectMessage): Output {
    this.noteAnswer(message.from, message.ballot);
    if (ballotGreater(message.ballot, message.promised) && message.promised.node !== this.id) {
      // Refused below its promise only by the disruption guard: the leader at `promised` is alive.
      this.guardVouched = maxBallot(this.guardVouched, message.promised);
      const phase1 = this.phase1;
      if (this.modeValue === "candidate" && phase1 !== null && ballotEquals(message.ballot, this.current)) {
        phase1.guardRefused.add(message.from);
        const others = this.quorum.acceptors.filter((id) => !phase1.guardRefused.has(id));
        if (!this.quorum.isPhase1Quorum(others)) {
          // No phase-1 quorum is left without acceptors that hear a live leader: follow it (its
          // heartbeats count, see `noteLeaderActivity`) and campaign only once it falls silent.
          this.stepDown();
          this.electionAttempts++;
        }
      }
    }
    this.observeBallot(message.promised);
    return emptyOutput();
  }

  /** Notes a ballot seen anywhere; a higher one than ours means we were preempted. */
  private observeBallot(ballot: Ballot): void {
    this.highestSeen = maxBallot(this.highestSeen, ballot);
    if (this.modeValue !== "follower" && ballotGreater(ballot, this.current)) {
      this.stepDown();
      this.electionAttempts++;
      this.electionTimer.start(this.electionWaitTicks());
    }
  }

  /** An acceptor answered a message of ours at `ballot`: while we lead, check-quorum counts it. */
  private noteAnswer(acceptor: NodeId, ballot: Ballot): void {
    if (this.modeValue === "leader" && ballotEquals(ballot, this.current)) this.heardAcceptors.add(acceptor);
  }

  // --- screening input ---------------------------------------------------------------------------

  /** The highest round this proposer knows of itself: used, or seen in input it took. */
  private get knownRound(): number {
    return Math.max(this.round, this.highestSeen.round);
  }

  /**
   * Why a ballot from a message must be refused, or null (see `ballotRefusal`): past the ceiling, or
   * more than the jump above every round this proposer knows of or a quorum of acceptors vouches for.
   */
  ballotRefusal(ballot: Ballot): string | null {
    return ballotRefusal(ballot, this.knownRound, this.limits, () => this.vouchedRound.level);
  }

  /**
   * The last slot a message may name: a window plus a margin past the highest slot this proposer
   * knows of (delivered, or proposed while leading) or a quorum of acceptors vouches for. Heartbeats'
   * `decidedThrough` is deliberately not part of it, so a member cannot ratchet it up heartbeat by
   * heartbeat.
   */
  slotBeyondHorizon(slot: number): boolean {
    const margin = this.limits.windowSlots + this.limits.slotHorizonMarginSlots;
    const known = Math.max(this.learner.deliveredThrough, this.proposedThrough);
    if (slot <= known + margin) return false;
    return slot > this.vouchedSlot.level + margin;
  }

  /**
   * Checks a message before it touches anything: the sender's role (acceptor messages from an
   * acceptor, proposer messages from a proposer), its ballots (the ceiling, the jump, a promise's
   * votes at or below its ballot) and its slots (the horizon). A whole message is refused or taken:
   * a promise in particular is never taken in part, since ignoring one vote it reports could let us
   * choose a second value in that slot. Claims of acceptors are noted (`vouchedRound`,
   * `vouchedSlot`) even when their message is refused: that is how a node far behind catches up.
   */
  private screen(message: Message): string | null {
    switch (message.type) {
      case "promise":
      case "accepted":
      case "reject": {
        if (!this.quorum.isAcceptor(message.from)) return "not-an-acceptor";
        const ballot =
          message.type === "reject" ? maxBallot(message.ballot, message.promised) : message.ballot;
        if (ballot.round <= this.limits.ballotRoundMax) this.vouchedRound.claim(message.from, ballot.round);
        let slot =
          message.type === "promise" ? Math.max(message.floorSlot, message.nextSlot ?? 0) : message.slot;
        if (message.type === "promise")
          for (const entry of message.accepted) slot = Math.max(slot, entry.slot);
        this.vouchedSlot.claim(message.from, slot);
        const refusal = this.ballotRefusal(ballot);
        if (refusal !== null) return refusal;
        if (message.type === "promise") {
          for (const entry of message.accepted)
            if (ballotGreater(entry.ballot, message.ballot) || entry.slot < 1) return "promise-inconsistent";
          if (message.nextSlot !== null && message.nextSlot <= message.firstSlot)
            return "promise-inconsistent";
        }
        return this.slotBeyondHorizon(slot) ? "slot-beyond-horizon" : null;
      }
      case "heartbeat":
      case "prepare":
      case "accept": {
        if (this.proposerIds !== null && !this.proposerIds.has(message.from)) return "not-a-proposer";
        if (message.ballot.node !== message.from) return "ballot-not-sender";
        const refusal = this.ballotRefusal(message.ballot);
        if (refusal !== null) return refusal;
        if (message.type === "heartbeat")
          return this.slotBeyondHorizon(Math.max(message.decidedThrough, message.proposedThrough))
            ? "slot-beyond-horizon"
            : null;
        return message.type === "accept" && this.slotBeyondHorizon(message.slot)
          ? "slot-beyond-horizon"
          : null;
      }
      default:
        return null;
    }
  }

  /** Leaves candidate or leader mode; undecided commands of ours go back to the pending queue. */
  private stepDown(): void {
    if (this.modeValue === "follower") return;
    this.modeValue = "follower";
    this.phase1 = null;
    this.heartbeatTimer.stop();
    this.checkQuorumTimer.stop();
    const flights = [...this.inFlight.entries()].sort((a, b) => a[0] - b[0]);
    this.inFlight.clear();
    this.inFlightKeys.clear();
    this.partialInFlight = 0;
    for (const [, flight] of flights) this.requeue(flight.value);
    for (const vote of this.recoveryVotes.values()) this.requeue(vote.value);
    this.recoveryVotes = new Map();
    this.recoveryThrough = 0;
    this.gap = null;
    this.current = ZERO_BALLOT;
    this.leaderBallot = ZERO_BALLOT; // we do not know who leads now
    if (!this.electionTimer.isRunning) this.electionTimer.start(this.electionWaitTicks());
  }

  /**
   * The wait before running phase 1: `electionTimeoutTicks`, doubled per failed attempt up to 8
   * times, plus random jitter of up to as much again, so competing proposers rarely collide.
   */
  private electionWaitTicks(): number {
    const wait = Math.min(8, 2 ** Math.min(this.electionAttempts, 3)) * this.timing.electionTimeoutTicks;
    return wait + this.prng.int(wait);
  }
}

/**
 * The first slot from which the complete reports cover a phase-1 quorum. An acceptor keeps no votes
 * below its floor, so for a slot below it its report says nothing; a slot is recovered only where the
 * acceptors that do report on it form a phase-1 quorum (standard Paxos on that set). Slots below are
 * decided (that is what a floor means), and the leader's learner fetches them instead.
 */
function coveredFrom(phase1: Phase1, quorum: QuorumSystem): number {
  const floors = [...phase1.reports]
    .filter(([, report]) => report.expectedSlot === null)
    .map(([acceptor, report]) => ({ acceptor, floor: report.floorSlot }))
    .sort((a, b) => a.floor - b.floor);
  const covering: NodeId[] = [];
  for (const { acceptor, floor } of floors) {
    covering.push(acceptor);
    if (quorum.isPhase1Quorum(covering)) return floor;
  }
  assert(false, "a leader has a phase-1 quorum of complete reports");
}

/** The acceptors whose phase-1 reports are complete. */
function complete(phase1: Phase1): NodeId[] {
  const ids: NodeId[] = [];
  for (const [acceptor, report] of phase1.reports) if (report.expectedSlot === null) ids.push(acceptor);
  return ids;
}

function pushRefusal(refusals: Map<string, RefusalList>, command: Command, reason: RefuseReason): void {
  const key = `${command.client}:${reason}`;
  const known = refusals.get(key);
  if (known !== undefined) known.seqs.push(command.seq);
  else refusals.set(key, { client: command.client, reason, seqs: [command.seq] });
}

/** Refused seqs of one client for one reason, collected for one `refuse` message. */
interface RefusalList {
  readonly client: NodeId;
  readonly reason: RefuseReason;
  readonly seqs: number[];
}

function pushAck(acks: Map<NodeId, number[]>, command: Command): void {
  let seqs = acks.get(command.client);
  if (seqs === undefined) {
    seqs = [];
    acks.set(command.client, seqs);
  }
  seqs.push(command.seq);
}

function validCommand(command: Command, limits: Limits): boolean {
  return (
    Number.isSafeInteger(command.client) &&
    command.client > 0 &&
    Number.isSafeInteger(command.seq) &&
    command.seq > 0 &&
    payloadProblem(command.payload, limits) === null
  );
}
