/**
 * A replica that lost its disk rejoins (issue 8, item 1a; docs/durability.md, "Rejoin: why the floor
 * is safe"). The two traces of the issue are driven by hand: three replicas A (1), B (2), C (3), every
 * message routed by the test. And the condition on the acceptors a rejoining replica waits for.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Ballot, ballotAtLeast, ballotGreater, type NodeId, ZERO_BALLOT } from "./ballot.js";
import type { Destination, Message, Value } from "./messages.js";
import { valuesEqual } from "./messages.js";
import type { Output } from "./output.js";
import { Prng } from "./prng.js";
import { createQuorumSystem, type QuorumSystem } from "./quorum.js";
import { Replica, type ReplicaBugs, rejoinReportsSuffice } from "./replica.js";
import { cmd, majorityOf, val } from "./test-util.js";

interface Queued {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly message: Message;
}

type Route = "deliver" | "drop" | "hold";

/**
 * Replicas wired by hand. Persists count as written at once (no replica here crashes with its disk
 * intact: A loses everything, and "down" means cut off). Every delivered decision is recorded, so
 * agreement is checked across every replica and incarnation.
 */
class Net {
  readonly replicas = new Map<NodeId, Replica>();
  private queue: Queued[] = [];
  /** Messages the route held back, for the test to deliver later. */
  held: Queued[] = [];
  /** Decides what happens to each message (a message to oneself is always delivered). */
  route: (q: Queued) => Route = () => "deliver";
  /** slot -> the first value delivered there, and who delivered it. */
  readonly firstDelivered = new Map<number, { value: Value; by: string }>();
  /** Deliveries that disagree with the first one in their slot. */
  readonly disagreements: string[] = [];

  constructor(
    readonly quorum: QuorumSystem,
    ids: readonly NodeId[],
  ) {
    for (const id of ids)
      this.replicas.set(id, new Replica({ id, quorum, prng: new Prng(id), catchupTicks: 4 }));
  }

  replica(id: NodeId): Replica {
    return this.replicas.get(id) as Replica;
  }

  /** Replaces `id` with a fresh incarnation that lost its whole state and rejoins. */
  loseDisk(id: NodeId, bugs?: ReplicaBugs): Replica {
    const replica = new Replica({
      id,
      quorum: this.quorum,
      prng: new Prng(100 + id),
      catchupTicks: 4,
      rejoining: true,
      ...(bugs ? { bugs: { replica: bugs } } : {}),
    });
    this.replicas.set(id, replica);
    // Messages queued for the old incarnation are gone with it.
    this.queue = this.queue.filter((q) => q.to !== id);
    return replica;
  }

  private resolve(to: Destination): NodeId[] {
    if (to.role === "client") return [];
    const ids = to.role === "acceptor" ? [...this.quorum.acceptors] : [...this.replicas.keys()];
    return to.id === undefined ? ids : ids.filter((id) => id === to.id);
  }

  absorb(id: NodeId, output: Output): void {
    for (const decision of output.decided) {
      const by = `replica ${id}`;
      const first = this.firstDelivered.get(decision.slot);
      if (first === undefined) this.firstDelivered.set(decision.slot, { value: decision.value, by });
      else if (!valuesEqual(first.value, decision.value)) {
        this.disagreements.push(
          `slot ${decision.slot}: ${by} delivered ${JSON.stringify(decision.value)} but ${first.by} delivered ${JSON.stringify(first.value)}`,
        );
      }
    }
    for (const envelope of [...output.send, ...output.sendAfterPersist]) {
      for (const to of this.resolve(envelope.to))
        this.queue.push({ from: id, to, message: envelope.message });
    }
  }

  /** Delivers queued messages (and what they cause) until none is left. */
  run(): void {
    for (let steps = 0; this.queue.length > 0; steps++) {
      assert.ok(steps < 100_000, "the network never went quiet");
      const q = this.queue.shift() as Queued;
      const route = q.from === q.to ? "deliver" : this.route(q);
      if (route === "hold") this.held.push(q);
      if (route !== "deliver") continue;
      this.absorb(q.to, this.replica(q.to).step(q.message));
    }
  }

