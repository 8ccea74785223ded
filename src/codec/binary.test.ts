import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { InvariantViolation, type Message } from "../core/index.js";
import { messageArbitrary, SAMPLE_MESSAGES, typicalAccept } from "./arbitraries.js";
import { decodeBinary, encodeBinary } from "./binary.js";
import { encodeJson } from "./json.js";
import {
  CHECKSUM_MAX,
  COMMANDS_PER_MESSAGE_MAX,
  DATAGRAM_BYTES_MAX,
  ENTRIES_PER_MESSAGE_MAX,
  FRAME_BYTES_MAX,
  PAYLOAD_BYTES_MAX,
  SEQS_PER_MESSAGE_MAX,
  SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_CHUNK_UNITS_MAX,
  SNAPSHOT_UNITS_MAX,
} from "./validate.js";

const utf8 = new TextEncoder();
const M = 0xa1; // magic and version
const TAG = {
  request: 1,
  ack: 2,
  prepare: 3,
  promise: 4,
  accept: 5,
  decide: 8,
  heartbeat: 9,
  catchup: 10,
  snapshotRequest: 11,
  snapshotChunk: 12,
  rejoinQuery: 13,
  rejoinReport: 14,
  refuse: 15,
};

function frame(...bytes: number[]): Uint8Array {
  return new Uint8Array(bytes);
}

/** The error a frame decodes to; fails the test if it decodes. */
function errorOf(bytes: Uint8Array): string {
  const result = decodeBinary(bytes);
  assert.equal(result.ok, false, `expected an error for [${bytes.join(",")}]`);
  return result.ok ? "" : result.error;
}

/** The LEB128 bytes of `value`. */
function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

test("the layout matches the documented examples", () => {
  const prepare: Message = { type: "prepare", from: 2, ballot: { round: 300, node: 2 }, firstSlot: 1 };
  assert.deepStrictEqual(encodeBinary(prepare), frame(M, 3, 0x02, 0xac, 0x02, 0x02, 0x01));
  const heartbeat: Message = {
    type: "heartbeat",
    from: 1,
    ballot: { round: 4, node: 1 },
    decidedThrough: 17,
    proposedThrough: 0,
  };
  assert.deepStrictEqual(encodeBinary(heartbeat), frame(M, 9, 1, 4, 1, 17, 0));
  const promise: Message = {
    type: "promise",
    from: 1,
    ballot: { round: 1, node: 1 },
    firstSlot: 1,
    accepted: [
      { slot: 1, ballot: { round: 1, node: 1 }, value: { commands: [{ client: 2, seq: 3, payload: "é" }] } },
    ],
    nextSlot: null,
    floorSlot: 0,
  };
  assert.deepStrictEqual(
    encodeBinary(promise),
    frame(M, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 2, 0xc3, 0xa9, 0, 0),
  );
});

test("numbers up to 2^53 - 1 are carried exactly, in 1 to 8 bytes", () => {
  const cases: [number, number][] = [
    [0, 1],
    [127, 1],
    [128, 2],
    [2 ** 31 - 1, 5],
    [2 ** 31, 5],
    [2 ** 32, 5],
    [2 ** 35, 6],
    [2 ** 49 - 1, 7],
    [2 ** 49, 8],
    [Number.MAX_SAFE_INTEGER, 8],
  ];
  for (const [value, bytes] of cases) {
    const message: Message = {
      type: "heartbeat",
      from: 0,
      ballot: { round: value, node: 0 },
      decidedThrough: 0,
      proposedThrough: 0,
    };
    const encoded = encodeBinary(message);
    assert.equal(encoded.length, 7 - 1 + bytes, `${value} takes ${bytes} bytes`);
    assert.deepStrictEqual(decodeBinary(encoded), { ok: true, value: message });
  }
  assert.deepStrictEqual(
    [
      ...encodeBinary({ type: "prepare", from: 0, ballot: { round: 0, node: 0 }, firstSlot: 2 ** 53 - 1 }),
    ].slice(5),
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f],
  );
});

