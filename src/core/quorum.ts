import { assert } from "./assert.js";
import type { NodeId } from "./ballot.js";
import { err, ok, type Result } from "./result.js";

/** One acceptor and its voting weight (1 unless said otherwise). */
export interface AcceptorSpec {
  readonly id: NodeId;
  readonly weight?: number;
}

/**
 * How quorums are formed:
 * - `majority`: more than half of the acceptors (weights ignored);
 * - `weighted`: more than half of the total weight, e.g. weights 3,2,2,1,1 need 5 of 9;
 * - `flexible`: separate weight thresholds for phase 1 and phase 2 (Flexible Paxos, Howard et al.
 *   2016), e.g. 4 of 6 for phase 1 and 3 of 6 for phase 2. Only phase-1 and phase-2 quorums need to
 *   intersect: the thresholds must add up to more than the total weight.
 */
export type QuorumSpec =
  | { readonly kind: "majority" }
  | { readonly kind: "weighted" }
  | { readonly kind: "flexible"; readonly phase1Weight: number; readonly phase2Weight: number };

/** Decides whether a set of acceptors is a phase-1 or a phase-2 quorum. */
export interface QuorumSystem {
  readonly acceptors: readonly NodeId[];
  /** The weight a set needs to be a phase-1 quorum. */
  readonly phase1Weight: number;
  /** The weight a set needs to be a phase-2 quorum. */
  readonly phase2Weight: number;
  readonly totalWeight: number;
  /** Human-readable, e.g. "majority of 3" or "flexible 4/3 of weight 6". */
  readonly description: string;
  isAcceptor(id: NodeId): boolean;
  weightOf(id: NodeId): number;
  isPhase1Quorum(ids: Iterable<NodeId>): boolean;
  isPhase2Quorum(ids: Iterable<NodeId>): boolean;
}

/** Weights are small positive integers so intersection can be checked exactly. */
export const WEIGHT_MAX = 1000;
export const ACCEPTORS_MAX = 255;

class ThresholdQuorumSystem implements QuorumSystem {
  readonly acceptors: readonly NodeId[];
  readonly totalWeight: number;
  private readonly weights: ReadonlyMap<NodeId, number>;

  constructor(
    weights: ReadonlyMap<NodeId, number>,
    readonly phase1Weight: number,
    readonly phase2Weight: number,
    readonly description: string,
  ) {
    this.weights = weights;
    this.acceptors = [...weights.keys()];
    let total = 0;
    for (const w of weights.values()) total += w;
    this.totalWeight = total;
  }

  isAcceptor(id: NodeId): boolean {
    return this.weights.has(id);
  }

  weightOf(id: NodeId): number {
    return this.weights.get(id) ?? 0;
  }

  isPhase1Quorum(ids: Iterable<NodeId>): boolean {
    return this.weightOfSet(ids) >= this.phase1Weight;
  }

  isPhase2Quorum(ids: Iterable<NodeId>): boolean {
    return this.weightOfSet(ids) >= this.phase2Weight;
  }

  private weightOfSet(ids: Iterable<NodeId>): number {
    let sum = 0;
    // Callers pass sets of distinct ids; a repeated id would be a counting bug upstream.
    for (const id of ids) sum += this.weights.get(id) ?? 0;
    return sum;
  }
}

/**
 * Builds a quorum system, refusing any whose phase-1 and phase-2 quorums could fail to intersect
 * (the error names two such disjoint sets) and any whose quorums cannot be formed at all.
 *
 * @example
 * const q = createQuorumSystem([{ id: 1, weight: 3 }, { id: 2, weight: 2 }, { id: 3, weight: 2 },
 *   { id: 4 }, { id: 5 }], { kind: "weighted" });
 * if (q.ok) q.value.isPhase2Quorum([1, 2]); // true: weight 5 of 9
 */
