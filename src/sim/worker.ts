import { parentPort, workerData } from "node:worker_threads";
import { addToSummary, describeRun, emptySummary, runSeed } from "./run.js";

/** A worker thread that runs every `stride`-th seed of a band and reports back in chunks. */
interface Job {
  readonly seeds: readonly number[];
}

const job = workerData as Job;
const port = parentPort;
if (port === null) throw new Error("sim worker must run in a worker thread");
let summary = emptySummary();
const failures: string[] = [];
let sinceReport = 0;
for (const seed of job.seeds) {
  const result = await runSeed(seed);
  addToSummary(summary, result);
  if (result.violations.length > 0) failures.push(describeRun(result));
  if (++sinceReport >= 25) {
    port.postMessage({ kind: "progress", summary, failures: failures.splice(0) });
    summary = emptySummary();
    sinceReport = 0;
  }
}
port.postMessage({ kind: "done", summary, failures });