test("a number over 2^53 - 1, longer than 8 bytes, or not minimally encoded is refused", () => {
  const prepare = (...firstSlot: number[]) => frame(M, TAG.prepare, 1, 1, 1, ...firstSlot);
  assert.match(
    errorOf(prepare(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x10)),
    /firstSlot exceeds 2\^53 - 1/,
  );
  assert.match(
    errorOf(prepare(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)),
    /firstSlot exceeds 2\^53 - 1/,
  );
  assert.match(errorOf(prepare(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), /longer than 8 bytes/);
  assert.match(errorOf(prepare(0x81, 0x00)), /firstSlot is not minimally encoded/);
  assert.match(errorOf(prepare(0x80, 0x80, 0x00)), /not minimally encoded/);
  assert.match(errorOf(prepare(0x80)), /prepare: frame truncated at byte 6 while reading firstSlot/);
});

test("frames are checked for magic, version, tag and trailing bytes", () => {
  const heartbeat = [9, 1, 4, 1, 17, 0];
  assert.match(errorOf(frame(0x7b, ...heartbeat)), /bad magic byte 0x7b/);
  assert.match(errorOf(frame(0xa2, ...heartbeat)), /unsupported version 2/);
  assert.match(errorOf(frame(M, 0, 1)), /unknown message tag 0/);
  assert.match(errorOf(frame(M, 16, 1)), /unknown message tag 16/);
  assert.match(errorOf(frame(M, ...heartbeat, 0)), /heartbeat: 1 trailing bytes after the message/);
  assert.match(errorOf(frame()), /truncated/);
  assert.match(errorOf(frame(M)), /truncated/);
});

test("enum bytes and markers outside their range are refused", () => {
  assert.match(errorOf(frame(M, TAG.catchup, 1, 4, 1, 2)), /catchup: unknown role code 4/);
  assert.match(errorOf(frame(M, TAG.snapshotRequest, 1, 4, 1, 0)), /snapshot-request: unknown role code 4/);
  assert.match(errorOf(frame(M, TAG.snapshotRequest, 1, 0xff, 1, 0)), /unknown role code 255/);
  assert.match(errorOf(frame(M, TAG.refuse, 1, 7, 4, 1, 5)), /refuse: unknown refusal reason code 4/);
  assert.deepStrictEqual(decodeBinary(frame(M, TAG.refuse, 1, 7, 3, 1, 5)), {
    ok: true,
    value: { type: "refuse", from: 1, client: 7, reason: "client-pending-full", seqs: [5] },
  });
  assert.deepStrictEqual(decodeBinary(frame(M, TAG.refuse, 1, 7, 1, 1, 5)), {
    ok: true,
    value: { type: "refuse", from: 1, client: 7, reason: "client-gaps", seqs: [5] },
  });
  assert.match(errorOf(frame(M, TAG.promise, 1, 1, 1, 1, 0, 2, 5)), /nextSlot marker must be 0 or 1, got 2/);
  // from 3, nonce 7, voting 2 (only 0 or 1), then the rest of a report.
  assert.match(
    errorOf(frame(M, TAG.rejoinReport, 3, 7, 2, 1, 1, 0, 0, 0, 0, 0)),
    /rejoin-report: voting must be 0 or 1, got 2/,
  );
});

test("rejoin-query and rejoin-report have the byte layout the format comment gives", () => {
  assert.deepStrictEqual(decodeBinary(frame(M, TAG.rejoinQuery, 2, 0xac, 0x02, 5, 3)), {
    ok: true,
    value: { type: "rejoin-query", from: 2, nonce: 300, promised: { round: 5, node: 3 } },
  });
  assert.deepStrictEqual(decodeBinary(frame(M, TAG.rejoinReport, 3, 7, 1, 4, 1, 9, 8, 4, 1, 10)), {
    ok: true,
    value: {
      type: "rejoin-report",
      from: 3,
      nonce: 7,
      voting: true,
      promised: { round: 4, node: 1 },
      votedThrough: 9,
      decidedThrough: 8,
      leaderBallot: { round: 4, node: 1 },
      proposedThrough: 10,
    },
  });
});

test("payloads must be valid UTF-8", () => {
  const request = (...payload: number[]) => frame(M, TAG.request, 1, 1, 1, 1, payload.length, ...payload);
  assert.deepStrictEqual(decodeBinary(request(0xe2, 0x82, 0xac)), {
    ok: true,
    value: { type: "request", from: 1, commands: [{ client: 1, seq: 1, payload: "€" }] },
  });
  for (const bad of [[0xff], [0xc0, 0xaf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]]) {
    assert.match(errorOf(request(...bad)), /not valid UTF-8/, `bytes ${bad.join(",")}`);
  }
});

test("counts and lengths over their limits are refused before anything is allocated", () => {
  assert.match(
    errorOf(frame(M, TAG.request, 1, ...varint(COMMANDS_PER_MESSAGE_MAX + 1))),
    /request: 4097 commands exceeds the limit of 4096/,
  );
  assert.match(
    errorOf(frame(M, TAG.ack, 1, 1, ...varint(SEQS_PER_MESSAGE_MAX + 1))),
    /ack: 65537 sequence numbers exceeds the limit of 65536/,
  );
  assert.match(
    errorOf(frame(M, TAG.promise, 1, 1, 1, 1, ...varint(ENTRIES_PER_MESSAGE_MAX + 1))),
    /promise: 4097 entries exceeds the limit of 4096/,
  );
  assert.match(
    errorOf(frame(M, TAG.decide, 1, ...varint(ENTRIES_PER_MESSAGE_MAX + 1))),
    /decide: 4097 entries exceeds the limit of 4096/,
  );
  assert.match(
    errorOf(frame(M, TAG.accept, 1, 1, 1, 1, 1, 1, 1, ...varint(PAYLOAD_BYTES_MAX + 1))),
    /accept: payload of 8193 UTF-8 bytes exceeds the limit of 8192/,
  );
  // Within the limit, but more items than the bytes left could hold.
  assert.match(errorOf(frame(M, TAG.request, 1, ...varint(4000), 1, 1, 0)), /request: frame truncated/);
  assert.match(errorOf(frame(M, TAG.ack, 1, 1, ...varint(60_000), 1)), /ack: frame truncated/);
});

test("messages at every limit round trip", () => {
  const payload = `${"€".repeat((PAYLOAD_BYTES_MAX - 2) / 3)}ab`; // exactly PAYLOAD_BYTES_MAX UTF-8 bytes
  const messages: Message[] = [
    { type: "request", from: 1, commands: [{ client: 1, seq: 1, payload }] },
    {
      type: "request",
      from: 1,
      commands: Array.from({ length: COMMANDS_PER_MESSAGE_MAX }, (_, i) => ({
        client: 1,
        seq: i,
        payload: "",
      })),
    },
    { type: "ack", from: 1, client: 2, seqs: Array.from({ length: SEQS_PER_MESSAGE_MAX }, (_, i) => i) },
    {
      type: "decide",
      from: 1,
      entries: Array.from({ length: ENTRIES_PER_MESSAGE_MAX }, (_, i) => ({
        slot: i,
        value: { commands: [] },
      })),
    },
  ];
  for (const message of messages)
    assert.deepStrictEqual(decodeBinary(encodeBinary(message)), { ok: true, value: message });
});

test("payloads of every length near the varint and fast-path boundaries round trip", () => {
  for (const unit of ["x", "é", "€", "😀"]) {
    for (let length = 0; length <= 300; length++) {
      const payload = unit.repeat(length);
      const message: Message = { type: "request", from: 1, commands: [{ client: 1, seq: 1, payload }] };
      const bytes = encodeBinary(message);
      assert.deepStrictEqual(decodeBinary(bytes), { ok: true, value: message }, `${length} × ${unit}`);
      const utf8Bytes = utf8.encode(payload).length;
      // magic, tag, from, count, client, seq, then the length-prefixed payload
      assert.equal(bytes.length, 6 + varint(utf8Bytes).length + utf8Bytes);
    }
  }
});

test("a frame of exactly FRAME_BYTES_MAX bytes encodes and decodes; one byte more is refused", () => {
  const big = { client: 1, seq: 1, payload: "x".repeat(PAYLOAD_BYTES_MAX) }; // 1 + 1 + 2 + 8192 bytes
  const header = 2 + 1 + 2; // magic, tag, from, a count of 128
  const fill = FRAME_BYTES_MAX - header - 127 * (4 + PAYLOAD_BYTES_MAX) - 4; // the last command's payload
  const request = (fillBytes: number): Message => ({
    type: "request",
    from: 1,
    commands: [
      ...Array.from({ length: 127 }, () => big),
      { client: 1, seq: 1, payload: "y".repeat(fillBytes) },
    ],
  });
  const bytes = encodeBinary(request(fill));
  assert.equal(bytes.length, FRAME_BYTES_MAX);
  assert.deepStrictEqual(decodeBinary(bytes), { ok: true, value: request(fill) });
  assert.throws(() => encodeBinary(request(fill + 1)), /the frame exceeds 1048576 bytes/);
});

test("the encoder refuses, loudly, a message no decoder would accept", () => {
  const heartbeat = (decidedThrough: number): Message => ({
    type: "heartbeat",
    from: 1,
    ballot: { round: 1, node: 1 },
    decidedThrough,
    proposedThrough: 0,
  });
  const request = (payload: string, count = 1): Message => ({
    type: "request",
    from: 1,
    commands: Array.from({ length: count }, () => ({ client: 1, seq: 1, payload })),
  });
  const bad: [string, Message][] = [
    ["negative", heartbeat(-1)],
    ["fraction", heartbeat(1.5)],
    ["NaN", heartbeat(Number.NaN)],
    ["infinity", heartbeat(Number.POSITIVE_INFINITY)],
    ["2^53", heartbeat(2 ** 53)],
    ["payload over the limit", request(`${"€".repeat(2730)}abc`)],
    ["ASCII payload over the limit", request("x".repeat(PAYLOAD_BYTES_MAX + 1))],
    ["lone surrogate", request("a\ud800b")],
    ["payload not a string", request(42 as unknown as string)],
    ["too many commands", request("", COMMANDS_PER_MESSAGE_MAX + 1)],
    [
      "unknown role",
      { type: "catchup", from: 1, role: "oracle", fromSlot: 1, toSlot: 2 } as unknown as Message,
    ],
    ["unknown type", { type: "gossip", from: 1 } as unknown as Message],
    ["frame over 1 MiB", request("x".repeat(8000), 200)],
  ];
  for (const [why, message] of bad) assert.throws(() => encodeBinary(message), InvariantViolation, why);
  // The writer recovers: the next message encodes normally.
  assert.deepStrictEqual(decodeBinary(encodeBinary(heartbeat(3))), { ok: true, value: heartbeat(3) });
});

test("a frame inside a larger buffer, at an offset, decodes the same", () => {
  for (const message of SAMPLE_MESSAGES) {
    const bytes = encodeBinary(message);
    const backing = new Uint8Array(bytes.length + 10);
    backing.set(bytes, 7);
    assert.deepStrictEqual(decodeBinary(backing.subarray(7, 7 + bytes.length)), { ok: true, value: message });
    assert.deepStrictEqual(decodeBinary(Buffer.from(backing.buffer, 7, bytes.length)), {
      ok: true,
      value: message,
    });
  }
});

test("a corrupted frame never throws, and if it decodes it is canonical", () => {
  // Every message has exactly one encoding, so anything accepted must re-encode to the same bytes.
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), byte: fc.constant(0) }),
  );
  fc.assert(
    fc.property(
      messageArbitrary,
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      (message, mutations) => {
        const bytes = [...encodeBinary(message)];
        for (const { kind, at, byte } of mutations) {
          const index = at % (bytes.length + 1);
          if (kind === "set") bytes[Math.min(index, bytes.length - 1)] = byte;
          else if (kind === "insert") bytes.splice(index, 0, byte);
          else bytes.splice(index, 1);
        }
        const corrupted = new Uint8Array(bytes);
        const result = decodeBinary(corrupted);
        if (result.ok) assert.deepStrictEqual(encodeBinary(result.value), corrupted);
      },
    ),
    { numRuns: 1000 },
  );
});

