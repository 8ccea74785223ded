import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { DEFAULT_APP_LIMITS } from "./limits.js";
import { type LockCommand, type LockResult, LockService } from "./lock.js";

const acquire = (name: string, client: number): LockCommand => ({ op: "acquire", name, client });
const release = (name: string, client: number): LockCommand => ({ op: "release", name, client });

function granted(result: LockResult): number {
  assert.ok(result.ok && result.op === "acquire" && result.status === "granted", JSON.stringify(result));
  return result.token;
}

describe("LockService", () => {
  test("a free lock is granted with a token; a held one queues its requests first come first served", () => {
    const locks = new LockService();
    const first = granted(locks.apply(acquire("l", 1)).result);
    assert.deepEqual(locks.apply(acquire("l", 2)).result, {
      ok: true,
      op: "acquire",
      status: "waiting",
      position: 1,
    });
    assert.deepEqual(locks.apply(acquire("l", 3)).result, {
      ok: true,
      op: "acquire",
      status: "waiting",
      position: 2,
    });
    assert.deepEqual(locks.waiters("l"), [2, 3]);
    const handed = locks.apply(release("l", 1));
    assert.deepEqual(handed.result, { ok: true, op: "release", released: "held" });
    assert.equal(handed.grants.length, 1);
    assert.equal(handed.grants[0]?.client, 2);
    assert.ok((handed.grants[0]?.token ?? 0) > first, "fencing tokens strictly increase");
    assert.deepEqual(locks.holder("l"), { name: "l", client: 2, token: handed.grants[0]?.token });
    assert.equal(locks.lastToken, handed.grants[0]?.token);
  });

  test("the holder asking again gets its grant back; a waiter asking again keeps its place", () => {
    const locks = new LockService();
    const token = granted(locks.apply(acquire("l", 1)).result);
    assert.equal(granted(locks.apply(acquire("l", 1)).result), token);
    assert.equal(locks.lastToken, token, "asking again is not a new grant");
    locks.apply(acquire("l", 2));
    assert.deepEqual(locks.apply(acquire("l", 2)).result, {
      ok: true,
      op: "acquire",
      status: "waiting",
      position: 1,
    });
  });

  test("a waiter can leave the queue; releasing a lock one neither holds nor waits for is an error", () => {
    const locks = new LockService();
    locks.apply(acquire("l", 1));
    locks.apply(acquire("l", 2));
    assert.deepEqual(locks.apply(release("l", 2)).result, {
      ok: true,
      op: "release",
      released: "waiting",
    });
    assert.deepEqual(locks.waiters("l"), []);
    assert.deepEqual(locks.locksOf(2), [], "a client that left its only queue is forgotten");
    const stranger = locks.apply(release("l", 9)).result;
    assert.ok(!stranger.ok && stranger.error === "not-held");
    const none = locks.apply(release("free", 1)).result;
    assert.ok(!none.ok && none.error === "not-held");
    assert.deepEqual(locks.apply(release("l", 1)).grants, [], "no waiter: the lock is simply free");
    assert.equal(locks.holder("l"), null);
    assert.deepEqual(locks.locksOf(1), []);
  });

  test("a dropped holder (its session expired) loses the lock to the next waiter, with a higher token", () => {
    const locks = new LockService();
    const first = granted(locks.apply(acquire("l", 1)).result);
    locks.apply(acquire("l", 2));
    locks.apply(acquire("l", 3));
    const grants = locks.drop([1]);
    assert.equal(grants.length, 1);
    assert.equal(grants[0]?.client, 2);
    assert.ok((grants[0]?.token ?? 0) > first);
    assert.deepEqual(locks.holder("l"), grants[0]);
    assert.deepEqual(locks.waiters("l"), [3], "the queue keeps its order");
    assert.deepEqual(locks.locksOf(1), []);
    assert.deepEqual(locks.drop([1, 7]), [], "dropping an unknown client does nothing");
  });

  test("dropped waiters leave their queues; several drops grant in lock-name order", () => {
    const locks = new LockService();
    locks.apply(acquire("b", 1));
    locks.apply(acquire("a", 1));
    locks.apply(acquire("a", 2));
    locks.apply(acquire("b", 3));
    locks.apply(acquire("a", 3));
    locks.apply(acquire("c", 4));
    locks.apply(acquire("c", 2));
    const grants = locks.drop([2, 1]);
    assert.deepEqual(
      grants.map((grant) => [grant.name, grant.client]),
      [
        ["a", 3],
        ["b", 3],
      ],
    );
    assert.ok((grants[0]?.token ?? 0) < (grants[1]?.token ?? 0));
    assert.deepEqual(locks.waiters("c"), [], "a dropped waiter leaves the queue it waited in");
    assert.deepEqual(locks.locksOf(3), ["a", "b"]);
  });

  test("a dropped holder whose waiters are all dropped too frees the lock", () => {
    const locks = new LockService();
    locks.apply(acquire("l", 1));
    locks.apply(acquire("l", 2));
    assert.deepEqual(locks.drop([1, 2]), []);
    assert.equal(locks.holder("l"), null);
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
    const locks = new LockService(limits);
    const error = (command: LockCommand) => {
      const result = locks.apply(command).result;
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
    const locks = new LockService();
    locks.apply(acquire("l", 1));
    locks.apply(acquire("l", 2));
    const before = locks.snapshot();
    for (const bad of [
      "{}",
      '{"lastToken":1,"locks":[["l",1,2,[]]]}',
      '{"lastToken":2,"locks":[["l",1,1,[1]]]}',
      '{"lastToken":2,"locks":[["l",1,1,[2,2]]]}',
      '{"lastToken":2,"locks":[["l",1,1,[]],["m",2,1,[]]]}',
      '{"lastToken":2,"locks":[["l",1,1,[]],["l",2,2,[]]]}',
      '{"lastToken":2,"locks":[["l",1,0,[]]]}',
      "nope",
    ]) {
      assert.throws(() => locks.restore(bad), Error, bad);
      assert.equal(locks.snapshot(), before);
    }
    const copy = new LockService();
    copy.restore(before);
    assert.equal(copy.snapshot(), before);
    assert.deepEqual(copy.locksOf(2), ["l"], "the per-client index is rebuilt");
  });
});

type Step = { command: LockCommand } | { drop: number[] };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      command: fc.record({
        op: fc.constantFrom("acquire" as const, "release" as const),
        name: fc.constantFrom("a", "b", "c"),
        client: fc.integer({ min: 1, max: 4 }),
      }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ drop: fc.uniqueArray(fc.integer({ min: 1, max: 5 }), { maxLength: 3 }) }),
  },
);

