import { type AppLimits, DEFAULT_APP_LIMITS, utf8Bytes } from "./limits.js";

/**
 * The lock service, as a deterministic state machine. A lock is granted with a fencing token, a
 * number that strictly increases with every grant (of any lock, so of each lock too). A request for
 * a held lock waits, first come first served, without retries: it is granted when the holder
 * releases it or the holder's session expires ("delay execution": a command that cannot run yet is
 * queued and run when something changes).
 *
 * Time comes only from the log: every command is applied with the time the leader put in the log
 * for it (`timeMs`), so every replica expires the same sessions at the same command (the Raft
 * dissertation, section 6.3). A session (a client holding or waiting for a lock) expires when no
 * command of its client was applied for `sessionTtlMs` of that time.
 *
 * A lock gives fencing tokens, not mutual exclusion in real time: a holder that pauses past its
 * session's expiry may still believe it holds the lock while the next holder does. A resource that
 * must not be used by two holders at once keeps the highest token it has seen and refuses requests
 * with a lower one (see docs/applications.md).
 */

export type LockCommand =
  | { readonly op: "acquire"; readonly name: string; readonly client: number }
  /** Gives up the lock if held, or leaves its queue if waiting. */
  | { readonly op: "release"; readonly name: string; readonly client: number }
  /** Keeps the client's session alive (any command of the client does too). */
  | { readonly op: "keepalive"; readonly client: number };

export interface LockGrant {
  readonly name: string;
  readonly client: number;
  readonly token: number;
}

export type LockError =
  | "bad-command"
  | "name-too-large"
  | "not-held"
  | "too-many-locks"
  | "too-many-waiters"
  | "too-many-sessions";

export type LockResult =
  | { readonly ok: true; readonly op: "acquire"; readonly status: "granted"; readonly token: number }
  | { readonly ok: true; readonly op: "acquire"; readonly status: "waiting"; readonly position: number }
  | { readonly ok: true; readonly op: "release"; readonly released: "held" | "waiting" }
  | { readonly ok: true; readonly op: "keepalive"; readonly session: boolean }
  | { readonly ok: false; readonly error: LockError; readonly message: string };

/** What one command did: its result, the locks granted to waiters meanwhile, the sessions expired. */
export interface LockApplied {
  readonly result: LockResult;
  /** Grants to waiting clients (their acquires answer now), in order. */
  readonly grants: readonly LockGrant[];
  /** Clients whose sessions expired before the command, in order. */
  readonly expired: readonly number[];
}

interface Lock {
  holder: number;
  token: number;
  readonly waiters: number[];
}

export class LockService {
  private readonly locks = new Map<string, Lock>();
  /** Last applied command's time, per client holding or waiting for a lock. */
  private readonly sessions = new Map<number, number>();
  /** The log's time: the highest `timeMs` applied (a new leader's clock may be behind). */
  private clockMs = 0;
  private lastToken = 0;
  private waiterCount = 0;

  constructor(
    private readonly sessionTtlMs: number,
    private readonly limits: AppLimits = DEFAULT_APP_LIMITS,
  ) {
    if (!Number.isSafeInteger(sessionTtlMs) || sessionTtlMs <= 0)
      throw new RangeError(`sessionTtlMs must be a positive integer (got ${sessionTtlMs})`);
  }

  /** The holder of a lock and its token, or null. */
  holder(name: string): LockGrant | null {
    const lock = this.locks.get(name);
    return lock === undefined ? null : { name, client: lock.holder, token: lock.token };
  }

  /** The clients waiting for a lock, first first. */
  waiters(name: string): readonly number[] {
    return [...(this.locks.get(name)?.waiters ?? [])];
  }

  /**
   * Applies one command at the log's `timeMs`: expires the sessions that ran out by then (their
   * locks go to the next waiters), then runs the command.
   *
   * @example
   * const locks = new LockService(10_000);
   * locks.apply({ op: "acquire", name: "l", client: 1 }, 0).result; // granted, token 1
   * locks.apply({ op: "acquire", name: "l", client: 2 }, 5).result; // waiting, position 1
   * locks.apply({ op: "release", name: "l", client: 1 }, 6).grants; // [{ name: "l", client: 2, token: 2 }]
   */
  apply(command: LockCommand, timeMs: number): LockApplied {
    const grants: LockGrant[] = [];
    if (Number.isSafeInteger(timeMs)) this.clockMs = Math.max(this.clockMs, timeMs);
    const expired = this.expire(grants);
    const problem = this.commandProblem(command);
    if (problem !== null) return { result: problem, grants, expired };
    const result = this.run(command, grants);
    return { result, grants, expired };
  }

