import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { type AcceptorSpec, createQuorumSystem, type QuorumSpec, type QuorumSystem } from "./quorum.js";

function build(acceptors: readonly AcceptorSpec[], spec: QuorumSpec): QuorumSystem {
  const result = createQuorumSystem(acceptors, spec);
  if (!result.ok) assert.fail(`expected a quorum system, got: ${result.error}`);
  return result.value;
}

function buildError(acceptors: readonly AcceptorSpec[], spec: QuorumSpec): string {
  const result = createQuorumSystem(acceptors, spec);
  if (result.ok)
    assert.fail(`expected an error for ${JSON.stringify(spec)}, got ${result.value.description}`);
  return result.error;
}

const ones = (count: number): AcceptorSpec[] => Array.from({ length: count }, (_, i) => ({ id: i + 1 }));

/** Every subset of `ids`, as arrays. */
function subsets<T>(ids: readonly T[]): T[][] {
  const all: T[][] = [];
  for (let mask = 0; mask < 1 << ids.length; mask++) all.push(ids.filter((_, i) => mask & (1 << i)));
  return all;
}

/** Reads the two sets named by a "quorums may not intersect" error. */
function parseDisjointSets(error: string): { phase1: number[]; phase2: number[] } {
  const match = /phase-1 quorum \{([\d,]*)\} and phase-2 quorum \{([\d,]*)\}/.exec(error);
  assert.ok(match, `error does not name two sets: ${error}`);
  const parse = (list: string) => (list === "" ? [] : list.split(",").map(Number));
  return { phase1: parse(match[1] as string), phase2: parse(match[2] as string) };
}

