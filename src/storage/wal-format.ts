/**
 * The bytes of the write-ahead log: segment headers, record framing and the binary encoding of
 * record payloads. Self-contained on purpose (the message codec is a different, evolving format).
 *
 * Segment file `wal-NNNNNNNN.log` (8 decimal digits, numbered from 1, never reused):
 *
 *   header  16 bytes   "PXWL" | u32 version (1) | u32 segment number | u32 CRC-32 of the first 12 bytes
 *   record  ...        u32 payload length | u32 checksum | payload                (little-endian)
 *
 * A record's checksum is the CRC-32 (IEEE) of its position, then its payload: of the 12 bytes
 * `u32 segment number | u64 file offset of the record` followed by the payload. Binding a record
 * to where it was written means stale blocks (from a deleted segment, exposed in a grown file after a
 * power cut on file systems that allow it) and misdirected writes never pass for records; this is
 * what makes "never reuse a segment number" matter.
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
 *   1 delta            = flags(u8: 1 promised, 2 proposerRound, 4 accepted, 8 floorSlot, 16 rejoining,
 *                          32 rejoined, 64 decided) [ballot] [round] [count entry*] [floorSlot]
 *                          [count (slot zero-ballot value)*]
 *   2 checkpoint-begin = promised:ballot round trimmedBelowSlot entryCount
 *   3 checkpoint-end   = entryCount
 *
 * A checkpoint is `checkpoint-begin`, delta records holding only votes, `checkpoint-end`, always at the
 * start of a segment; replay resets the state at its begin. A length of 0 is invalid, so a tail of
 * zeros (a crash after the file grew but before its data reached the disk) never parses as records.
 */
import type { AcceptedEntry, Ballot, Command, DurableDelta, SlotValue, Value } from "../core/index.js";
import { valueBytesEstimate, ZERO_BALLOT } from "../core/index.js";
import { crc32 } from "./crc32.js";
import type { DurableState } from "./storage.js";

export const FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 8;
/**
 * Largest record payload accepted when reading. One vote's value is at most a batch (48 KiB by
 * default, a few MiB if limits are raised), so 64 MiB only stops a damaged length field from making
 * us allocate gigabytes.
 */
export const RECORD_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024;
/** Large deltas (many votes) are split into records of about this size, to keep each one bounded. */
export const RECORD_PAYLOAD_BYTES_TARGET = 1024 * 1024;

const MAGIC = Buffer.from("PXWL", "latin1");
const TYPE_DELTA = 1;
const TYPE_CHECKPOINT_BEGIN = 2;
const TYPE_CHECKPOINT_END = 3;
const FLAG_PROMISED = 1;
const FLAG_ROUND = 2;
const FLAG_ACCEPTED = 4;
const FLAG_FLOOR = 8;
const FLAG_REJOINING = 16;
const FLAG_REJOINED = 32;
const FLAG_DECIDED = 64;

/** A decoded record. */
export type WalRecord =
  | { readonly type: "delta"; readonly delta: DurableDelta }
  | {
      readonly type: "checkpoint-begin";
      readonly promised: Ballot;
      readonly round: number;
      readonly trimmedBelowSlot: number;
      readonly entries: number;
    }
  | { readonly type: "checkpoint-end"; readonly entries: number };

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

// A surrogate at all (fast check), then a lone one (a high not followed by a low, or a low not
// preceded by a high). No `u` flag: these match UTF-16 code units.
const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

const position = Buffer.alloc(12);

