import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { Command, Decision } from "../core/index.js";
import type { Application, ApplyContext } from "./api.js";
import { DEFAULT_SESSION_LIMITS } from "./limits.js";
import {
  decodeEnvelope,
  encodeEnvelope,
  type SessionEnvelope,
  SessionMachine,
  type SessionMachineOptions,
  type SessionOutcome,
} from "./session-machine.js";

/**
 * A small deterministic application that remembers what it was asked: `{add: n, tag?}` adds n to
 * a total and returns the total with the context; every apply and every expiry is recorded (and in
 * the snapshot, so a restored replica has the same record).
 */
class Recorder implements Application<unknown, unknown> {
  total = 0;
  applied: { command: unknown; context: ApplyContext }[] = [];
  expired: { sessions: number[]; context: ApplyContext }[] = [];

  apply(command: unknown, context: ApplyContext): unknown {
    this.applied.push({ command, context });
    const add = (command as { add?: unknown } | null)?.add;
    if (typeof add === "number") this.total += add;
    return { total: this.total, slot: context.slot, timeMs: context.timeMs, session: context.session };
  }

  expire(sessions: readonly number[], context: ApplyContext): void {
    this.expired.push({ sessions: [...sessions], context });
  }

  snapshot(): string {
    return JSON.stringify({ total: this.total, applied: this.applied, expired: this.expired });
  }

  restore(state: string): void {
    const parsed = JSON.parse(state) as Recorder;
    if (typeof parsed.total !== "number" || !Array.isArray(parsed.applied) || !Array.isArray(parsed.expired))
      throw new Error("not a recorder state");
    this.total = parsed.total;
    this.applied = parsed.applied;
    this.expired = parsed.expired;
  }
}

/** Builds decisions: every command gets a fresh core (client, seq), as a new proposal would. */
class Log {
  private slot = 0;
  private coreSeq = 0;

  decision(...envelopes: (SessionEnvelope | string)[]): Decision {
    const commands: Command[] = envelopes.map((envelope) => ({
      client: 1,
      seq: ++this.coreSeq,
      payload: typeof envelope === "string" ? envelope : encodeEnvelope(envelope),
    }));
    return { slot: ++this.slot, value: { commands }, commands };
  }
}

interface Harness {
  readonly machine: SessionMachine<unknown, unknown>;
  readonly app: Recorder;
  readonly outcomes: { outcome: SessionOutcome<unknown>; slot: number; seq: number }[];
  readonly applied: number[];
  /** Applies one decision; returns the outcomes of its commands. */
  run(decision: Decision): SessionOutcome<unknown>[];
}

function harness(options: Partial<SessionMachineOptions<unknown>> = {}): Harness {
  const app = new Recorder();
  const outcomes: Harness["outcomes"] = [];
  const applied: number[] = [];
  const machine = new SessionMachine<unknown, unknown>(app, {
    sessionTtlMs: 1000,
    ...options,
    onOutcome: (command, outcome, slot) => outcomes.push({ outcome, slot, seq: command.seq }),
    onApplied: (slot) => applied.push(slot),
  });
  return {
    machine,
    app,
    outcomes,
    applied,
    run(decision) {
      const before = outcomes.length;
      machine.apply(decision);
      return outcomes.slice(before).map((entry) => entry.outcome);
    },
  };
}

const open = (t: number | null): SessionEnvelope => ({ t, open: true });
const keepalive = (t: number | null, s: number): SessionEnvelope => ({ t, s, keepalive: true });
const inSession = (t: number | null, s: number, q: number, c: unknown, a = q - 1): SessionEnvelope => ({
  t,
  s,
  q,
  a,
  c,
});
const plain = (t: number | null, c: unknown): SessionEnvelope => ({ t, c });

function opened(outcome: SessionOutcome<unknown> | undefined): number {
  assert.ok(outcome?.ok && "session" in outcome, JSON.stringify(outcome));
  return outcome.session;
}

