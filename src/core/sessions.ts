import { assert } from "./assert.js";
import type { NodeId } from "./ballot.js";
import type { Command, RefusalReason } from "./messages.js";

/**
 * The two bounds of a session table. They decide which commands replicas apply, so they are
 * cluster-wide: part of the cluster configuration, and recorded in every snapshot of the table.
 */
export interface SessionLimits {
  /** Most distinct clients the table remembers; past it a new client's commands are refused. */
  readonly clientsMax: number;
  /** Most ranges of delivered seqs per client; a command that would open one more is refused. */
  readonly clientRangesMax: number;
}

/** Deliberate bugs, for proving the simulator's checkers can fail. Tests only. */
export interface SessionBugs {
  /**
   * Past one range per client, give up the gap between the two oldest silently (they count as
   * delivered though nothing in the gap was): what the table did at its bound before refusals.
   */
  readonly dropRangeSilently?: boolean;
}

/** What delivering a decided command did: applied, dropped as a duplicate, or refused (never applied). */
export type DeliveryOutcome = "delivered" | "duplicate" | RefusalReason;

/**
 * The first number of an exported table: client ids are positive, so a list that starts with 0 is
 * one with the header `0, clientsMax, clientRangesMax, closedCount, closed client ids...`.
 */
const HEADER_MARK = 0;

/**
 * Which (client, seq) pairs have been delivered, so that a command resent by its client and chosen in
 * two slots is delivered only once. Every learner feeds it the same log in the same order, and every
 * learner of a cluster builds it with the same limits (cluster configuration, carried in snapshots),
 * so every learner makes the same decision for every command at the same slot.
 *
 * Per client it keeps the delivered sequence numbers as a short sorted list of disjoint ranges: a
 * client numbering 1, 2, 3, ... needs one range, and a client that restarts numbering from a higher
 * base (see `ClientOptions.firstSeq`) adds one more.
 *
 * Its bounds never become a safety failure: nothing is ever forgotten and no gap is ever given up.
 * Instead, in slot order:
 * - a command of a client the table does not know, when it already holds `clientsMax` clients, is
 *   refused (`"clients-full"`): never applied, and its client is told;
 * - a command that would open a range past `clientRangesMax` for its client is refused, and so is
 *   every later undelivered command of that client (`"client-gaps"`: the client is closed; it must go
 *   on under a new id). Closing makes a refusal final: a refused command can never be applied later
 *   from another copy of it in the log, so the refusal its client saw stays true.
 * Both conditions only ever grow (no client leaves the table, a closed client stays closed), so a
 * proposer may refuse a request at once from its learner's table: delivery would refuse it too.
 */
export class SessionTable {
  private readonly clients = new Map<NodeId, Range[]>();
  private readonly closed = new Set<NodeId>();
  private readonly bugs: SessionBugs;
  /** Commands refused, by reason (this table's life). */
  refusedClientsFull = 0;
  refusedClientGaps = 0;

  constructor(
    readonly limits: SessionLimits,
    bugs: SessionBugs = {},
  ) {
    assert(
      Number.isSafeInteger(limits.clientsMax) &&
        limits.clientsMax >= 1 &&
        Number.isSafeInteger(limits.clientRangesMax) &&
        limits.clientRangesMax >= 1,
      "session table limits must be positive integers",
    );
    this.bugs = bugs;
  }

  isDelivered(command: Command): boolean {
    const ranges = this.clients.get(command.client);
    if (ranges === undefined) return false;
    const index = rangeAtOrBefore(ranges, command.seq);
    return index >= 0 && command.seq <= (ranges[index] as Range).hi;
  }

  /**
   * Whether a command not delivered yet is certain to be refused whenever it is decided (the table
   * is full and does not know its client, or its client is closed); null if it may be applied.
   */
  refusal(command: Command): RefusalReason | null {
    if (this.closed.has(command.client)) return "client-gaps";
    if (!this.clients.has(command.client) && this.clients.size >= this.limits.clientsMax)
      return "clients-full";
    return null;
  }

