import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import { type AcceptedEntry, type DurableDelta, isWellFormedUnicode, type Snapshot } from "../core/index.js";
import { crc32 } from "./crc32.js";
import {
  alignRecord,
  checkSegmentHeader,
  DeltaAssembler,
  type DeltaPart,
  encodeSegmentHeader,
  findRecordFrom,
  parseSegmentFileName,
  RECORD_HEADER_BYTES,
  RECORD_PAYLOAD_BYTES_MAX,
  RECORD_PAYLOAD_BYTES_TARGET,
  RecordBuffer,
  readRecordAt,
  segmentFileName,
  showsLostSector,
  type WalRecord,
} from "./wal-format.js";

function decodeAll(buffer: RecordBuffer): WalRecord[] {
  buffer.seal(1, 0);
  const bytes = buffer.view();
  const records: WalRecord[] = [];
  let at = 0;
  while (at < bytes.length) {
    const read = readRecordAt(bytes, at, 1);
    assert.ok(read.ok, read.ok ? "" : read.detail);
    records.push(read.record);
    at = read.next;
  }
  return records;
}

/** The deltas in `buffer`, each joined from its records (checkpoint records pass through). */
function decodeDeltas(buffer: RecordBuffer): (DurableDelta | WalRecord)[] {
  const assembler = new DeltaAssembler();
  const out: (DurableDelta | WalRecord)[] = [];
  for (const record of decodeAll(buffer)) {
    if (record.type !== "delta") {
      out.push(record);
      continue;
    }
    const joined = assembler.add(record.part);
    assert.ok(joined.ok, joined.ok ? "" : joined.error);
    if (joined.value !== null) out.push(joined.value);
  }
  assert.ok(!assembler.open, "the last delta ends");
  return out;
}

/** Payload lengths of the records in `buffer`. */
function recordLengths(buffer: RecordBuffer): number[] {
  const bytes = buffer.view();
  const lengths: number[] = [];
  for (let at = 0; at < bytes.length; at += alignRecord(RECORD_HEADER_BYTES + (lengths.at(-1) as number)))
    lengths.push(bytes.readUInt32LE(at));
  return lengths;
}

function entry(slot: number, round: number, payloads: string[]): AcceptedEntry {
  return {
    slot,
    ballot: { round, node: 2 },
    value: { commands: payloads.map((payload, i) => ({ client: 7, seq: slot * 100 + i + 1, payload })) },
  };
}

describe("crc32", () => {
  it("matches the standard check value and known vectors", () => {
    assert.equal(crc32(Buffer.from("123456789")), 0xcbf43926);
    assert.equal(crc32(Buffer.alloc(0)), 0);
    assert.equal(crc32(Buffer.from("The quick brown fox jumps over the lazy dog")), 0x414fa339);
    const bytes = Buffer.from("xx123456789yy");
    assert.equal(crc32(bytes, 2, 11), 0xcbf43926);
    assert.equal(crc32(bytes, 6, 11, crc32(bytes, 2, 6)), 0xcbf43926, "continued");
  });

  it("agrees with a byte-wise reference (and zlib.crc32 where Node has it) at every length and alignment", () => {
    const table = Array.from({ length: 256 }, (_, n) => {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      return c >>> 0;
    });
    const reference = (bytes: Uint8Array): number => {
      let c = 0xffffffff;
      for (const byte of bytes) c = (table[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
      return (c ^ 0xffffffff) >>> 0;
    };
    const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 2654435761) >>> 24));
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= bytes.length; end += 7) {
        const slice = bytes.subarray(start, end);
        assert.equal(crc32(bytes, start, end), reference(slice), `${start}..${end}`);
        if (zlibCrc32) assert.equal(crc32(slice), zlibCrc32(slice));
      }
    }
  });
});

describe("segment names and headers", () => {
  it("round-trips names and rejects others", () => {
    assert.equal(segmentFileName(1), "wal-00000001.log");
    assert.equal(parseSegmentFileName("wal-00000042.log"), 42);
    assert.equal(parseSegmentFileName("wal-00000000.log"), null);
    assert.equal(parseSegmentFileName("wal-1.log"), null);
    assert.equal(parseSegmentFileName("wal-00000001.log.tmp"), null);
  });

  it("checks magic, checksum and number", () => {
    const header = encodeSegmentHeader(5);
    assert.equal(checkSegmentHeader(header, 5), null);
    assert.match(checkSegmentHeader(header, 6) ?? "", /file name says 6/);
    const flipped = Buffer.from(header);
    flipped[9] = (flipped[9] as number) ^ 1;
    assert.match(checkSegmentHeader(flipped, 5) ?? "", /checksum/);
    assert.match(checkSegmentHeader(header.subarray(0, 10), 5) ?? "", /10 of 16/);
  });
});

