import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { InvariantViolation, type Message } from "../core/index.js";
import { messageArbitrary, SAMPLE_MESSAGES } from "./arbitraries.js";
import { decodeJson, encodeJson } from "./json.js";

const utf8 = new TextEncoder();
const text = new TextDecoder();

function decodeText(json: string) {
  return decodeJson(utf8.encode(json));
}

function errorOf(json: string): string {
  const result = decodeText(json);
  assert.equal(result.ok, false, `expected an error for ${json}`);
  return result.ok ? "" : result.error;
}

const HEARTBEAT =
  '{"type":"heartbeat","from":1,"ballot":{"round":4,"node":1},"decidedThrough":17,"proposedThrough":0}';

test("a message is one JSON object with its fields in type order", () => {
  const message: Message = {
    type: "heartbeat",
    from: 1,
    ballot: { round: 4, node: 1 },
    decidedThrough: 17,
    proposedThrough: 0,
  };
  assert.equal(text.decode(encodeJson(message)), HEARTBEAT);
  const promise: Message = {
    type: "promise",
    from: 3,
    ballot: { round: 2, node: 1 },
    firstSlot: 1,
    accepted: [],
    nextSlot: null,
    floorSlot: 0,
  };
  assert.equal(
    text.decode(encodeJson(promise)),
    '{"type":"promise","from":3,"ballot":{"round":2,"node":1},"firstSlot":1,"accepted":[],"nextSlot":null,"floorSlot":0}',
  );
});

test("fields outside the message type are not encoded", () => {
  const message = {
    type: "prepare",
    from: 2,
    ballot: { round: 3, node: 2, debug: "x" },
    firstSlot: 1,
    sentAtMs: 12345,
  } as unknown as Message;
  assert.equal(
    text.decode(encodeJson(message)),
    '{"type":"prepare","from":2,"ballot":{"round":3,"node":2},"firstSlot":1}',
  );
});

test("the encoder refuses, loudly, a message no decoder would accept", () => {
  const bad = [
    { type: "heartbeat", from: -1, ballot: { round: 4, node: 1 }, decidedThrough: 17, proposedThrough: 0 },
    {
      type: "heartbeat",
      from: 1,
      ballot: { round: 2 ** 53, node: 1 },
      decidedThrough: 17,
      proposedThrough: 0,
    },
    { type: "request", from: 1, commands: [{ client: 1, seq: 1, payload: "\udc00" }] },
    { type: "catchup", from: 1, role: "oracle", fromSlot: 1, toSlot: 2 },
  ] as unknown as Message[];
  for (const message of bad) assert.throws(() => encodeJson(message), InvariantViolation);
});

test("whitespace, key order and a byte order mark do not matter", () => {
  const message = decodeText(
    '\ufeff { "decidedThrough": 17, "proposedThrough": 0, "ballot": { "node": 1, "round": 4 }, "from": 1, "type": "heartbeat" }\n',
  );
  assert.deepStrictEqual(message, decodeText(HEARTBEAT));
  assert.ok(message.ok);
});

test("malformed messages are refused with the path of the problem", () => {
  const cases: [string, RegExp][] = [
    ["", /json frame: Unexpected end of JSON input/],
    ["{", /json frame:/],
    ["[]", /message: expected an object, got an array/],
    ["null", /message: expected an object, got null/],
    ["42", /message: expected an object, got 42/],
    ['{"type":"gossip","from":1}', /message.type: expected one of request, ack, .*, got "gossip"/],
    ['{"from":1}', /message.type: .* got nothing \(missing\)/],
    [
      '{"type":"heartbeat","from":1,"ballot":{"round":4,"node":1}}',
      /heartbeat.decidedThrough: .* got nothing/,
    ],
    [
      HEARTBEAT.replace('"from":1', '"from":1.5'),
      /heartbeat.from: expected a non-negative safe integer, got 1.5/,
    ],
    [HEARTBEAT.replace('"from":1', '"from":"1"'), /heartbeat.from: .* got "1"/],
    [
      HEARTBEAT.replace('"round":4', '"round":9007199254740993'),
      /heartbeat.ballot.round: .* got 9007199254740992/,
    ],
    [HEARTBEAT.replace('"round":4', '"round":-4'), /heartbeat.ballot.round: .* got -4/],
    [
      HEARTBEAT.replace('"ballot":{"round":4,"node":1}', '"ballot":[4,1]'),
      /heartbeat.ballot: expected a ballot object/,
    ],
    [HEARTBEAT.replace('"node":1}', '"node":1,"x":1}'), /heartbeat.ballot: unexpected field "x"/],
    [HEARTBEAT.replace("{", '{"extra":true,'), /heartbeat: unexpected field "extra"/],
    [HEARTBEAT.replace("{", '{"__proto__":{"polluted":true},'), /heartbeat: unexpected field "__proto__"/],
    [
      '{"type":"catchup","from":1,"role":"oracle","fromSlot":1,"toSlot":2}',
      /catchup.role: expected one of proposer, acceptor, learner, client, got "oracle"/,
    ],
    [
      '{"type":"request","from":1,"commands":[{"client":1,"seq":1,"payload":"ok"},{"client":1,"seq":2,"payload":"\\ud800"}]}',
      /request.commands\[1\].payload: not well-formed Unicode \(lone surrogate\)/,
    ],
    [
      '{"type":"promise","from":1,"ballot":{"round":1,"node":1},"firstSlot":1,"accepted":[{"slot":1,"ballot":{"round":1},"value":{"commands":[]}}],"nextSlot":null}',
      /promise.accepted\[0\].ballot.node: .* got nothing/,
    ],
    [
      '{"type":"promise","from":1,"ballot":{"round":1,"node":1},"firstSlot":1,"accepted":[],"nextSlot":"none"}',
      /promise.nextSlot: .* got "none"/,
    ],
  ];
  for (const [json, expected] of cases) assert.match(errorOf(json), expected, json);
});

