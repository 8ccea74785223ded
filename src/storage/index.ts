/**
 * Stable storage for the durable state the core asks to persist (`Output.persist`): the interface,
 * an in-memory implementation, and a write-ahead log on disk.
 */
export { MemoryStorage } from "./memory.js";
export {
  type CompactOptions,
  DurableModel,
  type DurableState,
  emptyDurableState,
  type Storage,
  type StorageError,
  type StorageStats,
  toReplicaState,
} from "./storage.js";
export { DEFAULT_SEGMENT_BYTES_MAX, type WalOptions, WalStorage } from "./wal.js";
