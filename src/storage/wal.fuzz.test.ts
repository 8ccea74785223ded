import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import type { AcceptedEntry, Ballot, Command, DurableDelta, SlotValue } from "../core/index.js";
import { fuzzParameters } from "../test-support/index.js";
import { crc32 } from "./crc32.js";
import { MemoryFileSystem } from "./memory-fs.js";
import { scanSegment, WalStorage } from "./wal.js";
import {
  alignRecord,
  checkSegmentHeader,
  DeltaAssembler,
  encodeSegmentHeader,
  findRecordFrom,
  headerChecksum,
  RECORD_HEADER_BYTES,
  RecordBuffer,
  type RecordRead,
  readRecordAt,
  SEGMENT_HEADER_BYTES,
  segmentFileName,
  showsLostSector,
  type WalRecord,
  whiten,
} from "./wal-format.js";

// Fuzzing the WAL reader (docs/security.md, "Evidence: fuzzing"): random bytes, mutated segments,
// and record payloads that pass both checksums but hold extreme or inconsistent fields (what a bug
// or another version could have written). The reader never throws: each record is read or named
// damaged, each segment scanned or called corrupt, and a log opens or reports why it cannot.

const RECORD_DAMAGES = new Set(["cut", "header", "checksum", "payload"]);

/** Every number in a decoded record is a non-negative safe integer; every string well-formed text. */
function assertValidRecord(record: WalRecord): void {
  const walk = (node: unknown, path: string): void => {
    if (typeof node === "number") assert.ok(Number.isSafeInteger(node) && node >= 0, `${path} is ${node}`);
    else if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) walk(node[i], `${path}[${i}]`);
    } else if (node !== null && typeof node === "object")
      for (const [key, value] of Object.entries(node)) walk(value, `${path}.${key}`);
    else assert.ok(["string", "boolean", "undefined"].includes(typeof node), `${path} is ${typeof node}`);
  };
  walk(record, record.type);
}

/** Reads the record at `at` and checks the contract: a valid record, or a named kind of damage. */
function readChecked(bytes: Buffer, at: number, segment: number): RecordRead {
  const read = readRecordAt(bytes, at, segment);
  if (read.ok) {
    assertValidRecord(read.record);
    assert.ok(read.next > at && read.next <= bytes.length);
  } else {
    assert.ok(RECORD_DAMAGES.has(read.damage), read.damage);
    assert.equal(typeof read.detail, "string");
    assert.equal(typeof showsLostSector(bytes, at, read.damage), "boolean");
  }
  return read;
}

/** Scans a segment as the log's `open` does, last or not; it returns ok or corruption, never throws. */
function scanChecked(bytes: Buffer, segment: number): void {
  for (const isLast of [true, false]) {
    const scan = scanSegment(bytes, segment, isLast);
    if (scan.ok) assert.ok(scan.value.validEnd <= Math.max(bytes.length, SEGMENT_HEADER_BYTES));
    else assert.equal(typeof scan.error.detail, "string");
  }
}

const EDGE_NUMBERS = [0, 1, 127, 128, 16_384, 2 ** 31, 2 ** 32, 2 ** 53 - 2, 2 ** 53 - 1];
const numberArbitrary = fc.oneof(fc.nat({ max: 300 }), fc.constantFrom(...EDGE_NUMBERS), fc.maxSafeNat());
const ballotArbitrary: fc.Arbitrary<Ballot> = fc
  .record({ round: numberArbitrary, node: numberArbitrary })
  .map((b) => ({ ...b }));
const commandArbitrary: fc.Arbitrary<Command> = fc
  .record({
    client: numberArbitrary,
    seq: numberArbitrary,
    payload: fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 6 })),
  })
  .map((c) => ({ ...c }));
const valueArbitrary = fc.array(commandArbitrary, { maxLength: 3 }).map((commands) => ({ commands }));
const entryArbitrary: fc.Arbitrary<AcceptedEntry> = fc
  .record({ slot: numberArbitrary, ballot: ballotArbitrary, value: valueArbitrary })
  .map((e) => ({ ...e }));
const decidedArbitrary: fc.Arbitrary<SlotValue> = fc
  .record({ slot: numberArbitrary, value: valueArbitrary })
  .map((e) => ({ ...e }));
