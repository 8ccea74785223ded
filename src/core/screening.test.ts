/**
 * Hostile and stray input at the acceptor and the proposer (issue 9, section 1; docs/security.md,
 * "Validation in the core: acceptor and proposer"). Each rule: the message is refused, counted by
 * reason, and changes nothing, durable or in memory; and a legitimate peer still gets its work done.
 * The real roles are driven by hand.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Acceptor } from "./acceptor.js";
import { type Ballot, ballot, type NodeId, VouchedLevel, ZERO_BALLOT } from "./ballot.js";
import { DEFAULT_LIMITS } from "./limits.js";
import type { AcceptedEntry, Destination, Message, PromiseMessage, Value } from "./messages.js";
import { valuesEqual } from "./messages.js";
import type { Output } from "./output.js";
import { Prng } from "./prng.js";
import { Proposer } from "./proposer.js";
import { Replica } from "./replica.js";
import { cmd, majorityOf, val } from "./test-util.js";

const ROUND_MAX = DEFAULT_LIMITS.ballotRoundMax;
const JUMP = DEFAULT_LIMITS.ballotJumpRoundsMax;
const HORIZON = DEFAULT_LIMITS.windowSlots + DEFAULT_LIMITS.slotHorizonMarginSlots;
const X = val(cmd(9, 1, "x"));

function prepare(from: NodeId, b: Ballot, firstSlot = 1): Message {
  return { type: "prepare", from, ballot: b, firstSlot };
}

function accept(from: NodeId, b: Ballot, slot: number, value: Value = X): Message {
  return { type: "accept", from, ballot: b, slot, value };
}

function isEmpty(output: Output): boolean {
  return (
    output.persist === null &&
    output.send.length === 0 &&
    output.sendAfterPersist.length === 0 &&
    output.decided.length === 0
  );
}

/** An acceptor that has promised 5.1 and voted x in slot 1, with what it holds recorded. */
function votingAcceptor(options: { proposers?: number[]; electionTimeoutTicks?: number } = {}) {
  const acceptor = new Acceptor({ id: 1, ...options });
  acceptor.step(prepare(1, ballot(5, 1)));
  acceptor.step(accept(1, ballot(5, 1), 1));
  const before = { state: acceptor.state(), seen: acceptor.highestBallotSeen, slot: acceptor.highestSlot };
  const unchanged = () => {
    assert.deepEqual(acceptor.state(), before.state, "durable state unchanged");
    assert.deepEqual(acceptor.highestBallotSeen, before.seen, "ballots seen unchanged");
    assert.equal(acceptor.highestSlot, before.slot, "slots seen unchanged");
  };
  return { acceptor, unchanged };
}