function errorCode(outcome: SessionOutcome<unknown> | undefined): string {
  assert.ok(outcome !== undefined && !outcome.ok, JSON.stringify(outcome));
  return outcome.code;
}

describe("SessionMachine", () => {
  test("a command without a session is applied with the log's time and its result returned", () => {
    const { run, app } = harness();
    const log = new Log();
    const [outcome] = run(log.decision(plain(500, { add: 2 })));
    assert.deepEqual(outcome, { ok: true, result: { total: 2, slot: 1, timeMs: 500, session: 0 } });
    assert.equal(app.applied.length, 1);
  });

  test("open gives ids 1, 2, 3 that are never reused; keepalive answers with the session", () => {
    const { run, machine } = harness();
    const log = new Log();
    const ids = run(log.decision(open(0), open(0), open(0))).map(opened);
    assert.deepEqual(ids, [1, 2, 3]);
    assert.deepEqual(run(log.decision(keepalive(10, 2))), [{ ok: true, session: 2 }]);
    // All expire; the next open still gets a new id.
    assert.equal(opened(run(log.decision(open(5000)))[0]), 4);
    assert.equal(machine.sessionCount, 1);
    assert.equal(machine.hasSession(2), false);
    assert.equal(machine.hasSession(4), true);
  });

  test("an unknown session is session-expired (expired, or never opened), and nothing is applied", () => {
    const { run, app } = harness();
    const log = new Log();
    opened(run(log.decision(open(0)))[0]);
    const [expired, never, keepExpired] = run(
      log.decision(inSession(2000, 1, 1, { add: 1 }), inSession(2000, 9, 1, { add: 1 }), keepalive(2000, 1)),
    );
    assert.equal(errorCode(expired), "session-expired");
    assert.match((expired as { message: string }).message, /session 1 expired/);
    assert.equal(errorCode(never), "session-expired");
    assert.match((never as { message: string }).message, /never opened/);
    assert.equal(errorCode(keepExpired), "session-expired");
    assert.equal(app.applied.length, 0);
  });

  test("a retry of a session command returns the original result without a second apply", () => {
    const { run, app } = harness();
    const log = new Log();
    const s = opened(run(log.decision(open(0)))[0]);
    const [first] = run(log.decision(inSession(10, s, 1, { add: 5 })));
    assert.deepEqual(first, { ok: true, result: { total: 5, slot: 2, timeMs: 10, session: s } });
    // The same (session, seq) again: in a later slot (a retry through another node) and twice in
    // one slot (two proposers each got the retry in).
    const [later] = run(log.decision(inSession(20, s, 1, { add: 5 })));
    const [again, twice] = run(
      log.decision(inSession(30, s, 1, { add: 5 }), inSession(30, s, 1, { add: 5 })),
    );
    assert.deepEqual(later, first);
    assert.deepEqual(again, first);
    assert.deepEqual(twice, first);
    assert.equal(app.applied.length, 1, "applied exactly once");
    assert.equal(app.total, 5);
  });

  test("results acknowledged are dropped; a seq already acknowledged is a bad-request, not applied", () => {
    const { run, app, machine } = harness();
    const log = new Log();
    const s = opened(run(log.decision(open(0)))[0]);
    // Pipelined: seqs 1, 2, 3 outstanding at once (ackedThrough 0), decided out of order.
    run(log.decision(inSession(1, s, 2, { add: 2 }, 0), inSession(1, s, 1, { add: 1 }, 0)));
    run(log.decision(inSession(1, s, 3, { add: 3 }, 0)));
    assert.equal(machine.keptResults, 3);
    // The client acknowledges through 2 with seq 4: results 1 and 2 go, 3 stays.
    run(log.decision(inSession(2, s, 4, { add: 4 }, 2)));
    assert.equal(machine.keptResults, 2);
    const [acked] = run(log.decision(inSession(3, s, 2, { add: 2 }, 0)));
    assert.equal(errorCode(acked), "bad-request");
    assert.match((acked as { message: string }).message, /seq already acknowledged/);
    const [kept] = run(log.decision(inSession(3, s, 3, { add: 3 }, 0)));
    assert.deepEqual(kept, { ok: true, result: { total: 6, slot: 3, timeMs: 1, session: s } });
    assert.equal(app.applied.length, 4);
  });

  test("a kept result is the result as it was applied, even if the application's object changes later", () => {
    const shared = { count: 0 };
    const app: Application<unknown, { count: number }> = {
      apply() {
        shared.count++;
        return shared; // a careless application returning its own live state
      },
      snapshot: () => String(shared.count),
      restore: () => {},
    };
    const outcomes: SessionOutcome<{ count: number }>[] = [];
    const machine = new SessionMachine(app, { onOutcome: (_command, outcome) => outcomes.push(outcome) });
    const log = new Log();
    machine.apply(log.decision(open(0)));
    machine.apply(log.decision(inSession(0, 1, 1, {}), plain(0, {})));
    machine.apply(log.decision(inSession(0, 1, 1, {})));
    assert.deepEqual(outcomes[3], { ok: true, result: { count: 1 } });
  });

  test("a session silent for more than sessionTtlMs of the log's time expires at the command that moves the clock past it", () => {
    const { run, app, machine } = harness({ sessionTtlMs: 1000 });
    const log = new Log();
    const [a, b, c] = run(log.decision(open(0), open(100), open(200))).map(opened);
    run(log.decision(keepalive(300, a as number)));
    // Last activity: b at 100, c at 200, a at 300. At 1100 nothing has been silent *more* than 1000.
    run(log.decision(plain(1100, {})));
    assert.deepEqual(app.expired, []);
    const [result] = run(log.decision(plain(1250, { add: 1 })));
    assert.deepEqual(app.expired, [{ sessions: [b, c], context: { slot: 4, timeMs: 1250, session: 0 } }]);
    assert.ok(result?.ok, "the command that moved the clock runs after the expiry");
    assert.equal(machine.sessionCount, 1);
    assert.ok(machine.hasSession(a as number));
  });

  test("a leader's clock entry moves the log's clock and expires silent sessions, and applies nothing", () => {
    const { run, app, machine } = harness({ sessionTtlMs: 1000 });
    const log = new Log();
    const [a] = run(log.decision(open(0))).map(opened);
    // A follower's commands carry no time: they do not move the clock.
    run(log.decision(plain(null, { add: 1 })));
    assert.equal(machine.clockMs, 0);
    const [outcome] = run(log.decision({ t: 1500, clock: true }));
    assert.deepEqual(outcome, { ok: true, session: 0 });
    assert.equal(machine.clockMs, 1500);
    assert.deepEqual(
      app.expired.map((e) => e.sessions),
      [[a]],
    );
    assert.equal(app.applied.length, 1, "only the plain command was applied");
    assert.equal(decodeEnvelope('{"t":5,"clock":false}').ok, false);
    assert.equal(encodeEnvelope({ t: 7, clock: true }), '{"t":7,"clock":true}');
  });

  test("a session opened before the log has any time counts its silence from the first time, not from 0", () => {
    const { run, app, machine } = harness({ sessionTtlMs: 1000 });
    const log = new Log();
    // Opened through a follower (no t) in a fresh log: the log has no time yet.
    const [s] = run(log.decision(open(null))).map(opened);
    assert.equal(machine.clockKnown, false);
    // The first leader stamp is a wall-clock time, far from 0: the session lives on from there.
    const [write] = run(log.decision(inSession(1_700_000_000_000, s as number, 1, { add: 1 })));
    assert.ok(write?.ok, JSON.stringify(write));
    assert.equal(machine.clockKnown, true);
    assert.equal(app.expired.length, 0, "nothing expired at the first time");
    // A snapshot taken before any time restores to a log without time, and re-times the same way.
    const fresh = harness({ sessionTtlMs: 1000 });
    const freshLog = new Log();
    const [t] = fresh.run(freshLog.decision(open(null))).map(opened);
    const copy = harness({ sessionTtlMs: 1000 });
    copy.machine.restore(fresh.machine.snapshot(), 1);
    assert.equal(copy.machine.clockKnown, false);
    const [later] = copy.run(
      Object.assign(freshLog.decision(inSession(5_000_000, t as number, 1, {})), { slot: 2 }),
    );
    assert.ok(later?.ok, JSON.stringify(later));
    // Once the log has a time, silence counts from the session's last activity as before.
    run(log.decision(plain(1_700_000_001_500, {})));
    assert.deepEqual(
      app.expired.map((e) => e.sessions),
      [[s]],
    );
  });

  test("expired sessions leave in least-recently-active order, not id order", () => {
    const { run, app } = harness({ sessionTtlMs: 1000 });
    const log = new Log();
    const ids = run(log.decision(open(0), open(0), open(0))).map(opened);
    run(log.decision(keepalive(10, ids[0] as number), keepalive(20, ids[1] as number)));
    run(log.decision(plain(5000, {})));
    assert.deepEqual(app.expired[0]?.sessions, [ids[2], ids[0], ids[1]]);
  });

  test("the log's clock never goes back, and a t that is not a time is ignored", () => {
    const { run, machine } = harness();
    const log = new Log();
    const [first] = run(log.decision(plain(1000, {})));
    assert.equal(machine.clockMs, 1000);
    const [behind] = run(log.decision(plain(10, {})));
    assert.equal((behind as { result: { timeMs: number } }).result.timeMs, 1000);
    for (const t of ['"x"', "-5", "1.5", "1e300", "null"]) {
      const [outcome] = run(log.decision(`{"t":${t},"c":{}}`));
      assert.ok(outcome?.ok, `t ${t} is ignored, the command still applies`);
    }
    const [noTime] = run(log.decision('{"c":{}}'));
    assert.ok(noTime?.ok);
    assert.equal(machine.clockMs, 1000);
    assert.ok(first?.ok);
  });

  test("malformed envelopes are bad-request and change nothing (no apply, no clock, no session)", () => {
    const { run, app, machine } = harness();
    const log = new Log();
    opened(run(log.decision(open(0)))[0]);
    const before = machine.snapshot();
    const bad = [
      "",
      "nope",
      "[]",
      "null",
      "7",
      '"text"',
      "{}",
      '{"t":5000}',
      '{"t":5000,"c":{},"x":1}',
      '{"t":5000,"open":false}',
      '{"t":5000,"open":true,"c":{}}',
      '{"t":5000,"s":1,"keepalive":1}',
      '{"t":5000,"s":0,"keepalive":true}',
      '{"t":5000,"s":1,"q":1,"c":{}}',
      '{"t":5000,"s":1,"q":0,"a":0,"c":{}}',
      '{"t":5000,"s":1,"q":2,"a":2,"c":{}}',
      '{"t":5000,"s":1,"q":2,"a":-1,"c":{}}',
      '{"t":5000,"s":"1","q":2,"a":1,"c":{}}',
      '{"t":5000,"s":1,"q":2,"a":1}',
      '{"t":5000,"s":1.5,"q":2,"a":1,"c":{}}',
      '{"t":5000,"q":2,"a":1,"c":{}}',
    ];
    const outcomes = run(log.decision(...bad));
    for (const [i, outcome] of outcomes.entries()) assert.equal(errorCode(outcome), "bad-request", bad[i]);
    assert.equal(app.applied.length, 0);
    assert.equal(machine.snapshot(), before, "the clock did not move: session 1 did not expire");
  });

  test("bounds: sessionsMax and results kept (per session, and in all) answer busy without applying", () => {
    const { run, app, machine } = harness({ sessionsMax: 2, resultsPerSessionMax: 2, resultsMax: 3 });
    const log = new Log();
    const [a, b, full] = run(log.decision(open(0), open(0), open(0)));
    assert.equal(errorCode(full), "busy");
    const s = opened(a);
    const t = opened(b);
    const [one, two, three] = run(
      log.decision(inSession(0, s, 1, {}, 0), inSession(0, s, 2, {}, 0), inSession(0, s, 3, {}, 0)),
    );
    assert.ok(one?.ok && two?.ok);
    assert.equal(errorCode(three), "busy");
    const [other, otherFull] = run(log.decision(inSession(0, t, 1, {}, 0), inSession(0, t, 2, {}, 0)));
    assert.ok(other?.ok);
    assert.equal(errorCode(otherFull), "busy", "resultsMax: 3 kept in all");
    assert.equal(app.applied.length, 3);
    assert.equal(machine.keptResults, 3);
    // Acknowledging makes room: seq 3 (acked through 2) now applies.
    const [room] = run(log.decision(inSession(0, s, 3, {}, 2)));
    assert.ok(room?.ok);
    // An expiry makes room for a session.
    run(log.decision(keepalive(900, t)));
    const [newSession] = run(log.decision(open(1500)));
    assert.equal(opened(newSession), 3);
    assert.equal(machine.keptResults, 1, "the expired session's results went with it");
  });

  test("onOutcome hears every command with its slot, onApplied each decision; appliedThrough follows", () => {
    const { run, outcomes, applied, machine } = harness();
    const log = new Log();
    run(log.decision(open(0), "nope", plain(0, {})));
    run(log.decision());
    assert.deepEqual(
      outcomes.map((entry) => [entry.slot, entry.seq]),
      [
        [1, 1],
        [1, 2],
        [1, 3],
      ],
    );
    assert.deepEqual(applied, [1, 2]);
    assert.equal(machine.appliedThrough, 2);
  });

  test("a decision applied twice is an invariant violation; an app.apply that throws propagates", () => {
    const { machine } = harness();
    const log = new Log();
    const first = log.decision(plain(0, {}));
    machine.apply(first);
    assert.throws(() => machine.apply(first), /applied twice/);
    const throwing = new SessionMachine<unknown, unknown>({
      apply() {
        throw new Error("app bug");
      },
      snapshot: () => "",
      restore: () => {},
    });
    assert.throws(() => throwing.apply(new Log().decision(plain(0, {}))), /app bug/);
  });

  test("constructor refuses limits that are not positive integers", () => {
    assert.throws(() => new SessionMachine(new Recorder(), { sessionTtlMs: 0 }), RangeError);
    assert.throws(() => new SessionMachine(new Recorder(), { sessionsMax: 1.5 }), RangeError);
    assert.equal(new SessionMachine(new Recorder()).keptResults, 0);
    assert.ok(DEFAULT_SESSION_LIMITS.resultsMax >= DEFAULT_SESSION_LIMITS.sessionsMax);
  });

  test("restore takes a snapshot as of a slot; it refuses what is not one and changes nothing", () => {
    const { run, machine } = harness();
    const log = new Log();
    const s = opened(run(log.decision(open(0)))[0]);
    run(log.decision(inSession(10, s, 1, { add: 1 })));
    const good = machine.snapshot();
    const copy = harness();
    copy.machine.restore(good, 2);
    assert.equal(copy.machine.snapshot(), good);
    assert.equal(copy.machine.appliedThrough, 2);
    const parsed = JSON.parse(good) as Record<string, unknown>;
    const variant = (change: Record<string, unknown>): string => JSON.stringify({ ...parsed, ...change });
    const app = parsed.app as string;
    for (const bad of [
      "nope",
      "[]",
      variant({ clockMs: -1 }),
      variant({ nextSession: "1" }),
      variant({ app: 5 }),
      variant({ app: "not the recorder's" }),
      variant({ sessions: [[2, 10, 0, []]] }), // an id above nextSession
      variant({ sessions: [[1, 99, 0, []]] }), // active after the clock
      variant({
        nextSession: 2,
        sessions: [
          [1, 10, 0, []],
          [2, 5, 0, []],
        ],
      }), // out of order
      variant({
        nextSession: 2,
        sessions: [
          [1, 5, 0, []],
          [1, 10, 0, []],
        ],
      }), // twice
      variant({ sessions: [[1, 10, 1, [[1, "{}"]]]] }), // a result at or below ackedThrough
      variant({ sessions: [[1, 10, 0, [[1, "{"]]]] }), // not JSON
      variant({
        sessions: [
          [
            1,
            10,
            0,
            [
              [1, "1"],
              [1, "2"],
            ],
          ],
        ],
      }),
      variant({ sessions: [[1, 10, 0]] }),
    ]) {
      const target = harness();
      target.machine.restore(good, 2);
      const before = target.machine.snapshot();
      assert.throws(() => target.machine.restore(bad, 7), Error, bad);
      assert.equal(target.machine.snapshot(), before, bad);
      assert.equal(target.machine.appliedThrough, 2);
    }
    assert.ok(app.length > 0);
    const tight = harness({ sessionsMax: 1 });
    assert.throws(() =>
      tight.machine.restore(
        variant({
          nextSession: 2,
          sessions: [
            [1, 5, 0, []],
            [2, 10, 0, []],
          ],
        }),
        2,
      ),
    );
    assert.throws(() => copy.machine.restore(good, -1));
  });

  test("sessions and their results survive a snapshot: a retry after restore still gets the original result", () => {
    const { run, machine } = harness();
    const log = new Log();
    const s = opened(run(log.decision(open(0)))[0]);
    const [original] = run(log.decision(inSession(10, s, 1, { add: 7 })));
    const restored = harness();
    restored.machine.restore(machine.snapshot(), 2);
    const [retry] = restored.run(log.decision(inSession(20, s, 1, { add: 7 })));
    assert.deepEqual(retry, original);
    assert.equal(restored.app.applied.length, 1, "the restored record has the one apply, and no other");
  });
});

