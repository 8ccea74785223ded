/**
 * checkCrashOutputs: the crash test's verdict on hand-made outputs. A clean run passes, and each
 * kind of problem it exists to catch is caught.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type CrashOutputs,
  checkCrashOutputs,
  endOf,
  type IncarnationOutput,
  positionOf,
} from "./crash-check.js";

/** One incarnation printing `lines` from position 0 (or as `runs` say). */
function printed(
  node: number,
  number: number,
  lines: string[],
  runs: IncarnationOutput["runs"] = [{ fromLine: 0, at: 0 }],
  tornTail: string | null = null,
): IncarnationOutput {
  return { node, number, lines, runs, tornTail };
}

const VALUES = ["v1", "v2", "v3", "v4", "v5", "v6"];

/** Three nodes that each printed the whole sequence once, every value submitted and acked. */
function cleanRun(): CrashOutputs {
  return {
    nodes: [[printed(1, 1, VALUES)], [printed(2, 1, VALUES)], [printed(3, 1, VALUES)]],
    submitted: new Set(VALUES),
    acked: new Set(VALUES),
  };
}

describe("checkCrashOutputs", () => {
  test("a clean run passes, with the agreed sequence put together", () => {
    const verdict = checkCrashOutputs(cleanRun());
    assert.deepEqual(verdict.problems, []);
    assert.equal(verdict.ok, true);
    assert.deepEqual(verdict.agreed, VALUES);
    assert.equal(verdict.lost + verdict.duplicates + verdict.decidedChanged + verdict.unknown, 0);
  });

  test("a killed node's incarnations each print from slot 1 again (a replay), and that is clean", () => {
    const run = cleanRun();
    const verdict = checkCrashOutputs({
      ...run,
      nodes: [
        [printed(1, 1, VALUES.slice(0, 2), undefined, "v"), printed(1, 2, VALUES)],
        ...run.nodes.slice(1),
      ],
      inFlightAtKills: new Set(["v3", "never-decided"]),
    });
    assert.deepEqual(verdict.problems, []);
    assert.equal(verdict.recovered, 1);
  });

  test("a value printed twice by one incarnation is a duplicate", () => {
    const run = cleanRun();
    const twice = ["v1", "v2", "v2", "v3", "v4", "v5"];
    const verdict = checkCrashOutputs({ ...run, nodes: [[printed(1, 1, twice)]] });
    assert.equal(verdict.ok, false);
    assert.ok(verdict.duplicates >= 1);
    assert.ok(verdict.problems.some((p) => p.includes('printed "v2" twice')));
  });

  test("one value decided at two positions is a duplicate", () => {
    const sequence = ["v1", "v2", "v1"];
    const verdict = checkCrashOutputs({
      nodes: [[printed(1, 1, sequence)], [printed(2, 1, sequence)]],
      submitted: new Set(VALUES),
      acked: new Set(["v1", "v2"]),
    });
    // Twice in each node's output, and once more as two positions of the agreed sequence.
    assert.equal(verdict.duplicates, 3);
    assert.ok(verdict.problems.some((p) => p.includes('"v1" decided at positions 1 and 3')));
  });

  test("a value nobody submitted is unknown", () => {
    const run = cleanRun();
    const verdict = checkCrashOutputs({ ...run, submitted: new Set(VALUES.filter((v) => v !== "v4")) });
    assert.equal(verdict.unknown, 3, "each of the three nodes printed it");
    assert.ok(verdict.problems.some((p) => p.includes('"v4", which was never submitted')));
  });

  test("a decided value that changes between incarnations is caught", () => {
    const run = cleanRun();
    const changed = ["v1", "v2", "v4", "v3", "v5", "v6"];
    const verdict = checkCrashOutputs({
      ...run,
      nodes: [[printed(1, 1, VALUES), printed(1, 2, changed)], ...run.nodes.slice(1)],
    });
    assert.equal(verdict.decidedChanged, 2);
    assert.ok(
      verdict.problems.some((p) => p.includes('node 1 incarnation 2: position 3 is "v4", elsewhere "v3"')),
    );
  });

  test("an acked value missing from one node is lost, and that node ends elsewhere", () => {
    const run = cleanRun();
    const verdict = checkCrashOutputs({
      ...run,
      nodes: [run.nodes[0], run.nodes[1], [printed(3, 1, VALUES.slice(0, 5))]] as CrashOutputs["nodes"],
    });
    assert.equal(verdict.lost, 1);
    assert.ok(verdict.problems.some((p) => p.includes('acked value "v6" is missing from node(s) 3')));
    assert.ok(verdict.problems.some((p) => p.includes("node 3 ends with 5 values applied")));
  });

  test("an acked value that no node printed is lost everywhere", () => {
    const run = cleanRun();
    const verdict = checkCrashOutputs({
      ...run,
      submitted: new Set([...VALUES, "v7"]),
      acked: new Set([...VALUES, "v7"]),
    });
    assert.equal(verdict.lost, 1);
    assert.ok(verdict.problems.some((p) => p.includes('"v7" is missing from node(s) 1, 2, 3')));
  });

  test("output after a snapshot install is placed at the snapshot's count: clean when it fits", () => {
    const run = cleanRun();
    // Node 3 printed v1, v2, then installed a snapshot of 4 commands with 2 lines printed: its next
    // lines are v5, v6. Another incarnation restarted from a snapshot of 3 commands prints v4 on.
    const installed = printed(
      3,
      1,
      ["v1", "v2", "v5", "v6"],
      [
        { fromLine: 0, at: 0 },
        { fromLine: 2, at: 4 },
      ],
    );
    const restored = printed(2, 2, ["v4", "v5", "v6"], [{ fromLine: 0, at: 3 }]);
    assert.equal(positionOf(installed.runs, 2), 4);
    assert.equal(endOf(installed), 6);
    const verdict = checkCrashOutputs({
      ...run,
      nodes: [
        run.nodes[0],
        [printed(2, 1, VALUES.slice(0, 3)), restored],
        [installed],
      ] as CrashOutputs["nodes"],
    });
    assert.deepEqual(verdict.problems, []);
  });

  test("output after a snapshot install placed one off is caught", () => {
    const run = cleanRun();
    const misplaced = printed(
      3,
      1,
      ["v1", "v2", "v5", "v6"],
      [
        { fromLine: 0, at: 0 },
        { fromLine: 2, at: 3 },
      ],
    );
    const verdict = checkCrashOutputs({
      ...run,
      nodes: [run.nodes[0], run.nodes[1], [misplaced]] as CrashOutputs["nodes"],
    });
    assert.equal(verdict.ok, false);
    assert.ok(verdict.decidedChanged >= 2);
    assert.ok(
      verdict.problems.some((p) => p.includes('node 3 incarnation 1: position 4 is "v5", elsewhere "v4"')),
    );
  });

  test("a position that only an install skipped, and nobody printed, is a hole", () => {
    const skipped = printed(
      1,
      1,
      ["v1", "v3"],
      [
        { fromLine: 0, at: 0 },
        { fromLine: 1, at: 2 },
      ],
    );
    const verdict = checkCrashOutputs({
      nodes: [[skipped]],
      submitted: new Set(VALUES),
      acked: new Set(["v1"]),
    });
    assert.ok(verdict.problems.some((p) => p.includes("no incarnation printed position(s) 2")));
  });

  test("a torn last line must begin the value that belongs there", () => {
    const run = cleanRun();
    const fits = checkCrashOutputs({
      ...run,
      nodes: [
        [printed(1, 1, VALUES.slice(0, 3), undefined, "v"), printed(1, 2, VALUES)],
        ...run.nodes.slice(1),
      ],
    });
    assert.deepEqual(fits.problems, []);
    const wrong = checkCrashOutputs({
      ...run,
      nodes: [
        [printed(1, 1, VALUES.slice(0, 3), undefined, "v9"), printed(1, 2, VALUES)],
        ...run.nodes.slice(1),
      ],
    });
    assert.ok(wrong.problems.some((p) => p.includes('cut-short line "v9" does not begin "v4"')));
  });

  test("nothing acked is a problem; problems past ten of a kind are counted, not listed", () => {
    assert.ok(checkCrashOutputs({ ...cleanRun(), acked: new Set() }).problems.includes("nothing was acked"));
    const many = Array.from({ length: 25 }, (_, i) => `x${i}`);
    const verdict = checkCrashOutputs({
      nodes: [[printed(1, 1, many)]],
      submitted: new Set(),
      acked: new Set(["x0"]),
    });
    assert.equal(verdict.unknown, 25);
    assert.equal(verdict.problems.filter((p) => p.includes("never submitted")).length, 10);
    assert.ok(verdict.problems.includes('... 25 problems of the kind "unknown" in all'));
  });
});
