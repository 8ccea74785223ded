/**
 * Key-value runs (`Scenario.kv`): clients call the replicas' real `PaxosNode`s under every fault
 * the simulator has, and their histories must be linearizable and the lock service safe. Each
 * deliberately broken variant below must be caught, by the checker named, within the CI band.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runSeed } from "./run.js";
import { scenarioForSeed } from "./scenario.js";
import type { SimBugs } from "./simulation.js";

/** The key-value seeds of the CI band (1..2000), in order. */
const KV_SEEDS = Array.from({ length: 2000 }, (_, i) => i + 1).filter(
  (seed) => scenarioForSeed(seed).kv !== null,
);

describe("key-value runs: clients of the real node API under faults", () => {
  test("about one seed in eight of the CI band runs key-value and lock clients", () => {
    assert.ok(KV_SEEDS.length > 150 && KV_SEEDS.length < 400, `${KV_SEEDS.length} key-value seeds`);
  });

  test("a key-value run's clients get answers, and the report says how many", async () => {
    const seed = KV_SEEDS[0] as number;
    const result = await runSeed(seed);
    assert.deepEqual(result.violations, []);
    assert.match(result.kv ?? "", /^kv: \d+ operations \(ok [1-9]\d*, /);
  });

  const variants: Record<string, { bugs: SimBugs; property: string }> = {
    "a follower (or a deposed leader) that answers reads from its own state": {
      bugs: { node: { readLocally: true } },
      property: "linearizability",
    },
    "a retried command applied twice (its kept result ignored)": {
      bugs: { node: { applyRetries: true } },
      property: "linearizability",
    },
    "a lock granted twice without a release or an expiry": {
      bugs: { lockGrantWhileHeld: true },
      property: "lock",
    },
  };
  for (const [name, { bugs, property }] of Object.entries(variants)) {
    test(`(control) ${name} is caught as ${property}`, async (t) => {
      for (const seed of KV_SEEDS) {
        const result = await runSeed(seed, { bugs });
        const first = result.violations[0];
        if (first === undefined) continue;
        assert.equal(first.property, property, `seed ${seed}: ${first.property}: ${first.detail}`);
        t.diagnostic(`${name}: caught at seed ${seed}: ${first.detail}`);
        return;
      }
      assert.fail(`${name} was not caught in the ${KV_SEEDS.length} key-value seeds of the CI band`);
    });
  }
});
