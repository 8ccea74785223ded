import { assert } from "./assert.js";

/**
 * A small, seeded pseudo-random number generator (xoshiro128**, seeded through splitmix32).
 *
 * Hand-written on purpose: a simulator seed must replay the same run forever, so the generator may
 * never change under us with a library upgrade. All randomness in the core (election jitter, retry
 * backoff) comes from an instance of this class handed in by the caller.
 *
 * @example
 * const prng = new Prng(42);
 * prng.int(10); // 0..9, the same sequence for seed 42 on every machine
 */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    assert(Number.isFinite(seed), "prng seed must be a finite number");
    let x = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0;
    const next = (): number => {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, bound). `bound` must be a positive integer at most 2^32. */
  int(bound: number): number {
    assert(Number.isInteger(bound) && bound > 0 && bound <= 4294967296, `prng bound ${bound} out of range`);
    return Math.floor(this.float() * bound);
  }

  /** An integer in [min, max], both inclusive. */
  range(min: number, max: number): number {
    assert(max >= min, `prng range [${min}, ${max}] is empty`);
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, "prng cannot pick from an empty array");
    return items[this.int(items.length)] as T;
  }

  /** A new generator whose sequence is derived from this one (for giving each node its own). */
  fork(): Prng {
    return new Prng(this.uint32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