  /** Delivers the held messages that `pick` selects (through the route too), keeps the rest. */
  release(pick: (q: Queued) => boolean): number {
    const released = this.held.filter(pick);
    this.held = this.held.filter((q) => !pick(q));
    for (const q of released) this.absorb(q.to, this.replica(q.to).step(q.message));
    this.run();
    return released.length;
  }

  submit(id: NodeId, value: Value): void {
    this.absorb(id, this.replica(id).submit(value.commands));
    this.run();
  }

  /** Ticks `ids` (one tick each, then the network runs) until `done`, at most `ticksMax` times. */
  tickUntil(ids: readonly NodeId[], done: () => boolean, what: string, ticksMax = 3000): void {
    for (let tick = 0; !done(); tick++) {
      assert.ok(tick < ticksMax, `not within ${ticksMax} ticks: ${what}`);
      for (const id of ids) this.absorb(id, this.replica(id).tick());
      // Time passes for every node, though only `ids` act: the others' disruption guards lapse.
      for (const [id, replica] of this.replicas) if (!ids.includes(id)) replica.acceptor?.tick();
      this.run();
    }
  }

  valueAt(slot: number): Value | undefined {
    return this.firstDelivered.get(slot)?.value;
  }
}

const A = 1;
const B = 2;
const C = 3;
const x1 = val(cmd(9, 1, "x1"));
const x2 = val(cmd(9, 2, "x2"));
const x3 = val(cmd(9, 3, "x3"));

function ballotOf(replica: Replica): Ballot {
  return replica.proposer.ballot;
}

/**
 * The trace of issue 8, 1a, up to A's return. C leads and decides slot 1; C goes deaf (it hears
 * nobody, and for now its messages are lost too, so B's election timer runs out); B runs phase 1
 * with {A, B} and gets x2 chosen in slot 2 by A and B; A loses its disk and restarts rejoining.
 * `staleHeartbeat`: a heartbeat C sent before the cut, delayed in the network, reaches A first.
 * Otherwise a fresh heartbeat from the deaf C does.
 */
function toRejoin(staleHeartbeat: boolean, bugs?: ReplicaBugs): { net: Net; ballotB: Ballot } {
  const net = new Net(majorityOf(3), [A, B, C]);
  net.tickUntil([C], () => net.replica(C).mode === "leader", "C leads");
  net.submit(C, x1);
  net.tickUntil(
    [A, B, C],
    () => net.valueAt(1) !== undefined && net.replica(A).learner.deliveredThrough >= 1,
    "slot 1 decided",
  );
  assert.ok(valuesEqual(net.valueAt(1) as Value, x1));
  const ballotC = ballotOf(net.replica(C));

  // C's next heartbeat to A is delayed in the network; then C hears nobody (and, for now, nobody hears C).
  net.route = (q) => (q.from === C && q.to === A && q.message.type === "heartbeat" ? "hold" : "deliver");
  net.tickUntil([C], () => net.held.length > 0, "C heartbeats");
  net.route = (q) => (q.to === C || q.from === C ? "drop" : "deliver");

  // B's election timer runs out; it runs phase 1 with {A, B} and gets x2 chosen in slot 2.
  net.tickUntil([B], () => net.replica(B).mode === "leader", "B leads");
  const ballotB = ballotOf(net.replica(B));
  assert.ok(ballotB.round > ballotC.round, "B's ballot is above C's");
  net.submit(B, x2);
  net.tickUntil([A, B], () => net.replica(B).learner.deliveredThrough >= 2, "slot 2 decided");
  assert.ok(valuesEqual(net.valueAt(2) as Value, x2));
  assert.equal(net.replica(A).acceptor?.voteFor(2)?.ballot.round, ballotB.round, "A voted for x2");
  assert.equal(net.replica(C).learner.knownDecidedThrough, 1, "C knows nothing of slot 2");

  // A loses its disk. C stays deaf to B, but from now on A and C hear each other.
  net.loseDisk(A, bugs);
  net.route = (q) => ((q.from === B && q.to === C) || (q.from === C && q.to === B) ? "drop" : "deliver");
  if (staleHeartbeat) {
    assert.equal(
      net.release((q) => q.from === C && q.message.type === "heartbeat"),
      1,
    );
  } else {
    net.tickUntil([C], () => net.replica(A).proposer.followedBallot.node === C, "A hears C's heartbeat");
  }
  assert.equal(net.replica(A).proposer.followedBallot.node, C, "the first leader A hears of is C");
  return { net, ballotB };
}

