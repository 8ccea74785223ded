/**
 * The bytes of the write-ahead log: segment headers, record framing and the binary encoding of
 * record payloads. Self-contained on purpose (the message codec is a different, evolving format).
 *
 * Segment file `wal-NNNNNNNN.log` (8 decimal digits, numbered from 1, never reused):
 *
 *   header  16 bytes   "PXWL" | u32 version (3) | u32 segment number | u32 CRC-32 of the first 12 bytes
 *   record  16 bytes   u32 payload length | u32 payload CRC | u32 commit start | u32 header CRC
 *           ...        payload, whitened, then 0-7 bytes of (whitened zero) padding (little-endian)
 *
 * Records start at multiples of 8 bytes ({@link RECORD_ALIGN_BYTES}). The payload CRC is the CRC-32
 * (IEEE) of the stored payload bytes. The commit start is the file offset where the group commit
 * that wrote the record begins (every record of one `write` has the same one). The header CRC is the
 * CRC-32 of the record's position, `u32 segment number | u64 file offset of the record`, then the
 * header's first 12 bytes. Binding a record to where it was written means stale blocks (from a
 * deleted segment, exposed in a grown file after a power cut on file systems that allow it) and
 * misdirected writes never pass for records; this is what makes "never reuse a segment number"
 * matter. A header that passes its CRC has a trustworthy length and commit start even when the
 * payload is damaged.
 *
 * Payload and padding are whitened: XORed with a fixed key stream of non-zero bytes indexed by file
 * offset ({@link whiten}). So no record ever holds eight zero bytes at a multiple of 8 (the header's
 * words hold a non-zero length and a non-zero commit start), and an all-zero aligned word inside a
 * damaged record is the mark of a sector that never reached the disk, never of rot: this is how
 * `open` tells a torn write from corruption (docs/durability.md, "Disk model and recovery rules").
 *
 * A payload starts with a type byte. Integers are unsigned LEB128 varints (at most 8 bytes: every
 * number is a non-negative safe integer); strings are a varint `byteLength * 2 + utf16` and the
 * bytes, UTF-8 normally, raw UTF-16LE code units when the string holds a lone surrogate (UTF-8
 * cannot carry one, and a vote must come back exactly as it was cast).
 *
 *   ballot   = round node
 *   command  = client seq payload:string
 *   value    = commandCount command*
 *   entry    = slot ballot value
 *   1 delta            = flags [promised:ballot] [round] [floorSlot]
 *                        [snapshot head: slot sessionCount appUnits]
 *                        [sessions: count session*] [app piece: string]
 *                        [votes: count entry*] [decided: count (slot value)*]
 *                        flags (a varint): 1 promised, 2 proposerRound, 4 floorSlot, 8 rejoining,
 *                        16 rejoined, 32 snapshot head, 64 sessions, 128 app piece, 256 votes,
 *                        512 decided, 1024 continued
 *   2 checkpoint-begin = promised:ballot round trimmedBelowSlot rejoining:u8 counts
 *   3 checkpoint-end   = counts
 *   4 seal             = nextSegment (always this segment's number + 1)
 *   counts             = votes decidedSlots snapshotSlot (0: no snapshot)
 *
 * One delta is one record, or several when it is large (a snapshot's application state can be
 * hundreds of MiB): every record but the last has the `continued` flag. The first record holds the
 * marks (promise, round, floor, rejoin) and the snapshot's head; each record may hold a run of the
 * session list, a piece of the application state (cut between UTF-16 code units, never inside a
 * surrogate pair) and runs of the votes and decided slots. Replay applies a delta only at its last
 * record, so a torn tail never leaves part of a delta: never half a snapshot, never a floor without
 * the snapshot that raised it.
 *
 * A checkpoint is `checkpoint-begin`, one delta holding only the snapshot, votes and decided slots,
 * then `checkpoint-end`, always at the start of a segment; replay resets the state at its begin. A
 * length of 0 is invalid, so a tail of zeros (a crash after the file grew but before its data reached
 * the disk) never parses as records.
 *
 * A seal is the last record of every segment but the newest: when the log rolls to segment N + 1 it
 * first creates N + 1 (header synced, directory synced), then appends a seal naming N + 1 to N and
 * syncs it, and only then writes records to N + 1. So a log whose newest segment is sealed has lost
 * the segment after it, which `open` reports as corruption.
 *
 * Version 2 (8-byte record headers, no whitening, no seals) is not read: `open` reports such a log
 * as corrupt ("unsupported format version 2") and the node rejoins with a new log.
 */
import type {
  AcceptedEntry,
  Ballot,
  Command,
  DurableDelta,
  Result,
  SlotValue,
  Value,
} from "../core/index.js";
import { chunkEnd, copyAscii, err, isWellFormedUnicode, ok, valueBytesEstimate } from "../core/index.js";
import { crc32 } from "./crc32.js";
import type { DurableImage } from "./storage.js";

export const FORMAT_VERSION = 3;
export const SEGMENT_HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 16;
/** Records start, and group commits begin and end, at multiples of this. */
export const RECORD_ALIGN_BYTES = 8;
/** Bytes of a seal record (header, type, a segment number of up to 4 varint bytes, padding). */
export const SEAL_RECORD_BYTES = 24;
/**
 * Largest record payload accepted when reading. Records are cut at about
 * {@link RECORD_PAYLOAD_BYTES_TARGET}; only one vote or decided value larger than that (a batch is
 * 48 KiB by default, a few MiB if limits are raised) makes a larger one. 64 MiB only stops a damaged
 * length field from making us allocate gigabytes.
 */
