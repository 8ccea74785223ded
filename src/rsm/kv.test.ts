import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { type KvChange, type KvCommand, type KvResult, KvStore } from "./kv.js";
import { DEFAULT_APP_LIMITS } from "./limits.js";

function mustOk(result: KvResult): Extract<KvResult, { ok: true }> {
  assert.ok(result.ok, result.ok ? "" : `${result.error}: ${result.message}`);
  return result;
}

describe("KvStore", () => {
  test("put, get and delete; every change bumps the revision, and keys carry theirs", () => {
    const kv = new KvStore();
    assert.equal(mustOk(kv.apply({ op: "put", key: "a", value: "1" })).revision, 1);
    assert.equal(mustOk(kv.apply({ op: "put", key: "b", value: "2" })).revision, 2);
    const again = mustOk(kv.apply({ op: "put", key: "a", value: "3" }));
    assert.equal(again.revision, 3);
    assert.ok(again.op === "put" && again.previous?.value === "1");
    assert.deepEqual(kv.get("a"), { key: "a", value: "3", createRevision: 1, modRevision: 3 });
    const got = mustOk(kv.apply({ op: "get", key: "a" }));
    assert.ok(got.op === "get" && got.entry?.value === "3" && got.revision === 3);
    const deleted = mustOk(kv.apply({ op: "delete", key: "a" }));
    assert.ok(deleted.op === "delete" && deleted.changed && deleted.revision === 4);
    const absent = mustOk(kv.apply({ op: "delete", key: "a" }));
    assert.ok(
      absent.op === "delete" && !absent.changed && absent.revision === 4,
      "deleting nothing changes nothing",
    );
    mustOk(kv.apply({ op: "put", key: "a", value: "5" }));
    assert.equal(kv.get("a")?.createRevision, 5, "created anew after a delete");
  });

  test("append adds to the end of the value (an absent key counts as empty), within the value bound", () => {
    const kv = new KvStore({ ...DEFAULT_APP_LIMITS, valueBytesMax: 4 });
    const first = mustOk(kv.apply({ op: "append", key: "a", value: "x" }));
    assert.ok(first.op === "append" && first.changed && first.previous === null && first.revision === 1);
    mustOk(kv.apply({ op: "append", key: "a", value: "yz" }));
    assert.deepEqual(kv.get("a"), { key: "a", value: "xyz", createRevision: 1, modRevision: 2 });
    const over = kv.apply({ op: "append", key: "a", value: "12" });
    assert.ok(!over.ok && over.error === "value-too-large", "the appended value would be 5 bytes");
    assert.equal(kv.get("a")?.value, "xyz");
    assert.deepEqual(kv.changesSince("a", 2), {
      ok: true,
      changes: [{ revision: 2, key: "a", value: "xyz" }],
    });
    for (const value of [5, null, undefined]) {
      const bad = kv.apply({ op: "append", key: "a", value } as unknown as KvCommand);
      assert.ok(!bad.ok && bad.error === "bad-command", String(value));
      const badPut = kv.apply({ op: "put", key: "a", value } as unknown as KvCommand);
      assert.ok(!badPut.ok && badPut.error === "bad-command", `put ${value}`);
    }
    assert.equal(kv.get("a")?.value, "xyz");
  });

  test("compare-and-set on a value, on a revision, and on absence; a failed one changes nothing", () => {
    const kv = new KvStore();
    mustOk(kv.apply({ op: "cas", key: "k", expectValue: null, value: "first" }));
    const lost = kv.apply({ op: "cas", key: "k", expectValue: null, value: "second" });
    assert.ok(!lost.ok && lost.error === "cas-failed" && lost.current?.value === "first");
    assert.equal(kv.revision, 1);
    mustOk(kv.apply({ op: "cas", key: "k", expectRevision: 1, value: "third" }));
    assert.equal(
      (kv.apply({ op: "cas", key: "k", expectRevision: 1, value: "x" }) as { error?: string }).error,
      "cas-failed",
    );
    mustOk(kv.apply({ op: "cas", key: "k", expectValue: "third", expectRevision: 2, value: null }));
    assert.equal(kv.get("k"), null, "a cas to null deletes");
    mustOk(kv.apply({ op: "cas", key: "k", expectRevision: 0, value: "again" }));
    const noCondition = kv.apply({ op: "cas", key: "k", value: "y" });
    assert.ok(!noCondition.ok && noCondition.error === "bad-command");
  });

  test("list by prefix, in key order, with a limit that says when there are more", () => {
    const kv = new KvStore();
    for (const key of ["app/b", "app/a", "other", "app/c"]) mustOk(kv.apply({ op: "put", key, value: key }));
    const all = mustOk(kv.apply({ op: "list", prefix: "app/" }));
    assert.ok(all.op === "list");
    assert.deepEqual(
      all.entries.map((e) => e.key),
      ["app/a", "app/b", "app/c"],
    );
    assert.equal(all.more, false);
    const two = mustOk(kv.apply({ op: "list", prefix: "app/", limit: 2 }));
    assert.ok(two.op === "list" && two.entries.length === 2 && two.more);
    assert.equal(mustOk(kv.apply({ op: "list", prefix: "" })).op, "list");
  });

  test("watch: the changes under a prefix since a revision, and 'compacted' once they are no longer kept", () => {
    const kv = new KvStore({ ...DEFAULT_APP_LIMITS, watchHistoryMax: 3 });
    mustOk(kv.apply({ op: "put", key: "a/1", value: "x" })); // 1
    mustOk(kv.apply({ op: "put", key: "b/1", value: "y" })); // 2
    mustOk(kv.apply({ op: "delete", key: "a/1" })); // 3
    const since = kv.changesSince("a/", 1);
    assert.ok(since.ok);
    assert.deepEqual(since.changes, [
      { revision: 1, key: "a/1", value: "x" },
      { revision: 3, key: "a/1", value: null },
    ]);
    mustOk(kv.apply({ op: "put", key: "a/2", value: "z" })); // 4: revision 1 is dropped
    const old = kv.changesSince("a/", 1);
    assert.ok(!old.ok && old.error === "compacted" && old.oldest === 2);
    const recent = kv.changesSince("a/", 2);
    assert.ok(recent.ok && recent.changes.length === 2);
    const future = kv.changesSince("", 9);
    assert.ok(future.ok && future.changes.length === 0, "a watch from the next revision waits");
    for (let i = 0; i < 20; i++) mustOk(kv.apply({ op: "put", key: "c", value: String(i) }));
    const kept = kv.changesSince("", 0);
    assert.ok(!kept.ok);
    const last = kv.changesSince("", kv.revision - 2);
    assert.ok(last.ok && last.changes.length === 3);
  });

  test("limits: key and value sizes (in UTF-8 bytes), the number of keys, malformed commands", () => {
    const limits = { ...DEFAULT_APP_LIMITS, keyBytesMax: 4, valueBytesMax: 6, keysMax: 2, listKeysMax: 5 };
    const kv = new KvStore(limits);
    const error = (command: KvCommand) => {
      const result = kv.apply(command);
      return result.ok ? "ok" : result.error;
    };
    assert.equal(error({ op: "put", key: "abcde", value: "" }), "key-too-large");
    assert.equal(error({ op: "put", key: "k", value: "ééé" }), "ok", "6 bytes");
    assert.equal(error({ op: "put", key: "k", value: "éééé" }), "value-too-large", "8 bytes");
    assert.equal(error({ op: "put", key: "", value: "v" }), "bad-command");
    assert.equal(error({ op: "put", key: "k2", value: "v" }), "ok");
    assert.equal(error({ op: "put", key: "k3", value: "v" }), "too-many-keys");
    assert.equal(error({ op: "put", key: "k2", value: "w" }), "ok", "replacing a key is not a new one");
    assert.equal(error({ op: "list", prefix: "", limit: 6 }), "bad-command");
    assert.equal(error({ op: "put", key: "k", value: 5 as unknown as string }), "bad-command");
    assert.equal(kv.revision, 3, "refused commands changed nothing");
  });

  test("restore refuses what is not a snapshot and keeps its state", () => {
    const kv = new KvStore();
    mustOk(kv.apply({ op: "put", key: "a", value: "1" }));
    const before = kv.snapshot();
    for (const bad of [
      "[]",
      "{}",
      '{"revision":1,"compactedThrough":0,"entries":[["a","1",2,1]],"changes":[]}',
      '{"revision":1,"compactedThrough":0,"entries":[["a","1",1,1],["a","2",1,1]],"changes":[]}',
      '{"revision":1,"compactedThrough":0,"entries":[],"changes":[[2,"a","x"]]}',
      "not json",
    ]) {
      assert.throws(() => kv.restore(bad), Error, bad);
      assert.equal(kv.snapshot(), before, bad);
    }
  });
});

