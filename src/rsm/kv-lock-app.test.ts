import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Command, Decision } from "../core/index.js";
import type { ApplyContext } from "./api.js";
import type { KvChange } from "./kv.js";
import { type AppCommand, type AppResult, KvLockApp } from "./kv-lock-app.js";
import { DEFAULT_APP_LIMITS } from "./limits.js";
import type { LockGrant } from "./lock.js";
import {
  encodeEnvelope,
  type SessionEnvelope,
  SessionMachine,
  type SessionOutcome,
} from "./session-machine.js";

const at = (session: number, slot = 1, timeMs = 0): ApplyContext => ({ slot, timeMs, session });

function recordingApp(): { app: KvLockApp; changes: KvChange[]; grants: LockGrant[] } {
  const changes: KvChange[] = [];
  const grants: LockGrant[] = [];
  const app = new KvLockApp({
    onChange: (change) => changes.push(change),
    onGrant: (grant) => grants.push(grant),
  });
  return { app, changes, grants };
}

function token(result: AppResult): number {
  assert.ok(result.ok && result.op === "acquire" && result.status === "granted", JSON.stringify(result));
  return result.token;
}

describe("KvLockApp", () => {
  test("key-value commands apply to the store; onChange hears each change and nothing else", () => {
    const { app, changes } = recordingApp();
    assert.ok(app.apply({ op: "put", key: "a", value: "1" }, at(0)).ok);
    assert.ok(app.apply({ op: "put", key: "b", value: "2" }, at(3)).ok, "with or without a session");
    app.apply({ op: "get", key: "a" }, at(0));
    app.apply({ op: "list", prefix: "" }, at(0));
    app.apply({ op: "delete", key: "absent" }, at(0));
    const failed = app.apply({ op: "cas", key: "a", expectValue: "9", value: "x" }, at(0));
    assert.ok(!failed.ok && "error" in failed && failed.error === "cas-failed");
    assert.ok(app.apply({ op: "cas", key: "a", expectRevision: 1, value: "3" }, at(0)).ok);
    assert.ok(app.apply({ op: "cas", key: "b", expectValue: "2", value: null }, at(0)).ok);
    assert.ok(app.apply({ op: "delete", key: "a" }, at(0)).ok);
    assert.ok(app.apply({ op: "append", key: "b", value: "x" }, at(0)).ok);
    assert.ok(app.apply({ op: "append", key: "b", value: "y" }, at(0)).ok);
    assert.deepEqual(changes, [
      { revision: 1, key: "a", value: "1" },
      { revision: 2, key: "b", value: "2" },
      { revision: 3, key: "a", value: "3" },
      { revision: 4, key: "b", value: null },
      { revision: 5, key: "a", value: null },
      { revision: 6, key: "b", value: "x" },
      { revision: 7, key: "b", value: "xy" },
    ]);
  });

  test("read-side methods: get, list, changesSince, revision", () => {
    const app = new KvLockApp({ limits: { ...DEFAULT_APP_LIMITS, watchHistoryMax: 2 } });
    for (const [key, value] of [
      ["p/a", "1"],
      ["p/b", "2"],
      ["q/c", "3"],
    ] as const)
      app.apply({ op: "put", key, value }, at(0));
    assert.equal(app.revision, 3);
    assert.deepEqual(app.get("p/b"), { key: "p/b", value: "2", createRevision: 2, modRevision: 2 });
    assert.equal(app.get("nope"), null);
    const listed = app.list("p/", 1);
    assert.ok(listed.ok && listed.op === "list");
    assert.deepEqual(
      listed.entries.map((entry) => entry.key),
      ["p/a"],
    );
    assert.equal(listed.more, true);
    const all = app.list("p/");
    assert.ok(all.ok && all.op === "list" && all.entries.length === 2 && !all.more);
    assert.deepEqual(app.changesSince("", 2), {
      ok: true,
      changes: [
        { revision: 2, key: "p/b", value: "2" },
        { revision: 3, key: "q/c", value: "3" },
      ],
    });
    assert.deepEqual(app.changesSince("", 1), { ok: false, error: "compacted", oldest: 2 });
  });

  test("lock commands act for the session they come in; without one they fail and change nothing", () => {
    const { app, grants } = recordingApp();
    const refused = app.apply({ op: "acquire", name: "l" }, at(0));
    assert.ok(!refused.ok && "error" in refused && refused.error === "no-session");
    assert.equal(app.holder("l"), null);
    const released = app.apply({ op: "release", name: "l" }, at(0));
    assert.ok(!released.ok && "error" in released && released.error === "no-session");
    // A client field in the command is not the client: the session is.
    const first = token(app.apply({ op: "acquire", name: "l", client: 9 } as AppCommand, at(4)));
    assert.deepEqual(app.holder("l"), { name: "l", client: 4, token: first });
    assert.deepEqual(grants, [{ name: "l", client: 4, token: first }]);
  });

  test("onGrant hears immediate grants and grants to waiters, not a holder asking again", () => {
    const { app, grants } = recordingApp();
    const first = token(app.apply({ op: "acquire", name: "l" }, at(1)));
    assert.equal(token(app.apply({ op: "acquire", name: "l" }, at(1))), first);
    const waiting = app.apply({ op: "acquire", name: "l" }, at(2));
    assert.deepEqual(waiting, { ok: true, op: "acquire", status: "waiting", position: 1 });
    assert.deepEqual(app.waiters("l"), [2]);
    assert.deepEqual(app.apply({ op: "release", name: "l" }, at(1)), {
      ok: true,
      op: "release",
      released: "held",
    });
    assert.deepEqual(grants, [
      { name: "l", client: 1, token: first },
      { name: "l", client: 2, token: first + 1 },
    ]);
    assert.equal(app.holder("l")?.client, 2);
  });

  test("expire releases the sessions' locks to the next waiters with higher tokens and ends their waits", () => {
    const { app, grants } = recordingApp();
    const first = token(app.apply({ op: "acquire", name: "a" }, at(1)));
    app.apply({ op: "acquire", name: "a" }, at(2));
    app.apply({ op: "acquire", name: "a" }, at(3));
    app.apply({ op: "acquire", name: "b" }, at(2));
    app.apply({ op: "acquire", name: "b" }, at(1));
    grants.length = 0;
    app.expire([1]);
    assert.deepEqual(grants, [{ name: "a", client: 2, token: first + 2 }]);
    assert.deepEqual(app.waiters("a"), [3]);
    assert.deepEqual(app.waiters("b"), [], "the expired session's wait for b ended");
    app.expire([2]);
    assert.equal(app.holder("a")?.client, 3);
    assert.equal(app.holder("b"), null);
    assert.ok((app.holder("a")?.token ?? 0) > first + 2);
  });

  test("anything that is not a command is an error result, never an exception, and changes nothing", () => {
    const { app, changes, grants } = recordingApp();
    const before = app.snapshot();
    for (const bad of [
      null,
      7,
      "put",
      [],
      ["put"],
      {},
      { op: "nope" },
      { op: "put", key: "k" },
      { op: "put", key: 1, value: "v" },
      { op: "cas", key: "k", value: "v" },
      { op: "list" },
      { op: "acquire" },
      { op: "acquire", name: "" },
      { op: "release", name: 5 },
    ]) {
      const result = app.apply(bad as unknown as AppCommand, at(1));
      assert.ok(!result.ok, JSON.stringify(bad));
    }
    assert.equal(app.snapshot(), before);
    assert.deepEqual(changes, []);
    assert.deepEqual(grants, []);
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(3), (value, session) => {
        const result = app.apply(value as AppCommand, at(session));
        assert.equal(typeof result.ok, "boolean");
      }),
      { numRuns: 300 },
    );
  });

  test("snapshot holds both parts; restore takes both or, refusing either, neither", () => {
    const app = new KvLockApp();
    app.apply({ op: "put", key: "k", value: "v" }, at(0));
    app.apply({ op: "acquire", name: "l" }, at(1));
    app.apply({ op: "acquire", name: "l" }, at(2));
    const good = app.snapshot();
    const copy = new KvLockApp();
    copy.restore(good);
    assert.equal(copy.snapshot(), good);
    assert.equal(copy.get("k")?.value, "v");
    assert.deepEqual(copy.waiters("l"), [2]);
    const parsed = JSON.parse(good) as { kv: unknown; locks: unknown };
    for (const bad of [
      "nope",
      "{}",
      JSON.stringify({ kv: parsed.kv }),
      JSON.stringify({ kv: parsed.kv, locks: { lastToken: 0, locks: [["l", 1, 5, []]] } }),
      JSON.stringify({ kv: { revision: -1 }, locks: parsed.locks }),
    ]) {
      const target = new KvLockApp();
      target.apply({ op: "put", key: "other", value: "x" }, at(0));
      target.apply({ op: "acquire", name: "m" }, at(7));
      const before = target.snapshot();
      assert.throws(() => target.restore(bad), Error, bad);
      assert.equal(target.snapshot(), before, bad);
    }
  });
});

