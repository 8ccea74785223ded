import { type AppLimits, DEFAULT_APP_LIMITS, utf8Bytes } from "./limits.js";

/**
 * The key-value store, as a deterministic state machine: every replica applies the same commands in
 * the same order and gets the same state and the same results. Every change bumps the store's
 * revision; each key carries the revision that created it and the one that last changed it (as in
 * etcd). The last `watchHistoryMax` changes are kept, so a watch can start from a recent revision.
 */

export type KvCommand =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "put"; readonly key: string; readonly value: string }
  /** Adds `value` to the end of the key's value (an absent key counts as empty). */
  | { readonly op: "append"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  /**
   * Compare-and-set: applies `value` (null: delete) only if the key's value is `expectValue` (null:
   * absent) and/or its last change is `expectRevision` (0: absent). At least one condition.
   */
  | {
      readonly op: "cas";
      readonly key: string;
      readonly value: string | null;
      readonly expectValue?: string | null;
      readonly expectRevision?: number;
    }
  | { readonly op: "list"; readonly prefix: string; readonly limit?: number };

export interface KvEntry {
  readonly key: string;
  readonly value: string;
  /** The revision that created the key (since it last did not exist). */
  readonly createRevision: number;
  /** The revision that last changed it. */
  readonly modRevision: number;
}

/** One change: a put (value) or a delete (null) of a key, at a revision. */
export interface KvChange {
  readonly revision: number;
  readonly key: string;
  readonly value: string | null;
}

export type KvError =
  | "bad-command"
  | "key-too-large"
  | "value-too-large"
  | "too-many-keys"
  | "cas-failed"
  | "compacted";

export type KvResult =
  | { readonly ok: true; readonly op: "get"; readonly revision: number; readonly entry: KvEntry | null }
  | {
      readonly ok: true;
      readonly op: "put" | "append" | "delete" | "cas";
      /** The store's revision after the command (unchanged if it changed nothing). */
      readonly revision: number;
      /** The entry as it was before (null: absent). */
      readonly previous: KvEntry | null;
      /** Whether the command changed the store (a delete of an absent key does not). */
      readonly changed: boolean;
    }
  | {
      readonly ok: true;
      readonly op: "list";
      readonly revision: number;
      readonly entries: readonly KvEntry[];
      /** More keys have the prefix than the limit let through. */
      readonly more: boolean;
    }
  | {
      readonly ok: false;
      readonly error: KvError;
      readonly message: string;
      /** For cas-failed: the entry as it is. */
      readonly current?: KvEntry | null;
      readonly revision: number;
    };

export class KvStore {
  private revisionValue = 0;
  private readonly entries = new Map<string, KvEntry>();
  /** The last changes, oldest first, from `firstChange` on (at most `watchHistoryMax` of them). */
  private changes: KvChange[] = [];
  private firstChange = 0;
  /** The newest revision whose change is no longer kept (0: none dropped). */
  private compactedThrough = 0;

  constructor(private readonly limits: AppLimits = DEFAULT_APP_LIMITS) {}

  /** The revision of the last change (0: none yet). */
  get revision(): number {
    return this.revisionValue;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Reads a key as the store stands (a local read: the caller decides when that is linearizable). */
  get(key: string): KvEntry | null {
    return this.entries.get(key) ?? null;
  }

  /**
   * Applies one command and returns its result. Refused commands (too large, malformed, a failed
   * compare) change nothing.
   *
   * @example
   * const kv = new KvStore();
   * kv.apply({ op: "put", key: "a", value: "1" }); // { ok: true, op: "put", revision: 1, ... }
   * kv.apply({ op: "cas", key: "a", expectRevision: 1, value: "2" }).ok; // true
   */
  apply(command: KvCommand): KvResult {
    const problem = this.commandProblem(command);
    if (problem !== null) return problem;
    switch (command.op) {
      case "get":
        return { ok: true, op: "get", revision: this.revisionValue, entry: this.get(command.key) };
      case "put":
        return this.write("put", command.key, command.value);
      case "append": {
        const value = (this.get(command.key)?.value ?? "") + command.value;
        if (utf8Bytes(value) > this.limits.valueBytesMax)
          return {
            ok: false,
            error: "value-too-large",
            message: `the appended value would pass ${this.limits.valueBytesMax} bytes`,
            revision: this.revisionValue,
          };
        return this.write("append", command.key, value);
      }
      case "delete":
        return this.write("delete", command.key, null);
      case "cas": {
        const current = this.get(command.key);
        const valueMatches =
          command.expectValue === undefined || (current?.value ?? null) === command.expectValue;
        const revisionMatches =
          command.expectRevision === undefined || (current?.modRevision ?? 0) === command.expectRevision;
        if (!valueMatches || !revisionMatches) {
          return {
            ok: false,
            error: "cas-failed",
            message: `key "${command.key}" is not as expected`,
            current,
            revision: this.revisionValue,
          };
        }
        return this.write("cas", command.key, command.value);
      }
      case "list":
        return this.list(command.prefix, command.limit ?? this.limits.listKeysMax);
    }
  }

  /**
   * The changes to keys with `prefix` at revisions `fromRevision` and later, oldest first, or
   * "compacted" when changes that old are no longer kept (a watch then starts over from a `list`).
   */
  changesSince(
    prefix: string,
    fromRevision: number,
  ):
    | { readonly ok: true; readonly changes: readonly KvChange[] }
    | { readonly ok: false; readonly error: "compacted"; readonly oldest: number } {
    if (this.compactedThrough > 0 && fromRevision <= this.compactedThrough)
      return { ok: false, error: "compacted", oldest: this.compactedThrough + 1 };
    const changes: KvChange[] = [];
    for (let i = this.firstChange; i < this.changes.length; i++) {
      const change = this.changes[i] as KvChange;
      if (change.revision >= fromRevision && change.key.startsWith(prefix)) changes.push(change);
    }
    return { ok: true, changes };
  }

  /** The whole state as JSON text (entries in key order, and the kept changes). */
  snapshot(): string {
    const keys = [...this.entries.keys()].sort();
    return JSON.stringify({
      revision: this.revisionValue,
      compactedThrough: this.compactedThrough,
      entries: keys.map((key) => {
        const entry = this.entries.get(key) as KvEntry;
        return [entry.key, entry.value, entry.createRevision, entry.modRevision];
      }),
      changes: this.changes
        .slice(this.firstChange)
        .map((change) => [change.revision, change.key, change.value]),
    });
  }

  /** Replaces the state with a snapshot's; throws (changing nothing) if the text is not one. */
  restore(text: string): void {
    const parsed = JSON.parse(text) as unknown;
    const fail = (why: string): never => {
      throw new Error(`not a key-value snapshot: ${why}`);
    };
    if (typeof parsed !== "object" || parsed === null) fail("not an object");
    const { revision, compactedThrough, entries, changes } = parsed as Record<string, unknown>;
    if (!isRevision(revision)) fail("bad revision");
    if (!isRevision(compactedThrough) || (compactedThrough as number) > (revision as number))
      fail("bad compactedThrough");
    if (!Array.isArray(entries) || entries.length > this.limits.keysMax) fail("bad entries");
    if (!Array.isArray(changes) || changes.length > this.limits.watchHistoryMax) fail("bad changes");
    const nextEntries = new Map<string, KvEntry>();
    for (const item of entries as unknown[]) {
      if (!Array.isArray(item) || item.length !== 4) fail("bad entry");
      const [key, value, createRevision, modRevision] = item as unknown[];
      if (typeof key !== "string" || typeof value !== "string" || nextEntries.has(key))
        fail("bad entry key or value");
      if (!isRevision(createRevision) || !isRevision(modRevision)) fail("bad entry revision");
      const create = createRevision as number;
      const mod = modRevision as number;
      if (create < 1 || create > mod || mod > (revision as number)) fail("entry revisions out of order");
      nextEntries.set(key as string, {
        key: key as string,
        value: value as string,
        createRevision: create,
        modRevision: mod,
      });
    }
    const nextChanges: KvChange[] = [];
    for (const item of changes as unknown[]) {
      if (!Array.isArray(item) || item.length !== 3) fail("bad change");
      const [changeRevision, key, value] = item as unknown[];
      if (
        !isRevision(changeRevision) ||
        typeof key !== "string" ||
        !(value === null || typeof value === "string")
      )
        fail("bad change fields");
      const at = changeRevision as number;
      const last = nextChanges[nextChanges.length - 1];
      if (
        at > (revision as number) ||
        at <= (compactedThrough as number) ||
        (last !== undefined && at <= last.revision)
      )
        fail("changes out of order");
      nextChanges.push({ revision: at, key: key as string, value: value as string | null });
    }
    this.revisionValue = revision as number;
    this.entries.clear();
    for (const [key, entry] of nextEntries) this.entries.set(key, entry);
    this.changes = nextChanges;
    this.firstChange = 0;
    this.compactedThrough = compactedThrough as number;
  }

  private write(op: "put" | "append" | "delete" | "cas", key: string, value: string | null): KvResult {
    const previous = this.get(key);
    if (value === null && previous === null)
      return { ok: true, op, revision: this.revisionValue, previous, changed: false };
    if (value !== null && previous === null && this.entries.size >= this.limits.keysMax) {
      return {
        ok: false,
        error: "too-many-keys",
        message: `the store holds ${this.limits.keysMax} keys, its limit`,
        revision: this.revisionValue,
      };
    }
    const revision = ++this.revisionValue;
    if (value === null) this.entries.delete(key);
    else
      this.entries.set(key, {
        key,
        value,
        createRevision: previous?.createRevision ?? revision,
        modRevision: revision,
      });
    this.changes.push({ revision, key, value });
    if (this.changes.length - this.firstChange > this.limits.watchHistoryMax) {
      // Dropped by moving the start; the array is cut once as many have gone (amortized O(1)).
      this.compactedThrough = (this.changes[this.firstChange] as KvChange).revision;
      this.firstChange++;
      if (this.firstChange >= this.limits.watchHistoryMax) {
        this.changes = this.changes.slice(this.firstChange);
        this.firstChange = 0;
      }
    }
    return { ok: true, op, revision, previous, changed: true };
  }

  private list(prefix: string, limit: number): KvResult {
    const keys = [...this.entries.keys()].filter((key) => key.startsWith(prefix)).sort();
    const shown = keys.slice(0, limit);
    return {
      ok: true,
      op: "list",
      revision: this.revisionValue,
      entries: shown.map((key) => this.entries.get(key) as KvEntry),
      more: keys.length > shown.length,
    };
  }

  private commandProblem(command: KvCommand): KvResult | null {
    const refuse = (error: KvError, message: string): KvResult => ({
      ok: false,
      error,
      message,
      revision: this.revisionValue,
    });
    const key = command.op === "list" ? command.prefix : command.key;
    if (typeof key !== "string") return refuse("bad-command", "a key must be a string");
    if (utf8Bytes(key) > this.limits.keyBytesMax)
      return refuse("key-too-large", `a key is at most ${this.limits.keyBytesMax} bytes`);
    if (command.op !== "list" && key === "") return refuse("bad-command", "a key must not be empty");
    // A put's or append's value is a string (null would slip past the types through JSON); a cas's
    // may be null (a delete).
    if ((command.op === "put" || command.op === "append") && typeof command.value !== "string")
      return refuse("bad-command", "a value must be a string");
    const value =
      command.op === "put" || command.op === "append" || command.op === "cas" ? command.value : null;
    if (value !== null && typeof value !== "string") return refuse("bad-command", "a value must be a string");
    if (value !== null && utf8Bytes(value) > this.limits.valueBytesMax)
      return refuse("value-too-large", `a value is at most ${this.limits.valueBytesMax} bytes`);
    if (command.op === "cas") {
      if (command.expectValue === undefined && command.expectRevision === undefined)
        return refuse("bad-command", "cas needs expectValue or expectRevision");
      if (command.expectRevision !== undefined && !isRevision(command.expectRevision))
        return refuse("bad-command", "expectRevision must be a revision (an integer, 0 or more)");
      if (
        command.expectValue !== undefined &&
        command.expectValue !== null &&
        typeof command.expectValue !== "string"
      )
        return refuse("bad-command", "expectValue must be a string or null");
    }
    if (command.op === "list" && command.limit !== undefined) {
      if (
        !Number.isSafeInteger(command.limit) ||
        command.limit < 1 ||
        command.limit > this.limits.listKeysMax
      )
        return refuse("bad-command", `a list limit is 1 to ${this.limits.listKeysMax}`);
    }
    return null;
  }
}

function isRevision(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
