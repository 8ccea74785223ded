/**
 * Invariant checks. A failed assertion means the protocol state is wrong: the process must stop
 * loudly rather than go on and risk deciding two values. Bad *input* is never asserted on; it is
 * validated at the edges (codec, config) and dropped or reported as a value.
 */
export class InvariantViolation extends Error {
  override readonly name = "InvariantViolation";
}

/** Throws {@link InvariantViolation} when `condition` is false. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}

/** For exhaustive switches: the compiler proves this is unreachable. */
export function unreachable(value: never, what: string): never {
  throw new InvariantViolation(`unreachable ${what}: ${JSON.stringify(value)}`);
}
