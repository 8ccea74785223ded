import {
  DEFAULT_LIMITS,
  err,
  isWellFormedUnicode,
  type Message,
  ok,
  REFUSE_REASONS,
  type Result,
  ROLES,
  utf8ByteLength,
} from "../core/index.js";
import { ENVELOPE_BYTES_MAX } from "./envelope.js";

/**
 * The one gate every decoded message passes, whatever codec produced it. Bytes from the network are
 * untrusted: they may be truncated, corrupted, hostile or from another version. Decoders turn them
 * into a candidate object; {@link validateMessage} checks its whole shape before the protocol core
 * ever sees it, and reports a problem as a value (never an exception) naming the offending field.
 *
 * Every number on the wire is a non-negative safe integer (slots, ids, sequence numbers and ballot
 * rounds may reach 2^53 - 1), every array is bounded, and every string is well-formed Unicode within
 * its limit (the payload limit for commands, the chunk limit for snapshot data). The bounds below are
 * generous ceilings on what a frame may carry; the protocol core applies its own, tighter
 * {@link DEFAULT_LIMITS} to what it acts on.
 */

/**
 * Largest frame either codec accepts or produces: 1 MiB. Stream transports (TCP) use it to refuse a
 * length prefix before buffering the frame.
 */
export const FRAME_BYTES_MAX = 1024 * 1024;

/**
 * Largest encoded message that fits one UDP datagram over IPv4 inside its envelope: 65535 bytes less
 * the 20-byte IP header, the 8-byte UDP header and the envelope's header and MAC
 * ({@link ENVELOPE_BYTES_MAX}, envelope.ts). Datagram transports check whole frames against 65,507.
 */
export const DATAGRAM_BYTES_MAX = 65_507 - ENVELOPE_BYTES_MAX;

/**
 * Most commands in one request or one value (a slot's batch): 8 times the core's `batchCommandsMax`
 * and 16 times its `requestCommandsMax`, so deployments can raise those without a new wire version,
 * while a forged count still cannot make a decoder loop for long.
 */
export const COMMANDS_PER_MESSAGE_MAX = 4096;

/**
 * Most votes in one promise, and most decided slots in one decide: 64 times the core's
 * `entriesPerMessageMax`, for the same reasons.
 */
export const ENTRIES_PER_MESSAGE_MAX = 4096;

/** Most sequence numbers in one ack: a leader acks at most a slot window of batches at once. */
export const SEQS_PER_MESSAGE_MAX = 65_536;

/** Largest command payload, in UTF-8 bytes: the protocol's own `payloadBytesMax`. */
export const PAYLOAD_BYTES_MAX = DEFAULT_LIMITS.payloadBytesMax;

/**
 * Most characters (UTF-16 units) of snapshot text in one `snapshot-chunk`: the protocol's own
 * `snapshotChunkUnits`. Not raised beyond it like the other ceilings: a chunk must fit one UDP
 * datagram ({@link DATAGRAM_BYTES_MAX}) with room for its other fields in either codec. In binary a
 * unit takes at most 3 UTF-8 bytes (a 4-byte character is 2 units): 10240 units are at most 30 KiB.
 * In JSON a control character or a lone surrogate is escaped to 6 bytes (`\u0001`): at most 60 KiB.
 */
export const SNAPSHOT_CHUNK_UNITS_MAX = DEFAULT_LIMITS.snapshotChunkUnits;

/** Most UTF-8 bytes of snapshot text in one chunk: 3 per unit, see {@link SNAPSHOT_CHUNK_UNITS_MAX}. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 3 * SNAPSHOT_CHUNK_UNITS_MAX;

/** Longest snapshot a chunk may belong to, in UTF-16 units: the protocol's `snapshotUnitsMax`. */
export const SNAPSHOT_UNITS_MAX = DEFAULT_LIMITS.snapshotUnitsMax;

/** Largest snapshot checksum: it is a 32-bit hash (`textChecksum`). */
export const CHECKSUM_MAX = 0xffff_ffff;

/**
 * A problem found in a field: `null` when there is none, otherwise the rest of a path and a reason,
 * e.g. `.value.commands[3].seq: expected a non-negative safe integer, got -1`. Callers prepend their
 * own step, so the path is built only when something is wrong.
 */
type Problem = string | null;

type Fields = Record<string, unknown>;

const COMMAND_KEYS = ["client", "seq", "payload"];
const VALUE_KEYS = ["commands"];
const BALLOT_KEYS = ["round", "node"];
const ACCEPTED_ENTRY_KEYS = ["slot", "ballot", "value"];
const SLOT_VALUE_KEYS = ["slot", "value"];

