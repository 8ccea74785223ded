import { setTimeout as sleep } from "node:timers/promises";

export interface WaitOptions {
  /** Give up after this long (default 15 s: a loaded 2-core machine starts a process slowly). */
  readonly timeoutMs?: number;
  /**
   * Poll every this many ms once the first polls are spent (default 10). The first
   * `immediatePolls` polls wait only one event-loop turn (`setImmediate`), so a condition that
   * in-process code makes true within a few turns is seen at once, with no timer's delay.
   */
  readonly pollMs?: number;
  /** Polls that wait one event-loop turn before falling back to `pollMs` (default 50). */
  readonly immediatePolls?: number;
  /** Said in the error on a timeout: what was seen instead. */
  readonly detail?: () => string;
}

/** Default for `WaitOptions.timeoutMs`. */
export const WAIT_TIMEOUT_MS = 15_000;

/**
 * Resolves, with the milliseconds it took, once `condition()` holds; rejects after `timeoutMs`
 * with an error naming `what` (and `detail()`, if given). The one wait of the tests, harnesses and
 * benchmarks: no fixed sleeps where a condition can be awaited.
 *
 * @example
 * await waitFor(() => proc.stderr.includes("started"), "node 1 to start", { timeoutMs: 10_000 });
 */
export async function waitFor(
  condition: () => boolean,
  what: string,
  options: WaitOptions = {},
): Promise<number> {
  const timeoutMs = options.timeoutMs ?? WAIT_TIMEOUT_MS;
  const pollMs = options.pollMs ?? 10;
  const immediatePolls = options.immediatePolls ?? 50;
  const start = performance.now();
  for (let polls = 0; ; polls++) {
    if (condition()) return performance.now() - start;
    const waited = performance.now() - start;
    if (waited > timeoutMs) {
      const detail = options.detail ? `\n${options.detail()}` : "";
      throw new Error(`timed out after ${Math.round(waited)} ms waiting for ${what}${detail}`);
    }
    if (polls < immediatePolls) await new Promise<void>((resolve) => setImmediate(resolve));
    else await sleep(pollMs);
  }
}
