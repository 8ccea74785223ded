import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Ballot, ballot } from "./ballot.js";
import { Learner, type LearnerOptions } from "./learner.js";
import { DEFAULT_LIMITS } from "./limits.js";
import type {
  AcceptedMessage,
  CatchupMessage,
  DecideMessage,
  Decision,
  Envelope,
  Message,
  SlotValue,
  Value,
} from "./messages.js";
import { NOOP } from "./messages.js";
import type { Output } from "./output.js";
import { cmd, majorityOf, val } from "./test-util.js";

const QUORUM = majorityOf(3);

/** A vote; `null` leaves the value out (the receiver knows the proposal). */
const vote = (from: number, slot: number, b: Ballot, value: Value | null): AcceptedMessage => ({
  type: "accepted",
  from,
  ballot: b,
  slot,
  value,
});

const decide = (entries: SlotValue[], from = 99): DecideMessage => ({ type: "decide", from, entries });

function newLearner(options: Partial<LearnerOptions> = {}): Learner {
  return new Learner({ id: 1, quorum: QUORUM, ...options });
}

/**
 * Makes `entries` known chosen, as the learner's own proposer would tell it (`learn`): setup for
 * tests about what follows. (A `decide` is taken only in answer to a request: see "unrequested".)
 */
function given(learner: Learner, entries: readonly SlotValue[]): Decision[] {
  return entries.flatMap((entry) => learner.learn(entry.slot, entry.value).decided);
}

/** Steps every message and returns everything decided, in order. */
function feed(learner: Learner, messages: readonly Message[]): Decision[] {
  const decided: Decision[] = [];
  for (const message of messages) decided.push(...learner.step(message).decided);
  return decided;
}

function catchups(output: Output): { to: Envelope["to"]; message: CatchupMessage }[] {
  return output.send.flatMap((e) => (e.message.type === "catchup" ? [{ to: e.to, message: e.message }] : []));
}

/** Ticks `count` times, collecting what was sent. */
function tickCollect(learner: Learner, count: number): { tick: number; envelope: Envelope }[] {
  const sent: { tick: number; envelope: Envelope }[] = [];
  for (let tick = 1; tick <= count; tick++)
    for (const envelope of learner.tick().send) sent.push({ tick, envelope });
  return sent;
}

