import { assert } from "./assert.js";
import { type Ballot, ballotEquals, type NodeId } from "./ballot.js";
import type { QuorumSystem } from "./quorum.js";

/**
 * A read that may be answered once the application has applied through `index` (`ok`), or that
 * this node cannot serve (`ok: false`: it does not lead, or stopped leading before the read was
 * confirmed; `leader` is the leader it knows of, 0 for none).
 */
export type ReadOutcome =
  | { readonly id: number; readonly ok: true; readonly index: number }
  | { readonly id: number; readonly ok: false; readonly leader: NodeId };

interface Read {
  readonly id: number;
  readonly index: number;
}

/** One confirmation round: a query sent to every acceptor after all of its reads began. */
interface Probe {
  readonly nonce: number;
  readonly ballot: Ballot;
  readonly heard: Set<NodeId>;
  readonly reads: Read[];
  ticks: number;
}

/**
 * Linearizable reads without writing to the log (the read index of the Raft dissertation, 6.4, in
 * Paxos terms). A read that begins at time T is given the index I = the highest slot the leader
 * has proposed in (or recovered in phase 1) at T. Every write acknowledged before T was chosen in a
 * slot at most I: either this leader proposed it, or it was chosen before this leader's phase 1 and
 * so was reported to it (a phase-1 quorum meets every phase-2 quorum). The read then waits for a
 * confirmation that no other leader has taken over: a phase-2 quorum of acceptors says, in answers
 * sent after T, that it still has promised this leader's ballot and no higher. A leader at a higher
 * ballot could have chosen something only after a phase-1 quorum promised it, and that quorum
 * meets the confirming one, in an acceptor that would have had to promise higher before T and
 * report the lower ballot after it: promises only rise. So once confirmed, and once the
 * application has applied through I, the leader's state includes every write acknowledged before
 * T: answering from it is linearizable.
 *
 * The confirmation query is the read-only `rejoin-query`, whose answer reports the acceptor's
 * promise, tagged with a nonce this probe chose: an answer to an earlier probe (sent before T)
 * never counts. Reads that arrive while a probe is out wait for the next one, so one probe answers
 * every read that began before it was sent (batching). A voting report names no slot; nothing
 * from the wire touches state here but a set of acceptor ids.
 */
export class ReadIndex {
  private probe: Probe | null = null;
  private waiting: Read[] = [];
  private outcomes: ReadOutcome[] = [];
  private nonce = 0;

  constructor(
    private readonly id: NodeId,
    private readonly quorum: QuorumSystem,
    /** Most reads waiting or in a probe at once; past it a read is refused (not-leader, this node). */
    private readonly readsMax: number,
    /** Ticks between resends of an unanswered probe (answers are lost like any message). */
    private readonly resendTicks: number,
  ) {
    assert(readsMax >= 1 && resendTicks >= 1, "read index bounds must be positive");
  }

  /** Reads waiting for a confirmation. */
  get pending(): number {
    return this.waiting.length + (this.probe?.reads.length ?? 0);
  }

  /** Outcomes since the last call, in the order they were reached. */
  drain(): ReadOutcome[] {
    const outcomes = this.outcomes;
    this.outcomes = [];
    return outcomes;
  }

  /**
   * A read begins. `leading`: this node leads at `ballot`; `index`: the slot it must be applied
   * through; `selfPromised`: our own acceptor's promise (null: not a voting acceptor). Returns the
   * nonce of a probe to send now, or null.
   */
  begin(
    id: number,
    leading: boolean,
    leader: NodeId,
    ballot: Ballot,
    index: number,
    selfPromised: Ballot | null,
  ): number | null {
    if (!leading) {
      this.outcomes.push({ id, ok: false, leader });
      return null;
    }
    if (this.pending >= this.readsMax) {
      this.outcomes.push({ id, ok: false, leader: this.id });
      return null;
    }
    const read = { id, index };
    if (this.probe !== null) {
      this.waiting.push(read);
      return null;
    }
    return this.start([read], ballot, selfPromised);
  }

  /** A `rejoin-report` answering probe `nonce`: counts a voting acceptor still at our ballot. */
  report(from: NodeId, nonce: number, voting: boolean, promised: Ballot): void {
    const probe = this.probe;
    if (probe === null || nonce !== probe.nonce || !voting || !this.quorum.isAcceptor(from)) return;
    if (!ballotEquals(promised, probe.ballot)) return;
    probe.heard.add(from);
    this.settle();
  }

  /**
   * Once a tick: if this node no longer leads at the probe's ballot, its reads fail (they may be
   * retried at the new leader); an unanswered probe is resent (returns its nonce) every
   * `resendTicks`; reads left waiting start the next probe.
   */
  tick(leading: boolean, leader: NodeId, ballot: Ballot, selfPromised: Ballot | null): number | null {
    const probe = this.probe;
    if (probe === null) return this.next(leading, leader, ballot, selfPromised);
    if (!leading || !ballotEquals(ballot, probe.ballot)) return this.failAll(leader);
    probe.ticks++;
    return probe.ticks % this.resendTicks === 0 ? probe.nonce : null;
  }

  /** Starts a probe for the reads left waiting, if none is out (returns its nonce to send). */
  next(leading: boolean, leader: NodeId, ballot: Ballot, selfPromised: Ballot | null): number | null {
    if (this.probe !== null || this.waiting.length === 0) return null;
    if (!leading) return this.failAll(leader);
    return this.start(this.waiting.splice(0), ballot, selfPromised);
  }

  /** Fails every read (this node stopped leading): the caller retries where the leader is. */
  failAll(leader: NodeId): null {
    for (const read of [...(this.probe?.reads ?? []), ...this.waiting])
      this.outcomes.push({ id: read.id, ok: false, leader });
    this.probe = null;
    this.waiting = [];
    return null;
  }

  private start(reads: Read[], ballot: Ballot, selfPromised: Ballot | null): number | null {
    this.nonce = this.nonce >= 0xffff_ffff ? 1 : this.nonce + 1;
    const heard = new Set<NodeId>();
    if (selfPromised !== null && ballotEquals(selfPromised, ballot) && this.quorum.isAcceptor(this.id))
      heard.add(this.id);
    this.probe = { nonce: this.nonce, ballot, heard, reads, ticks: 0 };
    const nonce = this.nonce;
    this.settle();
    // Confirmed at once (a quorum of this node alone): nothing to send.
    return this.probe === null ? null : nonce;
  }

  private settle(): void {
    const probe = this.probe;
    if (probe === null || !this.quorum.isPhase2Quorum(probe.heard)) return;
    for (const read of probe.reads) this.outcomes.push({ id: read.id, ok: true, index: read.index });
    this.probe = null;
  }
}