export const RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;
/** Large deltas (many votes, a snapshot) are split into records of about this size. */
export const RECORD_PAYLOAD_BYTES_TARGET = 1024 * 1024;

const MAGIC = Buffer.from("PXWL", "latin1");
const TYPE_DELTA = 1;
const TYPE_CHECKPOINT_BEGIN = 2;
const TYPE_CHECKPOINT_END = 3;
const TYPE_SEAL = 4;
const FLAG_PROMISED = 1;
const FLAG_ROUND = 2;
const FLAG_FLOOR = 4;
const FLAG_REJOINING = 8;
const FLAG_REJOINED = 16;
const FLAG_SNAPSHOT = 32;
const FLAG_SESSIONS = 64;
const FLAG_APP = 128;
const FLAG_ACCEPTED = 256;
const FLAG_DECIDED = 512;
const FLAG_CONTINUED = 1024;
const FLAGS_ALL = 2047;
/** Generous size of a first record's marks and snapshot head, so that records stay under the target. */
const HEAD_BYTES_ESTIMATE = 64;
/** The same for what every delta record has: type, flags, four list counts and a string's length. */
const PART_BYTES_ESTIMATE = 48;
/** Most bytes of one varint (a safe integer in 7-bit groups). */
const VARINT_BYTES_MAX = 8;
/** A piece of the application state smaller than this waits for the next record instead. */
const APP_PIECE_BYTES_MIN = 64 * 1024;

/** A snapshot's head: what its pieces (in this and later records of the delta) must add up to. */
export interface SnapshotHead {
  readonly slot: number;
  /** Length of the session list. */
  readonly sessionCount: number;
  /** Length of the application state in UTF-16 code units. */
  readonly appUnits: number;
}

/** What one record holds of a delta (see the format above); {@link DeltaAssembler} joins them. */
export interface DeltaPart {
  readonly promised?: Ballot;
  readonly proposerRound?: number;
  readonly floorSlot?: number;
  readonly rejoining?: boolean;
  readonly snapshotHead?: SnapshotHead;
  readonly sessions?: number[];
  readonly appPiece?: string;
  readonly accepted?: AcceptedEntry[];
  readonly decided?: SlotValue[];
  /** More records of this delta follow. */
  readonly continued: boolean;
}

/** A checkpoint's marks: the state's scalars, which its begin record carries. */
export interface CheckpointMarks {
  readonly promised: Ballot;
  readonly round: number;
  readonly trimmedBelowSlot: number;
  readonly rejoining: boolean;
}

/** What a checkpoint's body holds, in its begin and again in its end. */
export interface CheckpointCounts {
  readonly votes: number;
  readonly decided: number;
  /** The snapshot's slot, 0 without one. */
  readonly snapshotSlot: number;
}

/** A decoded record. */
export type WalRecord =
  | { readonly type: "delta"; readonly part: DeltaPart }
  | { readonly type: "checkpoint-begin"; readonly marks: CheckpointMarks; readonly counts: CheckpointCounts }
  | { readonly type: "checkpoint-end"; readonly counts: CheckpointCounts }
  /** The last record of a segment that the log rolled past: `next` is the segment after it. */
  | { readonly type: "seal"; readonly next: number };

export function segmentFileName(segment: number): string {
  return `wal-${String(segment).padStart(8, "0")}.log`;
}

const SEGMENT_NAME = /^wal-(\d{8})\.log$/;

/** The segment number of a file name, or null when the file is not a segment. */
export function parseSegmentFileName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  if (match === null) return null;
  const segment = Number(match[1]);
  return segment >= 1 ? segment : null;
}

/** Largest segment number (8 digits in the file name, and a u32 in the header). */
export const SEGMENT_NUMBER_MAX = 99_999_999;

export function encodeSegmentHeader(segment: number): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(FORMAT_VERSION, 4);
  header.writeUInt32LE(segment, 8);
  header.writeUInt32LE(crc32(header, 0, 12), 12);
  return header;
}

/** Null when `bytes` starts with a valid header for `segment`, else what is wrong. */
export function checkSegmentHeader(bytes: Uint8Array, segment: number): string | null {
  if (bytes.length < SEGMENT_HEADER_BYTES)
    return `segment header is ${bytes.length} of ${SEGMENT_HEADER_BYTES} bytes`;
  const header = Buffer.from(bytes.buffer, bytes.byteOffset, SEGMENT_HEADER_BYTES);
  if (!header.subarray(0, 4).equals(MAGIC)) return "bad magic: not a segment of this log";
  if (header.readUInt32LE(12) !== crc32(header, 0, 12)) return "segment header checksum mismatch";
  const version = header.readUInt32LE(4);
  if (version !== FORMAT_VERSION) return `unsupported format version ${version}`;
  const number = header.readUInt32LE(8);
  if (number !== segment) return `header says segment ${number}, file name says ${segment}`;
  return null;
}

function fail(message: string): never {
  throw new RangeError(message);
}