/** The fields of each message type, `type` included. */
const MESSAGE_KEYS: Readonly<Record<Message["type"], readonly string[]>> = {
  request: ["type", "from", "commands"],
  ack: ["type", "from", "client", "seqs"],
  prepare: ["type", "from", "ballot", "firstSlot"],
  promise: ["type", "from", "ballot", "firstSlot", "accepted", "nextSlot", "floorSlot"],
  accept: ["type", "from", "ballot", "slot", "value"],
  accepted: ["type", "from", "ballot", "slot", "value"],
  reject: ["type", "from", "ballot", "promised", "slot"],
  decide: ["type", "from", "entries"],
  heartbeat: ["type", "from", "ballot", "decidedThrough", "proposedThrough"],
  catchup: ["type", "from", "role", "fromSlot", "toSlot"],
  "snapshot-request": ["type", "from", "role", "slot", "offset"],
  "snapshot-chunk": ["type", "from", "slot", "length", "checksum", "offset", "data"],
  "rejoin-query": ["type", "from", "nonce", "promised"],
  "rejoin-report": [
    "type",
    "from",
    "nonce",
    "voting",
    "promised",
    "votedThrough",
    "decidedThrough",
    "leaderBallot",
    "proposedThrough",
  ],
  refuse: ["type", "from", "client", "reason", "seqs"],
};

/**
 * Checks that `input` is a well-formed {@link Message}: every field of its type present with the
 * right type and no others, every number a non-negative safe integer, enums known, arrays and
 * payloads within the limits above. Returns the input itself (not a copy) when it is valid.
 *
 * @example
 * const result = validateMessage(JSON.parse('{"type":"heartbeat","from":1,"ballot":{"round":3,"node":1},"decidedThrough":-1}'));
 * // { ok: false, error: "heartbeat.decidedThrough: expected a non-negative safe integer, got -1" }
 */
export function validateMessage(input: unknown): Result<Message, string> {
  if (!isFields(input)) return err(`message: expected an object, got ${describe(input)}`);
  const type = input.type;
  if (typeof type !== "string" || !Object.hasOwn(MESSAGE_KEYS, type)) {
    return err(
      `message.type: expected one of ${Object.keys(MESSAGE_KEYS).join(", ")}, got ${describe(type)}`,
    );
  }
  const problem = messageProblem(input, type as Message["type"]);
  return problem === null ? ok(input as unknown as Message) : err(`${type}${problem}`);
}