/** Deltas with fields at their edges (slots and rounds up to 2^53 - 1, snapshots, empty lists). */
const deltaArbitrary: fc.Arbitrary<DurableDelta> = fc
  .record(
    {
      promised: ballotArbitrary,
      proposerRound: numberArbitrary,
      floorSlot: numberArbitrary,
      rejoining: fc.boolean(),
      accepted: fc.array(entryArbitrary, { maxLength: 3 }),
      decided: fc.array(decidedArbitrary, { maxLength: 3 }),
      snapshot: fc
        .record({
          slot: numberArbitrary.filter((slot) => slot > 0),
          sessions: fc.array(numberArbitrary, { maxLength: 6 }),
          app: fc.string({ maxLength: 30 }),
        })
        .map((s) => ({ ...s })),
    },
    { requiredKeys: [] },
  )
  .map((d) => ({ ...d }));

/** A segment holding `deltas`, one group commit each, and a seal at the end if `sealed`. */
function segmentOf(deltas: readonly DurableDelta[], segment: number, sealed: boolean): Buffer {
  const parts: Buffer[] = [encodeSegmentHeader(segment)];
  let offset = SEGMENT_HEADER_BYTES;
  const commit = (append: (buffer: RecordBuffer) => void) => {
    const buffer = new RecordBuffer(1024);
    append(buffer);
    if (buffer.length === 0) return;
    buffer.seal(segment, offset);
    parts.push(Buffer.from(buffer.view()));
    offset += buffer.length;
  };
  for (const delta of deltas) commit((buffer) => buffer.appendDelta(delta));
  if (sealed) commit((buffer) => buffer.appendSeal(segment + 1));
  return Buffer.concat(parts);
}

/** One record framed around `plain` payload bytes with valid checksums, at `offset` of `segment`. */
function framed(plain: Uint8Array, segment: number, offset: number): Buffer {
  const start = RECORD_HEADER_BYTES;
  const bytes = Buffer.alloc(alignRecord(start + plain.length));
  bytes.set(plain, start);
  whiten(bytes, start, start + plain.length, offset);
  bytes.writeUInt32LE(plain.length, 0);
  bytes.writeUInt32LE(crc32(bytes, start, start + plain.length), 4);
  bytes.writeUInt32LE(offset, 8);
  bytes.writeUInt32LE(headerChecksum(bytes, 0, segment, offset), 12);
  return bytes;
}

/** The plain (unwhitened) payloads of a valid segment's records. */
function plainPayloads(segment: Buffer, number: number): Buffer[] {
  const payloads: Buffer[] = [];
  for (let at = SEGMENT_HEADER_BYTES; at < segment.length; ) {
    const length = segment.readUInt32LE(at);
    const plain = Buffer.from(segment.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + length));
    whiten(plain, 0, length, at + RECORD_HEADER_BYTES);
    payloads.push(plain);
    at = alignRecord(at + RECORD_HEADER_BYTES + length);
    assert.ok(number > 0);
  }
  return payloads;
}

/** LEB128 bytes of a number (past 2^53 too, from a bigint: the reader must refuse those). */
function varint(value: bigint): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7fn) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return bytes;
}

/** Payload tokens: record types, flag words, varints at their edges (and past 2^53), strings. */
const payloadTokenArbitrary: fc.Arbitrary<number[]> = fc.oneof(
  fc
    .constantFrom(0n, 1n, 2n, 3n, 4n, 5n, 2047n, 2048n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 56n - 1n, 2n ** 60n)
    .map(varint),
  fc.nat({ max: 2047 }).map((n) => varint(BigInt(n))),
  fc.nat({ max: 255 }).map((byte) => [byte]),
  fc
    .tuple(fc.nat({ max: 20 }), fc.uint8Array({ maxLength: 20 }))
    .map(([length, bytes]) => [...varint(BigInt(length)), ...bytes]),
);

/** Byte-level mutations of a buffer. */
const mutationsArbitrary = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }),
    fc.record({ kind: fc.constant("zero" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 64 }) }),
    fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  ),
  { minLength: 1, maxLength: 4 },
);

