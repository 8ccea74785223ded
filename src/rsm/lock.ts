import { assert } from "../core/index.js";
import { type AppLimits, DEFAULT_APP_LIMITS, utf8Bytes } from "./limits.js";

/**
 * The lock service, as a deterministic state machine. A lock is granted with a fencing token, a
 * number that strictly increases with every grant (of any lock, so of each lock too). A request for
 * a held lock waits, first come first served, without retries: it is granted when the holder
 * releases it or the holder's client goes away ("delay execution": a command that cannot run yet is
 * queued and run when something changes).
 *
 * A client is a session of the session layer (`SessionMachine`): the service keeps no time of its
 * own. When a session expires through the log, the application calls `drop` with it, on every
 * replica at the same command, and the session's locks go to their next waiters (`KvLockApp` does
 * this in its `expire`).
 *
 * A lock gives fencing tokens, not mutual exclusion in real time: a holder that pauses past its
 * session's expiry may still believe it holds the lock while the next holder does. A resource that
 * must not be used by two holders at once keeps the highest token it has seen and refuses requests
 * with a lower one (see docs/applications.md).
 */

export type LockCommand =
  | { readonly op: "acquire"; readonly name: string; readonly client: number }
  /** Gives up the lock if held, or leaves its queue if waiting. */
  | { readonly op: "release"; readonly name: string; readonly client: number };

export interface LockGrant {
  readonly name: string;
  readonly client: number;
  readonly token: number;
}

/** `no-session`: a lock command came without a client session (see `KvLockApp`). */
export type LockError =
  | "bad-command"
  | "name-too-large"
  | "not-held"
  | "no-session"
  | "too-many-locks"
  | "too-many-waiters"
  | "too-many-sessions";

export type LockResult =
  | { readonly ok: true; readonly op: "acquire"; readonly status: "granted"; readonly token: number }
  | { readonly ok: true; readonly op: "acquire"; readonly status: "waiting"; readonly position: number }
  | { readonly ok: true; readonly op: "release"; readonly released: "held" | "waiting" }
  | { readonly ok: false; readonly error: LockError; readonly message: string };

/** What one command did: its result, and the locks it handed on to waiters meanwhile. */
export interface LockApplied {
  readonly result: LockResult;
  /** Grants to waiting clients (their acquires answer now), in order. */
  readonly grants: readonly LockGrant[];
}

interface Lock {
  holder: number;
  token: number;
  readonly waiters: number[];
}

export class LockService {
  private readonly locks = new Map<string, Lock>();
  /**
   * The locks each client holds or waits for; a client is here exactly while it holds or waits for
   * one. Derived from `locks` (rebuilt on restore): it makes `drop` cost the client's own locks.
   */
  private readonly clients = new Map<number, Set<string>>();
  private lastTokenValue = 0;
  private waiterCount = 0;

  constructor(
    private readonly limits: AppLimits = DEFAULT_APP_LIMITS,
    /** Deliberate bugs, for proving the simulator's lock checker can fail. Tests only. */
    private readonly bugs: { readonly grantWhileHeld?: boolean } = {},
  ) {}

  /** Every lock's holder and token, in name order. */
  holders(): LockGrant[] {
    return [...this.locks.keys()].sort().map((name) => this.holder(name) as LockGrant);
  }

