import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { messageArbitrary } from "../codec/arbitraries.js";
import { binaryCodec, type Codec, jsonCodec, validateMessage } from "../codec/index.js";
import {
  COMMANDS_PER_MESSAGE_MAX,
  ENTRIES_PER_MESSAGE_MAX,
  PAYLOAD_BYTES_MAX,
  SEQS_PER_MESSAGE_MAX,
  SNAPSHOT_CHUNK_UNITS_MAX,
  SNAPSHOT_UNITS_MAX,
} from "../codec/validate.js";
import type { Message, Result } from "../core/index.js";
import { fuzzParameters } from "../test-support/index.js";

// Fuzzing the decoders (docs/security.md, "Evidence: fuzzing"): random bytes, mutated valid frames,
// and semantically crafted frames (valid encodings with extreme or inconsistent fields) go into
// both codecs. Whatever comes in, the decoder returns, never throws, and what it returns is either
// an error (a string) or a message that passes validation and encodes back to the same message.

const BINARY_MAGIC_VERSION = 0xa1;
const BINARY_TAGS = 16;

/** Decodes `bytes` and checks the contract; returns the result for further checks. */
function decodeChecked(codec: Codec, bytes: Uint8Array): Result<Message, string> {
  let result: Result<Message, string>;
  try {
    result = codec.decode(bytes);
  } catch (error) {
    assert.fail(
      `${codec.name} decode threw ${(error as Error).stack} on [${[...bytes.subarray(0, 64)].join(",")}]`,
    );
  }
  if (!result.ok) {
    assert.equal(typeof result.error, "string");
    return result;
  }
  const valid = validateMessage(result.value);
  assert.ok(valid.ok, `${codec.name} decoded a message validation refuses: ${valid.ok ? "" : valid.error}`);
  // Every decoded message is one the codecs carry: it encodes (both ways) and comes back equal.
  for (const other of [binaryCodec, jsonCodec]) {
    const again = other.decode(other.encode(result.value));
    assert.ok(again.ok, `${other.name} cannot carry what ${codec.name} decoded`);
    assert.deepStrictEqual(again.value, result.value);
  }
  return result;
}

/** LEB128 bytes of a non-negative integer up to 2^64 (past 2^53 too: a decoder must refuse those). */
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

/** Numbers at the edges of what a field may hold, and just past them. */
const EDGE_NUMBERS: readonly bigint[] = [
  0n,
  1n,
  127n,
  128n,
  16_383n,
  16_384n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  BigInt(PAYLOAD_BYTES_MAX),
  BigInt(PAYLOAD_BYTES_MAX + 1),
  BigInt(COMMANDS_PER_MESSAGE_MAX),
  BigInt(COMMANDS_PER_MESSAGE_MAX + 1),
  BigInt(SEQS_PER_MESSAGE_MAX),
  BigInt(SEQS_PER_MESSAGE_MAX + 1),
  BigInt(SNAPSHOT_CHUNK_UNITS_MAX),
  BigInt(SNAPSHOT_CHUNK_UNITS_MAX + 1),
  BigInt(SNAPSHOT_UNITS_MAX),
  BigInt(SNAPSHOT_UNITS_MAX + 1),
  2n ** 53n - 2n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 56n - 1n,
  2n ** 63n,
];

/**
 * A binary frame built from tokens the format is made of: varints (mostly edge numbers), single
 * bytes (enum codes, markers), and strings (a length, then bytes that may fall short of it). It
 * reaches deep into each message's decoder, unlike random bytes, which mostly fail at the tag.
 */
const binaryTokenArbitrary: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...EDGE_NUMBERS).map(varint) },
  { weight: 3, arbitrary: fc.nat({ max: 300 }).map((n) => varint(BigInt(n))) },
  { weight: 2, arbitrary: fc.nat({ max: 255 }).map((byte) => [byte]) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.nat({ max: 40 }), fc.uint8Array({ maxLength: 40 }))
      .map(([length, bytes]) => [...varint(BigInt(length)), ...bytes]),
  },
);

const craftedBinaryArbitrary: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.nat({ max: BINARY_TAGS }), fc.array(binaryTokenArbitrary, { maxLength: 14 }))
  .map(([tag, tokens]) => new Uint8Array([BINARY_MAGIC_VERSION, tag, ...tokens.flat()]));

/** A mutation of a frame: flip a bit, overwrite, insert, delete, truncate, or duplicate a slice. */
type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number }
  | { kind: "duplicate"; at: number; count: number };

const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    byte: fc.oneof(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xff), fc.nat({ max: 255 })),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("duplicate" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 16 }),
  }),
);