  /** Delivers a decided command: marks it delivered, or says why it is not to be applied. */
  deliver(command: Command): DeliveryOutcome {
    const seq = command.seq;
    let ranges = this.clients.get(command.client);
    if (ranges === undefined) {
      if (this.clients.size >= this.limits.clientsMax) {
        this.refusedClientsFull++;
        return "clients-full";
      }
      ranges = [];
      this.clients.set(command.client, ranges);
    }
    // The common case: the next seq after the newest range.
    const last = ranges[ranges.length - 1];
    if (
      last !== undefined &&
      seq === last.hi + 1 &&
      (this.closed.size === 0 || !this.closed.has(command.client))
    ) {
      last.hi = seq;
      return "delivered";
    }
    const index = rangeAtOrBefore(ranges, seq);
    const before = index >= 0 ? (ranges[index] as Range) : undefined;
    if (before !== undefined && seq <= before.hi) return "duplicate";
    if (this.closed.has(command.client)) {
      this.refusedClientGaps++;
      return "client-gaps";
    }
    const after = ranges[index + 1];
    const joinsBefore = before !== undefined && before.hi + 1 === seq;
    const joinsAfter = after !== undefined && after.lo - 1 === seq;
    if (joinsBefore && joinsAfter) {
      (before as Range).hi = (after as Range).hi;
      ranges.splice(index + 1, 1);
    } else if (joinsBefore) (before as Range).hi = seq;
    else if (joinsAfter) (after as Range).lo = seq;
    else if (ranges.length >= this.limits.clientRangesMax) {
      this.closed.add(command.client);
      this.refusedClientGaps++;
      return "client-gaps";
    } else ranges.splice(index + 1, 0, { lo: seq, hi: seq });
    if (this.bugs.dropRangeSilently === true && ranges.length > 1) {
      const first = ranges[0] as Range;
      first.hi = (ranges[1] as Range).hi;
      ranges.splice(1, 1);
    }
    return "delivered";
  }