/** How a string is stored: UTF-8, or raw UTF-16 when it holds a lone surrogate. */
/** Strings up to this many units try the ASCII fast path: their length prefix is 1 or 2 bytes. */
const SHORT_STRING_UNITS = 256;

function stringEncoding(text: string): { readonly utf16: boolean; readonly byteLength: number } {
  if (!isWellFormedUnicode(text)) return { utf16: true, byteLength: text.length * 2 };
  return { utf16: false, byteLength: Buffer.byteLength(text, "utf8") };
}

/**
 * Where a piece of `text` from `offset` ends so that it encodes in at most `budgetBytes` (at least
 * one code unit, so every record makes progress). Cut with `chunkEnd`, never inside a surrogate
 * pair, so a well-formed state goes as UTF-8 piece by piece; any cut would still round-trip exactly,
 * since pieces are only ever joined back in order.
 */
function pieceEnd(text: string, offset: number, budgetBytes: number): { end: number; bytes: number } {
  let units = Math.max(1, budgetBytes);
  for (;;) {
    const end = chunkEnd(text, offset, units);
    const bytes = stringEncoding(text.slice(offset, end)).byteLength;
    if (bytes <= budgetBytes || end - offset <= 1) return { end, bytes };
    // Too many bytes a unit for this budget: shrink in proportion (strictly, so this ends).
    units = Math.max(1, Math.min(end - offset - 1, Math.floor(((end - offset) * budgetBytes) / bytes)));
  }
}

/**
 * The end of the run of `items` from `from` whose estimated sizes fit in `budgetBytes`, and their
 * size. Takes at least one item when `mustTake` (a record that would otherwise be empty), so every
 * record makes progress: one item larger than the budget goes alone.
 */
function fit<T>(
  items: readonly T[],
  from: number,
  budgetBytes: number,
  mustTake: boolean,
  bytesOf: (item: T) => number,
): { end: number; bytes: number } {
  let end = from;
  let bytes = 0;
  while (end < items.length) {
    const size = bytesOf(items[end] as T);
    if (bytes + size > budgetBytes && !(mustTake && end === from)) break;
    bytes += size;
    end++;
  }
  return { end, bytes };
}

/** What a delta splits across records: the snapshot's session list and state, votes, decided slots. */
interface DeltaLists {
  readonly sessions: readonly number[];
  readonly app: string;
  readonly accepted: readonly AcceptedEntry[];
  readonly decided: readonly SlotValue[];
}

/** A place in a delta's lists (indexes, and code units of the state): where a record's share ends. */
interface DeltaCursor {
  readonly session: number;
  readonly unit: number;
  readonly vote: number;
  readonly slot: number;
}

/**
 * Where the record that starts at `from` ends: as much of each list, in order, as fits in about
 * {@link RECORD_PAYLOAD_BYTES_TARGET}. `holdsMarks`: the record already holds the marks (so it is
 * not empty even if it takes nothing else); `first`: room is kept for them and the snapshot's head.
 */
function nextShare(lists: DeltaLists, from: DeltaCursor, holdsMarks: boolean, first: boolean): DeltaCursor {
  let budgetBytes = RECORD_PAYLOAD_BYTES_TARGET - PART_BYTES_ESTIMATE - (first ? HEAD_BYTES_ESTIMATE : 0);
  let holds = holdsMarks;
  const sessions = fit(lists.sessions, from.session, budgetBytes, !holds, varintBytes);
  budgetBytes -= sessions.bytes;
  holds ||= sessions.end > from.session;
  let unit = from.unit;
  // A small leftover budget is not worth a piece: the state goes on in the next record.
  if (unit < lists.app.length && (!holds || budgetBytes >= APP_PIECE_BYTES_MIN)) {
    const piece = pieceEnd(lists.app, unit, budgetBytes);
    unit = piece.end;
    budgetBytes -= piece.bytes;
    holds = true;
  }
  const votes = fit(lists.accepted, from.vote, budgetBytes, !holds, entryBytes);
  budgetBytes -= votes.bytes;
  holds ||= votes.end > from.vote;
  const decided = fit(lists.decided, from.slot, budgetBytes, !holds, entryBytes);
  return { session: sessions.end, unit, vote: votes.end, slot: decided.end };
}

function isWholeDelta(lists: DeltaLists, to: DeltaCursor): boolean {
  return (
    to.session === lists.sessions.length &&
    to.unit === lists.app.length &&
    to.vote === lists.accepted.length &&
    to.slot === lists.decided.length
  );
}

const varintBytes = (): number => VARINT_BYTES_MAX;
// Generous (3 bytes a payload unit), so records stay under the target.
const entryBytes = (entry: { readonly value: Value }): number => valueBytesEstimate(entry.value) + 32;

const position = Buffer.alloc(12);

/**
 * A record header's CRC: of `u32 segment | u64 offset` (where the record starts), then the header's
 * first 12 bytes (length, payload CRC, commit start) at `at` in `bytes`.
 */
export function headerChecksum(bytes: Uint8Array, at: number, segment: number, offset: number): number {
  position.writeUInt32LE(segment, 0);
  position.writeUInt32LE(offset % 2 ** 32, 4);
  position.writeUInt32LE(Math.floor(offset / 2 ** 32), 8);
  return crc32(bytes, at, at + 12, crc32(position));
}

