import { Acceptor, type AcceptorBugs, type AcceptorState } from "./acceptor.js";
import { ballotEquals, maxBallot, type NodeId } from "./ballot.js";
import type { Learner, LearnerBugs } from "./learner.js";
import type { Command, Message, Value } from "./messages.js";
import { emptyOutput, mergeOutput, type Output } from "./output.js";
import { Proposer, type ProposerBugs, type ProposerMode, type ProposerOptions } from "./proposer.js";
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

export interface ReplicaOptions
  extends Pick<ProposerOptions, "id" | "quorum" | "prng" | "limits" | "timing" | "catchupTicks"> {
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
  readonly bugs?: { acceptor?: AcceptorBugs; proposer?: ProposerBugs; learner?: LearnerBugs };
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
  private rejoinFloor = 0;
  private rejoinTicks = 0;

  constructor(options: ReplicaOptions) {
    this.id = options.id;
    this.acceptor = options.quorum.isAcceptor(options.id)
      ? new Acceptor({
          id: options.id,
          votesTo: "learners",
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
      ...(options.restore?.log ? { restoreLog: options.restore.log } : {}),
      ...(options.restore?.snapshot ? { restoreSnapshot: options.restore.snapshot } : {}),
      ...(options.snapshotLogBytes !== undefined ? { snapshotLogBytes: options.snapshotLogBytes } : {}),
      ...(options.logRetainSlots !== undefined ? { logRetainSlots: options.logRetainSlots } : {}),
      ...(options.rejoining ? { holdElection: true } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.timing ? { timing: options.timing } : {}),
      ...(options.catchupTicks !== undefined ? { catchupTicks: options.catchupTicks } : {}),
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
        output = this.acceptor ? this.acceptor.step(message) : emptyOutput();
        // The co-located proposer notices a higher ballot and stands down.
        mergeOutput(output, this.proposer.step(message));
        break;
      }
      case "accept": {
        output = this.acceptor ? this.acceptor.step(message) : emptyOutput();
        // Votes between replicas carry no value: our learner takes it from the accept our acceptor took.
        const vote = this.acceptor?.voteFor(message.slot);
        if (vote !== undefined && ballotEquals(vote.ballot, message.ballot)) {
          mergeOutput(output, this.learner.knowProposal(message.slot, message.ballot, message.value));
        }
        mergeOutput(output, this.proposer.step(message));
        // Below our acceptor's floor the slot is decided and our vote is gone: the acceptor stays
        // silent, so tell the proposer's learner the outcome instead (the value, or our snapshot if
        // the slot is compacted), or a leader that missed the votes would retry it forever.
        if (this.acceptor !== null && message.slot < this.acceptor.floorSlot && message.from !== this.id) {
          const slot = message.slot;
          const ask = {
            type: "catchup",
            from: message.from,
            role: "learner",
            fromSlot: slot,
            toSlot: slot,
          } as const;
          mergeOutput(output, this.learner.step(ask));
        }
        break;
      }
      default:
        output = this.proposer.step(message);
    }
    return this.checkRejoin(this.trimVotes(output, output.snapshot));
  }

  tick(): Output {
    const output = this.proposer.tick();
    if (this.rejoining && ++this.rejoinTicks % REJOIN_NUDGE_TICKS === 0 && this.rejoinFloor > 0) {
      // An idle cluster decides nothing new: ask the leader for a slot (a no-op) past our floor.
      mergeOutput(output, this.proposer.requestNoop());
    }
    return this.checkRejoin(output);
  }

  /**
   * The rejoin rule. Every slot this node might have voted in before it lost its state was proposed
   * before it came back, so it is at most the leader's `proposedThrough` when this node first hears
   * the leader (a leader recovers every earlier leader's voted slots before it proposes new ones;
   * a slot voted only by this node was never chosen). So:
   * 1. on the first heartbeat from another leader, the floor F is one past every slot proposed,
   *    voted or known decided so far;
   * 2. once this node's learner has delivered every slot through F, the cluster has moved past
   *    every slot the node might have voted in, and a slot started after its return has completed;
   * 3. then the acceptor rejoins, promising the highest ballot seen and keeping no votes below F
   *    (promises report F as their floor, so no proposer counts this node for those slots), and
   *    the proposer may campaign again, above every ballot seen.
   * It never guesses: until then it neither promises, votes nor campaigns.
   */
  private checkRejoin(output: Output): Output {
    const acceptor = this.acceptor;
    if (acceptor === null || !acceptor.rejoining) return output;
    const leader = this.proposer.leader;
    if (this.rejoinFloor === 0) {
      if (leader === 0 || leader === this.id || this.proposer.leaderProposedThrough === 0) return output;
      this.rejoinFloor =
        Math.max(
          this.proposer.leaderProposedThrough,
          acceptor.highestSlot,
          this.learner.knownDecidedThrough,
        ) + 1;
      mergeOutput(output, this.proposer.requestNoop());
      return output;
    }
    if (this.learner.deliveredThrough < this.rejoinFloor) return output;
    const seen = maxBallot(this.proposer.highestBallotSeen, acceptor.highestBallotSeen);
    mergeOutput(output, acceptor.rejoin(seen, this.rejoinFloor));
    // The rounds this node used before are lost; one it might reuse would let two proposals share a
    // ballot. Each rejoin has a larger floor than any before it (floors pass every slot proposed so
    // far), so rounds from floor x 2^20 on are fresh unless this node ran over a million elections
    // since its previous rejoin.
    return mergeOutput(
      output,
      this.proposer.releaseElection(acceptor.promised, this.rejoinFloor * REJOIN_ROUND_SPACING),
    );
  }
}

/** Rounds a rejoined proposer skips per slot of its floor (see `checkRejoin`). */
const REJOIN_ROUND_SPACING = 2 ** 20;

/** How often a rejoining replica asks the leader for a fresh slot while it waits. */
const REJOIN_NUDGE_TICKS = 20;
