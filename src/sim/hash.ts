/**
 * An incremental 64-bit FNV-1a hash over strings, kept as two 32-bit halves. It fingerprints a whole
 * simulated run: two runs of one seed must print the same hash.
 */
export class TraceHash {
  private hi = 0xcbf29ce4;
  private lo = 0x84222325;

  update(text: string): void {
    let hi = this.hi;
    let lo = this.lo;
    for (let i = 0; i < text.length; i++) {
      lo ^= text.charCodeAt(i);
      // Multiply the 64-bit value (hi, lo) by the FNV prime 0x100000001b3.
      const loMul = lo * 0x1b3;
      const carry = Math.floor(loMul / 4294967296);
      hi = (Math.imul(hi, 0x1b3) + (lo << 8) + carry) >>> 0;
      lo = loMul >>> 0;
    }
    // Separator so that ("ab","c") and ("a","bc") differ.
    lo ^= 0xff;
    this.hi = hi >>> 0;
    this.lo = lo >>> 0;
  }

  /** A hash that goes on from a state `digest()` returned. */
  static fromDigest(digest: string): TraceHash {
    const hash = new TraceHash();
    hash.hi = Number.parseInt(digest.slice(0, 8), 16) >>> 0;
    hash.lo = Number.parseInt(digest.slice(8, 16), 16) >>> 0;
    return hash;
  }

  digest(): string {
    return this.hi.toString(16).padStart(8, "0") + this.lo.toString(16).padStart(8, "0");
  }
}