test("random bytes behind a valid header never throw", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), fc.uint8Array({ maxLength: 40 }), (tag, body) => {
      decodeBinary(new Uint8Array([M, tag, ...body]));
    }),
    { numRuns: 1000 },
  );
});

test("a typical accept of 100 commands is well under half the size of its JSON", () => {
  const accept = typicalAccept(100);
  const binary = encodeBinary(accept).length;
  const json = encodeJson(accept).length;
  assert.ok(binary * 2 < json, `binary ${binary} bytes, JSON ${json} bytes`);
});

test("the snapshot messages have the documented layout", () => {
  const request: Message = { type: "snapshot-request", from: 4, role: "learner", slot: 300, offset: 16_384 };
  assert.deepStrictEqual(encodeBinary(request), frame(M, 11, 4, 2, 0xac, 0x02, 0x80, 0x80, 0x01));
  const chunk: Message = {
    type: "snapshot-chunk",
    from: 2,
    slot: 7,
    length: 300,
    checksum: 0xdeadbeef,
    offset: 296,
    data: "a€",
  };
  assert.deepStrictEqual(
    encodeBinary(chunk),
    frame(M, 12, 2, 7, 0xac, 0x02, ...varint(0xdeadbeef), 0xa8, 0x02, 4, 0x61, 0xe2, 0x82, 0xac),
  );
  assert.deepStrictEqual(varint(0xdeadbeef), [0xef, 0xfd, 0xb6, 0xf5, 0x0d]);
  for (const message of [request, chunk]) {
    assert.deepStrictEqual(decodeBinary(encodeBinary(message)), { ok: true, value: message });
  }
});