describe("envelopes", () => {
  test("encode then decode gives the envelope back; t: null leaves t out", () => {
    const envelopeArbitrary: fc.Arbitrary<SessionEnvelope> = fc.oneof(
      fc.record({ t: fc.option(fc.nat()), c: fc.jsonValue() }),
      fc
        .record({
          t: fc.option(fc.nat()),
          s: fc.integer({ min: 1 }),
          q: fc.integer({ min: 1 }),
          c: fc.jsonValue(),
        })
        .chain((e) => fc.nat(e.q - 1).map((a) => ({ ...e, a }))),
      fc.record({ t: fc.option(fc.nat()), open: fc.constant(true as const) }),
      fc.record({ t: fc.option(fc.nat()), s: fc.integer({ min: 1 }), keepalive: fc.constant(true as const) }),
    );
    fc.assert(
      fc.property(envelopeArbitrary, (envelope) => {
        const payload = encodeEnvelope(envelope);
        const decoded = decodeEnvelope(payload);
        assert.ok(decoded.ok, payload);
        // Plain objects (fast-check's have no prototype), and the command as JSON gives it (no -0).
        const expected =
          "c" in envelope ? { ...envelope, c: JSON.parse(JSON.stringify(envelope.c)) } : { ...envelope };
        assert.deepEqual(decoded.value, expected);
        // Whether the payload has a t field (not whether the text "t" occurs: a command may hold it).
        assert.equal(Object.hasOwn(JSON.parse(payload), "t"), envelope.t !== null);
      }),
      { numRuns: 300 },
    );
  });

  test("decode never throws, whatever the payload", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((value) => JSON.stringify(value)),
        ),
        (payload) => {
          const decoded = decodeEnvelope(payload);
          assert.equal(typeof decoded.ok, "boolean");
        },
      ),
      { numRuns: 500 },
    );
  });

  test("encode refuses an envelope decode would refuse", () => {
    assert.throws(() => encodeEnvelope({ t: 0, s: 1, q: 1, a: 1, c: {} }), RangeError);
    assert.throws(() => encodeEnvelope({ t: 0, s: 0, keepalive: true }), RangeError);
    assert.throws(() => encodeEnvelope({ t: -1, c: {} }), RangeError);
    assert.throws(() => encodeEnvelope({ t: 0, c: undefined }), RangeError);
    assert.equal(encodeEnvelope({ t: 0, s: 2, q: 3, a: 1, c: [1] }), '{"t":0,"s":2,"q":3,"a":1,"c":[1]}');
  });
});