describe("Acceptor: refused input (issue 9, section 1)", () => {
  it("a ballot above the ceiling (2^40), up to 2^53 - 1, is refused, counted, never stored", () => {
    const { acceptor, unchanged } = votingAcceptor();
    for (const round of [ROUND_MAX + 1, 2 ** 53 - 2, 2 ** 53 - 1]) {
      assert.ok(isEmpty(acceptor.step(prepare(1, ballot(round, 1)))));
      assert.ok(isEmpty(acceptor.step(accept(1, ballot(round, 1), 2))));
    }
    assert.equal(acceptor.refusals.of("ballot-above-ceiling"), 6);
    unchanged();
  });

  it("a ballot more than ballotJumpRoundsMax rounds above every round known is refused; one at the jump is taken", () => {
    const { acceptor, unchanged } = votingAcceptor();
    assert.ok(isEmpty(acceptor.step(prepare(2, ballot(5 + JUMP + 1, 2)))));
    assert.ok(isEmpty(acceptor.step(accept(2, ballot(5 + JUMP + 1, 2), 2))));
    assert.equal(acceptor.refusals.of("ballot-jump"), 2);
    unchanged();
    const out = acceptor.step(prepare(2, ballot(5 + JUMP, 2)));
    assert.deepEqual(out.persist, { promised: ballot(5 + JUMP, 2) });
    assert.equal(acceptor.refusals.total, 2);
  });

  it("a node that has seen nothing (a wiped disk) takes ballots up to the jump from round 0, and no further", () => {
    const acceptor = new Acceptor({ id: 1 });
    assert.ok(isEmpty(acceptor.step(prepare(1, ballot(JUMP + 1, 1)))));
    assert.equal(acceptor.refusals.of("ballot-jump"), 1);
    assert.deepEqual(acceptor.promised, ZERO_BALLOT);
    assert.equal(acceptor.step(prepare(1, ballot(JUMP, 1))).sendAfterPersist[0]?.message.type, "promise");
  });

  it("an accept beyond the slot horizon (known + window + margin) is refused; one at the horizon is voted", () => {
    const { acceptor, unchanged } = votingAcceptor();
    for (const slot of [1 + HORIZON + 1, 1e15, 2 ** 53 - 1])
      assert.ok(isEmpty(acceptor.step(accept(1, ballot(5, 1), slot))));
    assert.equal(acceptor.refusals.of("slot-beyond-horizon"), 3);
    unchanged();
    const out = acceptor.step(accept(1, ballot(5, 1), 1 + HORIZON));
    assert.equal(out.sendAfterPersist[0]?.message.type, "accepted");
    assert.equal(acceptor.voteFor(1 + HORIZON)?.ballot.round, 5);
  });

  it("a replica's acceptor measures its horizon from what its learner knows (a lagging replica votes again once caught up)", () => {
    let learnerKnows = 0;
    const acceptor = new Acceptor({ id: 1, knownSlot: () => learnerKnows });
    assert.ok(isEmpty(acceptor.step(accept(1, ballot(1, 1), 10_000))));
    assert.equal(acceptor.refusals.of("slot-beyond-horizon"), 1);
    learnerKnows = 9_990;
    assert.equal(
      acceptor.step(accept(1, ballot(1, 1), 10_000)).sendAfterPersist[0]?.message.type,
      "accepted",
    );
  });

  it("a prepare or accept from a proposer id outside the membership, or with another's ballot, is refused", () => {
    const { acceptor, unchanged } = votingAcceptor({ proposers: [1, 2] });
    assert.ok(isEmpty(acceptor.step(prepare(3, ballot(6, 3)))));
    assert.ok(isEmpty(acceptor.step(accept(3, ballot(6, 3), 2))));
    assert.equal(acceptor.refusals.of("not-a-proposer"), 2);
    assert.ok(isEmpty(acceptor.step(prepare(2, ballot(6, 1)))));
    assert.equal(acceptor.refusals.of("ballot-not-sender"), 1);
    unchanged();
    assert.equal(acceptor.step(prepare(2, ballot(6, 2))).sendAfterPersist[0]?.message.type, "promise");
  });

  it("the disruption guard: while the leader is heard, a higher prepare from another proposer gets a reject; after an election timeout of silence it is promised", () => {
    const { acceptor, unchanged } = votingAcceptor({ electionTimeoutTicks: 10 });
    for (let tick = 0; tick < 9; tick++) acceptor.tick();
    const refused = acceptor.step(prepare(2, ballot(6, 2)));
    assert.equal(refused.persist, null);
    assert.deepEqual(
      refused.sendAfterPersist.map((e) => e.message),
      [{ type: "reject", from: 1, ballot: ballot(6, 2), promised: ballot(5, 1), slot: 0 }],
      "answered with our promise, so the candidate backs off",
    );
    assert.equal(acceptor.refusals.of("leader-alive"), 1);
    unchanged();
    // The leader's own higher ballot is never held up by the guard... but first: it goes silent.
    acceptor.tick();
    assert.equal(acceptor.leaderAlive, false);
    assert.deepEqual(acceptor.step(prepare(2, ballot(6, 2))).persist, { promised: ballot(6, 2) });
  });

  it("the disruption guard holds while the leader is heard through heartbeats (noteLeader) or its own re-prepares", () => {
    const { acceptor } = votingAcceptor({ electionTimeoutTicks: 10 });
    for (let tick = 0; tick < 30; tick++) {
      acceptor.tick();
      if (tick % 3 === 0) acceptor.noteLeader(ballot(5, 1));
    }
    assert.equal(acceptor.leaderAlive, true);
    assert.equal(acceptor.step(prepare(2, ballot(6, 2))).persist, null);
    // The leader itself may run phase 1 again at a higher ballot.
    assert.deepEqual(acceptor.step(prepare(1, ballot(7, 1))).persist, { promised: ballot(7, 1) });
  });
});