/** The key stream payloads are whitened with: 256 non-zero bytes, indexed by file offset mod 256. */
const WHITENING_KEY = (() => {
  const key = new Uint8Array(256);
  let x = 0x2545f491;
  for (let i = 0; i < key.length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    key[i] = x >>> 24 || 0x5a;
  }
  return key;
})();

/**
 * XORs `bytes[start, end)`, which are (or go) at file offset `offset + start`, with the key stream.
 * Its own inverse. Why: see the format above (no aligned zero word in a record).
 */
export function whiten(bytes: Uint8Array, start: number, end: number, offset: number): void {
  for (let i = start, k = (offset + start) & 255; i < end; i++, k = (k + 1) & 255) {
    bytes[i] = (bytes[i] as number) ^ (WHITENING_KEY[k] as number);
  }
}

/** `at` rounded up to a multiple of {@link RECORD_ALIGN_BYTES}. */
export function alignRecord(at: number): number {
  return Math.ceil(at / RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES;
}

/**
 * A growable buffer of framed records: the WAL's write buffer. Appends encode straight into it;
 * `seal()` computes the checksums once the records' place on disk is known, and `view()` is what one
 * group commit writes.
 */
export class RecordBuffer {
  private bytes: Buffer;
  /** Bytes used. */
  length = 0;
  /** Records held. */
  records = 0;
  private recordStart = 0;
  private readonly initialBytes: number;
  /** Where `seal()` placed the records (it whitens in place, so it must run once): null until then. */
  private sealedAt: { segment: number; offset: number } | null = null;

  constructor(initialBytes = 64 * 1024) {
    this.initialBytes = initialBytes;
    this.bytes = Buffer.allocUnsafe(initialBytes);
  }

  /** The framed records, without copying (valid until the next append or reset; seal first). */
  view(): Buffer {
    return this.bytes.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
    this.records = 0;
    this.sealedAt = null;
    // Give back memory after a burst (a snapshot, a large checkpoint) instead of holding it forever.
    if (this.bytes.length > 16 * this.initialBytes) this.bytes = Buffer.allocUnsafe(this.initialBytes);
  }

  /**
   * Appends a delta as one record, or several when it is large (see the format above: replay
   * applies it only at its last record, so it survives a torn tail whole or not at all). An empty
   * delta appends nothing. Throws on numbers that are not non-negative safe integers, and on a
   * snapshot at slot 0: the core never produces them.
   */
  appendDelta(delta: DurableDelta): void {
    this.atomically(() => this.encodeDelta(delta));
  }

  /** Appends a seal: the segment these records go to is complete, and `next` comes after it. */
  appendSeal(next: number): void {
    this.atomically(() => {
      this.begin(TYPE_SEAL);
      this.varuint(next);
      this.finish();
    });
  }

  /** Appends a checkpoint of `image`: begin (the marks), one delta (snapshot, votes, log), end. */
  appendCheckpoint(image: DurableImage): void {
    const counts: CheckpointCounts = {
      votes: image.accepted.length,
      decided: image.decided.length,
      snapshotSlot: image.snapshot?.slot ?? 0,
    };
    this.atomically(() => {
      this.begin(TYPE_CHECKPOINT_BEGIN);
      this.ballot(image.promised);
      this.varuint(image.round);
      this.varuint(image.trimmedBelowSlot);
      this.u8(image.rejoining ? 1 : 0);
      this.counts(counts);
      this.finish();
      this.encodeDelta({
        ...(image.snapshot !== null ? { snapshot: image.snapshot } : {}),
        accepted: image.accepted,
        decided: image.decided,
      });
      this.begin(TYPE_CHECKPOINT_END);
      this.counts(counts);
      this.finish();
    });
  }

  /** Runs an encoding; if it throws, the buffer is left as it was (never half a record). */
  private atomically(encode: () => void): void {
    if (this.sealedAt !== null) throw new Error("RecordBuffer: appended to after seal(); reset() first");
    const length = this.length;
    const records = this.records;
    try {
      encode();
    } catch (error) {
      this.length = length;
      this.records = records;
      throw error;
    }
  }

  private encodeDelta(delta: DurableDelta): void {
    const snapshot = delta.snapshot;
    if (snapshot !== undefined && !(Number.isSafeInteger(snapshot.slot) && snapshot.slot >= 1)) {
      fail(`snapshot slot ${snapshot.slot} must be a positive integer`);
    }
    const lists: DeltaLists = {
      sessions: snapshot?.sessions ?? [],
      app: snapshot?.app ?? "",
      accepted: delta.accepted ?? [],
      decided: delta.decided ?? [],
    };
    const firstFlags =
      (delta.promised !== undefined ? FLAG_PROMISED : 0) |
      (delta.proposerRound !== undefined ? FLAG_ROUND : 0) |
      (delta.floorSlot !== undefined ? FLAG_FLOOR : 0) |
      (delta.rejoining === true ? FLAG_REJOINING : delta.rejoining === false ? FLAG_REJOINED : 0) |
      (snapshot !== undefined ? FLAG_SNAPSHOT : 0);
    if (firstFlags === 0 && lists.accepted.length === 0 && lists.decided.length === 0) return;
    let from: DeltaCursor = { session: 0, unit: 0, vote: 0, slot: 0 };
    for (let first = true; ; first = false) {
      const to = nextShare(lists, from, first && firstFlags !== 0, first);
      const done = isWholeDelta(lists, to);
      this.deltaRecord(delta, lists, from, to, (first ? firstFlags : 0) | (done ? 0 : FLAG_CONTINUED));
      if (done) return;
      from = to;
    }
  }

  /** One record of a delta: `flags`' fields, and the lists' runs from `from` to `to`. */
  private deltaRecord(
    delta: DurableDelta,
    lists: DeltaLists,
    from: DeltaCursor,
    to: DeltaCursor,
    flags: number,
  ): void {
    const recordFlags =
      flags |
      (to.session > from.session ? FLAG_SESSIONS : 0) |
      (to.unit > from.unit ? FLAG_APP : 0) |
      (to.vote > from.vote ? FLAG_ACCEPTED : 0) |
      (to.slot > from.slot ? FLAG_DECIDED : 0);
    this.begin(TYPE_DELTA);
    this.varuint(recordFlags);
    if (recordFlags & FLAG_PROMISED) this.ballot(delta.promised as Ballot);
    if (recordFlags & FLAG_ROUND) this.varuint(delta.proposerRound as number);
    if (recordFlags & FLAG_FLOOR) this.varuint(delta.floorSlot as number);
    if (delta.snapshot !== undefined && recordFlags & FLAG_SNAPSHOT) {
      this.varuint(delta.snapshot.slot);
      this.varuint(lists.sessions.length);
      this.varuint(lists.app.length);
    }
    if (recordFlags & FLAG_SESSIONS) {
      this.varuint(to.session - from.session);
      for (let i = from.session; i < to.session; i++) this.varuint(lists.sessions[i] as number);
    }
    if (recordFlags & FLAG_APP) this.string(lists.app.slice(from.unit, to.unit));
    if (recordFlags & FLAG_ACCEPTED) {
      this.varuint(to.vote - from.vote);
      for (let i = from.vote; i < to.vote; i++) this.entry(lists.accepted[i] as AcceptedEntry);
    }
    if (recordFlags & FLAG_DECIDED) {
      this.varuint(to.slot - from.slot);
      for (let i = from.slot; i < to.slot; i++) {
        const { slot, value } = lists.decided[i] as SlotValue;
        this.varuint(slot);
        this.value(value);
      }
    }
    this.finish();
  }

  private begin(type: number): void {
    this.ensure(RECORD_HEADER_BYTES + 1);
    this.recordStart = this.length;
    this.length += RECORD_HEADER_BYTES;
    this.u8(type);
  }

  private finish(): void {
    const start = this.recordStart;
    const payloadBytes = this.length - start - RECORD_HEADER_BYTES;
    if (payloadBytes > RECORD_PAYLOAD_BYTES_MAX) {
      fail(`record of ${payloadBytes} bytes exceeds ${RECORD_PAYLOAD_BYTES_MAX}`);
    }
    this.bytes.writeUInt32LE(payloadBytes, start);
    // Padding to the next record's alignment: zeros, whitened with the payload by seal().
    const padded = alignRecord(this.length);
    this.ensure(padded - this.length);
    this.bytes.fill(0, this.length, padded);
    this.length = padded;
    this.records++;
  }

  /**
   * Makes the records ready to be written to `segment` from file offset `offset`, as one group
   * commit: whitens payloads and padding, fills in the commit start and the checksums. Once only
   * (it whitens in place); appending again needs a `reset()`.
   */
  seal(segment: number, offset: number): void {
    if (this.sealedAt !== null) {
      if (this.sealedAt.segment === segment && this.sealedAt.offset === offset) return;
      throw new Error("RecordBuffer: sealed once already, for another place");
    }
    if (
      !(Number.isSafeInteger(offset) && offset >= 0 && offset % RECORD_ALIGN_BYTES === 0 && offset < 2 ** 32)
    )
      throw new RangeError(`records cannot start at offset ${offset}`);
    this.sealedAt = { segment, offset };
    const bytes = this.bytes;
    for (let at = 0; at < this.length; ) {
      const payloadStart = at + RECORD_HEADER_BYTES;
      const end = payloadStart + bytes.readUInt32LE(at);
      const next = alignRecord(end);
      whiten(bytes, payloadStart, next, offset);
      bytes.writeUInt32LE(crc32(bytes, payloadStart, end), at + 4);
      bytes.writeUInt32LE(offset, at + 8);
      bytes.writeUInt32LE(headerChecksum(bytes, at, segment, offset + at), at + 12);
      at = next;
    }
  }

  private ensure(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.bytes.copy(grown, 0, 0, this.length);
    this.bytes = grown;
  }

  private u8(value: number): void {
    this.ensure(1);
    this.bytes[this.length++] = value;
  }

  private varuint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) fail(`${value} is not a non-negative safe integer`);
    this.ensure(VARINT_BYTES_MAX);
    const bytes = this.bytes;
    let at = this.length;
    let rest = value;
    // Past 32 bits, arithmetic; from there on (the last 4 or 5 bytes), the faster bit operations.
    while (rest >= 0x80000000) {
      bytes[at++] = (rest % 128) | 0x80;
      rest = Math.floor(rest / 128);
    }
    while (rest > 0x7f) {
      bytes[at++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    bytes[at++] = rest;
    this.length = at;
  }

  private string(text: string): void {
    const units = text.length;
    if (units <= SHORT_STRING_UNITS) {
      // Most payloads are short ASCII: one byte a character, well-formed, the length known up front.
      const prefix = units * 2 < 0x80 ? 1 : 2;
      this.ensure(prefix + units);
      if (copyAscii(text, this.bytes, this.length + prefix) === units) {
        this.varuint(units * 2); // UTF-8 (flag 0), `prefix` bytes long
        this.length += units;
        return;
      }
    }
    const { utf16, byteLength } = stringEncoding(text);
    this.varuint(byteLength * 2 + (utf16 ? 1 : 0));
    this.ensure(byteLength);
    this.length += this.bytes.write(text, this.length, byteLength, utf16 ? "utf16le" : "utf8");
  }

  private ballot(ballot: Ballot): void {
    this.varuint(ballot.round);
    this.varuint(ballot.node);
  }

  private counts(counts: CheckpointCounts): void {
    this.varuint(counts.votes);
    this.varuint(counts.decided);
    this.varuint(counts.snapshotSlot);
  }

  private value(value: Value): void {
    const commands = value.commands;
    this.varuint(commands.length);
    for (const command of commands) {
      this.varuint(command.client);
      this.varuint(command.seq);
      this.string(command.payload);
    }
  }

  private entry(entry: AcceptedEntry): void {
    this.varuint(entry.slot);
    this.ballot(entry.ballot);
    this.value(entry.value);
  }
}

/** A payload that passed its checksum but does not decode: written by a bug or another version. */
class DecodeError extends Error {}

class Reader {
  constructor(
    private readonly bytes: Buffer,
    public at: number,
    private readonly end: number,
  ) {}

  get remaining(): number {
    return this.end - this.at;
  }

  u8(): number {
    if (this.at >= this.end) throw new DecodeError("payload ends early");
    return this.bytes[this.at++] as number;
  }

  varuint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i > 0) throw new DecodeError("overlong varint");
        if (!Number.isSafeInteger(value)) throw new DecodeError("varint exceeds the safe integer range");
        return value;
      }
      scale *= 128;
    }
    throw new DecodeError("varint longer than 8 bytes");
  }

  /** A count of items that take at least one byte each; a list is never written empty. */
  count(): number {
    const count = this.varuint();
    if (count === 0) throw new DecodeError("empty list");
    if (count > this.remaining)
      throw new DecodeError(`count ${count} exceeds the ${this.remaining} bytes left`);
    return count;
  }

  string(): string {
    const header = this.varuint();
    const byteLength = Math.floor(header / 2);
    const utf16 = header % 2 === 1;
    if (byteLength > this.remaining) throw new DecodeError("string runs past the payload");
    if (utf16 && byteLength % 2 !== 0) throw new DecodeError("odd UTF-16 byte length");
    const text = this.bytes.toString(utf16 ? "utf16le" : "utf8", this.at, this.at + byteLength);
    this.at += byteLength;
    return text;
  }

  ballot(): Ballot {
    const round = this.varuint();
    return { round, node: this.varuint() };
  }

  counts(): CheckpointCounts {
    const votes = this.varuint();
    const decided = this.varuint();
    return { votes, decided, snapshotSlot: this.varuint() };
  }

  value(): Value {
    const count = this.varuint();
    if (count > this.remaining) throw new DecodeError(`${count} commands in ${this.remaining} bytes`);
    const commands: Command[] = [];
    for (let i = 0; i < count; i++) {
      const client = this.varuint();
      const seq = this.varuint();
      commands.push({ client, seq, payload: this.string() });
    }
    return { commands };
  }

  entry(): AcceptedEntry {
    const slot = this.varuint();
    const ballot = this.ballot();
    return { slot, ballot, value: this.value() };
  }

  deltaPart(): DeltaPart {
    const flags = this.varuint();
    if (flags > FLAGS_ALL || (flags & ~FLAG_CONTINUED) === 0)
      throw new DecodeError(`bad delta flags ${flags}`);
    if (flags & FLAG_REJOINING && flags & FLAG_REJOINED) throw new DecodeError("both rejoining and rejoined");
    const part: { -readonly [K in keyof DeltaPart]: DeltaPart[K] } = {
      continued: (flags & FLAG_CONTINUED) !== 0,
    };
    if (flags & FLAG_PROMISED) part.promised = this.ballot();
    if (flags & FLAG_ROUND) part.proposerRound = this.varuint();
    if (flags & FLAG_FLOOR) part.floorSlot = this.varuint();
    if (flags & FLAG_REJOINING) part.rejoining = true;
    if (flags & FLAG_REJOINED) part.rejoining = false;
    if (flags & FLAG_SNAPSHOT) {
      const slot = this.varuint();
      if (slot === 0) throw new DecodeError("snapshot at slot 0");
      const sessionCount = this.varuint();
      part.snapshotHead = { slot, sessionCount, appUnits: this.varuint() };
    }
    if (flags & FLAG_SESSIONS) {
      const count = this.count();
      const sessions: number[] = [];
      for (let i = 0; i < count; i++) sessions.push(this.varuint());
      part.sessions = sessions;
    }
    if (flags & FLAG_APP) {
      part.appPiece = this.string();
      if (part.appPiece.length === 0) throw new DecodeError("empty piece of a snapshot");
    }
    if (flags & FLAG_ACCEPTED) {
      const count = this.count();
      const accepted: AcceptedEntry[] = [];
      for (let i = 0; i < count; i++) accepted.push(this.entry());
      part.accepted = accepted;
    }
    if (flags & FLAG_DECIDED) {
      const count = this.count();
      const decided: SlotValue[] = [];
      for (let i = 0; i < count; i++) {
        const slot = this.varuint();
        decided.push({ slot, value: this.value() });
      }
      part.decided = decided;
    }
    return part;
  }
}

