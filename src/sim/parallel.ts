import { Worker } from "node:worker_threads";
import { emptySummary, mergeSummaries, type Summary } from "./run.js";
import type { StrayOptions } from "./scenario.js";

export interface BandOptions {
  readonly workers: number;
  /** The stray peer for every seed (`StrayOptions`; absent: the default mix). */
  readonly stray?: StrayOptions;
  /** Called after each chunk of seeds with the running totals. */
  readonly onProgress?: (summary: Summary) => void;
  /** Called with the report of each failing seed. */
  readonly onFailure?: (report: string) => void;
}

/**
 * Runs seeds on worker threads (each seed is independent and deterministic, so the split does not
 * change any result) and returns the totals.
 */
export async function runSeedBand(seeds: readonly number[], options: BandOptions): Promise<Summary> {
  const total = emptySummary();
  const workers = Math.max(1, Math.min(options.workers, seeds.length));
  const jobs: number[][] = Array.from({ length: workers }, () => []);
  for (let i = 0; i < seeds.length; i++) jobs[i % workers]?.push(seeds[i] as number);
  await Promise.all(
    jobs.map(
      (jobSeeds) =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(new URL("./worker.js", import.meta.url), {
            workerData: { seeds: jobSeeds, ...(options.stray === undefined ? {} : { stray: options.stray }) },
          });
          worker.on("message", (message: { kind: string; summary: Summary; failures: string[] }) => {
            mergeSummaries(total, message.summary);
            for (const report of message.failures) options.onFailure?.(report);
            options.onProgress?.(total);
            if (message.kind === "done") resolve();
          });
          worker.on("error", reject);
          worker.on("exit", (code) => {
            if (code !== 0) reject(new Error(`sim worker exited with code ${code}`));
          });
        }),
    ),
  );
  return total;
}

/** Parses "A..B" (inclusive) into a list of seeds. */
export function parseSeedRange(text: string): { ok: true; seeds: number[] } | { ok: false; error: string } {
  const match = /^(\d+)\.\.(\d+)$/.exec(text.trim());
  if (match === null) return { ok: false, error: `--seeds wants A..B (like 1..2000), got "${text}"` };
  const from = Number(match[1]);
  const to = Number(match[2]);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) {
    return { ok: false, error: `--seeds ${text}: the range is empty or too large` };
  }
  if (to - from >= 10_000_000)
    return { ok: false, error: `--seeds ${text}: at most 10,000,000 seeds per run` };
  const seeds: number[] = [];
  for (let seed = from; seed <= to; seed++) seeds.push(seed);
  return { ok: true, seeds };
}
