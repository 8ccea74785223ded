import { parentPort, workerData } from "node:worker_threads";
import { type ReplayRequest, recordRun } from "./replay-run.js";

/** A worker thread that runs one replay (`replay.ts` starts it, so the server stays responsive). */
const port = parentPort;
if (port === null) throw new Error("the replay worker must run in a worker thread");
const run = await recordRun(workerData as ReplayRequest);
port.postMessage(run);