function decodePayload(bytes: Buffer, start: number, end: number): WalRecord {
  const reader = new Reader(bytes, start, end);
  const type = reader.u8();
  let record: WalRecord;
  switch (type) {
    case TYPE_DELTA:
      record = { type: "delta", part: reader.deltaPart() };
      break;
    case TYPE_CHECKPOINT_BEGIN: {
      const promised = reader.ballot();
      const round = reader.varuint();
      const trimmedBelowSlot = reader.varuint();
      const rejoining = reader.u8();
      if (rejoining > 1) throw new DecodeError(`bad rejoining mark ${rejoining}`);
      const marks = { promised, round, trimmedBelowSlot, rejoining: rejoining === 1 };
      record = { type: "checkpoint-begin", marks, counts: reader.counts() };
      break;
    }
    case TYPE_CHECKPOINT_END:
      record = { type: "checkpoint-end", counts: reader.counts() };
      break;
    case TYPE_SEAL:
      record = { type: "seal", next: reader.varuint() };
      break;
    default:
      throw new DecodeError(`unknown record type ${type}`);
  }
  if (reader.at !== end) throw new DecodeError(`${end - reader.at} bytes left over after the record`);
  return record;
}

/** Whether a delta part holds only what a checkpoint's body may (the marks are in its begin). */
export function isCheckpointBody(part: DeltaPart): boolean {
  return (
    part.promised === undefined &&
    part.proposerRound === undefined &&
    part.floorSlot === undefined &&
    part.rejoining === undefined
  );
}

