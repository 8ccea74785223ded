import { type Ballot, type DurableDelta, type Prng, type Result, ZERO_BALLOT } from "../core/index.js";
import type { DataDirFileSystem } from "../runtime/index.js";
import {
  type CompactOptions,
  type DurableState,
  type FsOperation,
  MemoryFileSystem,
  type Storage,
  type StorageError,
  type StorageStats,
  type WalOptions,
  WalStorage,
} from "../storage/index.js";

/** Where a simulated process keeps its log on its own simulated disk (its `--data`). */
export const SIM_DATA_DIR = "/data";

/** Where the adapter puts directories the data-dir set-up removes (never read again). */
const TRASH_DIR = "/trash";

/**
 * One simulated machine's disk: a `MemoryFileSystem` (storage/'s in-memory file system with its
 * crash model) that the real `WalStorage` runs on. It outlives the processes that use it. The
 * durability points (`sync`, `datasync`, `syncDirectory`) complete after the disk's latency, as
 * simulator events, in the order they were asked for; other calls complete at once. A crash
 * (`crash`) is the file system's: unsynced writes are lost, torn or reordered, and calls in flight
 * fail.
 */
export class SimDisk {
  readonly fs: MemoryFileSystem;
  /** The same file system as `openDataDir` (runtime/data-dir.ts) sees it. */
  readonly dataDirFs: DataDirFileSystem;
  private removed = 0;

  /**
   * @param complete resolves a durability call after the disk's latency, as a simulator event.
   * @param options for every log on this disk (small segments, so that logs roll; broken variants).
   */
  constructor(
    complete: (done: () => void) => void,
    private readonly options: Pick<WalOptions, "segmentBytesMax" | "bugs"> = {},
  ) {
    this.fs = new MemoryFileSystem({
      scheduler: (operation: FsOperation) => {
        if (operation.kind !== "sync" && operation.kind !== "datasync" && operation.kind !== "syncDirectory")
          return undefined;
        return new Promise<void>((resolve) => complete(resolve));
      },
    });
    const fs = this.fs;
    const notFound = (path: string) =>
      Object.assign(new Error(`ENOENT: no such file or directory, '${path}'`), { code: "ENOENT" });
    // `MemoryFileSystem` has no rmdir: a removed directory is renamed into a trash directory (an
    // atomic rename of one entry, durable after the parent's sync, as an rmdir's removal is).
    const remove = async (path: string) => {
      if (!fs.exists(TRASH_DIR)) await fs.mkdir(TRASH_DIR);
      await fs.rename(path, `${TRASH_DIR}/${++this.removed}`);
    };
    this.dataDirFs = {
      async kind(path) {
        if (!fs.exists(path)) return null;
        return (await fs.stat(path)).isDirectory ? "directory" : "file";
      },
      async realpath(path) {
        if (!fs.exists(path)) throw notFound(path);
        return path; // no symbolic links
      },
      async mkdir(path) {
        if (fs.exists(path))
          throw Object.assign(new Error(`EEXIST: file already exists, '${path}'`), { code: "EEXIST" });
        await fs.mkdir(path);
      },
      readdir: (path) => fs.readdir(path),
      rename: (from, to) => fs.rename(from, to),
      async removeEmptyDirectory(path) {
        if ((await fs.readdir(path)).length > 0)
          throw Object.assign(new Error(`ENOTEMPTY: directory not empty, '${path}'`), { code: "ENOTEMPTY" });
        await remove(path);
      },
      removeTree: remove,
      syncDirectory: (path) => fs.syncDirectory(path),
    };
  }

  /** A `WalStorage` in `dir` on this disk (what `openDataDir`'s `createLog` makes). */
  log(dir: string): WalStorage {
    return new WalStorage({ ...this.options, dir, fs: this.fs });
  }

  /** A power cut: what was not synced is lost, torn or reordered (the crash mode drawn per file). */
  crash(prng: Prng): void {
    this.fs.crash(prng);
  }
}

/**
 * The storage a process uses, watched for a deliberately broken variant (`forgetNewestPromise`): it
 * remembers the promise made durable before the newest one. Everything else passes through.
 */
export class PromiseWatch implements Storage {
  /** The promise durable before the newest one (ZERO_BALLOT: none). */
  priorPromised: Ballot = ZERO_BALLOT;
  private durablePromised: Ballot = ZERO_BALLOT;
  private appendedPromised: Ballot | null = null;

  constructor(
    private readonly inner: Storage,
    history: { durable: Ballot; prior: Ballot },
    private readonly onDurable: (history: { durable: Ballot; prior: Ballot }) => void,
  ) {
    this.durablePromised = history.durable;
    this.priorPromised = history.prior;
  }

  open(): Promise<Result<DurableState, StorageError>> {
    return this.inner.open();
  }

  append(delta: DurableDelta): void {
    if (delta.promised !== undefined) this.appendedPromised = delta.promised;
    this.inner.append(delta);
  }

  sync(): Promise<void> {
    return this.watch(this.inner.sync());
  }

  compact(options?: CompactOptions): Promise<void> {
    return this.watch(this.inner.compact(options));
  }

  close(options?: { readonly sync?: boolean }): Promise<void> {
    return this.inner.close(options);
  }

  get stats(): StorageStats {
    return this.inner.stats;
  }

  private async watch(done: Promise<void>): Promise<void> {
    const promised = this.appendedPromised;
    await done;
    if (promised !== null && promised !== this.durablePromised) {
      this.priorPromised = this.durablePromised;
      this.durablePromised = promised;
      if (this.appendedPromised === promised) this.appendedPromised = null;
      this.onDurable({ durable: this.durablePromised, prior: this.priorPromised });
    }
  }
}