/** Runs a `SessionMachine` around a `KvLockApp`, building decisions with fresh core commands. */
function node() {
  const outcomes: SessionOutcome<AppResult>[] = [];
  const grants: LockGrant[] = [];
  const app = new KvLockApp({ onGrant: (grant) => grants.push(grant) });
  const machine = new SessionMachine(app, {
    sessionTtlMs: 1000,
    onOutcome: (_command, outcome) => outcomes.push(outcome),
  });
  return { app, machine, outcomes, grants };
}

class Log {
  private slot = 0;
  private coreSeq = 0;
  decision(...envelopes: SessionEnvelope<AppCommand>[]): Decision {
    const commands: Command[] = envelopes.map((envelope) => ({
      client: 1,
      seq: ++this.coreSeq,
      payload: encodeEnvelope(envelope),
    }));
    return { slot: ++this.slot, value: { commands }, commands };
  }
}

describe("KvLockApp under a SessionMachine", () => {
  test("a holder's session expiring through the log grants its lock to the next waiter, with a higher token, on every replica", () => {
    const replicas = [node(), node()];
    const log = new Log();
    const decisions = [
      log.decision({ t: 0, open: true }, { t: 0, open: true }),
      log.decision(
        { t: 10, s: 1, q: 1, a: 0, c: { op: "acquire", name: "l" } },
        { t: 20, s: 2, q: 1, a: 0, c: { op: "acquire", name: "l" } },
      ),
      // Session 2 keeps alive; session 1 goes silent.
      log.decision({ t: 900, s: 2, keepalive: true }),
      log.decision({ t: 1010, s: 2, keepalive: true }),
      log.decision({ t: 1011, s: 2, q: 2, a: 1, c: { op: "get", key: "x" } }),
      // Session 1's late release: its session is gone, and its lock with it.
      log.decision({ t: 1012, s: 1, q: 2, a: 1, c: { op: "release", name: "l" } }),
    ];
    for (const replica of replicas) {
      const outcomes: SessionOutcome<AppResult>[] = [];
      for (const [i, decision] of decisions.entries()) {
        const before = replica.outcomes.length;
        replica.machine.apply(decision);
        outcomes.push(...replica.outcomes.slice(before));
        if (i === 3)
          assert.equal(replica.app.holder("l")?.client, 1, "at 1010, 1000 ms is the limit, not past it");
        if (i === 4) {
          assert.deepEqual(replica.app.holder("l"), { name: "l", client: 2, token: 2 }, "expired at 1011");
          assert.equal(replica.machine.hasSession(1), false);
        }
      }
      const acquired = outcomes[2];
      assert.ok(acquired?.ok && "result" in acquired);
      const first = token(acquired.result);
      assert.deepEqual(outcomes[3], {
        ok: true,
        result: { ok: true, op: "acquire", status: "waiting", position: 1 },
      });
      assert.deepEqual(replica.app.holder("l"), { name: "l", client: 2, token: first + 1 });
      assert.deepEqual(replica.grants, [
        { name: "l", client: 1, token: first },
        { name: "l", client: 2, token: first + 1 },
      ]);
      const late = outcomes[7];
      assert.ok(late !== undefined && !late.ok && late.code === "session-expired");
      assert.equal(replica.app.holder("l")?.client, 2);
    }
    assert.equal(replicas[0]?.machine.snapshot(), replicas[1]?.machine.snapshot());
    assert.deepEqual(replicas[0]?.outcomes, replicas[1]?.outcomes);
  });

  test("a retried acquire gets its original answer without queueing twice", () => {
    const { machine, outcomes, app } = node();
    const log = new Log();
    machine.apply(log.decision({ t: 0, open: true }, { t: 0, open: true }));
    machine.apply(log.decision({ t: 1, s: 1, q: 1, a: 0, c: { op: "acquire", name: "l" } }));
    const waitFor = { t: 2, s: 2, q: 1, a: 0, c: { op: "acquire", name: "l" } } as const;
    machine.apply(log.decision(waitFor));
    machine.apply(log.decision(waitFor, waitFor));
    assert.deepEqual(outcomes.slice(3), [outcomes[3], outcomes[3], outcomes[3]]);
    assert.deepEqual(app.waiters("l"), [2]);
  });
});

