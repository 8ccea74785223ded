/**
 * Messages to bytes and back. Two codecs with one contract: `binary` (compact and fast, for the
 * wire) and `json` (readable, for debugging and JSON-speaking tools). Both decoders check every frame
 * with {@link validateMessage} and never throw on bad input; both encoders throw only on a message
 * no decoder would accept, which is a bug in the caller.
 */

import { err, type Message, type MessageType, ok, type Result } from "../core/index.js";
import { decodeBinary, encodeBinary, peekBinaryType } from "./binary.js";
import { decodeJson, encodeJson } from "./json.js";

export { BINARY_MAGIC_VERSION, decodeBinary, encodeBinary, peekBinaryType } from "./binary.js";

export {
  CLIENT_SENDERS_MAX,
  CLUSTER_KEY_BYTES_MIN,
  clusterIdOf,
  ENVELOPE_BYTES_MAX,
  ENVELOPE_MAGIC,
  EnvelopeGuard,
  type EnvelopeOptions,
  type EnvelopeRefusal,
  MAC_BYTES,
  type NoticeReason,
  type Opened,
  OTHER_SENDERS_MAX,
  type Party,
  parseEnvelope,
  REPLAY_WINDOW_FRAMES,
  type SenderKind,
} from "./envelope.js";
export { decodeJson, encodeJson } from "./json.js";
export {
  COMMANDS_PER_MESSAGE_MAX,
  DATAGRAM_BYTES_MAX,
  ENTRIES_PER_MESSAGE_MAX,
  FRAME_BYTES_MAX,
  PAYLOAD_BYTES_MAX,
  SEQS_PER_MESSAGE_MAX,
  utf8ByteLength,
  validateMessage,
} from "./validate.js";

/** The names of the shipped codecs. */
export type CodecName = "binary" | "json";

export const CODEC_NAMES: readonly CodecName[] = ["binary", "json"];

/**
 * A wire format for {@link Message}. `decode(encode(m))` gives back a message equal to `m` for every
 * valid `m`; `decode` never throws.
 *
 * @example
 * const bytes = binaryCodec.encode({ type: "heartbeat", from: 1, ballot: { round: 4, node: 1 }, decidedThrough: 17 });
 * const result = binaryCodec.decode(bytes);
 * if (!result.ok) console.warn(`dropped a frame: ${result.error}`);
 */
export interface Codec {
  readonly name: CodecName;
  /** One message as one frame. Throws `InvariantViolation` on a message the wire cannot carry. */
  encode(message: Message): Uint8Array;
  /** One frame back to a validated message, or what is wrong with it. */
  decode(bytes: Uint8Array): Result<Message, string>;
  /** The frame's message type if it can be told without decoding (null otherwise). */
  peekType(bytes: Uint8Array): MessageType | null;
}

/** The compact binary codec (layout in `binary.ts`). */
export const binaryCodec: Codec = Object.freeze({
  name: "binary",
  encode: encodeBinary,
  decode: decodeBinary,
  peekType: peekBinaryType,
});

/** The UTF-8 JSON codec, for debugging. */
export const jsonCodec: Codec = Object.freeze({
  name: "json",
  encode: encodeJson,
  decode: decodeJson,
  peekType: () => null,
});

/**
 * The codec called `name`, e.g. from a command-line flag or config file.
 *
 * @example
 * const codec = codecByName(flags.codec ?? "binary");
 * if (!codec.ok) throw new Error(codec.error); // 'unknown codec "xml": expected binary or json'
 */
export function codecByName(name: string): Result<Codec, string> {
  if (name === "binary") return ok(binaryCodec);
  if (name === "json") return ok(jsonCodec);
  return err(`unknown codec ${JSON.stringify(name)}: expected ${CODEC_NAMES.join(" or ")}`);
}