  private run(command: LockCommand, grants: LockGrant[]): LockResult {
    const client = command.client;
    if (command.op === "keepalive") {
      const session = this.sessions.has(client);
      if (session) this.sessions.set(client, this.clockMs);
      return { ok: true, op: "keepalive", session };
    }
    const lock = this.locks.get(command.name);
    if (command.op === "acquire") {
      if (lock?.holder === client) {
        this.sessions.set(client, this.clockMs);
        return { ok: true, op: "acquire", status: "granted", token: lock.token };
      }
      const waiting = lock?.waiters.indexOf(client) ?? -1;
      if (lock !== undefined && waiting >= 0) {
        this.sessions.set(client, this.clockMs);
        return { ok: true, op: "acquire", status: "waiting", position: waiting + 1 };
      }
      if (!this.sessions.has(client) && this.sessions.size >= this.limits.lockSessionsMax)
        return refuse(
          "too-many-sessions",
          `${this.limits.lockSessionsMax} clients hold or wait for locks, the limit`,
        );
      if (lock === undefined) {
        if (this.locks.size >= this.limits.locksMax)
          return refuse("too-many-locks", `${this.limits.locksMax} locks are held, the limit`);
        const token = ++this.lastToken;
        this.locks.set(command.name, { holder: client, token, waiters: [] });
        this.sessions.set(client, this.clockMs);
        return { ok: true, op: "acquire", status: "granted", token };
      }
      if (lock.waiters.length >= this.limits.waitersPerLockMax)
        return refuse(
          "too-many-waiters",
          `lock "${command.name}" has ${this.limits.waitersPerLockMax} waiters, the limit`,
        );
      if (this.waiterCount >= this.limits.waitersMax)
        return refuse("too-many-waiters", `${this.limits.waitersMax} clients wait for locks, the limit`);
      lock.waiters.push(client);
      this.waiterCount++;
      this.sessions.set(client, this.clockMs);
      return { ok: true, op: "acquire", status: "waiting", position: lock.waiters.length };
    }
    // release
    if (lock === undefined) return refuse("not-held", `lock "${command.name}" is not held`);
    if (lock.holder === client) {
      this.sessions.set(client, this.clockMs);
      this.handOn(command.name, lock, grants);
      this.forgetIdle(client);
      return { ok: true, op: "release", released: "held" };
    }
    const waiting = lock.waiters.indexOf(client);
    if (waiting < 0)
      return refuse("not-held", `client ${client} neither holds nor waits for lock "${command.name}"`);
    lock.waiters.splice(waiting, 1);
    this.waiterCount--;
    this.sessions.set(client, this.clockMs);
    this.forgetIdle(client);
    return { ok: true, op: "release", released: "waiting" };
  }

  /** The lock goes to its first waiter (with a new token), or ceases to exist. */
  private handOn(name: string, lock: Lock, grants: LockGrant[]): void {
    const next = lock.waiters.shift();
    if (next === undefined) {
      this.locks.delete(name);
      return;
    }
    this.waiterCount--;
    lock.holder = next;
    lock.token = ++this.lastToken;
    // A waiter granted now starts a fresh term of its session.
    this.sessions.set(next, this.clockMs);
    grants.push({ name, client: next, token: lock.token });
  }