/**
 * Joins the records of one delta back together (see the format above). `add` takes each record's
 * part in order and returns the delta at its last record; until then the parts are only held, so a
 * delta cut short by a torn tail is never applied. Parts that do not fit together (a later record
 * with first-record fields, pieces beyond the snapshot's head, or short of it) are an error: the
 * checksums matched, so a bug or another version wrote them.
 */
export class DeltaAssembler {
  private delta: {
    promised?: Ballot;
    proposerRound?: number;
    floorSlot?: number;
    rejoining?: boolean;
    accepted?: AcceptedEntry[];
    decided?: SlotValue[];
  } | null = null;
  private head: SnapshotHead | null = null;
  private sessions: number[] = [];
  private pieces: string[] = [];
  private appUnits = 0;

  /** A delta has begun and not ended yet. */
  get open(): boolean {
    return this.delta !== null;
  }

  add(part: DeltaPart): Result<DurableDelta | null, string> {
    let delta = this.delta;
    if (delta === null) {
      delta = {};
      if (part.promised !== undefined) delta.promised = part.promised;
      if (part.proposerRound !== undefined) delta.proposerRound = part.proposerRound;
      if (part.floorSlot !== undefined) delta.floorSlot = part.floorSlot;
      if (part.rejoining !== undefined) delta.rejoining = part.rejoining;
      this.head = part.snapshotHead ?? null;
      this.delta = delta;
    } else if (!isCheckpointBody(part) || part.snapshotHead !== undefined) {
      return this.fail("a later record of a delta holds fields only its first may");
    }
    const head = this.head;
    if (part.sessions !== undefined || part.appPiece !== undefined) {
      if (head === null) return this.fail("a piece of a snapshot without its head");
      if (part.sessions !== undefined) {
        if (this.sessions.length + part.sessions.length > head.sessionCount)
          return this.fail(`more than the ${head.sessionCount} sessions the snapshot's head says`);
        for (const session of part.sessions) this.sessions.push(session);
      }
      if (part.appPiece !== undefined) {
        if (this.appUnits + part.appPiece.length > head.appUnits)
          return this.fail(`more than the ${head.appUnits} code units the snapshot's head says`);
        this.pieces.push(part.appPiece);
        this.appUnits += part.appPiece.length;
      }
    }
    if (part.accepted !== undefined) {
      delta.accepted ??= [];
      for (const entry of part.accepted) delta.accepted.push(entry);
    }
    if (part.decided !== undefined) {
      delta.decided ??= [];
      for (const entry of part.decided) delta.decided.push(entry);
    }
    if (part.continued) return ok(null);

    let whole: DurableDelta = delta;
    if (head !== null) {
      if (this.sessions.length !== head.sessionCount || this.appUnits !== head.appUnits) {
        return this.fail(
          `snapshot ends with ${this.sessions.length} of ${head.sessionCount} sessions, ` +
            `${this.appUnits} of ${head.appUnits} code units`,
        );
      }
      whole = { ...delta, snapshot: { slot: head.slot, sessions: this.sessions, app: this.pieces.join("") } };
    }
    this.clear();
    return ok(whole);
  }