function mutate(frame: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = frame.slice();
  const join = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  };
  for (const m of mutations) {
    const at = m.at % (bytes.length + 1);
    switch (m.kind) {
      case "flip":
        if (at < bytes.length) bytes[at] = (bytes[at] as number) ^ (1 << m.bit);
        break;
      case "set":
        if (at < bytes.length) bytes[at] = m.byte;
        break;
      case "insert":
        bytes = join(bytes.subarray(0, at), m.bytes, bytes.subarray(at));
        break;
      case "delete":
        bytes = join(bytes.subarray(0, at), bytes.subarray(at + m.count));
        break;
      case "truncate":
        bytes = bytes.slice(0, at);
        break;
      case "duplicate":
        bytes = join(bytes.subarray(0, at), bytes.subarray(at, at + m.count), bytes.subarray(at));
        break;
    }
  }
  return bytes;
}

/**
 * JSON values a field should never hold, or holds only at its edge: numbers past 2^53, negative,
 * fractional, non-numbers, wrong types, and long or odd strings.
 */
const oddJsonValueArbitrary: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    2 ** 53 - 1,
    2 ** 53,
    2 ** 53 + 2,
    1e308,
    -1,
    -0,
    0.5,
    Number.MAX_SAFE_INTEGER - 1,
    "1",
    "",
    true,
    null,
    [],
    {},
    { round: 2 ** 53, node: 1 },
    [{ client: 1, seq: 1, payload: "x" }],
    "x".repeat(PAYLOAD_BYTES_MAX),
    "x".repeat(PAYLOAD_BYTES_MAX + 1),
    "\ud800",
    "__proto__",
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 8 }),
);

/** A valid message with one field (at any depth) replaced, deleted, or an extra key added. */
const corruptedObjectArbitrary: fc.Arbitrary<unknown> = fc
  .tuple(messageArbitrary, fc.nat(), fc.constantFrom("replace", "delete", "extra"), oddJsonValueArbitrary)
  .map(([message, pick, how, odd]) => {
    const copy = JSON.parse(JSON.stringify(message)) as Record<string, unknown>;
    const holders: [Record<string, unknown>, string][] = [];
    const walk = (node: unknown) => {
      if (node === null || typeof node !== "object") return;
      for (const key of Object.keys(node)) {
        holders.push([node as Record<string, unknown>, key]);
        walk((node as Record<string, unknown>)[key]);
      }
    };
    walk(copy);
    const [holder, key] = holders[pick % holders.length] as [Record<string, unknown>, string];
    if (how === "replace") holder[key] = odd;
    else if (how === "delete") delete holder[key];
    else holder[`extra${pick % 3}`] = odd;
    return copy;
  });

/** Messages with lists and strings at and one past their bounds, built once (they are large). */
function boundMessages(): unknown[] {
  const command = (seq: number, payload = "x") => ({ client: 1, seq, payload });
  const commands = (count: number) => Array.from({ length: count }, (_, i) => command(i + 1));
  const seqs = (count: number) => Array.from({ length: count }, (_, i) => i + 1);
  const entries = (count: number) =>
    Array.from({ length: count }, (_, i) => ({ slot: i + 1, value: { commands: [] } }));
  const chunk = (units: number, length: number, offset = 0) => ({
    type: "snapshot-chunk",
    from: 1,
    slot: 3,
    length,
    checksum: 0,
    offset,
    data: "x".repeat(units),
  });
  return [
    { type: "request", from: 1, commands: [] },
    { type: "request", from: 1, commands: commands(COMMANDS_PER_MESSAGE_MAX) },
    { type: "request", from: 1, commands: commands(COMMANDS_PER_MESSAGE_MAX + 1) },
    { type: "request", from: 1, commands: [command(1, "x".repeat(PAYLOAD_BYTES_MAX))] },
    { type: "request", from: 1, commands: [command(1, "x".repeat(PAYLOAD_BYTES_MAX + 1))] },
    { type: "request", from: 1, commands: [command(1, "€".repeat(PAYLOAD_BYTES_MAX / 3 + 1))] },
    { type: "ack", from: 1, client: 2, seqs: [] },
    { type: "ack", from: 1, client: 2, seqs: seqs(SEQS_PER_MESSAGE_MAX) },
    { type: "ack", from: 1, client: 2, seqs: seqs(SEQS_PER_MESSAGE_MAX + 1) },
    { type: "decide", from: 1, entries: entries(ENTRIES_PER_MESSAGE_MAX) },
    { type: "decide", from: 1, entries: entries(ENTRIES_PER_MESSAGE_MAX + 1) },
    chunk(SNAPSHOT_CHUNK_UNITS_MAX, SNAPSHOT_CHUNK_UNITS_MAX),
    chunk(SNAPSHOT_CHUNK_UNITS_MAX + 1, SNAPSHOT_CHUNK_UNITS_MAX + 1),
    chunk(10, SNAPSHOT_UNITS_MAX + 1),
    chunk(10, 5),
    chunk(10, 20, 2 ** 53 - 1),
    {
      type: "heartbeat",
      from: 1,
      ballot: { round: 2 ** 53 - 1, node: 2 ** 53 - 1 },
      decidedThrough: 2 ** 53 - 1,
      proposedThrough: 2 ** 53 - 1,
    },
    { type: "accept", from: 1, ballot: { round: 2 ** 53, node: 1 }, slot: 1, value: { commands: [] } },
    { type: "catchup", from: 1, role: "learner", fromSlot: 2 ** 53 - 1, toSlot: 0 },
  ];
}

