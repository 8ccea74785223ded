/**
 * Stable storage for the durable state the core asks to persist (`Output.persist`): the interface,
 * an in-memory implementation, a write-ahead log on disk, and the small file-system interface the
 * log runs on (the real one, or an in-memory one with a crash model for the simulator and tests).
 */
export {
  type FileHandle,
  type FileStat,
  type FileSystem,
  nodeFileSystem,
  type OpenFlags,
} from "./fs.js";
export { MemoryStorage } from "./memory.js";
export {
  CRASH_MODES,
  type CrashMode,
  type FsOperation,
  type FsOperationKind,
  type FsScheduler,
  MemoryFileSystem,
  type MemoryFileSystemOptions,
} from "./memory-fs.js";
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
export { DEFAULT_SEGMENT_BYTES_MAX, type WalBugs, type WalOptions, WalStorage } from "./wal.js";
