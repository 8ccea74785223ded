import type { Application, ApplyContext } from "./api.js";
import { type KvChange, type KvCommand, type KvEntry, type KvResult, KvStore } from "./kv.js";
import { type AppLimits, DEFAULT_APP_LIMITS } from "./limits.js";
import { type LockGrant, type LockResult, LockService } from "./lock.js";

/**
 * The application `paxos` serves: the key-value store and the lock service in one deterministic
 * state machine, run by a `SessionMachine`. Lock commands belong to the client session they come in
 * (`ApplyContext.session`): a session that expires through the log releases its locks and leaves
 * its queues, and the locks go to the next waiters with new fencing tokens.
 */

/** A key-value command, or a lock command of the session it comes in. */
export type AppCommand =
  | KvCommand
  | { readonly op: "acquire"; readonly name: string }
  | { readonly op: "release"; readonly name: string };

export type AppResult = KvResult | LockResult;

export interface KvLockAppOptions {
  readonly limits?: AppLimits;
  /** Each put, append, delete or cas that changed the store, as it is applied (on every replica). */
  readonly onChange?: (change: KvChange) => void;
  /**
   * Each lock grant as it is made (on every replica): to an acquire of a free lock, and to a waiter
   * when the holder releases the lock or its session expires. Not to a holder asking again.
   */
  readonly onGrant?: (grant: LockGrant) => void;
  /** Each time a holder gives a lock up, by a release or because its session expired. */
  readonly onFree?: (name: string, client: number) => void;
  /** Deliberate bugs of the lock service (tests only; see `LockService`). */
  readonly lockBugs?: { readonly grantWhileHeld?: boolean };
}

const KV_OPS: ReadonlySet<string> = new Set(["get", "put", "append", "delete", "cas", "list"]);

/**
 * @example
 * const app = new KvLockApp({ onGrant: (grant) => console.log(grant) });
 * const machine = new SessionMachine(app);
 * // after the log has applied commands, reads (on the leader, by read index):
 * app.get("config/a"); app.holder("leader-election");
 */
export class KvLockApp implements Application<AppCommand, AppResult> {
  private kv: KvStore;
  private locks: LockService;
  private readonly limits: AppLimits;

  private readonly changeListeners = new Set<(change: KvChange) => void>();
  private readonly grantListeners = new Set<(grant: LockGrant) => void>();

  constructor(private readonly options: KvLockAppOptions = {}) {
    this.limits = options.limits ?? DEFAULT_APP_LIMITS;
    this.kv = new KvStore(this.limits);
    this.locks = new LockService(this.limits, options.lockBugs);
  }

  apply(command: AppCommand, context: ApplyContext): AppResult {
    const op = typeof command === "object" && command !== null ? (command as { op?: unknown }).op : undefined;
    if (op === "acquire" || op === "release") {
      const { name } = command as { name: unknown };
      if (context.session === 0)
        return {
          ok: false,
          error: "no-session",
          message: `a lock ${op} needs a client session (the lock is held by the session)`,
        };
      const lastToken = this.locks.lastToken;
      const applied = this.locks.apply({ op, name: name as string, client: context.session });
      const result = applied.result;
      if (result.ok && result.op === "release" && result.released === "held")
        this.options.onFree?.(name as string, context.session);
      if (result.ok && result.op === "acquire" && result.status === "granted" && result.token > lastToken)
        this.emitGrant({ name: name as string, client: context.session, token: result.token });
      for (const grant of applied.grants) this.emitGrant(grant);
      return result;
    }
    if (typeof op !== "string" || !KV_OPS.has(op) || Array.isArray(command))
      return {
        ok: false,
        error: "bad-command",
        message: "a command is an object whose op is get, put, append, delete, cas, list, acquire or release",
        revision: this.kv.revision,
      };
    const kvCommand = command as KvCommand;
    const result = this.kv.apply(kvCommand);
    if (result.ok && "changed" in result && result.changed) {
      const key = (kvCommand as { key: string }).key;
      this.emitChange({ revision: result.revision, key, value: this.kv.get(key)?.value ?? null });
    }
    return result;
  }