// Random streams of sessions, key-value and lock commands: replicas agree, a restored replica goes
// on as one that never was, and the fencing tokens of all grants strictly increase.
const envelopeArbitrary = (sessions: number): fc.Arbitrary<SessionEnvelope<AppCommand>> => {
  const command: fc.Arbitrary<AppCommand> = fc.oneof(
    fc.record({ op: fc.constant("acquire" as const), name: fc.constantFrom("a", "b") }),
    fc.record({ op: fc.constant("release" as const), name: fc.constantFrom("a", "b") }),
    fc.record({
      op: fc.constant("put" as const),
      key: fc.constantFrom("x", "y"),
      value: fc.string({ maxLength: 3 }),
    }),
    fc.record({
      op: fc.constant("append" as const),
      key: fc.constantFrom("x", "y"),
      value: fc.string({ maxLength: 3 }),
    }),
    fc.record({ op: fc.constant("delete" as const), key: fc.constantFrom("x", "y") }),
  );
  const session = fc.integer({ min: 1, max: sessions });
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant({ t: 0, open: true as const }) },
    { weight: 1, arbitrary: session.map((s) => ({ t: 0, s, keepalive: true as const })) },
    {
      weight: 5,
      arbitrary: fc
        .record({ t: fc.constant(0), s: session, q: fc.integer({ min: 1, max: 4 }), c: command })
        .chain((e) => fc.nat(e.q - 1).map((a) => ({ ...e, a }))),
    },
    { weight: 1, arbitrary: command.map((c) => ({ t: 0, c })) },
  );
};

