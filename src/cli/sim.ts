import { availableParallelism } from "node:os";
import {
  describeCounts,
  describeRun,
  parseSeedRange,
  REFUSABLE_ATTACKS,
  runSeed,
  runSeedBand,
  type StrayAttack,
  type StrayOptions,
  type Summary,
} from "../sim/index.js";
import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";

export const SIM_HELP = `Usage: paxos sim --seed N [--stray] [--trace]
       paxos sim --seeds A..B [--stray] [--workers K]

Runs the deterministic simulator: every process runs the real driver, codec and write-ahead log;
only the clock, the network and the file system are simulated. One seed chooses the cluster (3, 5
or 7 acceptors; separate roles or collapsed replicas; majority, weighted or flexible quorums) and
every fault: dropped, duplicated, delayed and reordered messages, partitions (one-way cuts too),
crashes that lose, tear or reorder unsynced writes, and disk faults. Safety is checked after every
event; after the fault phase the network heals and every value must be decided.

  --seed N       run one seed and print its report and trace hash (same seed, same hash)
  --seeds A..B   run a band of seeds (inclusive) and print a summary
  --workers K    threads for a band (default: the number of cores)
  --stray        every seed also has a stray peer: a process at its own address that sends frames
                 validation must refuse (ballots and slots near 2^53, unrequested snapshots and
                 decides, non-members, floods of prepares, made-up clients, undecodable frames)
  --stray-attacks A,B
                 the stray peer sends only these attacks (implies --stray): ballot-ceiling,
                 slot-horizon, snapshot-unrequested, snapshot-unrestorable, decide-unrequested,
                 non-member, prepare-flood, catchup-non-member, client-flood, garbage
  --trace        with --seed: print every event
  -h, --help     this text

Exit status: 0 when no seed broke a property, 1 when one did, 2 on a usage error.`;

export async function simCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(
    "sim",
    args,
    {
      seed: { type: "string" },
      seeds: { type: "string" },
      workers: { type: "string" },
      trace: { type: "boolean", default: false },
      stray: { type: "boolean", default: false },
      "stray-attacks": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(`${SIM_HELP}\n`);
    return 0;
  }
  const stray = strayOptions(values.stray, values["stray-attacks"]);
  const replayFlags =
    stray === null ? "" : ` --stray${stray.attacks ? ` --stray-attacks ${stray.attacks.join(",")}` : ""}`;
  if ((values.seed === undefined) === (values.seeds === undefined)) {
    throw new UsageError("paxos sim needs exactly one of --seed N or --seeds A..B");
  }
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || !Number.isSafeInteger(Number(values.seed)))
      throw new UsageError(`--seed wants a non-negative integer, got "${values.seed}"`);
    const seed = Number(values.seed);
    const trace = values.trace ? (line: string) => process.stdout.write(`${line}\n`) : undefined;
    const result = await runSeed(seed, { ...(trace ? { trace } : {}), ...(stray ? { stray } : {}) });
    process.stdout.write(`${describeRun(result, stray ?? {})}\n`);
    if (result.violations.length > 0) {
      process.stdout.write(`replay: paxos sim --seed ${seed}${replayFlags} --trace\n`);
      return 1;
    }
    return 0;
  }
  const range = parseSeedRange(values.seeds as string);
  if (!range.ok) throw new UsageError(range.error);
  let workers = availableParallelism();
  if (values.workers !== undefined) {
    if (!/^\d+$/.test(values.workers) || Number(values.workers) < 1) {
      throw new UsageError(`--workers wants a positive integer, got "${values.workers}"`);
    }
    workers = Number(values.workers);
  }
  const started = performance.now();
  const isTty = process.stderr.isTTY === true;
  let lastLine = 0;
  // Ctrl-C (or SIGTERM) during a band: say what ran, with the summary so far, and exit 130. The
  // workers report every 25 seeds or 500 ms; seeds they ran since their last report are not counted.
  let soFar: Summary | null = null;
  const interrupted = (signal: string) => {
    const ran = soFar?.seeds ?? 0;
    process.stdout.write(
      `${isTty ? "\n" : ""}interrupted (${signal}) after ${ran} seeds of ${range.seeds.length} (seeds since a worker's last report are not counted)\n` +
        `${soFar === null ? "" : `${summaryText(soFar, performance.now() - started, replayFlags)}\n`}`,
    );
    process.exit(130);
  };
  const onSigint = () => interrupted("SIGINT");
  const onSigterm = () => interrupted("SIGTERM");
  process.once("SIGINT", onSigint);
  process.once("SIGTERM", onSigterm);
  const summary = await runSeedBand(range.seeds, {
    workers,
    ...(stray ? { stray } : {}),
    onProgress: (s) => {
      soFar = s;
      const now = performance.now();
      if (now - lastLine < 1000 || s.seeds >= range.seeds.length) return;
      lastLine = now;
      const line = progressLine(s, range.seeds.length, now - started);
      process.stderr.write(isTty ? `\r${line}` : `${line}\n`);
    },
    onFailure: (report) => {
      process.stdout.write(`${isTty ? "\n" : ""}${report}\n`);
    },
  });
  process.off("SIGINT", onSigint);
  process.off("SIGTERM", onSigterm);
  if (isTty) process.stderr.write("\n");
  process.stdout.write(`${summaryText(summary, performance.now() - started, replayFlags)}
`);
  return summary.violations > 0 ? 1 : 0;
}

