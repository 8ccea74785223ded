/**
 * Canary for the session table (issue 8, section 2): a table that drops a range without telling
 * (it gives up the gap between a client's two oldest ranges, so commands never applied count as
 * delivered, which is what the table did at its bound before it refused instead) must be caught by
 * the simulator's checkers within 2,000 seeds. The checkers see it as a replica whose application
 * misses a decided command (app-state), or a snapshot whose sessions differ from the agreed
 * sequence's (snapshot), or a command delivered again (at-most-once).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runSeed } from "./run.js";
import type { SimBugs } from "./simulation.js";

const SEEDS_MAX = 2000;

test("a session table that drops a range without telling is caught within 2,000 seeds", async (t) => {
  const bugs: SimBugs = { learner: { sessions: { dropRangeSilently: true } } };
  for (let seed = 1; seed <= SEEDS_MAX; seed++) {
    const result = await runSeed(seed, { bugs });
    const safety = result.violations.filter((violation) => violation.property !== "liveness");
    const first = safety[0];
    if (first !== undefined) {
      t.diagnostic(`caught after ${seed} seeds (seed ${seed}: ${first.property}: ${first.detail})`);
      return;
    }
  }
  assert.fail(`a session table that drops a range was not caught within ${SEEDS_MAX} seeds`);
});