// Random command streams, as several nodes' proposals would interleave in the log: opens,
// keepalives, session commands with retries and acknowledgements (some for sessions never opened or
// long expired), plain commands and garbage, with clocks that wobble and sometimes go back.
type Step =
  | { kind: "open" }
  | { kind: "keepalive"; back: number }
  | { kind: "session"; back: number; q: number; acked: number; add: number }
  | { kind: "plain"; add: number }
  | { kind: "garbage" };

const stepArbitrary: fc.Arbitrary<{ step: Step; advanceMs: number; skew: number; timeless: boolean }> =
  fc.record({
    step: fc.oneof(
      { weight: 2, arbitrary: fc.constant({ kind: "open" as const }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("keepalive" as const),
          back: fc.integer({ min: 0, max: 3 }),
        }),
      },
      {
        weight: 6,
        arbitrary: fc
          .record({
            kind: fc.constant("session" as const),
            back: fc.integer({ min: 0, max: 3 }),
            q: fc.integer({ min: 1, max: 5 }),
            add: fc.integer({ min: 1, max: 9 }),
          })
          .chain((step) => fc.nat(step.q - 1).map((acked) => ({ ...step, acked }))),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant("plain" as const), add: fc.integer({ min: 1, max: 9 }) }),
      },
      { weight: 1, arbitrary: fc.constant({ kind: "garbage" as const }) },
    ),
    advanceMs: fc.integer({ min: 0, max: 250 }),
    skew: fc.integer({ min: -300, max: 300 }),
    /** One in ten proposers sends no time (or one that is not a time): the clock ignores it. */
    timeless: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  });