const commandArbitrary: fc.Arbitrary<KvCommand> = (() => {
  const key = fc.constantFrom("a", "a/b", "a/c", "b", "c");
  const value = fc.constantFrom("x", "y", "z");
  return fc.oneof(
    fc.record({ op: fc.constant("get" as const), key }),
    fc.record({ op: fc.constant("put" as const), key, value }),
    fc.record({ op: fc.constant("delete" as const), key }),
    fc.record({
      op: fc.constant("cas" as const),
      key,
      value: fc.option(value, { nil: null }),
      expectRevision: fc.integer({ min: 0, max: 6 }),
    }),
    fc.record({ op: fc.constant("cas" as const), key, value, expectValue: fc.option(value, { nil: null }) }),
    fc.record({ op: fc.constant("append" as const), key, value }),
    fc.record({
      op: fc.constant("list" as const),
      prefix: fc.constantFrom("", "a", "a/"),
      limit: fc.integer({ min: 1, max: 3 }),
    }),
  );
})();

describe("KvStore as a replicated state machine (properties)", () => {
  test("a replica restored from a snapshot at any point goes on exactly as one that never was", () => {
    fc.assert(
      fc.property(fc.array(commandArbitrary, { maxLength: 60 }), fc.nat(60), (commands, cut) => {
        const limits = { ...DEFAULT_APP_LIMITS, watchHistoryMax: 5 };
        const steady = new KvStore(limits);
        let restarted = new KvStore(limits);
        commands.forEach((command, i) => {
          const expected = steady.apply(command);
          if (i === cut) {
            const fresh = new KvStore(limits);
            fresh.restore(restarted.snapshot());
            restarted = fresh;
          }
          assert.deepEqual(restarted.apply(command), expected);
        });
        assert.equal(restarted.snapshot(), steady.snapshot());
        assert.deepEqual(restarted.changesSince("", 0), steady.changesSince("", 0));
      }),
      { numRuns: 300 },
    );
  });

  test("revisions: every key's modRevision is at most the store's, and changes come in revision order", () => {
    fc.assert(
      fc.property(fc.array(commandArbitrary, { maxLength: 80 }), (commands) => {
        const kv = new KvStore({ ...DEFAULT_APP_LIMITS, watchHistoryMax: 1000 });
        let last = 0;
        for (const command of commands) {
          const result = kv.apply(command);
          assert.ok(result.revision >= last);
          last = result.revision;
        }
        const all = kv.changesSince("", 0);
        assert.ok(all.ok);
        for (const [i, change] of all.changes.entries()) assert.equal(change.revision, i + 1);
        const listed = kv.apply({ op: "list", prefix: "" });
        assert.ok(listed.ok && listed.op === "list");
        for (const entry of listed.entries) {
          assert.ok(entry.createRevision <= entry.modRevision && entry.modRevision <= kv.revision);
          // The last change to the key is its value.
          const mine: KvChange[] = all.changes.filter((c) => c.key === entry.key);
          assert.equal(mine[mine.length - 1]?.value, entry.value);
        }
      }),
      { numRuns: 300 },
    );
  });
});