// --- the proposer ----------------------------------------------------------------------------------

const quorum3 = majorityOf(3);

/** A proposer (id 1, proposers 1..3) run to candidate: its prepare is out at ballot `b`. */
function candidate(options: { restoreRound?: number } = {}): { proposer: Proposer; b: Ballot } {
  const proposer = new Proposer({
    id: 1,
    quorum: quorum3,
    prng: new Prng(1),
    proposers: [1, 2, 3],
    ...(options.restoreRound !== undefined ? { restore: { round: options.restoreRound } } : {}),
  });
  for (let tick = 0; tick < 1000 && proposer.mode !== "candidate"; tick++) proposer.tick();
  assert.equal(proposer.mode, "candidate");
  return { proposer, b: proposer.ballot };
}

function promise(
  from: NodeId,
  b: Ballot,
  accepted: AcceptedEntry[] = [],
  extra: Partial<PromiseMessage> = {},
) {
  return {
    type: "promise",
    from,
    ballot: b,
    firstSlot: 1,
    accepted,
    nextSlot: null,
    floorSlot: 0,
    ...extra,
  } as const;
}

describe("Proposer: refused input (issue 9, section 1)", () => {
  it("a promise with one vote beyond the horizon is refused whole: that acceptor does not count toward the quorum", () => {
    const { proposer, b } = candidate({ restoreRound: 4 });
    const far: AcceptedEntry = { slot: HORIZON + 100, ballot: ballot(1, 2), value: X };
    const near: AcceptedEntry = { slot: 1, ballot: ballot(1, 2), value: X };
    assert.ok(isEmpty(proposer.step(promise(2, b, [near, far]))));
    assert.equal(proposer.refusals.of("slot-beyond-horizon"), 1);
    assert.ok(isEmpty(proposer.step(promise(3, b, [], { floorSlot: 2 ** 53 - 1 }))));
    assert.ok(isEmpty(proposer.step(promise(3, b, [], { nextSlot: 1e15 }))));
    assert.equal(proposer.refusals.of("slot-beyond-horizon"), 3);
    assert.equal(proposer.mode, "candidate", "no quorum of taken promises yet");
    // Two whole, in-range promises make the quorum; the refused one's votes are not used.
    proposer.step(promise(1, b));
    const out = proposer.step(promise(3, b));
    assert.equal(proposer.mode, "leader");
    assert.equal(proposer.proposedThrough, 0, "nothing recovered from the refused promise");
    assert.ok(!out.send.some((e) => e.message.type === "accept"), "no slot filled up to the far vote");
  });

  it("a promise reporting a vote above its own ballot is inconsistent, and refused whole", () => {
    const { proposer, b } = candidate();
    const above: AcceptedEntry = { slot: 1, ballot: ballot(b.round + 1, 2), value: X };
    assert.ok(isEmpty(proposer.step(promise(2, b, [above]))));
    assert.equal(proposer.refusals.of("promise-inconsistent"), 1);
    assert.deepEqual(proposer.highestBallotSeen, b);
  });

  it("promises, votes and rejects from ids that are not acceptors are refused", () => {
    const { proposer, b } = candidate();
    assert.ok(isEmpty(proposer.step(promise(7, b))));
    assert.ok(isEmpty(proposer.step({ type: "accepted", from: 7, ballot: b, slot: 1, value: null })));
    assert.ok(
      isEmpty(
        proposer.step({ type: "reject", from: 7, ballot: b, promised: ballot(b.round + 1, 2), slot: 0 }),
      ),
    );
    assert.equal(proposer.refusals.of("not-an-acceptor"), 3);
    assert.equal(proposer.mode, "candidate", "the forged reject did not preempt us");
  });

  it("a reject or heartbeat with a ballot above the ceiling is refused; the proposer never reaches an assertion", () => {
    const { proposer, b } = candidate();
    const huge = ballot(2 ** 53 - 1, 2);
    assert.ok(isEmpty(proposer.step({ type: "reject", from: 2, ballot: b, promised: huge, slot: 0 })));
    assert.ok(
      isEmpty(
        proposer.step({ type: "heartbeat", from: 2, ballot: huge, decidedThrough: 0, proposedThrough: 0 }),
      ),
    );
    assert.equal(proposer.refusals.of("ballot-above-ceiling"), 2);
    assert.equal(proposer.mode, "candidate");
    assert.deepEqual(proposer.highestBallotSeen, b);
    // Elections go on at ordinary rounds.
    proposer.step(promise(1, b));
    proposer.step(promise(2, b));
    assert.equal(proposer.mode, "leader");
    assert.equal(proposer.ballot.round, b.round);
  });

  it("a heartbeat beyond the slot horizon, from a non-proposer, or with another's ballot is refused and changes nothing", () => {
    const proposer = new Proposer({ id: 1, quorum: quorum3, prng: new Prng(1), proposers: [1, 2, 3] });
    const hb = (from: NodeId, b: Ballot, decidedThrough: number, proposedThrough = 0): Message => ({
      type: "heartbeat",
      from,
      ballot: b,
      decidedThrough,
      proposedThrough,
    });
    assert.ok(isEmpty(proposer.step(hb(2, ballot(1, 2), 1e15))));
    assert.ok(isEmpty(proposer.step(hb(2, ballot(1, 2), 0, HORIZON + 1))));
    assert.equal(proposer.refusals.of("slot-beyond-horizon"), 2);
    assert.ok(isEmpty(proposer.step(hb(4, ballot(1, 4), 0))));
    assert.equal(proposer.refusals.of("not-a-proposer"), 1);
    assert.ok(isEmpty(proposer.step(hb(2, ballot(1, 3), 0))));
    assert.equal(proposer.refusals.of("ballot-not-sender"), 1);
    assert.equal(proposer.learner.knownDecidedThrough, 0);
    assert.deepEqual(proposer.followedBallot, ZERO_BALLOT);
    assert.deepEqual(proposer.highestBallotSeen, ZERO_BALLOT);
    // An in-range heartbeat is followed.
    proposer.step(hb(2, ballot(1, 2), HORIZON));
    assert.deepEqual(proposer.followedBallot, ballot(1, 2));
    // The learner takes a heartbeat's decidedThrough only up to its own horizon (it catches up in steps).
    assert.equal(proposer.learner.knownDecidedThrough, Math.min(HORIZON, proposer.learner.horizonSlot));
  });

  it("a proposer far behind learns the level from a quorum of acceptors' votes, never from one alone", () => {
    const proposer = new Proposer({ id: 1, quorum: quorum3, prng: new Prng(1), proposers: [1, 2, 3] });
    const far = 1_000_000;
    const vote = (from: NodeId, slot: number): Message => ({
      type: "accepted",
      from,
      ballot: ballot(JUMP * 3, 2),
      slot,
      value: null,
    });
    const hb: Message = {
      type: "heartbeat",
      from: 2,
      ballot: ballot(JUMP * 3, 2),
      decidedThrough: far,
      proposedThrough: far,
    };
    proposer.step(vote(2, far));
    assert.ok(isEmpty(proposer.step(hb)), "one acceptor's claim moves nothing");
    assert.equal(proposer.refusals.of("ballot-jump"), 2);
    proposer.step(vote(3, far));
    assert.equal(proposer.vouchedSlot.level, far);
    assert.equal(proposer.vouchedRound.level, JUMP * 3);
    proposer.step(hb);
    assert.equal(
      proposer.learner.knownDecidedThrough,
      proposer.learner.horizonSlot,
      "now the leader's heartbeat is taken (up to the learner's horizon: it catches up in steps)",
    );
    assert.deepEqual(proposer.followedBallot, ballot(JUMP * 3, 2));
  });

  it("a proposer out of rounds does not campaign: counted, never an assertion", () => {
    const proposer = new Proposer({
      id: 1,
      quorum: quorum3,
      prng: new Prng(1),
      restore: { round: ROUND_MAX },
    });
    for (let tick = 0; tick < 500; tick++) {
      const out = proposer.tick();
      assert.ok(!out.sendAfterPersist.some((e) => e.message.type === "prepare"));
    }
    assert.equal(proposer.mode, "follower");
    assert.ok(proposer.refusals.of("ballot-rounds-exhausted") >= 1);
    assert.equal(proposer.state().round, ROUND_MAX, "the durable round is not raised past the ceiling");
  });

  it("VouchedLevel: the highest level a quorum claims, whatever one member claims", () => {
    const level = new VouchedLevel(majorityOf(5));
    level.claim(1, 2 ** 53 - 1);
    level.claim(9, 1000); // not an acceptor
    assert.equal(level.level, 0);
    level.claim(2, 50);
    level.claim(3, 40);
    assert.equal(level.level, 40);
    level.claim(3, 30); // claims only rise
    level.claim(4, 60);
    assert.equal(level.level, 50);
  });
});

