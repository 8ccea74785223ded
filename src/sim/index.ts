/** The deterministic simulator: one seed chooses a cluster, its faults and its whole run. */
export { AppDigest } from "./app.js";
export { SafetyChecker, type Violation } from "./checker.js";
export { TraceHash } from "./hash.js";
export { EventQueue } from "./heap.js";
export { type BandOptions, parseSeedRange, runSeedBand } from "./parallel.js";
export {
  addToSummary,
  describeCounts,
  describeRun,
  emptySummary,
  mergeSummaries,
  runSeed,
  type Summary,
} from "./run.js";
export {
  describeScenario,
  FAULT_PHASE_EVENTS_MIN,
  type Scenario,
  type SnapshotSettings,
  STEPS_PER_TICK,
  STRAY_SHARE,
  type StrayOptions,
  scenarioForSeed,
} from "./scenario.js";
export { type RunResult, type SimBugs, type SimOptions, Simulation, type StrayReport } from "./simulation.js";
export {
  FORGED_ATTACKS,
  REFUSABLE_ATTACKS,
  STRAY_ATTACKS,
  type StrayAttack,
  StrayPeer,
  type StraySettings,
} from "./stray.js";
export type {
  TraceDropReason,
  TraceEvent,
  TraceEventBody,
  TraceEventKind,
  TraceMessage,
} from "./trace-event.js";
