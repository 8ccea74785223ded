import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InvariantViolation } from "./assert.js";
import {
  type Ballot,
  ballot,
  ballotAtLeast,
  ballotEquals,
  ballotGreater,
  ballotKey,
  compareBallots,
  formatBallot,
  isZeroBallot,
  maxBallot,
  ZERO_BALLOT,
} from "./ballot.js";

const arbitraryBallot = fc
  .record({ round: fc.nat({ max: 1000 }), node: fc.nat({ max: 20 }) })
  .map(({ round, node }) => ballot(round, node));

describe("ballots: totally ordered (round, node) pairs (Paxos Made Simple 2.2: proposal numbers)", () => {
  it("orders by round first, then by node id", () => {
    assert.ok(compareBallots(ballot(1, 9), ballot(2, 1)) < 0, "a higher round wins whatever the node");
    assert.ok(compareBallots(ballot(2, 1), ballot(2, 3)) < 0, "same round: the higher node id wins");
    assert.equal(compareBallots(ballot(4, 2), ballot(4, 2)), 0);
    assert.ok(ballotGreater(ballot(3, 1), ballot(2, 7)));
    assert.ok(!ballotGreater(ballot(3, 1), ballot(3, 1)));
    assert.ok(ballotAtLeast(ballot(3, 1), ballot(3, 1)));
    assert.ok(!ballotAtLeast(ballot(3, 1), ballot(3, 2)));
  });

  it("ZERO_BALLOT is below every real ballot and is frozen", () => {
    assert.ok(isZeroBallot(ZERO_BALLOT));
    assert.ok(!isZeroBallot(ballot(0, 1)));
    assert.ok(ballotGreater(ballot(0, 1), ZERO_BALLOT));
    assert.ok(ballotGreater(ballot(1, 0), ZERO_BALLOT));
    assert.ok(Object.isFrozen(ZERO_BALLOT));
  });

  it("two proposers never share a ballot: the node id is part of it", () => {
    assert.ok(!ballotEquals(ballot(5, 1), ballot(5, 2)));
    assert.notEqual(ballotKey(ballot(5, 1)), ballotKey(ballot(5, 2)));
    assert.notEqual(ballotKey(ballot(1, 11)), ballotKey(ballot(11, 1)));
  });

  it("maps the course's n = id + k*N numbering onto (round, node) with the same order", () => {
    const proposers = 3;
    const numbers = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const asPairs = numbers.map((n) => ballot(Math.floor(n / proposers), n % proposers));
    for (let i = 1; i < asPairs.length; i++) {
      assert.ok(ballotGreater(asPairs[i] as Ballot, asPairs[i - 1] as Ballot), `number ${numbers[i]}`);
    }
  });

  it("refuses negative or fractional rounds and nodes", () => {
    assert.throws(() => ballot(-1, 1), InvariantViolation);
    assert.throws(() => ballot(1.5, 1), InvariantViolation);
    assert.throws(() => ballot(1, -2), InvariantViolation);
    assert.throws(() => ballot(Number.NaN, 1), InvariantViolation);
  });

  it("formats and keys as round.node", () => {
    assert.equal(formatBallot(ballot(12, 3)), "12.3");
    assert.equal(ballotKey(ballot(12, 3)), "12.3");
  });

  it("property: compareBallots is a total order consistent with equals, key and max", () => {
    fc.assert(
      fc.property(arbitraryBallot, arbitraryBallot, arbitraryBallot, (a, b, c) => {
        assert.equal(Math.sign(compareBallots(a, b)) + Math.sign(compareBallots(b, a)), 0, "antisymmetric");
        assert.ok(ballotEquals(a, a) && compareBallots(a, a) === 0, "reflexive");
        assert.equal(compareBallots(a, b) === 0, ballotEquals(a, b));
        assert.equal(ballotEquals(a, b), ballotKey(a) === ballotKey(b));
        if (compareBallots(a, b) <= 0 && compareBallots(b, c) <= 0) assert.ok(compareBallots(a, c) <= 0);
        const max = maxBallot(a, b);
        assert.ok(ballotAtLeast(max, a) && ballotAtLeast(max, b));
        assert.ok(ballotEquals(max, a) || ballotEquals(max, b));
        assert.equal(ballotGreater(a, b), !ballotAtLeast(b, a));
      }),
    );
  });
});
