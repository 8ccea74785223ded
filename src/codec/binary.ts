/**
 * The binary wire format: compact, hand-written, fast. One frame carries one message.
 *
 * ## Frame
 *
 * ```text
 * frame      = magic-version:u8  tag:u8  body          (nothing may follow the body)
 * magic-version = 0xA1            high nibble 0xA marks this format, low nibble is the version (1)
 * ```
 *
 * ## Primitives
 *
 * ```text
 * uint       = unsigned LEB128 varint: 7 bits a byte, least significant group first, high bit set on
 *              every byte but the last. Values 0 .. 2^53-1 (Number.MAX_SAFE_INTEGER), so 1 to 8 bytes.
 *              Encodings must be minimal: a last byte of 0x00 (other than the value 0 itself) is refused,
 *              so every message has exactly one encoding.
 *              0 -> 00   127 -> 7F   128 -> 80 01   300 -> AC 02   2^53-1 -> FF FF FF FF FF FF FF 0F
 * string     = byteLength:uint  UTF-8 bytes           (well-formed; at most PAYLOAD_BYTES_MAX bytes)
 * text       = byteLength:uint  UTF-8 bytes           (well-formed; at most SNAPSHOT_CHUNK_BYTES_MAX bytes
 *                                                    and SNAPSHOT_CHUNK_UNITS_MAX UTF-16 units)
 * ballot     = round:uint  node:uint
 * command    = client:uint  seq:uint  payload:string
 * value      = count:uint  command × count          (count <= COMMANDS_PER_MESSAGE_MAX)
 * role       = u8: 0 proposer, 1 acceptor, 2 learner, 3 client
 * ```
 *
 * ## Bodies, by tag
 *
 * ```text
 *  1 request    from:uint  count:uint  command × count                  (count <= 4096)
 *  2 ack        from:uint  client:uint  count:uint  seq:uint × count    (count <= 65536)
 *  3 prepare    from:uint  ballot  firstSlot:uint
 *  4 promise    from:uint  ballot  firstSlot:uint  count:uint  entry × count  nextSlot  floorSlot:uint
 *                 entry    = slot:uint  ballot  value                   (count <= 4096)
 *                 nextSlot = u8 0x00 (null, the report is complete) | u8 0x01 then slot:uint
 *  5 accept     from:uint  ballot  slot:uint  value
 *  6 accepted   from:uint  ballot  slot:uint  u8 0x00 (value null: the accept's) | u8 0x01 then value
 *  7 reject     from:uint  ballot  promised:ballot  slot:uint
 *  8 decide     from:uint  count:uint  (slot:uint  value) × count       (count <= 4096)
 *  9 heartbeat  from:uint  ballot  decidedThrough:uint  proposedThrough:uint
 * 10 catchup    from:uint  role  fromSlot:uint  toSlot:uint
 * 11 snapshot-request  from:uint  role  slot:uint  offset:uint
 * 12 snapshot-chunk    from:uint  slot:uint  length:uint  checksum:uint  offset:uint  data:text
 *                        (length <= SNAPSHOT_UNITS_MAX, checksum <= 2^32 - 1, offset + data units <= length)
 * 13 rejoin-query      from:uint  nonce:uint  promised:ballot
 * 14 rejoin-report     from:uint  nonce:uint  voting:u8 (0 or 1)  promised:ballot  votedThrough:uint
 *                        decidedThrough:uint  leaderBallot:ballot  proposedThrough:uint
 * 15 refuse            from:uint  client:uint  reason:u8  count:uint  seq:uint × count    (count <= 65536)
 *                        reason = 0 clients-full, 1 client-gaps, 2 pending-full, 3 client-pending-full
 * ```
 *
 * A whole frame is at most FRAME_BYTES_MAX (1 MiB); a UDP transport also needs it within
 * DATAGRAM_BYTES_MAX (65507). Fields appear in the order of the TypeScript message types.
 *
 * Example: `{ type: "prepare", from: 2, ballot: { round: 300, node: 2 }, firstSlot: 1 }` is the 7 bytes
 * `A1 03 02 AC 02 02 01`.
 */

