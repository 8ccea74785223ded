import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DurableDelta, SlotValue, Snapshot } from "../core/index.js";
import { copyDelta, DurableModel, emptyDurableState, toReplicaState } from "./storage.js";

const decided = (slot: number, payload = `d${slot}`): SlotValue => ({
  slot,
  value: { commands: [{ client: 1, seq: slot, payload }] },
});
const vote = (slot: number) => ({ slot, ballot: { round: 1, node: 1 }, value: decided(slot).value });
const snapshotAt = (slot: number, app = `state through ${slot}`): Snapshot => ({
  slot,
  sessions: [1, 1, 1, slot],
  app,
});

describe("DurableModel", () => {
  it("applies a delta's snapshot first: decided slots at or below it are superseded, those past it kept", () => {
    const model = new DurableModel();
    model.apply({ decided: [decided(1), decided(2), decided(3)] });
    model.apply({ snapshot: snapshotAt(2), floorSlot: 3, decided: [decided(2, "superseded"), decided(4)] });
    const state = model.snapshot();
    assert.deepEqual(state.snapshot, snapshotAt(2));
    assert.deepEqual(state.log, [decided(3).value, decided(4).value], "the log starts past the snapshot");
    assert.equal(model.decidedCount, 2);
    assert.equal(state.trimmedBelowSlot, 3);
  });

  it("ignores decided slots at or below the snapshot, and a snapshot older than the one it holds", () => {
    const model = new DurableModel();
    model.apply({ snapshot: snapshotAt(5) });
    model.apply({ decided: [decided(4), decided(5), decided(6)] });
    assert.equal(model.decidedCount, 1);
    model.apply({ snapshot: snapshotAt(3) });
    assert.deepEqual(model.snapshot().snapshot, snapshotAt(5));
    assert.deepEqual(model.snapshot().log, [decided(6).value]);
    // The same slot again (a later write wins), then a newer one that covers everything held.
    model.apply({ snapshot: snapshotAt(5, "rewritten") });
    assert.equal(model.snapshot().snapshot?.app, "rewritten");
    model.apply({ snapshot: snapshotAt(9) });
    assert.equal(model.decidedCount, 0);
    assert.deepEqual(model.snapshot().log, []);
  });

  it("holds the slots past a gap but the log stops at the gap, and a checkpoint image holds them all", () => {
    const model = new DurableModel();
    model.apply({ snapshot: snapshotAt(2), decided: [decided(3), decided(5)] });
    assert.deepEqual(model.snapshot().log, [decided(3).value]);
    assert.deepEqual(model.image().decided, [decided(3), decided(5)]);
  });

  it("reset replaces everything with a checkpoint's marks", () => {
    const model = new DurableModel();
    model.apply({ snapshot: snapshotAt(2), decided: [decided(3)], accepted: [vote(3)], rejoining: true });
    model.reset({ promised: { round: 2, node: 1 }, round: 4, trimmedBelowSlot: 3, rejoining: true });
    assert.deepEqual(model.snapshot(), {
      ...emptyDurableState(),
      promised: { round: 2, node: 1 },
      round: 4,
      trimmedBelowSlot: 3,
      rejoining: true,
    });
  });

  it("stays bounded when the node snapshots regularly", () => {
    const model = new DurableModel();
    let decidedMax = 0;
    let votesMax = 0;
    for (let slot = 1; slot <= 20_000; slot++) {
      model.apply({ accepted: [vote(slot)], decided: [decided(slot)] });
      if (slot % 500 === 0) model.apply({ snapshot: snapshotAt(slot), floorSlot: slot + 1 });
      // Measured after each turn, as a driver's storage would hold it.
      decidedMax = Math.max(decidedMax, model.decidedCount);
      votesMax = Math.max(votesMax, model.size);
    }
    // 499 between snapshots (the 500th slot comes with the snapshot that covers it).
    assert.equal(decidedMax, 499);
    assert.equal(votesMax, 499);
    assert.equal(model.decidedCount, 0);
    assert.equal(model.size, 0);
  });

  it("toReplicaState passes the snapshot and the log past it", () => {
    const model = new DurableModel();
    model.apply({ snapshot: snapshotAt(7), floorSlot: 8, decided: [decided(8)], proposerRound: 3 });
    assert.deepEqual(toReplicaState(model.snapshot()), {
      acceptor: { promised: { round: 0, node: 0 }, accepted: [], floorSlot: 8 },
      round: 3,
      snapshot: snapshotAt(7),
      log: [decided(8).value],
    });
  });

  it("copyDelta copies the snapshot's session list too", () => {
    const sessions = [1, 1, 1, 2];
    const delta: DurableDelta = { snapshot: { slot: 2, sessions, app: "x" } };
    const copy = copyDelta(delta);
    sessions.push(9);
    assert.deepEqual(copy.snapshot?.sessions, [1, 1, 1, 2]);
  });
});
