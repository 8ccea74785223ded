import { assert } from "./assert.js";
import type { Prng } from "./prng.js";

/**
 * A named countdown in ticks. Roles own their timeouts and advance them from `tick()`; there are no
 * timers in the core. A stopped timeout never fires.
 */
export class Timeout {
  private remainingTicks = 0;
  private running = false;

  constructor(readonly name: string) {}

  /** (Re)starts the countdown: it fires on the `ticks`-th call to `tick()` from now. */
  start(ticks: number): void {
    assert(
      Number.isInteger(ticks) && ticks >= 1,
      `timeout ${this.name}: ${ticks} ticks must be a positive integer`,
    );
    this.remainingTicks = ticks;
    this.running = true;
  }

  stop(): void {
    this.running = false;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Advances one tick; returns true exactly once, when the countdown reaches zero. */
  tick(): boolean {
    if (!this.running) return false;
    this.remainingTicks--;
    if (this.remainingTicks > 0) return false;
    this.running = false;
    return true;
  }
}

/**
 * Exponential backoff with jitter: attempt 0 waits `baseTicks`, each further attempt doubles it up to
 * `maxTicks`, and a random part of up to half the wait is added so that competing proposers spread out.
 */
export function backoffTicks(prng: Prng, baseTicks: number, maxTicks: number, attempt: number): number {
  const exponent = Math.min(attempt, 20);
  const wait = Math.min(maxTicks, baseTicks * 2 ** exponent);
  return Math.max(1, Math.floor(wait + prng.float() * (wait / 2)));
}
