import { assert, type Command, type Decision } from "../core/index.js";
import type { StateMachine } from "../runtime/index.js";
import type { Application, ApplyContext, PaxosErrorCode } from "./api.js";
import { DEFAULT_SESSION_LIMITS, type SessionLimits } from "./limits.js";

/**
 * The session layer: exactly-once client sessions with kept results, on top of the replicated log.
 *
 * Every core `Command` carries a string payload; here that payload is a JSON envelope around the
 * application's command (see {@link SessionEnvelope}). A client opens a session through the log,
 * numbers its commands 1, 2, 3, ... within it and sends each (retries included) with the same
 * number; the session keeps each command's result until the client acknowledges it, so a retry,
 * on any node, gets the original result and the command is applied once.
 *
 * **Time.** An envelope may carry `t`, a time in milliseconds that a leader put in the log (the
 * Raft dissertation, section 6.3): `PaxosNode` stamps what it proposes while it leads, and puts a
 * `clock` envelope in the log now and then while it leads (`NodeLimits.clockIntervalMs`), so time
 * moves however the clients spread over the nodes; a follower's commands carry none. The log's clock
 * is the highest `t` applied so far (it never goes back), so every replica has the same clock at the
 * same command and expires the same sessions there, whatever its own clock says. The assumption:
 * leaders' clocks are roughly right. A leader whose clock runs far ahead moves the log's clock ahead
 * with it and expires sessions early; one behind changes nothing (the clock keeps the highest time).
 */

/**
 * A command's payload, as JSON on the wire (keys exactly these; `t` may be left out):
 * - `{"t": timeMs, "c": command}`: a command outside any session;
 * - `{"t": timeMs, "s": session, "q": seq, "a": ackedThrough, "c": command}`: in a session;
 * - `{"t": timeMs, "open": true}`: opens a session;
 * - `{"t": timeMs, "s": session, "keepalive": true}`: keeps one alive;
 * - `{"t": timeMs, "clock": true}`: a leader's time, nothing else.
 *
 * `t` is a leader's clock in ms (see "Time" above); decoded as null when absent or not a
 * non-negative safe integer, and then ignored (the log's clock stays where it is).
 */
export type SessionEnvelope<C = unknown> =
  | { readonly t: number | null; readonly c: C }
  | {
      readonly t: number | null;
      /** The session (from an `open`). */
      readonly s: number;
      /** The seq: 1, 2, 3, ... one per command of the session, the same for every retry of it. */
      readonly q: number;
      /** Acknowledged through: the client has the results of the session's seqs through this (< q). */
      readonly a: number;
      readonly c: C;
    }
  | { readonly t: number | null; readonly open: true }
  /** The leader's time, and nothing else (a leader puts one in the log now and then). */
  | { readonly t: number | null; readonly clock: true }
  | { readonly t: number | null; readonly s: number; readonly keepalive: true };

/** What became of one command of the log, as every replica computes it. */
export type SessionOutcome<R> =
  /** The command was applied now, or earlier (a retry): its result. */
  | { readonly ok: true; readonly result: R }
  /** A session was opened (its id) or kept alive. */
  | { readonly ok: true; readonly session: number }
  /** Nothing was done (see `PaxosErrorCode`). */
  | { readonly ok: false; readonly code: PaxosErrorCode; readonly message: string };