test("a full chunk of 3-byte characters round trips and fits one UDP datagram", () => {
  const chunk = (data: string, offset: number, length: number): Message => ({
    type: "snapshot-chunk",
    from: Number.MAX_SAFE_INTEGER,
    slot: Number.MAX_SAFE_INTEGER,
    length,
    checksum: CHECKSUM_MAX,
    offset,
    data,
  });
  const threeByte = "€".repeat(SNAPSHOT_CHUNK_UNITS_MAX); // 48 KiB of UTF-8
  const fourByte = "😀".repeat(SNAPSHOT_CHUNK_UNITS_MAX / 2); // 32 KiB: 4 bytes for 2 units
  const last = SNAPSHOT_UNITS_MAX - SNAPSHOT_CHUNK_UNITS_MAX;
  for (const message of [
    chunk(threeByte, last, SNAPSHOT_UNITS_MAX), // every field at its widest
    chunk(threeByte, 0, SNAPSHOT_CHUNK_UNITS_MAX),
    chunk(fourByte, last, SNAPSHOT_UNITS_MAX),
  ]) {
    const bytes = encodeBinary(message);
    assert.ok(bytes.length <= DATAGRAM_BYTES_MAX, `${bytes.length} bytes exceeds ${DATAGRAM_BYTES_MAX}`);
    assert.deepStrictEqual(decodeBinary(bytes), { ok: true, value: message });
  }
  const widest = encodeBinary(chunk(threeByte, last, SNAPSHOT_UNITS_MAX)).length;
  // Varints of 7 bits a byte: from and slot 8 bytes, length and offset as wide as SNAPSHOT_UNITS_MAX
  // needs, checksum (32 bits) 5, the data's byte length 3.
  const uintBytes = (n: number) => Math.max(1, Math.ceil(Math.log2(n + 1) / 7));
  const lengthBytes = uintBytes(SNAPSHOT_UNITS_MAX);
  assert.equal(widest, 2 + 8 + 8 + lengthBytes + 5 + lengthBytes + 3 + SNAPSHOT_CHUNK_BYTES_MAX);
});

