import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { DEFAULT_APP_LIMITS } from "./limits.js";
import { type LockCommand, type LockResult, LockService } from "./lock.js";

const TTL_MS = 1000;
const acquire = (name: string, client: number): LockCommand => ({ op: "acquire", name, client });
const release = (name: string, client: number): LockCommand => ({ op: "release", name, client });

function granted(result: LockResult): number {
  assert.ok(result.ok && result.op === "acquire" && result.status === "granted", JSON.stringify(result));
  return result.token;
}

describe("LockService", () => {
  test("a free lock is granted with a token; a held one queues its requests first come first served", () => {
    const locks = new LockService(TTL_MS);
    const first = granted(locks.apply(acquire("l", 1), 0).result);
    assert.deepEqual(locks.apply(acquire("l", 2), 1).result, {
      ok: true,
      op: "acquire",
      status: "waiting",
      position: 1,
    });
    assert.deepEqual(locks.apply(acquire("l", 3), 2).result, {
      ok: true,
      op: "acquire",
      status: "waiting",
      position: 2,
    });
    assert.deepEqual(locks.waiters("l"), [2, 3]);
    const handed = locks.apply(release("l", 1), 3);
    assert.deepEqual(handed.result, { ok: true, op: "release", released: "held" });
    assert.equal(handed.grants.length, 1);
    assert.equal(handed.grants[0]?.client, 2);
    assert.ok((handed.grants[0]?.token ?? 0) > first, "fencing tokens strictly increase");
    assert.deepEqual(locks.holder("l"), { name: "l", client: 2, token: handed.grants[0]?.token });
  });

  test("the holder asking again gets its grant back; a waiter asking again keeps its place", () => {
    const locks = new LockService(TTL_MS);
    const token = granted(locks.apply(acquire("l", 1), 0).result);
    assert.equal(granted(locks.apply(acquire("l", 1), 1).result), token);
    locks.apply(acquire("l", 2), 2);
    assert.deepEqual(locks.apply(acquire("l", 2), 3).result, {
      ok: true,
      op: "acquire",
      status: "waiting",
      position: 1,
    });
  });

  test("a waiter can leave the queue; releasing a lock one neither holds nor waits for is an error", () => {
    const locks = new LockService(TTL_MS);
    locks.apply(acquire("l", 1), 0);
    locks.apply(acquire("l", 2), 0);
    assert.deepEqual(locks.apply(release("l", 2), 1).result, {
      ok: true,
      op: "release",
      released: "waiting",
    });
    assert.deepEqual(locks.waiters("l"), []);
    const stranger = locks.apply(release("l", 9), 1).result;
    assert.ok(!stranger.ok && stranger.error === "not-held");
    const none = locks.apply(release("free", 1), 1).result;
    assert.ok(!none.ok && none.error === "not-held");
    assert.deepEqual(locks.apply(release("l", 1), 2).grants, [], "no waiter: the lock is simply free");
    assert.equal(locks.holder("l"), null);
  });

  test("a holder whose session expires (by the log's time) loses the lock to the next waiter", () => {
    const locks = new LockService(TTL_MS);
    locks.apply(acquire("l", 1), 0);
    locks.apply(acquire("l", 2), 100);
    // Client 2 keeps its session alive; client 1 goes silent.
    assert.deepEqual(locks.apply({ op: "keepalive", client: 2 }, 900).result, {
      ok: true,
      op: "keepalive",
      session: true,
    });
    const still = locks.apply({ op: "keepalive", client: 2 }, 1000);
    assert.deepEqual(still.expired, [], "not yet: 1000 ms of log time is the limit, not past it");
    const later = locks.apply({ op: "keepalive", client: 2 }, 1001);
    assert.deepEqual(later.expired, [1]);
    assert.equal(later.grants[0]?.client, 2);
    assert.equal(locks.holder("l")?.client, 2);
    // The log's time never runs backwards: an older time (a new leader's clock behind) changes nothing.
    const behind = locks.apply({ op: "keepalive", client: 2 }, 10);
    assert.deepEqual(behind.expired, []);
    assert.deepEqual(locks.apply({ op: "keepalive", client: 7 }, 1002).result, {
      ok: true,
      op: "keepalive",
      session: false,
    });
  });

  test("expired waiters leave their queues; several expiries grant in lock-name order", () => {
    const locks = new LockService(TTL_MS);
    locks.apply(acquire("b", 1), 0);
    locks.apply(acquire("a", 1), 0);
    locks.apply(acquire("a", 2), 0);
    locks.apply(acquire("b", 3), 500);
    locks.apply(acquire("a", 3), 500);
    const expired = locks.apply({ op: "keepalive", client: 3 }, 1200);
    assert.deepEqual(expired.expired, [1, 2]);
    assert.deepEqual(
      expired.grants.map((g) => [g.name, g.client]),
      [
        ["a", 3],
        ["b", 3],
      ],
    );
  });

  test("limits: waiters per lock and in all, locks, sessions, names", () => {
    const limits = {
      ...DEFAULT_APP_LIMITS,
      waitersPerLockMax: 1,
      waitersMax: 2,
      locksMax: 3,
      lockSessionsMax: 4,
      lockNameBytesMax: 3,
    };
    const locks = new LockService(TTL_MS, limits);
    const error = (command: LockCommand) => {
      const result = locks.apply(command, 0).result;
      return result.ok ? "ok" : result.error;
    };
    assert.equal(error(acquire("a", 1)), "ok");
    assert.equal(error(acquire("a", 2)), "ok");
    assert.equal(error(acquire("a", 3)), "too-many-waiters");
    assert.equal(error(acquire("b", 1)), "ok");
    assert.equal(error(acquire("b", 3)), "ok");
    assert.equal(error(acquire("c", 4)), "ok");
    assert.equal(error(acquire("c", 1)), "too-many-waiters", "all waiters");
    assert.equal(error(acquire("d", 1)), "too-many-locks");
    assert.equal(error(acquire("c", 6)), "too-many-sessions");
    assert.equal(error(acquire("long", 1)), "name-too-large");
    assert.equal(error(acquire("", 1)), "bad-command");
    assert.equal(error(acquire("a", -1)), "bad-command");
  });

  test("restore refuses what is not a snapshot and keeps its state", () => {
    const locks = new LockService(TTL_MS);
    locks.apply(acquire("l", 1), 0);
    const before = locks.snapshot();
    for (const bad of [
      "{}",
      '{"clockMs":0,"lastToken":1,"locks":[["l",1,2,[]]],"sessions":[[1,0]]}',
      '{"clockMs":0,"lastToken":1,"locks":[["l",1,1,[2]]],"sessions":[[1,0]]}',
      "nope",
    ]) {
      assert.throws(() => locks.restore(bad), Error, bad);
      assert.equal(locks.snapshot(), before);
    }
  });
});

