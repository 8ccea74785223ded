import { describeScenario, type Scenario, type StrayOptions, scenarioForSeed } from "./scenario.js";
import { type RunResult, type SimBugs, Simulation } from "./simulation.js";
import type { TraceEvent } from "./trace-event.js";

/**
 * Runs one seed (`stray`: whether it has a stray peer; by default the share of the mix; `trace` and
 * `onEvent`: the run's events as lines and as data, see `SimOptions`).
 */
export function runSeed(
  seed: number,
  options: {
    bugs?: SimBugs;
    trace?: (line: string) => void;
    onEvent?: (event: TraceEvent) => void;
    stray?: StrayOptions;
  } = {},
): Promise<RunResult> {
  const scenario: Scenario = scenarioForSeed(seed, options.stray);
  const { stray: _, ...simOptions } = options;
  return new Simulation(scenario, simOptions).run();
}

/** Totals over a band of seeds. */
export interface Summary {
  seeds: number;
  events: number;
  decisions: number;
  deliveredCommands: number;
  violations: number;
  failedSeeds: number[];
  minEvents: number;
  /** Snapshots taken and installed from peers, `snapshot-chunk` messages sent, over all seeds. */
  snapshotsTaken: number;
  snapshotsInstalled: number;
  snapshotChunksSent: number;
  /** Seeds in which at least one replica installed a snapshot from a peer. */
  seedsWithInstall: number;
  /** Disk faults injected, and logs that `WalStorage.open` found damaged (the replica rejoined). */
  diskFaults: number;
  damagedLogs: number;
  /** Seeds with a stray peer, the frames it sent and what became of them (see `StrayReport`). */
  seedsWithStray: number;
  strayFramesSent: number;
  strayFramesDelivered: number;
  strayDecodeErrors: number;
  strayRepliesFrames: number;
  /** Refusals by reason over the seeds with a stray peer. */
  strayRefusals: Record<string, number>;
}

export function emptySummary(): Summary {
  return {
    seeds: 0,
    events: 0,
    decisions: 0,
    deliveredCommands: 0,
    violations: 0,
    failedSeeds: [],
    minEvents: Number.POSITIVE_INFINITY,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotChunksSent: 0,
    seedsWithInstall: 0,
    diskFaults: 0,
    damagedLogs: 0,
    seedsWithStray: 0,
    strayFramesSent: 0,
    strayFramesDelivered: 0,
    strayDecodeErrors: 0,
    strayRepliesFrames: 0,
    strayRefusals: {},
  };
}

export function addToSummary(summary: Summary, result: RunResult): void {
  summary.seeds++;
  summary.events += result.events;
  summary.decisions += result.decisions;
  summary.deliveredCommands += result.deliveredCommands;
  summary.violations += result.violations.length;
  summary.minEvents = Math.min(summary.minEvents, result.events);
  summary.snapshotsTaken += result.snapshotsTaken;
  summary.snapshotsInstalled += result.snapshotsInstalled;
  summary.snapshotChunksSent += result.snapshotChunksSent;
  if (result.snapshotsInstalled > 0) summary.seedsWithInstall++;
  summary.diskFaults += result.diskFaults;
  summary.damagedLogs += result.damagedLogs;
  if (result.stray !== null) {
    summary.seedsWithStray++;
    summary.strayFramesSent += result.stray.framesSent;
    summary.strayFramesDelivered += result.stray.framesDelivered;
    summary.strayDecodeErrors += result.stray.decodeErrors;
    summary.strayRepliesFrames += result.stray.repliesFrames;
    addCounts(summary.strayRefusals, result.stray.refusals);
  }
  if (result.violations.length > 0) summary.failedSeeds.push(result.seed);
}

export function mergeSummaries(into: Summary, other: Summary): void {
  into.seeds += other.seeds;
  into.events += other.events;
  into.decisions += other.decisions;
  into.deliveredCommands += other.deliveredCommands;
  into.violations += other.violations;
  into.minEvents = Math.min(into.minEvents, other.minEvents);
  into.snapshotsTaken += other.snapshotsTaken;
  into.snapshotsInstalled += other.snapshotsInstalled;
  into.snapshotChunksSent += other.snapshotChunksSent;
  into.seedsWithInstall += other.seedsWithInstall;
  into.diskFaults += other.diskFaults;
  into.damagedLogs += other.damagedLogs;
  into.seedsWithStray += other.seedsWithStray;
  into.strayFramesSent += other.strayFramesSent;
  into.strayFramesDelivered += other.strayFramesDelivered;
  into.strayDecodeErrors += other.strayDecodeErrors;
  into.strayRepliesFrames += other.strayRepliesFrames;
  addCounts(into.strayRefusals, other.strayRefusals);
  into.failedSeeds.push(...other.failedSeeds);
  into.failedSeeds.sort((a, b) => a - b);
}

function addCounts(into: Record<string, number>, counts: Readonly<Record<string, number>>): void {
  for (const [key, n] of Object.entries(counts)) into[key] = (into[key] ?? 0) + n;
}

/** "a 3, b 5", sorted by key; "none" when empty. */
export function describeCounts(counts: Readonly<Record<string, number>>): string {
  const keys = Object.keys(counts).sort();
  return keys.length === 0 ? "none" : keys.map((key) => `${key} ${counts[key]}`).join(", ");
}

/** Human-readable report of one run. */
export function describeRun(result: RunResult, strayOptions: StrayOptions = {}): string {
  const stray = result.stray;
  const scenario = scenarioForSeed(result.seed, { ...strayOptions, stray: stray !== null });
  const lines = [
    `seed ${result.seed}: ${describeScenario(scenario)}`,
    `  events ${result.events} (and ${result.turns} driver turns), ticks ${result.ticks}, messages ${result.messagesSent} (dropped ${result.messagesDropped}), ` +
      `crashes ${result.crashes} (disk faults ${result.diskFaults}, logs found damaged ${result.damagedLogs}), partitions ${result.partitions}`,
    `  submitted ${result.submitted}, decisions ${result.decisions}, delivered commands ${result.deliveredCommands}`,
    `  snapshots taken ${result.snapshotsTaken}, installed from peers ${result.snapshotsInstalled}, chunks sent ${result.snapshotChunksSent}`,
    ...(stray === null
      ? []
      : [
          `  stray peer: sent ${stray.framesSent} frames (${describeCounts(stray.sent)}); ${stray.framesDelivered} copies reached a process, ` +
            `${stray.decodeErrors} did not decode; the cluster sent it ${stray.repliesFrames} frames (${stray.repliesBytes} bytes)`,
          `  refusals (all input, by reason): ${describeCounts(stray.refusals)}`,
        ]),
    ...(result.kv === null ? [] : [`  ${result.kv}`]),
    `  trace hash ${result.traceHash}`,
  ];
  for (const v of result.violations) lines.push(`  VIOLATION ${v.property} at event ${v.event}: ${v.detail}`);
  return lines.join("\n");
}
