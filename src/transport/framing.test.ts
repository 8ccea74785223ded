import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { encodeFrames, FrameDecoder } from "./framing.js";

function decodeAll(
  decoder: FrameDecoder,
  chunks: readonly Uint8Array[],
): { frames: number[][]; ok: boolean } {
  const frames: number[][] = [];
  let ok = true;
  for (const chunk of chunks) ok = decoder.push(chunk, (frame) => frames.push([...frame])) && ok;
  return { frames, ok };
}

/** Splits `bytes` at the given cut points (sorted, deduplicated, within range). */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((x, y) => x - y);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

describe("length-prefixed framing", () => {
  it("encodes a u32 big-endian length before each frame", () => {
    const encoded = encodeFrames([new Uint8Array([7]), new Uint8Array(0), new Uint8Array([1, 2])]);
    assert.deepEqual([...encoded], [0, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2]);
  });

  it("decodes the same frames whatever the chunk boundaries (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const encoded = encodeFrames(frames);
          const { frames: decoded, ok } = decodeAll(new FrameDecoder(300), split(encoded, cuts));
          assert.equal(ok, true);
          assert.deepEqual(
            decoded,
            frames.map((frame) => [...frame]),
          );
        },
      ),
    );
  });

  it("decodes a stream fed one byte at a time", () => {
    const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(1000).fill(9)];
    const encoded = encodeFrames(frames);
    const decoder = new FrameDecoder(1000);
    const { frames: decoded } = decodeAll(
      decoder,
      [...encoded].map((byte) => new Uint8Array([byte])),
    );
    assert.deepEqual(
      decoded,
      frames.map((frame) => [...frame]),
    );
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("refuses a header above the limit before buffering the body, and stays failed", () => {
    const decoder = new FrameDecoder(16);
    const seen: Uint8Array[] = [];
    assert.equal(
      decoder.push(encodeFrames([new Uint8Array(16)]), (frame) => seen.push(frame)),
      true,
    );
    assert.equal(seen.length, 1);
    assert.equal(
      decoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff]), (frame) => seen.push(frame)),
      false,
    );
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(
      decoder.push(encodeFrames([new Uint8Array(1)]), (frame) => seen.push(frame)),
      false,
    );
    assert.equal(seen.length, 1);
  });

  it("rejects an impossible limit", () => {
    assert.throws(() => new FrameDecoder(-1), RangeError);
    assert.throws(() => new FrameDecoder(2 ** 32), RangeError);
  });
});
