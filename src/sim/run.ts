import { describeScenario, type Scenario, scenarioForSeed } from "./scenario.js";
import { type RunResult, type SimBugs, Simulation } from "./simulation.js";

/** Runs one seed. */
export function runSeed(
  seed: number,
  options: { bugs?: SimBugs; trace?: (line: string) => void } = {},
): Promise<RunResult> {
  const scenario: Scenario = scenarioForSeed(seed);
  return new Simulation(scenario, options).run();
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
  into.failedSeeds.push(...other.failedSeeds);
  into.failedSeeds.sort((a, b) => a - b);
}

/** Human-readable report of one run. */
export function describeRun(result: RunResult): string {
  const lines = [
    `seed ${result.seed}: ${describeScenario(scenarioForSeed(result.seed))}`,
    `  events ${result.events} (and ${result.turns} driver turns), ticks ${result.ticks}, messages ${result.messagesSent} (dropped ${result.messagesDropped}), ` +
      `crashes ${result.crashes} (disk faults ${result.diskFaults}, logs found damaged ${result.damagedLogs}), partitions ${result.partitions}`,
    `  submitted ${result.submitted}, decisions ${result.decisions}, delivered commands ${result.deliveredCommands}`,
    `  snapshots taken ${result.snapshotsTaken}, installed from peers ${result.snapshotsInstalled}, chunks sent ${result.snapshotChunksSent}`,
    `  trace hash ${result.traceHash}`,
  ];
  for (const v of result.violations) lines.push(`  VIOLATION ${v.property} at event ${v.event}: ${v.detail}`);
  return lines.join("\n");
}
