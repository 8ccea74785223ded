import { posix } from "node:path";
import { assert, type Prng } from "../core/index.js";
import type { FileHandle, FileStat, FileSystem, OpenFlags } from "./fs.js";

/**
 * How unsynced writes fare in a crash (see {@link MemoryFileSystem.crash}):
 * - `lost`: none of them reaches the disk;
 * - `torn`: a prefix of them does, in the order they were first written, cut at a sector;
 * - `reordered`: any subset of the unsynced sectors does (the disk writes pages in any order).
 */
export type CrashMode = "lost" | "torn" | "reordered";

export const CRASH_MODES: readonly CrashMode[] = ["lost", "torn", "reordered"];

/** One file-system call, as the scheduler sees it. */
export interface FsOperation {
  readonly kind: FsOperationKind;
  /** The path the call names (for a handle's calls, the path it was opened with). */
  readonly path: string;
}

export type FsOperationKind =
  | "mkdir"
  | "readdir"
  | "readFile"
  | "writeFile"
  | "unlink"
  | "rename"
  | "stat"
  | "open"
  | "read"
  | "write"
  | "truncate"
  | "sync"
  | "datasync"
  | "close"
  | "syncDirectory";

/**
 * Decides when each call completes: the call takes effect when the returned promise resolves (a
 * crash meanwhile: it fails and takes no effect). Without one, every call completes at once (in a
 * microtask). A simulator returns a promise it resolves at a simulated time of its choosing.
 */
export type FsScheduler = (operation: FsOperation) => Promise<void> | void;

export interface MemoryFileSystemOptions {
  /**
   * The unit in which unsynced writes tear or reach the disk out of order: a positive multiple of 8.
   * Default 512.
   */
  readonly sectorBytes?: number;
  readonly scheduler?: FsScheduler;
}

/** A byte array that grows in place (amortised), so appending to a large file is cheap. */
class Bytes {
  buffer = Buffer.alloc(0);
  length = 0;

  setLength(length: number): void {
    if (length > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(length, this.buffer.length * 2, 4096));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    } else if (length > this.length) {
      this.buffer.fill(0, this.length, length);
    }
    this.length = length;
  }

  view(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  static of(bytes: Uint8Array): Bytes {
    const result = new Bytes();
    result.setLength(bytes.length);
    result.buffer.set(bytes, 0);
    return result;
  }
}

interface FileNode {
  readonly kind: "file";
  /** What is on the disk: what a crash falls back to. */
  durable: Bytes;
  /** What reads see (the page cache). */
  current: Bytes;
  /** Sectors written since the last sync, in the order first written. */
  readonly dirty: Set<number>;
  /** The size changed since the last sync. */
  sizeDirty: boolean;
}

/** A change to a directory's entries (null: removed), durable only after the directory is synced. */
interface EntryChange {
  readonly name: string;
  readonly node: FsNode | null;
}

interface DirNode {
  readonly kind: "dir";
  /** What lookups see. */
  readonly entries: Map<string, FsNode>;
  /** What is on the disk. */
  durable: Map<string, FsNode>;
  /** Changes since the last sync, in order: a crash keeps a prefix of them. */
  journal: EntryChange[];
}

type FsNode = FileNode | DirNode;

function fsError(code: string, syscall: string, path: string, detail: string): Error {
  const error = new Error(`${code}: ${detail}, ${syscall} '${path}'`) as Error & {
    code: string;
    syscall: string;
    path: string;
  };
  error.code = code;
  error.syscall = syscall;
  error.path = path;
  return error;
}

function newFile(): FileNode {
  return { kind: "file", durable: new Bytes(), current: new Bytes(), dirty: new Set(), sizeDirty: false };
}

function newDir(): DirNode {
  return { kind: "dir", entries: new Map(), durable: new Map(), journal: [] };
}

