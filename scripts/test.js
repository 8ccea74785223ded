#!/usr/bin/env node
// Runs every test: lint, then every compiled *.test.js under dist/ with node's test runner.
// Kept as a script so it behaves the same on Node 20, 22 and 24 (globs differ between them).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function findTests(dir, suffixes) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path, suffixes));
    else if (suffixes.some((suffix) => name.endsWith(suffix))) found.push(path);
  }
  return found;
}

const suffixes = [".test.js"];

const lint = spawnSync("npx", ["biome", "check", "src", "bin", "scripts", "bench"], { stdio: "inherit" });
if (lint.status !== 0) {
  console.error("lint failed: run `npm run format` and fix what `npx biome check` reports");
  process.exit(lint.status ?? 1);
}
const only = process.argv.slice(2);
const files = findTests("dist", suffixes).filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
// Tests that start real processes and measure nothing but still depend on timely scheduling (the
// harness's fixed timeline, elections) run one at a time, after the CPU-heavy simulator band; so do
// the dashboard's (a real cluster and a browser, timing an election).
const isProcessTest = (f) => f.includes("/harness/") || f.includes("/cli/") || f.includes("/dashboard/");
const phases = [
  { files: files.filter((f) => !isProcessTest(f)), concurrency: 2 },
  { files: files.filter(isProcessTest), concurrency: 1 },
];
let status = 0;
for (const phase of phases) {
  if (phase.files.length === 0) continue;
  const run = spawnSync(
    process.execPath,
    ["--test", `--test-concurrency=${phase.concurrency}`, ...phase.files],
    {
      stdio: "inherit",
    },
  );
  if (run.status !== 0) status = run.status ?? 1;
}
process.exit(status);