describe("quorum systems", () => {
  it("majority of 3, 5 and 7: any ceil((n+1)/2) acceptors, and no fewer", () => {
    for (const [n, needed] of [
      [3, 2],
      [5, 3],
      [7, 4],
      [4, 3],
    ] as const) {
      const q = build(ones(n), { kind: "majority" });
      assert.equal(q.phase1Weight, needed);
      assert.equal(q.phase2Weight, needed);
      for (const set of subsets(q.acceptors)) {
        assert.equal(q.isPhase1Quorum(set), set.length >= needed, `n=${n} {${set}}`);
        assert.equal(q.isPhase2Quorum(set), set.length >= needed, `n=${n} {${set}}`);
      }
    }
  });

  it("majority ignores weights", () => {
    const q = build(
      [
        { id: 1, weight: 100 },
        { id: 2, weight: 1 },
        { id: 3, weight: 1 },
      ],
      { kind: "majority" },
    );
    assert.equal(q.isPhase2Quorum([1]), false);
    assert.equal(q.isPhase2Quorum([2, 3]), true);
    assert.equal(q.weightOf(1), 1);
  });

  it("weighted 3,2,2,1,1 needs 5 of 9", () => {
    const q = build(
      [{ id: 1, weight: 3 }, { id: 2, weight: 2 }, { id: 3, weight: 2 }, { id: 4 }, { id: 5 }],
      { kind: "weighted" },
    );
    assert.equal(q.totalWeight, 9);
    assert.equal(q.phase1Weight, 5);
    assert.equal(q.phase2Weight, 5);
    assert.ok(q.isPhase2Quorum([1, 2]), "3 + 2");
    assert.ok(q.isPhase2Quorum([2, 3, 4]), "2 + 2 + 1");
    assert.ok(q.isPhase1Quorum([1, 4, 5]), "3 + 1 + 1");
    assert.ok(!q.isPhase2Quorum([2, 3]), "2 + 2 = 4 is not enough");
    assert.ok(!q.isPhase1Quorum([1, 4]), "3 + 1 = 4 is not enough");
    assert.ok(!q.isPhase1Quorum([9]), "a stranger weighs nothing");
    assert.ok(q.isAcceptor(5) && !q.isAcceptor(6));
  });

  it("Flexible Paxos: phase 1 of 4 and phase 2 of 3 out of 6 is accepted", () => {
    const q = build(ones(6), { kind: "flexible", phase1Weight: 4, phase2Weight: 3 });
    assert.ok(q.isPhase1Quorum([1, 2, 3, 4]) && !q.isPhase1Quorum([1, 2, 3]));
    assert.ok(q.isPhase2Quorum([4, 5, 6]) && !q.isPhase2Quorum([5, 6]));
    // Every phase-1 quorum meets every phase-2 quorum.
    for (const p1 of subsets(q.acceptors).filter((s) => q.isPhase1Quorum(s))) {
      for (const p2 of subsets(q.acceptors).filter((s) => q.isPhase2Quorum(s))) {
        assert.ok(
          p1.some((id) => p2.includes(id)),
          `{${p1}} and {${p2}} are disjoint`,
        );
      }
    }
  });

  it("Flexible Paxos: 3 of 6 with 3 of 6 is refused, naming two disjoint quorums", () => {
    const error = buildError(ones(6), { kind: "flexible", phase1Weight: 3, phase2Weight: 3 });
    const { phase1, phase2 } = parseDisjointSets(error);
    assert.ok(phase1.length >= 3, `phase-1 set {${phase1}} weighs at least 3`);
    assert.ok(phase2.length >= 3, `phase-2 set {${phase2}} weighs at least 3`);
    assert.ok(!phase1.some((id) => phase2.includes(id)), `{${phase1}} and {${phase2}} must be disjoint`);
    for (const id of [...phase1, ...phase2]) assert.ok(id >= 1 && id <= 6, `unknown acceptor ${id}`);
  });

  it("refuses impossible or malformed configurations with a reason", () => {
    assert.match(buildError([], { kind: "majority" }), /at least one acceptor/);
    assert.match(buildError([{ id: 1 }, { id: 1 }], { kind: "majority" }), /appears twice/);
    assert.match(buildError([{ id: 0 }], { kind: "majority" }), /positive integer/);
    assert.match(buildError([{ id: 1, weight: 0 }], { kind: "weighted" }), /weight 0/);
    assert.match(buildError([{ id: 1, weight: 1.5 }], { kind: "weighted" }), /weight 1.5/);
    assert.match(buildError(ones(3), { kind: "flexible", phase1Weight: 4, phase2Weight: 1 }), /weigh only 3/);
    assert.match(
      buildError(ones(3), { kind: "flexible", phase1Weight: 3, phase2Weight: 0 }),
      /positive integer/,
    );
    assert.match(buildError(ones(256), { kind: "majority" }), /at most 255/);
  });

  it("a single acceptor is its own quorum", () => {
    const q = build([{ id: 7 }], { kind: "majority" });
    assert.ok(q.isPhase1Quorum([7]) && q.isPhase2Quorum([7]) && !q.isPhase2Quorum([]));
  });

  it("property: createQuorumSystem succeeds iff every phase-1 quorum meets every phase-2 quorum (brute force, up to 8 acceptors)", () => {
    const scenario = fc
      .array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 8 })
      .chain((weights) => {
        const total = weights.reduce((a, b) => a + b, 0);
        return fc.record({
          weights: fc.constant(weights),
          phase1: fc.integer({ min: 0, max: total + 1 }),
          phase2: fc.integer({ min: 0, max: total + 1 }),
        });
      });
    fc.assert(
      fc.property(scenario, ({ weights, phase1, phase2 }) => {
        const acceptors = weights.map((weight, i) => ({ id: i + 1, weight }));
        const weightOf = (set: readonly number[]) =>
          set.reduce((sum, id) => sum + (weights[id - 1] as number), 0);
        const total = weightOf(acceptors.map((a) => a.id));
        const thresholdsValid = phase1 >= 1 && phase1 <= total && phase2 >= 1 && phase2 <= total;
        // Brute force over every pair of disjoint subsets: each acceptor is in Q1, in Q2, or in neither.
        let disjointPair = false;
        const n = acceptors.length;
        for (let code = 0; code < 3 ** n && !disjointPair; code++) {
          const q1: number[] = [];
          const q2: number[] = [];
          let c = code;
          for (let id = 1; id <= n; id++) {
            if (c % 3 === 1) q1.push(id);
            if (c % 3 === 2) q2.push(id);
            c = Math.floor(c / 3);
          }
          if (weightOf(q1) >= phase1 && weightOf(q2) >= phase2) disjointPair = true;
        }
        const result = createQuorumSystem(acceptors, {
          kind: "flexible",
          phase1Weight: phase1,
          phase2Weight: phase2,
        });
        assert.equal(result.ok, thresholdsValid && !disjointPair, result.ok ? "accepted" : result.error);
        if (result.ok) {
          for (const set of subsets(acceptors.map((a) => a.id))) {
            assert.equal(result.value.isPhase1Quorum(set), weightOf(set) >= phase1);
            assert.equal(result.value.isPhase2Quorum(set), weightOf(set) >= phase2);
          }
        } else if (thresholdsValid) {
          const sets = parseDisjointSets(result.error);
          assert.ok(weightOf(sets.phase1) >= phase1, `{${sets.phase1}} is a phase-1 quorum`);
          assert.ok(weightOf(sets.phase2) >= phase2, `{${sets.phase2}} is a phase-2 quorum`);
          assert.ok(!sets.phase1.some((id) => sets.phase2.includes(id)), "the named sets are disjoint");
        }
      }),
      { numRuns: 300 },
    );
  });
});