  /** The token of the last grant (0: none yet); every grant's token is above all before it. */
  get lastToken(): number {
    return this.lastTokenValue;
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

  /** The locks a client holds or waits for, in name order. */
  locksOf(client: number): readonly string[] {
    return [...(this.clients.get(client) ?? [])].sort();
  }

  /**
   * Applies one command.
   *
   * @example
   * const locks = new LockService();
   * locks.apply({ op: "acquire", name: "l", client: 1 }).result; // granted, token 1
   * locks.apply({ op: "acquire", name: "l", client: 2 }).result; // waiting, position 1
   * locks.apply({ op: "release", name: "l", client: 1 }).grants; // [{ name: "l", client: 2, token: 2 }]
   */
  apply(command: LockCommand): LockApplied {
    const grants: LockGrant[] = [];
    const problem = this.commandProblem(command);
    const result = problem ?? this.run(command, grants);
    return { result, grants };
  }

  /**
   * Forgets clients (their sessions expired): they leave every queue and their locks go to the next
   * waiters, with new tokens. Locks are handed on in name order, so every replica grants in the
   * same order. Costs the dropped clients' own locks, not all of them.
   *
   * @example
   * locks.drop([1]); // [{ name: "l", client: 2, token: 2 }]: client 2 waited for client 1's lock
   */
  drop(clients: readonly number[]): LockGrant[] {
    const gone = new Set<number>();
    const names = new Set<string>();
    for (const client of clients) {
      const held = this.clients.get(client);
      if (held === undefined) continue;
      gone.add(client);
      for (const name of held) names.add(name);
      this.clients.delete(client);
    }
    const grants: LockGrant[] = [];
    for (const name of [...names].sort()) {
      const lock = this.locks.get(name);
      assert(lock !== undefined, `lock "${name}" of a dropped client exists`);
      if (lock.waiters.some((waiter) => gone.has(waiter))) {
        const kept = lock.waiters.filter((waiter) => !gone.has(waiter));
        this.waiterCount -= lock.waiters.length - kept.length;
        lock.waiters.splice(0, lock.waiters.length, ...kept);
      }
      if (gone.has(lock.holder)) this.handOn(name, lock, grants);
    }
    return grants;
  }

  private run(command: LockCommand, grants: LockGrant[]): LockResult {
    const { client, name } = command;
    const lock = this.locks.get(name);
    if (command.op === "acquire") {
      if (lock?.holder === client) return { ok: true, op: "acquire", status: "granted", token: lock.token };
      const waiting = lock?.waiters.indexOf(client) ?? -1;
      if (waiting >= 0) return { ok: true, op: "acquire", status: "waiting", position: waiting + 1 };
      if (!this.clients.has(client) && this.clients.size >= this.limits.lockSessionsMax)
        return refuse(
          "too-many-sessions",
          `${this.limits.lockSessionsMax} clients hold or wait for locks, the limit`,
        );
      if (lock === undefined) {
        if (this.locks.size >= this.limits.locksMax)
          return refuse("too-many-locks", `${this.limits.locksMax} locks are held, the limit`);
        const token = ++this.lastTokenValue;
        this.locks.set(name, { holder: client, token, waiters: [] });
        this.index(client, name);
        return { ok: true, op: "acquire", status: "granted", token };
      }
      if (this.bugs.grantWhileHeld) {
        // Deliberately broken: a held lock is granted again, its holder never told.
        this.unindex(lock.holder, name);
        lock.holder = client;
        lock.token = ++this.lastTokenValue;
        this.index(client, name);
        return { ok: true, op: "acquire", status: "granted", token: lock.token };
      }
      if (lock.waiters.length >= this.limits.waitersPerLockMax)
        return refuse(
          "too-many-waiters",
          `lock "${name}" has ${this.limits.waitersPerLockMax} waiters, the limit`,
        );
      if (this.waiterCount >= this.limits.waitersMax)
        return refuse("too-many-waiters", `${this.limits.waitersMax} clients wait for locks, the limit`);
      lock.waiters.push(client);
      this.waiterCount++;
      this.index(client, name);
      return { ok: true, op: "acquire", status: "waiting", position: lock.waiters.length };
    }
    // release
    if (lock === undefined) return refuse("not-held", `lock "${name}" is not held`);
    if (lock.holder === client) {
      this.unindex(client, name);
      this.handOn(name, lock, grants);
      return { ok: true, op: "release", released: "held" };
    }
    const waiting = lock.waiters.indexOf(client);
    if (waiting < 0) return refuse("not-held", `client ${client} neither holds nor waits for lock "${name}"`);
    lock.waiters.splice(waiting, 1);
    this.waiterCount--;
    this.unindex(client, name);
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
    lock.token = ++this.lastTokenValue;
    grants.push({ name, client: next, token: lock.token });
  }

  private index(client: number, name: string): void {
    const held = this.clients.get(client);
    if (held === undefined) this.clients.set(client, new Set([name]));
    else held.add(name);
  }

  private unindex(client: number, name: string): void {
    const held = this.clients.get(client);
    held?.delete(name);
    if (held?.size === 0) this.clients.delete(client);
  }

  private commandProblem(command: LockCommand): LockResult | null {
    if (!Number.isSafeInteger(command.client) || command.client < 0)
      return refuse("bad-command", "client must be a non-negative integer");
    if (typeof command.name !== "string" || command.name === "")
      return refuse("bad-command", "a lock name must be a non-empty string");
    if (utf8Bytes(command.name) > this.limits.lockNameBytesMax)
      return refuse("name-too-large", `a lock name is at most ${this.limits.lockNameBytesMax} bytes`);
    return null;
  }

  /** The whole state as JSON text: the last token and every lock (holder, token, queue), in name order. */
  snapshot(): string {
    return JSON.stringify({
      lastToken: this.lastTokenValue,
      locks: [...this.locks.keys()].sort().map((name) => {
        const lock = this.locks.get(name) as Lock;
        return [name, lock.holder, lock.token, lock.waiters];
      }),
    });
  }

  /** Replaces the state with a snapshot's; throws (changing nothing) if the text is not one. */
  restore(text: string): void {
    const fail = (why: string): never => {
      throw new Error(`not a lock snapshot: ${why}`);
    };
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== "object" || parsed === null) fail("not an object");
    const { lastToken, locks } = parsed as Record<string, unknown>;
    if (!isCount(lastToken)) fail("bad lastToken");
    if (!Array.isArray(locks) || locks.length > this.limits.locksMax) fail("bad locks");
    const nextLocks = new Map<string, Lock>();
    const nextClients = new Map<number, Set<string>>();
    const tokens = new Set<number>();
    let waiterCount = 0;
    for (const item of locks as unknown[]) {
      if (!Array.isArray(item) || item.length !== 4) fail("bad lock");
      const [name, holder, token, waiters] = item as unknown[];
      if (typeof name !== "string" || name === "" || nextLocks.has(name)) fail("bad lock name");
      if (!isCount(holder)) fail("bad holder");
      if (!isCount(token) || (token as number) < 1 || (token as number) > (lastToken as number))
        fail("a token above the last one");
      if (tokens.has(token as number)) fail("two locks with one token");
      tokens.add(token as number);
      if (
        !Array.isArray(waiters) ||
        !waiters.every(isCount) ||
        waiters.length > this.limits.waitersPerLockMax
      )
        fail("bad waiters");
      const queue = [...(waiters as number[])];
      if (new Set(queue).size !== queue.length || queue.includes(holder as number))
        fail("a client twice in one lock");
      waiterCount += queue.length;
      for (const client of [holder as number, ...queue]) {
        const held = nextClients.get(client);
        if (held === undefined) nextClients.set(client, new Set([name as string]));
        else held.add(name as string);
      }
      nextLocks.set(name as string, { holder: holder as number, token: token as number, waiters: queue });
    }
    if (waiterCount > this.limits.waitersMax) fail("too many waiters");
    if (nextClients.size > this.limits.lockSessionsMax) fail("too many clients");
    this.locks.clear();
    for (const [name, lock] of nextLocks) this.locks.set(name, lock);
    this.clients.clear();
    for (const [client, held] of nextClients) this.clients.set(client, held);
    this.lastTokenValue = lastToken as number;
    this.waiterCount = waiterCount;
  }
}

function refuse(error: LockError, message: string): LockResult {
  return { ok: false, error, message };
}

function isCount(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
