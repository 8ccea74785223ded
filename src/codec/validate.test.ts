import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { messageArbitrary, payloadArbitrary } from "./arbitraries.js";
import {
  COMMANDS_PER_MESSAGE_MAX,
  ENTRIES_PER_MESSAGE_MAX,
  PAYLOAD_BYTES_MAX,
  SEQS_PER_MESSAGE_MAX,
  SNAPSHOT_CHUNK_UNITS_MAX,
  SNAPSHOT_UNITS_MAX,
  utf8ByteLength,
  validateMessage,
} from "./validate.js";

function errorOf(input: unknown): string {
  const result = validateMessage(input);
  assert.equal(result.ok, false, `expected an error for ${JSON.stringify(input)}`);
  return result.ok ? "" : result.error;
}

const command = (payload: string) => ({ client: 1, seq: 1, payload });

test("every well-formed message is accepted as it is", () => {
  fc.assert(
    fc.property(messageArbitrary, (message) => {
      const result = validateMessage(message);
      assert.ok(result.ok);
      assert.equal(result.value, message);
    }),
    { numRuns: 300 },
  );
});

test("values that are not objects are refused", () => {
  for (const input of [undefined, null, 0, "request", true, [], () => 1]) {
    assert.match(errorOf(input), /^message: expected an object/);
  }
});

test("arrays are bounded: at the limit is fine, one more is refused", () => {
  const commands = (n: number) => Array.from({ length: n }, () => command(""));
  assert.ok(validateMessage({ type: "request", from: 1, commands: commands(COMMANDS_PER_MESSAGE_MAX) }).ok);
  assert.equal(
    errorOf({ type: "request", from: 1, commands: commands(COMMANDS_PER_MESSAGE_MAX + 1) }),
    "request.commands: 4097 commands exceeds the limit of 4096",
  );
  const value = { commands: commands(COMMANDS_PER_MESSAGE_MAX + 1) };
  assert.equal(
    errorOf({ type: "accept", from: 1, ballot: { round: 1, node: 1 }, slot: 1, value }),
    "accept.value.commands: 4097 commands exceeds the limit of 4096",
  );
  const seqs = (n: number) => Array.from({ length: n }, (_, i) => i);
  assert.ok(validateMessage({ type: "ack", from: 1, client: 2, seqs: seqs(SEQS_PER_MESSAGE_MAX) }).ok);
  assert.equal(
    errorOf({ type: "ack", from: 1, client: 2, seqs: seqs(SEQS_PER_MESSAGE_MAX + 1) }),
    "ack.seqs: 65537 sequence numbers exceeds the limit of 65536",
  );
  const entries = (n: number) => Array.from({ length: n }, (_, slot) => ({ slot, value: { commands: [] } }));
  assert.ok(validateMessage({ type: "decide", from: 1, entries: entries(ENTRIES_PER_MESSAGE_MAX) }).ok);
  assert.equal(
    errorOf({ type: "decide", from: 1, entries: entries(ENTRIES_PER_MESSAGE_MAX + 1) }),
    "decide.entries: 4097 entries exceeds the limit of 4096",
  );
});

test("payloads are bounded in UTF-8 bytes, not characters", () => {
  const request = (payload: string) => ({ type: "request", from: 1, commands: [command(payload)] });
  assert.ok(validateMessage(request("x".repeat(PAYLOAD_BYTES_MAX))).ok);
  assert.ok(validateMessage(request(`${"€".repeat(2730)}ab`)).ok); // 8190 + 2 bytes
  assert.equal(
    errorOf(request(`${"€".repeat(2730)}abc`)),
    "request.commands[0].payload: 8193 UTF-8 bytes exceeds the limit of 8192",
  );
  assert.equal(
    errorOf(request("😀".repeat(2049))),
    "request.commands[0].payload: 8196 UTF-8 bytes exceeds the limit of 8192",
  );
  assert.equal(
    errorOf(request("ok\udbff")),
    "request.commands[0].payload: not well-formed Unicode (lone surrogate)",
  );
});

test("problems are reported with the path to the field", () => {
  const ballot = { round: 1, node: 1 };
  const cases: [unknown, string][] = [
    [
      {
        type: "accept",
        from: 1,
        ballot,
        slot: 1,
        value: { commands: [command("a"), { client: 1, seq: -1, payload: "" }] },
      },
      "accept.value.commands[1].seq: expected a non-negative safe integer, got -1",
    ],
    [
      {
        type: "promise",
        from: 1,
        ballot,
        firstSlot: 1,
        accepted: [{ slot: 1, ballot: { round: 1, node: Number.NaN }, value: { commands: [] } }],
        nextSlot: null,
      },
      "promise.accepted[0].ballot.node: expected a non-negative safe integer, got NaN",
    ],
    [
      { type: "promise", from: 1, ballot, firstSlot: 1, accepted: [] },
      "promise.nextSlot: expected a non-negative safe integer, got nothing (missing)",
    ],
    [
      { type: "decide", from: 1, entries: [{ slot: 1, value: { commands: [], more: 1 } }] },
      'decide.entries[0].value: unexpected field "more"',
    ],
    [
      { type: "reject", from: 1, ballot, promised: null, slot: 0 },
      "reject.promised: expected a ballot object, got null",
    ],
    [{ type: "ack", from: 1, client: 2, seqs: "1,2" }, 'ack.seqs: expected an array, got "1,2"'],
    [
      { type: "catchup", from: 1, role: "Learner", fromSlot: 1, toSlot: 2 },
      'catchup.role: expected one of proposer, acceptor, learner, client, got "Learner"',
    ],
    [
      { type: "heartbeat", from: 2 ** 53, ballot, decidedThrough: 0 },
      "heartbeat.from: expected a non-negative safe integer, got 9007199254740992",
    ],
    [
      {
        type: "rejoin-report",
        from: 3,
        nonce: 1,
        voting: 1,
        promised: ballot,
        votedThrough: 0,
        decidedThrough: 0,
        leaderBallot: ballot,
        proposedThrough: 0,
      },
      "rejoin-report.voting: expected true or false, got 1",
    ],
    [
      { type: "rejoin-query", from: 3, nonce: -1, promised: { round: 0, node: 0 } },
      "rejoin-query.nonce: expected a non-negative safe integer, got -1",
    ],
    [
      { type: "request", from: 1, commands: [command("x".repeat(100))], sentAt: 0 },
      'request: unexpected field "sentAt"',
    ],
    [
      { type: "request", from: 1, commands: [{ client: 1, seq: 1, payload: 7 }] },
      "request.commands[0].payload: expected a string, got 7",
    ],
  ];
  for (const [input, expected] of cases) assert.equal(errorOf(input), expected);
});

