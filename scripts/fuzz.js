#!/usr/bin/env node
// `npm run fuzz`: the fuzz suites, the role fuzz included, at FUZZ_SCALE times their CI inputs
// (default 10) (docs/security.md, "Evidence: fuzzing"). Set FUZZ_SEED to
// replay a run. Runs one file at a time: the machine is shared.
import { spawnSync } from "node:child_process";

const env = { ...process.env, FUZZ_SCALE: process.env.FUZZ_SCALE ?? "10" };
const files = ["dist/fuzz/codec.test.js", "dist/storage/wal.fuzz.test.js", "dist/fuzz/roles.fuzz.test.js"];
console.log(`paxos fuzz: FUZZ_SCALE=${env.FUZZ_SCALE}${env.FUZZ_SEED ? ` FUZZ_SEED=${env.FUZZ_SEED}` : ""}`);
let status = 0;
for (const file of files) {
  const run = spawnSync(process.execPath, ["--test", "--test-concurrency=1", file], {
    stdio: "inherit",
    env,
  });
  if (run.status !== 0) status = run.status ?? 1;
}
process.exit(status);