/**
 * An in-memory {@link FileSystem} with a crash model, for the simulator and for tests. Deterministic:
 * no real time, no `Math.random`; what a crash keeps is drawn from the `Prng` given to `crash`.
 *
 * The disk model (docs/durability.md, "Disk model and recovery rules"):
 * - a file's bytes are durable after `sync`/`datasync`; until then each sector (`sectorBytes`) that
 *   was written may be lost, torn or written out of order by a {@link crash};
 * - a directory entry (create, rename, unlink, mkdir) is durable after `syncDirectory` of its
 *   directory; a crash keeps a prefix of the unsynced changes (journaled metadata is ordered);
 * - injected faults: {@link flipBit} (synced data rots), {@link loseFile}, {@link wipeDirectory},
 *   {@link failNext} (a failing fsync, an I/O error), {@link setBytesFree} (disk full: ENOSPC).
 *
 * A failed `sync` drops the dirty pages' claim to reach the disk (Linux marks them clean: the
 * "fsyncgate" behaviour), so a later `sync` succeeds without them; a crash then loses them.
 *
 * A crash also ends the "process": handles opened before it, and calls still in flight, fail.
 * Paths must be absolute (`/node-1/wal`).
 *
 * @example
 * const fs = new MemoryFileSystem();
 * const wal = new WalStorage({ dir: "/node-1", fs });
 * await wal.open(); wal.append(delta); await wal.sync();
 * fs.crash(new Prng(7)); // what was not synced may be lost, torn or reordered
 * const reopened = await new WalStorage({ dir: "/node-1", fs }).open();
 */
export class MemoryFileSystem implements FileSystem {
  readonly sectorBytes: number;
  /** See {@link FsScheduler}; may be replaced at any time. */
  scheduler: FsScheduler | null;
  private readonly root: DirNode = newDir();
  /** Bumped by each crash: handles and calls from before it fail. */
  private generation = 0;
  /** Bytes that may still be added to files before writes fail with ENOSPC (Infinity: no limit). */
  private bytesFree = Number.POSITIVE_INFINITY;
  private readonly failures: { kind: FsOperationKind; code: string; count: number }[] = [];
  /** Counts of calls that took effect, by kind. */
  readonly counts = new Map<FsOperationKind, number>();

  constructor(options: MemoryFileSystemOptions = {}) {
    this.sectorBytes = options.sectorBytes ?? 512;
    assert(
      Number.isSafeInteger(this.sectorBytes) && this.sectorBytes > 0 && this.sectorBytes % 8 === 0,
      // The log tells a lost sector by an aligned all-zero word of 8 bytes (wal-format.ts).
      `sectorBytes ${this.sectorBytes} must be a positive multiple of 8`,
    );
    this.scheduler = options.scheduler ?? null;
  }

  // --- FileSystem ----------------------------------------------------------------------------------

