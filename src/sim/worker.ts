import { parentPort, workerData } from "node:worker_threads";
import { addToSummary, describeRun, emptySummary, runSeed } from "./run.js";
import type { StrayOptions } from "./scenario.js";

/** A worker thread that runs every `stride`-th seed of a band and reports back in chunks. */
interface Job {
  readonly seeds: readonly number[];
  /** The stray peer (`paxos sim --stray`); absent: the default mix. */
  readonly stray?: StrayOptions;
}

const job = workerData as Job;
const port = parentPort;
if (port === null) throw new Error("sim worker must run in a worker thread");
let summary = emptySummary();
const failures: string[] = [];
let sinceReport = 0;
let reportedMs = performance.now();
for (const seed of job.seeds) {
  const result = await runSeed(seed, job.stray === undefined ? {} : { stray: job.stray });
  addToSummary(summary, result);
  if (result.violations.length > 0) failures.push(describeRun(result, job.stray));
  // Every 25 seeds, or 500 ms: an interrupted band's summary then misses little.
  if (++sinceReport >= 25 || performance.now() - reportedMs >= 500) {
    port.postMessage({ kind: "progress", summary, failures: failures.splice(0) });
    summary = emptySummary();
    sinceReport = 0;
    reportedMs = performance.now();
  }
}
port.postMessage({ kind: "done", summary, failures });
