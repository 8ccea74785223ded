import { assert } from "./assert.js";
import type { NodeId } from "./ballot.js";
import type { Command } from "./messages.js";

/**
 * Which (client, seq) pairs have been delivered, so that a command resent by its client and chosen in
 * two slots is delivered only once. Every learner feeds it the same log in the same order, so every
 * learner drops the same duplicates.
 *
 * Per client it keeps the delivered sequence numbers as a short sorted list of disjoint ranges: a
 * client numbering 1, 2, 3, ... needs one range, and a client that restarts numbering from a higher
 * base (see `ClientOptions.firstSeq`) adds one more. Both the number of clients and the ranges per
 * client are bounded; past a bound the least recently served client is forgotten, or the gap between
 * a client's two oldest ranges is given up (its seqs then count as delivered), deterministically. A
 * forgotten command could be delivered twice, a given-up one never: size the limits above what
 * clients really do.
 */
export class SessionTable {
  private readonly clients = new Map<NodeId, Range[]>();
  private lastClient: NodeId = 0;

  constructor(
    private readonly clientsMax: number,
    private readonly rangesMax: number,
  ) {
    assert(clientsMax >= 1 && rangesMax >= 1, "session table limits must be positive");
  }

  isDelivered(command: Command): boolean {
    const ranges = this.clients.get(command.client);
    if (ranges === undefined) return false;
    const index = rangeAtOrBefore(ranges, command.seq);
    return index >= 0 && command.seq <= (ranges[index] as Range).hi;
  }

  /** Marks a command delivered; returns false if it already was (a duplicate to drop). */
  deliver(command: Command): boolean {
    const seq = command.seq;
    let ranges = this.clients.get(command.client);
    if (ranges === undefined) {
      if (this.clients.size >= this.clientsMax) {
        const oldest = this.clients.keys().next().value as NodeId;
        this.clients.delete(oldest);
      }
      ranges = [];
      this.clients.set(command.client, ranges);
    } else if (this.lastClient !== command.client) {
      // Re-insert to keep the map in least-recently-served order (cheaply: once per run of a client).
      this.clients.delete(command.client);
      this.clients.set(command.client, ranges);
    }
    this.lastClient = command.client;
    // The common case: the next seq after the newest range.
    const last = ranges[ranges.length - 1];
    if (last !== undefined && seq === last.hi + 1) {
      last.hi = seq;
      return true;
    }
    const index = rangeAtOrBefore(ranges, seq);
    const before = index >= 0 ? (ranges[index] as Range) : undefined;
    if (before !== undefined && seq <= before.hi) return false;
    const after = ranges[index + 1];
    const joinsBefore = before !== undefined && before.hi + 1 === seq;
    const joinsAfter = after !== undefined && after.lo - 1 === seq;
    if (joinsBefore && joinsAfter) {
      (before as Range).hi = (after as Range).hi;
      ranges.splice(index + 1, 1);
    } else if (joinsBefore) (before as Range).hi = seq;
    else if (joinsAfter) (after as Range).lo = seq;
    else ranges.splice(index + 1, 0, { lo: seq, hi: seq });
    if (ranges.length > this.rangesMax) {
      // Give up the oldest gap: merge the two lowest ranges.
      const first = ranges[0] as Range;
      first.hi = (ranges[1] as Range).hi;
      ranges.splice(1, 1);
    }
    return true;
  }

  /** How many disjoint ranges of delivered seqs a client has (1 for a client numbering without gaps). */
  rangeCount(client: NodeId): number {
    return this.clients.get(client)?.length ?? 0;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /**
   * The table as a flat list of numbers, for a snapshot: per client, least recently served first,
   * `client, rangeCount, lo1, hi1, lo2, hi2, ...`. `import` of it rebuilds the same table.
   */
  export(): number[] {
    const flat: number[] = [];
    for (const [client, ranges] of this.clients) {
      flat.push(client, ranges.length);
      for (const range of ranges) flat.push(range.lo, range.hi);
    }
    return flat;
  }

  /**
   * Replaces the table with one `export()` gave (from a snapshot). Returns an error, changing
   * nothing, if the list is malformed.
   */
  import(flat: readonly number[]): string | null {
    const clients = new Map<NodeId, Range[]>();
    let at = 0;
    while (at < flat.length) {
      const client = flat[at] as number;
      const count = flat[at + 1];
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
      if (count > this.rangesMax) return `client ${client}: ${count} ranges, more than ${this.rangesMax}`;
      clients.set(client, ranges);
      at += 2 + count * 2;
    }
    if (clients.size > this.clientsMax) return `${clients.size} clients, more than ${this.clientsMax}`;
    this.clients.clear();
    for (const [client, ranges] of clients) this.clients.set(client, ranges);
    this.lastClient = 0;
    return null;
  }
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
