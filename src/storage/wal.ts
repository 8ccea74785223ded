import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import type { DurableDelta, Result } from "../core/index.js";
import { assert, err, ok } from "../core/index.js";
import { type FileHandle, type FileSystem, nodeFileSystem } from "./fs.js";
import type { CompactOptions, DurableState, Storage, StorageError, StorageStats } from "./storage.js";
import { DurableModel } from "./storage.js";
import {
  alignRecord,
  type CheckpointCounts,
  type CheckpointMarks,
  checkSegmentHeader,
  DeltaAssembler,
  encodeSegmentHeader,
  findRecordFrom,
  isCheckpointBody,
  parseSegmentFileName,
  RECORD_HEADER_BYTES,
  RECORD_PAYLOAD_BYTES_MAX,
  RecordBuffer,
  readRecordAt,
  SEAL_RECORD_BYTES,
  SEGMENT_HEADER_BYTES,
  SEGMENT_NUMBER_MAX,
  segmentFileName,
  showsLostSector,
} from "./wal-format.js";

export interface WalOptions {
  /** The log's directory (created if missing). One node, one directory: nothing locks it. */
  readonly dir: string;
  /**
   * A new segment starts before a group commit that would grow the current one past this. A single
   * commit or checkpoint larger than this still goes whole into one segment: records never span
   * segments. Default 64 MiB.
   */
  readonly segmentBytesMax?: number;
  /** Where the files live: the real disk by default, or a simulated one (`MemoryFileSystem`). */
  readonly fs?: FileSystem;
  /** Deliberate bugs, to prove the simulator's checkers catch them. Tests only. */
  readonly bugs?: WalBugs;
  /**
   * Each group commit (one write and one data sync) that succeeded, with how long it took: for
   * metrics (`paxos_wal_sync_seconds`). Called after the commit; keep it cheap.
   */
  readonly onCommit?: (durationMs: number) => void;
}

/** Deliberately broken variants of the log (the simulator's canaries). */
export interface WalBugs {
  /** `open` does not notice a lost newest segment (a sealed last segment opens as if complete). */
  readonly ignoreLostNewestSegment?: boolean;
}

export const DEFAULT_SEGMENT_BYTES_MAX = 64 * 1024 * 1024;

/** What replay does with a segment's records, once checked and joined into whole deltas. */
type LogEntry =
  | { readonly type: "delta"; readonly delta: DurableDelta }
  /** A checkpoint begins: the state is reset to its marks (its body, a delta, follows). */
  | { readonly type: "checkpoint"; readonly marks: CheckpointMarks };

/** What one segment holds, once checked. */
interface SegmentScan {
  readonly entries: LogEntry[];
  /** Where the last good record ends (the header's end if there is none). */
  readonly validEnd: number;
  /** Bytes after `validEnd`: a torn tail (last segment only). */
  readonly tornBytes: number;
  /** The header itself was torn (a crash while creating the segment): rewrite it. */
  readonly headerTorn: boolean;
  /** The segment starts with a complete checkpoint: nothing before it is needed. */
  readonly startsWithCheckpoint: boolean;
  /** Where that checkpoint ends (the header's end without one). */
  readonly checkpointEnd: number;
  /** The segment ends with a seal (naming the next segment): it was complete. */
  readonly sealed: boolean;
  /** Where the group commit of the last record kept begins (the header's end without records). */
  readonly lastCommitStart: number;
}

function corrupt(file: string, offset: number, detail: string): { ok: false; error: StorageError } {
  return err({ kind: "corrupt", file, offset, detail });
}

function ioError(error: unknown): StorageError {
  const code = (error as { code?: unknown } | null)?.code;
  const detail = error instanceof Error ? error.message : String(error);
  return typeof code === "string" ? { kind: "io", detail, code } : { kind: "io", detail };
}

function isAllZero(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte !== 0) return false;
  return true;
}

/** `write` may write less than asked; loop until all of it is at `position`. */
async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += bytesWritten;
  }
}