test("snapshot chunks that break their limits or their own range are refused", () => {
  // from 1, slot 1, length, checksum 0, offset, then data
  const chunk = (length: number, offset: number, ...data: number[]) =>
    frame(
      M,
      TAG.snapshotChunk,
      1,
      1,
      ...varint(length),
      0,
      ...varint(offset),
      ...varint(data.length),
      ...data,
    );
  assert.deepStrictEqual(decodeBinary(chunk(5, 2, 0x61, 0x62, 0x63)), {
    ok: true,
    value: { type: "snapshot-chunk", from: 1, slot: 1, length: 5, checksum: 0, offset: 2, data: "abc" },
  });
  assert.equal(
    errorOf(chunk(5, 3, 0x61, 0x62, 0x63)),
    "snapshot-chunk.offset: 3 + 3 characters of data runs past the snapshot length 5",
  );
  assert.equal(
    errorOf(chunk(2, Number.MAX_SAFE_INTEGER, 0x61)),
    "snapshot-chunk.offset: 9007199254740991 + 1 characters of data runs past the snapshot length 2",
  );
  assert.equal(
    errorOf(chunk(SNAPSHOT_UNITS_MAX + 1, 0)),
    `snapshot-chunk.length: ${SNAPSHOT_UNITS_MAX + 1} characters exceeds the limit of ${SNAPSHOT_UNITS_MAX}`,
  );
  assert.match(
    errorOf(frame(M, TAG.snapshotChunk, 1, 1, 5, ...varint(2 ** 32), 0, 0)),
    /snapshot-chunk.checksum: expected a 32-bit unsigned integer, got 4294967296/,
  );
  // A lone surrogate has no UTF-8 form: its 3-byte "encoding" is not valid UTF-8.
  assert.equal(
    errorOf(chunk(5, 0, 0x61, 0xed, 0xa0, 0x80)),
    "snapshot-chunk: data at byte 8 is not valid UTF-8",
  );
  // Too many bytes is refused before reading them; few enough bytes but too many units by the validator.
  assert.equal(
    errorOf(frame(M, TAG.snapshotChunk, 1, 1, 5, 0, 0, ...varint(SNAPSHOT_CHUNK_BYTES_MAX + 1))),
    `snapshot-chunk: data of ${SNAPSHOT_CHUNK_BYTES_MAX + 1} UTF-8 bytes exceeds the limit of ${SNAPSHOT_CHUNK_BYTES_MAX}`,
  );
  const units = SNAPSHOT_CHUNK_UNITS_MAX + 1;
  assert.equal(
    errorOf(chunk(units, 0, ...new Array<number>(units).fill(0x78))),
    `snapshot-chunk.data: ${units} characters exceeds the limit of ${SNAPSHOT_CHUNK_UNITS_MAX}`,
  );
  assert.match(errorOf(chunk(5, 0, 0x61).subarray(0, 8)), /snapshot-chunk: frame truncated/);
});

