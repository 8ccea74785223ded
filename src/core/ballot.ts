import { assert } from "./assert.js";

/** A node identifier: a positive integer, unique within its role. 0 means "none" (as in `ZERO_BALLOT`). */
export type NodeId = number;

/**
 * A ballot (proposal number) is a `(round, node)` pair, ordered by round, then by node id. Two
 * proposers can never pick the same ballot because the node id is part of it, and one proposer never
 * picks the same ballot twice because it persists the highest round it has used before it sends a
 * prepare with it (see `Proposer`).
 *
 * The classic course projects number ballots `id, id + N, id + 2N, ...` (start at the proposer's own
 * id, step by the number of proposers N). That is the same total order: ballot number `n` is our
 * `(round = floor(n / N), node = n mod N)`. Pairs need no agreement on N, so proposers can be added.
 */
export interface Ballot {
  readonly round: number;
  readonly node: NodeId;
}

/** The ballot below every real ballot: "nothing promised", "nothing accepted". */
export const ZERO_BALLOT: Ballot = Object.freeze({ round: 0, node: 0 });

export function ballot(round: number, node: NodeId): Ballot {
  assert(Number.isSafeInteger(round) && round >= 0, `ballot round ${round} must be a non-negative integer`);
  assert(Number.isSafeInteger(node) && node >= 0, `ballot node ${node} must be a non-negative integer`);
  return { round, node };
}

/** Negative when a < b, zero when equal, positive when a > b. */
export function compareBallots(a: Ballot, b: Ballot): number {
  return a.round !== b.round ? a.round - b.round : a.node - b.node;
}

export function ballotEquals(a: Ballot, b: Ballot): boolean {
  return a.round === b.round && a.node === b.node;
}

export function ballotGreater(a: Ballot, b: Ballot): boolean {
  return compareBallots(a, b) > 0;
}

export function ballotAtLeast(a: Ballot, b: Ballot): boolean {
  return compareBallots(a, b) >= 0;
}

export function maxBallot(a: Ballot, b: Ballot): Ballot {
  return compareBallots(a, b) >= 0 ? a : b;
}

export function isZeroBallot(b: Ballot): boolean {
  return b.round === 0 && b.node === 0;
}

export function formatBallot(b: Ballot): string {
  return `${b.round}.${b.node}`;
}

/** A key usable in a Map: unique per ballot. */
export function ballotKey(b: Ballot): string {
  return `${b.round}.${b.node}`;
}