function decisionsOf(
  steps: readonly { step: Step; advanceMs: number; skew: number; timeless: boolean }[],
  batches: readonly number[],
): Decision[] {
  const log = new Log();
  const decisions: Decision[] = [];
  let timeMs = 0;
  let batch: (SessionEnvelope | string)[] = [];
  let batchIndex = 0;
  // Sessions are numbered by the machine, 1, 2, 3, ... per open that succeeds: a step names one as
  // "the session opened `back` opens ago" (3 back: often one never opened, or long expired).
  let opens = 0;
  const session = (back: number): number => (back === 3 ? opens + 1 : Math.max(1, opens - back));
  for (const { step, advanceMs, skew, timeless } of steps) {
    timeMs += advanceMs;
    const t = timeless ? null : Math.max(0, timeMs + skew);
    switch (step.kind) {
      case "open":
        opens++;
        batch.push(open(t));
        break;
      case "keepalive":
        batch.push(keepalive(t, session(step.back)));
        break;
      case "session": {
        const s = session(step.back);
        batch.push(inSession(t, s, step.q, { add: step.add, tag: `${s}:${step.q}` }, step.acked));
        break;
      }
      case "plain":
        batch.push(plain(t, { add: step.add }));
        break;
      case "garbage":
        batch.push(`{"t":${t ?? '"later"'},"s":1}`);
        break;
    }
    if (batch.length >= (batches[batchIndex % batches.length] ?? 1)) {
      decisions.push(log.decision(...batch));
      batch = [];
      batchIndex++;
    }
  }
  if (batch.length > 0) decisions.push(log.decision(...batch));
  return decisions;
}

