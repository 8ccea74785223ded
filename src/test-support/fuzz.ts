/**
 * How many inputs each fuzz property runs: its CI default times `FUZZ_SCALE` (default 1). The CI
 * suite (`npm test`) runs the defaults, at least 200,000 inputs in all; `npm run fuzz` runs 20 times
 * as many, and the role fuzz. Set FUZZ_SCALE to run more or fewer, and FUZZ_SEED to replay a run
 * (fast-check prints the seed and the path of a failure).
 *
 * @example
 * fc.assert(property, fuzzParameters(20_000)); // 20,000 runs, or 20,000 x FUZZ_SCALE
 */
export function fuzzParameters(runs: number): { numRuns: number; seed?: number } {
  const scale = Number(process.env.FUZZ_SCALE ?? "1");
  if (!(Number.isFinite(scale) && scale > 0))
    throw new Error(`FUZZ_SCALE must be a positive number, got ${process.env.FUZZ_SCALE}`);
  const seed = process.env.FUZZ_SEED;
  return {
    numRuns: Math.max(1, Math.round(runs * scale)),
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
  };
}