  async mkdir(path: string): Promise<string | undefined> {
    await this.begin("mkdir", path);
    const parts = this.parts(path, "mkdir");
    let dir = this.root;
    let created: string | undefined;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i] as string;
      const child = dir.entries.get(name);
      if (child === undefined) {
        const made = newDir();
        this.setEntry(dir, name, made);
        created ??= `/${parts.slice(0, i + 1).join("/")}`;
        dir = made;
      } else if (child.kind === "dir") {
        dir = child;
      } else {
        throw fsError(i === parts.length - 1 ? "EEXIST" : "ENOTDIR", "mkdir", path, "not a directory");
      }
    }
    return created;
  }

  async readdir(path: string): Promise<string[]> {
    await this.begin("readdir", path);
    return [...this.dirAt(path, "scandir").entries.keys()];
  }

  async readFile(path: string): Promise<Buffer> {
    await this.begin("readFile", path);
    return Buffer.from(this.fileAt(path, "open").current.view());
  }

  async writeFile(path: string, bytes: Uint8Array): Promise<void> {
    await this.begin("writeFile", path);
    const { dir, name } = this.parentOf(path, "open");
    const existing = dir.entries.get(name);
    if (existing?.kind === "dir") throw fsError("EISDIR", "open", path, "illegal operation on a directory");
    const file = existing ?? newFile();
    if (existing === undefined) this.setEntry(dir, name, file);
    this.resize(file, 0, path);
    this.writeAt(file, bytes, 0, path);
  }

  async unlink(path: string): Promise<void> {
    await this.begin("unlink", path);
    const { dir, name } = this.parentOf(path, "unlink");
    const node = dir.entries.get(name);
    if (node === undefined) throw fsError("ENOENT", "unlink", path, "no such file or directory");
    if (node.kind === "dir") throw fsError("EISDIR", "unlink", path, "illegal operation on a directory");
    this.setEntry(dir, name, null);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.begin("rename", from);
    const source = this.parentOf(from, "rename");
    const node = source.dir.entries.get(source.name);
    if (node === undefined) throw fsError("ENOENT", "rename", from, "no such file or directory");
    const target = this.parentOf(to, "rename");
    const replaced = target.dir.entries.get(target.name);
    if (replaced === node) return;
    if (replaced?.kind === "dir") {
      if (node.kind !== "dir") throw fsError("EISDIR", "rename", to, "illegal operation on a directory");
      if (replaced.entries.size > 0) throw fsError("ENOTEMPTY", "rename", to, "directory not empty");
    } else if (replaced !== undefined && node.kind === "dir") {
      throw fsError("ENOTDIR", "rename", to, "not a directory");
    }
    if (node.kind === "dir" && this.isWithin(target.dir, node))
      throw fsError("EINVAL", "rename", to, "cannot move a directory into itself");
    this.setEntry(source.dir, source.name, null);
    this.setEntry(target.dir, target.name, node);
  }

  async stat(path: string): Promise<FileStat> {
    await this.begin("stat", path);
    const node = this.lookup(path, "stat");
    return node.kind === "dir"
      ? { size: 0, isDirectory: true }
      : { size: node.current.length, isDirectory: false };
  }

  async open(path: string, flags: OpenFlags): Promise<FileHandle> {
    await this.begin("open", path);
    let file: FileNode;
    if (flags === "wx") {
      const { dir, name } = this.parentOf(path, "open");
      if (dir.entries.has(name)) throw fsError("EEXIST", "open", path, "file already exists");
      file = newFile();
      this.setEntry(dir, name, file);
    } else {
      file = this.fileAt(path, "open");
    }
    return new MemoryFileHandle(this, file, path, flags !== "r", this.generation);
  }

  async syncDirectory(path: string): Promise<void> {
    await this.begin("syncDirectory", path);
    const dir = this.dirAt(path, "fsync");
    this.failIfInjected("syncDirectory", path);
    dir.durable = new Map(dir.entries);
    dir.journal = [];
  }

  // --- faults --------------------------------------------------------------------------------------

  /**
   * A power cut: unsynced directory changes keep a random prefix (none in mode `lost`), and each
   * file's unsynced sectors are lost, torn or reordered (`mode`, else drawn per file). What is left
   * becomes the durable state; handles and calls from before the crash fail from now on.
   */
  crash(prng: Prng, mode?: CrashMode): void {
    this.generation++;
    const seen = new Set<FsNode>();
    const settle = (dir: DirNode): void => {
      const keep = mode === "lost" ? 0 : prng.int(dir.journal.length + 1);
      const entries = new Map(dir.durable);
      for (const change of dir.journal.slice(0, keep)) {
        if (change.node === null) entries.delete(change.name);
        else entries.set(change.name, change.node);
      }
      dir.entries.clear();
      for (const [name, node] of entries) dir.entries.set(name, node);
      dir.durable = entries;
      dir.journal = [];
      for (const node of entries.values()) {
        if (seen.has(node)) continue;
        seen.add(node);
        if (node.kind === "dir") settle(node);
        else this.settleFile(node, mode ?? prng.pick(CRASH_MODES), prng);
      }
    };
    settle(this.root);
  }

  /** Flips bit `bit` (0 = the lowest bit of byte 0) of a file's durable bytes: synced data rots. */
  flipBit(path: string, bit: number): void {
    const file = this.fileAt(path, "flipBit");
    const at = Math.floor(bit / 8);
    assert(Number.isSafeInteger(bit) && bit >= 0 && at < file.durable.length, `bit ${bit} is not durable`);
    const mask = 1 << (bit % 8);
    file.durable.buffer[at] = (file.durable.buffer[at] as number) ^ mask;
    // Reads see it too, unless a newer unsynced write covers that sector.
    if (!file.dirty.has(Math.floor(at / this.sectorBytes)) && at < file.current.length)
      file.current.buffer[at] = (file.current.buffer[at] as number) ^ mask;
  }

  /** Flips one random bit of a file's durable bytes, at or after byte `from`; returns the bit. */
  flipRandomBit(path: string, prng: Prng, from = 0): number {
    const file = this.fileAt(path, "flipBit");
    assert(from < file.durable.length, `no durable bytes at or after ${from} in ${path}`);
    const bit = from * 8 + prng.int((file.durable.length - from) * 8);
    this.flipBit(path, bit);
    return bit;
  }

  /** How many bytes of a file are on the disk (what a crash keeps at least, and what may rot). */
  syncedSize(path: string): number {
    return this.fileAt(path, "syncedSize").durable.length;
  }

  /** A file vanishes, durably (a lost inode, an operator's mistake). */
  loseFile(path: string): void {
    const { dir, name } = this.parentOf(path, "loseFile");
    if (!dir.entries.has(name) && !dir.durable.has(name))
      throw fsError("ENOENT", "loseFile", path, "no such file");
    dir.entries.delete(name);
    dir.durable.delete(name);
    dir.journal = dir.journal.filter((change) => change.name !== name);
  }

  /** Every entry of a directory vanishes, durably; the directory stays. */
  wipeDirectory(path: string): void {
    const dir = this.dirAt(path, "wipeDirectory");
    dir.entries.clear();
    dir.durable = new Map();
    dir.journal = [];
  }

  /**
   * The next `count` calls of `kind` fail with `code` and take no effect. A failing `sync` or
   * `datasync` also loses the claim of the file's dirty pages to reach the disk (see the class).
   */
  failNext(kind: FsOperationKind, code = "EIO", count = 1): void {
    assert(Number.isSafeInteger(count) && count > 0, `count ${count} must be a positive integer`);
    this.failures.push({ kind, code, count });
  }

  /** How many more bytes files may grow by before writes fail with ENOSPC (Infinity: no limit). */
  setBytesFree(bytes: number): void {
    assert(bytes >= 0, `bytes free ${bytes} must not be negative`);
    this.bytesFree = bytes;
  }

  /** Whether a path exists (no scheduling: for tests and checkers). */
  /** The names in a directory, at once and with no fault injected (for the simulator's faults); [] if none. */
  namesIn(path: string): string[] {
    return this.exists(path) ? [...this.dirAt(path, "scandir").entries.keys()] : [];
  }

  exists(path: string): boolean {
    try {
      this.lookup(path, "exists");
      return true;
    } catch {
      return false;
    }
  }

  /** Bytes written to files and not yet synced, over all files (for tests and checkers). */
  unsyncedSectors(): number {
    let sectors = 0;
    const visit = (dir: DirNode): void => {
      for (const node of dir.entries.values()) {
        if (node.kind === "dir") visit(node);
        else sectors += node.dirty.size;
      }
    };
    visit(this.root);
    return sectors;
  }

  // --- for MemoryFileHandle -------------------------------------------------------------------------

  /** Waits for the scheduler, then checks that no crash happened meanwhile. */
  async begin(kind: FsOperationKind, path: string, generation = this.generation): Promise<void> {
    const started = this.generation;
    if (generation !== started) throw fsError("EBADF", kind, path, "handle from before a crash");
    if (this.scheduler !== null) await this.scheduler({ kind, path });
    if (this.generation !== started) throw fsError("EIO", kind, path, "the machine crashed during the call");
    if (kind !== "sync" && kind !== "datasync" && kind !== "syncDirectory") this.failIfInjected(kind, path);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  failIfInjected(kind: FsOperationKind, path: string): void {
    const index = this.failures.findIndex((failure) => failure.kind === kind);
    if (index === -1) return;
    const failure = this.failures[index] as { kind: FsOperationKind; code: string; count: number };
    failure.count--;
    if (failure.count === 0) this.failures.splice(index, 1);
    throw fsError(failure.code, kind, path, "injected failure");
  }

  readAt(file: FileNode, buffer: Uint8Array, offset: number, length: number, position: number): number {
    const end = Math.min(file.current.length, position + length);
    if (end <= position) return 0;
    buffer.set(file.current.buffer.subarray(position, end), offset);
    return end - position;
  }

  /** Writes what fits on the disk; throws ENOSPC when nothing does. */
  writeAt(file: FileNode, bytes: Uint8Array, position: number, path: string): number {
    const growth = Math.max(0, position + bytes.length - file.current.length);
    let length = bytes.length;
    if (growth > this.bytesFree) {
      length -= growth - Math.max(0, this.bytesFree);
      if (length <= 0) throw fsError("ENOSPC", "write", path, "no space left on device");
    }
    if (length === 0) return 0;
    const end = position + length;
    if (end > file.current.length) {
      this.bytesFree -= end - file.current.length;
      file.current.setLength(end);
      file.sizeDirty = true;
    }
    file.current.buffer.set(bytes.subarray(0, length), position);
    this.markDirty(file, position, end);
    return length;
  }

  resize(file: FileNode, length: number, path: string): void {
    const old = file.current.length;
    if (length === old) return;
    if (length > old) {
      if (length - old > this.bytesFree)
        throw fsError("ENOSPC", "ftruncate", path, "no space left on device");
      this.bytesFree -= length - old;
      file.current.setLength(length);
      this.markDirty(file, old, length);
    } else {
      file.current.length = length;
      if (length % this.sectorBytes !== 0) this.markDirty(file, length, length + 1);
    }
    file.sizeDirty = true;
  }

  syncFile(file: FileNode, kind: "sync" | "datasync", path: string): void {
    try {
      this.failIfInjected(kind, path);
    } catch (error) {
      // Linux marks the pages clean after a failed writeback: they never reach the disk now.
      file.dirty.clear();
      file.sizeDirty = false;
      throw error;
    }
    const durable = file.durable;
    durable.setLength(file.current.length);
    for (const sector of file.dirty) this.copySector(file.current, durable, sector, durable.length);
    file.dirty.clear();
    file.sizeDirty = false;
  }

  isCurrent(generation: number): boolean {
    return generation === this.generation;
  }

  // --- internals -----------------------------------------------------------------------------------

  private markDirty(file: FileNode, start: number, end: number): void {
    const last = Math.floor((end - 1) / this.sectorBytes);
    for (let sector = Math.floor(start / this.sectorBytes); sector <= last; sector++) file.dirty.add(sector);
  }

  /** Copies `sector` of `from` into `to`, as far as both extend (`to` is already `length` long). */
  private copySector(from: Bytes, to: Bytes, sector: number, length: number): void {
    const start = sector * this.sectorBytes;
    const end = Math.min(start + this.sectorBytes, from.length, length);
    if (end > start) to.buffer.set(from.buffer.subarray(start, end), start);
  }

  /** What a crash leaves of one file: see {@link CrashMode}. */
  private settleFile(file: FileNode, mode: CrashMode, prng: Prng): void {
    const sectors = [...file.dirty];
    let taken: number[] = [];
    let length = file.durable.length;
    if (mode === "torn") {
      const keep = prng.int(sectors.length + 1);
      taken = sectors.slice(0, keep);
      if (keep === sectors.length && file.sizeDirty) {
        length = file.current.length;
      } else {
        let end = 0;
        for (const sector of taken) end = Math.max(end, (sector + 1) * this.sectorBytes);
        length = Math.max(length, Math.min(end, file.current.length));
      }
    } else if (mode === "reordered") {
      taken = sectors.filter(() => prng.chance(0.5));
      if (file.sizeDirty && prng.chance(0.5)) length = file.current.length;
    }
    const result = new Bytes();
    result.setLength(length);
    result.buffer.set(file.durable.buffer.subarray(0, Math.min(length, file.durable.length)), 0);
    for (const sector of taken) this.copySector(file.current, result, sector, length);
    file.durable = result;
    file.current = Bytes.of(result.view());
    file.dirty.clear();
    file.sizeDirty = false;
  }

  private setEntry(dir: DirNode, name: string, node: FsNode | null): void {
    if (node === null) dir.entries.delete(name);
    else dir.entries.set(name, node);
    dir.journal.push({ name, node });
  }

  private isWithin(dir: DirNode, ancestor: DirNode): boolean {
    if (dir === ancestor) return true;
    for (const node of ancestor.entries.values())
      if (node.kind === "dir" && this.isWithin(dir, node)) return true;
    return false;
  }

  private parts(path: string, syscall: string): string[] {
    if (!path.startsWith("/"))
      throw fsError("EINVAL", syscall, path, "MemoryFileSystem takes absolute paths");
    return posix
      .normalize(path)
      .split("/")
      .filter((part) => part !== "");
  }

  private lookup(path: string, syscall: string): FsNode {
    let node: FsNode = this.root;
    for (const name of this.parts(path, syscall)) {
      if (node.kind !== "dir") throw fsError("ENOTDIR", syscall, path, "not a directory");
      const child: FsNode | undefined = node.entries.get(name);
      if (child === undefined) throw fsError("ENOENT", syscall, path, "no such file or directory");
      node = child;
    }
    return node;
  }

  private fileAt(path: string, syscall: string): FileNode {
    const node = this.lookup(path, syscall);
    if (node.kind === "dir") throw fsError("EISDIR", syscall, path, "illegal operation on a directory");
    return node;
  }

  private dirAt(path: string, syscall: string): DirNode {
    const node = this.lookup(path, syscall);
    if (node.kind !== "dir") throw fsError("ENOTDIR", syscall, path, "not a directory");
    return node;
  }

  private parentOf(path: string, syscall: string): { dir: DirNode; name: string } {
    const parts = this.parts(path, syscall);
    const name = parts.pop();
    if (name === undefined) throw fsError("EISDIR", syscall, path, "the root directory");
    return { dir: this.dirAt(`/${parts.join("/")}`, syscall), name };
  }
}

