/** The deterministic simulator: one seed chooses a cluster, its faults and its whole run. */
export { AppDigest } from "./app.js";
export { SafetyChecker, type Violation } from "./checker.js";
export { TraceHash } from "./hash.js";
export { EventQueue } from "./heap.js";
export { type BandOptions, parseSeedRange, runSeedBand } from "./parallel.js";
export { addToSummary, describeRun, emptySummary, mergeSummaries, runSeed, type Summary } from "./run.js";
export {
  describeScenario,
  FAULT_PHASE_EVENTS_MIN,
  type Scenario,
  type SnapshotSettings,
  STEPS_PER_TICK,
  scenarioForSeed,
} from "./scenario.js";
export { type RunResult, type SimBugs, type SimOptions, Simulation } from "./simulation.js";