// --- replicas --------------------------------------------------------------------------------------

interface Queued {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly message: Message;
}

/** Three replicas wired by hand; `cut` nodes lose every message to and from them. */
class Net {
  readonly replicas = new Map<NodeId, Replica>();
  readonly delivered = new Map<NodeId, Value[]>();
  readonly cut = new Set<NodeId>();
  readonly down = new Set<NodeId>();
  /** One-way cuts: messages from `from` to `to` are lost. */
  readonly lost: { from: NodeId; to: NodeId }[] = [];
  private queue: Queued[] = [];

  constructor(
    ids: readonly NodeId[],
    readonly limits: Partial<typeof DEFAULT_LIMITS> = {},
  ) {
    const quorum = majorityOf(ids.length);
    for (const id of ids) {
      this.replicas.set(
        id,
        new Replica({ id, quorum, prng: new Prng(id), catchupTicks: 4, proposers: ids, limits }),
      );
      this.delivered.set(id, []);
    }
  }

  replica(id: NodeId): Replica {
    return this.replicas.get(id) as Replica;
  }

  private targets(to: Destination): NodeId[] {
    if (to.role === "client") return [];
    const ids = [...this.replicas.keys()];
    return to.id === undefined ? ids : ids.filter((id) => id === to.id);
  }

