import assert from "node:assert/strict";
import { describe, it } from "node:test";
import zlib from "node:zlib";
import type { AcceptedEntry, DurableDelta } from "../core/index.js";
import { crc32 } from "./crc32.js";
import {
  checkSegmentHeader,
  encodeSegmentHeader,
  findRecordFrom,
  parseSegmentFileName,
  RECORD_PAYLOAD_BYTES_TARGET,
  RecordBuffer,
  readRecordAt,
  segmentFileName,
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
    ];
    const buffer = new RecordBuffer(16);
    for (const delta of deltas) buffer.appendDelta(delta);
    assert.equal(buffer.records, deltas.length);
    const records = decodeAll(buffer);
    assert.deepEqual(
      records.map((record) => (record.type === "delta" ? record.delta : record)),
      deltas,
    );
  });

  it("appends nothing for an empty delta", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({});
    buffer.appendDelta({ accepted: [] });
    assert.equal(buffer.length, 0);
    assert.equal(buffer.records, 0);
  });

  it("splits a delta with many votes into bounded records, promise first", () => {
    const payload = "x".repeat(4000);
    const accepted = Array.from({ length: 300 }, (_, i) => entry(i + 1, 5, [payload, payload]));
    const buffer = new RecordBuffer();
    buffer.appendDelta({ promised: { round: 5, node: 2 }, accepted });
    assert.ok(buffer.records > 1, `${buffer.records} records`);
    const records = decodeAll(buffer);
    const first = records[0];
    assert.ok(first?.type === "delta" && first.delta.promised?.round === 5);
    const rejoined = records.flatMap((record) =>
      record.type === "delta" ? (record.delta.accepted ?? []) : [],
    );
    assert.deepEqual(rejoined, accepted);
    let at = 0;
    for (let i = 0; i < records.length; i++) {
      const length = buffer.view().readUInt32LE(at);
      assert.ok(length <= RECORD_PAYLOAD_BYTES_TARGET, `record ${i} is ${length} bytes`);
      at += 8 + length;
    }
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
    assert.deepEqual(buffer.view(), before);
    assert.equal(buffer.records, 1);
  });

  it("never reads zeros as records, and finds a record after damage", () => {
    const zeros = Buffer.alloc(64);
    const read = readRecordAt(zeros, 0, 1);
    assert.ok(!read.ok && read.damage === "frame");
    assert.equal(findRecordFrom(zeros, 0, 1), -1);
    const buffer = new RecordBuffer();
    buffer.appendDelta({ proposerRound: 3 });
    buffer.seal(1, 64);
    const joined = Buffer.concat([zeros, buffer.view()]);
    assert.equal(findRecordFrom(joined, 1, 1), 64);
  });

  it("binds a record's checksum to its segment and offset", () => {
    const buffer = new RecordBuffer();
    buffer.appendDelta({ proposerRound: 3 });
    buffer.seal(7, 100);
    const bytes = Buffer.concat([Buffer.alloc(100), buffer.view()]);
    assert.ok(readRecordAt(bytes, 100, 7).ok);
    assert.ok(readRecordAt(bytes.subarray(100), 0, 7, 100).ok);
    const elsewhere = readRecordAt(bytes, 100, 8);
    assert.ok(!elsewhere.ok && /checksum/.test(elsewhere.detail));
    const moved = Buffer.concat([Buffer.alloc(101), buffer.view()]);
    assert.ok(!readRecordAt(moved, 101, 7).ok);
    assert.equal(findRecordFrom(moved, 0, 7), -1);
  });
});
