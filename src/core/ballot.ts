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

/** Why a ballot taken from a message is refused (see `ballotRefusal`). */
export type BallotRefusal = "ballot-above-ceiling" | "ballot-jump";

/**
 * Checks a ballot a role takes from a message against the ceiling on rounds and against the highest
 * round the node knows of (`knownRound`, cheap to compute), then, only if that fails, against
 * `vouchedRound()` (what a quorum of acceptors vouches for, dearer): null when it may be taken.
 *
 * @example
 * ballotRefusal({ round: 2 ** 41, node: 1 }, 5, { ballotRoundMax: 2 ** 40, ballotJumpRoundsMax: 2 ** 24 }); // "ballot-above-ceiling"
 */
export function ballotRefusal(
  b: Ballot,
  knownRound: number,
  limits: { readonly ballotRoundMax: number; readonly ballotJumpRoundsMax: number },
  vouchedRound?: () => number,
): BallotRefusal | null {
  if (b.round > limits.ballotRoundMax) return "ballot-above-ceiling";
  if (b.round <= knownRound + limits.ballotJumpRoundsMax) return null;
  if (vouchedRound !== undefined && b.round <= vouchedRound() + limits.ballotJumpRoundsMax) return null;
  return "ballot-jump";
}

/**
 * The highest level (a ballot round, or a slot) that a quorum of acceptors has each claimed to have
 * reached, in messages this node received from them, taken or not: one number per acceptor, so its
 * memory is bounded by the membership. A set counts when it is both a phase-1 and a phase-2 quorum,
 * so a single acceptor (or any set smaller than a quorum) can never move it alone. A node that fell
 * far behind (its disk wiped, or away while the cluster ran on) learns from it how far the cluster
 * has got, and takes the messages at that level again: the horizon and the ballot jump are measured
 * from it as well as from what the node knows itself.
 *
 * @example
 * const vouched = new VouchedLevel(majorityOf3);
 * vouched.claim(2, 900); vouched.claim(3, 800);
 * vouched.level; // 800: acceptors 2 and 3 both claim 800 or more
 */
export class VouchedLevel {
  private readonly claims = new Map<NodeId, number>();

  constructor(
    private readonly quorum: {
      isAcceptor(id: NodeId): boolean;
      isPhase1Quorum(ids: Iterable<NodeId>): boolean;
      isPhase2Quorum(ids: Iterable<NodeId>): boolean;
    },
  ) {}

  /** Notes that `acceptor` claims `level` (ids that are not acceptors are ignored). */
  claim(acceptor: NodeId, level: number): void {
    if (!this.quorum.isAcceptor(acceptor) || !Number.isSafeInteger(level)) return;
    if (level > (this.claims.get(acceptor) ?? 0)) this.claims.set(acceptor, level);
  }

  /** The highest level a quorum of acceptors claims to have reached, 0 if none. */
  get level(): number {
    const sorted = [...this.claims].sort((a, b) => b[1] - a[1]);
    const ids: NodeId[] = [];
    for (const [id, level] of sorted) {
      ids.push(id);
      if (this.quorum.isPhase1Quorum(ids) && this.quorum.isPhase2Quorum(ids)) return level;
    }
    return 0;
  }
}