export function createQuorumSystem(
  acceptors: readonly AcceptorSpec[],
  spec: QuorumSpec,
): Result<QuorumSystem, string> {
  if (acceptors.length === 0) return err("a quorum system needs at least one acceptor");
  if (acceptors.length > ACCEPTORS_MAX) return err(`at most ${ACCEPTORS_MAX} acceptors are supported`);
  const weights = new Map<NodeId, number>();
  for (const acceptor of acceptors) {
    if (!Number.isSafeInteger(acceptor.id) || acceptor.id <= 0) {
      return err(`acceptor id ${acceptor.id} must be a positive integer`);
    }
    if (weights.has(acceptor.id)) return err(`acceptor id ${acceptor.id} appears twice`);
    const weight = spec.kind === "majority" ? 1 : (acceptor.weight ?? 1);
    if (!Number.isInteger(weight) || weight < 1 || weight > WEIGHT_MAX) {
      return err(
        `acceptor ${acceptor.id} has weight ${weight}; weights are integers from 1 to ${WEIGHT_MAX}`,
      );
    }
    weights.set(acceptor.id, weight);
  }
  let total = 0;
  for (const w of weights.values()) total += w;

  let phase1: number;
  let phase2: number;
  let description: string;
  switch (spec.kind) {
    case "majority":
      phase1 = phase2 = Math.floor(total / 2) + 1;
      description = `majority of ${total}`;
      break;
    case "weighted":
      phase1 = phase2 = Math.floor(total / 2) + 1;
      description = `weighted ${phase1} of ${total}`;
      break;
    case "flexible":
      phase1 = spec.phase1Weight;
      phase2 = spec.phase2Weight;
      description = `flexible phase 1 ${phase1} / phase 2 ${phase2} of ${total}`;
      break;
  }
  for (const [name, threshold] of [
    ["phase-1", phase1],
    ["phase-2", phase2],
  ] as const) {
    if (!Number.isInteger(threshold) || threshold < 1) {
      return err(`the ${name} quorum weight ${threshold} must be a positive integer`);
    }
    if (threshold > total) {
      return err(`the ${name} quorum needs weight ${threshold} but the acceptors weigh only ${total}`);
    }
  }
  const disjoint = findDisjointQuorums(weights, phase1, phase2);
  if (disjoint !== null) {
    return err(
      `quorums may not intersect: phase-1 quorum {${disjoint.phase1.join(",")}} and phase-2 quorum ` +
        `{${disjoint.phase2.join(",")}} share no acceptor (phase-1 weight + phase-2 weight must exceed ${total})`,
    );
  }
  return ok(new ThresholdQuorumSystem(weights, phase1, phase2, description));
}

/**
 * Looks for a phase-1 quorum and a phase-2 quorum with no acceptor in common: a subset S with
 * weight(S) >= phase1 and weight(rest) >= phase2. Exact, by dynamic programming over reachable
 * subset weights (weights are bounded integers, so this is at most 255 x 255,000 steps).
 */
export function findDisjointQuorums(
  weights: ReadonlyMap<NodeId, number>,
  phase1: number,
  phase2: number,
): { phase1: NodeId[]; phase2: NodeId[] } | null {
  const ids = [...weights.keys()];
  let total = 0;
  for (const w of weights.values()) total += w;
  // reachedBy[w] = index of the last acceptor added to reach subset weight w, -1 for w = 0, undefined if unreachable.
  const reachedBy: (number | undefined)[] = new Array(total + 1);
  reachedBy[0] = -1;
  for (let i = 0; i < ids.length; i++) {
    const w = weights.get(ids[i] as NodeId) as number;
    for (let sum = total; sum >= w; sum--) {
      if (reachedBy[sum] === undefined && reachedBy[sum - w] !== undefined) reachedBy[sum] = i;
    }
  }
  for (let sum = phase1; sum <= total - phase2; sum++) {
    if (reachedBy[sum] === undefined) continue;
    const chosen = new Set<NodeId>();
    let rest = sum;
    while (rest > 0) {
      const i = reachedBy[rest] as number;
      const id = ids[i] as NodeId;
      chosen.add(id);
      rest -= weights.get(id) as number;
    }
    assert(rest === 0, "subset reconstruction must end at weight 0");
    return { phase1: ids.filter((id) => chosen.has(id)), phase2: ids.filter((id) => !chosen.has(id)) };
  }
  return null;
}
