/**
 * Linearizable reads by read index (Raft dissertation 6.4 in Paxos terms): a leader answers a read
 * only after a phase-2 quorum confirmed, in answers sent after the read began, that it still leads.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NodeId } from "./ballot.js";
import type { Limits } from "./limits.js";
import type { Envelope, Message } from "./messages.js";
import type { Output } from "./output.js";
import { Prng } from "./prng.js";
import type { ReadOutcome } from "./read-index.js";
import { Replica } from "./replica.js";
import { cmd, majorityOf } from "./test-util.js";

interface Queued {
  readonly to: NodeId;
  readonly message: Message;
}

/** Three (or `count`) replicas and a FIFO of messages between them; `cut` nodes run but hear and say nothing. */
class Trio {
  readonly replicas = new Map<NodeId, Replica>();
  queue: Queued[] = [];
  readonly cut = new Set<NodeId>();
  readonly reads = new Map<number, ReadOutcome>();

  constructor(count = 3, limits: Partial<Limits> = {}) {
    const quorum = majorityOf(count);
    const prng = new Prng(7);
    for (let id = 1; id <= count; id++)
      this.replicas.set(id, new Replica({ id, quorum, prng: prng.fork(), catchupTicks: 4, limits }));
  }

  replica(id: NodeId): Replica {
    return this.replicas.get(id) as Replica;
  }

  handle(from: NodeId, output: Output): void {
    for (const envelope of [...output.send, ...output.sendAfterPersist]) this.route(from, envelope);
    for (const outcome of this.replica(from).takeReads()) this.reads.set(outcome.id, outcome);
  }

  private route(from: NodeId, envelope: Envelope): void {
    if (envelope.to.role === "client" || this.cut.has(from)) return;
    const targets = envelope.to.id === undefined ? [...this.replicas.keys()] : [envelope.to.id];
    for (const to of targets)
      if (to !== from || envelope.to.id !== undefined) this.queue.push({ to, message: envelope.message });
  }

  deliver(filter: (q: Queued) => boolean = () => true): void {
    for (let steps = 0; steps < 100_000; steps++) {
      const index = this.queue.findIndex(filter);
      if (index < 0) return;
      const [item] = this.queue.splice(index, 1) as [Queued];
      if (this.cut.has(item.to)) continue;
      this.handle(item.to, this.replica(item.to).step(item.message));
    }
    assert.fail("messages do not settle");
  }

  tickAll(): void {
    for (const [id, replica] of this.replicas) this.handle(id, replica.tick());
  }

  runUntil(done: () => boolean, ticksMax = 3000): void {
    for (let tick = 0; tick < ticksMax; tick++) {
      this.deliver();
      if (done()) return;
      this.tickAll();
    }
    assert.fail("condition not reached");
  }

  leader(): Replica {
    this.runUntil(() => [...this.replicas.values()].some((r) => r.mode === "leader"));
    return [...this.replicas.values()].find((r) => r.mode === "leader") as Replica;
  }

  read(id: NodeId, readId: number): void {
    this.handle(id, this.replica(id).read(readId));
  }
}

