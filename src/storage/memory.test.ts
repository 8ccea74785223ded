import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage } from "./memory.js";
import { toReplicaState } from "./storage.js";

const vote = (slot: number, round: number, payload: string) => ({
  slot,
  ballot: { round, node: 1 },
  value: { commands: [{ client: 1, seq: slot, payload }] },
});

describe("MemoryStorage", () => {
  it("keeps what was synced and drops what was not when reopened (a crash)", async () => {
    const storage = new MemoryStorage();
    assert.ok((await storage.open()).ok);
    storage.append({ promised: { round: 1, node: 1 }, proposerRound: 1 });
    storage.append({ accepted: [vote(1, 1, "a")] });
    await storage.sync();
    storage.append({ accepted: [vote(2, 1, "lost")] });
    const reopened = await storage.open();
    assert.ok(reopened.ok);
    assert.deepEqual(reopened.value, {
      promised: { round: 1, node: 1 },
      accepted: [vote(1, 1, "a")],
      round: 1,
      trimmedBelowSlot: 0,
      rejoining: false,
      log: [],
    });
    assert.deepEqual(toReplicaState(reopened.value), {
      acceptor: { promised: { round: 1, node: 1 }, accepted: [vote(1, 1, "a")], floorSlot: 0 },
      round: 1,
      log: [],
    });
  });

  it("copies deltas, so a caller growing its delta afterwards changes nothing", async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const delta = { accepted: [vote(1, 1, "a")] };
    storage.append(delta);
    delta.accepted.push(vote(2, 1, "b"));
    await storage.sync();
    assert.equal(storage.state().accepted.length, 1);
  });

  it("later votes for a slot win, and compaction trims old slots", async () => {
    const storage = new MemoryStorage();
    await storage.open();
    storage.append({ accepted: [vote(1, 1, "a"), vote(2, 1, "b")] });
    storage.append({ accepted: [vote(2, 2, "c"), vote(3, 2, "d")] });
    await storage.compact({ trimBelowSlot: 2 });
    assert.deepEqual(storage.state().accepted, [vote(2, 2, "c"), vote(3, 2, "d")]);
    assert.equal(storage.state().trimmedBelowSlot, 2);
    assert.equal(storage.stats.compactions, 1);
  });
});