import { Buffer } from "node:buffer";
import type { AcceptedEntry, Ballot, Command, SlotValue, Value } from "../core/index.js";
import {
  assert,
  copyAscii,
  err,
  type Message,
  type MessageType,
  type RefuseReason,
  type Result,
  type Role,
} from "../core/index.js";
import {
  CHECKSUM_MAX,
  COMMANDS_PER_MESSAGE_MAX,
  ENTRIES_PER_MESSAGE_MAX,
  FRAME_BYTES_MAX,
  isUint,
  isWellFormedUnicode,
  PAYLOAD_BYTES_MAX,
  SEQS_PER_MESSAGE_MAX,
  SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_CHUNK_UNITS_MAX,
  SNAPSHOT_UNITS_MAX,
  validateMessage,
} from "./validate.js";

/** The first byte of every binary frame: format marker 0xA in the high nibble, version 1 in the low. */
export const BINARY_MAGIC_VERSION = 0xa1;

const MAGIC = 0xa0;

/** The wire tag of each message type. Fixed forever: a new type takes a new number. */
const TAG_BY_TYPE: Readonly<Record<MessageType, number>> = {
  request: 1,
  ack: 2,
  prepare: 3,
  promise: 4,
  accept: 5,
  accepted: 6,
  reject: 7,
  decide: 8,
  heartbeat: 9,
  catchup: 10,
  "snapshot-request": 11,
  "snapshot-chunk": 12,
  "rejoin-query": 13,
  "rejoin-report": 14,
  refuse: 15,
};

const REFUSAL_BY_CODE: readonly RefuseReason[] = [
  "clients-full",
  "client-gaps",
  "pending-full",
  "client-pending-full",
];

const CODE_BY_REFUSAL: Readonly<Record<RefuseReason, number>> = {
  "clients-full": 0,
  "client-gaps": 1,
  "pending-full": 2,
  "client-pending-full": 3,
};

const ROLE_BY_CODE: readonly Role[] = ["proposer", "acceptor", "learner", "client"];

const CODE_BY_ROLE: Readonly<Record<Role, number>> = { proposer: 0, acceptor: 1, learner: 2, client: 3 };

/**
 * Payloads this long or shorter take a fast path for ASCII: copied byte by byte when encoding, read as
 * Latin-1 when decoding. Both beat a TextEncoder/TextDecoder call for short strings, which dominate.
 * At most 16383, so the encoder's fast path can count on a length of 1 or 2 bytes.
 */
const SHORT_STRING_BYTES = 256;

/** The most bytes a uint takes: 2^53 - 1 needs 53 bits, 8 groups of 7. */
const UINT_BYTES_MAX = 8;

/**
 * The writer's largest buffer: a frame's worth plus the most one write may reserve beyond what it
 * uses (a string is given 3 bytes a character), so a frame just under the limit still fits.
 */
const WRITER_BYTES_MAX = FRAME_BYTES_MAX + 4 * Math.max(PAYLOAD_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX);

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// --- encoding ------------------------------------------------------------------------------------

/**
 * A growable byte buffer, reused by every call of {@link encodeBinary} (encoding is synchronous, so
 * one is enough). Each frame is copied out at the end, so callers own what they get.
 */
class Writer {
  private buffer = new Uint8Array(16 * 1024);
  private position = 0;

  reset(): void {
    this.position = 0;
  }

  /** A copy of the bytes written since the last reset. */
  finish(): Uint8Array {
    if (this.position > FRAME_BYTES_MAX) this.tooLarge();
    return this.buffer.slice(0, this.position);
  }

  private tooLarge(): never {
    fail(`the frame exceeds ${FRAME_BYTES_MAX} bytes`);
  }

  /** Makes room for `bytes` more: an upper bound of what the next write takes, not always all of it. */
  private ensure(bytes: number): void {
    const needed = this.position + bytes;
    if (needed <= this.buffer.length) return;
    // The frame limit also bounds this buffer: growing further would only build a frame to refuse.
    if (needed > WRITER_BYTES_MAX) this.tooLarge();
    const grown = new Uint8Array(Math.min(WRITER_BYTES_MAX, Math.max(needed, this.buffer.length * 2)));
    grown.set(this.buffer.subarray(0, this.position));
    this.buffer = grown;
  }

  byte(value: number): void {
    this.ensure(1);
    this.buffer[this.position++] = value;
  }