/** A record's checksum: CRC-32 of `u32 segment | u64 offset` (where it starts), then its payload. */
export function recordChecksum(
  bytes: Uint8Array,
  payloadStart: number,
  payloadEnd: number,
  segment: number,
  offset: number,
): number {
  position.writeUInt32LE(segment, 0);
  position.writeUInt32LE(offset % 2 ** 32, 4);
  position.writeUInt32LE(Math.floor(offset / 2 ** 32), 8);
  return crc32(bytes, payloadStart, payloadEnd, crc32(position));
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
    // Give back memory after a burst (a large checkpoint) instead of holding it forever.
    if (this.bytes.length > 16 * this.initialBytes) this.bytes = Buffer.allocUnsafe(this.initialBytes);
  }

  /**
   * Appends a delta as one record, or several when it holds many votes (each record a prefix-closed
   * part: the promise and round travel in the first, so a torn tail never keeps a vote without the
   * promise that came with it). An empty delta appends nothing. Throws on numbers that are not
   * non-negative safe integers: the core never produces them.
   */
  appendDelta(delta: DurableDelta): void {
    this.atomically(() => this.encodeDelta(delta));
  }

  /** Appends a checkpoint of `state`: begin, its votes, end. */
  appendCheckpoint(state: DurableState): void {
    this.atomically(() => {
      this.begin(TYPE_CHECKPOINT_BEGIN);
      this.ballot(state.promised);
      this.varuint(state.round);
      this.varuint(state.trimmedBelowSlot);
      this.varuint(state.accepted.length);
      this.finish();
      if (state.accepted.length > 0) this.encodeDelta({ accepted: state.accepted });
      this.begin(TYPE_CHECKPOINT_END);
      this.varuint(state.accepted.length);
      this.finish();
    });
  }

  /** Runs an encoding; if it throws, the buffer is left as it was (never half a record). */
  private atomically(encode: () => void): void {
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
    const accepted = delta.accepted ?? [];
    let flags =
      (delta.promised !== undefined ? FLAG_PROMISED : 0) |
      (delta.proposerRound !== undefined ? FLAG_ROUND : 0) |
      (delta.floorSlot !== undefined ? FLAG_FLOOR : 0) |
      (delta.rejoining === true ? FLAG_REJOINING : delta.rejoining === false ? FLAG_REJOINED : 0) |
      (delta.decided !== undefined && delta.decided.length > 0 ? FLAG_DECIDED : 0);
    let from = 0;
    do {
      let to = accepted.length;
      if (accepted.length - from > 1) {
        // Split by estimated size; the estimate is generous, so records stay under the target.
        let bytes = 0;
        to = from;
        while (to < accepted.length) {
          const size = valueBytesEstimate((accepted[to] as AcceptedEntry).value) + 32;
          if (to > from && bytes + size > RECORD_PAYLOAD_BYTES_TARGET) break;
          bytes += size;
          to++;
        }
      }
      const recordFlags = flags | (to > from ? FLAG_ACCEPTED : 0);
      if (recordFlags === 0) return;
      this.begin(TYPE_DELTA);
      this.u8(recordFlags);
      if (flags & FLAG_PROMISED) this.ballot(delta.promised as Ballot);
      if (flags & FLAG_ROUND) this.varuint(delta.proposerRound as number);
      if (to > from) {
        this.varuint(to - from);
        for (let i = from; i < to; i++) this.entry(accepted[i] as AcceptedEntry);
      }
      if (flags & FLAG_FLOOR) this.varuint(delta.floorSlot as number);
      if (flags & FLAG_DECIDED) {
        // Decided slots, written like votes at the zero ballot.
        const decided = delta.decided as SlotValue[];
        this.varuint(decided.length);
        for (const { slot, value } of decided) this.entry({ slot, ballot: ZERO_BALLOT, value });
      }
      this.finish();
      flags = 0;
      from = to;
    } while (from < accepted.length);
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
    this.bytes.writeUInt32LE(0, start + 4); // the checksum: see seal()
    this.records++;
  }

  /** Fills in the checksums for records that will be written to `segment` from file offset `offset`. */
  seal(segment: number, offset: number): void {
    const bytes = this.bytes;
    for (let at = 0; at < this.length; ) {
      const end = at + RECORD_HEADER_BYTES + bytes.readUInt32LE(at);
      bytes.writeUInt32LE(recordChecksum(bytes, at + RECORD_HEADER_BYTES, end, segment, offset + at), at + 4);
      at = end;
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
    this.ensure(8);
    const bytes = this.bytes;
    let at = this.length;
    let rest = value;
    if (rest < 0x80000000) {
      while (rest > 0x7f) {
        bytes[at++] = (rest & 0x7f) | 0x80;
        rest >>>= 7;
      }
    } else {
      while (rest > 0x7f) {
        bytes[at++] = (rest % 128) | 0x80;
        rest = Math.floor(rest / 128);
      }
    }
    bytes[at++] = rest;
    this.length = at;
  }

  private string(text: string): void {
    if (SURROGATE.test(text) && LONE_SURROGATE.test(text)) {
      const byteLength = text.length * 2;
      this.varuint(byteLength * 2 + 1);
      this.ensure(byteLength);
      this.length += this.bytes.write(text, this.length, byteLength, "utf16le");
    } else {
      const byteLength = Buffer.byteLength(text, "utf8");
      this.varuint(byteLength * 2);
      this.ensure(byteLength);
      this.length += this.bytes.write(text, this.length, byteLength, "utf8");
    }
  }

  private ballot(ballot: Ballot): void {
    this.varuint(ballot.round);
    this.varuint(ballot.node);
  }

  private entry(entry: AcceptedEntry): void {
    this.varuint(entry.slot);
    this.ballot(entry.ballot);
    const commands = entry.value.commands;
    this.varuint(commands.length);
    for (const command of commands) {
      this.varuint(command.client);
      this.varuint(command.seq);
      this.string(command.payload);
    }
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
    for (let i = 0; i < 8; i++) {
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

  /** A count of items that take at least one byte each. */
  count(): number {
    const count = this.varuint();
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

  entry(): AcceptedEntry {
    const slot = this.varuint();
    const ballot = this.ballot();
    const count = this.count();
    const commands: Command[] = [];
    for (let i = 0; i < count; i++) {
      const client = this.varuint();
      const seq = this.varuint();
      commands.push({ client, seq, payload: this.string() });
    }
    const value: Value = { commands };
    return { slot, ballot, value };
  }
}

function decodePayload(bytes: Buffer, start: number, end: number): WalRecord {
  const reader = new Reader(bytes, start, end);
  const type = reader.u8();
  let record: WalRecord;
  switch (type) {
    case TYPE_DELTA: {
      const flags = reader.u8();
      if (flags === 0 || flags > 127 || (flags & 48) === 48)
        throw new DecodeError(`bad delta flags ${flags}`);
      const delta: {
        promised?: Ballot;
        proposerRound?: number;
        accepted?: AcceptedEntry[];
        floorSlot?: number;
        rejoining?: boolean;
        decided?: SlotValue[];
      } = {};
      if (flags & FLAG_PROMISED) delta.promised = reader.ballot();
      if (flags & FLAG_ROUND) delta.proposerRound = reader.varuint();
      if (flags & FLAG_ACCEPTED) {
        const count = reader.count();
        if (count === 0) throw new DecodeError("delta with an empty vote list");
        const accepted: AcceptedEntry[] = [];
        for (let i = 0; i < count; i++) accepted.push(reader.entry());
        delta.accepted = accepted;
      }
      if (flags & FLAG_FLOOR) delta.floorSlot = reader.varuint();
      if (flags & FLAG_REJOINING) delta.rejoining = true;
      if (flags & FLAG_REJOINED) delta.rejoining = false;
      if (flags & FLAG_DECIDED) {
        const count = reader.count();
        const decided: SlotValue[] = [];
        for (let i = 0; i < count; i++) {
          const { slot, value } = reader.entry();
          decided.push({ slot, value });
        }
        delta.decided = decided;
      }
      record = { type: "delta", delta };
      break;
    }
    case TYPE_CHECKPOINT_BEGIN: {
      const promised = reader.ballot();
      const round = reader.varuint();
      const trimmedBelowSlot = reader.varuint();
      record = { type: "checkpoint-begin", promised, round, trimmedBelowSlot, entries: reader.varuint() };
      break;
    }
    case TYPE_CHECKPOINT_END:
      record = { type: "checkpoint-end", entries: reader.varuint() };
      break;
    default:
      throw new DecodeError(`unknown record type ${type}`);
  }
  if (reader.at !== end) throw new DecodeError(`${end - reader.at} bytes left over after the record`);
  return record;
}

/**
 * The record at `at` in `bytes`, which hold segment `segment` from file offset `base`, or why there is
 * none:
 * - `frame`: no whole record with a matching checksum starts there (a torn write, or damage);
 * - `payload`: the checksum matches but the payload does not decode (a bug or another version:
 *   never a torn write).
 */
export type RecordRead =
  | { readonly ok: true; readonly record: WalRecord; readonly next: number }
  | { readonly ok: false; readonly damage: "frame" | "payload"; readonly detail: string };

export function readRecordAt(bytes: Buffer, at: number, segment: number, base = 0): RecordRead {
  const left = bytes.length - at;
  if (left < RECORD_HEADER_BYTES) {
    return {
      ok: false,
      damage: "frame",
      detail: `record header cut short (${left} of ${RECORD_HEADER_BYTES} bytes)`,
    };
  }
  const length = bytes.readUInt32LE(at);
  if (length === 0) return { ok: false, damage: "frame", detail: "record length 0" };
  if (length > RECORD_PAYLOAD_BYTES_MAX)
    return { ok: false, damage: "frame", detail: `record length ${length} too large` };
  const start = at + RECORD_HEADER_BYTES;
  const end = start + length;
  if (end > bytes.length) {
    return {
      ok: false,
      damage: "frame",
      detail: `record of ${length} bytes runs ${end - bytes.length} bytes past the end`,
    };
  }
  if (recordChecksum(bytes, start, end, segment, base + at) !== bytes.readUInt32LE(at + 4)) {
    return { ok: false, damage: "frame", detail: "record checksum mismatch" };
  }
  try {
    return { ok: true, record: decodePayload(bytes, start, end), next: end };
  } catch (error) {
    if (error instanceof DecodeError)
      return { ok: false, damage: "payload", detail: `undecodable record: ${error.message}` };
    throw error;
  }
}

/**
 * The first offset at or after `from` where a whole record with a matching checksum starts, or -1
 * (`bytes` are segment `segment` from its start).
 * Tells a torn tail (nothing valid after the damage) from damage in the middle of the log. Cheap on
 * the usual torn tail (zeros or a cut-off record): most offsets fail the length test.
 */
export function findRecordFrom(bytes: Buffer, from: number, segment: number): number {
  for (let at = from; at + RECORD_HEADER_BYTES < bytes.length; at++) {
    const length = bytes.readUInt32LE(at);
    if (length === 0 || length > RECORD_PAYLOAD_BYTES_MAX) continue;
    const start = at + RECORD_HEADER_BYTES;
    if (start + length > bytes.length) continue;
    if (recordChecksum(bytes, start, start + length, segment, at) === bytes.readUInt32LE(at + 4)) return at;
  }
  return -1;
}