  /**
   * Listens to the store's changes and the lock service's grants as this replica applies them
   * (besides the options' `onChange` and `onGrant`, which run first); returns a function that stops
   * listening. Listeners run inside `apply`, where an exception would stop the node: one that
   * throws is reported as a process warning and skipped.
   *
   * @example
   * const stop = app.subscribe({ change: (c) => console.log(c.key, c.value) });
   */
  subscribe(listeners: {
    readonly change?: (change: KvChange) => void;
    readonly grant?: (grant: LockGrant) => void;
  }): () => void {
    const { change, grant } = listeners;
    if (change !== undefined) this.changeListeners.add(change);
    if (grant !== undefined) this.grantListeners.add(grant);
    return () => {
      if (change !== undefined) this.changeListeners.delete(change);
      if (grant !== undefined) this.grantListeners.delete(grant);
    };
  }

  private emitChange(change: KvChange): void {
    this.options.onChange?.(change);
    for (const listener of this.changeListeners) guarded(listener, change);
  }

  private emitGrant(grant: LockGrant): void {
    this.options.onGrant?.(grant);
    for (const listener of this.grantListeners) guarded(listener, grant);
  }

  /** Sessions expired through the log: their locks go to the next waiters, their waits end. */
  expire(sessions: readonly number[]): void {
    const onFree = this.options.onFree;
    if (onFree !== undefined)
      for (const client of sessions)
        for (const name of this.locks.locksOf(client))
          if (this.locks.holder(name)?.client === client) onFree(name, client);
    for (const grant of this.locks.drop(sessions)) this.emitGrant(grant);
  }

  /** Every lock's holder (its session) and token, in name order. */
  holders(): LockGrant[] {
    return this.locks.holders();
  }

  /** The token of the last grant (0: none yet). */
  get lastToken(): number {
    return this.locks.lastToken;
  }

  /** The store's revision (0: no change yet). */
  get revision(): number {
    return this.kv.revision;
  }

  /** A key's entry, or null. */
  get(key: string): KvEntry | null {
    return this.kv.get(key);
  }

  /** The entries under `prefix` in key order (at most `limit`, and whether there are more). */
  list(prefix: string, limit: number = this.limits.listKeysMax): KvResult {
    return this.kv.apply({ op: "list", prefix, limit });
  }

  /** The changes under `prefix` from `revision` on, or "compacted" (see `KvStore.changesSince`). */
  changesSince(prefix: string, revision: number): ReturnType<KvStore["changesSince"]> {
    return this.kv.changesSince(prefix, revision);
  }

  /** A lock's holder (its session) and token, or null. */
  holder(name: string): LockGrant | null {
    return this.locks.holder(name);
  }

  /** The sessions waiting for a lock, first first. */
  waiters(name: string): readonly number[] {
    return this.locks.waiters(name);
  }

  /** Both states as one JSON text: `{"kv": <store snapshot>, "locks": <lock snapshot>}`. */
  snapshot(): string {
    return `{"kv":${this.kv.snapshot()},"locks":${this.locks.snapshot()}}`;
  }

  /** Replaces both states; throws, changing neither, if either part is not a snapshot. */
  restore(state: string): void {
    const parsed = JSON.parse(state) as unknown;
    if (typeof parsed !== "object" || parsed === null || !("kv" in parsed) || !("locks" in parsed))
      throw new Error("not a key-value and lock snapshot: no kv or locks");
    const kv = new KvStore(this.limits);
    kv.restore(JSON.stringify(parsed.kv));
    const locks = new LockService(this.limits, this.options.lockBugs);
    locks.restore(JSON.stringify(parsed.locks));
    this.kv = kv;
    this.locks = locks;
  }
}

/** Runs a listener; one that throws is reported and skipped (see `KvLockApp.subscribe`). */
function guarded<T>(listener: (event: T) => void, event: T): void {
  try {
    listener(event);
  } catch (error) {
    process.emitWarning(
      `a listener of the key-value and lock application failed: ${(error as Error).message}`,
    );
  }
}