class MemoryFileHandle implements FileHandle {
  private closed = false;

  constructor(
    private readonly fs: MemoryFileSystem,
    private readonly file: FileNode,
    private readonly path: string,
    private readonly writable: boolean,
    private readonly generation: number,
  ) {}

  async read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number }> {
    await this.begin("read");
    return { bytesRead: this.fs.readAt(this.file, buffer, offset, length, position) };
  }

  async write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }> {
    await this.begin("write", true);
    const bytes = buffer.subarray(offset, offset + length);
    return { bytesWritten: this.fs.writeAt(this.file, bytes, position, this.path) };
  }

  async truncate(length: number): Promise<void> {
    await this.begin("truncate", true);
    this.fs.resize(this.file, length, this.path);
  }

  async sync(): Promise<void> {
    await this.begin("sync");
    this.fs.syncFile(this.file, "sync", this.path);
  }

  async datasync(): Promise<void> {
    await this.begin("datasync");
    this.fs.syncFile(this.file, "datasync", this.path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Closing after a crash is harmless (the process that held it is gone).
    if (!this.fs.isCurrent(this.generation)) return;
    await this.fs.begin("close", this.path, this.generation).catch(() => undefined);
  }

  private async begin(kind: FsOperationKind, write = false): Promise<void> {
    if (this.closed) throw fsError("EBADF", kind, this.path, "file handle closed");
    if (write && !this.writable) throw fsError("EBADF", kind, this.path, "file opened read-only");
    await this.fs.begin(kind, this.path, this.generation);
  }
}