  private fail(detail: string): Result<never, string> {
    this.clear();
    return err(detail);
  }

  private clear(): void {
    this.delta = null;
    this.head = null;
    this.sessions = [];
    this.pieces = [];
    this.appUnits = 0;
  }
}

/**
 * Why there is no record at an offset:
 * - `cut`: the file ends inside it (its header, or the payload its valid header announces);
 * - `header`: a whole header is there but fails its CRC;
 * - `checksum`: the header is valid (so are its length and commit start), the payload fails its CRC;
 * - `payload`: both CRCs match but the payload does not decode (a bug or another version: never a
 *   torn write).
 */
export type RecordDamage = "cut" | "header" | "checksum" | "payload";

/**
 * The record at `at` in `bytes`, which hold segment `segment` from file offset `base`, or why there is
 * none. `next` is where the record after it starts; `commitStart` is where its group commit began.
 */
export type RecordRead =
  | { readonly ok: true; readonly record: WalRecord; readonly next: number; readonly commitStart: number }
  | { readonly ok: false; readonly damage: RecordDamage; readonly detail: string };

/** The payload length announced by a valid header at `at`, or -1 if the header is not valid there. */
function validHeaderLength(bytes: Buffer, at: number, segment: number, base: number): number {
  if (bytes.length - at < RECORD_HEADER_BYTES) return -1;
  if (headerChecksum(bytes, at, segment, base + at) !== bytes.readUInt32LE(at + 12)) return -1;
  return bytes.readUInt32LE(at);
}

