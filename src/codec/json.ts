/**
 * The JSON wire format, for debugging and for tools that speak JSON (the course harness): one
 * message is one UTF-8 JSON object with exactly the fields of its TypeScript type, e.g.
 *
 * ```json
 * {"type":"accept","from":1,"ballot":{"round":2,"node":1},"slot":7,"value":{"commands":[{"client":9,"seq":1,"payload":"x=1"}]}}
 * ```
 *
 * Numbers are plain JSON numbers; every one is a safe integer, so no precision is lost. It is larger
 * and slower than the binary format, and checked by the same validator.
 */

import type { AcceptedEntry, Ballot, Command, SlotValue, Value } from "../core/index.js";
import { assert, err, type Message, type Result } from "../core/index.js";
import { FRAME_BYTES_MAX, validateMessage } from "./validate.js";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes a message as UTF-8 JSON. Only the fields of the message type are written, in a fixed order,
 * so equal messages give equal bytes.
 *
 * Throws `InvariantViolation` if the message would not pass {@link validateMessage} or the frame would
 * exceed {@link FRAME_BYTES_MAX}: the protocol core never builds such a message, so it is a bug.
 *
 * @example
 * const bytes = encodeJson({ type: "prepare", from: 2, ballot: { round: 3, node: 2 }, firstSlot: 1 });
 * new TextDecoder().decode(bytes); // '{"type":"prepare","from":2,"ballot":{"round":3,"node":2},"firstSlot":1}'
 */
export function encodeJson(message: Message): Uint8Array {
  const plain = project(message);
  const valid = validateMessage(plain);
  assert(valid.ok, `cannot encode: ${valid.ok ? "" : valid.error}`);
  const bytes = textEncoder.encode(JSON.stringify(plain));
  assert(bytes.length <= FRAME_BYTES_MAX, `cannot encode: the frame exceeds ${FRAME_BYTES_MAX} bytes`);
  return bytes;
}

/**
 * Decodes one UTF-8 JSON frame. Never throws: bytes that are not UTF-8, not JSON, not a message, or
 * over {@link FRAME_BYTES_MAX} yield `{ ok: false, error }`.
 *
 * @example
 * const result = decodeJson(new TextEncoder().encode('{"type":"prepare","from":2,"ballot":{"round":3,"node":2},"firstSlot":1}'));
 * if (result.ok) result.value.type; // "prepare"
 */
export function decodeJson(bytes: Uint8Array): Result<Message, string> {
  if (!(bytes instanceof Uint8Array)) return err("json frame: expected a Uint8Array");
  if (bytes.length > FRAME_BYTES_MAX) {
    return err(`json frame: ${bytes.length} bytes exceeds the limit of ${FRAME_BYTES_MAX}`);
  }
  let text: string;
  try {
    text = textDecoder.decode(bytes);
  } catch {
    return err("json frame: not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return err(`json frame: ${error instanceof Error ? error.message : String(error)}`);
  }
  return validateMessage(parsed);
}

// --- the fields of each message, and only those --------------------------------------------------

function project(message: Message): Message {
  switch (message.type) {
    case "request":
      return { type: message.type, from: message.from, commands: commands(message.commands) };
    case "ack":
      return { type: message.type, from: message.from, client: message.client, seqs: [...message.seqs] };
    case "refuse":
      return {
        type: message.type,
        from: message.from,
        client: message.client,
        reason: message.reason,
        seqs: [...message.seqs],
      };
    case "prepare":
      return {
        type: message.type,
        from: message.from,
        ballot: ballot(message.ballot),
        firstSlot: message.firstSlot,
      };
    case "promise":
      return {
        type: message.type,
        from: message.from,
        ballot: ballot(message.ballot),
        firstSlot: message.firstSlot,
        accepted: message.accepted.map(acceptedEntry),
        nextSlot: message.nextSlot,
        floorSlot: message.floorSlot,
      };
    case "accept":
      return {
        type: message.type,
        from: message.from,
        ballot: ballot(message.ballot),
        slot: message.slot,
        value: value(message.value),
      };
    case "accepted":
      return {
        type: message.type,
        from: message.from,
        ballot: ballot(message.ballot),
        slot: message.slot,
        value: message.value === null ? null : value(message.value),
      };
    case "reject":
      return {
        type: message.type,
        from: message.from,
        ballot: ballot(message.ballot),
        promised: ballot(message.promised),
        slot: message.slot,
      };
    case "decide":
      return { type: message.type, from: message.from, entries: message.entries.map(slotValue) };
    case "heartbeat":
      return {
        type: message.type,
        from: message.from,
        ballot: ballot(message.ballot),
        decidedThrough: message.decidedThrough,
        proposedThrough: message.proposedThrough,
      };
    case "catchup":
      return {
        type: message.type,
        from: message.from,
        role: message.role,
        fromSlot: message.fromSlot,
        toSlot: message.toSlot,
      };
    case "snapshot-request":
      return {
        type: message.type,
        from: message.from,
        role: message.role,
        slot: message.slot,
        offset: message.offset,
      };
    case "snapshot-chunk":
      return {
        type: message.type,
        from: message.from,
        slot: message.slot,
        length: message.length,
        checksum: message.checksum,
        offset: message.offset,
        data: message.data,
      };
    case "rejoin-query":
      return {
        type: message.type,
        from: message.from,
        nonce: message.nonce,
        promised: ballot(message.promised),
      };
    case "rejoin-report":
      return {
        type: message.type,
        from: message.from,
        nonce: message.nonce,
        voting: message.voting,
        promised: ballot(message.promised),
        votedThrough: message.votedThrough,
        decidedThrough: message.decidedThrough,
        leaderBallot: ballot(message.leaderBallot),
        proposedThrough: message.proposedThrough,
      };
    default:
      return message; // not a message type: left for the validator to report
  }
}

function ballot(b: Ballot): Ballot {
  return { round: b.round, node: b.node };
}

function commands(list: readonly Command[]): Command[] {
  return list.map((c) => ({ client: c.client, seq: c.seq, payload: c.payload }));
}

function value(v: Value): Value {
  return { commands: commands(v.commands) };
}

function acceptedEntry(entry: AcceptedEntry): AcceptedEntry {
  return { slot: entry.slot, ballot: ballot(entry.ballot), value: value(entry.value) };
}

function slotValue(entry: SlotValue): SlotValue {
  return { slot: entry.slot, value: value(entry.value) };
}