  /** How many disjoint ranges of delivered seqs a client has (1 for a client numbering without gaps). */
  rangeCount(client: NodeId): number {
    return this.clients.get(client)?.length ?? 0;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Whether a client has been closed for too many gaps (all its undelivered commands are refused). */
  isClosed(client: NodeId): boolean {
    return this.closed.has(client);
  }

  /**
   * The table as a flat list of numbers, for a snapshot: a header
   * `0, clientsMax, clientRangesMax, closedCount, closed ids...`, then per client in the order they
   * were first served `client, rangeCount, lo1, hi1, lo2, hi2, ...`. `import` of it rebuilds the same
   * table, and refuses it under other limits.
   */
  export(): number[] {
    const flat: number[] = [
      HEADER_MARK,
      this.limits.clientsMax,
      this.limits.clientRangesMax,
      this.closed.size,
    ];
    for (const client of this.closed) flat.push(client);
    for (const [client, ranges] of this.clients) {
      flat.push(client, ranges.length);
      for (const range of ranges) flat.push(range.lo, range.hi);
    }
    return flat;
  }

  /**
   * Replaces the table with one `export()` gave (from a snapshot). Returns an error, changing
   * nothing, if the list is malformed or was built under other limits than this table's: replicas
   * under different limits would apply different commands from the same log. An empty list (a
   * snapshot taken before any client was served) holds no decision and is taken under any limits.
   */
  import(flat: readonly number[]): string | null {
    if (flat.length === 0) {
      this.clients.clear();
      this.closed.clear();
      return null;
    }
    const header = readHeader(flat);
    if (typeof header === "string") return header;
    const problem = limitsMismatch(header.limits, this.limits);
    if (problem !== null) return problem;
    const clients = new Map<NodeId, Range[]>();
    let at = header.bodyStart;
    while (at < flat.length) {
      const client = flat[at] as number;
      const count = flat[at + 1];
      if (client < 1) return `session list: client id ${client} at ${at}`;
      if (count === undefined || count < 1 || at + 2 + count * 2 > flat.length)
        return `session list cut short at ${at}`;
      const ranges: Range[] = [];
      for (let i = 0; i < count; i++) {
        const lo = flat[at + 2 + i * 2] as number;
        const hi = flat[at + 3 + i * 2] as number;
        const previous = ranges[ranges.length - 1];
        if (lo > hi || (previous !== undefined && lo <= previous.hi + 1))
          return `client ${client}: ranges out of order`;
        ranges.push({ lo, hi });
      }
      if (clients.has(client)) return `client ${client} listed twice`;
      if (count > this.limits.clientRangesMax)
        return `client ${client}: ${count} ranges, more than ${this.limits.clientRangesMax}`;
      clients.set(client, ranges);
      at += 2 + count * 2;
    }
    if (clients.size > this.limits.clientsMax)
      return `${clients.size} clients, more than ${this.limits.clientsMax}`;
    for (const client of header.closed)
      if (!clients.has(client)) return `closed client ${client} has no ranges`;
    this.clients.clear();
    for (const [client, ranges] of clients) this.clients.set(client, ranges);
    this.closed.clear();
    for (const client of header.closed) this.closed.add(client);
    return null;
  }
}

/**
 * The limits an exported session list was built with: null for an empty list (no decision made
 * yet), an error for a list without the header (a format older than cluster-wide limits).
 */
export function sessionListLimits(flat: readonly number[]): SessionLimits | null | string {
  if (flat.length === 0) return null;
  const header = readHeader(flat);
  return typeof header === "string" ? header : header.limits;
}

/**
 * Why a snapshot's session list may not be used under `limits` (another cluster configuration, or
 * a malformed header), or null if it may.
 */
export function sessionLimitsProblem(flat: readonly number[], limits: SessionLimits): string | null {
  const recorded = sessionListLimits(flat);
  if (recorded === null) return null;
  if (typeof recorded === "string") return recorded;
  return limitsMismatch(recorded, limits);
}

/** The clients part of an exported session list (after its header), e.g. for describing it. */
export function sessionListBody(flat: readonly number[]): readonly number[] {
  const header = flat.length === 0 ? null : readHeader(flat);
  return header === null || typeof header === "string" ? flat : flat.slice(header.bodyStart);
}

function readHeader(
  flat: readonly number[],
): { limits: SessionLimits; closed: NodeId[]; bodyStart: number } | string {
  if (flat[0] !== HEADER_MARK || flat.length < 4)
    return "session list without its limits (a snapshot from before cluster-wide session limits)";
  const clientsMax = flat[1] as number;
  const clientRangesMax = flat[2] as number;
  const closedCount = flat[3] as number;
  if (clientsMax < 1 || clientRangesMax < 1) return "session list: limits must be positive";
  if (4 + closedCount > flat.length) return "session list: closed clients cut short";
  const closed = flat.slice(4, 4 + closedCount);
  if (new Set(closed).size !== closed.length) return "session list: a closed client listed twice";
  return { limits: { clientsMax, clientRangesMax }, closed, bodyStart: 4 + closedCount };
}

function limitsMismatch(recorded: SessionLimits, limits: SessionLimits): string | null {
  if (recorded.clientsMax === limits.clientsMax && recorded.clientRangesMax === limits.clientRangesMax)
    return null;
  return (
    `sessions built with clientsMax ${recorded.clientsMax}, clientRangesMax ${recorded.clientRangesMax}; ` +
    `this cluster is configured with clientsMax ${limits.clientsMax}, clientRangesMax ${limits.clientRangesMax}`
  );
}

interface Range {
  lo: number;
  hi: number;
}

/** Index of the last range whose `lo` is at most `seq`, or -1. */
function rangeAtOrBefore(ranges: readonly Range[], seq: number): number {
  let low = 0;
  let high = ranges.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if ((ranges[mid] as Range).lo <= seq) {
      found = mid;
      low = mid + 1;
    } else high = mid - 1;
  }
  return found;
}
