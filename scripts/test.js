#!/usr/bin/env node
// Runs every test: lint, then every compiled *.test.js under dist/ with node's test runner.
// Kept as a script so it behaves the same on Node 20, 22 and 24 (globs differ between them).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.js")) found.push(path);
  }
  return found;
}

const lint = spawnSync("npx", ["biome", "check", "src", "bin", "scripts"], { stdio: "inherit" });
if (lint.status !== 0) {
  console.error("lint failed: run `npm run format` and fix what `npx biome check` reports");
  process.exit(lint.status ?? 1);
}
const only = process.argv.slice(2);
const files = findTests("dist").filter((f) => only.length === 0 || only.some((o) => f.includes(o)));
const run = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...files], { stdio: "inherit" });
process.exit(run.status ?? 1);