export interface SessionMachineOptions<R> extends Partial<SessionLimits> {
  /**
   * Every command of every decision applied on this replica, with its outcome (the node resolves
   * the promise of whoever proposed that core (client, seq) with it). Called in slot order.
   */
  readonly onOutcome?: (command: Command, outcome: SessionOutcome<R>, slot: number) => void;
  /** After each decision's commands are all applied. */
  readonly onApplied?: (slot: number) => void;
  /** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
  readonly bugs?: { readonly applyRetries?: boolean };
}

/**
 * Encodes an envelope as a command payload. Throws a `RangeError` on an envelope that
 * `decodeEnvelope` would refuse (a bug in the caller): a session or seq that is not a positive safe
 * integer, `a` not below `q`, a command that is not JSON, a `t` that is not a time.
 *
 * @example
 * encodeEnvelope({ t: Date.now(), open: true }); // '{"t":1700000000000,"open":true}'
 * encodeEnvelope({ t: Date.now(), s: 3, q: 2, a: 1, c: { op: "get", key: "a" } });
 */
export function encodeEnvelope<C>(envelope: SessionEnvelope<C>): string {
  const problem = envelopeProblem(envelope as unknown as Record<string, unknown>);
  if (problem !== null) throw new RangeError(`not an envelope: ${problem}`);
  const t = envelope.t === null ? "" : `"t":${envelope.t},`;
  if ("open" in envelope) return `{${t}"open":true}`;
  if ("clock" in envelope) return `{${t}"clock":true}`;
  if ("keepalive" in envelope) return `{${t}"s":${envelope.s},"keepalive":true}`;
  const command: string | undefined = JSON.stringify(envelope.c);
  if (command === undefined) throw new RangeError("not an envelope: c (the command) must be a JSON value");
  if (!("q" in envelope)) return `{${t}"c":${command}}`;
  return `{${t}"s":${envelope.s},"q":${envelope.q},"a":${envelope.a},"c":${command}}`;
}

/**
 * Decodes a command payload; never throws. The command inside is any JSON value: the application
 * checks it (an `Application` must not throw for any JSON input).
 *
 * @example
 * decodeEnvelope('{"t":5,"c":{"op":"get","key":"a"}}'); // { ok: true, value: { t: 5, c: { op: "get", key: "a" } } }
 * decodeEnvelope('{"c":1}'); // { ok: true, value: { t: null, c: 1 } }
 * decodeEnvelope("nope"); // { ok: false, error: "not JSON" }
 */
export function decodeEnvelope<C = unknown>(
  payload: string,
):
  | { readonly ok: true; readonly value: SessionEnvelope<C> }
  | { readonly ok: false; readonly error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch {
    return { ok: false, error: "not JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    return { ok: false, error: "not a JSON object" };
  const fields = parsed as Record<string, unknown>;
  const t = isCount(fields.t) ? (fields.t as number) : null;
  const keys = Object.keys(fields).filter((key) => key !== "t");
  const exactly = (...expected: string[]): boolean =>
    keys.length === expected.length && expected.every((key) => Object.hasOwn(fields, key));
  const problem = envelopeProblem({ ...fields, t });
  if (exactly("open")) {
    if (fields.open !== true) return { ok: false, error: "open must be true" };
    return { ok: true, value: { t, open: true } };
  }
  if (exactly("clock")) {
    if (fields.clock !== true) return { ok: false, error: "clock must be true" };
    return { ok: true, value: { t, clock: true } };
  }
  if (exactly("s", "keepalive")) {
    if (fields.keepalive !== true) return { ok: false, error: "keepalive must be true" };
    if (problem !== null) return { ok: false, error: problem };
    return { ok: true, value: { t, s: fields.s as number, keepalive: true } };
  }
  if (exactly("s", "q", "a", "c")) {
    if (problem !== null) return { ok: false, error: problem };
    return {
      ok: true,
      value: { t, s: fields.s as number, q: fields.q as number, a: fields.a as number, c: fields.c as C },
    };
  }
  if (exactly("c")) return { ok: true, value: { t, c: fields.c as C } };
  return {
    ok: false,
    error: "the keys are not those of an envelope: c; s, q, a, c; open; s, keepalive; or clock (and t)",
  };
}

/** What is wrong with the fields an envelope has, or null. */
function envelopeProblem(fields: Record<string, unknown>): string | null {
  if (fields.t !== null && !isCount(fields.t)) return "t must be a non-negative safe integer";
  if (Object.hasOwn(fields, "s") && !isId(fields.s)) return "s (a session) must be a positive safe integer";
  if (Object.hasOwn(fields, "q")) {
    if (!isId(fields.q)) return "q (a seq) must be a positive safe integer";
    if (!isCount(fields.a) || (fields.a as number) >= (fields.q as number))
      return "a (acknowledged through) must be a non-negative safe integer below q";
  }
  return null;
}

/** One open session, a link in the list of sessions in last-activity order. */
interface Session {
  readonly id: number;
  /** The log's time of its last command (open, keepalive or a command in it). */
  lastActiveMs: number;
  /** The highest seq whose result the client has acknowledged (its result is dropped). */
  ackedThrough: number;
  /** The results kept for retries: seq -> the result's JSON text. */
  readonly results: Map<number, string>;
  older: Session | null;
  newer: Session | null;
}

/**
 * A `StateMachine` (what the runtime's Driver feeds decisions to) that gives an `Application`
 * exactly-once client sessions with kept results, expiring through the log. Every replica computes
 * the same outcome for the same command: sessions, their results and the log's clock are all in
 * the log and in the snapshot.
 *
 * Per command, in slot order:
 * 1. the log's clock moves to the envelope's `t` if that is later; sessions silent for more than
 *    `sessionTtlMs` of it expire, least recently active first, and `app.expire` hears of them;
 * 2. `open`: a new session (ids are never reused), or `busy` at `sessionsMax`;
 * 3. `keepalive`: touches the session, or `session-expired`;
 * 4. a command in a session: `session-expired` if the session is gone; otherwise it touches the
 *    session and drops the results acknowledged (`ackedThrough`). A seq already acknowledged is a
 *    `bad-request`; a seq with a kept result gets that result again without applying; past
 *    `resultsPerSessionMax` (or `resultsMax` in all) it is `busy`; otherwise the application applies
 *    it and its result is kept;
 * 5. a command outside sessions is applied;
 * 6. a payload that is not an envelope is a `bad-request` and changes nothing.
 * An `app.apply` that throws is a bug in the application: the error propagates (the runtime stops).
 *
 * A kept result is kept as its JSON text, so a retry gets the result as it was when applied (and an
 * `undefined` result comes back as `null`).
 *
 * @example
 * const machine = new SessionMachine(new KvLockApp(), {
 *   onOutcome: (command, outcome) => pending.get(commandKey(command))?.resolve(outcome),
 * });
 * const driver = new Driver({ ..., stateMachine: machine });
 */
export class SessionMachine<C, R> implements StateMachine {
  private readonly limits: SessionLimits;
  /** Open sessions by id; also linked from oldest to newest activity (`oldest` ... `newest`). */
  private readonly sessions = new Map<number, Session>();
  private oldest: Session | null = null;
  private newest: Session | null = null;
  /** The log's clock; null until the first command with a time (see `moveClock`). */
  private clock: number | null = null;
  private lastSession = 0;
  private resultCount = 0;
  private appliedThroughSlot = 0;

  constructor(
    readonly app: Application<C, R>,
    private readonly options: SessionMachineOptions<R> = {},
  ) {
    const limits = {
      sessionTtlMs: options.sessionTtlMs ?? DEFAULT_SESSION_LIMITS.sessionTtlMs,
      sessionsMax: options.sessionsMax ?? DEFAULT_SESSION_LIMITS.sessionsMax,
      resultsPerSessionMax: options.resultsPerSessionMax ?? DEFAULT_SESSION_LIMITS.resultsPerSessionMax,
      resultsMax: options.resultsMax ?? DEFAULT_SESSION_LIMITS.resultsMax,
    };
    for (const [name, value] of Object.entries(limits))
      if (!isId(value)) throw new RangeError(`${name} must be a positive safe integer (got ${value})`);
    this.limits = limits;
  }

  /** The last slot applied (or restored from a snapshot); 0 before any. */
  get appliedThrough(): number {
    return this.appliedThroughSlot;
  }

  /** The log's clock: the highest proposer time applied so far; 0 before any. */
  get clockMs(): number {
    return this.clock ?? 0;
  }

  /** Whether the log has a time yet: a command with a leader's time `t` was applied. */
  get clockKnown(): boolean {
    return this.clock !== null;
  }

  /** Sessions open now. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Results kept for retries, in all sessions. */
  get keptResults(): number {
    return this.resultCount;
  }

  /** Whether a session is open (as of the last slot applied). */
  hasSession(session: number): boolean {
    return this.sessions.has(session);
  }

  apply(decision: Decision): void {
    assert(
      decision.slot > this.appliedThroughSlot,
      `slot ${decision.slot} applied after slot ${this.appliedThroughSlot}: a decision applied twice`,
    );
    for (const command of decision.commands) {
      const outcome = this.applyCommand(command.payload, decision.slot);
      this.options.onOutcome?.(command, outcome, decision.slot);
    }
    this.appliedThroughSlot = decision.slot;
    this.options.onApplied?.(decision.slot);
  }

  private applyCommand(payload: string, slot: number): SessionOutcome<R> {
    const decoded = decodeEnvelope<C>(payload);
    if (!decoded.ok) return failure("bad-request", `not a command envelope: ${decoded.error}`);
    const envelope = decoded.value;
    if (envelope.t !== null) this.moveClock(envelope.t);
    this.expireSessions(slot);
    if ("open" in envelope) {
      if (this.sessions.size >= this.limits.sessionsMax)
        return failure("busy", `${this.limits.sessionsMax} sessions are open, the limit`);
      const session: Session = {
        id: ++this.lastSession,
        lastActiveMs: this.clockMs,
        ackedThrough: 0,
        results: new Map(),
        older: null,
        newer: null,
      };
      this.sessions.set(session.id, session);
      this.link(session);
      return { ok: true, session: session.id };
    }
    if ("clock" in envelope) return { ok: true, session: 0 }; // it moved the clock: that is all
    if ("keepalive" in envelope) {
      const session = this.sessions.get(envelope.s);
      if (session === undefined) return this.unknownSession(envelope.s);
      this.touch(session);
      return { ok: true, session: session.id };
    }
    if (!("q" in envelope))
      return { ok: true, result: this.app.apply(envelope.c, { slot, timeMs: this.clockMs, session: 0 }) };
    return this.applyInSession(envelope, slot);
  }

  private applyInSession(
    envelope: { readonly s: number; readonly q: number; readonly a: number; readonly c: C },
    slot: number,
  ): SessionOutcome<R> {
    const session = this.sessions.get(envelope.s);
    if (session === undefined) return this.unknownSession(envelope.s);
    this.touch(session);
    if (envelope.a > session.ackedThrough) {
      session.ackedThrough = envelope.a;
      for (const seq of session.results.keys())
        if (seq <= session.ackedThrough) {
          session.results.delete(seq);
          this.resultCount--;
        }
    }
    if (envelope.q <= session.ackedThrough)
      return failure(
        "bad-request",
        `seq already acknowledged: session ${session.id} acknowledged through ${session.ackedThrough}`,
      );
    const kept = session.results.get(envelope.q);
    if (kept !== undefined) {
      if (this.options.bugs?.applyRetries) {
        // Deliberately broken: the retry is applied again (its kept result replaced).
        const result = this.app.apply(envelope.c, { slot, timeMs: this.clockMs, session: session.id });
        session.results.set(envelope.q, JSON.stringify(result) ?? "null");
        return { ok: true, result };
      }
      return { ok: true, result: JSON.parse(kept) as R };
    }
    if (session.results.size >= this.limits.resultsPerSessionMax)
      return failure(
        "busy",
        `session ${session.id} keeps ${this.limits.resultsPerSessionMax} results, the limit: acknowledge some`,
      );
    if (this.resultCount >= this.limits.resultsMax)
      return failure("busy", `the sessions keep ${this.limits.resultsMax} results, the limit`);
    const context: ApplyContext = { slot, timeMs: this.clockMs, session: session.id };
    const result = this.app.apply(envelope.c, context);
    session.results.set(envelope.q, JSON.stringify(result) ?? "null");
    this.resultCount++;
    return { ok: true, result };
  }

  /**
   * The log's clock moves to `t` if that is later. The first time of all also re-times the sessions
   * opened before it: they were opened when the log had no time (a follower's commands carry none),
   * and counting their silence from 0 would expire them at once.
   */
  private moveClock(t: number): void {
    if (this.clock === null) {
      this.clock = t;
      for (let session = this.oldest; session !== null; session = session.newer) session.lastActiveMs = t;
    } else if (t > this.clock) this.clock = t;
  }

  private unknownSession(id: number): SessionOutcome<R> {
    return failure(
      "session-expired",
      id <= this.lastSession ? `session ${id} expired` : `session ${id} was never opened`,
    );
  }

  /** Expires the sessions silent for more than sessionTtlMs: from the oldest, O(expired). */
  private expireSessions(slot: number): void {
    let expired: number[] | null = null;
    const clock = this.clock;
    if (clock === null) return;
    while (this.oldest !== null && this.oldest.lastActiveMs + this.limits.sessionTtlMs < clock) {
      const session = this.oldest;
      this.unlink(session);
      this.sessions.delete(session.id);
      this.resultCount -= session.results.size;
      if (expired === null) expired = [];
      expired.push(session.id);
    }
    if (expired !== null) this.app.expire?.(expired, { slot, timeMs: clock, session: 0 });
  }

  /** The session was active now: it moves to the newest end of the list. */
  private touch(session: Session): void {
    session.lastActiveMs = this.clockMs;
    if (this.newest === session) return;
    this.unlink(session);
    this.link(session);
  }

  private link(session: Session): void {
    session.older = this.newest;
    session.newer = null;
    if (this.newest !== null) this.newest.newer = session;
    else this.oldest = session;
    this.newest = session;
  }

  private unlink(session: Session): void {
    if (session.older !== null) session.older.newer = session.newer;
    else this.oldest = session.newer;
    if (session.newer !== null) session.newer.older = session.older;
    else this.newest = session.older;
    session.older = null;
    session.newer = null;
  }

  /**
   * The whole state as one JSON text: the log's clock (null before it has a time), the last session
   * id, the sessions from least to most recently active with their kept results, and the
   * application's snapshot.
   */
  snapshot(): string {
    const sessions: unknown[] = [];
    for (let session = this.oldest; session !== null; session = session.newer)
      sessions.push([session.id, session.lastActiveMs, session.ackedThrough, [...session.results]]);
    return JSON.stringify({
      clockMs: this.clock,
      nextSession: this.lastSession,
      sessions,
      app: this.app.snapshot(),
    });
  }

  /**
   * Replaces the whole state with a `snapshot()`'s as of `slot`. Checks all of it first, then has
   * the application restore its part; throws, changing nothing, if any of it is not a state.
   */
  restore(state: string, slot: number): void {
    const fail = (why: string): never => {
      throw new Error(`not a session machine snapshot: ${why}`);
    };
    if (!isCount(slot)) fail(`bad slot ${slot}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(state);
    } catch {
      fail("not JSON");
    }
    if (typeof parsed !== "object" || parsed === null) fail("not an object");
    const { clockMs, nextSession, sessions, app } = parsed as Record<string, unknown>;
    if (clockMs !== null && !isCount(clockMs)) fail("bad clockMs");
    if (!isCount(nextSession)) fail("bad nextSession");
    if (typeof app !== "string") fail("no application state");
    if (!Array.isArray(sessions) || sessions.length > this.limits.sessionsMax) fail("bad sessions");
    const restored: Session[] = [];
    const ids = new Set<number>();
    let resultCount = 0;
    for (const item of sessions as unknown[]) {
      if (!Array.isArray(item) || item.length !== 4) fail("bad session");
      const [id, lastActiveMs, ackedThrough, results] = item as unknown[];
      if (!isId(id) || (id as number) > (nextSession as number) || ids.has(id as number))
        fail("bad session id");
      ids.add(id as number);
      const previous = restored[restored.length - 1];
      if (
        !isCount(lastActiveMs) ||
        (lastActiveMs as number) > ((clockMs as number | null) ?? 0) ||
        (previous !== undefined && (lastActiveMs as number) < previous.lastActiveMs)
      )
        fail("sessions not in last-activity order");
      if (!isCount(ackedThrough)) fail("bad ackedThrough");
      if (!Array.isArray(results) || results.length > this.limits.resultsPerSessionMax) fail("bad results");
      const kept = new Map<number, string>();
      for (const entry of results as unknown[]) {
        if (!Array.isArray(entry) || entry.length !== 2) fail("bad result");
        const [seq, text] = entry as unknown[];
        if (!isId(seq) || (seq as number) <= (ackedThrough as number) || kept.has(seq as number))
          fail("bad result seq");
        if (typeof text !== "string" || !isJson(text)) fail("a result that is not JSON text");
        kept.set(seq as number, text as string);
      }
      resultCount += kept.size;
      restored.push({
        id: id as number,
        lastActiveMs: lastActiveMs as number,
        ackedThrough: ackedThrough as number,
        results: kept,
        older: null,
        newer: null,
      });
    }
    if (resultCount > this.limits.resultsMax) fail("too many results");
    // The application checks its part and changes nothing if it throws: so far nothing has changed.
    this.app.restore(app as string);
    this.sessions.clear();
    this.oldest = null;
    this.newest = null;
    for (const session of restored) {
      this.sessions.set(session.id, session);
      this.link(session);
    }
    this.clock = clockMs as number | null;
    this.lastSession = nextSession as number;
    this.resultCount = resultCount;
    this.appliedThroughSlot = slot;
  }
}

function failure<R>(code: PaxosErrorCode, message: string): SessionOutcome<R> {
  return { ok: false, code, message };
}

function isCount(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isId(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 1;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
