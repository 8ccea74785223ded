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
      snapshot: null,
      log: [],
    });
    assert.deepEqual(toReplicaState(reopened.value), {
      acceptor: { promised: { round: 1, node: 1 }, accepted: [vote(1, 1, "a")], floorSlot: 0 },
      round: 1,
      snapshot: null,
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

  it("keeps the newest snapshot and the log past it, and drops an unsynced snapshot on reopen", async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const decided = (slot: number) => ({
      slot,
      value: { commands: [{ client: 1, seq: slot, payload: `d${slot}` }] },
    });
    storage.append({ accepted: [vote(1, 1, "a"), vote(2, 1, "b"), vote(3, 1, "c")] });
    storage.append({ decided: [decided(1), decided(2), decided(3)] });
    storage.append({ snapshot: { slot: 2, sessions: [1, 1, 1, 2], app: "two ✓ 🎉" }, floorSlot: 3 });
    await storage.sync();
    storage.append({ snapshot: { slot: 3, sessions: [], app: "lost" }, floorSlot: 4 });
    const reopened = await storage.open();
    assert.ok(reopened.ok);
    assert.deepEqual(reopened.value.snapshot, { slot: 2, sessions: [1, 1, 1, 2], app: "two ✓ 🎉" });
    assert.deepEqual(reopened.value.log, [decided(3).value]);
    assert.deepEqual(
      reopened.value.accepted.map((entry) => entry.slot),
      [3],
    );
    assert.deepEqual(toReplicaState(reopened.value).snapshot, reopened.value.snapshot);
    await storage.compact();
    assert.deepEqual(storage.state(), reopened.value, "compaction changes nothing held");
  });

  it("stays bounded over 20,000 slots with a snapshot every 500 and a compaction after each", async () => {
    const storage = new MemoryStorage();
    await storage.open();
    let logMax = 0;
    let votesMax = 0;
    for (let slot = 1; slot <= 20_000; slot++) {
      const value = { commands: [{ client: 1, seq: slot, payload: `v${slot}` }] };
      storage.append({
        accepted: [{ slot, ballot: { round: 1, node: 1 }, value }],
        decided: [{ slot, value }],
      });
      if (slot % 500 === 0) {
        storage.append({
          snapshot: { slot, sessions: [1, 1, 1, slot], app: `through ${slot}` },
          floorSlot: slot + 1,
        });
        await storage.compact();
      } else if (slot % 50 === 0) {
        await storage.sync();
      }
      logMax = Math.max(logMax, storage.state().log.length);
      votesMax = Math.max(votesMax, storage.state().accepted.length);
    }
    assert.ok(logMax <= 500 && votesMax <= 500, `${logMax} decided slots, ${votesMax} votes`);
    assert.equal(storage.state().snapshot?.slot, 20_000);
    assert.equal(storage.stats.compactions, 40);
  });

  it("is fresh until something was synced", async () => {
    const storage = new MemoryStorage();
    await storage.open();
    assert.equal(storage.fresh, true);
    storage.append({ proposerRound: 1 });
    await storage.open(); // a crash before the sync
    assert.equal(storage.fresh, true);
    storage.append({ proposerRound: 1 });
    await storage.sync();
    await storage.open();
    assert.equal(storage.fresh, false);
  });
});