/**
 * The rest of the trace: A catches up from B (and rejoins, if it may); B goes down; C is asked to
 * decide x3. Returns the net for the caller to check.
 */
function afterRejoin(net: Net): Net {
  net.tickUntil([A, B, C], () => net.replica(A).learner.deliveredThrough >= 2, "A catches up", 400);
  // Give A time to rejoin if its rule lets it (with C deaf to B nothing new is decided).
  for (let i = 0; i < 60; i++) {
    for (const id of [A, B, C]) net.absorb(id, net.replica(id).tick());
    net.run();
  }
  // B goes down; C is asked to decide x3.
  net.route = (q) => (q.from === B || q.to === B ? "drop" : "deliver");
  net.submit(C, x3);
  for (let i = 0; i < 400 && net.disagreements.length === 0; i++) {
    for (const id of [A, C]) net.absorb(id, net.replica(id).tick());
    net.run();
  }
  return net;
}

describe("Rejoin after a lost disk (issue 8, 1a)", () => {
  for (const stale of [true, false]) {
    const which = stale ? "a heartbeat C sent before the cut, delayed" : "a fresh heartbeat from the deaf C";
    it(`the first leader heard is C, by ${which}: the floor covers slot 2 and slot 2 keeps x2`, () => {
      const { net, ballotB } = toRejoin(stale);
      const rejoining = net.replica(A);
      net.tickUntil([A, B, C], () => rejoining.rejoinFloorSlot > 0, "A fixes its floor", 400);
      // B's report (it leads at the highest promise) says slot 2 was proposed: the floor is past it.
      assert.ok(rejoining.rejoinFloorSlot >= 3, `floor ${rejoining.rejoinFloorSlot} must cover slot 2`);
      afterRejoin(net);
      assert.deepEqual(net.disagreements, []);
      // C, deaf to B, did propose another value in slot 2 (x3, or the no-op A asked for; its own
      // acceptor voted for it), but A, still rejoining, gave it no vote: only x2 was delivered there.
      const voteC = net.replica(C).acceptor?.voteFor(2);
      assert.ok(voteC !== undefined && !valuesEqual(voteC.value, x2), "C proposed another value in slot 2");
      assert.ok(
        net.replica(A).rejoining,
        "A is still rejoining: slot 3 cannot be decided while C is deaf to B",
      );
      assert.ok(valuesEqual(net.valueAt(2) as Value, x2));
      // Heal: B comes back, everything is decided, and A has rejoined.
      net.route = () => "deliver";
      net.tickUntil(
        [A, B, C],
        () =>
          !net.replica(A).rejoining &&
          [A, B, C].every((id) => net.replica(id).learner.isDelivered(cmd(9, 3, "x3"))),
        "x3 delivered everywhere and A rejoined",
      );
      assert.deepEqual(net.disagreements, []);
      assert.ok(valuesEqual(net.valueAt(2) as Value, x2));
      // A rejoined promising at least every promise reported, B's ballot among them.
      assert.ok(ballotAtLeast(net.replica(A).acceptor?.promised ?? ZERO_BALLOT, ballotB));
    });

    it(`the old rule (floor from any leader) fails the same trace, by ${which}: two values in slot 2`, () => {
      const { net } = toRejoin(stale, { rejoinFloorFromAnyLeader: true });
      afterRejoin(net);
      assert.equal(net.replica(A).rejoinFloorSlot, 2, "the old rule takes C's proposedThrough (1) + 1");
      assert.ok(
        net.disagreements.some((d) => d.startsWith("slot 2:")),
        `expected a disagreement in slot 2, got ${JSON.stringify(net.disagreements)}`,
      );
    });
  }

  it("a rejoining replica asks again until it hears enough acceptors, and counts none twice", () => {
    const net = new Net(majorityOf(3), [A, B, C]);
    net.tickUntil([B], () => net.replica(B).mode === "leader", "B leads");
    net.submit(B, x1);
    net.tickUntil([A, B, C], () => net.replica(C).learner.deliveredThrough >= 1, "slot 1 decided");
    net.loseDisk(A);
    // C's answers are lost: B's report alone (weight 1, not more than 3 - 2) fixes no floor.
    net.route = (q) => (q.from === C && q.to === A ? "drop" : "deliver");
    net.tickUntil([A, B, C], () => net.replica(A).rejoinReports >= 3, "several reports from B");
    assert.equal(net.replica(A).rejoinFloorSlot, 0);
    assert.ok(net.replica(A).rejoining);
    net.route = () => "deliver";
    net.tickUntil([A, B, C], () => !net.replica(A).rejoining, "A rejoins once C answers too");
    assert.ok(net.replica(A).rejoinFloorSlot >= 2);
    assert.deepEqual(net.disagreements, []);
  });

  it("a report to another incarnation's query is ignored, and a query changes nothing at the receiver", () => {
    const net = new Net(majorityOf(3), [A, B, C]);
    net.tickUntil([B], () => net.replica(B).mode === "leader", "B leads");
    const rejoining = net.loseDisk(A);
    const before = JSON.stringify(net.replica(C).state());
    const reply = net.replica(C).step({
      type: "rejoin-query",
      from: A,
      nonce: 12345,
      promised: { round: 0, node: 0 },
    });
    assert.equal(JSON.stringify(net.replica(C).state()), before, "a query is read-only");
    assert.equal(reply.persist, null);
    assert.equal(reply.send.length, 1);
    const report = reply.send[0]?.message;
    assert.ok(report?.type === "rejoin-report" && report.voting && report.nonce === 12345);
    rejoining.step(report);
    assert.equal(rejoining.rejoinReports, 0, "the nonce is not this incarnation's");
  });
  it("a leader below the promise a rejoining replica was told of steps down, and the next leader is above it (seed 157184)", () => {
    // P* can exceed every live ballot: a replica that promised it lost its disk since and rejoined
    // lower. A floor needs a leader at P* or above; a stable leader below it would never be replaced.
    const net = new Net(majorityOf(3), [A, B, C]);
    net.tickUntil([B], () => net.replica(B).mode === "leader", "B leads");
    const below = net.replica(B).proposer.ballot;
    const stale = { round: below.round + 5, node: C };
    // The query goes to every replica, as a rejoining one sends it.
    for (const id of [B, C])
      net.replica(id).step({ type: "rejoin-query", from: A, nonce: 1, promised: stale });
    assert.notEqual(net.replica(B).mode, "leader", "B steps down");
    net.tickUntil([B, C], () => [B, C].some((id) => net.replica(id).mode === "leader"), "a new leader");
    const leader = [B, C].map((id) => net.replica(id)).find((r) => r.mode === "leader");
    assert.ok(leader && ballotGreater(leader.proposer.ballot, stale), "the new leader's ballot is above P*");
  });
});

