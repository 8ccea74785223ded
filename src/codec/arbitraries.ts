/**
 * fast-check arbitraries for every {@link Message}, for property tests of the codecs (and of anything
 * else that carries messages). Test support only: not exported from `index.ts`, because fast-check is
 * a dev dependency.
 */

import fc from "fast-check";
import type {
  AcceptedEntry,
  Ballot,
  Command,
  Message,
  MessageType,
  Role,
  SlotValue,
  SnapshotChunkMessage,
  Value,
} from "../core/index.js";
import { REFUSE_REASONS, ROLES } from "../core/index.js";
import { CHECKSUM_MAX, SNAPSHOT_CHUNK_UNITS_MAX, SNAPSHOT_UNITS_MAX } from "./validate.js";

/** Plain objects, as a decoder builds them (fast-check may otherwise give them a null prototype). */
function record<T extends object>(fields: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(fields, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

/**
 * Non-negative safe integers, weighted towards the edges that break codecs: 0, the varint byte
 * boundaries, 2^31 and 2^32 (where 32-bit arithmetic wraps) and 2^53 - 1.
 */
export const uintArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.maxSafeNat(),
  fc.constantFrom(
    0,
    127,
    128,
    10_239,
    10_240,
    16_383,
    16_384,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 49,
    Number.MAX_SAFE_INTEGER,
  ),
);

/**
 * Unicode scalar values, evenly over the 1-, 2-, 3- and 4-byte UTF-8 ranges. (Built by hand: fast-check's
 * full-Unicode string units take about a second to set up, which would dominate these tests.)
 */
const codePointArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 0x7f }),
  fc.integer({ min: 0x80, max: 0x7ff }),
  fc.integer({ min: 0x800, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff),
  fc.integer({ min: 0x10000, max: 0x10ffff }),
);

/** Payloads: mostly short ASCII, also any Unicode (astral planes included) and the empty string. */
export const payloadArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "grapheme-ascii", maxLength: 40 }),
  fc.array(codePointArbitrary, { maxLength: 20 }).map((codePoints) => String.fromCodePoint(...codePoints)),
  fc.constant(""),
);

export const ballotArbitrary: fc.Arbitrary<Ballot> = record({ round: uintArbitrary, node: uintArbitrary });

export const commandArbitrary: fc.Arbitrary<Command> = record({
  client: uintArbitrary,
  seq: uintArbitrary,
  payload: payloadArbitrary,
});

/** Values of 0 (a no-op) to 6 commands. */
export const valueArbitrary: fc.Arbitrary<Value> = record({
  commands: fc.array(commandArbitrary, { maxLength: 6 }),
});

const roleArbitrary: fc.Arbitrary<Role> = fc.constantFrom(...ROLES);

const acceptedEntryArbitrary: fc.Arbitrary<AcceptedEntry> = record({
  slot: uintArbitrary,
  ballot: ballotArbitrary,
  value: valueArbitrary,
});

const slotValueArbitrary: fc.Arbitrary<SlotValue> = record({ slot: uintArbitrary, value: valueArbitrary });

/** 32-bit checksums, edges included (fast-check's integers stop at 2^31 - 1). */
const checksumArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, 127, 128, 2 ** 31 - 1, 2 ** 31, CHECKSUM_MAX),
  fc.tuple(fc.nat({ max: 0xffff }), fc.nat({ max: 0xffff })).map(([high, low]) => high * 0x1_0000 + low),
);

/**
 * Snapshot text of one chunk: short strings like payloads, long runs of one character (2^13 of a
 * 4-byte character is the whole chunk limit), and full chunks of 1-, 3- and 4-byte characters.
 */
const snapshotDataArbitrary: fc.Arbitrary<string> = fc.oneof(
  payloadArbitrary,
  fc
    .tuple(codePointArbitrary, fc.nat({ max: SNAPSHOT_CHUNK_UNITS_MAX / 2 }))
    .map(([codePoint, count]) => String.fromCodePoint(codePoint).repeat(count)),
  fc.constantFrom(
    "x".repeat(SNAPSHOT_CHUNK_UNITS_MAX),
    "€".repeat(SNAPSHOT_CHUNK_UNITS_MAX),
    "😀".repeat(SNAPSHOT_CHUNK_UNITS_MAX / 2),
  ),
);