  uint(value: number, field: string): void {
    if (!isUint(value)) fail(`${field} ${value} is not a non-negative safe integer`);
    this.ensure(UINT_BYTES_MAX);
    this.position = writeUint(this.buffer, this.position, value);
  }

  count(value: number, max: number, field: string): void {
    if (value > max) fail(`${value} ${field} exceeds the limit of ${max}`);
    this.uint(value, field);
  }

  /** A length-prefixed UTF-8 string of at most {@link PAYLOAD_BYTES_MAX} bytes. */
  payload(text: string): void {
    if (typeof text !== "string") fail(`payload ${String(text)} is not a string`);
    // A UTF-16 unit takes at least one UTF-8 byte.
    if (text.length > PAYLOAD_BYTES_MAX) {
      fail(`payload of ${text.length} characters exceeds ${PAYLOAD_BYTES_MAX} bytes`);
    }
    this.string(text, PAYLOAD_BYTES_MAX, "payload");
  }

  /** Snapshot text: a length-prefixed UTF-8 string of at most {@link SNAPSHOT_CHUNK_UNITS_MAX} units. */
  snapshotData(text: string): void {
    if (typeof text !== "string") fail(`data ${String(text)} is not a string`);
    if (text.length > SNAPSHOT_CHUNK_UNITS_MAX) {
      fail(`data of ${text.length} characters exceeds the limit of ${SNAPSHOT_CHUNK_UNITS_MAX}`);
    }
    this.string(text, SNAPSHOT_CHUNK_BYTES_MAX, "data");
  }

  /** A length-prefixed UTF-8 string of at most `bytesMax` bytes; the caller has bounded its length. */
  private string(text: string, bytesMax: number, field: string): void {
    const units = text.length;
    const reserved = uintBytes(units * 3);
    this.ensure(reserved + units * 3);
    const buffer = this.buffer;
    const start = this.position;
    if (units <= SHORT_STRING_BYTES) {
      // Most payloads are short ASCII: one byte a character, so the length is known up front.
      const bytesStart = start + (units < 0x80 ? 1 : 2);
      if (copyAscii(text, buffer, bytesStart) === units) {
        writeUint(buffer, start, units);
        this.position = bytesStart + units;
        return;
      }
    }
    if (!isWellFormedUnicode(text)) fail(`${field} is not well-formed Unicode (lone surrogate)`);
    // Encode behind room for the longest possible length, then close any gap so the length stays minimal.
    const bytesStart = start + reserved;
    const { written } = textEncoder.encodeInto(text, buffer.subarray(bytesStart, bytesStart + units * 3));
    if (written > bytesMax) fail(`${field} of ${written} UTF-8 bytes exceeds ${bytesMax}`);
    const prefix = uintBytes(written);
    if (prefix < reserved) buffer.copyWithin(start + prefix, bytesStart, bytesStart + written);
    writeUint(buffer, start, written);
    this.position = start + prefix + written;
  }
}

const writer = new Writer();