const LIMITS = { sessionTtlMs: 1000, sessionsMax: 3, resultsPerSessionMax: 2, resultsMax: 4 };
const streamArbitrary = fc.record({
  steps: fc.array(stepArbitrary, { maxLength: 80, size: "max" }),
  batches: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 5 }),
});

describe("SessionMachine as a replicated state machine (properties)", () => {
  test("two replicas fed the same decisions give the same outcomes and snapshots, expiring at the same command", () => {
    fc.assert(
      fc.property(streamArbitrary, ({ steps, batches }) => {
        const decisions = decisionsOf(steps, batches);
        const one = harness(LIMITS);
        const two = harness(LIMITS);
        for (const decision of decisions) {
          one.run(decision);
          two.run(decision);
          assert.equal(one.machine.snapshot(), two.machine.snapshot());
        }
        assert.deepEqual(one.outcomes, two.outcomes);
        assert.deepEqual(one.app.expired, two.app.expired);
      }),
      { numRuns: 200 },
    );
  });

  test("exactly once: each (session, seq) is applied at most once and every ok answer for it is the first", () => {
    // What the runs went through, so that the property is known to cover retries, expiry and bounds.
    const seen = { retries: 0, expiries: 0, busy: 0, expired: 0, acknowledged: 0 };
    fc.assert(
      fc.property(streamArbitrary, ({ steps, batches }) => {
        const decisions = decisionsOf(steps, batches);
        const { run, app, machine } = harness(LIMITS);
        const firstResult = new Map<string, unknown>();
        for (const decision of decisions) {
          const outcomes = run(decision);
          for (const [i, command] of decision.commands.entries()) {
            const decoded = decodeEnvelope(command.payload);
            const outcome = outcomes[i] as SessionOutcome<unknown>;
            if (!decoded.ok || !("q" in decoded.value) || !outcome.ok || !("result" in outcome)) continue;
            const key = `${decoded.value.s}:${decoded.value.q}`;
            if (firstResult.has(key)) {
              assert.deepEqual(outcome.result, firstResult.get(key), key);
              seen.retries++;
            } else firstResult.set(key, outcome.result);
          }
          for (const outcome of outcomes)
            if (!outcome.ok) {
              if (outcome.code === "busy") seen.busy++;
              if (outcome.code === "session-expired") seen.expired++;
              if (outcome.message.startsWith("seq already acknowledged")) seen.acknowledged++;
            }
          assert.ok(machine.sessionCount <= LIMITS.sessionsMax);
          assert.ok(machine.keptResults <= LIMITS.resultsMax);
        }
        const tags = app.applied
          .map((entry) => (entry.command as { tag?: string }).tag)
          .filter((tag) => tag !== undefined);
        assert.equal(new Set(tags).size, tags.length, "no (session, seq) applied twice");
        for (const { command, context } of app.applied) {
          const tag = (command as { tag?: string }).tag;
          if (tag !== undefined) assert.equal(tag.split(":")[0], String(context.session));
        }
        seen.expiries += app.expired.length;
      }),
      { numRuns: 200 },
    );
    for (const [what, count] of Object.entries(seen)) assert.ok(count > 0, `no ${what} in 200 runs`);
  });

  test("a replica restored from a snapshot mid-stream then fed the rest reaches the same state and outcomes", () => {
    fc.assert(
      fc.property(streamArbitrary, fc.nat(40), ({ steps, batches }, cut) => {
        const decisions = decisionsOf(steps, batches);
        const steady = harness(LIMITS);
        const before = harness(LIMITS);
        const at = Math.min(cut, decisions.length);
        for (const decision of decisions.slice(0, at)) {
          steady.run(decision);
          before.run(decision);
        }
        const restored = harness(LIMITS);
        restored.machine.restore(before.machine.snapshot(), before.machine.appliedThrough);
        assert.equal(restored.machine.snapshot(), steady.machine.snapshot());
        for (const decision of decisions.slice(at)) {
          assert.deepEqual(restored.run(decision), steady.run(decision));
          assert.equal(restored.machine.snapshot(), steady.machine.snapshot());
        }
        assert.equal(restored.machine.appliedThrough, steady.machine.appliedThrough);
      }),
      { numRuns: 200 },
    );
  });
});
