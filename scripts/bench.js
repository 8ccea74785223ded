#!/usr/bin/env node
// Benchmarks (not tests): `npm run bench [-- name ...]`. Each writes bench/results/<name>.json with
// the machine it ran on; docs quote these files. Names: usi, sim.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const resultsDir = `${root}bench/results`;
mkdirSync(resultsDir, { recursive: true });

const machine = {
  node: process.version,
  cpus: availableParallelism(),
  cpuModel: cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(totalmem() / 2 ** 30),
};

function save(name, result) {
  const file = `${resultsDir}/${name}.json`;
  writeFileSync(
    file,
    `${JSON.stringify({ benchmark: name, date: new Date().toISOString(), machine, ...result }, null, 2)}\n`,
  );
  console.log(`wrote ${file}`);
}

const benchmarks = {
  /** The course harness's speed run: 2 clients x N values, all learned within the 5 s window? */
  async usi() {
    const { runUsi } = await import("../dist/harness/index.js");
    const runs = [];
    for (const valuesPerClient of [100_000, 500_000]) {
      for (let attempt = 1; attempt <= 3; attempt++) {
        const result = await runUsi({ scriptsDir: `${root}compat/usi`, valuesPerClient, runSeconds: 5 });
        const learned = Math.min(...result.learned.map((lines) => lines.length));
        const run = {
          valuesPerClient,
          attempt,
          learnedAll: result.problems.length === 0,
          learnedAllMs: result.learnedAllMs,
          learnedWithinWindow: learned,
          valuesPerSecond: result.learnedAllMs
            ? Math.round((2 * valuesPerClient) / (result.learnedAllMs / 1000))
            : null,
          problems: result.problems.slice(0, 3),
        };
        runs.push(run);
        console.log(
          `usi: 2 x ${valuesPerClient}: ${run.learnedAll ? `all learned in ${run.learnedAllMs} ms` : `${learned} of ${2 * valuesPerClient} learned in the window`}`,
        );
      }
    }
    save("usi", {
      description:
        "compat/usi scripts, 3 acceptors, 2 proposers, 2 learners, 2 clients on loopback multicast; clients start 3 s after the proposers and everything stops 5 s after the clients start. learnedAllMs counts from client 1's start until both learners printed every value.",
      runs,
    });
  },

  /** Simulator throughput: seeds and events per second on all cores. */
  async sim() {
    const { runSeedBand } = await import("../dist/sim/index.js");
    const seeds = Array.from({ length: 2000 }, (_, i) => i + 1);
    const started = performance.now();
    const summary = await runSeedBand(seeds, { workers: availableParallelism() });
    const seconds = (performance.now() - started) / 1000;
    const result = {
      seeds: summary.seeds,
      events: summary.events,
      violations: summary.violations,
      seconds: Number(seconds.toFixed(2)),
      seedsPerSecond: Math.round(summary.seeds / seconds),
      eventsPerSecond: Math.round(summary.events / seconds),
    };
    console.log(`sim: ${result.seeds} seeds, ${result.events} events in ${result.seconds} s`);
    save("sim", result);
  },
};

const names = process.argv.slice(2);
for (const name of names.length > 0 ? names : Object.keys(benchmarks)) {
  const run = benchmarks[name];
  if (run === undefined) {
    console.error(`unknown benchmark "${name}" (known: ${Object.keys(benchmarks).join(", ")})`);
    process.exit(2);
  }
  await run();
}
