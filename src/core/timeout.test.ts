import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InvariantViolation } from "./assert.js";
import { Prng } from "./prng.js";
import { backoffTicks, Timeout } from "./timeout.js";

/** How many ticks until the timeout fires, or null if it does not within `limit`. */
function ticksToFire(timeout: Timeout, limit = 1000): number | null {
  for (let tick = 1; tick <= limit; tick++) if (timeout.tick()) return tick;
  return null;
}

describe("Timeout: named countdowns in ticks, no timers", () => {
  it("fires on exactly the n-th tick after start, and only once", () => {
    for (const ticks of [1, 2, 5, 17]) {
      const timeout = new Timeout("t");
      timeout.start(ticks);
      assert.ok(timeout.isRunning);
      assert.equal(ticksToFire(timeout), ticks);
      assert.ok(!timeout.isRunning);
      assert.equal(ticksToFire(timeout, 50), null, "a fired timeout stays quiet until restarted");
    }
  });

  it("never fires when never started or when stopped", () => {
    const idle = new Timeout("idle");
    assert.ok(!idle.isRunning);
    assert.equal(ticksToFire(idle, 50), null);
    const stopped = new Timeout("stopped");
    stopped.start(3);
    stopped.tick();
    stopped.stop();
    assert.equal(ticksToFire(stopped, 50), null);
  });

  it("restarting resets the countdown", () => {
    const timeout = new Timeout("election");
    timeout.start(5);
    for (let i = 0; i < 4; i++) assert.equal(timeout.tick(), false);
    timeout.start(5); // a heartbeat arrived
    assert.equal(ticksToFire(timeout), 5);
  });

  it("refuses a non-positive or fractional number of ticks, naming the timeout", () => {
    const timeout = new Timeout("accept-retry");
    assert.throws(() => timeout.start(0), /accept-retry/);
    assert.throws(() => timeout.start(-1), InvariantViolation);
    assert.throws(() => timeout.start(1.5), InvariantViolation);
  });
});

describe("backoffTicks: exponential backoff with jitter", () => {
  it("attempt k waits base * 2^k (capped at max) plus up to half of that again", () => {
    const prng = new Prng(5);
    for (let attempt = 0; attempt < 12; attempt++) {
      const wait = Math.min(64, 4 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const ticks = backoffTicks(prng, 4, 64, attempt);
        assert.ok(Number.isInteger(ticks));
        assert.ok(
          ticks >= wait && ticks < wait * 1.5,
          `attempt ${attempt}: ${ticks} not in [${wait}, ${wait * 1.5})`,
        );
      }
    }
  });

  it("property: always a positive integer within [min(max, base*2^attempt), 1.5x that)", () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.nat({ max: 100 }),
        (seed, base, max, attempt) => {
          const ticks = backoffTicks(new Prng(seed), base, max, attempt);
          const wait = Math.min(max, base * 2 ** Math.min(attempt, 20));
          assert.ok(Number.isInteger(ticks) && ticks >= 1);
          assert.ok(ticks >= Math.max(1, wait), `${ticks} below the wait ${wait}`);
          assert.ok(ticks < Math.max(1.5, wait * 1.5), `${ticks} above 1.5 x the wait ${wait}`);
        },
      ),
    );
  });

  it("is deterministic for a seed, and jitter spreads competing proposers apart", () => {
    const a = Array.from({ length: 20 }, (_, i) => backoffTicks(new Prng(i), 10, 100, 1));
    const b = Array.from({ length: 20 }, (_, i) => backoffTicks(new Prng(i), 10, 100, 1));
    assert.deepEqual(a, b);
    assert.ok(new Set(a).size > 3, `jitter should vary the wait, got ${a.join(",")}`);
  });
});