describe("Read index: linearizable reads without writing to the log", () => {
  it("a leader's read is confirmed by a phase-2 quorum and indexed past every slot it proposed", () => {
    const trio = new Trio();
    const leader = trio.leader();
    trio.handle(leader.id, leader.submit([cmd(9, 1, "x")]));
    trio.deliver((q) => q.message.type !== "accepted"); // proposed, not yet chosen
    const proposed = leader.proposer.proposedThrough;
    trio.read(leader.id, 1);
    assert.equal(trio.reads.has(1), false, "not before a quorum answered");
    trio.deliver();
    const outcome = trio.reads.get(1);
    assert.deepEqual(outcome, { id: 1, ok: true, index: proposed });
    assert.ok(leader.learner.deliveredThrough >= proposed, "the write is applied by the time the read is");
  });

  it("one confirmation answers every read that began before it was sent; later ones wait for the next", () => {
    const trio = new Trio();
    const leader = trio.leader();
    trio.read(leader.id, 1);
    trio.read(leader.id, 2);
    const probes = () => trio.queue.filter((q) => q.message.type === "rejoin-query").length;
    assert.equal(probes(), 2, "one query to each other replica, for both reads");
    trio.deliver((q) => q.message.type === "rejoin-query"); // answers in the queue now
    trio.read(leader.id, 3); // began after the first probe went out
    trio.deliver();
    assert.equal(trio.reads.get(1)?.ok, true);
    assert.equal(trio.reads.get(2)?.ok, true);
    assert.equal(trio.reads.get(3)?.ok, true, "the next probe, sent after read 3 began, confirms it");
    assert.ok(leader.readsPending === 0);
  });

  it("a follower never answers: its reads fail at once and name the leader", () => {
    const trio = new Trio();
    const leader = trio.leader();
    trio.runUntil(() => [...trio.replicas.values()].every((r) => r.proposer.leader === leader.id));
    const follower = [...trio.replicas.values()].find((r) => r !== leader) as Replica;
    trio.read(follower.id, 5);
    assert.deepEqual(trio.reads.get(5), { id: 5, ok: false, leader: leader.id });
  });

  it("a leader cut off from the others never confirms; its reads fail once it steps down", () => {
    const trio = new Trio();
    const old = trio.leader();
    trio.cut.add(old.id);
    trio.read(old.id, 1);
    // The others elect a new leader and write; the old leader's read must not be answered from
    // its stale state.
    const others = [...trio.replicas.values()].filter((r) => r !== old);
    trio.runUntil(() => others.some((r) => r.mode === "leader"), 5000);
    const fresh = others.find((r) => r.mode === "leader") as Replica;
    trio.handle(fresh.id, fresh.submit([cmd(9, 1, "new")]));
    trio.runUntil(() => trio.reads.has(1), 5000);
    assert.equal(trio.reads.get(1)?.ok, false, "check-quorum made it step down; the read failed");
  });

  it("an answer to an earlier probe never confirms a later read (the nonce differs)", () => {
    const trio = new Trio();
    const leader = trio.leader();
    trio.read(leader.id, 1);
    trio.deliver((q) => q.message.type === "rejoin-query");
    const stale = trio.queue.filter((q) => q.message.type === "rejoin-report");
    trio.queue = trio.queue.filter((q) => q.message.type !== "rejoin-report");
    // Late answers to read 1's probe still count for read 1 (they were sent after it began)...
    trio.queue.push(...stale);
    trio.deliver();
    assert.equal(trio.reads.get(1)?.ok, true);
    // ...but not for read 2, which began after they were sent: copies of them arrive again.
    trio.read(leader.id, 2);
    for (const item of stale) trio.handle(item.to, trio.replica(item.to).step(item.message));
    assert.equal(trio.reads.has(2), false, "answers to the first probe do not confirm read 2");
    trio.deliver();
    assert.equal(trio.reads.get(2)?.ok, true);
  });

  it("a single-node cluster confirms at once", () => {
    const solo = new Trio(1);
    const leader = solo.leader();
    solo.read(leader.id, 1);
    assert.equal(solo.reads.get(1)?.ok, true);
  });

  it("past readsPendingMax a read is refused at once, naming this node (busy)", () => {
    const trio = new Trio(3, { readsPendingMax: 2 });
    const leader = trio.leader();
    trio.read(leader.id, 1);
    trio.read(leader.id, 2);
    trio.read(leader.id, 3);
    assert.deepEqual(trio.reads.get(3), { id: 3, ok: false, leader: leader.id });
    assert.equal(leader.readsPending, 2);
    trio.deliver();
    assert.equal(trio.reads.get(1)?.ok, true);
    assert.equal(trio.reads.get(2)?.ok, true);
  });
});
