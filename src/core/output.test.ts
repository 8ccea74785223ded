import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ballot } from "./ballot.js";
import type { AcceptedEntry, Envelope } from "./messages.js";
import { emptyOutput, isEmptyOutput, mergeDelta, mergeOutput } from "./output.js";

const entry = (slot: number, payload: string): AcceptedEntry => ({
  slot,
  ballot: ballot(1, 1),
  value: { commands: [{ client: 1, seq: slot, payload }] },
});

const envelope = (n: number): Envelope => ({
  to: { role: "learner" },
  message: { type: "heartbeat", from: n, ballot: ballot(1, n), decidedThrough: 0, proposedThrough: 0 },
});

describe("Output: merging for group commit", () => {
  it("mergeDelta: later fields win, votes are appended in order (a later vote in a slot replaces an earlier one when applied)", () => {
    const first = { promised: ballot(1, 1), accepted: [entry(1, "a")] };
    const merged = mergeDelta(null, first);
    assert.notEqual(merged, first, "the first delta is copied, never mutated");
    mergeDelta(merged, {
      promised: ballot(2, 1),
      accepted: [entry(1, "b"), entry(2, "c")],
      proposerRound: 4,
    });
    assert.deepEqual(merged, {
      promised: ballot(2, 1),
      accepted: [entry(1, "a"), entry(1, "b"), entry(2, "c")],
      proposerRound: 4,
    });
    assert.deepEqual(first.accepted, [entry(1, "a")], "the caller's array is untouched");
    assert.equal(mergeDelta(null, null), null);
    assert.equal(mergeDelta(merged, null), merged);
  });

  it("mergeOutput keeps each outbox's order and the persist", () => {
    const target = emptyOutput();
    assert.ok(isEmptyOutput(target));
    mergeOutput(target, {
      persist: { proposerRound: 1 },
      send: [envelope(1)],
      sendAfterPersist: [envelope(2)],
      decided: [],
      snapshot: null,
    });
    mergeOutput(target, {
      persist: null,
      send: [envelope(3)],
      sendAfterPersist: [envelope(4)],
      snapshot: null,
      decided: [{ slot: 1, value: { commands: [] }, commands: [] }],
    });
    assert.deepEqual(target.persist, { proposerRound: 1 });
    assert.deepEqual(
      target.send.map((e) => e.message.from),
      [1, 3],
    );
    assert.deepEqual(
      target.sendAfterPersist.map((e) => e.message.from),
      [2, 4],
    );
    assert.equal(target.decided.length, 1);
    assert.ok(!isEmptyOutput(target));
  });
});