describe("Learner: learning a chosen value (Paxos Made Simple 2.3)", () => {
  const X = val(cmd(7, 1, "x"));
  const Y = val(cmd(7, 1, "y"));

  it("a value is chosen only when a phase-2 quorum of distinct acceptors accepted it", () => {
    const learner = newLearner();
    assert.deepEqual(feed(learner, [vote(1, 1, ballot(1, 1), X)]), []);
    assert.deepEqual(
      feed(learner, [vote(1, 1, ballot(1, 1), X), vote(1, 1, ballot(1, 1), X)]),
      [],
      "the same acceptor's vote, duplicated, does not make a quorum",
    );
    assert.equal(learner.chosenValue(1), undefined);
    const decided = feed(learner, [vote(2, 1, ballot(1, 1), X)]);
    assert.deepEqual(decided, [{ slot: 1, value: X, commands: X.commands }]);
    assert.deepEqual(learner.chosenValue(1), X);
    assert.equal(learner.deliveredThrough, 1);
  });

  it("(control) the deliberate countMessages bug is what the distinct-acceptor rule prevents", () => {
    const buggy = newLearner({ bugs: { countMessages: true } });
    const decided = feed(buggy, [vote(1, 1, ballot(1, 1), X), vote(1, 1, ballot(1, 1), X)]);
    assert.equal(decided.length, 1, "with the bug, one acceptor's duplicated vote fakes a quorum");
  });

  it("votes at different ballots are never added together, even for the same value", () => {
    const learner = newLearner();
    assert.deepEqual(feed(learner, [vote(1, 1, ballot(1, 1), X), vote(2, 1, ballot(2, 2), X)]), []);
    assert.equal(learner.chosenValue(1), undefined);
    const decided = feed(learner, [vote(3, 1, ballot(2, 2), X)]);
    assert.equal(decided.length, 1, "acceptors 2 and 3 at ballot 2.2 are a quorum");
  });

  it("votes from non-acceptors are ignored", () => {
    const learner = newLearner();
    assert.deepEqual(feed(learner, [vote(1, 1, ballot(1, 1), X), vote(4, 1, ballot(1, 1), X)]), []);
  });

  it("a conflicting value at one (slot, ballot) is counted as a conflict and never tallied", () => {
    const learner = newLearner();
    feed(learner, [vote(1, 1, ballot(1, 1), X), vote(2, 1, ballot(1, 1), Y)]);
    assert.equal(learner.conflictingVotes, 1);
    assert.equal(learner.chosenValue(1), undefined);
    assert.deepEqual(feed(learner, [vote(3, 1, ballot(1, 1), X)])[0]?.value, X);
  });

  it("votes for a slot already chosen are ignored", () => {
    const learner = newLearner();
    feed(learner, [vote(1, 1, ballot(1, 1), X), vote(2, 1, ballot(1, 1), X)]);
    assert.deepEqual(
      feed(learner, [vote(3, 1, ballot(1, 1), X), vote(1, 1, ballot(2, 2), Y), vote(2, 1, ballot(2, 2), Y)]),
      [],
    );
    assert.deepEqual(learner.chosenValue(1), X);
  });

  it("votes that leave the value out count for the proposal the learner was told of, in either order", () => {
    const blind = (from: number, b = ballot(1, 1)) => vote(from, 1, b, null);
    const told = newLearner();
    told.step({ type: "accept", from: 1, ballot: ballot(1, 1), slot: 1, value: X }); // the leader's copy
    assert.deepEqual(feed(told, [blind(1)]), []);
    assert.deepEqual(feed(told, [blind(2)])[0]?.value, X);

    const late = newLearner();
    assert.deepEqual(feed(late, [blind(1), blind(2)]), [], "a quorum, but of what?");
    assert.equal(late.knownDecidedThrough, 1, "the slot is known chosen: a hole");
    assert.deepEqual(late.knowProposal(1, ballot(1, 1), X).decided[0]?.value, X);

    const otherBallot = newLearner();
    otherBallot.knowProposal(1, ballot(2, 2), Y);
    feed(otherBallot, [blind(1), blind(2)]);
    assert.equal(otherBallot.chosenValue(1), undefined, "a proposal at 2.2 says nothing of votes at 1.1");
  });

  it("a chosen slot whose value never arrived is asked for with catch-up, and filled by decide", () => {
    const learner = newLearner({ catchupTicks: 3 });
    const blind = (from: number) => vote(from, 1, ballot(1, 1), null);
    feed(learner, [blind(1), blind(3)]);
    const asked = tickCollect(learner, 3).map((s) => s.envelope.message);
    assert.ok(asked.length > 0);
    for (const message of asked)
      assert.deepEqual(message, { type: "catchup", from: 1, role: "learner", fromSlot: 1, toSlot: 1 });
    assert.deepEqual(feed(learner, [decide([{ slot: 1, value: X }])])[0]?.value, X);
  });

  it("a decide contradicting a delivered slot is refused and counted, never an assertion", () => {
    const learner = newLearner({ catchupTicks: 1 });
    learner.noteDecidedThrough(1);
    learner.tick(); // asks for slot 1
    learner.step(decide([{ slot: 1, value: X }]));
    assert.deepEqual(learner.chosenValue(1), X);
    learner.noteDecidedThrough(2);
    learner.tick(); // asks for slot 2 (slot 1 is delivered)
    learner.step(decide([{ slot: 1, value: Y }])); // unrequested now, and contradicting
    assert.equal(learner.refusals.of("decide-conflict"), 1);
    assert.deepEqual(learner.chosenValue(1), X, "the delivered value stands");
    const votes = [vote(1, 2, ballot(1, 1), Y), vote(2, 2, ballot(1, 1), Y)];
    learner.learn(2, X);
    assert.doesNotThrow(() => feed(learner, votes));
    assert.deepEqual(learner.chosenValue(2), X);
    learner.step(decide([{ slot: 1, value: X }])); // the same value again is fine
    assert.equal(learner.refusals.of("decide-conflict"), 1);
  });

  it("delivers in slot order with no gaps: slot 2 chosen before slot 1 waits for it", () => {
    const learner = newLearner();
    const A = val(cmd(1, 1));
    const B = val(cmd(1, 2));
    const C = val(cmd(1, 3));
    assert.deepEqual(feed(learner, [vote(1, 2, ballot(1, 1), B), vote(2, 2, ballot(1, 1), B)]), []);
    assert.deepEqual(learner.chosenValue(2), B, "known chosen");
    assert.equal(learner.deliveredThrough, 0, "but not delivered");
    assert.deepEqual(given(learner, [{ slot: 3, value: C }]), []);
    const decided = feed(learner, [vote(2, 1, ballot(1, 1), A), vote(3, 1, ballot(1, 1), A)]);
    assert.deepEqual(
      decided.map((d) => d.slot),
      [1, 2, 3],
    );
    assert.deepEqual(
      decided.map((d) => d.value),
      [A, B, C],
    );
    assert.deepEqual(
      learner.drainChosen().map((s) => s.slot),
      [2, 3, 1],
      "drainChosen lists slots in the order they were learned",
    );
    assert.deepEqual(learner.drainChosen(), []);
  });

  it("a (client, seq) chosen in two slots is delivered once: Decision.commands is filtered, Decision.value intact", () => {
    const learner = newLearner();
    const first = val(cmd(1, 1), cmd(1, 2));
    const second = val(cmd(1, 2), cmd(2, 1), cmd(1, 1, "same seq, other payload"));
    const decided = given(learner, [
      { slot: 1, value: first },
      { slot: 2, value: second },
      { slot: 3, value: NOOP },
    ]);
    assert.deepEqual(decided, [
      { slot: 1, value: first, commands: first.commands },
      { slot: 2, value: second, commands: [cmd(2, 1)] },
      { slot: 3, value: NOOP, commands: [] },
    ]);
    assert.ok(learner.isDelivered(cmd(1, 2)));
    assert.ok(!learner.isDelivered(cmd(2, 2)));
  });
});