/** Offsets into a snapshot: small, at the varint edges, and up to where a last chunk can start. */
const snapshotOffsetArbitrary: fc.Arbitrary<number> = fc.oneof(
  fc.nat({ max: 300 }),
  fc.constantFrom(0, 127, 128, 16_383, 16_384, 2 ** 21, SNAPSHOT_UNITS_MAX - SNAPSHOT_CHUNK_UNITS_MAX),
  fc.nat({ max: SNAPSHOT_UNITS_MAX - SNAPSHOT_CHUNK_UNITS_MAX }),
);

/** Chunks that lie within their snapshot (offset + data <= length <= SNAPSHOT_UNITS_MAX). */
const snapshotChunkArbitrary: fc.Arbitrary<SnapshotChunkMessage> = fc
  .tuple(
    uintArbitrary,
    uintArbitrary,
    checksumArbitrary,
    snapshotOffsetArbitrary,
    snapshotDataArbitrary,
    fc.oneof(fc.constant(0), fc.nat({ max: 300 }), fc.nat({ max: SNAPSHOT_UNITS_MAX })),
  )
  .map(([from, slot, checksum, offset, data, beyond]) => ({
    type: "snapshot-chunk" as const,
    from,
    slot,
    length: Math.min(SNAPSHOT_UNITS_MAX, offset + data.length + beyond),
    checksum,
    offset,
    data,
  }));

/** One arbitrary per message type, fields in the order of the TypeScript types. */
export const messageArbitraries: {
  readonly [T in MessageType]: fc.Arbitrary<Extract<Message, { type: T }>>;
} = {
  request: record({
    type: fc.constant("request" as const),
    from: uintArbitrary,
    commands: fc.array(commandArbitrary, { maxLength: 6 }),
  }),
  ack: record({
    type: fc.constant("ack" as const),
    from: uintArbitrary,
    client: uintArbitrary,
    seqs: fc.array(uintArbitrary, { maxLength: 10 }),
  }),
  refuse: record({
    type: fc.constant("refuse" as const),
    from: uintArbitrary,
    client: uintArbitrary,
    reason: fc.constantFrom(...REFUSE_REASONS),
    seqs: fc.array(uintArbitrary, { maxLength: 10 }),
  }),
  prepare: record({
    type: fc.constant("prepare" as const),
    from: uintArbitrary,
    ballot: ballotArbitrary,
    firstSlot: uintArbitrary,
  }),
  promise: record({
    type: fc.constant("promise" as const),
    from: uintArbitrary,
    ballot: ballotArbitrary,
    firstSlot: uintArbitrary,
    accepted: fc.array(acceptedEntryArbitrary, { maxLength: 4 }),
    nextSlot: fc.option(uintArbitrary, { nil: null }),
    floorSlot: uintArbitrary,
  }),
  accept: record({
    type: fc.constant("accept" as const),
    from: uintArbitrary,
    ballot: ballotArbitrary,
    slot: uintArbitrary,
    value: valueArbitrary,
  }),
  accepted: record({
    type: fc.constant("accepted" as const),
    from: uintArbitrary,
    ballot: ballotArbitrary,
    slot: uintArbitrary,
    value: fc.option(valueArbitrary, { nil: null }),
  }),
  reject: record({
    type: fc.constant("reject" as const),
    from: uintArbitrary,
    ballot: ballotArbitrary,
    promised: ballotArbitrary,
    slot: uintArbitrary,
  }),
  decide: record({
    type: fc.constant("decide" as const),
    from: uintArbitrary,
    entries: fc.array(slotValueArbitrary, { maxLength: 4 }),
  }),
  heartbeat: record({
    type: fc.constant("heartbeat" as const),
    from: uintArbitrary,
    ballot: ballotArbitrary,
    decidedThrough: uintArbitrary,
    proposedThrough: uintArbitrary,
  }),
  catchup: record({
    type: fc.constant("catchup" as const),
    from: uintArbitrary,
    role: roleArbitrary,
    fromSlot: uintArbitrary,
    toSlot: uintArbitrary,
  }),
  "snapshot-request": record({
    type: fc.constant("snapshot-request" as const),
    from: uintArbitrary,
    role: roleArbitrary,
    slot: uintArbitrary,
    offset: uintArbitrary,
  }),
  "snapshot-chunk": snapshotChunkArbitrary,
  "rejoin-query": record({
    type: fc.constant("rejoin-query" as const),
    from: uintArbitrary,
    nonce: uintArbitrary,
    promised: ballotArbitrary,
  }),
  "rejoin-report": record({
    type: fc.constant("rejoin-report" as const),
    from: uintArbitrary,
    nonce: uintArbitrary,
    voting: fc.boolean(),
    promised: ballotArbitrary,
    votedThrough: uintArbitrary,
    decidedThrough: uintArbitrary,
    leaderBallot: ballotArbitrary,
    proposedThrough: uintArbitrary,
  }),
};