describe("Where a rejoining replica takes its floor from", () => {
  /** Replica 1 of 3, rejoining, and the nonce of its queries (from the query its first tick sends). */
  function rejoiningReplica(): { replica: Replica; nonce: number } {
    const replica = new Replica({ id: A, quorum: majorityOf(3), prng: new Prng(7), rejoining: true });
    const query = replica.tick().send.find((e) => e.message.type === "rejoin-query")?.message;
    assert.ok(query?.type === "rejoin-query");
    return { replica, nonce: query.nonce };
  }
  const report = (
    from: NodeId,
    nonce: number,
    fields: { promised: Ballot; votedThrough?: number; leaderBallot?: Ballot; proposedThrough?: number },
  ): Message => ({
    type: "rejoin-report",
    from,
    nonce,
    voting: true,
    promised: fields.promised,
    votedThrough: fields.votedThrough ?? 0,
    decidedThrough: 0,
    leaderBallot: fields.leaderBallot ?? ZERO_BALLOT,
    proposedThrough: fields.proposedThrough ?? 0,
  });
  const heartbeat = (from: NodeId, ballot: Ballot, proposedThrough: number): Message => ({
    type: "heartbeat",
    from,
    ballot,
    decidedThrough: 0,
    proposedThrough,
  });
  const b = (round: number, node: NodeId): Ballot => ({ round, node });

  it("not from a leader below the highest promise reported, by report or by heartbeat", () => {
    const { replica, nonce } = rejoiningReplica();
    replica.step(report(B, nonce, { promised: b(5, B), leaderBallot: b(5, B), proposedThrough: 9 }));
    assert.equal(replica.rejoinFloorSlot, 0, "one report of two: not enough acceptors yet");
    replica.step(report(C, nonce, { promised: b(6, C), votedThrough: 4 }));
    assert.equal(replica.rejoinFloorSlot, 0, "B leads at 5.2, below the promise of 6.3");
    replica.step(heartbeat(B, b(5, B), 9));
    assert.equal(replica.rejoinFloorSlot, 0);
    // C's own report, as leader at the highest promise: it was sent after the loss, so it counts.
    replica.step(
      report(C, nonce, { promised: b(6, C), votedThrough: 4, leaderBallot: b(6, C), proposedThrough: 11 }),
    );
    assert.equal(replica.rejoinFloorSlot, 12);
  });

  it("from a heartbeat only above the highest promise reported (a heartbeat may predate the loss)", () => {
    const { replica, nonce } = rejoiningReplica();
    replica.step(report(B, nonce, { promised: b(6, C), votedThrough: 20 }));
    replica.step(report(C, nonce, { promised: b(6, C) }));
    replica.step(heartbeat(C, b(6, C), 11));
    assert.equal(replica.rejoinFloorSlot, 0, "a heartbeat at the promise itself could be older than a vote");
    replica.step(heartbeat(B, b(7, B), 15));
    assert.equal(replica.rejoinFloorSlot, 21, "past the leader's 15 and the 20 B reported voted");
  });
});

