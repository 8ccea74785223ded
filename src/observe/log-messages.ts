/**
 * The log messages other code reads. Harnesses, tests and benchmarks find these lines in a
 * process's JSON log on stderr (pino's `msg` field); the code that logs them uses these constants,
 * so renaming one changes both sides at once. Fields the readers rely on are named beside each.
 */
export const LOG_MESSAGES = {
  /** A role or node is up and listening: `{ endpoint | transport, data }`. */
  started: "started",
  /** SIGTERM or SIGINT: `{ signal, stats }` (the driver's counters). */
  stopping: "stopping",
  /** A node's state machine as it stops: `{ commands, digest, deliveredThrough, ... }`. */
  stateMachine: "state machine",
  // How a data directory was opened (loaded, damaged, moved aside, ...) is logged by
  // runtime/data-dir.ts with the messages of `DATA_DIR_MESSAGES`: read those there.
  /** A node restarted from its own snapshot: `{ slot, commands, digest }`; it prints from `commands` on. */
  restoredFromSnapshot: "restored from snapshot",
  /** A node took a snapshot: `{ slot, commands, digest, how: "taken" }`. */
  snapshotTaken: "snapshot taken; log compacted",
  /**
   * A node installed a peer's snapshot: `{ slot, commands, digest, how: "installed", stdoutLines }`;
   * the next line it prints is value number `commands + 1`, and it had printed `stdoutLines` lines.
   */
  snapshotInstalled: "snapshot installed from a peer",
  /** A proposer became the leader: `{ mode, ballot }` (see `proposerModeMessage`). */
  nowLeader: "now leader",
  /** `paxos node --http`: the leader this node knows changed: `{ leader (null: none), ballot }`. */
  leaderChanged: "leader changed",
  /** `paxos node --stats-ms N`, every N ms: the node's counters (fields: `NodeStats`, cli/node.ts). */
  stats: "stats",
} as const;

/**
 * What a proposer logs when its mode changes: "now follower", "now candidate", "now leader"
 * (`LOG_MESSAGES.nowLeader`, which the course harness runner reads to find the leader).
 */
export function proposerModeMessage(mode: string): string {
  return `now ${mode}`;
}

export type LogMessage = (typeof LOG_MESSAGES)[keyof typeof LOG_MESSAGES];

/** One JSON log line, parsed: its `msg` and the rest of its fields. */
export interface LogRecord {
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** The record on one line of a JSON log, or null for any other line (a `FATAL` line, a torn one). */
export function parseLogLine(line: string): LogRecord | null {
  if (!line.startsWith("{")) return null;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== "object" || parsed === null) return null;
    const msg = (parsed as { msg?: unknown }).msg;
    return typeof msg === "string" ? (parsed as LogRecord) : null;
  } catch {
    return null;
  }
}

/** Every record with message `msg` in a process's log text (its whole stderr so far). */
export function logRecords(text: string, msg: LogMessage): LogRecord[] {
  const found: LogRecord[] = [];
  for (const line of text.split("\n")) {
    // Cheap test first: most lines are other messages.
    if (!line.includes(msg)) continue;
    const record = parseLogLine(line);
    if (record?.msg === msg) found.push(record);
  }
  return found;
}

/** Whether a process's log text has a record with message `msg` yet. */
export function hasLogged(text: string, msg: LogMessage): boolean {
  return logRecords(text, msg).length > 0;
}

/** A whole-number field of a record (0 when missing or not a number). */
export function numberField(record: LogRecord, name: string): number {
  const value = record[name];
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}
