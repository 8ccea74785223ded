import * as nodeFs from "node:fs/promises";

/**
 * The small file-system interface the write-ahead log uses, so that the same `WalStorage` runs on
 * the real disk ({@link nodeFileSystem}) and on a simulated one (`MemoryFileSystem`, which injects
 * crashes and disk faults deterministically). Errors are thrown as Node's are: an `Error` with a
 * `code` (`ENOENT`, `EEXIST`, `ENOSPC`, `EIO`, ...).
 *
 * Durability contract (what the log relies on, and what the simulated one enforces):
 * - a file's bytes are durable after `sync` or `datasync` on a handle of it resolves;
 * - a name created, renamed or removed in a directory is durable after `syncDirectory` of that
 *   directory resolves (a new directory's own name: sync its parent).
 *
 * @example
 * const handle = await fs.open("/data/wal-00000001.log", "wx");
 * await handle.write(bytes, 0, bytes.length, 0);
 * await handle.datasync();
 * await handle.close();
 * await fs.syncDirectory("/data");
 */
export interface FileSystem {
  /** Creates `path` and its missing parents; returns the first directory created (undefined: none). */
  mkdir(path: string): Promise<string | undefined>;
  /** The names in a directory (not `.` and `..`), in no particular order. */
  readdir(path: string): Promise<string[]>;
  /** A whole file. */
  readFile(path: string): Promise<Buffer>;
  /** Creates or replaces a file with `bytes` (not synced). For tools and tests; the log does not use it. */
  writeFile(path: string, bytes: Uint8Array): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Renames a file or directory, replacing a file at `to` (not synced: sync the directories). */
  rename(from: string, to: string): Promise<void>;
  /** Size in bytes and kind; throws ENOENT when `path` does not exist. */
  stat(path: string): Promise<FileStat>;
  /**
   * Opens a file: `"r"` read only, `"r+"` read and write (must exist), `"wx"` create for writing
   * (fails with EEXIST if it exists).
   */
  open(path: string, flags: OpenFlags): Promise<FileHandle>;
  /** Makes the directory's entries (creates, renames, removals in it) durable. */
  syncDirectory(path: string): Promise<void>;
}

export type OpenFlags = "r" | "r+" | "wx";

export interface FileStat {
  readonly size: number;
  readonly isDirectory: boolean;
}

/** An open file, read and written at explicit positions (no file cursor). */
export interface FileHandle {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  /** May write fewer bytes than asked (disk full writes what fits); loop on `bytesWritten`. */
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  truncate(length: number): Promise<void>;
  /** Data and metadata durable (`fsync`). */
  sync(): Promise<void>;
  /** Data durable, and the metadata needed to read it back, such as the size (`fdatasync`). */
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/** The real file system, over `node:fs/promises`. */
export const nodeFileSystem: FileSystem = {
  mkdir: (path) => nodeFs.mkdir(path, { recursive: true }),
  readdir: (path) => nodeFs.readdir(path),
  readFile: (path) => nodeFs.readFile(path),
  writeFile: (path, bytes) => nodeFs.writeFile(path, bytes),
  unlink: (path) => nodeFs.unlink(path),
  rename: (from, to) => nodeFs.rename(from, to),
  async stat(path) {
    const stats = await nodeFs.stat(path);
    return { size: stats.size, isDirectory: stats.isDirectory() };
  },
  open: (path, flags) => nodeFs.open(path, flags),
  async syncDirectory(path) {
    // On Windows a directory cannot be opened for syncing; its metadata is journaled anyway.
    if (process.platform === "win32") return;
    const handle = await nodeFs.open(path, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};
