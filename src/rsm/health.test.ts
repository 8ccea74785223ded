import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { NodeStatus } from "./api.js";
import { DEFAULT_HEALTH_LIMITS, healthProblem } from "./http.js";

const good: NodeStatus = {
  id: 2,
  mode: "follower",
  leader: 1,
  ballot: { round: 0, node: 0 },
  appliedThrough: 500,
  rejoining: false,
};
const disk = { storageFailed: false, walSyncRunningMs: 0 };

describe("/health: when a node is a member in good standing", () => {
  test("a follower that knows the leader, keeps up and has a working disk is in good standing", () => {
    assert.equal(healthProblem(good, disk, 0), null);
    assert.equal(healthProblem({ ...good, mode: "leader", leader: 2 }, disk, 0), null);
    assert.equal(healthProblem(good, null, 0), null, "a node without metrics: storage unknown, not blamed");
    assert.equal(healthProblem(good, disk, DEFAULT_HEALTH_LIMITS.lagSlotsMax), null, "at the bound is fine");
  });

  test("each reason, named by its code", () => {
    const codeOf = (...args: Parameters<typeof healthProblem>) => healthProblem(...args)?.code ?? null;
    assert.equal(codeOf({ ...good, mode: "stopped" }, disk, 0), "stopped");
    assert.equal(codeOf(good, { ...disk, storageFailed: true }, 0), "storage-failed");
    assert.equal(codeOf(good, { ...disk, walSyncRunningMs: 6000 }, 0), "storage-stalled");
    assert.equal(
      codeOf(good, { ...disk, walSyncRunningMs: 6000 }, 0, { lagSlotsMax: 10, syncStalledMs: 7000 }),
      null,
    );
    assert.equal(codeOf({ ...good, rejoining: true }, disk, 0), "rejoining");
    assert.equal(codeOf({ ...good, leader: null }, disk, 0), "no-leader");
    assert.equal(codeOf({ ...good, mode: "candidate", ballot: { round: 7, node: 2 } }, disk, 0), "no-leader");
    assert.equal(codeOf(good, disk, DEFAULT_HEALTH_LIMITS.lagSlotsMax + 1), "lagging");
  });

  test("the message says why in words, with the numbers", () => {
    assert.match(
      healthProblem({ ...good, mode: "candidate", ballot: { round: 7, node: 2 } }, disk, 0)?.message ?? "",
      /campaigns at ballot 7\.2/,
    );
    assert.match(healthProblem(good, disk, 1500)?.message ?? "", /1500 slots behind .* \(more than 1000\)/);
    assert.match(healthProblem(good, { ...disk, walSyncRunningMs: 6000 }, 0)?.message ?? "", /6000 ms/);
  });

  test("the first reason wins: a stopped node is 'stopped', whatever else is wrong", () => {
    assert.equal(
      healthProblem(
        { ...good, mode: "stopped", leader: null, rejoining: true },
        { ...disk, storageFailed: true },
        9999,
      )?.code,
      "stopped",
    );
  });
});
