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