function mutate(
  source: Buffer,
  mutations: readonly { kind: string; at: number; bit?: number; byte?: number; count?: number }[],
): Buffer {
  let bytes = Buffer.from(source);
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    if (m.kind === "flip") bytes[at] = (bytes[at] as number) ^ (1 << (m.bit as number));
    else if (m.kind === "set") bytes[at] = m.byte as number;
    else if (m.kind === "zero") bytes.fill(0, at, Math.min(bytes.length, at + (m.count as number)));
    else bytes = bytes.subarray(0, at);
  }
  return bytes;
}

describe("fuzz: the WAL reader never throws, and reads only valid records", () => {
  test("random bytes: as a segment, as a record header, and from a random offset", (t) => {
    const parameters = fuzzParameters(10_000);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (raw, offset) => {
        const bytes = Buffer.from(raw);
        assert.ok(checkSegmentHeader(bytes, 1) !== null || bytes.length >= SEGMENT_HEADER_BYTES);
        readChecked(bytes, bytes.length === 0 ? 0 : offset % bytes.length, 1);
        findRecordFrom(bytes, 0, 1);
        scanChecked(Buffer.concat([encodeSegmentHeader(1), bytes]), 1);
      }),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs`);
  });

  test("valid segments of extreme deltas, mutated (bit flips, overwrites, zeroed runs, truncation)", (t) => {
    const parameters = fuzzParameters(5_000);
    fc.assert(
      fc.property(
        fc.array(deltaArbitrary, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.option(mutationsArbitrary, { nil: null }),
        (deltas, sealed, mutations) => {
          const segment = segmentOf(deltas, 1, sealed);
          if (mutations === null) {
            // Unmutated, it scans whole, every delta back as written.
            const scan = scanSegment(segment, 1, true);
            assert.ok(scan.ok, scan.ok ? "" : scan.error.detail);
            assert.equal(scan.value.tornBytes, 0);
            return;
          }
          const bytes = mutate(segment, mutations);
          scanChecked(bytes, 1);
          for (let at = SEGMENT_HEADER_BYTES; at < bytes.length; at += 8) readChecked(bytes, at, 1);
        },
      ),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs`);
  });

  test("payloads that pass both checksums: valid payloads mutated, and payloads built of edge tokens", (t) => {
    const parameters = fuzzParameters(25_000);
    let decoded = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(deltaArbitrary, mutationsArbitrary).map(([delta, mutations]) => {
            const payloads = plainPayloads(segmentOf([delta], 1, false), 1);
            return mutate(payloads[0] ?? Buffer.alloc(1), mutations);
          }),
          fc
            .tuple(fc.integer({ min: 0, max: 5 }), fc.array(payloadTokenArbitrary, { maxLength: 16 }))
            .map(([type, tokens]) => Buffer.from([type, ...tokens.flat()])),
        ),
        (plain) => {
          if (plain.length === 0) return;
          const bytes = Buffer.concat([encodeSegmentHeader(1), framed(plain, 1, SEGMENT_HEADER_BYTES)]);
          const read = readChecked(bytes, SEGMENT_HEADER_BYTES, 1);
          // Both checksums match, so the only damage left is an undecodable payload.
          if (!read.ok) assert.equal(read.damage, "payload");
          else {
            decoded++;
            if (read.record.type === "delta") new DeltaAssembler().add(read.record.part);
          }
          scanChecked(bytes, 1);
        },
      ),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs, ${decoded} decoded to a valid record`);
  });

  test("a whole log on a simulated disk, its segment mutated: open() returns its state or an error", async (t) => {
    const parameters = fuzzParameters(1_000);
    let opened = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(deltaArbitrary, { minLength: 1, maxLength: 3 }),
        mutationsArbitrary,
        async (deltas, mutations) => {
          const fs = new MemoryFileSystem();
          const wal = new WalStorage({ dir: "/log", fs });
          const first = await wal.open();
          assert.ok(first.ok);
          for (const delta of deltas) wal.append(delta);
          await wal.sync();
          await wal.close();
          const path = `/log/${segmentFileName(1)}`;
          await fs.writeFile(path, mutate(await fs.readFile(path), mutations));
          const reopened = await new WalStorage({ dir: "/log", fs }).open();
          if (reopened.ok) opened++;
          else assert.equal(reopened.error.kind, "corrupt", reopened.error.detail);
        },
      ),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs, ${opened} opened (the rest refused as corrupt)`);
  });
});