/** Writes `value` as a LEB128 varint at `position`; returns the position after it. */
function writeUint(buffer: Uint8Array, position: number, value: number): number {
  let rest = value;
  let at = position;
  // Above 2^31 the shift operators would wrap, so divide; `& 0x7f` is still exact (2^32 is a multiple of 128).
  while (rest >= 0x80000000) {
    buffer[at++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 128);
  }
  while (rest > 0x7f) {
    buffer[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  buffer[at++] = rest;
  return at;
}

/** How many bytes `value` takes as a varint. */
function uintBytes(value: number): number {
  let bytes = 1;
  for (let rest = value; rest > 0x7f; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/** Encoding a message the wire cannot carry is a bug in the caller, not bad input: stop loudly. */
function fail(reason: string): never {
  assert(false, `cannot encode: ${reason}`);
}

function writeBallot(w: Writer, ballot: Ballot): void {
  w.uint(ballot.round, "ballot round");
  w.uint(ballot.node, "ballot node");
}

function writeCommands(w: Writer, commands: readonly Command[]): void {
  w.count(commands.length, COMMANDS_PER_MESSAGE_MAX, "commands");
  for (const command of commands) {
    w.uint(command.client, "command client");
    w.uint(command.seq, "command seq");
    w.payload(command.payload);
  }
}

function writeValue(w: Writer, value: Value): void {
  writeCommands(w, value.commands);
}

/**
 * Encodes a message as one binary frame (layout at the top of this file).
 *
 * Throws `InvariantViolation` if the message is one no decoder would accept (a number that is not a
 * non-negative safe integer, a field over its limit, a lone surrogate in a payload, a frame over
 * {@link FRAME_BYTES_MAX}): the protocol core never builds such a message, so it is a bug. Every
 * message it does encode decodes back to an equal message.
 *
 * @example
 * const bytes = encodeBinary({ type: "heartbeat", from: 1, ballot: { round: 4, node: 1 }, decidedThrough: 17, proposedThrough: 20 });
 * // Uint8Array [0xa1, 9, 1, 4, 1, 17]
 */
export function encodeBinary(message: Message): Uint8Array {
  const w = writer;
  w.reset();
  w.byte(BINARY_MAGIC_VERSION);
  const tag = TAG_BY_TYPE[message.type];
  if (tag === undefined) fail(`unknown message type ${JSON.stringify(message.type)}`);
  w.byte(tag);
  w.uint(message.from, "from");
  switch (message.type) {
    case "request":
      writeCommands(w, message.commands);
      break;
    case "ack":
      w.uint(message.client, "client");
      w.count(message.seqs.length, SEQS_PER_MESSAGE_MAX, "sequence numbers");
      for (const seq of message.seqs) w.uint(seq, "seq");
      break;
    case "refuse": {
      w.uint(message.client, "client");
      const code = CODE_BY_REFUSAL[message.reason];
      if (code === undefined) fail(`unknown refusal reason ${JSON.stringify(message.reason)}`);
      w.byte(code);
      w.count(message.seqs.length, SEQS_PER_MESSAGE_MAX, "sequence numbers");
      for (const seq of message.seqs) w.uint(seq, "seq");
      break;
    }
    case "prepare":
      writeBallot(w, message.ballot);
      w.uint(message.firstSlot, "firstSlot");
      break;
    case "promise":
      writeBallot(w, message.ballot);
      w.uint(message.firstSlot, "firstSlot");
      w.count(message.accepted.length, ENTRIES_PER_MESSAGE_MAX, "entries");
      for (const entry of message.accepted) {
        w.uint(entry.slot, "slot");
        writeBallot(w, entry.ballot);
        writeValue(w, entry.value);
      }
      if (message.nextSlot === null) w.byte(0);
      else {
        w.byte(1);
        w.uint(message.nextSlot, "nextSlot");
      }
      w.uint(message.floorSlot, "floorSlot");
      break;
    case "accept":
      writeBallot(w, message.ballot);
      w.uint(message.slot, "slot");
      writeValue(w, message.value);
      break;
    case "accepted":
      writeBallot(w, message.ballot);
      w.uint(message.slot, "slot");
      if (message.value === null) w.byte(0);
      else {
        w.byte(1);
        writeValue(w, message.value);
      }
      break;
    case "reject":
      writeBallot(w, message.ballot);
      writeBallot(w, message.promised);
      w.uint(message.slot, "slot");
      break;
    case "decide":
      w.count(message.entries.length, ENTRIES_PER_MESSAGE_MAX, "entries");
      for (const entry of message.entries) {
        w.uint(entry.slot, "slot");
        writeValue(w, entry.value);
      }
      break;
    case "heartbeat":
      writeBallot(w, message.ballot);
      w.uint(message.decidedThrough, "decidedThrough");
      w.uint(message.proposedThrough, "proposedThrough");
      break;
    case "catchup": {
      const role = CODE_BY_ROLE[message.role];
      if (role === undefined) fail(`unknown role ${JSON.stringify(message.role)}`);
      w.byte(role);
      w.uint(message.fromSlot, "fromSlot");
      w.uint(message.toSlot, "toSlot");
      break;
    }
    case "snapshot-request": {
      const role = CODE_BY_ROLE[message.role];
      if (role === undefined) fail(`unknown role ${JSON.stringify(message.role)}`);
      w.byte(role);
      w.uint(message.slot, "slot");
      w.uint(message.offset, "offset");
      break;
    }
    case "snapshot-chunk":
      w.uint(message.slot, "slot");
      w.count(message.length, SNAPSHOT_UNITS_MAX, "snapshot characters");
      w.count(message.checksum, CHECKSUM_MAX, "checksum");
      w.uint(message.offset, "offset");
      w.snapshotData(message.data);
      if (message.offset + message.data.length > message.length) {
        fail(
          `snapshot chunk at ${message.offset} of ${message.data.length} characters runs past ${message.length}`,
        );
      }
      break;
    case "rejoin-query":
      w.uint(message.nonce, "nonce");
      writeBallot(w, message.promised);
      break;
    case "rejoin-report":
      w.uint(message.nonce, "nonce");
      w.byte(message.voting ? 1 : 0);
      writeBallot(w, message.promised);
      w.uint(message.votedThrough, "votedThrough");
      w.uint(message.decidedThrough, "decidedThrough");
      writeBallot(w, message.leaderBallot);
      w.uint(message.proposedThrough, "proposedThrough");
      break;
  }
  return w.finish();
}

// --- decoding ------------------------------------------------------------------------------------

/** Why a frame was refused. Thrown only inside this module; {@link decodeBinary} returns it as a value. */
class FrameError extends Error {}

/** Reads one frame front to back; every read checks the bytes are there. */
class Reader {
  position = 2;
  /** The frame as a Buffer (a view, not a copy), made on first use. */
  private latin1: Buffer | null = null;

  constructor(
    private readonly bytes: Uint8Array,
    readonly type: MessageType,
  ) {}

  private refuse(reason: string): never {
    throw new FrameError(`${this.type}: ${reason}`);
  }

  private truncated(field: string): never {
    this.refuse(`frame truncated at byte ${this.bytes.length} while reading ${field}`);
  }

  get remaining(): number {
    return this.bytes.length - this.position;
  }

  byte(field: string): number {
    if (this.position >= this.bytes.length) this.truncated(field);
    return this.bytes[this.position++] as number;
  }

  uint(field: string): number {
    const bytes = this.bytes;
    const end = bytes.length;
    let position = this.position;
    if (position >= end) this.truncated(field);
    let byte = bytes[position++] as number;
    if (byte < 0x80) {
      this.position = position;
      return byte;
    }
    let value = byte & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < UINT_BYTES_MAX; i++) {
      if (position >= end) this.truncated(field);
      byte = bytes[position++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (byte === 0) this.refuse(`${field} is not minimally encoded`);
        // Exact below 2^53; above it, rounding cannot bring the sum back under the limit.
        if (value > Number.MAX_SAFE_INTEGER) this.refuse(`${field} exceeds 2^53 - 1`);
        this.position = position;
        return value;
      }
      scale *= 0x80;
    }
    this.refuse(`${field} is longer than ${UINT_BYTES_MAX} bytes`);
  }

  /**
   * An array length: within `max`, and no more items than the bytes left could hold (each takes at
   * least `itemBytesMin`), so a forged count cannot make us allocate or loop for nothing.
   */
  count(max: number, itemBytesMin: number, field: string): number {
    const count = this.uint(`${field} count`);
    if (count > max) this.refuse(`${count} ${field} exceeds the limit of ${max}`);
    if (count * itemBytesMin > this.remaining) this.truncated(field);
    return count;
  }

  payload(): string {
    return this.string(PAYLOAD_BYTES_MAX, "payload");
  }

  /** Snapshot text; its limit in UTF-16 units is the validator's to check. */
  snapshotData(): string {
    return this.string(SNAPSHOT_CHUNK_BYTES_MAX, "data");
  }

  private string(bytesMax: number, field: string): string {
    const length = this.uint(`${field} length`);
    if (length > bytesMax) {
      this.refuse(`${field} of ${length} UTF-8 bytes exceeds the limit of ${bytesMax}`);
    }
    if (length > this.remaining) this.truncated(field);
    const bytes = this.bytes;
    const start = this.position;
    const end = start + length;
    this.position = end;
    if (length <= SHORT_STRING_BYTES) {
      // Most payloads are short ASCII, which reads fastest as Latin-1 (the same bytes, no UTF-8 to check).
      let i = start;
      while (i < end && (bytes[i] as number) < 0x80) i++;
      if (i === end) {
        this.latin1 ??= Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        return this.latin1.toString("latin1", start, end);
      }
    }
    try {
      return textDecoder.decode(bytes.subarray(start, end));
    } catch {
      this.refuse(`${field} at byte ${start} is not valid UTF-8`);
    }
  }

  ballot(): Ballot {
    const round = this.uint("ballot round");
    const node = this.uint("ballot node");
    return { round, node };
  }

  commands(): Command[] {
    // A command is at least 3 bytes: client, seq and payload length.
    const count = this.count(COMMANDS_PER_MESSAGE_MAX, 3, "commands");
    const commands: Command[] = [];
    for (let i = 0; i < count; i++) {
      const client = this.uint("command client");
      const seq = this.uint("command seq");
      const payload = this.payload();
      commands.push({ client, seq, payload });
    }
    return commands;
  }

  value(): Value {
    return { commands: this.commands() };
  }
}

function readBody(r: Reader): Message {
  const from = r.uint("from");
  switch (r.type) {
    case "request":
      return { type: "request", from, commands: r.commands() };
    case "ack": {
      const client = r.uint("client");
      const count = r.count(SEQS_PER_MESSAGE_MAX, 1, "sequence numbers");
      const seqs: number[] = [];
      for (let i = 0; i < count; i++) seqs.push(r.uint("seq"));
      return { type: "ack", from, client, seqs };
    }
    case "refuse": {
      const client = r.uint("client");
      const code = r.byte("reason");
      const reason = REFUSAL_BY_CODE[code];
      if (reason === undefined) throw new FrameError(`refuse: unknown refusal reason code ${code}`);
      const count = r.count(SEQS_PER_MESSAGE_MAX, 1, "sequence numbers");
      const seqs: number[] = [];
      for (let i = 0; i < count; i++) seqs.push(r.uint("seq"));
      return { type: "refuse", from, client, reason, seqs };
    }
    case "prepare": {
      const ballot = r.ballot();
      return { type: "prepare", from, ballot, firstSlot: r.uint("firstSlot") };
    }
    case "promise": {
      const ballot = r.ballot();
      const firstSlot = r.uint("firstSlot");
      // An entry is at least 4 bytes: slot, ballot round and node, command count.
      const count = r.count(ENTRIES_PER_MESSAGE_MAX, 4, "entries");
      const accepted: AcceptedEntry[] = [];
      for (let i = 0; i < count; i++) {
        const slot = r.uint("slot");
        const entryBallot = r.ballot();
        accepted.push({ slot, ballot: entryBallot, value: r.value() });
      }
      const presence = r.byte("nextSlot");
      if (presence > 1) throw new FrameError(`promise: nextSlot marker must be 0 or 1, got ${presence}`);
      const nextSlot = presence === 0 ? null : r.uint("nextSlot");
      return { type: "promise", from, ballot, firstSlot, accepted, nextSlot, floorSlot: r.uint("floorSlot") };
    }
    case "accept": {
      const ballot = r.ballot();
      const slot = r.uint("slot");
      return { type: "accept", from, ballot, slot, value: r.value() };
    }
    case "accepted": {
      const ballot = r.ballot();
      const slot = r.uint("slot");
      const presence = r.byte("value");
      if (presence > 1) throw new FrameError(`accepted: value marker must be 0 or 1, got ${presence}`);
      return { type: "accepted", from, ballot, slot, value: presence === 0 ? null : r.value() };
    }
    case "reject": {
      const ballot = r.ballot();
      const promised = r.ballot();
      return { type: "reject", from, ballot, promised, slot: r.uint("slot") };
    }
    case "decide": {
      // An entry is at least 2 bytes: slot and command count.
      const count = r.count(ENTRIES_PER_MESSAGE_MAX, 2, "entries");
      const entries: SlotValue[] = [];
      for (let i = 0; i < count; i++) {
        const slot = r.uint("slot");
        entries.push({ slot, value: r.value() });
      }
      return { type: "decide", from, entries };
    }
    case "heartbeat": {
      const ballot = r.ballot();
      const decidedThrough = r.uint("decidedThrough");
      return { type: "heartbeat", from, ballot, decidedThrough, proposedThrough: r.uint("proposedThrough") };
    }
    case "catchup": {
      const code = r.byte("role");
      const role = ROLE_BY_CODE[code];
      if (role === undefined) throw new FrameError(`catchup: unknown role code ${code}`);
      const fromSlot = r.uint("fromSlot");
      return { type: "catchup", from, role, fromSlot, toSlot: r.uint("toSlot") };
    }
    case "snapshot-request": {
      const code = r.byte("role");
      const role = ROLE_BY_CODE[code];
      if (role === undefined) throw new FrameError(`snapshot-request: unknown role code ${code}`);
      const slot = r.uint("slot");
      return { type: "snapshot-request", from, role, slot, offset: r.uint("offset") };
    }
    case "snapshot-chunk": {
      const slot = r.uint("slot");
      const length = r.uint("length");
      const checksum = r.uint("checksum");
      const offset = r.uint("offset");
      return { type: "snapshot-chunk", from, slot, length, checksum, offset, data: r.snapshotData() };
    }
    case "rejoin-query": {
      const nonce = r.uint("nonce");
      return { type: "rejoin-query", from, nonce, promised: r.ballot() };
    }
    case "rejoin-report": {
      const nonce = r.uint("nonce");
      const flag = r.byte("voting");
      if (flag > 1) throw new FrameError(`rejoin-report: voting must be 0 or 1, got ${flag}`);
      const promised = r.ballot();
      const votedThrough = r.uint("votedThrough");
      const decidedThrough = r.uint("decidedThrough");
      const leaderBallot = r.ballot();
      return {
        type: "rejoin-report",
        from,
        nonce,
        voting: flag === 1,
        promised,
        votedThrough,
        decidedThrough,
        leaderBallot,
        proposedThrough: r.uint("proposedThrough"),
      };
    }
  }
}

const TYPE_BY_TAG: readonly (MessageType | undefined)[] = (() => {
  const types: (MessageType | undefined)[] = [];
  for (const [type, tag] of Object.entries(TAG_BY_TYPE)) types[tag] = type as MessageType;
  return types;
})();

/**
 * The message type of a binary frame, read from its header without decoding the body (null if the
 * header is not ours). Lets a receiver drop frames it would ignore anyway, cheaply.
 */
export function peekBinaryType(bytes: Uint8Array): MessageType | null {
  if (bytes.length < 2 || bytes[0] !== BINARY_MAGIC_VERSION) return null;
  return TYPE_BY_TAG[bytes[1] as number] ?? null;
}

/**
 * Decodes one binary frame. Never throws: a frame that is truncated, oversized, corrupted, from
 * another version, or followed by trailing bytes yields `{ ok: false, error }` saying what is wrong.
 * The decoded message has passed {@link validateMessage}.
 *
 * @example
 * const result = decodeBinary(new Uint8Array([0xa1, 9, 1, 4, 1, 17, 0]));
 * if (result.ok) result.value; // { type: "heartbeat", from: 1, ballot: { round: 4, node: 1 }, decidedThrough: 17, proposedThrough: 0 }
 */
export function decodeBinary(bytes: Uint8Array): Result<Message, string> {
  if (!(bytes instanceof Uint8Array)) return err("binary frame: expected a Uint8Array");
  if (bytes.length > FRAME_BYTES_MAX) {
    return err(`binary frame: ${bytes.length} bytes exceeds the limit of ${FRAME_BYTES_MAX}`);
  }
  if (bytes.length < 2) return err(`binary frame: truncated, ${bytes.length} bytes`);
  const first = bytes[0] as number;
  if (first !== BINARY_MAGIC_VERSION) {
    return err(
      (first & 0xf0) === MAGIC
        ? `binary frame: unsupported version ${first & 0x0f} (this build speaks version ${BINARY_MAGIC_VERSION & 0x0f})`
        : `binary frame: bad magic byte 0x${first.toString(16).padStart(2, "0")}`,
    );
  }
  const tag = bytes[1] as number;
  const type = TYPE_BY_TAG[tag];
  if (type === undefined) return err(`binary frame: unknown message tag ${tag}`);
  const reader = new Reader(bytes, type);
  let message: Message;
  try {
    message = readBody(reader);
  } catch (error) {
    // Only FrameError is expected; anything else is a decoder bug, still reported rather than thrown.
    return err(error instanceof FrameError ? error.message : `${type}: decoder failure: ${String(error)}`);
  }
  if (reader.remaining !== 0) return err(`${type}: ${reader.remaining} trailing bytes after the message`);
  return validateMessage(message);
}