/** Any message. */
export const messageArbitrary: fc.Arbitrary<Message> = fc.oneof(
  ...(Object.values(messageArbitraries) as fc.Arbitrary<Message>[]),
);

/** One hand-picked message of each type with content in every field, for exhaustive byte-level tests. */
export const SAMPLE_MESSAGES: readonly Message[] = [
  {
    type: "request",
    from: 7,
    commands: [
      { client: 7, seq: 1, payload: "set x 1" },
      { client: 7, seq: 2, payload: "ключ ✓ 😀" },
    ],
  },
  { type: "ack", from: 1, client: 7, seqs: [1, 2, 300, Number.MAX_SAFE_INTEGER] },
  { type: "refuse", from: 1, client: 7, reason: "client-gaps", seqs: [4, 2 ** 40] },
  { type: "prepare", from: 2, ballot: { round: 300, node: 2 }, firstSlot: 1 },
  {
    type: "promise",
    from: 3,
    ballot: { round: 2 ** 40, node: 2 },
    firstSlot: 5,
    accepted: [
      { slot: 5, ballot: { round: 1, node: 1 }, value: { commands: [{ client: 9, seq: 4, payload: "a" }] } },
      { slot: 6, ballot: { round: 1, node: 1 }, value: { commands: [] } },
    ],
    nextSlot: 7,
    floorSlot: 0,
  },
  {
    type: "accept",
    from: 1,
    ballot: { round: 4, node: 1 },
    slot: 2 ** 32 + 1,
    value: { commands: [{ client: 3, seq: 2 ** 31, payload: "cas lock 0 1" }] },
  },
  {
    type: "accepted",
    from: 2,
    ballot: { round: 4, node: 1 },
    slot: 9,
    value: { commands: [{ client: 3, seq: 5, payload: "" }] },
  },
  { type: "reject", from: 3, ballot: { round: 1, node: 1 }, promised: { round: 2, node: 2 }, slot: 0 },
  {
    type: "decide",
    from: 1,
    entries: [
      { slot: 1, value: { commands: [{ client: 2, seq: 1, payload: "put k v" }] } },
      { slot: 2, value: { commands: [] } },
    ],
  },
  { type: "heartbeat", from: 1, ballot: { round: 4, node: 1 }, decidedThrough: 17, proposedThrough: 20 },
  { type: "catchup", from: 4, role: "learner", fromSlot: 18, toSlot: 40 },
  { type: "snapshot-request", from: 4, role: "learner", slot: 300, offset: 16_384 },
  {
    type: "snapshot-chunk",
    from: 2,
    slot: 300,
    length: 40_000,
    checksum: 0xdead_beef,
    offset: 16_384,
    data: '{"slot":300,"sessions":[]}\nключ ✓ 😀',
  },
  { type: "rejoin-query", from: 2, nonce: 0xfeed_f00d, promised: { round: 7, node: 3 } },
  {
    type: "rejoin-report",
    from: 3,
    nonce: 0xfeed_f00d,
    voting: true,
    promised: { round: 7, node: 1 },
    votedThrough: 41,
    decidedThrough: 39,
    leaderBallot: { round: 7, node: 1 },
    proposedThrough: 42,
  },
];

/** A typical accept: one slot's batch of `count` short client commands. */
export function typicalAccept(count: number): Message {
  const commands: Command[] = [];
  for (let i = 0; i < count; i++) {
    commands.push({ client: 1000 + (i % 17), seq: 50_000 + i, payload: `set user:${i} ${i * 7919}` });
  }
  return { type: "accept", from: 3, ballot: { round: 1234, node: 3 }, slot: 987_654, value: { commands } };
}