/**
 * Checks one segment's bytes and joins its records into whole deltas.
 *
 * `mayEndTorn`: the segment may end in a write that never completed (the last segment, or the one
 * before it when a roll was interrupted). Damage there is a torn tail, cut off, only when the damaged
 * record shows a sector that never reached the disk (`showsLostSector`) and no record of a later
 * group commit follows it; anything else is corruption: synced bytes rotted, and dropping them would
 * silently forget votes. A delta or a checkpoint without its last record at the end of the last
 * segment is torn as a whole: each is written within one group commit.
 */
export function scanSegment(
  bytes: Buffer,
  segment: number,
  isLast: boolean,
  mayEndTorn = isLast,
): Result<SegmentScan, StorageError> {
  const file = segmentFileName(segment);
  const headerProblem = checkSegmentHeader(bytes, segment);
  if (headerProblem !== null) {
    // Creating a segment writes and syncs its header before anything else goes in, so in the last
    // segment a short or all-zero header is a creation the crash interrupted.
    if (isLast && (bytes.length < SEGMENT_HEADER_BYTES || isAllZero(bytes))) {
      return ok(emptyScan(bytes.length, true));
    }
    return corrupt(file, 0, headerProblem);
  }
  const entries: LogEntry[] = [];
  const deltas = new DeltaAssembler();
  /** Where the delta being joined began. */
  let deltaStart = SEGMENT_HEADER_BYTES;
  /** The checkpoint begun and not yet ended: what its begin says it holds, and what it holds so far. */
  let checkpoint: { readonly announced: CheckpointCounts; held: CheckpointCounts } | null = null;
  let checkpointEnd = SEGMENT_HEADER_BYTES;
  let at = SEGMENT_HEADER_BYTES;
  let tornBytes = 0;
  let sealed = false;
  let lastCommitStart = SEGMENT_HEADER_BYTES;
  while (at < bytes.length) {
    const read = readRecordAt(bytes, at, segment);
    if (!read.ok) {
      if (read.damage === "payload") return corrupt(file, at, read.detail);
      if (sealed) return corrupt(file, at, `${read.detail} after the segment's seal`);
      if (!mayEndTorn) return corrupt(file, at, `${read.detail} (in a segment that was complete)`);
      if (!showsLostSector(bytes, at, read.damage)) {
        return corrupt(
          file,
          at,
          `${read.detail}, with no sign of an interrupted write: synced bytes are damaged`,
        );
      }
      // Group commits are written one at a time, each synced before the next begins: a record of a
      // later one means the damaged one was synced.
      for (let later = findRecordFrom(bytes, at + 1, segment); later !== null; ) {
        if (later.commitStart > at) {
          return corrupt(
            file,
            at,
            `${read.detail}, and a group commit begun after it at offset ${later.commitStart}: synced bytes are damaged`,
          );
        }
        later = findRecordFrom(bytes, later.at + 1, segment);
      }
      tornBytes = bytes.length - at;
      break;
    }
    const record = read.record;
    if (sealed) return corrupt(file, at, `a ${record.type} record after the segment's seal`);
    if (record.type === "delta") {
      const part = record.part;
      if (!deltas.open) deltaStart = at;
      if (checkpoint !== null) {
        // A checkpoint's body: snapshot, votes and decided slots only (the marks are in its begin).
        if (!isCheckpointBody(part)) return corrupt(file, at, "checkpoint body holds marks");
        checkpoint.held = {
          votes: checkpoint.held.votes + (part.accepted?.length ?? 0),
          decided: checkpoint.held.decided + (part.decided?.length ?? 0),
          snapshotSlot: part.snapshotHead?.slot ?? checkpoint.held.snapshotSlot,
        };
      }
      const joined = deltas.add(part);
      if (!joined.ok) return corrupt(file, at, joined.error);
      if (joined.value !== null) {
        entries.push({ type: "delta", delta: joined.value });
        if (checkpoint === null) lastCommitStart = read.commitStart;
      }
    } else if (deltas.open) {
      return corrupt(file, at, `${record.type} inside a delta`);
    } else if (record.type === "checkpoint-begin") {
      if (at !== SEGMENT_HEADER_BYTES)
        return corrupt(file, at, "checkpoint begins in the middle of a segment");
      checkpoint = { announced: record.counts, held: { votes: 0, decided: 0, snapshotSlot: 0 } };
      entries.push({ type: "checkpoint", marks: record.marks });
    } else if (record.type === "checkpoint-end") {
      if (checkpoint === null) return corrupt(file, at, "checkpoint end without a begin");
      const { announced, held } = checkpoint;
      if (!sameCounts(announced, held) || !sameCounts(record.counts, held)) {
        return corrupt(
          file,
          at,
          `checkpoint begins with ${describeCounts(announced)}, holds ${describeCounts(held)}, ` +
            `ends with ${describeCounts(record.counts)}`,
        );
      }
      checkpoint = null;
      checkpointEnd = read.next;
      lastCommitStart = read.commitStart;
    } else {
      if (checkpoint !== null) return corrupt(file, at, "seal inside a checkpoint");
      if (record.next !== segment + 1)
        return corrupt(file, at, `seal names segment ${record.next}, not ${segment + 1}`);
      sealed = true;
      lastCommitStart = read.commitStart;
    }
    at = read.next;
  }

  if (checkpoint !== null) {
    if (!isLast) {
      return corrupt(
        file,
        SEGMENT_HEADER_BYTES,
        "checkpoint without an end (in a segment that was complete)",
      );
    }
    // The checkpoint is written and synced as one batch, and nothing follows it until then: all
    // of it is an interrupted compaction. The segments it would have replaced are all still there.
    return ok(emptyScan(bytes.length, false));
  }
  if (deltas.open) {
    if (!isLast)
      return corrupt(file, deltaStart, "delta without its last record (in a segment that was complete)");
    // All records of a delta go in one write: without its last one, that write was interrupted.
    tornBytes = bytes.length - deltaStart;
    at = deltaStart;
  }
  return ok({
    entries,
    validEnd: at,
    tornBytes,
    headerTorn: false,
    startsWithCheckpoint: checkpointEnd > SEGMENT_HEADER_BYTES,
    checkpointEnd,
    sealed,
    lastCommitStart,
  });
}