  absorb(id: NodeId, output: Output): void {
    for (const d of output.decided) (this.delivered.get(id) as Value[]).push(d.value);
    for (const e of [...output.send, ...output.sendAfterPersist])
      for (const to of this.targets(e.to)) this.queue.push({ from: id, to, message: e.message });
  }

  private blocked(q: Queued): boolean {
    if (q.from === q.to) return this.down.has(q.to);
    if (this.down.has(q.to) || this.down.has(q.from) || this.cut.has(q.to) || this.cut.has(q.from))
      return true;
    return this.lost.some((l) => l.from === q.from && l.to === q.to);
  }

  run(): void {
    for (let steps = 0; this.queue.length > 0; steps++) {
      assert.ok(steps < 1_000_000, "the network never went quiet");
      const q = this.queue.shift() as Queued;
      if (this.blocked(q)) continue;
      this.absorb(q.to, this.replica(q.to).step(q.message));
    }
  }

  inject(to: NodeId, message: Message): void {
    this.absorb(to, this.replica(to).step(message));
    this.run();
  }

  tick(): void {
    for (const [id, replica] of this.replicas) if (!this.down.has(id)) this.absorb(id, replica.tick());
    this.run();
  }

  tickUntil(done: () => boolean, what: string, ticksMax = 3000): number {
    for (let tick = 0; tick < ticksMax; tick++) {
      if (done()) return tick;
      this.tick();
    }
    assert.fail(`not within ${ticksMax} ticks: ${what}`);
  }

