/**
 * The replicated applications: a key-value store and a lock service, as deterministic state machines
 * (every replica applies the same commands in the same order and gets the same results).
 */
export {
  type KvChange,
  type KvCommand,
  type KvEntry,
  type KvError,
  type KvResult,
  KvStore,
} from "./kv.js";
export { type AppLimits, DEFAULT_APP_LIMITS, utf8Bytes } from "./limits.js";
export {
  type LockApplied,
  type LockCommand,
  type LockError,
  type LockGrant,
  type LockResult,
  LockService,
} from "./lock.js";