/** A last segment with nothing valid past its header: all of its `length` bytes from there are torn. */
function emptyScan(length: number, headerTorn: boolean): SegmentScan {
  return {
    entries: [],
    validEnd: SEGMENT_HEADER_BYTES,
    tornBytes: headerTorn ? length : length - SEGMENT_HEADER_BYTES,
    headerTorn,
    startsWithCheckpoint: false,
    checkpointEnd: SEGMENT_HEADER_BYTES,
    sealed: false,
    lastCommitStart: SEGMENT_HEADER_BYTES,
  };
}

function sameCounts(a: CheckpointCounts, b: CheckpointCounts): boolean {
  return a.votes === b.votes && a.decided === b.decided && a.snapshotSlot === b.snapshotSlot;
}

function describeCounts(counts: CheckpointCounts): string {
  return `${counts.votes} votes, ${counts.decided} decided slots, snapshot slot ${counts.snapshotSlot}`;
}

/**
 * A write-ahead log of durable deltas in segment files `wal-00000001.log`, `wal-00000002.log`, ...
 * in one directory (format: see `wal-format.ts`).
 *
 * - `append` encodes into a memory buffer. `sync` writes the whole buffer with one write and one
 *   `fdatasync` (group commit); syncs asked for while one is in flight share the next round.
 * - Segments roll at `segmentBytesMax`. `compact` writes a checkpoint of the whole state into a new
 *   segment, syncs it, then deletes the older segments.
 * - `open` replays from the newest complete checkpoint (or segment 1), cuts off a torn tail, and
 *   reports any other damage as `{ kind: "corrupt" }` without touching anything.
 * - After a failed write or sync the log refuses all further work: Linux may have dropped the dirty
 *   pages and marked them clean (PostgreSQL's "fsyncgate"), so retrying could report success for
 *   lost data. Restart the node; `open` finds out what reached the disk.
 *
 * Crash safety, in short: a segment's header is synced, then the directory, before any record goes
 * in; a segment number is never reused (new segments take the highest number ever seen plus one, and
 * are created with O_EXCL); records never span segments, and every segment but the last was synced
 * whole and sealed (a record naming the next) before records went to the next, so damage in one is
 * corruption, not a torn write, and a lost newest segment shows. In the last segment, damage is a
 * torn tail only if it shows a sector that never reached the disk (docs/durability.md, "Disk model
 * and recovery rules"); a flipped bit is corruption wherever it is.
 *
 * @example
 * const wal = new WalStorage({ dir: "data/node-1" });
 * const opened = await wal.open();
 * if (!opened.ok) throw new Error(`do not vote: ${opened.error.kind}`);
 * wal.append({ promised: { round: 3, node: 2 } });
 * wal.append({ accepted: [{ slot: 1, ballot: { round: 3, node: 2 }, value: { commands: [] } }] });
 * await wal.sync(); // one write, one fdatasync
 */
