/**
 * A latency histogram of fixed size (HdrHistogram's layout): exact below 256 ns, then 128 buckets per
 * power of two, so any percentile it reports is within 0.4% of the true value, whatever the count.
 * A run of any length takes the same 40 KiB, where keeping every sample would grow with the run.
 */

/** Buckets per power of two (2^7): the relative width of a bucket is at most 1/128. */
const SUB_BUCKET_BITS = 7;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
/**
 * Powers of two covered: values up to 2^(41 + 8) ns (about 6.5 days). A latency above that lands in
 * the last bucket (its percentile then reads low; `maxNs` stays exact).
 */
const POWERS = 41;
const BUCKETS = (POWERS + 1) * SUB_BUCKETS;

/** The bucket of `ns` (a non-negative number of nanoseconds). */
function bucketOf(ns: number): number {
  const value = Math.floor(ns);
  if (value < 2 * SUB_BUCKETS) return Math.max(0, value);
  let exponent = Math.floor(Math.log2(value));
  // Math.log2 may round across a power of two for values just below or at it.
  if (2 ** exponent > value) exponent--;
  else if (2 ** (exponent + 1) <= value) exponent++;
  const shift = exponent - SUB_BUCKET_BITS;
  const sub = Math.floor(value / 2 ** shift); // in [128, 256)
  return Math.min(BUCKETS - 1, (shift + 1) * SUB_BUCKETS + (sub - SUB_BUCKETS));
}

/** The middle of bucket `index`'s range of values. */
function middleOf(index: number): number {
  if (index < 2 * SUB_BUCKETS) return index;
  const shift = Math.floor(index / SUB_BUCKETS) - 1;
  const lowest = ((index % SUB_BUCKETS) + SUB_BUCKETS) * 2 ** shift;
  return lowest + (2 ** shift - 1) / 2;
}

/**
 * Latencies in nanoseconds, recorded one by one; percentiles read out at the end.
 *
 * @example
 * const latencies = new LatencyHistogram();
 * latencies.record(1_250_000); // 1.25 ms
 * latencies.percentileNs(0.99); // about 1_250_000
 */
export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumNs = 0;
  minNs = Number.POSITIVE_INFINITY;
  maxNs = 0;

  /** Records one latency of `ns` nanoseconds (negative counts as 0). */
  record(ns: number): void {
    const value = Math.max(0, ns);
    const index = bucketOf(value);
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.count++;
    this.sumNs += value;
    if (value < this.minNs) this.minNs = value;
    if (value > this.maxNs) this.maxNs = value;
  }

  /**
   * The latency `quantile` (0 < quantile <= 1) of those recorded lie at or below, in ns (within
   * 0.4%, and never above the largest recorded); null when nothing was recorded.
   */
  percentileNs(quantile: number): number | null {
    if (!(quantile > 0 && quantile <= 1)) throw new RangeError(`quantile ${quantile} is not in (0, 1]`);
    if (this.count === 0) return null;
    const rank = Math.ceil(quantile * this.count);
    let seen = 0;
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.counts[index] ?? 0;
      if (seen >= rank) return Math.min(this.maxNs, Math.max(this.minNs, middleOf(index)));
    }
    return this.maxNs;
  }

  /** The mean latency in ns; null when nothing was recorded. */
  meanNs(): number | null {
    return this.count === 0 ? null : this.sumNs / this.count;
  }
}
