/**
 * Counters of input a role refused: a message whose fields fall outside what the node knows (a
 * ballot past the ceiling, a slot beyond the horizon), state nobody asked for (an unrequested
 * snapshot chunk or decide), a request from a non-member, or one past a rate or size bound. Refused
 * input never touches state; it is dropped and counted here by reason, so an operator (and the tests
 * of docs/security.md) can see what was refused and why.
 *
 * Reasons are short kebab-case names, each documented in docs/security.md where it is introduced.
 */
export class Refusals {
  private readonly counts = new Map<string, number>();
  private totalCount = 0;

  /** Counts one refused input. */
  count(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    this.totalCount++;
  }

  /** How many inputs were refused for `reason`. */
  of(reason: string): number {
    return this.counts.get(reason) ?? 0;
  }

  get total(): number {
    return this.totalCount;
  }

  /** Every reason with its count, sorted by reason (for logs and stats). */
  byReason(): Record<string, number> {
    const result: Record<string, number> = {};
    for (const reason of [...this.counts.keys()].sort()) result[reason] = this.counts.get(reason) as number;
    return result;
  }
}
