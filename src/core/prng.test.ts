import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InvariantViolation } from "./assert.js";
import { Prng } from "./prng.js";

function take(prng: Prng, count: number, draw: (p: Prng) => number): number[] {
  return Array.from({ length: count }, () => draw(prng));
}

/**
 * An independent transcription of the published algorithms (splitmix32-style seeding, then
 * xoshiro128** by Blackman and Vigna), in BigInt arithmetic so it shares no tricks with the class.
 */
function referenceSequence(seed: number, count: number): number[] {
  const M = 0xffffffffn;
  const mul = (a: bigint, b: bigint) => (a * b) & M;
  const rotl = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & M;
  let x = (BigInt(seed >>> 0) ^ 0x9e3779b9n) & M;
  const splitmix = () => {
    x = (x + 0x9e3779b9n) & M;
    let z = x;
    z = mul(z ^ (z >> 16n), 0x85ebca6bn);
    z = mul(z ^ (z >> 13n), 0xc2b2ae35n);
    return z ^ (z >> 16n);
  };
  const s = [splitmix(), splitmix(), splitmix(), splitmix()] as [bigint, bigint, bigint, bigint];
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(Number(mul(rotl(mul(s[1], 5n), 7n), 9n)));
    const t = (s[1] << 9n) & M;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11n);
  }
  return out;
}

describe("Prng: seeded, replayable randomness (xoshiro128**)", () => {
  it("golden sequence for seed 1: a change to the generator must be deliberate, it breaks every seed", () => {
    assert.deepEqual(
      take(new Prng(1), 8, (p) => p.uint32()),
      [2466671647, 704075991, 1425070668, 2363080060, 956336583, 4095903784, 543551373, 3988922761],
    );
    assert.deepEqual(
      take(new Prng(1), 10, (p) => p.int(100)),
      [57, 16, 33, 55, 22, 95, 12, 92, 29, 83],
    );
    assert.deepEqual(
      take(new Prng(0), 4, (p) => p.uint32()),
      [1292791899, 1284423797, 2013314966, 3703690653],
    );
  });

  it("matches an independent BigInt transcription of splitmix32 seeding + xoshiro128**", () => {
    for (const seed of [0, 1, 2, 42, 123456789, 0xffffffff, -1, -123]) {
      assert.deepEqual(
        take(new Prng(seed), 64, (p) => p.uint32()),
        referenceSequence(seed, 64),
        `seed ${seed}`,
      );
    }
  });

  it("property: the same seed gives the same sequence, for every kind of draw", () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }), (seed) => {
        const a = new Prng(seed);
        const b = new Prng(seed);
        for (let i = 0; i < 20; i++) {
          assert.equal(a.uint32(), b.uint32());
          assert.equal(a.float(), b.float());
          assert.equal(a.int(7), b.int(7));
          assert.equal(a.range(-3, 3), b.range(-3, 3));
          assert.equal(a.chance(0.5), b.chance(0.5));
          assert.equal(a.pick(["x", "y", "z"]), b.pick(["x", "y", "z"]));
        }
        assert.deepEqual(
          take(a.fork(), 5, (p) => p.uint32()),
          take(b.fork(), 5, (p) => p.uint32()),
        );
      }),
      { numRuns: 50 },
    );
  });

  it("different seeds give different sequences", () => {
    const firsts = new Set<string>();
    for (let seed = 0; seed < 200; seed++) firsts.add(take(new Prng(seed), 3, (p) => p.uint32()).join(","));
    assert.equal(firsts.size, 200);
  });

  it("property: uint32, float, int and range stay within their bounds", () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 2 ** 32 }),
        fc.integer({ min: -1000, max: 1000 }),
        fc.nat({ max: 1000 }),
        (seed, bound, min, span) => {
          const prng = new Prng(seed);
          for (let i = 0; i < 20; i++) {
            const u = prng.uint32();
            assert.ok(Number.isInteger(u) && u >= 0 && u <= 0xffffffff);
            const f = prng.float();
            assert.ok(f >= 0 && f < 1);
            const n = prng.int(bound);
            assert.ok(Number.isInteger(n) && n >= 0 && n < bound, `int(${bound}) gave ${n}`);
            const r = prng.range(min, min + span);
            assert.ok(Number.isInteger(r) && r >= min && r <= min + span, `range gave ${r}`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("int and range reach both ends of small ranges", () => {
    const prng = new Prng(7);
    const seen = new Set(take(prng, 500, (p) => p.range(1, 4)));
    assert.deepEqual([...seen].sort(), [1, 2, 3, 4]);
    assert.equal(new Set(take(prng, 100, (p) => p.int(1))).size, 1, "int(1) is always 0");
  });

  it("chance(0) never fires and chance(1) always does", () => {
    const prng = new Prng(3);
    for (let i = 0; i < 100; i++) {
      assert.equal(prng.chance(0), false);
      assert.equal(prng.chance(1), true);
    }
  });

  it("refuses bad bounds, empty ranges, empty picks and non-finite seeds", () => {
    const prng = new Prng(1);
    assert.throws(() => prng.int(0), InvariantViolation);
    assert.throws(() => prng.int(1.5), InvariantViolation);
    assert.throws(() => prng.int(2 ** 32 + 1), InvariantViolation);
    assert.throws(() => prng.range(5, 4), InvariantViolation);
    assert.throws(() => prng.pick([]), InvariantViolation);
    assert.throws(() => new Prng(Number.NaN), InvariantViolation);
    assert.throws(() => new Prng(Number.POSITIVE_INFINITY), InvariantViolation);
  });

  it("fork gives a child that is independent of the parent's later draws", () => {
    const parent = new Prng(11);
    const child = parent.fork();
    const childFirst = take(child, 5, (p) => p.uint32());
    const parentNext = take(parent, 5, (p) => p.uint32());
    assert.notDeepEqual(childFirst, parentNext);
  });
});
