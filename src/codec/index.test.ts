/**
 * The contract both codecs keep: every valid message survives a round trip, and no input, however
 * broken, makes a decoder throw.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { MESSAGE_TYPES, type Message, type Result } from "../core/index.js";
import { messageArbitraries, messageArbitrary, SAMPLE_MESSAGES } from "./arbitraries.js";
import {
  binaryCodec,
  CODEC_NAMES,
  type Codec,
  codecByName,
  DATAGRAM_BYTES_MAX,
  FRAME_BYTES_MAX,
  jsonCodec,
} from "./index.js";
import { CHECKSUM_MAX, SNAPSHOT_CHUNK_UNITS_MAX, SNAPSHOT_UNITS_MAX } from "./validate.js";

/** Decodes `bytes`, failing the test if the decoder throws or returns something that is not a Result. */
function decodeSafely(codec: Codec, bytes: Uint8Array): Result<Message, string> {
  let result: Result<Message, string>;
  try {
    result = codec.decode(bytes);
  } catch (error) {
    assert.fail(`${codec.name} decode threw on [${bytes.join(",")}]: ${String(error)}`);
  }
  if (!result.ok)
    assert.ok(typeof result.error === "string" && result.error.length > 0, "an error says something");
  return result;
}

for (const codec of [binaryCodec, jsonCodec]) {
  describe(`${codec.name} codec`, () => {
    for (const type of MESSAGE_TYPES) {
      test(`every ${type} message survives a round trip`, () => {
        fc.assert(
          fc.property(messageArbitraries[type], (message) => {
            assert.deepStrictEqual(codec.decode(codec.encode(message)), { ok: true, value: message });
          }),
          { numRuns: 100 },
        );
      });
    }

    test("the sample messages survive a round trip, and re-encode to the same bytes", () => {
      for (const message of SAMPLE_MESSAGES) {
        const bytes = codec.encode(message);
        const decoded = codec.decode(bytes);
        assert.deepStrictEqual(decoded, { ok: true, value: message });
        assert.deepStrictEqual(codec.encode(decoded.value), bytes);
      }
    });

    test("the widest snapshot chunk fits one UDP datagram", () => {
      // The widest data per unit: a control character (6 bytes escaped in JSON), a 3-byte character
      // (the most UTF-8 bytes per unit), and 4-byte characters (two units each).
      for (const data of [
        "\u0001".repeat(SNAPSHOT_CHUNK_UNITS_MAX),
        "€".repeat(SNAPSHOT_CHUNK_UNITS_MAX),
        "😀".repeat(SNAPSHOT_CHUNK_UNITS_MAX / 2),
      ]) {
        const chunk: Message = {
          type: "snapshot-chunk",
          from: Number.MAX_SAFE_INTEGER,
          slot: Number.MAX_SAFE_INTEGER,
          length: SNAPSHOT_UNITS_MAX,
          checksum: CHECKSUM_MAX,
          offset: SNAPSHOT_UNITS_MAX - SNAPSHOT_CHUNK_UNITS_MAX,
          data,
        };
        const bytes = codec.encode(chunk);
        assert.ok(bytes.length <= DATAGRAM_BYTES_MAX, `${bytes.length} bytes for ${data.slice(0, 2)}...`);
        assert.deepStrictEqual(codec.decode(bytes), { ok: true, value: chunk });
      }
    });

    test("every truncation of a valid frame is an error, never a throw", () => {
      for (const message of SAMPLE_MESSAGES) {
        const bytes = codec.encode(message);
        for (let length = 0; length < bytes.length; length++) {
          const result = decodeSafely(codec, bytes.subarray(0, length));
          assert.equal(result.ok, false, `${message.type} cut to ${length} of ${bytes.length} bytes decoded`);
        }
      }
    });

    test("truncations of arbitrary messages are errors", () => {
      fc.assert(
        fc.property(messageArbitrary, fc.nat(), (message, cut) => {
          const bytes = codec.encode(message);
          assert.equal(decodeSafely(codec, bytes.subarray(0, cut % bytes.length)).ok, false);
        }),
        { numRuns: 300 },
      );
    });

    test("random bytes never make the decoder throw", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
          decodeSafely(codec, bytes);
        }),
        { numRuns: 1000 },
      );
    });

    test("a frame over FRAME_BYTES_MAX is refused before it is read", () => {
      const bytes = new Uint8Array(FRAME_BYTES_MAX + 1);
      bytes.set(codec.encode(SAMPLE_MESSAGES[0] as Message));
      const result = decodeSafely(codec, bytes);
      assert.equal(result.ok, false);
      assert.match(result.ok ? "" : result.error, /exceeds the limit of 1048576/);
    });

    test("input that is not a Uint8Array is an error, not a throw", () => {
      for (const input of [null, undefined, "frame", [0xa1, 9], {}]) {
        assert.equal(decodeSafely(codec, input as unknown as Uint8Array).ok, false);
      }
    });
  });
}

test("a frame of one codec is refused by the other", () => {
  for (const message of SAMPLE_MESSAGES) {
    assert.equal(binaryCodec.decode(jsonCodec.encode(message)).ok, false);
    assert.equal(jsonCodec.decode(binaryCodec.encode(message)).ok, false);
  }
});

test("codecByName finds each codec and explains an unknown name", () => {
  for (const name of CODEC_NAMES) {
    const found = codecByName(name);
    assert.ok(found.ok);
    assert.equal(found.value.name, name);
  }
  assert.deepStrictEqual(codecByName("xml"), {
    ok: false,
    error: 'unknown codec "xml": expected binary or json',
  });
});
