import { assert } from "./assert.js";
import type { NodeId } from "./ballot.js";
import type { Command } from "./messages.js";

/**
 * Which (client, seq) pairs have been delivered, so that a command resent by its client and chosen in
 * two slots is delivered only once. Every learner feeds it the same log in the same order, so every
 * learner drops the same duplicates.
 *
 * Per client it keeps a contiguous mark ("every seq up to here is delivered") and the delivered seqs
 * above it. Both the number of clients and the seqs above the mark are bounded; when a bound is hit
 * the oldest client is forgotten, or the mark is moved past a gap, deterministically. A forgotten
 * command could then be delivered twice: size the limits above what clients really do.
 */
export class SessionTable {
  private readonly clients = new Map<NodeId, ClientSession>();
  private lastClient: NodeId = 0;

  constructor(
    private readonly clientsMax: number,
    private readonly seqWindow: number,
  ) {
    assert(clientsMax >= 1 && seqWindow >= 1, "session table limits must be positive");
  }

  isDelivered(command: Command): boolean {
    const session = this.clients.get(command.client);
    if (session === undefined) return false;
    return command.seq <= session.through || session.above.has(command.seq);
  }

  /** Marks a command delivered; returns false if it already was (a duplicate to drop). */
  deliver(command: Command): boolean {
    let session = this.clients.get(command.client);
    if (session === undefined) {
      if (this.clients.size >= this.clientsMax) {
        const oldest = this.clients.keys().next().value as NodeId;
        this.clients.delete(oldest);
      }
      session = { through: 0, above: new Set() };
      this.clients.set(command.client, session);
    } else if (this.lastClient !== command.client) {
      // Re-insert to keep the map in least-recently-delivered order (cheaply: once per run of a client).
      this.clients.delete(command.client);
      this.clients.set(command.client, session);
    }
    this.lastClient = command.client;
    if (command.seq <= session.through) return false;
    if (command.seq === session.through + 1 && session.above.size === 0) {
      session.through++; // the common case: the next seq, no gaps
      return true;
    }
    if (session.above.has(command.seq)) return false;
    session.above.add(command.seq);
    while (session.above.has(session.through + 1)) {
      session.above.delete(session.through + 1);
      session.through++;
    }
    if (session.above.size > this.seqWindow) {
      // Give up the oldest gap: jump the mark to the smallest seq held above it.
      let smallest = Number.POSITIVE_INFINITY;
      for (const seq of session.above) smallest = Math.min(smallest, seq);
      session.through = smallest - 1;
      while (session.above.has(session.through + 1)) {
        session.above.delete(session.through + 1);
        session.through++;
      }
    }
    return true;
  }

  /** The contiguous mark for a client: every seq up to it is delivered. */
  deliveredThrough(client: NodeId): number {
    return this.clients.get(client)?.through ?? 0;
  }

  get clientCount(): number {
    return this.clients.size;
  }
}

interface ClientSession {
  through: number;
  above: Set<number>;
}