test("snapshot messages are JSON objects too, their data a JSON string", () => {
  const request: Message = { type: "snapshot-request", from: 4, role: "learner", slot: 300, offset: 0 };
  assert.equal(
    text.decode(encodeJson(request)),
    '{"type":"snapshot-request","from":4,"role":"learner","slot":300,"offset":0}',
  );
  const chunk: Message = {
    type: "snapshot-chunk",
    from: 2,
    slot: 300,
    length: 40_000,
    checksum: 3_735_928_559,
    offset: 16_384,
    data: '{"slot":300}\n€',
  };
  assert.equal(
    text.decode(encodeJson(chunk)),
    '{"type":"snapshot-chunk","from":2,"slot":300,"length":40000,"checksum":3735928559,"offset":16384,"data":"{\\"slot\\":300}\\n€"}',
  );
  for (const message of [request, chunk]) {
    assert.deepStrictEqual(decodeJson(encodeJson(message)), { ok: true, value: message });
  }
});

test("malformed snapshot messages are refused with the path of the problem", () => {
  // JSON.stringify writes a lone surrogate as an escape (\ud800), which JSON.parse turns back into one.
  const chunk = (fields: Record<string, unknown>) =>
    JSON.stringify({
      type: "snapshot-chunk",
      from: 1,
      slot: 4,
      length: 10,
      checksum: 7,
      offset: 0,
      data: "abc",
      ...fields,
    });
  const cases: [string, RegExp][] = [
    [chunk({ data: "a\ud800" }), /^snapshot-chunk.data: not well-formed Unicode \(lone surrogate\)$/],
    [
      chunk({ offset: 8 }),
      /^snapshot-chunk.offset: 8 \+ 3 characters of data runs past the snapshot length 10$/,
    ],
    [chunk({ checksum: 2 ** 32 }), /^snapshot-chunk.checksum: expected a 32-bit unsigned integer/],
    [chunk({ length: 536_870_913 }), /^snapshot-chunk.length: 536870913 characters exceeds the limit/],
    [
      '{"type":"snapshot-request","from":1,"role":"oracle","slot":4,"offset":0}',
      /^snapshot-request.role: expected one of proposer, acceptor, learner, client, got "oracle"$/,
    ],
  ];
  for (const [json, expected] of cases) assert.match(errorOf(json), expected, json);
  assert.ok(decodeText(chunk({})).ok);
  const bad = [
    { type: "snapshot-chunk", from: 1, slot: 4, length: 10, checksum: 7, offset: 0, data: "\udfff" },
    { type: "snapshot-chunk", from: 1, slot: 4, length: 2, checksum: 7, offset: 0, data: "abc" },
    { type: "snapshot-request", from: 1, role: "oracle", slot: 1, offset: 0 },
  ] as unknown as Message[];
  for (const message of bad) assert.throws(() => encodeJson(message), InvariantViolation);
});

test("bytes that are not UTF-8 are refused", () => {
  const bytes = utf8.encode(HEARTBEAT);
  bytes[bytes.length - 2] = 0xff;
  assert.deepStrictEqual(decodeJson(bytes), { ok: false, error: "json frame: not valid UTF-8" });
});

test("any JSON value decodes without throwing", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      decodeText(JSON.stringify(value) ?? "null");
    }),
    { numRuns: 500 },
  );
});

test("a message with one field replaced by any JSON value decodes without throwing", () => {
  fc.assert(
    fc.property(messageArbitrary, fc.nat(), fc.jsonValue(), (message, pick, replacement) => {
      const tree = JSON.parse(text.decode(encodeJson(message))) as unknown;
      const holders: Record<string, unknown>[] = [];
      const collect = (node: unknown): void => {
        if (typeof node !== "object" || node === null) return;
        holders.push(node as Record<string, unknown>);
        for (const child of Object.values(node)) collect(child);
      };
      collect(tree);
      const holder = holders[pick % holders.length] as Record<string, unknown>;
      const keys = Object.keys(holder);
      if (keys.length > 0) holder[keys[pick % keys.length] as string] = replacement;
      const result = decodeText(JSON.stringify(tree));
      if (result.ok) assert.deepStrictEqual(decodeJson(encodeJson(result.value)), result);
    }),
    { numRuns: 500 },
  );
});

test("sample messages round trip through JSON text exactly", () => {
  for (const message of SAMPLE_MESSAGES) {
    assert.deepStrictEqual(JSON.parse(text.decode(encodeJson(message))), message);
  }
});
