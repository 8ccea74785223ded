/**
 * Length-prefixed framing for byte streams (TCP): each frame is a u32 big-endian length followed by
 * that many bytes. The decoder refuses a header announcing more than its limit before buffering a byte
 * of the body, so a peer (or line noise) cannot make us allocate 4 GiB.
 */

/** Bytes of the length prefix in front of every frame. */
export const FRAME_HEADER_BYTES = 4;

/** Largest length a u32 header can carry. */
const U32_MAX = 0xffff_ffff;

const EMPTY = new Uint8Array(0);

/**
 * Encodes `frames[start..end)` into one buffer of length-prefixed frames (one write, one syscall).
 *
 * @example
 * encodeFrames([new Uint8Array([7])]); // <00 00 00 01 07>
 */
export function encodeFrames(frames: readonly Uint8Array[], start = 0, end = frames.length): Buffer {
  let total = 0;
  for (let index = start; index < end; index++)
    total += FRAME_HEADER_BYTES + (frames[index] as Uint8Array).length;
  const buffer = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let index = start; index < end; index++) {
    const frame = frames[index] as Uint8Array;
    buffer.writeUInt32BE(frame.length, offset);
    buffer.set(frame, offset + FRAME_HEADER_BYTES);
    offset += FRAME_HEADER_BYTES + frame.length;
  }
  return buffer;
}

/**
 * Splits a byte stream back into frames, whatever the chunk boundaries. Frames are handed out without a
 * copy when they lie within one chunk (a view of it), otherwise copied into a fresh buffer; either way
 * the decoder never writes to that memory again.
 *
 * @example
 * const decoder = new FrameDecoder(1024);
 * decoder.push(chunk, (frame) => handle(frame)); // false: a header announced > 1024 bytes
 */
export class FrameDecoder {
  private chunks: Uint8Array[] = [];
  /** Bytes of `chunks[0]` already consumed. */
  private head = 0;
  /** Unconsumed bytes across `chunks`. */
  private buffered = 0;
  /** Body length of the frame being read, or -1 while waiting for its header. */
  private expected = -1;
  private failed = false;

  constructor(readonly frameBytesMax: number) {
    if (!Number.isInteger(frameBytesMax) || frameBytesMax < 0 || frameBytesMax > U32_MAX) {
      throw new RangeError(`frameBytesMax must be an integer in 0..${U32_MAX}, got ${frameBytesMax}`);
    }
  }

  /** Unconsumed bytes held (a partial header or frame). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Feeds one chunk, calling `onFrame` for every frame it completes, in order. Returns false once a
   * header announces a frame larger than `frameBytesMax`: the stream cannot be resynchronised, so the
   * caller should close it; every later call also returns false.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): boolean {
    if (this.failed) return false;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) return true;
        const header = this.take(FRAME_HEADER_BYTES);
        const length =
          (header[0] as number) * 0x100_0000 +
          ((header[1] as number) << 16) +
          ((header[2] as number) << 8) +
          (header[3] as number);
        if (length > this.frameBytesMax) {
          this.failed = true;
          this.chunks = [];
          this.buffered = 0;
          this.head = 0;
          return false;
        }
        this.expected = length;
      }
      if (this.buffered < this.expected) return true;
      const frame = this.take(this.expected);
      this.expected = -1;
      onFrame(frame);
    }
  }

  /** Removes and returns the next `length` bytes; the caller checked that they are buffered. */
  private take(length: number): Uint8Array {
    if (length === 0) return EMPTY;
    const first = this.chunks[0] as Uint8Array;
    if (first.length - this.head >= length) {
      const view = first.subarray(this.head, this.head + length);
      this.advance(length);
      return view;
    }
    const out = Buffer.allocUnsafe(length);
    let written = 0;
    while (written < length) {
      const chunk = this.chunks[0] as Uint8Array;
      const count = Math.min(chunk.length - this.head, length - written);
      out.set(chunk.subarray(this.head, this.head + count), written);
      written += count;
      this.advance(count);
    }
    return out;
  }

  private advance(count: number): void {
    this.head += count;
    this.buffered -= count;
    if (this.head === (this.chunks[0] as Uint8Array).length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
