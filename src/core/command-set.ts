import type { NodeId } from "./ballot.js";
import type { Command } from "./messages.js";

/**
 * Offsets from a client's base that V8 keeps as small integers (31 bits with pointer compression):
 * a `Set` of them hashes and stores far faster than one of the large sequence numbers clients use
 * (`paxos client` numbers from the clock, about 2^51), which each sit in a heap number.
 */
const OFFSET_LIMIT = 2 ** 30;

/** One client's sequence numbers: offsets from the first one added, and any too far from it. */
interface ClientSeqs {
  readonly base: number;
  readonly near: Set<number>;
  far: Set<number> | null;
}

/**
 * A set of commands by (client, seq), without building a string key per command: the proposer
 * checks every command of every request against two of these, and string keys were most of its
 * garbage under load.
 */
export class CommandSet {
  private readonly byClient = new Map<NodeId, ClientSeqs>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** How many commands of `client` the set holds. */
  countOf(client: NodeId): number {
    const seqs = this.byClient.get(client);
    if (seqs === undefined) return 0;
    return seqs.near.size + (seqs.far?.size ?? 0);
  }

  has(command: Command): boolean {
    const seqs = this.byClient.get(command.client);
    if (seqs === undefined) return false;
    const offset = command.seq - seqs.base;
    if (offset > -OFFSET_LIMIT && offset < OFFSET_LIMIT) return seqs.near.has(offset);
    return seqs.far?.has(command.seq) ?? false;
  }

  /** Adds a command; false if it was there already. */
  add(command: Command): boolean {
    let seqs = this.byClient.get(command.client);
    if (seqs === undefined) {
      seqs = { base: command.seq, near: new Set(), far: null };
      this.byClient.set(command.client, seqs);
    }
    const offset = command.seq - seqs.base;
    if (offset > -OFFSET_LIMIT && offset < OFFSET_LIMIT) {
      if (seqs.near.has(offset)) return false;
      seqs.near.add(offset);
    } else {
      seqs.far ??= new Set();
      if (seqs.far.has(command.seq)) return false;
      seqs.far.add(command.seq);
    }
    this.count++;
    return true;
  }

  /** Removes a command; false if it was not there. */
  delete(command: Command): boolean {
    const seqs = this.byClient.get(command.client);
    if (seqs === undefined) return false;
    const offset = command.seq - seqs.base;
    const removed =
      offset > -OFFSET_LIMIT && offset < OFFSET_LIMIT
        ? seqs.near.delete(offset)
        : (seqs.far?.delete(command.seq) ?? false);
    if (!removed) return false;
    this.count--;
    // An emptied client starts over from its next command's number.
    if (seqs.near.size === 0 && (seqs.far === null || seqs.far.size === 0))
      this.byClient.delete(command.client);
    return true;
  }

  clear(): void {
    this.byClient.clear();
    this.count = 0;
  }
}