test("snapshot chunks: data is bounded in characters, not bytes, and lies within the snapshot", () => {
  const chunk = (fields: Record<string, unknown>) => ({
    type: "snapshot-chunk",
    from: 1,
    slot: 4,
    length: 40_000,
    checksum: 0xffff_ffff,
    offset: 0,
    data: "",
    ...fields,
  });
  // Not a payload: far over the 8192-byte payload limit, within the chunk's 10240 units.
  assert.ok(validateMessage(chunk({ data: "€".repeat(SNAPSHOT_CHUNK_UNITS_MAX) })).ok);
  assert.ok(validateMessage(chunk({ data: "😀".repeat(SNAPSHOT_CHUNK_UNITS_MAX / 2) })).ok);
  assert.ok(validateMessage(chunk({ length: 3, offset: 0, data: "abc" })).ok);
  assert.ok(validateMessage(chunk({ length: 3, offset: 3, data: "" })).ok);
  assert.ok(
    validateMessage(chunk({ length: SNAPSHOT_UNITS_MAX, offset: SNAPSHOT_UNITS_MAX - 1, data: "x" })).ok,
  );
  const cases: [Record<string, unknown>, string][] = [
    [
      { data: "x".repeat(SNAPSHOT_CHUNK_UNITS_MAX + 1) },
      "snapshot-chunk.data: 10241 characters exceeds the limit of 10240",
    ],
    [{ data: "ok\ud800" }, "snapshot-chunk.data: not well-formed Unicode (lone surrogate)"],
    [{ data: "\udc00ok" }, "snapshot-chunk.data: not well-formed Unicode (lone surrogate)"],
    [{ data: null }, "snapshot-chunk.data: expected a string, got null"],
    [
      { length: 3, offset: 1, data: "abc" },
      "snapshot-chunk.offset: 1 + 3 characters of data runs past the snapshot length 3",
    ],
    [
      { length: 0, offset: 1 },
      "snapshot-chunk.offset: 1 + 0 characters of data runs past the snapshot length 0",
    ],
    [
      { length: SNAPSHOT_UNITS_MAX + 1 },
      `snapshot-chunk.length: ${SNAPSHOT_UNITS_MAX + 1} characters exceeds the limit of ${SNAPSHOT_UNITS_MAX}`,
    ],
    [{ length: -1 }, "snapshot-chunk.length: expected a non-negative safe integer, got -1"],
    [{ checksum: 2 ** 32 }, "snapshot-chunk.checksum: expected a 32-bit unsigned integer, got 4294967296"],
    [{ checksum: -1 }, "snapshot-chunk.checksum: expected a 32-bit unsigned integer, got -1"],
    [{ checksum: 1.5 }, "snapshot-chunk.checksum: expected a 32-bit unsigned integer, got 1.5"],
    [{ offset: "0" }, 'snapshot-chunk.offset: expected a non-negative safe integer, got "0"'],
    [{ role: "learner" }, 'snapshot-chunk: unexpected field "role"'],
  ];
  for (const [fields, expected] of cases) assert.equal(errorOf(chunk(fields)), expected);
});

test("snapshot requests name a known role", () => {
  const request = (fields: Record<string, unknown>) => ({
    type: "snapshot-request",
    from: 1,
    role: "learner",
    slot: 0,
    offset: 0,
    ...fields,
  });
  assert.ok(validateMessage(request({})).ok);
  for (const role of ["proposer", "acceptor", "client"]) assert.ok(validateMessage(request({ role })).ok);
  assert.equal(
    errorOf(request({ role: "leader" })),
    'snapshot-request.role: expected one of proposer, acceptor, learner, client, got "leader"',
  );
  assert.equal(
    errorOf(request({ role: 2 })),
    "snapshot-request.role: expected one of proposer, acceptor, learner, client, got 2",
  );
  assert.equal(
    errorOf(request({ offset: -5 })),
    "snapshot-request.offset: expected a non-negative safe integer, got -5",
  );
  assert.equal(
    errorOf({ type: "snapshot-request", from: 1, role: "learner", slot: 0 }),
    "snapshot-request.offset: expected a non-negative safe integer, got nothing (missing)",
  );
  assert.equal(errorOf(request({ data: "" })), 'snapshot-request: unexpected field "data"');
});

test("utf8ByteLength agrees with TextEncoder, lone surrogates included", () => {
  const encoder = new TextEncoder();
  const strings = fc.oneof(
    payloadArbitrary,
    fc
      .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 30 })
      .map((units) => String.fromCharCode(...units)),
  );
  fc.assert(
    fc.property(strings, (s) => {
      assert.equal(utf8ByteLength(s), encoder.encode(s).length);
    }),
    { numRuns: 500 },
  );
});
