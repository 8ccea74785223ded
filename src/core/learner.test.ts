import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Ballot, ballot } from "./ballot.js";
import { Learner, type LearnerOptions } from "./learner.js";
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
