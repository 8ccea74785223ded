import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Acceptor } from "./acceptor.js";
import { type Ballot, ballot, ballotAtLeast, compareBallots, ZERO_BALLOT } from "./ballot.js";
import type {
  AcceptedEntry,
  AcceptedMessage,
  AcceptMessage,
  Command,
  Message,
  PrepareMessage,
  PromiseMessage,
  RejectMessage,
  Value,
} from "./messages.js";
import { valuesEqual } from "./messages.js";

const value = (...payloads: string[]): Value => ({
  commands: payloads.map((payload, i): Command => ({ client: 9, seq: i + 1, payload })),
});

const prepare = (b: Ballot, firstSlot = 1, from = b.node): PrepareMessage => ({
  type: "prepare",
  from,
  ballot: b,
  firstSlot,
});

const accept = (b: Ballot, slot: number, v: Value, from = b.node): AcceptMessage => ({
  type: "accept",
  from,
  ballot: b,
  slot,
  value: v,
});

function only<T extends Message["type"]>(
  envelopes: readonly { message: Message }[],
  type: T,
): Extract<Message, { type: T }>[] {
  return envelopes.map((e) => e.message).filter((m): m is Extract<Message, { type: T }> => m.type === type);
}

describe("Acceptor (Paxos Made Simple 2.2)", () => {
  it("phase 1b: promises a higher ballot, persisting the promise before the reply may leave", () => {
    const acceptor = new Acceptor({ id: 1 });
    const out = acceptor.step(prepare(ballot(1, 2)));
    assert.deepEqual(out.persist, { promised: ballot(1, 2) });
    assert.deepEqual(out.send, [], "a promise depends on the persisted promise: never in `send`");
    assert.deepEqual(out.sendAfterPersist, [
      {
        to: { role: "proposer", id: 2 },
        message: {
          type: "promise",
          from: 1,
          ballot: ballot(1, 2),
          firstSlot: 1,
          accepted: [],
          nextSlot: null,
          floorSlot: 0,
        },
      },
    ]);
    assert.deepEqual(acceptor.promised, ballot(1, 2));
  });

  it("a duplicate prepare at the promised ballot is answered again without a new persist", () => {
    const acceptor = new Acceptor({ id: 1 });
    acceptor.step(prepare(ballot(3, 2)));
    const again = acceptor.step(prepare(ballot(3, 2)));
    assert.equal(again.persist, null);
    assert.equal(only(again.sendAfterPersist, "promise").length, 1);
    assert.deepEqual(only(again.sendAfterPersist, "promise")[0]?.ballot, ballot(3, 2));
  });

  it("an acceptor never promises below its promise: the prepare is rejected with the promised ballot", () => {
    const acceptor = new Acceptor({ id: 4 });
    acceptor.step(prepare(ballot(5, 3)));
    for (const lower of [ballot(5, 2), ballot(4, 9), ballot(1, 1)]) {
      const out = acceptor.step(prepare(lower));
      assert.equal(out.persist, null);
      assert.deepEqual(out.send, []);
      const rejects = only(out.sendAfterPersist, "reject");
      assert.deepEqual(rejects, [
        { type: "reject", from: 4, ballot: lower, promised: ballot(5, 3), slot: 0 } satisfies RejectMessage,
      ]);
      assert.deepEqual(out.sendAfterPersist[0]?.to, { role: "proposer", id: lower.node });
    }
    assert.deepEqual(acceptor.promised, ballot(5, 3));
  });

  it("phase 2b: accepts at its promise, persisting the vote, then tells the proposer and the learners", () => {
    const acceptor = new Acceptor({ id: 1 });
    acceptor.step(prepare(ballot(2, 7)));
    const out = acceptor.step(accept(ballot(2, 7), 1, value("x=1")));
    assert.deepEqual(out.persist, { accepted: [{ slot: 1, ballot: ballot(2, 7), value: value("x=1") }] });
    assert.deepEqual(out.send, []);
    assert.deepEqual(
      out.sendAfterPersist.map((e) => e.to),
      [{ role: "proposer", id: 7 }, { role: "learner" }],
    );
    for (const { message } of out.sendAfterPersist) {
      // (slot, ballot) names one proposal, so a vote may leave the value out (AcceptedMessage).
      const { value: carried, ...vote } = message as AcceptedMessage;
      assert.deepEqual(vote, { type: "accepted", from: 1, ballot: ballot(2, 7), slot: 1 });
      assert.ok(carried === null || valuesEqual(carried, value("x=1")), "a vote never names another value");
    }
    assert.deepEqual(acceptor.voteFor(1), { slot: 1, ballot: ballot(2, 7), value: value("x=1") });
  });

  it("accepting above the promise also raises the promise, in the same persist", () => {
    const acceptor = new Acceptor({ id: 1 });
    acceptor.step(prepare(ballot(1, 1)));
    const out = acceptor.step(accept(ballot(2, 3), 4, value("y")));
    assert.deepEqual(out.persist, {
      accepted: [{ slot: 4, ballot: ballot(2, 3), value: value("y") }],
      promised: ballot(2, 3),
    });
    assert.deepEqual(acceptor.promised, ballot(2, 3));
    // The raised promise now refuses the old ballot.
    assert.equal(
      only(acceptor.step(accept(ballot(1, 1), 5, value("z"))).sendAfterPersist, "reject").length,
      1,
    );
  });

  it("an acceptor never accepts below its promise: the accept is rejected and nothing changes", () => {
    const acceptor = new Acceptor({ id: 2 });
    acceptor.step(prepare(ballot(4, 1)));
    acceptor.step(accept(ballot(4, 1), 1, value("kept")));
    const out = acceptor.step(accept(ballot(3, 5), 1, value("late")));
    assert.equal(out.persist, null);
    assert.deepEqual(only(out.sendAfterPersist, "reject"), [
      { type: "reject", from: 2, ballot: ballot(3, 5), promised: ballot(4, 1), slot: 1 },
    ]);
    assert.equal(only(out.sendAfterPersist, "accepted").length, 0);
    assert.deepEqual(acceptor.voteFor(1)?.value, value("kept"));
  });

  it("a duplicate accept is voted for again without a new persist", () => {
    const acceptor = new Acceptor({ id: 1 });
    acceptor.step(accept(ballot(1, 1), 1, value("a")));
    const again = acceptor.step(accept(ballot(1, 1), 1, value("a")));
    assert.equal(again.persist, null);
    assert.equal(only(again.sendAfterPersist, "accepted").length, 2);
  });

  it("a later ballot's vote replaces the earlier one in its slot", () => {
    const acceptor = new Acceptor({ id: 1 });
    acceptor.step(accept(ballot(1, 1), 3, value("old")));
    acceptor.step(accept(ballot(2, 2), 3, value("new")));
    assert.deepEqual(acceptor.voteFor(3), { slot: 3, ballot: ballot(2, 2), value: value("new") });
  });

  it("refuses an accept for slot 0 (slots start at 1)", () => {
    const acceptor = new Acceptor({ id: 1 });
    const out = acceptor.step(accept(ballot(1, 1), 0, value("x")));
    assert.equal(out.persist, null);
    assert.equal(only(out.sendAfterPersist, "reject").length, 1);
  });

  it("with votesTo 'learners' (collapsed replicas) a vote goes to the learners only", () => {
    const acceptor = new Acceptor({ id: 1, votesTo: "learners" });
    const out = acceptor.step(accept(ballot(1, 1), 1, value("x")));
    assert.deepEqual(
      out.sendAfterPersist.map((e) => e.to),
      [{ role: "learner" }],
    );
  });

  it("ignores messages that are not for an acceptor", () => {
    const acceptor = new Acceptor({ id: 1 });
    const out = acceptor.step({
      type: "heartbeat",
      from: 1,
      ballot: ballot(9, 9),
      decidedThrough: 3,
      proposedThrough: 0,
    });
    assert.deepEqual(out, { persist: null, send: [], sendAfterPersist: [], decided: [], snapshot: null });
    assert.deepEqual(acceptor.promised, ZERO_BALLOT);
  });

  it("a promise reports every vote from firstSlot on, paged by entriesPerMessageMax", () => {
    const acceptor = new Acceptor({ id: 1, limits: { entriesPerMessageMax: 3 } });
    for (const slot of [1, 2, 4, 5, 6, 8, 9]) acceptor.step(accept(ballot(1, 1), slot, value(`v${slot}`)));
    const page = (first: number): PromiseMessage => {
      const out = acceptor.step(prepare(ballot(2, 2), first));
      const promises = only(out.sendAfterPersist, "promise");
      assert.equal(promises.length, 1);
      return promises[0] as PromiseMessage;
    };
    const first = page(2);
    assert.equal(first.firstSlot, 2);
    assert.deepEqual(
      first.accepted.map((e) => e.slot),
      [2, 4, 5],
      "votes below firstSlot are left out",
    );
    assert.equal(first.nextSlot, 6);
    const second = page(6);
    assert.deepEqual(
      second.accepted.map((e) => e.slot),
      [6, 8, 9],
    );
    assert.equal(second.nextSlot, null, "three entries fit exactly: the report is complete");
    const beyond = page(10);
    assert.deepEqual(beyond.accepted, []);
    assert.equal(beyond.nextSlot, null);
    // Each entry is the vote itself, ballot and value.
    assert.deepEqual(first.accepted[1], {
      slot: 4,
      ballot: ballot(1, 1),
      value: value("v4"),
    } satisfies AcceptedEntry);
  });

  it("a promise page also respects bytesPerMessageMax, but always carries at least one vote", () => {
    const big = "x".repeat(1000);
    const acceptor = new Acceptor({ id: 1, limits: { bytesPerMessageMax: 2000 } });
    for (const slot of [1, 2, 3]) acceptor.step(accept(ballot(1, 1), slot, value(big)));
    const pages: number[][] = [];
    let first: number | null = 1;
    while (first !== null) {
      const promise: PromiseMessage | undefined = only(
        acceptor.step(prepare(ballot(2, 2), first)).sendAfterPersist,
        "promise",
      )[0];
      assert.ok(promise);
      pages.push(promise.accepted.map((e) => e.slot));
      first = promise.nextSlot;
    }
    assert.deepEqual(pages, [[1], [2], [3]], "each 3 KB estimate needs a page of its own");
  });

  it("votedThrough (what it tells a rejoining replica) is its highest vote, or its floor less one", () => {
    const acceptor = new Acceptor({ id: 1 });
    assert.equal(acceptor.votedThrough, 0);
    acceptor.step(accept(ballot(1, 2), 3, value("c")));
    acceptor.step(accept(ballot(1, 2), 7, value("g")));
    assert.equal(acceptor.votedThrough, 7);
    acceptor.trimBelow(10);
    assert.equal(acceptor.voteCount, 0);
    assert.equal(acceptor.votedThrough, 9, "the slots below the floor are decided: they count as voted");
    // A rejoining acceptor holds nothing and votes nothing.
    const rejoining = new Acceptor({ id: 1, rejoining: true });
    rejoining.step(accept(ballot(2, 2), 12, value("l")));
    assert.equal(rejoining.votedThrough, 0);
    assert.equal(rejoining.highestSlot, 12, "but it notes the slot");
  });

  it("restores its promise and votes from durable state", () => {
    const restored = new Acceptor({
      id: 3,
      restore: {
        promised: ballot(7, 2),
        accepted: [
          { slot: 2, ballot: ballot(6, 1), value: value("b") },
          { slot: 1, ballot: ballot(7, 2), value: value("a") },
        ],
      },
    });
    assert.deepEqual(restored.promised, ballot(7, 2));
    assert.deepEqual(
      restored.state().accepted.map((e) => e.slot),
      [1, 2],
    );
    assert.equal(only(restored.step(prepare(ballot(7, 1))).sendAfterPersist, "reject").length, 1);
    const promise = only(restored.step(prepare(ballot(8, 1))).sendAfterPersist, "promise")[0];
    assert.deepEqual(promise?.accepted, [
      { slot: 1, ballot: ballot(7, 2), value: value("a") },
      { slot: 2, ballot: ballot(6, 1), value: value("b") },
    ]);
    const copy = new Acceptor({ id: 3, restore: restored.state() });
    assert.deepEqual(copy.state(), restored.state());
  });

  it("property: the promised ballot never decreases, no vote is at or after a refusal, and the persisted state replays to the live one", () => {
    const arbitraryBallot = fc
      .record({ round: fc.nat({ max: 6 }), node: fc.integer({ min: 1, max: 3 }) })
      .map(({ round, node }) => ballot(round, node));
    const arbitraryMessage = fc.oneof(
      fc
        .record({ b: arbitraryBallot, first: fc.integer({ min: 1, max: 5 }) })
        .map(({ b, first }) => prepare(b, first)),
      fc
        .record({
          b: arbitraryBallot,
          slot: fc.integer({ min: 1, max: 5 }),
          v: fc.constantFrom("p", "q", "r"),
        })
        .map(({ b, slot, v }) => accept(b, slot, value(v))),
    );
    fc.assert(
      fc.property(fc.array(arbitraryMessage, { maxLength: 60 }), (messages) => {
        const acceptor = new Acceptor({ id: 1, limits: { entriesPerMessageMax: 2 } });
        let promised = acceptor.promised;
        // What a driver would have on disk after applying every persist in order.
        let durablePromised: Ballot = ZERO_BALLOT;
        const durableVotes = new Map<number, AcceptedEntry>();
        for (const message of messages) {
          const before = acceptor.promised;
          const out = acceptor.step(message);
          assert.ok(compareBallots(acceptor.promised, promised) >= 0, "promised went down");
          promised = acceptor.promised;
          if (out.persist?.promised) durablePromised = out.persist.promised;
          for (const entry of out.persist?.accepted ?? []) durableVotes.set(entry.slot, entry);
          const refused = only(out.sendAfterPersist, "reject").length > 0;
          assert.equal(
            refused,
            !ballotAtLeast(message.ballot, before),
            "refuses exactly what is below the promise",
          );
          if (refused) assert.equal(out.persist, null, "a refusal changes nothing");
          for (const vote of only(out.sendAfterPersist, "accepted")) {
            assert.ok(ballotAtLeast(vote.ballot, before), "voted below the promise");
          }
          for (const p of only(out.sendAfterPersist, "promise")) {
            for (const entry of p.accepted) {
              assert.ok(
                compareBallots(entry.ballot, p.ballot) <= 0,
                "a reported vote is never above the promise",
              );
            }
          }
          // Every reply leaves only after the state it depends on is durable.
          assert.deepEqual(durablePromised, acceptor.promised);
          assert.deepEqual(
            [...durableVotes.values()].sort((a, b) => a.slot - b.slot),
            acceptor.state().accepted,
          );
        }
      }),
      { numRuns: 300 },
    );
  });
});