export function readRecordAt(bytes: Buffer, at: number, segment: number, base = 0): RecordRead {
  const left = bytes.length - at;
  if (left < RECORD_HEADER_BYTES) {
    return {
      ok: false,
      damage: "cut",
      detail: `record header cut short (${left} of ${RECORD_HEADER_BYTES} bytes)`,
    };
  }
  const length = validHeaderLength(bytes, at, segment, base);
  if (length === -1) return { ok: false, damage: "header", detail: "record header checksum mismatch" };
  if (length === 0 || length > RECORD_PAYLOAD_BYTES_MAX)
    return { ok: false, damage: "payload", detail: `valid record header with length ${length}` };
  const start = at + RECORD_HEADER_BYTES;
  const end = start + length;
  const next = alignRecord(end);
  if (next > bytes.length) {
    return {
      ok: false,
      damage: "cut",
      detail: `record of ${length} bytes runs ${next - bytes.length} bytes past the end`,
    };
  }
  if (crc32(bytes, start, end) !== bytes.readUInt32LE(at + 4)) {
    return { ok: false, damage: "checksum", detail: "record checksum mismatch" };
  }
  const plain = Buffer.from(bytes.subarray(start, end));
  whiten(plain, 0, length, base + start);
  try {
    const record = decodePayload(plain, 0, length);
    return { ok: true, record, next, commitStart: bytes.readUInt32LE(at + 8) };
  } catch (error) {
    if (error instanceof DecodeError)
      return { ok: false, damage: "payload", detail: `undecodable record: ${error.message}` };
    throw error;
  }
}

/**
 * Whether the damage `damage` at `at` (the first in a segment that may end in a torn write) shows a
 * sector that never reached the disk: the file ends inside the record (rot does not shorten files),
 * or the damaged record holds an all-zero aligned word, which no record written whole does (see
 * whitening above) and a bit flip does not make. Looks only inside the record at `at` (its header;
 * with a valid header, the payload that header announces), never at later bytes, which may belong
 * to a later, torn group commit while this one was synced and rotted.
 */
export function showsLostSector(bytes: Buffer, at: number, damage: RecordDamage): boolean {
  if (damage === "cut") return true;
  if (damage === "payload") return false;
  if (damage === "header") return isZeroWord(bytes, at) || isZeroWord(bytes, at + 8);
  const start = at + RECORD_HEADER_BYTES;
  const end = Math.min(bytes.length, alignRecord(start + bytes.readUInt32LE(at)));
  for (let word = start; word + 8 <= end; word += 8) if (isZeroWord(bytes, word)) return true;
  return false;
}

function isZeroWord(bytes: Buffer, at: number): boolean {
  return bytes.readUInt32LE(at) === 0 && bytes.readUInt32LE(at + 4) === 0;
}

/**
 * The first aligned offset at or after `from` where a valid record header starts (its payload may
 * still be damaged), and the commit start it names; null if there is none (`bytes` are segment
 * `segment` from its start). Cheap: most offsets fail on the header CRC of 12 bytes.
 */
export function findRecordFrom(
  bytes: Buffer,
  from: number,
  segment: number,
): { readonly at: number; readonly commitStart: number } | null {
  for (let at = alignRecord(from); at + RECORD_HEADER_BYTES <= bytes.length; at += RECORD_ALIGN_BYTES) {
    const length = validHeaderLength(bytes, at, segment, 0);
    if (length > 0 && length <= RECORD_PAYLOAD_BYTES_MAX)
      return { at, commitStart: bytes.readUInt32LE(at + 8) };
  }
  return null;
}