const utf8 = new TextEncoder();

describe("fuzz: the decoders never throw, and decode only valid messages", () => {
  test("binary: random bytes", (t) => {
    const parameters = fuzzParameters(25_000);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        decodeChecked(binaryCodec, bytes);
      }),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs`);
  });

  test("binary: random bytes behind a valid magic byte and tag", (t) => {
    const parameters = fuzzParameters(25_000);
    fc.assert(
      fc.property(fc.nat({ max: BINARY_TAGS }), fc.uint8Array({ maxLength: 200 }), (tag, rest) => {
        decodeChecked(binaryCodec, new Uint8Array([BINARY_MAGIC_VERSION, tag, ...rest]));
      }),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs`);
  });

  test("binary: crafted frames of varints at and past their bounds (2^53, counts, lengths)", (t) => {
    const parameters = fuzzParameters(40_000);
    let decoded = 0;
    fc.assert(
      fc.property(craftedBinaryArbitrary, (bytes) => {
        if (decodeChecked(binaryCodec, bytes).ok) decoded++;
      }),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs, ${decoded} decoded to a valid message`);
  });

  test("binary: valid frames of extreme messages, mutated", (t) => {
    const parameters = fuzzParameters(40_000);
    let decoded = 0;
    fc.assert(
      fc.property(messageArbitrary, fc.array(mutationArbitrary, { maxLength: 4 }), (message, mutations) => {
        const frame = binaryCodec.encode(message);
        // Unmutated, an extreme message comes back exactly.
        if (mutations.length === 0)
          assert.deepStrictEqual(decodeChecked(binaryCodec, frame), { ok: true, value: message });
        else if (decodeChecked(binaryCodec, mutate(frame, mutations)).ok) decoded++;
      }),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs, ${decoded} mutated frames decoded to a valid message`);
  });

  test("json: random bytes and random text", (t) => {
    const parameters = fuzzParameters(15_000);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.json({ maxDepth: 3 }).map((text) => utf8.encode(text)),
        ),
        (bytes) => {
          decodeChecked(jsonCodec, bytes);
        },
      ),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs`);
  });

  test("json: valid messages with a field replaced by an extreme or wrong value, deleted, or one added", (t) => {
    const parameters = fuzzParameters(30_000);
    let decoded = 0;
    fc.assert(
      fc.property(corruptedObjectArbitrary, (object) => {
        if (decodeChecked(jsonCodec, utf8.encode(JSON.stringify(object))).ok) decoded++;
      }),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs, ${decoded} decoded to a valid message`);
  });

  test("json: valid frames, mutated byte by byte", (t) => {
    const parameters = fuzzParameters(15_000);
    fc.assert(
      fc.property(
        messageArbitrary,
        fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }),
        (message, mutations) => {
          decodeChecked(jsonCodec, mutate(jsonCodec.encode(message), mutations));
        },
      ),
      parameters,
    );
    t.diagnostic(`${parameters.numRuns} inputs`);
  });

  test("both: lists and strings at and one past their bounds are decoded at the bound and refused past it", () => {
    for (const object of boundMessages()) {
      const valid = validateMessage(object);
      const json = decodeChecked(jsonCodec, utf8.encode(JSON.stringify(object)));
      assert.equal(json.ok, valid.ok, JSON.stringify(object).slice(0, 200));
      if (valid.ok) {
        const binary = decodeChecked(binaryCodec, binaryCodec.encode(valid.value));
        assert.deepStrictEqual(binary, { ok: true, value: object });
      }
    }
    // Past the bounds, the validator (hence both decoders) refuses: nothing rides through on a list.
    const refused = boundMessages().filter((object) => !validateMessage(object).ok).length;
    assert.ok(refused >= 8, `${refused} of the past-bound messages refused`);
  });
});
