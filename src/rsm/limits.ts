/**
 * The bounds of the replicated applications (the key-value store and the lock service), each with
 * the reason for it; docs/security.md's bounds table lists them with the core's. A command past one
 * is refused with a clear error (a result, never an exception), before it changes anything.
 */
export interface AppLimits {
  /** Bytes of a key (UTF-8): keys are indexed and listed, so they stay short. */
  readonly keyBytesMax: number;
  /**
   * Bytes of a value (UTF-8). A command travels as one payload of at most `Limits.payloadBytesMax`
   * (8 KiB): a value this size leaves room for its key and the command's framing.
   */
  readonly valueBytesMax: number;
  /** Keys in the store: its snapshot (every replica's memory) is bounded by keys x (key + value). */
  readonly keysMax: number;
  /** Keys one `list` returns at most (it says when there are more). */
  readonly listKeysMax: number;
  /**
   * Changes kept for watches (a watch from an older revision gets "compacted", as in etcd): bounds
   * the history every replica keeps and snapshots.
   */
  readonly watchHistoryMax: number;
  /** Bytes of a lock's name. */
  readonly lockNameBytesMax: number;
  /** Locks held or waited for at once. */
  readonly locksMax: number;
  /** Waiters on one lock, and on all of them: a waiter is memory on every replica until granted. */
  readonly waitersPerLockMax: number;
  readonly waitersMax: number;
  /** Lock sessions (clients holding or waiting for a lock) tracked at once. */
  readonly lockSessionsMax: number;
}

export const DEFAULT_APP_LIMITS: AppLimits = {
  keyBytesMax: 512,
  valueBytesMax: 7 * 1024,
  keysMax: 1_000_000,
  listKeysMax: 10_000,
  watchHistoryMax: 10_000,
  lockNameBytesMax: 512,
  locksMax: 100_000,
  waitersPerLockMax: 1_000,
  waitersMax: 100_000,
  lockSessionsMax: 100_000,
};

/** Bytes of a string in UTF-8 (without encoding it). */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}