export class WalStorage implements Storage {
  readonly dir: string;
  private readonly fs: FileSystem;
  private readonly segmentBytesMax: number;
  private readonly bugs: WalBugs;
  private readonly onCommit: ((durationMs: number) => void) | undefined;
  /** When the group commit in progress began (`performance.now()`), or null: none runs. */
  private commitStarted: number | null = null;
  /** The state as every delta appended so far leaves it: what a checkpoint writes. */
  private readonly model = new DurableModel();
  /** Appends go here; a commit swaps it with `spare` so appends continue during the write. */
  private pending = new RecordBuffer();
  private spare = new RecordBuffer();
  private handle: FileHandle | null = null;
  /** The segment appended to (the highest number in `segmentSizes`). */
  private segment = 0;
  /** Live segments and their sizes in bytes, in ascending order. */
  private readonly segmentSizes = new Map<number, number>();
  private phase: "new" | "opening" | "open" | "closed" = "new";
  private foundNoLog = false;
  private failure: Error | null = null;
  /** The last operation scheduled (it may reject), and a never-rejecting tail to chain the next on. */
  private last: Promise<void> = Promise.resolve();
  private chain: Promise<void> = Promise.resolve();
  /** A commit scheduled but not started: syncs asked for meanwhile share it. */
  private queued: Promise<void> | null = null;
  private readonly counters = {
    records: 0,
    bytes: 0,
    syncs: 0,
    directorySyncs: 0,
    lastSyncMs: 0,
    tornTailBytes: 0,
    compactions: 0,
    bytesSinceCheckpoint: 0,
    checkpointBytes: 0,
  };

  constructor(options: WalOptions) {
    this.dir = options.dir;
    this.fs = options.fs ?? nodeFileSystem;
    this.segmentBytesMax = options.segmentBytesMax ?? DEFAULT_SEGMENT_BYTES_MAX;
    this.bugs = options.bugs ?? {};
    this.onCommit = options.onCommit;
    // Offsets in a segment must fit the records' u32 commit start; a single commit larger than
    // the maximum (which goes whole into a new segment) stays far below 4 GiB too.
    const bytesMax = 2 ** 31;
    if (
      !(
        Number.isSafeInteger(this.segmentBytesMax) &&
        this.segmentBytesMax > SEGMENT_HEADER_BYTES &&
        this.segmentBytesMax <= bytesMax
      )
    ) {
      throw new RangeError(
        `segmentBytesMax ${this.segmentBytesMax} must be an integer above ${SEGMENT_HEADER_BYTES}, at most ${bytesMax}`,
      );
    }
  }

  async open(): Promise<Result<DurableState, StorageError>> {
    if (this.phase !== "new") throw new Error("WalStorage.open: call it once, on a new instance");
    this.phase = "opening";
    try {
      const result = await this.load();
      if (result.ok) {
        this.phase = "open";
        return result;
      }
      await this.releaseHandle();
      this.phase = "closed";
      return result;
    } catch (error) {
      await this.releaseHandle();
      this.phase = "closed";
      return err(ioError(error));
    }
  }

  append(delta: DurableDelta): void {
    if (this.phase !== "open") throw new Error(`WalStorage.append: the log is ${this.phase}`);
    const records = this.pending.records;
    const length = this.pending.length;
    this.pending.appendDelta(delta); // throws, appending nothing, on a malformed delta
    this.model.apply(delta);
    this.counters.records += this.pending.records - records;
    this.counters.bytes += this.pending.length - length;
    this.counters.bytesSinceCheckpoint += this.pending.length - length;
  }

