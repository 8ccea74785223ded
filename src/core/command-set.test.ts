import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CommandSet } from "./command-set.js";
import type { Command } from "./messages.js";

const command = (client: number, seq: number): Command => ({ client, seq, payload: "" });

/** Sequence numbers near a clock-like base, at the offset limit's edges, and anywhere. */
const BASE = 1_795_000_000_000_000;
const seqArbitrary = fc.oneof(
  fc.integer({ min: BASE - 50, max: BASE + 50 }),
  fc.constantFrom(BASE + 2 ** 30 - 1, BASE + 2 ** 30, BASE - 2 ** 30 + 1, BASE - 2 ** 30, 0, 2 ** 53 - 1),
  fc.maxSafeNat(),
);

test("CommandSet agrees with a set of (client, seq) keys under any adds, deletes and clears", () => {
  const operation = fc.tuple(
    fc.constantFrom("add", "delete", "has", "clear"),
    fc.integer({ min: 1, max: 3 }),
    seqArbitrary,
  );
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
      const set = new CommandSet();
      const reference = new Set<string>();
      for (const [kind, client, seq] of operations) {
        const key = `${client}:${seq}`;
        const c = command(client, seq);
        if (kind === "add") {
          assert.equal(set.add(c), !reference.has(key));
          reference.add(key);
        } else if (kind === "delete") {
          assert.equal(set.delete(c), reference.delete(key));
        } else if (kind === "clear") {
          set.clear();
          reference.clear();
        }
        assert.equal(set.has(c), reference.has(key));
        assert.equal(set.size, reference.size);
      }
    }),
    { numRuns: 500 },
  );
});

test("a client's commands far from its first one are kept apart, and a client that empties starts over", () => {
  const set = new CommandSet();
  assert.ok(set.add(command(7, BASE)));
  assert.ok(set.add(command(7, BASE + 2 ** 30))); // past the offset limit
  assert.ok(set.add(command(7, 3)));
  assert.ok(!set.add(command(7, BASE + 2 ** 30)));
  assert.ok(set.has(command(7, 3)) && set.has(command(7, BASE + 2 ** 30)) && set.has(command(7, BASE)));
  assert.ok(!set.has(command(8, BASE)));
  assert.ok(
    set.delete(command(7, BASE)) && set.delete(command(7, 3)) && set.delete(command(7, BASE + 2 ** 30)),
  );
  assert.equal(set.size, 0);
  assert.ok(set.add(command(7, 5)));
  assert.ok(set.has(command(7, 5)) && !set.has(command(7, BASE)));
});
