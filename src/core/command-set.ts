import type { NodeId } from "./ballot.js";
import type { Command } from "./messages.js";

/**
 * A set of commands by (client, seq), without building a string key per command: the proposer
 * checks every command of every request against two of these, and string keys were most of its
 * garbage under load.
 */
export class CommandSet {
  private readonly byClient = new Map<NodeId, Set<number>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(command: Command): boolean {
    return this.byClient.get(command.client)?.has(command.seq) ?? false;
  }

  /** Adds a command; false if it was there already. */
  add(command: Command): boolean {
    let seqs = this.byClient.get(command.client);
    if (seqs === undefined) {
      seqs = new Set();
      this.byClient.set(command.client, seqs);
    }
    if (seqs.has(command.seq)) return false;
    seqs.add(command.seq);
    this.count++;
    return true;
  }

  /** Removes a command; false if it was not there. */
  delete(command: Command): boolean {
    const seqs = this.byClient.get(command.client);
    if (seqs === undefined || !seqs.delete(command.seq)) return false;
    this.count--;
    if (seqs.size === 0) this.byClient.delete(command.client);
    return true;
  }

  clear(): void {
    this.byClient.clear();
    this.count = 0;
  }
}