describe("record encoding", () => {
  it("round-trips deltas, including odd strings and the largest safe integers", () => {
    const deltas: DurableDelta[] = [
      { promised: { round: 1, node: 1 } },
      { proposerRound: Number.MAX_SAFE_INTEGER },
      { promised: { round: 2 ** 40, node: 3 }, proposerRound: 9, accepted: [entry(1, 2, ["a", ""])] },
      {
        accepted: [
          entry(2 ** 31, 2 ** 32, [
            "héllo wörld ✓ 🎉",
            "\uD800 lone high",
            "lone low \uDC00",
            "\uDBFF\uDFFF",
          ]),
        ],
      },
      { accepted: [entry(3, 1, [])] },
      // Around the ASCII fast path's edges: a 1- or 2-byte length, and a late non-ASCII character.
      {
        accepted: [
          entry(
            4,
            1,
            [0, 1, 63, 64, 255, 256, 257, 1000].flatMap((n) => ["x".repeat(n), `${"y".repeat(n)}é`]),
          ),
        ],
      },
      { accepted: [entry(5, 1, ["\u007f\u0000", `${"z".repeat(200)}\uD800`])] },
    ];
    const buffer = new RecordBuffer(16);
    for (const delta of deltas) buffer.appendDelta(delta);
    assert.equal(buffer.records, deltas.length);
    assert.deepEqual(decodeDeltas(buffer), deltas);
  });

  it("appends nothing for an empty delta", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({});
    buffer.appendDelta({ accepted: [] });
    assert.equal(buffer.length, 0);
    assert.equal(buffer.records, 0);
  });

  it("splits a delta with many votes into bounded records, promise first, continued to the last", () => {
    const payload = "x".repeat(4000);
    const accepted = Array.from({ length: 300 }, (_, i) => entry(i + 1, 5, [payload, payload]));
    const decided = accepted.map(({ slot, value }) => ({ slot: slot + 1000, value }));
    const buffer = new RecordBuffer();
    const delta: DurableDelta = { promised: { round: 5, node: 2 }, accepted, decided };
    buffer.appendDelta(delta);
    assert.ok(buffer.records > 4, `${buffer.records} records`);
    const records = decodeAll(buffer);
    const parts = records.map((record) => (record.type === "delta" ? record.part : assert.fail("a delta")));
    assert.equal(parts[0]?.promised?.round, 5);
    assert.ok(parts.slice(1).every((part) => part.promised === undefined));
    assert.deepEqual(
      parts.map((part) => part.continued),
      parts.map((_, i) => i < parts.length - 1),
    );
    for (const [i, length] of recordLengths(buffer).entries()) {
      assert.ok(length <= RECORD_PAYLOAD_BYTES_TARGET, `record ${i} is ${length} bytes`);
    }
    assert.deepEqual(decodeDeltas(buffer), [delta]);
  });

  it("round-trips snapshots: empty, non-ASCII, surrogate pairs, lone surrogates, with a floor and the log past it", () => {
    const deltas: DurableDelta[] = [
      { snapshot: { slot: 1, sessions: [], app: "" } },
      {
        snapshot: {
          slot: 2 ** 40,
          sessions: [7, 1, 0, Number.MAX_SAFE_INTEGER],
          app: "héllo ✓ 🎉 \uD800 \uDC00",
        },
        floorSlot: 2 ** 40 + 1,
        promised: { round: 3, node: 1 },
        decided: [{ slot: 2 ** 40 + 1, value: entry(1, 0, ["next"]).value }],
      },
      { snapshot: { slot: 9, sessions: [1, 1, 5, 9], app: "{}" }, rejoining: false },
    ];
    const buffer = new RecordBuffer(16);
    for (const delta of deltas) buffer.appendDelta(delta);
    assert.equal(buffer.records, deltas.length, "small snapshots take one record each");
    assert.deepEqual(decodeDeltas(buffer), deltas);
  });

  it("splits a large snapshot into records of about the target size, cut between code points", () => {
    // ASCII (1 byte a unit), CJK (3), emoji (surrogate pairs: 4 bytes for 2 units), and a state
    // with lone surrogates, stored as UTF-16 (2 bytes a unit).
    const states = [
      "a".repeat(3 * RECORD_PAYLOAD_BYTES_TARGET + 17),
      "漢字".repeat(600_000),
      `x${"🎉".repeat(700_000)}`,
      "\uD800ab".repeat(400_000),
    ];
    const sessions = Array.from({ length: 300_000 }, (_, i) => i * 1000);
    for (const app of states) {
      const snapshot: Snapshot = { slot: 77, sessions, app };
      const delta: DurableDelta = { snapshot, floorSlot: 78, promised: { round: 2, node: 2 } };
      const buffer = new RecordBuffer();
      buffer.appendDelta(delta);
      const lengths = recordLengths(buffer);
      assert.ok(lengths.length >= 3, `${lengths.length} records`);
      for (const length of lengths) {
        assert.ok(length <= RECORD_PAYLOAD_BYTES_TARGET, `a record of ${length} bytes`);
        assert.ok(length <= RECORD_PAYLOAD_BYTES_MAX);
      }
      // Records are well filled: no more than one more than the bytes strictly need.
      const bytes = lengths.reduce((sum, length) => sum + length, 0);
      assert.ok(
        lengths.length <= Math.ceil(bytes / RECORD_PAYLOAD_BYTES_TARGET) + 1,
        `${lengths.length} records`,
      );
      const parts = decodeAll(buffer).map((record) =>
        record.type === "delta" ? record.part : assert.fail(),
      );
      assert.deepEqual(parts[0]?.snapshotHead, {
        slot: 77,
        sessionCount: sessions.length,
        appUnits: app.length,
      });
      assert.equal(parts[0]?.floorSlot, 78, "the floor travels in the first record");
      if (isWellFormedUnicode(app)) {
        for (const part of parts) assert.ok(isWellFormedUnicode(part.appPiece ?? ""), "never inside a pair");
      }
      const joined = decodeDeltas(buffer)[0] as DurableDelta;
      assert.equal(joined.snapshot?.app, app);
      assert.deepEqual(joined.snapshot?.sessions, sessions);
      assert.equal(joined.floorSlot, 78);
    }
  });

  it("round-trips a checkpoint: begin with the marks and counts, one delta, end", () => {
    const image = {
      promised: { round: 4, node: 2 },
      round: 9,
      trimmedBelowSlot: 11,
      rejoining: true,
      snapshot: { slot: 10, sessions: [3, 1, 1, 4], app: "state ✓" },
      decided: [
        { slot: 11, value: entry(11, 0, ["a"]).value },
        { slot: 13, value: entry(13, 0, ["b"]).value },
      ],
      accepted: [entry(11, 4, ["a"]), entry(12, 4, ["c"])],
    };
    const buffer = new RecordBuffer();
    buffer.appendCheckpoint(image);
    const counts = { votes: 2, decided: 2, snapshotSlot: 10 };
    assert.deepEqual(decodeDeltas(buffer), [
      {
        type: "checkpoint-begin",
        marks: { promised: image.promised, round: 9, trimmedBelowSlot: 11, rejoining: true },
        counts,
      },
      { snapshot: image.snapshot, accepted: image.accepted, decided: image.decided },
      { type: "checkpoint-end", counts },
    ]);
    const empty = new RecordBuffer();
    empty.appendCheckpoint({ ...image, rejoining: false, snapshot: null, decided: [], accepted: [] });
    assert.equal(empty.records, 2, "an empty body takes no record");
  });

  it("joins only parts that fit together", () => {
    const fails = (parts: DeltaPart[], pattern: RegExp) => {
      const assembler = new DeltaAssembler();
      for (const [i, part] of parts.entries()) {
        const joined = assembler.add(part);
        if (!joined.ok) {
          assert.match(joined.error, pattern);
          assert.ok(!assembler.open, "a failure leaves nothing half joined");
          return;
        }
        assert.ok(i < parts.length - 1, "should have failed");
      }
    };
    const head = { slot: 5, sessionCount: 2, appUnits: 3 };
    fails(
      [
        { continued: true, proposerRound: 1 },
        { continued: false, proposerRound: 2 },
      ],
      /only its first/,
    );
    fails([{ continued: true, sessions: [1] }], /without its head/);
    fails(
      [
        { continued: true, snapshotHead: head },
        { continued: false, appPiece: "abcd" },
      ],
      /3 code units/,
    );
    fails([{ continued: false, snapshotHead: head, sessions: [1, 2], appPiece: "ab" }], /2 of 3 code units/);
    fails(
      [
        { continued: true, snapshotHead: head },
        { continued: false, sessions: [1, 2, 3] },
      ],
      /2 sessions/,
    );
  });

  it("rejects a malformed delta and leaves the buffer as it was", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({ promised: { round: 1, node: 1 } });
    const before = Buffer.from(buffer.view());
    assert.throws(
      () => buffer.appendDelta({ accepted: [entry(1, 1, ["ok"]), entry(-1, 1, ["bad"])] }),
      RangeError,
    );
    assert.throws(() => buffer.appendDelta({ proposerRound: 1.5 }), RangeError);
    assert.throws(() => buffer.appendDelta({ snapshot: { slot: 0, sessions: [], app: "" } }), RangeError);
    assert.throws(
      () => buffer.appendDelta({ snapshot: { slot: 3, sessions: [1, -1], app: "x".repeat(3_000_000) } }),
      RangeError,
    );
    assert.deepEqual(buffer.view(), before);
    assert.equal(buffer.records, 1);
  });

  it("never reads zeros as records, and finds a record after damage", () => {
    const zeros = Buffer.alloc(64);
    const read = readRecordAt(zeros, 0, 1);
    assert.ok(!read.ok && read.damage === "header");
    assert.equal(findRecordFrom(zeros, 0, 1), null);
    const buffer = new RecordBuffer();
    buffer.appendDelta({ proposerRound: 3 });
    buffer.seal(1, 64);
    const joined = Buffer.concat([zeros, buffer.view()]);
    assert.deepEqual(findRecordFrom(joined, 1, 1), { at: 64, commitStart: 64 });
  });

  it("round-trips a seal, pads records to 8 bytes and names each record's group commit", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({ proposerRound: 3 });
    buffer.appendSeal(6);
    assert.equal(buffer.length % 8, 0);
    buffer.seal(5, 48);
    const bytes = Buffer.concat([Buffer.alloc(48), buffer.view()]);
    const first = readRecordAt(bytes, 48, 5);
    assert.ok(first.ok && first.commitStart === 48 && first.next % 8 === 0);
    const second = readRecordAt(bytes, first.next, 5);
    assert.ok(second.ok && second.commitStart === 48);
    assert.deepEqual(second.record, { type: "seal", next: 6 });
    assert.equal(second.next, bytes.length);
    assert.throws(() => buffer.appendSeal(7), /reset/);
    assert.throws(() => buffer.seal(5, 56), /another place/);
  });

  it("stores no all-zero aligned word, even for payloads of zeros (whitening)", () => {
    const buffer = new RecordBuffer();
    const zeros = "\0".repeat(3000);
    buffer.appendDelta({
      accepted: [entry(1, 1, [zeros, "", "", ""])],
      decided: [{ slot: 1, value: { commands: [] } }],
    });
    buffer.appendCheckpoint({
      promised: { round: 0, node: 0 },
      round: 0,
      trimmedBelowSlot: 0,
      rejoining: false,
      snapshot: { slot: 1, sessions: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], app: zeros },
      accepted: [],
      decided: [],
    });
    buffer.seal(1, 16);
    const bytes = buffer.view();
    for (let at = 0; at + 8 <= bytes.length; at += 8) {
      assert.ok(bytes.readUInt32LE(at) !== 0 || bytes.readUInt32LE(at + 4) !== 0, `zero word at ${at}`);
    }
  });

  it("tells a lost sector from rot: zeros or a cut inside the damaged record, never a flipped bit", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({ accepted: [entry(1, 1, ["x".repeat(200)])] });
    buffer.seal(1, 16);
    const record = Buffer.concat([Buffer.alloc(16), buffer.view()]);
    const intact = readRecordAt(record, 16, 1);
    assert.ok(intact.ok);
    // A flipped bit anywhere in header or payload: damage, and no sign of a lost sector.
    for (let bit = 0; bit < (record.length - 16) * 8; bit += 7) {
      const rotted = Buffer.from(record);
      rotted[16 + (bit >> 3)] = (rotted[16 + (bit >> 3)] as number) ^ (1 << (bit & 7));
      const read = readRecordAt(rotted, 16, 1);
      if (read.ok) continue; // a bit of padding: harmless
      assert.equal(showsLostSector(rotted, 16, read.damage), false, `bit ${bit}: ${read.detail}`);
    }
    // A sector of it zeroed (from an aligned word to the end), or the file cut short: lost.
    for (let from = 16; from < record.length; from += 8) {
      const torn = Buffer.from(record);
      torn.fill(0, from);
      const read = readRecordAt(torn, 16, 1);
      assert.ok(!read.ok && showsLostSector(torn, 16, read.damage), `zeroed from ${from}`);
      const cut = record.subarray(0, from);
      const cutRead = readRecordAt(cut, 16, 1);
      assert.ok(!cutRead.ok && showsLostSector(cut, 16, cutRead.damage), `cut at ${from}`);
    }
  });

  it("binds a record's checksum to its segment and offset", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({ proposerRound: 3 });
    buffer.seal(7, 104);
    const bytes = Buffer.concat([Buffer.alloc(104), buffer.view()]);
    assert.ok(readRecordAt(bytes, 104, 7).ok);
    assert.ok(readRecordAt(bytes.subarray(104), 0, 7, 104).ok);
    const elsewhere = readRecordAt(bytes, 104, 8);
    assert.ok(!elsewhere.ok && /checksum/.test(elsewhere.detail));
    const moved = Buffer.concat([Buffer.alloc(112), buffer.view()]);
    assert.ok(!readRecordAt(moved, 112, 7).ok);
    assert.equal(findRecordFrom(moved, 0, 7), null);
  });
});
