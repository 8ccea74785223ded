import { Acceptor, type AcceptorBugs, type AcceptorState } from "./acceptor.js";
import { ballotEquals, type NodeId } from "./ballot.js";
import type { Learner, LearnerBugs } from "./learner.js";
import type { Limits } from "./limits.js";
import type { Command, Message } from "./messages.js";
import { emptyOutput, mergeOutput, type Output } from "./output.js";
import type { Prng } from "./prng.js";
import { Proposer, type ProposerBugs, type ProposerMode, type ProposerTiming } from "./proposer.js";
import type { QuorumSystem } from "./quorum.js";

/** What a replica keeps on stable storage: its acceptor's state and its proposer's round. */
export interface ReplicaState {
  readonly acceptor: AcceptorState;
  readonly round: number;
}

export interface ReplicaOptions {
  readonly id: NodeId;
  readonly quorum: QuorumSystem;
  readonly prng: Prng;
  readonly limits?: Partial<Limits>;
  readonly timing?: Partial<ProposerTiming>;
  readonly catchupTicks?: number;
  readonly restore?: ReplicaState;
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
 */
export class Replica {
  readonly id: NodeId;
  readonly acceptor: Acceptor | null;
  readonly proposer: Proposer;

  constructor(options: ReplicaOptions) {
    this.id = options.id;
    this.acceptor = options.quorum.isAcceptor(options.id)
      ? new Acceptor({
          id: options.id,
          votesTo: "learners",
          ...(options.limits ? { limits: options.limits } : {}),
          ...(options.restore ? { restore: options.restore.acceptor } : {}),
          ...(options.bugs?.acceptor ? { bugs: options.bugs.acceptor } : {}),
        })
      : null;
    this.proposer = new Proposer({
      id: options.id,
      quorum: options.quorum,
      prng: options.prng,
      colocated: true,
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
    };
  }

  submit(commands: readonly Command[]): Output {
    return this.proposer.submit(commands);
  }

  step(message: Message): Output {
    switch (message.type) {
      case "prepare": {
        const output = this.acceptor ? this.acceptor.step(message) : emptyOutput();
        // The co-located proposer notices a higher ballot and stands down.
        return mergeOutput(output, this.proposer.step(message));
      }
      case "accept": {
        const output = this.acceptor ? this.acceptor.step(message) : emptyOutput();
        // Votes between replicas carry no value: our learner takes it from the accept our acceptor took.
        const vote = this.acceptor?.voteFor(message.slot);
        if (vote !== undefined && ballotEquals(vote.ballot, message.ballot)) {
          mergeOutput(output, this.learner.knowProposal(message.slot, message.ballot, message.value));
        }
        return mergeOutput(output, this.proposer.step(message));
      }
      default:
        return this.proposer.step(message);
    }
  }

  tick(): Output {
    return this.proposer.tick();
  }
}