test("the encoder refuses, loudly, a snapshot message no decoder would accept", () => {
  const chunk = (fields: Partial<Record<string, unknown>>): Message =>
    ({
      type: "snapshot-chunk",
      from: 1,
      slot: 4,
      length: 10,
      checksum: 7,
      offset: 0,
      data: "abc",
      ...fields,
    }) as unknown as Message;
  const bad: [string, Message][] = [
    ["lone surrogate", chunk({ data: "a\udc00" })],
    ["lone surrogate at the end", chunk({ data: "a\ud83d" })],
    ["data not a string", chunk({ data: 5 })],
    ["data over the unit limit", chunk({ length: 20_000, data: "x".repeat(SNAPSHOT_CHUNK_UNITS_MAX + 1) })],
    ["past its length", chunk({ offset: 8 })],
    ["length over the limit", chunk({ length: SNAPSHOT_UNITS_MAX + 1 })],
    ["checksum over 32 bits", chunk({ checksum: 2 ** 32 })],
    ["negative checksum", chunk({ checksum: -1 })],
    [
      "unknown role",
      { type: "snapshot-request", from: 1, role: "oracle", slot: 1, offset: 0 } as unknown as Message,
    ],
  ];
  for (const [why, message] of bad) assert.throws(() => encodeBinary(message), InvariantViolation, why);
  assert.deepStrictEqual(decodeBinary(encodeBinary(chunk({}))), { ok: true, value: chunk({}) });
});