const commandArbitrary: fc.Arbitrary<{ command: LockCommand; advanceMs: number }> = fc.record({
  command: fc.oneof(
    fc.record({
      op: fc.constant("acquire" as const),
      name: fc.constantFrom("a", "b"),
      client: fc.integer({ min: 1, max: 4 }),
    }),
    fc.record({
      op: fc.constant("release" as const),
      name: fc.constantFrom("a", "b"),
      client: fc.integer({ min: 1, max: 4 }),
    }),
    fc.record({ op: fc.constant("keepalive" as const), client: fc.integer({ min: 1, max: 4 }) }),
  ),
  advanceMs: fc.integer({ min: 0, max: 600 }),
});

describe("LockService as a replicated state machine (properties)", () => {
  test("at most one holder per lock; tokens strictly increase; a restored replica goes on as one that never was", () => {
    fc.assert(
      fc.property(fc.array(commandArbitrary, { maxLength: 60 }), fc.nat(60), (steps, cut) => {
        const steady = new LockService(TTL_MS);
        let restarted = new LockService(TTL_MS);
        let timeMs = 0;
        let lastToken = 0;
        const waiting = new Set<string>();
        for (const [i, { command, advanceMs }] of steps.entries()) {
          timeMs += advanceMs;
          if (i === cut) {
            const fresh = new LockService(TTL_MS);
            fresh.restore(restarted.snapshot());
            restarted = fresh;
          }
          const applied = steady.apply(command, timeMs);
          assert.deepEqual(restarted.apply(command, timeMs), applied);
          // Sessions expire before the command runs: their waits are gone.
          for (const client of applied.expired)
            for (const key of [...waiting]) if (key.endsWith(`:${client}`)) waiting.delete(key);
          for (const grant of applied.grants) {
            assert.ok(waiting.has(`${grant.name}:${grant.client}`), "only a waiter is granted later");
            waiting.delete(`${grant.name}:${grant.client}`);
            assert.ok(grant.token > lastToken, "every grant's token is above every token before it");
            lastToken = grant.token;
          }
          const result = applied.result;
          if (result.ok && result.op === "acquire" && command.op === "acquire") {
            if (result.status === "waiting") waiting.add(`${command.name}:${command.client}`);
            else if (result.token > lastToken) lastToken = result.token;
            else assert.equal(result.token, steady.holder(command.name)?.token, "a holder asking again");
          }
          if (
            result.ok &&
            result.op === "release" &&
            result.released === "waiting" &&
            command.op === "release"
          )
            waiting.delete(`${command.name}:${command.client}`);
          for (const name of ["a", "b"]) {
            const holder = steady.holder(name);
            if (holder !== null) {
              assert.ok(
                !steady.waiters(name).includes(holder.client),
                "a holder does not wait for its own lock",
              );
              assert.ok(holder.token <= lastToken);
            }
          }
        }
        assert.equal(restarted.snapshot(), steady.snapshot());
      }),
      { numRuns: 400 },
    );
  });
});
