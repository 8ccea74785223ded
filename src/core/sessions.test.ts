import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InvariantViolation } from "./assert.js";
import type { Command } from "./messages.js";
import { SessionTable } from "./sessions.js";

const c = (client: number, seq: number): Command => ({ client, seq, payload: `${client}/${seq}` });

describe("SessionTable: each (client, seq) delivered once", () => {
  it("delivers a command once, whatever order seqs arrive in", () => {
    const table = new SessionTable(10, 100);
    assert.equal(table.deliver(c(1, 2)), true);
    assert.equal(table.deliver(c(1, 2)), false, "a duplicate");
    assert.equal(table.rangeCount(1), 1, "one range: seq 2");
    assert.ok(table.isDelivered(c(1, 2)) && !table.isDelivered(c(1, 1)));
    assert.equal(table.deliver(c(1, 1)), true);
    assert.equal(table.rangeCount(1), 1, "1 joins 2: still one range");
    assert.equal(table.deliver(c(1, 1)), false);
    assert.equal(table.deliver(c(2, 1)), true, "clients are independent");
  });

  it("property: deliver returns true exactly for the first occurrence of each (client, seq)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ client: fc.integer({ min: 1, max: 4 }), seq: fc.integer({ min: 1, max: 30 }) })),
        (commands) => {
          const table = new SessionTable(10, 1000);
          const seen = new Set<string>();
          for (const { client, seq } of commands) {
            const key = `${client}:${seq}`;
            assert.equal(table.deliver(c(client, seq)), !seen.has(key));
            seen.add(key);
            assert.ok(table.isDelivered(c(client, seq)));
          }
        },
      ),
    );
  });

  it("beyond clientsMax, the least recently delivered client is forgotten (its duplicates pass again)", () => {
    const table = new SessionTable(2, 100);
    table.deliver(c(1, 1));
    table.deliver(c(2, 1));
    table.deliver(c(1, 2)); // client 1 is now the most recent
    table.deliver(c(3, 1)); // evicts client 2
    assert.equal(table.clientCount, 2);
    assert.ok(table.isDelivered(c(1, 1)));
    assert.ok(!table.isDelivered(c(2, 1)), "client 2 was forgotten");
    assert.equal(table.deliver(c(2, 1)), true, "documented: a forgotten command can be delivered twice");
  });

  it("beyond rangesMax, the oldest gap is given up: a command in that gap then counts as delivered", () => {
    const table = new SessionTable(10, 2);
    for (const seq of [1, 3, 5]) assert.equal(table.deliver(c(1, seq)), true);
    assert.equal(table.rangeCount(1), 2, "three ranges over a limit of two: the gap at 2 is given up");
    // Seq 2 was never delivered, yet it is now refused as a duplicate (and a leader would ack it).
    assert.ok(table.isDelivered(c(1, 2)));
    assert.equal(table.deliver(c(1, 2)), false);
    assert.ok(!table.isDelivered(c(1, 4)), "the newer gap is kept");
  });

  it("a client that restarts numbering from a higher base gets a second range, and old gaps stay open", () => {
    const table = new SessionTable(10, 100);
    for (const seq of [1, 2, 3, 1000, 1001]) assert.equal(table.deliver(c(1, seq)), true);
    assert.equal(table.rangeCount(1), 2);
    assert.ok(!table.isDelivered(c(1, 4)) && !table.isDelivered(c(1, 999)));
    assert.ok(table.isDelivered(c(1, 1000)) && table.isDelivered(c(1, 2)));
  });

  it("refuses non-positive limits", () => {
    assert.throws(() => new SessionTable(0, 1), InvariantViolation);
    assert.throws(() => new SessionTable(1, 0), InvariantViolation);
  });
});