describe("Which acceptors a rejoining replica waits for (rejoinReportsSuffice)", () => {
  const build = (weights: number[], spec: Parameters<typeof createQuorumSystem>[1]): QuorumSystem => {
    const result = createQuorumSystem(
      weights.map((weight, i) => ({ id: i + 1, weight })),
      spec,
    );
    assert.ok(result.ok, result.ok ? "" : result.error);
    return result.value;
  };

  it("majority of 3: both others; of 5: any 3 others; of 4: any 2 others", () => {
    const three = majorityOf(3);
    assert.ok(rejoinReportsSuffice(three, 1, [2, 3]));
    assert.ok(!rejoinReportsSuffice(three, 1, [2]));
    assert.ok(!rejoinReportsSuffice(three, 1, [1, 2]), "the node itself never counts");
    assert.ok(!rejoinReportsSuffice(three, 1, [2, 2]), "nor an acceptor twice");
    const five = majorityOf(5);
    assert.ok(rejoinReportsSuffice(five, 1, [2, 3, 4]));
    assert.ok(!rejoinReportsSuffice(five, 1, [2, 3]));
    // 4 acceptors: phase-1 quorums of 3 hold 2 others; any 2 of the 3 others meet them.
    const four = majorityOf(4);
    assert.ok(rejoinReportsSuffice(four, 1, [2, 3]));
    assert.ok(!rejoinReportsSuffice(four, 1, [2]));
  });

  it("weighted 3,2,2,1,1 (phase 1 needs 5 of 9): the others must weigh more than 4", () => {
    const q = build([3, 2, 2, 1, 1], { kind: "weighted" });
    assert.ok(rejoinReportsSuffice(q, 5, [1, 2]), "3 + 2 = 5 > 4");
    assert.ok(!rejoinReportsSuffice(q, 5, [2, 3]), "2 + 2 = 4: the quorum {1, 4, 5} less 5 is missed");
    assert.ok(!rejoinReportsSuffice(q, 1, [2, 4, 5]), "2 + 1 + 1 = 4");
    assert.ok(rejoinReportsSuffice(q, 1, [2, 3, 4]));
  });

  it("flexible: more than a phase-1 quorum when phase 1 is small, less when it is large", () => {
    // 6 acceptors, phase 1 needs 3, phase 2 needs 4: the others must weigh more than 3.
    const small = build([1, 1, 1, 1, 1, 1], { kind: "flexible", phase1Weight: 3, phase2Weight: 4 });
    assert.ok(small.isPhase1Quorum([2, 3, 4]));
    assert.ok(!rejoinReportsSuffice(small, 1, [2, 3, 4]), "{1, 5, 6} less 1 is missed");
    assert.ok(rejoinReportsSuffice(small, 1, [2, 3, 4, 5]));
    // Phase 1 needs 5, phase 2 needs 2: the others must weigh more than 1.
    const large = build([1, 1, 1, 1, 1, 1], { kind: "flexible", phase1Weight: 5, phase2Weight: 2 });
    assert.ok(rejoinReportsSuffice(large, 1, [2, 3]));
    assert.ok(!rejoinReportsSuffice(large, 1, [2]));
  });

  it("an acceptor that alone is a phase-1 quorum can never rejoin", () => {
    const q = build([5, 1, 1, 1], { kind: "weighted" }); // phase 1 needs 5 of 8
    assert.ok(!rejoinReportsSuffice(q, 1, [2, 3, 4]));
  });

  it("property: the set meets every phase-1 quorum less the node whenever it suffices", () => {
    // Exhaustive over small weighted systems: R suffices => R meets (Q less self) for every
    // phase-1 quorum Q that holds another acceptor; and a set one acceptor short of sufficing misses one.
    for (const weights of [
      [1, 1, 1],
      [2, 1, 1],
      [3, 2, 2, 1, 1],
      [1, 1, 1, 1, 1, 1],
    ]) {
      for (const spec of [
        { kind: "weighted" as const },
        {
          kind: "flexible" as const,
          phase1Weight: Math.ceil(sum(weights) / 2),
          phase2Weight: Math.floor(sum(weights) / 2) + 1,
        },
      ]) {
        const q = build(weights, spec);
        const ids = q.acceptors;
        for (const self of ids) {
          const others = ids.filter((id) => id !== self);
          for (const r of subsets(others)) {
            const suffices = rejoinReportsSuffice(q, self, r);
            const meetsAll = subsets(ids)
              .filter((quorum) => q.isPhase1Quorum(quorum))
              .every((quorum) => quorum.some((id) => id !== self && r.includes(id)));
            assert.equal(suffices, meetsAll, `${q.description} self ${self} R {${r.join(",")}}`);
          }
        }
      }
    }
  });
});

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function subsets<T>(items: readonly T[]): T[][] {
  const all: T[][] = [[]];
  for (const item of items) for (const s of [...all]) all.push([...s, item]);
  return all;
}
