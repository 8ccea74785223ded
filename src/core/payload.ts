import type { Limits } from "./limits.js";

/**
 * The UTF-8 length of `text` in bytes, without encoding it. A lone surrogate counts 3 bytes, as
 * TextEncoder would encode it (U+FFFD).
 *
 * @example
 * utf8ByteLength("añ€😀"); // 1 + 2 + 3 + 4 = 10
 */
export function utf8ByteLength(text: string): number {
  const units = text.length;
  let bytes = 0;
  for (let i = 0; i < units; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < units && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/**
 * Copies `text` into `bytes` from `at` on, one byte a unit, while it is ASCII; returns how many
 * units it copied (`text.length` when all of it was ASCII: then the bytes are its UTF-8). The
 * encoders' fast path for the short ASCII payloads that dominate. `bytes` must have room.
 */
export function copyAscii(text: string, bytes: Uint8Array, at: number): number {
  const units = text.length;
  let i = 0;
  for (; i < units; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x80) break;
    bytes[at + i] = unit;
  }
  return i;
}

/** `String.prototype.isWellFormed` (Node 20+, ES2024): no lone surrogates. */
export function isWellFormedUnicode(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Why a client payload cannot be carried, or null if it can: it must be well-formed Unicode (a lone
 * surrogate would be replaced differently by different encoders) and at most
 * `limits.payloadBytesMax` UTF-8 bytes.
 */
export function payloadProblem(payload: string, limits: Pick<Limits, "payloadBytesMax">): string | null {
  if (typeof payload !== "string") return "a payload must be a string";
  const bytes = utf8ByteLength(payload);
  if (bytes > limits.payloadBytesMax)
    return `payload of ${bytes} UTF-8 bytes is over the ${limits.payloadBytesMax}-byte limit`;
  if (!isWellFormedUnicode(payload)) return "payload is not well-formed Unicode (it has a lone surrogate)";
  return null;
}
