import { err, ok, type Result } from "./result.js";

/**
 * A replica's state as of a decided slot: what the application built from slots 1 ..= `slot`, and
 * which (client, seq) pairs those slots delivered (so that exactly-once delivery survives the log
 * being dropped). A node keeps its newest snapshot and drops the decided log below it; a peer that
 * needs those slots gets the snapshot instead (`snapshot-chunk` messages).
 */
export interface Snapshot {
  /** Every slot through this one is in the snapshot (at least 1). */
  readonly slot: number;
  /** The learner's session table, as `SessionTable.export()` gives it. */
  readonly sessions: readonly number[];
  /** The application's state, as its `snapshot()` returned it (well-formed Unicode). */
  readonly app: string;
}

/**
 * A snapshot as one text, for the wire: a JSON header line `{"slot":S,"sessions":[...]}`, a newline,
 * then the application's state verbatim (so a large state is not escaped again).
 */
export function encodeSnapshot(snapshot: Snapshot): string {
  return `${JSON.stringify({ slot: snapshot.slot, sessions: snapshot.sessions })}\n${snapshot.app}`;
}

/** The inverse of {@link encodeSnapshot}; an error names what is wrong with a damaged text. */
export function decodeSnapshot(text: string): Result<Snapshot, string> {
  const newline = text.indexOf("\n");
  if (newline < 0) return err("snapshot has no header line");
  let header: unknown;
  try {
    header = JSON.parse(text.slice(0, newline));
  } catch {
    return err("snapshot header is not JSON");
  }
  if (typeof header !== "object" || header === null) return err("snapshot header is not an object");
  const { slot, sessions } = header as { slot?: unknown; sessions?: unknown };
  if (!isCount(slot) || slot < 1) return err("snapshot slot must be a positive integer");
  if (!Array.isArray(sessions) || !sessions.every(isCount))
    return err("snapshot sessions must be non-negative integers");
  return ok({ slot, sessions, app: text.slice(newline + 1) });
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * FNV-1a (32 bits) of a text's UTF-16 code units: a check that an assembled snapshot is the one that
 * was cut into chunks (the transports' checksums guard each datagram, not the assembly).
 */
export function textChecksum(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * Where the chunk that starts at `offset` ends, for chunks of at most `units` code units: never
 * between the two halves of a surrogate pair, so every chunk is well-formed Unicode on its own.
 */
export function chunkEnd(text: string, offset: number, units: number): number {
  let end = Math.min(text.length, offset + units);
  if (end < text.length && end > offset + 1) {
    const last = text.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--;
  }
  return end;
}