describe("LockService as a replicated state machine (properties)", () => {
  test("at most one holder per lock; tokens strictly increase; a restored replica goes on as one that never was", () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { maxLength: 60 }), fc.nat(60), (steps, cut) => {
        const steady = new LockService();
        let restarted = new LockService();
        let lastToken = 0;
        const waiting = new Set<string>();
        for (const [i, step] of steps.entries()) {
          if (i === cut) {
            const fresh = new LockService();
            fresh.restore(restarted.snapshot());
            restarted = fresh;
          }
          let grants: readonly { name: string; client: number; token: number }[];
          if ("drop" in step) {
            for (const client of step.drop)
              for (const key of [...waiting]) if (key.endsWith(`:${client}`)) waiting.delete(key);
            grants = steady.drop(step.drop);
            assert.deepEqual(restarted.drop(step.drop), grants);
            for (const client of step.drop) assert.deepEqual(steady.locksOf(client), []);
          } else {
            const { command } = step;
            const applied = steady.apply(command);
            assert.deepEqual(restarted.apply(command), applied);
            grants = applied.grants;
            const result = applied.result;
            if (result.ok && result.op === "acquire") {
              if (result.status === "waiting") waiting.add(`${command.name}:${command.client}`);
              else if (result.token > lastToken) lastToken = result.token;
              else assert.equal(result.token, steady.holder(command.name)?.token, "a holder asking again");
            }
            if (result.ok && result.op === "release" && result.released === "waiting")
              waiting.delete(`${command.name}:${command.client}`);
          }
          for (const grant of grants) {
            assert.ok(waiting.has(`${grant.name}:${grant.client}`), "only a waiter is granted later");
            waiting.delete(`${grant.name}:${grant.client}`);
            assert.ok(grant.token > lastToken, "every grant's token is above every token before it");
            lastToken = grant.token;
          }
          for (const name of ["a", "b", "c"]) {
            const holder = steady.holder(name);
            const queue = steady.waiters(name);
            assert.equal(new Set(queue).size, queue.length, "a client waits once per lock");
            if (holder !== null) {
              assert.ok(!queue.includes(holder.client), "a holder does not wait for its own lock");
              assert.ok(holder.token <= lastToken);
              assert.ok(steady.locksOf(holder.client).includes(name), "the index knows the holder");
            } else assert.deepEqual(queue, [], "a free lock has no waiters");
          }
        }
        assert.equal(restarted.snapshot(), steady.snapshot());
      }),
      { numRuns: 400 },
    );
  });
});