describe("Learner: holes and catch-up", () => {
  const A = val(cmd(1, 1));
  const B = val(cmd(1, 2));
  const C = val(cmd(1, 3));

  it("a hole below a chosen slot is asked for after catchupTicks ticks, and again while unanswered", () => {
    const learner = newLearner({ catchupTicks: 5 });
    feed(learner, [vote(1, 2, ballot(1, 1), B), vote(2, 2, ballot(1, 1), B)]);
    const sent = tickCollect(learner, 10);
    assert.deepEqual(
      sent.map((s) => s.tick),
      [5, 5, 10, 10],
      "one catch-up per asked role on tick 5, and again on tick 10",
    );
    for (const { envelope } of sent) {
      assert.deepEqual(envelope.message, {
        type: "catchup",
        from: 1,
        role: "learner",
        fromSlot: 1,
        toSlot: 2,
      });
    }
    assert.deepEqual(
      sent.slice(0, 2).map((s) => s.envelope.to),
      [{ role: "learner" }, { role: "proposer" }],
    );
  });

  it("asks only the configured roles, as the configured role", () => {
    const learner = new Learner({
      id: 3,
      quorum: QUORUM,
      catchupTicks: 1,
      catchupFrom: ["learner"],
      role: "proposer",
    });
    given(learner, [{ slot: 2, value: B }]);
    const sent = tickCollect(learner, 1);
    assert.deepEqual(sent, [
      {
        tick: 1,
        envelope: {
          to: { role: "learner" },
          message: { type: "catchup", from: 3, role: "proposer", fromSlot: 1, toSlot: 2 },
        },
      },
    ]);
  });

  it("an up-to-date learner never asks", () => {
    const learner = newLearner({ catchupTicks: 2 });
    given(learner, [{ slot: 1, value: A }]);
    learner.step({ type: "heartbeat", from: 1, ballot: ballot(1, 1), decidedThrough: 1, proposedThrough: 0 });
    assert.deepEqual(tickCollect(learner, 20), []);
  });

  it("a missing LAST value is noticed through the heartbeat's decidedThrough and asked for", () => {
    const catchupTicks = 4;
    const learner = newLearner({ catchupTicks });
    given(learner, [
      { slot: 1, value: A },
      { slot: 2, value: B },
    ]);
    // Nothing below a chosen slot is missing, so only the heartbeat can reveal slot 3.
    assert.deepEqual(tickCollect(learner, 10), []);
    const onHeartbeat = learner.step({
      type: "heartbeat",
      from: 2,
      ballot: ballot(1, 2),
      decidedThrough: 3,
      proposedThrough: 0,
    });
    const asked = [
      ...catchups(onHeartbeat).map((c) => c.message),
      ...tickCollect(learner, catchupTicks).flatMap((s) =>
        s.envelope.message.type === "catchup" ? [s.envelope.message] : [],
      ),
    ];
    assert.ok(asked.length > 0, "slot 3 must be asked for within catchupTicks ticks of the heartbeat");
    for (const message of asked) assert.deepEqual([message.fromSlot, message.toSlot], [3, 3]);
    // Unanswered, it is asked for again after catchupTicks more ticks.
    const again = tickCollect(learner, catchupTicks);
    assert.ok(again.length > 0, "an unanswered request is repeated");
    assert.deepEqual(
      feed(learner, [decide([{ slot: 3, value: C }])]).map((d) => d.slot),
      [3],
    );
    assert.deepEqual(tickCollect(learner, 20), [], "once delivered, no more requests");
  });

  it("answers a catch-up request with one decide message, to the asker's role and id", () => {
    const learner = newLearner({ limits: { entriesPerMessageMax: 2 } });
    const values = [1, 2, 3, 4, 5].map((seq) => val(cmd(1, seq)));
    given(
      learner,
      values.map((value, i) => ({ slot: i + 1, value })),
    );
    const request: CatchupMessage = { type: "catchup", from: 7, role: "proposer", fromSlot: 1, toSlot: 9 };
    const out = learner.step(request);
    assert.deepEqual(out.sendAfterPersist, [], "decided values depend on nothing unsynced");
    assert.deepEqual(
      out.send.map((e) => e.to),
      [{ role: "proposer", id: 7 }],
    );
    assert.deepEqual(
      out.send.map((e) => (e.message as DecideMessage).entries.map((entry) => entry.slot)),
      [[1, 2]],
      "one message: the asker asks again from slot 3",
    );
    const rest = learner.step({ ...request, fromSlot: 3 });
    assert.deepEqual(
      rest.send.map((e) => (e.message as DecideMessage).entries.map((entry) => entry.slot)),
      [[3, 4]],
    );
    const firstPage = out.send[0]?.message as DecideMessage | undefined;
    assert.deepEqual(firstPage?.entries[1]?.value, values[1]);
  });

  it("answers with chosen-but-undelivered slots too, and bounds a request by catchupSlotsMax", () => {
    const learner = newLearner({ limits: { catchupSlotsMax: 3 } });
    given(learner, [
      { slot: 2, value: B },
      { slot: 3, value: C },
      { slot: 5, value: A },
    ]);
    const out = learner.step({ type: "catchup", from: 2, role: "learner", fromSlot: 1, toSlot: 100 });
    assert.deepEqual(
      out.send.flatMap((e) => (e.message as DecideMessage).entries.map((entry) => entry.slot)),
      [2, 3],
      "slots 1..3 asked at most; slot 1 unknown",
    );
  });

  it("ignores its own catch-up request", () => {
    const learner = newLearner();
    given(learner, [{ slot: 1, value: A }]);
    assert.deepEqual(
      learner.step({ type: "catchup", from: 1, role: "learner", fromSlot: 1, toSlot: 1 }).send,
      [],
    );
    assert.equal(
      learner.step({ type: "catchup", from: 1, role: "proposer", fromSlot: 1, toSlot: 1 }).send.length,
      1,
    );
  });

  it("a learner that starts late learns slots 1..N from decide messages, range by range", () => {
    const N = 10;
    const veteran = newLearner({ limits: { entriesPerMessageMax: 3 } });
    const log = Array.from({ length: N }, (_, i) => val(cmd(5, i + 1)));
    given(
      veteran,
      log.map((value, i) => ({ slot: i + 1, value })),
    );

    const late = new Learner({ id: 2, quorum: QUORUM, catchupTicks: 3, limits: { catchupSlotsMax: 4 } });
    const delivered: Decision[] = [];
    const requests: [number, number][] = [];
    // The late learner hears a heartbeat, then talks to the veteran until it has caught up.
    let outbox: Envelope[] = [
      ...late.step({
        type: "heartbeat",
        from: 1,
        ballot: ballot(1, 1),
        decidedThrough: N,
        proposedThrough: 0,
      }).send,
    ];
    for (let round = 0; round < 50 && late.deliveredThrough < N; round++) {
      if (outbox.length === 0) outbox = late.tick().send;
      const next: Envelope[] = [];
      for (const envelope of outbox) {
        if (envelope.message.type !== "catchup" || envelope.to.role !== "learner") continue;
        requests.push([envelope.message.fromSlot, envelope.message.toSlot]);
        for (const answer of veteran.step(envelope.message).send) {
          const out = late.step(answer.message);
          delivered.push(...out.decided);
          next.push(...out.send);
        }
      }
      outbox = next;
    }
    assert.equal(late.deliveredThrough, N);
    assert.deepEqual(
      delivered.map((d) => d.slot),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(
      delivered.map((d) => d.value),
      log,
    );
    assert.deepEqual(
      requests,
      [
        [1, 4],
        [4, 7],
        [7, 10],
        [10, 10],
      ],
      "each answer (one message of 3 slots) used up, the next range is asked of its sender at once",
    );
  });

  it("votes far ahead of the delivered prefix are not tallied (the horizon), and are counted", () => {
    const learner = newLearner({ limits: { windowSlots: 2, learnerMarginSlots: 3 } });
    feed(learner, [vote(1, 7, ballot(1, 1), A), vote(2, 7, ballot(1, 1), A)]);
    assert.equal(learner.chosenValue(7), undefined);
    assert.equal(learner.refusals.of("vote-beyond-horizon"), 2);
    feed(learner, [vote(1, 5, ballot(1, 1), A), vote(2, 5, ballot(1, 1), A)]);
    assert.deepEqual(learner.chosenValue(5), A);
  });
});

describe("Learner: hostile and stray input (issue 9)", () => {
  it("a standalone learner refuses votes past the ballot ceiling or jump, and takes a round a quorum vouches for", () => {
    const learner = newLearner();
    const X = val(cmd(7, 1, "X"));
    const far = DEFAULT_LIMITS.ballotJumpRoundsMax * 4;
    // Past the ceiling: refused, whoever votes.
    for (const from of [1, 2]) learner.step(vote(from, 1, ballot(DEFAULT_LIMITS.ballotRoundMax + 1, 1), X));
    assert.equal(learner.refusals.of("ballot-above-ceiling"), 2);
    // A jump past every round taken: one acceptor's vote is refused and decides nothing...
    assert.deepEqual(feed(learner, [vote(1, 1, ballot(far, 1), X)]), []);
    assert.equal(learner.refusals.of("ballot-jump"), 1);
    // ...a quorum's votes vouch for the round (a learner that was away catches up with the rounds).
    const decided = feed(learner, [vote(2, 1, ballot(far, 1), X), vote(1, 1, ballot(far, 1), X)]);
    assert.deepEqual(
      decided.map((d) => d.slot),
      [1],
    );
  });

  const X = val(cmd(7, 1, "x"));
  const Y = val(cmd(7, 1, "y"));
  const MEMBERS = { acceptors: [1, 2, 3], proposers: [1, 2, 3], learners: [1, 2, 3] };
  const member = (options: Partial<LearnerOptions> = {}) => newLearner({ members: MEMBERS, ...options });

  /** Has the learner ask everyone for slots through `slot` (a heartbeat, then catchupTicks ticks). */
  function askEveryone(learner: Learner, slot: number): CatchupMessage[] {
    learner.noteDecidedThrough(slot);
    return tickCollect(learner, 10).flatMap((s) =>
      s.envelope.message.type === "catchup" ? [s.envelope.message] : [],
    );
  }

  it("an unrequested decide is refused and counted, and delivers nothing", () => {
    const learner = member();
    const out = learner.step(decide([{ slot: 1, value: X }], 2));
    assert.deepEqual(out.decided, []);
    assert.equal(learner.chosenValue(1), undefined);
    assert.equal(learner.refusals.of("decide-unrequested"), 1);
  });

  it("a decide from a non-member is refused before anything else", () => {
    const learner = member({ catchupTicks: 1 });
    askEveryone(learner, 1);
    assert.deepEqual(learner.step(decide([{ slot: 1, value: X }], 99)).decided, []);
    assert.equal(learner.refusals.of("decide-non-member"), 1);
    assert.deepEqual(
      learner.step(decide([{ slot: 1, value: X }], 2)).decided.length,
      1,
      "a member's answer is taken",
    );
  });

  it("takes a decide only for the range it asked, from the peer it asked, while the request is live", () => {
    const learner = member({ catchupTicks: 1, limits: { learnerRequestTicks: 20 } });
    // An unrequested decide from member 2 makes the learner ask member 2 (directed) for slots 1..3.
    const asked = catchups(learner.step(decide([{ slot: 3, value: X }], 2)));
    assert.deepEqual(asked, [
      {
        to: { role: "learner", id: 2 },
        message: { type: "catchup", from: 1, role: "learner", fromSlot: 1, toSlot: 3 },
      },
    ]);
    // Member 3 was not asked: its answer is refused. Slot 4 was not asked: refused.
    learner.step(decide([{ slot: 1, value: X }], 3));
    learner.step(decide([{ slot: 4, value: X }], 2));
    assert.equal(learner.deliveredThrough, 0);
    assert.equal(learner.refusals.of("decide-unrequested"), 3);
    // Member 2's answer in range is taken.
    assert.deepEqual(learner.step(decide([{ slot: 1, value: X }], 2)).decided.length, 1);
    // After learnerRequestTicks the request is forgotten: a late answer is refused.
    tickCollect(learner, 25);
    learner.step(decide([{ slot: 2, value: Y }], 2));
    assert.equal(learner.chosenValue(2), undefined);
    assert.equal(learner.refusals.of("decide-unrequested"), 4);
  });

  it("the leader's learner hears of a slot below an acceptor's floor by asking the peer that told it", () => {
    // A replica answers a leader's accept below its floor with the decided value, unasked
    // (Replica.step): the leader's learner refuses it, asks that replica, and takes the answer.
    const replica = member({ id: 2 } as Partial<LearnerOptions>);
    given(
      replica,
      [1, 2, 3].map((seq) => ({ slot: seq, value: val(cmd(7, seq)) })),
    );
    const leader = member();
    const told = replica.step({ type: "catchup", from: 1, role: "learner", fromSlot: 3, toSlot: 3 });
    let inbox = told.send.map((e) => e.message);
    const delivered: Decision[] = [];
    for (let round = 0; round < 5 && inbox.length > 0; round++) {
      const next: Message[] = [];
      for (const message of inbox) {
        const out = message.type === "decide" ? leader.step(message) : replica.step(message);
        delivered.push(...out.decided);
        next.push(...out.send.map((e) => e.message));
      }
      inbox = next;
    }
    assert.deepEqual(
      delivered.map((d) => d.slot),
      [1, 2, 3],
    );
    assert.equal(leader.refusals.of("decide-unrequested"), 1);
  });

  it("requests awaiting answers are bounded (learnerRequestsMax) and expire (learnerRequestTicks)", () => {
    const learner = member({ catchupTicks: 1, limits: { learnerRequestsMax: 4, learnerRequestTicks: 10 } });
    learner.noteDecidedThrough(100);
    for (let tick = 0; tick < 8; tick++) {
      learner.tick();
      assert.ok(learner.outstandingRequests <= 4);
    }
    assert.equal(learner.outstandingRequests, 4);
    const quiet = member({ catchupTicks: 1, limits: { learnerRequestTicks: 10 } });
    quiet.noteDecidedThrough(1);
    quiet.tick();
    assert.equal(quiet.outstandingRequests, 1);
    quiet.step(decide([{ slot: 1, value: X }], 2));
    quiet.tick();
    assert.equal(quiet.outstandingRequests, 0, "answered: forgotten");
  });

  it("votes count only from the quorum's acceptors (counted otherwise), and copies of accepts only from member proposers", () => {
    const learner = member();
    feed(learner, [vote(4, 1, ballot(1, 1), X), vote(5, 1, ballot(1, 1), X)]);
    assert.equal(learner.refusals.of("vote-non-member"), 2);
    learner.step({ type: "accept", from: 9, ballot: ballot(1, 9), slot: 1, value: Y });
    assert.equal(learner.refusals.of("accept-non-member"), 1);
    feed(learner, [vote(1, 1, ballot(1, 9), null), vote(2, 1, ballot(1, 9), null)]);
    assert.equal(learner.deliveredThrough, 0, "the value of a non-member's accept is never delivered");
  });

  it("tallies are bounded per slot (tallyBallotsPerSlotMax) and in total (the horizon)", () => {
    const learner = member();
    for (let round = 1; round <= 1000; round++) learner.step(vote(1, 1, ballot(round, 2), X));
    assert.equal(learner.refusals.of("tally-ballots-full"), 1000 - DEFAULT_LIMITS.tallyBallotsPerSlotMax);
    // The node's own proposal still gets a tally (it replaces the lowest), and its votes count.
    learner.knowProposal(1, ballot(2000, 1), Y);
    feed(learner, [vote(1, 1, ballot(2000, 1), null), vote(2, 1, ballot(2000, 1), null)]);
    assert.deepEqual(learner.chosenValue(1), Y);
    for (let slot = 2; slot <= 100_000; slot += 7) learner.step(vote(1, slot, ballot(1, 1), X));
    const horizon = learner.horizonSlot;
    assert.equal(horizon, 1 + DEFAULT_LIMITS.windowSlots + DEFAULT_LIMITS.learnerMarginSlots);
    assert.ok(learner.trackedSlots <= horizon - 1, `tracked ${learner.trackedSlots}`);
    assert.ok(learner.refusals.of("vote-beyond-horizon") > 14_000);
  });

  it("a heartbeat's decidedThrough beyond the horizon is refused past it: catch-up stays bounded", () => {
    const learner = member({ catchupTicks: 1 });
    learner.step({
      type: "heartbeat",
      from: 2,
      ballot: ballot(1, 2),
      decidedThrough: 10 ** 15,
      proposedThrough: 0,
    });
    assert.equal(learner.refusals.of("heartbeat-beyond-horizon"), 1);
    assert.equal(learner.knownDecidedThrough, learner.horizonSlot);
    const asked = catchups(learner.tick());
    assert.ok(asked.length > 0);
    for (const { message } of asked)
      assert.deepEqual([message.fromSlot, message.toSlot], [1, DEFAULT_LIMITS.catchupSlotsMax]);
    learner.step({
      type: "heartbeat",
      from: 2,
      ballot: ballot(1, 2),
      decidedThrough: 2 ** 53 - 1,
      proposedThrough: 0,
    });
    assert.equal(learner.refusals.of("heartbeat-beyond-horizon"), 2);
    learner.step({ type: "heartbeat", from: 7, ballot: ballot(1, 7), decidedThrough: 3, proposedThrough: 0 });
    assert.equal(learner.refusals.of("heartbeat-non-member"), 1);
  });

  it("answers catch-up for members only, at a bounded rate per peer (a token bucket in ticks)", () => {
    const learner = member({ limits: { serveRequestsBurst: 3, serveRequestsPerTick: 1 } });
    given(learner, [{ slot: 1, value: X }]);
    const ask = (from: number, role: CatchupMessage["role"] = "learner") =>
      learner.step({ type: "catchup", from, role, fromSlot: 1, toSlot: 1 }).send.length;
    assert.equal(ask(9), 0);
    assert.equal(ask(2, "client"), 0);
    assert.equal(learner.refusals.of("catchup-non-member"), 2);
    assert.deepEqual([ask(2), ask(2), ask(2), ask(2)], [1, 1, 1, 0], "a burst of 3, then refused");
    assert.equal(ask(3), 1, "another peer has its own bucket");
    assert.equal(learner.refusals.of("serve-rate"), 1);
    learner.tick();
    assert.deepEqual([ask(2), ask(2)], [1, 0], "one token back per tick");
    learner.step({ type: "snapshot-request", from: 9, role: "learner", slot: 0, offset: 0 });
    assert.equal(learner.refusals.of("snapshot-request-non-member"), 0, "no snapshot: nothing to serve");
  });

  it("without known members, the peers it keeps buckets for are bounded (servePeersMax)", () => {
    const learner = newLearner({ limits: { servePeersMax: 10, serveRequestsBurst: 2 } });
    given(learner, [{ slot: 1, value: X }]);
    for (let id = 100; id < 1100; id++) {
      learner.step({ type: "catchup", from: id, role: "learner", fromSlot: 1, toSlot: 1 });
      learner.step({ type: "catchup", from: id, role: "learner", fromSlot: 1, toSlot: 1 });
    }
    assert.ok(learner.servedPeers <= 10);
    assert.ok(learner.refusals.of("serve-peers-full") > 0);
  });

  it("a catch-up for a range near 2^53 ends (it is cut to the horizon) and answers nothing", () => {
    const learner = member();
    given(learner, [{ slot: 1, value: X }]);
    const out = learner.step({
      type: "catchup",
      from: 2,
      role: "learner",
      fromSlot: 2 ** 53 - 1,
      toSlot: 2 ** 53 - 1,
    });
    assert.deepEqual(out.send, []);
  });

  it("a decide can never reach an assertion: contradicting values are refused and counted", () => {
    const learner = member({ catchupTicks: 1 });
    askEveryone(learner, 2);
    learner.step(
      decide(
        [
          { slot: 1, value: X },
          { slot: 2, value: X },
        ],
        2,
      ),
    );
    assert.doesNotThrow(() =>
      learner.step(
        decide(
          [
            { slot: 1, value: Y },
            { slot: 2, value: Y },
          ],
          3,
        ),
      ),
    );
    assert.equal(learner.refusals.of("decide-conflict"), 2);
    assert.deepEqual([learner.chosenValue(1), learner.chosenValue(2)], [X, X]);
  });
});

describe("Learner: the session table never evicts a session (issue 8 1e, issue 9)", () => {
  it("100,000 made-up client ids do not make a real client's retried value deliver twice", () => {
    const learner = newLearner();
    const real = cmd(424242, 1, "pay 10");
    let slot = 1;
    const first = learner.learn(slot++, val(real)).decided;
    assert.deepEqual(first[0]?.commands, [real]);
    // 100,000 made-up clients, a command each, in batches of 1,000: the table fills up.
    for (let batch = 0; batch < 100; batch++) {
      const commands = Array.from({ length: 1000 }, (_, i) => cmd(1_000_000 + batch * 1000 + i, 1, "junk"));
      learner.learn(slot++, val(...commands));
    }
    const retried = learner.learn(slot++, val(real)).decided;
    assert.deepEqual(retried[0]?.commands, [], "the resent value is recognised, not applied again");
    assert.ok(learner.isDelivered(real));
    const stranger = learner.learn(slot++, val(cmd(5_000_000, 1, "new"))).decided;
    assert.deepEqual(stranger[0]?.commands, []);
    assert.equal(
      stranger[0]?.refused?.[0]?.reason,
      "clients-full",
      "a new client is refused, not someone evicted",
    );
  });
});