// Step i names sessions 1 .. 1 + i/4: about as many as the opens before it (one in eight steps).
const streamArbitrary = fc
  .array(fc.integer({ min: 0, max: 300 }), { maxLength: 60, size: "max" })
  .chain((advances) =>
    fc.tuple(
      ...advances.map((advanceMs, i) =>
        envelopeArbitrary(1 + Math.floor(i / 4)).map((envelope) => ({ advanceMs, envelope })),
      ),
    ),
  );

describe("KvLockApp under a SessionMachine (properties)", () => {
  test("replicas agree; a restored replica goes on as one that never was; every grant's token is above all before it", () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(60), (steps, cut) => {
        const log = new Log();
        let timeMs = 0;
        const decisions = steps.map(({ advanceMs, envelope }) => {
          timeMs += advanceMs;
          return log.decision({ ...envelope, t: timeMs });
        });
        const steady = node();
        const before = node();
        const at = Math.min(cut, decisions.length);
        for (const decision of decisions.slice(0, at)) {
          steady.machine.apply(decision);
          before.machine.apply(decision);
        }
        const restored = node();
        restored.machine.restore(before.machine.snapshot(), before.machine.appliedThrough);
        for (const decision of decisions.slice(at)) {
          steady.machine.apply(decision);
          restored.machine.apply(decision);
        }
        assert.equal(restored.machine.snapshot(), steady.machine.snapshot());
        assert.deepEqual(restored.outcomes, steady.outcomes.slice(before.outcomes.length));
        assert.deepEqual(restored.grants, steady.grants.slice(before.grants.length));
        for (let i = 1; i < steady.grants.length; i++)
          assert.ok(
            (steady.grants[i]?.token ?? 0) > (steady.grants[i - 1]?.token ?? 0),
            "fencing tokens strictly increase",
          );
        for (const name of ["a", "b"]) {
          const holder = steady.app.holder(name);
          if (holder !== null)
            assert.ok(steady.machine.hasSession(holder.client), "a holder's session is open");
          for (const waiter of steady.app.waiters(name))
            assert.ok(steady.machine.hasSession(waiter), "a waiter's session is open");
        }
      }),
      { numRuns: 200 },
    );
  });
});