function messageProblem(m: Fields, type: Message["type"]): Problem {
  switch (type) {
    case "request":
      return (
        field(m, "from", uintProblem) ??
        field(m, "commands", commandsProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "ack":
      return (
        field(m, "from", uintProblem) ??
        field(m, "client", uintProblem) ??
        field(m, "seqs", seqsProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "refuse":
      return (
        field(m, "from", uintProblem) ??
        field(m, "client", uintProblem) ??
        field(m, "reason", refusalReasonProblem) ??
        field(m, "seqs", seqsProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "prepare":
      return (
        field(m, "from", uintProblem) ??
        field(m, "ballot", ballotProblem) ??
        field(m, "firstSlot", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "promise":
      return (
        field(m, "from", uintProblem) ??
        field(m, "ballot", ballotProblem) ??
        field(m, "firstSlot", uintProblem) ??
        field(m, "accepted", acceptedEntriesProblem) ??
        field(m, "nextSlot", nextSlotProblem) ??
        field(m, "floorSlot", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "accept":
    case "accepted":
      return (
        field(m, "from", uintProblem) ??
        field(m, "ballot", ballotProblem) ??
        field(m, "slot", uintProblem) ??
        field(
          m,
          "value",
          type === "accepted" ? (x) => (x === null ? null : valueProblem(x)) : valueProblem,
        ) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "reject":
      return (
        field(m, "from", uintProblem) ??
        field(m, "ballot", ballotProblem) ??
        field(m, "promised", ballotProblem) ??
        field(m, "slot", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "decide":
      return (
        field(m, "from", uintProblem) ??
        field(m, "entries", slotValuesProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "heartbeat":
      return (
        field(m, "from", uintProblem) ??
        field(m, "ballot", ballotProblem) ??
        field(m, "decidedThrough", uintProblem) ??
        field(m, "proposedThrough", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "catchup":
      return (
        field(m, "from", uintProblem) ??
        field(m, "role", roleProblem) ??
        field(m, "fromSlot", uintProblem) ??
        field(m, "toSlot", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "snapshot-request":
      return (
        field(m, "from", uintProblem) ??
        field(m, "role", roleProblem) ??
        field(m, "slot", uintProblem) ??
        field(m, "offset", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "snapshot-chunk":
      return (
        field(m, "from", uintProblem) ??
        field(m, "slot", uintProblem) ??
        field(m, "length", snapshotLengthProblem) ??
        field(m, "checksum", checksumProblem) ??
        field(m, "offset", uintProblem) ??
        field(m, "data", snapshotDataProblem) ??
        chunkRangeProblem(m) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "rejoin-query":
      return (
        field(m, "from", uintProblem) ??
        field(m, "nonce", uintProblem) ??
        field(m, "promised", ballotProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
    case "rejoin-report":
      return (
        field(m, "from", uintProblem) ??
        field(m, "nonce", uintProblem) ??
        field(m, "voting", booleanProblem) ??
        field(m, "promised", ballotProblem) ??
        field(m, "votedThrough", uintProblem) ??
        field(m, "decidedThrough", uintProblem) ??
        field(m, "leaderBallot", ballotProblem) ??
        field(m, "proposedThrough", uintProblem) ??
        extraKeys(m, MESSAGE_KEYS[type])
      );
  }
}

function booleanProblem(x: unknown): Problem {
  return typeof x === "boolean" ? null : `: expected true or false, got ${describe(x)}`;
}

// --- the parts of a message ----------------------------------------------------------------------

function ballotProblem(x: unknown): Problem {
  if (!isFields(x)) return `: expected a ballot object, got ${describe(x)}`;
  return field(x, "round", uintProblem) ?? field(x, "node", uintProblem) ?? extraKeys(x, BALLOT_KEYS);
}

function commandProblem(x: unknown): Problem {
  if (!isFields(x)) return `: expected a command object, got ${describe(x)}`;
  // Commands are most of what a frame holds: check the common case in one go, explain only failures.
  const payload = x.payload;
  if (
    isUint(x.client) &&
    isUint(x.seq) &&
    typeof payload === "string" &&
    payload.length * 3 <= PAYLOAD_BYTES_MAX &&
    isWellFormedUnicode(payload) &&
    keyCount(x) === COMMAND_KEYS.length
  ) {
    return null;
  }
  return (
    field(x, "client", uintProblem) ??
    field(x, "seq", uintProblem) ??
    field(x, "payload", payloadProblem) ??
    extraKeys(x, COMMAND_KEYS)
  );
}

function commandsProblem(x: unknown): Problem {
  return arrayProblem(x, COMMANDS_PER_MESSAGE_MAX, "commands", commandProblem);
}

function valueProblem(x: unknown): Problem {
  if (!isFields(x)) return `: expected a value object, got ${describe(x)}`;
  return field(x, "commands", commandsProblem) ?? extraKeys(x, VALUE_KEYS);
}

function acceptedEntryProblem(x: unknown): Problem {
  if (!isFields(x)) return `: expected an accepted entry object, got ${describe(x)}`;
  return (
    field(x, "slot", uintProblem) ??
    field(x, "ballot", ballotProblem) ??
    field(x, "value", valueProblem) ??
    extraKeys(x, ACCEPTED_ENTRY_KEYS)
  );
}

function acceptedEntriesProblem(x: unknown): Problem {
  return arrayProblem(x, ENTRIES_PER_MESSAGE_MAX, "entries", acceptedEntryProblem);
}

function slotValueProblem(x: unknown): Problem {
  if (!isFields(x)) return `: expected a slot value object, got ${describe(x)}`;
  return field(x, "slot", uintProblem) ?? field(x, "value", valueProblem) ?? extraKeys(x, SLOT_VALUE_KEYS);
}

function slotValuesProblem(x: unknown): Problem {
  return arrayProblem(x, ENTRIES_PER_MESSAGE_MAX, "entries", slotValueProblem);
}

function seqsProblem(x: unknown): Problem {
  return arrayProblem(x, SEQS_PER_MESSAGE_MAX, "sequence numbers", uintProblem);
}

function nextSlotProblem(x: unknown): Problem {
  return x === null ? null : uintProblem(x);
}

function refusalReasonProblem(x: unknown): Problem {
  return typeof x === "string" && (REFUSE_REASONS as readonly string[]).includes(x)
    ? null
    : `: expected one of ${REFUSE_REASONS.join(", ")}, got ${describe(x)}`;
}

function roleProblem(x: unknown): Problem {
  return typeof x === "string" && (ROLES as readonly string[]).includes(x)
    ? null
    : `: expected one of ${ROLES.join(", ")}, got ${describe(x)}`;
}

function payloadProblem(x: unknown): Problem {
  if (typeof x !== "string") return `: expected a string, got ${describe(x)}`;
  // A UTF-16 unit is 1 to 3 UTF-8 bytes (a surrogate pair, 2 units, is 4), so short strings need no count.
  if (x.length * 3 > PAYLOAD_BYTES_MAX) {
    const bytes = utf8ByteLength(x);
    if (bytes > PAYLOAD_BYTES_MAX) return `: ${bytes} UTF-8 bytes exceeds the limit of ${PAYLOAD_BYTES_MAX}`;
  }
  // A lone surrogate cannot be encoded as UTF-8: a codec would silently replace it, and replicas
  // would then hold two different values for one command.
  if (!isWellFormedUnicode(x)) return ": not well-formed Unicode (lone surrogate)";
  return null;
}

function snapshotLengthProblem(x: unknown): Problem {
  if (!isUint(x)) return uintProblem(x);
  return x > SNAPSHOT_UNITS_MAX ? `: ${x} characters exceeds the limit of ${SNAPSHOT_UNITS_MAX}` : null;
}

function checksumProblem(x: unknown): Problem {
  return isUint(x) && x <= CHECKSUM_MAX ? null : `: expected a 32-bit unsigned integer, got ${describe(x)}`;
}

/**
 * Snapshot text is not a command payload: it is bounded in UTF-16 units (the snapshot is cut by
 * units), but must be well-formed Unicode for the same reason, and the chunker never splits a pair.
 */
function snapshotDataProblem(x: unknown): Problem {
  if (typeof x !== "string") return `: expected a string, got ${describe(x)}`;
  if (x.length > SNAPSHOT_CHUNK_UNITS_MAX) {
    return `: ${x.length} characters exceeds the limit of ${SNAPSHOT_CHUNK_UNITS_MAX}`;
  }
  if (!isWellFormedUnicode(x)) return ": not well-formed Unicode (lone surrogate)";
  return null;
}

/** A chunk lies within its snapshot: `offset + data.length <= length` (fields already checked). */
function chunkRangeProblem(m: Fields): Problem {
  const offset = m.offset as number;
  const units = (m.data as string).length;
  const length = m.length as number;
  // offset <= 2^53 - 1 and units <= 16384, so the sum may round, but never down to `length` or below.
  return offset + units > length
    ? `.offset: ${offset} + ${units} characters of data runs past the snapshot length ${length}`
    : null;
}

// --- building blocks -----------------------------------------------------------------------------

function uintProblem(x: unknown): Problem {
  return isUint(x) ? null : `: expected a non-negative safe integer, got ${describe(x)}`;
}

/** Whether `x` is a number the wire can carry: a safe integer, zero or more. */
export function isUint(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function field(object: Fields, key: string, check: (x: unknown) => Problem): Problem {
  const problem = check(object[key]);
  return problem === null ? null : `.${key}${problem}`;
}

function arrayProblem(x: unknown, max: number, what: string, check: (item: unknown) => Problem): Problem {
  if (!Array.isArray(x)) return `: expected an array, got ${describe(x)}`;
  if (x.length > max) return `: ${x.length} ${what} exceeds the limit of ${max}`;
  for (let i = 0; i < x.length; i++) {
    const problem = check(x[i]);
    if (problem !== null) return `[${i}]${problem}`;
  }
  return null;
}

/**
 * Refuses fields beyond `keys`. The caller has already checked that each of `keys` is present, so a
 * larger count means an unknown field: it would otherwise ride along into the core and storage.
 */
function extraKeys(object: Fields, keys: readonly string[]): Problem {
  if (keyCount(object) === keys.length) return null;
  for (const key in object) if (!keys.includes(key)) return `: unexpected field ${JSON.stringify(key)}`;
  return null;
}

function keyCount(object: Fields): number {
  let count = 0;
  for (const _ in object) count++;
  return count;
}

function isFields(x: unknown): x is Fields {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** A short description of a bad value for an error message (never the whole value). */
function describe(x: unknown): string {
  if (x === undefined) return "nothing (missing)";
  if (x === null) return "null";
  if (Array.isArray(x)) return "an array";
  switch (typeof x) {
    case "number":
      return String(x);
    case "string":
      return x.length <= 24 ? JSON.stringify(x) : `${JSON.stringify(x.slice(0, 24))}...`;
    case "object":
      return "an object";
    default:
      return `a ${typeof x}`;
  }
}

export { isWellFormedUnicode, utf8ByteLength };
