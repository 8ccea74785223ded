import { setTimeout as sleep } from "node:timers/promises";
import { printableLine, type Value } from "../core/index.js";
import { type Scenario, Simulation, scenarioForSeed } from "../sim/index.js";
import { parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";

export const DEMO_HELP = `Usage: paxos demo [--seconds S] [--seed N]

Runs a simulated 5-node Paxos cluster (collapsed replicas, majority quorums) in real time for a few
seconds while 3 clients submit values through a lossy network with a crash or two, then heals it,
prints every decided slot and checks that nothing unsafe happened.

  --seconds S   how long the fault phase runs in real time (default 3)
  --seed N      the seed of the run (default 1)
  -h, --help    this text`;

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(
    "demo",
    args,
    {
      seconds: { type: "string", default: "3" },
      seed: { type: "string", default: "1" },
      help: { type: "boolean", short: "h", default: false },
    },
    false,
  );
  if (values.help) {
    process.stdout.write(`${DEMO_HELP}\n`);
    return 0;
  }
  const seconds = Number(values.seconds);
  if (!/^\d+(\.\d+)?$/.test(values.seconds) || seconds <= 0 || seconds > 600)
    throw new UsageError(`--seconds wants a number of seconds above 0, at most 600; got "${values.seconds}"`);
  if (!/^\d+$/.test(values.seed) || !Number.isSafeInteger(Number(values.seed)))
    throw new UsageError(`--seed wants a non-negative integer, got "${values.seed}"`);
  const seed = Number(values.seed);
  const base = scenarioForSeed(seed);
  const scenario: Scenario = {
    ...base,
    layout: "collapsed",
    acceptors: [1, 2, 3, 4, 5].map((id) => ({ id })),
    quorum: { kind: "majority" },
    clients: 3,
    valuesPerClient: 20,
    faultPhaseTicksMin: 300,
    network: { ...base.network, dropRate: 0.05, duplicateRate: 0.05, longDelayRate: 0 },
    partitionChance: 0.005,
    crashChance: 0.005,
  };
  const sim = new Simulation(scenario);
  await sim.begin();
  const frames = Math.max(1, Math.round(seconds * 10));
  const ticksPerFrame = Math.ceil(scenario.faultPhaseTicksMin / frames);
  const tty = process.stdout.isTTY === true;
  process.stdout.write("paxos demo: 5 simulated replicas, 3 clients, 5% loss, crashes and partitions\n");
  for (let frame = 1; frame <= frames && !sim.checker.failed; frame++) {
    await sim.advanceTo(frame * ticksPerFrame);
    const line =
      `tick ${String(sim.tick).padStart(4)}  leader ${sim.leaders().join(",") || "(electing)"}  ` +
      `decided slots ${sim.checker.decidedLog().length}  submitted ${sim.checker.submittedCount()}`;
    process.stdout.write(tty ? `\r${line.padEnd(78)}` : `${line}\n`);
    await sleep(100);
  }
  const result = await sim.finish();
  if (tty) process.stdout.write("\n");
  process.stdout.write(`healed the network; everything decided by tick ${result.ticks}\n`);
  sim.checker.decidedLog().forEach((value, index) => {
    process.stdout.write(demoSlotLine(index + 1, value));
  });
  process.stdout.write(
    `${result.submitted} values submitted, ${result.violations.length === 0 ? "all decided exactly once, no safety violation" : "VIOLATIONS:"}\n`,
  );
  for (const v of result.violations) process.stdout.write(`  ${v.property}: ${v.detail}\n`);
  return result.violations.length === 0 ? 0 : 1;
}

/**
 * The demo's line for one decided slot: its values, each escaped as every printer escapes a decided
 * value (`printableLine`), separated by spaces; "(no-op)" for an empty slot.
 */
export function demoSlotLine(slot: number, value: Value): string {
  const text =
    value.commands.length === 0 ? "(no-op)" : value.commands.map((c) => printableLine(c.payload)).join(" ");
  return `slot ${String(slot).padStart(3)}: ${text}\n`;
}