/** `--stray` and `--stray-attacks a,b` (which implies `--stray`); null: the default mix. */
function strayOptions(on: boolean, attacks: string | undefined): StrayOptions | null {
  if (attacks === undefined) return on ? { stray: true } : null;
  const list = attacks.split(",").map((a) => a.trim());
  for (const attack of list) {
    if (!(REFUSABLE_ATTACKS as readonly string[]).includes(attack))
      throw new UsageError(
        `--stray-attacks: unknown attack "${attack}" (one of ${REFUSABLE_ATTACKS.join(", ")}; ` +
          "forged attacks need a cluster key, which the simulator does not run yet)",
      );
  }
  return { stray: true, attacks: list as StrayAttack[] };
}

function progressLine(s: Summary, total: number, elapsedMs: number): string {
  return (
    `seeds ${s.seeds}/${total}  events ${s.events.toLocaleString("en-US")}  decided values ${s.deliveredCommands.toLocaleString("en-US")}  ` +
    `violations ${s.violations}  ${(elapsedMs / 1000).toFixed(1)} s`
  );
}

export function summaryText(s: Summary, elapsedMs: number, replayFlags = ""): string {
  const lines = [
    `seeds run: ${s.seeds}`,
    `events: ${s.events.toLocaleString("en-US")} (fewest in one seed: ${s.seeds > 0 ? s.minEvents : 0})`,
    `decisions (slot deliveries, all learners): ${s.decisions.toLocaleString("en-US")}`,
    `decided values (commands delivered, all learners): ${s.deliveredCommands.toLocaleString("en-US")}`,
    `snapshots: ${s.snapshotsTaken.toLocaleString("en-US")} taken, ${s.snapshotsInstalled.toLocaleString("en-US")} installed from peers (in ${s.seedsWithInstall} seeds), ${s.snapshotChunksSent.toLocaleString("en-US")} chunks sent`,
    `disk faults: ${s.diskFaults.toLocaleString("en-US")} (logs found damaged when reopened: ${s.damagedLogs.toLocaleString("en-US")})`,
    ...(s.seedsWithStray === 0
      ? []
      : [
          `stray peer (${s.seedsWithStray} seeds): ${s.strayFramesSent.toLocaleString("en-US")} frames sent, ${s.strayFramesDelivered.toLocaleString("en-US")} copies reached a process, ` +
            `${s.strayDecodeErrors.toLocaleString("en-US")} did not decode, ${s.strayRepliesFrames.toLocaleString("en-US")} frames sent back to it`,
          `refusals (all input, by reason): ${describeCounts(s.strayRefusals)}`,
        ]),
    `violations: ${s.violations}`,
    `time: ${(elapsedMs / 1000).toFixed(1)} s`,
  ];
  for (const seed of s.failedSeeds.slice(0, 20))
    lines.push(`replay: paxos sim --seed ${seed}${replayFlags} --trace`);
  return lines.join("\n");
}