  /** Expires the sessions silent for sessionTtlMs of log time: their locks and places in queues go. */
  private expire(grants: LockGrant[]): number[] {
    const expired: number[] = [];
    for (const [client, lastMs] of this.sessions)
      if (this.clockMs - lastMs > this.sessionTtlMs) expired.push(client);
    if (expired.length === 0) return expired;
    expired.sort((a, b) => a - b);
    const gone = new Set(expired);
    for (const client of expired) this.sessions.delete(client);
    // In name order, so that every replica grants in the same order.
    for (const name of [...this.locks.keys()].sort()) {
      const lock = this.locks.get(name) as Lock;
      const before = lock.waiters.length;
      const kept = lock.waiters.filter((waiter) => !gone.has(waiter));
      lock.waiters.splice(0, lock.waiters.length, ...kept);
      this.waiterCount -= before - kept.length;
      while (gone.has(lock.holder)) {
        this.handOn(name, lock, grants);
        if (!this.locks.has(name)) break;
      }
    }
    return expired;
  }

  /** A client that holds and waits for nothing has no session to keep. */
  private forgetIdle(client: number): void {
    for (const lock of this.locks.values())
      if (lock.holder === client || lock.waiters.includes(client)) return;
    this.sessions.delete(client);
  }

  private commandProblem(command: LockCommand): LockResult | null {
    if (!Number.isSafeInteger(command.client) || command.client < 0)
      return refuse("bad-command", "client must be a non-negative integer");
    if (command.op === "keepalive") return null;
    if (typeof command.name !== "string" || command.name === "")
      return refuse("bad-command", "a lock name must be a non-empty string");
    if (utf8Bytes(command.name) > this.limits.lockNameBytesMax)
      return refuse("name-too-large", `a lock name is at most ${this.limits.lockNameBytesMax} bytes`);
    return null;
  }

  /** The whole state as JSON text (locks in name order, sessions in client order). */
  snapshot(): string {
    return JSON.stringify({
      clockMs: this.clockMs,
      lastToken: this.lastToken,
      locks: [...this.locks.keys()].sort().map((name) => {
        const lock = this.locks.get(name) as Lock;
        return [name, lock.holder, lock.token, lock.waiters];
      }),
      sessions: [...this.sessions].sort((a, b) => a[0] - b[0]),
    });
  }

  /** Replaces the state with a snapshot's; throws (changing nothing) if the text is not one. */
  restore(text: string): void {
    const fail = (why: string): never => {
      throw new Error(`not a lock snapshot: ${why}`);
    };
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null) fail("not an object");
    const { clockMs, lastToken, locks, sessions } = parsed as Record<string, unknown>;
    if (!isCount(clockMs) || !isCount(lastToken)) fail("bad clock or token");
    if (!Array.isArray(locks) || locks.length > this.limits.locksMax) fail("bad locks");
    if (!Array.isArray(sessions) || sessions.length > this.limits.lockSessionsMax) fail("bad sessions");
    const nextSessions = new Map<number, number>();
    for (const item of sessions as unknown[]) {
      if (!Array.isArray(item) || item.length !== 2 || !isCount(item[0]) || !isCount(item[1]))
        fail("bad session");
      nextSessions.set((item as number[])[0] as number, (item as number[])[1] as number);
    }
    const nextLocks = new Map<string, Lock>();
    let waiterCount = 0;
    for (const item of locks as unknown[]) {
      if (!Array.isArray(item) || item.length !== 4) fail("bad lock");
      const [name, holder, token, waiters] = item as unknown[];
      if (typeof name !== "string" || nextLocks.has(name)) fail("bad lock name");
      if (!isCount(holder) || !isCount(token) || (token as number) > (lastToken as number))
        fail("bad holder or token");
      if (!Array.isArray(waiters) || !waiters.every(isCount)) fail("bad waiters");
      if (!nextSessions.has(holder as number)) fail("a holder without a session");
      for (const waiter of waiters as number[])
        if (!nextSessions.has(waiter)) fail("a waiter without a session");
      waiterCount += (waiters as number[]).length;
      nextLocks.set(name as string, {
        holder: holder as number,
        token: token as number,
        waiters: [...(waiters as number[])],
      });
    }
    this.locks.clear();
    for (const [name, lock] of nextLocks) this.locks.set(name, lock);
    this.sessions.clear();
    for (const [client, lastMs] of nextSessions) this.sessions.set(client, lastMs);
    this.clockMs = clockMs as number;
    this.lastToken = lastToken as number;
    this.waiterCount = waiterCount;
  }
}

function refuse(error: LockError, message: string): LockResult {
  return { ok: false, error, message };
}

function isCount(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