  leader(): NodeId | null {
    for (const [id, r] of this.replicas) if (!this.down.has(id) && r.mode === "leader") return id;
    return null;
  }

  /** Replaces `id` with an incarnation that lost its whole state and rejoins. */
  wipe(id: NodeId): Replica {
    const ids = [...this.replicas.keys()];
    const replica = new Replica({
      id,
      quorum: majorityOf(ids.length),
      prng: new Prng(100 + id),
      catchupTicks: 4,
      proposers: ids,
      limits: this.limits,
      rejoining: true,
    });
    this.replicas.set(id, replica);
    this.queue = this.queue.filter((q) => q.to !== id);
    return replica;
  }

  submit(id: NodeId, client: number, seq: number): void {
    this.absorb(id, this.replica(id).submit([cmd(client, seq, `v${client}.${seq}`)]));
    this.run();
  }
}

describe("Replicas: legitimate peers still get their work done (issue 9, section 1)", () => {
  it("a replica that fell beyond the slot horizon catches up, and its acceptor votes again", () => {
    // A small window and margin, so that falling behind the horizon takes few slots.
    const net = new Net([1, 2, 3], { windowSlots: 4, slotHorizonMarginSlots: 8, batchCommandsMax: 1 });
    net.tickUntil(() => net.leader() !== null, "a leader");
    const leader = net.leader() as NodeId;
    const lagging = ([1, 2, 3] as NodeId[]).find((id) => id !== leader) as NodeId;
    net.cut.add(lagging);
    for (let seq = 1; seq <= 60; seq++) {
      net.submit(leader, 7, seq);
      net.tick();
    }
    net.tickUntil(() => net.replica(leader).learner.deliveredThrough >= 60, "60 slots decided");
    assert.ok(net.replica(lagging).learner.deliveredThrough < 5);
    net.cut.delete(lagging);
    // Cut off, it campaigned in vain; on its return its acceptor's promise may make the leader run
    // phase 1 again (one leader change, as without pre-vote). Whoever leads, it catches up.
    const current = () => net.leader() ?? leader;
    net.tickUntil(() => net.leader() !== null, "a leader after the heal");
    net.tickUntil(
      () => net.replica(lagging).learner.deliveredThrough >= net.replica(current()).learner.deliveredThrough,
      "the lagging replica catches up",
    );
    assert.ok(net.replica(lagging).learner.deliveredThrough >= 60);
    assert.ok(
      net.replica(lagging).refusals.of("slot-beyond-horizon") > 0,
      "it did refuse far slots at first",
    );
    // Its acceptor votes in the next slot.
    const next = net.replica(current()).learner.deliveredThrough + 1;
    net.submit(current(), 7, 61);
    net.tickUntil(
      () => net.replica(current()).learner.deliveredThrough >= next,
      "the next slot decided",
      200,
    );
    const acceptor = net.replica(lagging).acceptor as Acceptor;
    assert.ok(acceptor.voteFor(next) !== undefined, "the lagging replica's acceptor voted again");
    const mine = net.delivered.get(current()) as Value[];
    const theirs = net.delivered.get(lagging) as Value[];
    for (let i = 0; i < Math.min(mine.length, theirs.length); i++)
      assert.ok(valuesEqual(mine[i] as Value, theirs[i] as Value));
  });

  it("a wiped replica rejoins a cluster far past its horizon: it learns the level from a quorum, catches up, votes again", () => {
    const net = new Net([1, 2, 3], { windowSlots: 4, slotHorizonMarginSlots: 8, batchCommandsMax: 1 });
    net.tickUntil(() => net.leader() !== null, "a leader");
    const leader = net.leader() as NodeId;
    for (let seq = 1; seq <= 60; seq++) {
      net.submit(leader, 7, seq);
      net.tick();
    }
    net.tickUntil(() => net.replica(leader).learner.deliveredThrough >= 60, "60 slots decided");
    const wiped = ([1, 2, 3] as NodeId[]).find((id) => id !== leader) as NodeId;
    const fresh = net.wipe(wiped);
    // Keep the cluster busy, as a rejoin needs fresh slots decided past its floor.
    for (let seq = 61; seq <= 120 && fresh.rejoining; seq++) {
      net.submit(net.leader() ?? leader, 7, seq);
      for (let tick = 0; tick < 5; tick++) net.tick();
    }
    net.tickUntil(() => !fresh.rejoining, "the wiped replica rejoins");
    assert.ok(fresh.refusals.of("slot-beyond-horizon") > 0, "it refused far slots at first");
    assert.ok(fresh.proposer.vouchedSlot.level >= 60, "it learned how far the cluster got from a quorum");
    const current = net.leader() as NodeId;
    const next = net.replica(current).learner.deliveredThrough + 1;
    net.submit(current, 8, 1);
    net.tickUntil(() => net.replica(current).learner.deliveredThrough >= next, "the next slot decided", 300);
    assert.ok(fresh.acceptor?.voteFor(next) !== undefined, "the rejoined acceptor votes again");
  });

  it("with the disruption guard, a prepare flood from a member does not stop decisions; when the leader dies another takes over", () => {
    const net = new Net([1, 2, 3]);
    net.tickUntil(() => net.leader() !== null, "a leader");
    const leader = net.leader() as NodeId;
    const other = ([1, 2, 3] as NodeId[]).find((id) => id !== leader) as NodeId;
    const leaderBallot = net.replica(leader).proposer.ballot;
    // A member floods prepares with rising ballots (5 a tick), as a disruptive or cut-off node would.
    let round = leaderBallot.round;
    for (let tick = 0; tick < 50; tick++) {
      for (let i = 0; i < 5; i++) {
        round++;
        for (const id of [1, 2, 3] as NodeId[])
          net.inject(id, { type: "prepare", from: other, ballot: ballot(round, other), firstSlot: 1 });
      }
      net.tick();
    }
    assert.equal(net.leader(), leader, "the leader kept its place");
    assert.deepEqual(net.replica(leader).proposer.ballot, leaderBallot);
    assert.ok(net.replica(leader).refusals.of("leader-alive") > 0);
    net.submit(leader, 7, 1);
    net.tickUntil(() => (net.delivered.get(leader) as Value[]).some((v) => v.commands.length > 0), "decided");
    // The leader dies: within a few election timeouts another leads and decides.
    net.down.add(leader);
    const ticks = net.tickUntil(() => net.leader() !== null, "a new leader", 1000);
    const next = net.leader() as NodeId;
    assert.notEqual(next, leader);
    assert.ok(ticks < 200, `new leader in ${ticks} ticks`);
    net.submit(next, 7, 2);
    net.tickUntil(
      () => (net.delivered.get(next) as Value[]).filter((v) => v.commands.length > 0).length >= 2,
      "decided again",
    );
  });

  it("check-quorum: a deaf leader (it sends, hears nobody) steps down, and the others elect a leader", () => {
    const net = new Net([1, 2, 3]);
    net.tickUntil(() => net.leader() !== null, "a leader");
    const deaf = net.leader() as NodeId;
    for (const id of [1, 2, 3] as NodeId[]) if (id !== deaf) net.lost.push({ from: id, to: deaf });
    net.tickUntil(() => net.replica(deaf).mode !== "leader", "the deaf leader steps down", 200);
    assert.ok(net.replica(deaf).proposer.checkQuorumStepDowns >= 1);
    net.tickUntil(() => net.leader() !== null && net.leader() !== deaf, "another leader", 1000);
    const next = net.leader() as NodeId;
    net.submit(next, 7, 1);
    net.tickUntil(() => (net.delivered.get(next) as Value[]).some((v) => v.commands.length > 0), "decided");
  });

  it("an idle leader that its acceptors answer keeps leading (check-quorum probes)", () => {
    const net = new Net([1, 2, 3]);
    net.tickUntil(() => net.leader() !== null, "a leader");
    const leader = net.leader() as NodeId;
    const b = net.replica(leader).proposer.ballot;
    for (let tick = 0; tick < 500; tick++) net.tick();
    assert.equal(net.leader(), leader);
    assert.deepEqual(net.replica(leader).proposer.ballot, b);
    assert.equal(net.replica(leader).proposer.checkQuorumStepDowns, 0);
  });

  it("a rejoin report with an out-of-range ballot or slot is refused whole and not counted toward the rejoin", () => {
    const quorum = majorityOf(3);
    const replica = new Replica({ id: 1, quorum, prng: new Prng(1), rejoining: true, proposers: [1, 2, 3] });
    // Its query carries the nonce to answer with.
    let nonce = -1;
    for (let tick = 0; tick < 20 && nonce < 0; tick++)
      for (const e of replica.tick().send) if (e.message.type === "rejoin-query") nonce = e.message.nonce;
    assert.ok(nonce >= 0);
    const report = (from: NodeId, promised: Ballot, votedThrough: number): Message => ({
      type: "rejoin-report",
      from,
      nonce,
      voting: true,
      promised,
      votedThrough,
      decidedThrough: votedThrough,
      leaderBallot: ZERO_BALLOT,
      proposedThrough: 0,
    });
    replica.step(report(2, ballot(2 ** 53 - 1, 2), 1));
    replica.step(report(3, ballot(1, 3), 1e15));
    replica.step(report(4, ballot(1, 3), 1));
    assert.equal(replica.refusals.of("ballot-above-ceiling"), 1);
    assert.equal(replica.refusals.of("slot-beyond-horizon"), 1);
    assert.equal(replica.refusals.of("not-a-proposer"), 1);
    assert.equal(replica.rejoinReports, 0);
    replica.step(report(2, ballot(1, 3), 1));
    assert.equal(replica.rejoinReports, 1);
  });

  it("a rejoin query from a non-member gets no report", () => {
    const replica = new Replica({ id: 1, quorum: majorityOf(3), prng: new Prng(1), proposers: [1, 2, 3] });
    const zero = { round: 0, node: 0 };
    assert.ok(isEmpty(replica.step({ type: "rejoin-query", from: 4, nonce: 7, promised: zero })));
    assert.equal(replica.refusals.of("not-a-proposer"), 1);
    const out = replica.step({ type: "rejoin-query", from: 2, nonce: 7, promised: zero });
    assert.equal(out.send[0]?.message.type, "rejoin-report");
  });

  it("a rejoin query's P* past the ballot ceiling is refused, and the leader keeps leading", () => {
    const replica = new Replica({ id: 1, quorum: majorityOf(3), prng: new Prng(1), proposers: [1, 2, 3] });
    const out = replica.step({
      type: "rejoin-query",
      from: 2,
      nonce: 7,
      promised: { round: 2 ** 53 - 1, node: 3 },
    });
    assert.equal(replica.refusals.of("ballot-above-ceiling"), 1);
    assert.equal(out.send[0]?.message.type, "rejoin-report", "the report is still sent");
    assert.equal(replica.proposer.highestBallotSeen.round, 0, "the ballot is not taken");
  });
});