  sync(): Promise<void> {
    if (this.phase !== "open") return Promise.reject(new Error(`WalStorage.sync: the log is ${this.phase}`));
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.queued !== null) return this.queued;
    // Nothing new: what was appended is in work already scheduled (an in-flight commit or compaction).
    if (this.pending.length === 0) return this.last;
    const commit = this.schedule(() => {
      this.queued = null;
      return this.commit();
    });
    this.queued = commit;
    return commit;
  }

  compact(options: CompactOptions = {}): Promise<void> {
    if (this.phase !== "open")
      return Promise.reject(new Error(`WalStorage.compact: the log is ${this.phase}`));
    const trimBelowSlot = options.trimBelowSlot ?? 0;
    if (!(Number.isSafeInteger(trimBelowSlot) && trimBelowSlot >= 0)) {
      return Promise.reject(new RangeError(`trimBelowSlot ${trimBelowSlot} must be a non-negative integer`));
    }
    return this.schedule(() => this.checkpoint(trimBelowSlot));
  }

  async close(options: { readonly sync?: boolean } = {}): Promise<void> {
    if (this.phase !== "open") return;
    const done = (options.sync ?? true) && this.failure === null ? this.sync() : this.chain;
    this.phase = "closed";
    try {
      await done;
    } finally {
      await this.chain;
      await this.releaseHandle();
    }
  }

  /**
   * After a successful `open()`: true when the directory held no log at all (it was missing, empty,
   * or every segment in it is gone), false when it held one. The log cannot tell a new node from one
   * that lost its whole directory: the caller decides (a node known to be new starts as a voter; an
   * existing member rejoins).
   */
  get fresh(): boolean {
    if (this.phase !== "open" && this.phase !== "closed") throw new Error("WalStorage.fresh: open() first");
    return this.foundNoLog;
  }

  /** Why the log failed (it refuses all work since: restart the node), or null while it works. */
  get failed(): Error | null {
    return this.failure;
  }

  /** How long the group commit in progress has run, in ms (0: none runs). A stuck disk shows here. */
  get commitRunningMs(): number {
    return this.commitStarted === null ? 0 : performance.now() - this.commitStarted;
  }

  get stats(): StorageStats {
    let diskBytes = 0;
    for (const size of this.segmentSizes.values()) diskBytes += size;
    return {
      ...this.counters,
      pendingRecords: this.pending.records,
      pendingBytes: this.pending.length,
      segments: this.segmentSizes.size,
      diskBytes,
    };
  }

  // --- writing -------------------------------------------------------------------------------------

  /** Runs `operation` after every earlier one; the first failure fails the log for good. */
  private schedule(operation: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.failure !== null) throw this.failure;
      try {
        await operation();
      } catch (error) {
        this.failure ??= error instanceof Error ? error : new Error(String(error));
        throw this.failure;
      }
    });
    this.last = run;
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** One group commit: everything appended until now, one write, one data sync. */
  private async commit(): Promise<void> {
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = this.spare;
    this.spare = batch;
    const started = performance.now();
    this.commitStarted = started;
    try {
      const size = this.currentSize();
      // Roll before the write, never in the middle of it, so records never span segments.
      // Room is kept for the seal that closes a segment, so segments stay within segmentBytesMax.
      if (size > SEGMENT_HEADER_BYTES && size + batch.length + SEAL_RECORD_BYTES > this.segmentBytesMax)
        await this.roll(true);
      await this.writeAndSync(batch);
    } finally {
      batch.reset();
      this.commitStarted = null;
    }
    this.counters.lastSyncMs = performance.now() - started;
    this.onCommit?.(this.counters.lastSyncMs);
  }

  private async checkpoint(trimBelowSlot: number): Promise<void> {
    this.model.trim(trimBelowSlot);
    const image = this.model.image();
    // Every delta appended so far is in `image`, so the write buffer's records are superseded: the
    // checkpoint's sync makes them durable. Appends from here on go after the checkpoint.
    this.pending.reset();
    this.counters.bytesSinceCheckpoint = 0;
    const records = new RecordBuffer();
    records.appendCheckpoint(image);
    await this.roll(false);
    await this.writeAndSync(records);
    this.counters.checkpointBytes = records.length;
    // Only now, with the checkpoint durable, may what it replaces go. If the deletions do not all
    // reach the disk, `open` deletes the leftovers (they are older than the newest checkpoint).
    const older = [...this.segmentSizes.keys()].filter((segment) => segment < this.segment);
    for (const segment of older) {
      await this.fs.unlink(join(this.dir, segmentFileName(segment))).catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== "ENOENT") throw error;
      });
      this.segmentSizes.delete(segment);
    }
    if (older.length > 0) await this.syncDirectory(this.dir);
    this.counters.compactions++;
  }

  private currentSize(): number {
    return this.segmentSizes.get(this.segment) ?? 0;
  }

  /** Writes `records` at the end of the current segment with one write, then one data sync. */
  private async writeAndSync(records: RecordBuffer): Promise<void> {
    const handle = this.handle;
    if (handle === null) throw new Error("WalStorage: no segment open");
    const position = this.currentSize();
    records.seal(this.segment, position);
    const bytes = records.view();
    await writeAll(handle, bytes, position);
    this.segmentSizes.set(this.segment, position + bytes.length);
    // fdatasync also flushes the file size, which a grown file needs to read its new records back.
    await handle.datasync();
    this.counters.syncs++;
  }

  /** Closes the current segment (synced whole by the last commit) and starts the next. */
  /**
   * Closes the current segment (synced whole by the last commit) and starts the next: creates it
   * (header and name synced), then seals the current one with a record naming it, synced, and only
   * then lets records go to the new one. Crash before the seal is durable: the new segment holds no
   * records, and `open` finishes the roll. After: a lost newest segment is seen, as the seal of the
   * one before it names it.
   */
  private async roll(countSeal: boolean): Promise<void> {
    const previous = this.handle;
    const previousSegment = this.segment;
    const previousSize = this.currentSize();
    await this.startSegment(previousSegment + 1);
    if (previous === null) return;
    try {
      await this.writeSeal(previous, previousSegment, previousSize);
      // The seal is log bytes like any other, unless the checkpoint that follows supersedes them.
      if (countSeal) this.counters.bytesSinceCheckpoint += SEAL_RECORD_BYTES;
    } finally {
      await previous.close();
    }
  }

  /** Appends a seal naming `segment + 1` at `position` of `segment` (open in `handle`), and syncs it. */
  private async writeSeal(handle: FileHandle, segment: number, position: number): Promise<void> {
    const seal = new RecordBuffer(64);
    seal.appendSeal(segment + 1);
    assert(seal.length === SEAL_RECORD_BYTES, `a seal takes ${seal.length} bytes`);
    seal.seal(segment, position);
    await writeAll(handle, seal.view(), position);
    this.segmentSizes.set(segment, position + seal.length);
    await handle.datasync();
    this.counters.syncs++;
  }

  /**
   * Creates segment `segment`: exclusive create (never overwrite, never reuse a number), header,
   * fsync the file, then fsync the directory so the new name survives a power failure. A crash in
   * between leaves a short or zero header in the last segment, which `open` rewrites.
   */
  private async startSegment(segment: number): Promise<void> {
    if (segment > SEGMENT_NUMBER_MAX) throw new Error(`segment numbers exhausted (${SEGMENT_NUMBER_MAX})`);
    const handle = await this.fs.open(join(this.dir, segmentFileName(segment)), "wx");
    try {
      await writeAll(handle, encodeSegmentHeader(segment), 0);
      await handle.sync();
      this.counters.syncs++;
      await this.syncDirectory(this.dir);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    this.handle = handle;
    this.segment = segment;
    this.segmentSizes.set(segment, SEGMENT_HEADER_BYTES);
  }

  private async syncDirectory(dir: string): Promise<void> {
    await this.fs.syncDirectory(dir);
    this.counters.directorySyncs++;
  }

  private async releaseHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close().catch(() => undefined);
  }

  // --- opening -------------------------------------------------------------------------------------

  private async load(): Promise<Result<DurableState, StorageError>> {
    const created = await this.fs.mkdir(this.dir);
    if (created !== undefined) {
      // Make each new directory's name durable in its parent.
      const top = resolve(created);
      for (let dir = resolve(this.dir); ; dir = dirname(dir)) {
        await this.syncDirectory(dirname(dir));
        if (dir === top || dirname(dir) === dir) break;
      }
    }
    const segments = (await this.fs.readdir(this.dir))
      .map(parseSegmentFileName)
      .filter((segment): segment is number => segment !== null)
      .sort((a, b) => a - b);
    const lastSegment = segments.at(-1);
    if (lastSegment === undefined) {
      this.foundNoLog = true;
      await this.startSegment(1);
      return ok(this.model.snapshot());
    }

    const lastBytes = await this.fs.readFile(join(this.dir, segmentFileName(lastSegment)));
    const lastScan = scanSegment(lastBytes, lastSegment, true);
    if (!lastScan.ok) return lastScan;
    if (lastScan.value.sealed && this.bugs.ignoreLostNewestSegment !== true) {
      // The log rolled past this segment: the next one held records (or was about to) and is gone.
      return corrupt(
        segmentFileName(lastSegment + 1),
        0,
        `segment missing: ${segmentFileName(lastSegment)} is sealed and names it as the next: the newest segment was lost`,
      );
    }
    /** The last segment holds nothing past its header: a roll may have stopped before its seal. */
    const lastEmpty = lastScan.value.headerTorn || lastBytes.length === SEGMENT_HEADER_BYTES;

    // The base is the newest segment that starts with a complete checkpoint, else segment 1.
    let baseIndex = segments.length - 1;
    if (!lastScan.value.startsWithCheckpoint) {
      baseIndex = -1;
      for (let i = segments.length - 2; i >= 0; i--) {
        const first = await this.peekCheckpoint(segments[i] as number);
        if (!first.ok) return first;
        if (first.value) {
          baseIndex = i;
          break;
        }
      }
      if (baseIndex === -1) {
        const oldest = segments[0] as number;
        if (oldest !== 1) {
          return corrupt(
            segmentFileName(oldest),
            0,
            `log starts at segment ${oldest} without a checkpoint: earlier segments are missing`,
          );
        }
        baseIndex = 0;
      }
    }
    for (let i = baseIndex; i < segments.length - 1; i++) {
      const segment = segments[i] as number;
      const next = segments[i + 1] as number;
      if (next !== segment + 1) {
        return corrupt(
          segmentFileName(segment + 1),
          0,
          `segment missing: ${segmentFileName(segment)} is followed by ${segmentFileName(next)}`,
        );
      }
    }

    // Replay from the base. Nothing is changed on disk until all of it has checked out.
    const sizes = new Map<number, number>();
    let checkpointBytes = 0;
    let recordBytes = 0;
    /** The segment before the last, when the roll to the last stopped before its seal was durable. */
    let unsealed: { segment: number; scan: SegmentScan; bytes: Buffer } | null = null;
    for (let i = baseIndex; i < segments.length; i++) {
      const segment = segments[i] as number;
      let scan = lastScan.value;
      if (i < segments.length - 1) {
        const bytes = await this.fs.readFile(join(this.dir, segmentFileName(segment)));
        const beforeEmptyLast = i === segments.length - 2 && lastEmpty;
        const read = scanSegment(bytes, segment, false, beforeEmptyLast);
        if (!read.ok) return read;
        scan = read.value;
        if (!scan.sealed && !beforeEmptyLast) {
          return corrupt(
            segmentFileName(segment),
            scan.validEnd,
            `segment ends without a seal, and ${segmentFileName(segment + 1)} after it holds records`,
          );
        }
        // Sealed or not: when the last segment is empty, its roll may not be durable yet: finish it.
        if (beforeEmptyLast) unsealed = { segment, scan, bytes };
      }
      this.replay(scan.entries);
      sizes.set(segment, scan.validEnd);
      recordBytes += scan.validEnd - SEGMENT_HEADER_BYTES;
      if (i === baseIndex && scan.startsWithCheckpoint)
        checkpointBytes = scan.checkpointEnd - SEGMENT_HEADER_BYTES;
    }
    this.counters.checkpointBytes = checkpointBytes;
    this.counters.bytesSinceCheckpoint = recordBytes - checkpointBytes;

    if (unsealed !== null) {
      // Finish the roll: cut what the interrupted seal left, seal, sync (or rewrite the seal: below).
      const { segment, scan: previous, bytes } = unsealed;
      const handle = await this.fs.open(join(this.dir, segmentFileName(segment)), "r+");
      try {
        if (previous.sealed) {
          await this.rewriteDurably(handle, bytes, previous.lastCommitStart, previous.validEnd);
        } else {
          if (previous.tornBytes > 0) await handle.truncate(previous.validEnd);
          await this.writeSeal(handle, segment, previous.validEnd);
          sizes.set(segment, this.segmentSizes.get(segment) as number);
        }
      } finally {
        await handle.close();
      }
    }

    // Repair the torn tail, then make what we report durable even when nothing was torn: after a
    // process crash (not a power failure) we may be reading writes that are only in the page cache,
    // and after a failed fsync, pages Linux marked clean without writing them ("fsyncgate"), which a
    // plain fsync now would not write. So the last group commit is written again, then synced: votes
    // we report from here on must not vanish in a later power cut. Earlier commits were synced before
    // the next one began.
    const scan = lastScan.value;
    const handle = await this.fs.open(join(this.dir, segmentFileName(lastSegment)), "r+");
    this.handle = handle;
    this.segment = lastSegment;
    if (scan.headerTorn) {
      await handle.truncate(0);
      await writeAll(handle, encodeSegmentHeader(lastSegment), 0);
      await handle.sync();
      this.counters.syncs++;
    } else {
      if (scan.tornBytes > 0) await handle.truncate(scan.validEnd);
      await this.rewriteDurably(
        handle,
        lastBytes,
        scan.validEnd > SEGMENT_HEADER_BYTES ? scan.lastCommitStart : 0,
        scan.validEnd,
      );
    }
    this.counters.tornTailBytes = scan.tornBytes;

    // Finish an interrupted compaction: segments before the base are superseded by its checkpoint.
    for (let i = 0; i < baseIndex; i++) {
      await this.fs.unlink(join(this.dir, segmentFileName(segments[i] as number)));
    }
    await this.syncDirectory(this.dir);
    for (const [segment, size] of sizes) this.segmentSizes.set(segment, size);
    return ok(this.model.snapshot());
  }

  /** Writes `bytes[from, to)` again at `from` (the same bytes), then syncs the file. */
  private async rewriteDurably(handle: FileHandle, bytes: Buffer, from: number, to: number): Promise<void> {
    if (to > from) await writeAll(handle, bytes.subarray(from, to), from);
    await handle.sync();
    this.counters.syncs++;
  }

  /**
   * Whether a segment before the last starts with a checkpoint, reading only its header and first
   * record. Such a segment was complete, so any damage here is corruption.
   */
  private async peekCheckpoint(segment: number): Promise<Result<boolean, StorageError>> {
    const file = segmentFileName(segment);
    const handle = await this.fs.open(join(this.dir, file), "r");
    try {
      const head = Buffer.alloc(SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      const headerProblem = checkSegmentHeader(head.subarray(0, bytesRead), segment);
      if (headerProblem !== null) return corrupt(file, 0, headerProblem);
      if (bytesRead === SEGMENT_HEADER_BYTES) return ok(false); // header only: no records yet
      if (bytesRead < head.length) return corrupt(file, SEGMENT_HEADER_BYTES, "record header cut short");
      const length = head.readUInt32LE(SEGMENT_HEADER_BYTES);
      const record = Buffer.alloc(
        alignRecord(RECORD_HEADER_BYTES + Math.min(length, RECORD_PAYLOAD_BYTES_MAX)),
      );
      const read = await handle.read(record, 0, record.length, SEGMENT_HEADER_BYTES);
      const first = readRecordAt(record.subarray(0, read.bytesRead), 0, segment, SEGMENT_HEADER_BYTES);
      if (!first.ok) return corrupt(file, SEGMENT_HEADER_BYTES, first.detail);
      return ok(first.record.type === "checkpoint-begin");
    } finally {
      await handle.close();
    }
  }

  private replay(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      if (entry.type === "delta") this.model.apply(entry.delta);
      else this.model.reset(entry.marks);
    }
  }
}
