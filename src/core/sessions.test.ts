import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { InvariantViolation } from "./assert.js";
import type { Command } from "./messages.js";
import { type DeliveryOutcome, type SessionLimits, SessionTable } from "./sessions.js";

const c = (client: number, seq: number): Command => ({ client, seq, payload: `${client}/${seq}` });
const table = (clientsMax: number, clientRangesMax: number) =>
  new SessionTable({ clientsMax, clientRangesMax });

describe("SessionTable: each (client, seq) delivered once", () => {
  it("delivers a command once, whatever order seqs arrive in", () => {
    const sessions = table(10, 100);
    assert.equal(sessions.deliver(c(1, 2)), "delivered");
    assert.equal(sessions.deliver(c(1, 2)), "duplicate");
    assert.equal(sessions.rangeCount(1), 1, "one range: seq 2");
    assert.ok(sessions.isDelivered(c(1, 2)) && !sessions.isDelivered(c(1, 1)));
    assert.equal(sessions.deliver(c(1, 1)), "delivered");
    assert.equal(sessions.rangeCount(1), 1, "1 joins 2: still one range");
    assert.equal(sessions.deliver(c(1, 1)), "duplicate");
    assert.equal(sessions.deliver(c(2, 1)), "delivered", "clients are independent");
  });

  it("property: within its limits, deliver is 'delivered' exactly for the first occurrence of each (client, seq)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ client: fc.integer({ min: 1, max: 4 }), seq: fc.integer({ min: 1, max: 30 }) })),
        (commands) => {
          const sessions = table(10, 1000);
          const seen = new Set<string>();
          for (const { client, seq } of commands) {
            const key = `${client}:${seq}`;
            assert.equal(sessions.deliver(c(client, seq)), seen.has(key) ? "duplicate" : "delivered");
            seen.add(key);
            assert.ok(sessions.isDelivered(c(client, seq)));
          }
        },
      ),
    );
  });

  it("a client that restarts numbering from a higher base gets a second range, and old gaps stay open", () => {
    const sessions = table(10, 100);
    for (const seq of [1, 2, 3, 1000, 1001]) assert.equal(sessions.deliver(c(1, seq)), "delivered");
    assert.equal(sessions.rangeCount(1), 2);
    assert.ok(!sessions.isDelivered(c(1, 4)) && !sessions.isDelivered(c(1, 999)));
    assert.ok(sessions.isDelivered(c(1, 1000)) && sessions.isDelivered(c(1, 2)));
  });

  it("refuses non-positive limits", () => {
    assert.throws(() => table(0, 1), InvariantViolation);
    assert.throws(() => table(1, 0), InvariantViolation);
  });
});

describe("SessionTable past its limits: refuse, never evict, never give up a gap (issue 9, section 1)", () => {
  it("past clientsMax a new client is refused; no known client is forgotten", () => {
    const sessions = table(2, 100);
    sessions.deliver(c(1, 1));
    sessions.deliver(c(2, 1));
    assert.equal(sessions.refusal(c(3, 1)), "clients-full", "a proposer can tell before proposing");
    assert.equal(sessions.deliver(c(3, 1)), "clients-full");
    assert.equal(sessions.isDelivered(c(3, 1)), false, "a refused command is not delivered");
    assert.equal(sessions.clientCount, 2);
    // The known clients keep every session: a resend of 1/1 and 2/1 is still a duplicate.
    assert.equal(sessions.deliver(c(1, 1)), "duplicate");
    assert.equal(sessions.deliver(c(2, 1)), "duplicate");
    assert.equal(sessions.deliver(c(1, 2)), "delivered", "known clients go on");
    assert.equal(sessions.refusal(c(1, 3)), null);
    assert.equal(sessions.deliver(c(3, 1)), "clients-full", "and stays refused");
    assert.equal(sessions.refusedClientsFull, 2);
  });

  it("a command that would open a range past clientRangesMax is refused and closes its client", () => {
    const sessions = table(10, 2);
    for (const seq of [1, 3]) assert.equal(sessions.deliver(c(1, seq)), "delivered");
    assert.equal(sessions.deliver(c(1, 5)), "client-gaps", "a third range");
    assert.equal(sessions.rangeCount(1), 2, "no gap given up");
    // The gap at 2 was not given up: seq 2 is not delivered (it would have been acked, never applied).
    assert.equal(sessions.isDelivered(c(1, 2)), false);
    assert.equal(sessions.isDelivered(c(1, 5)), false);
    // Closed: every undelivered seq is refused from now on, even one that would fill a gap, so seq
    // 5 stays refused even if 4 were decided later: a refusal its client saw is never contradicted.
    assert.equal(sessions.isClosed(1), true);
    assert.equal(sessions.refusal(c(1, 2)), "client-gaps");
    assert.equal(sessions.deliver(c(1, 2)), "client-gaps");
    assert.equal(sessions.deliver(c(1, 4)), "client-gaps");
    assert.equal(sessions.deliver(c(1, 5)), "client-gaps");
    assert.equal(sessions.deliver(c(1, 1)), "duplicate", "what was applied stays delivered");
    assert.equal(sessions.deliver(c(2, 1)), "delivered", "other clients are not affected");
  });

  it("property: no command is ever delivered twice, and a refused one is never delivered later", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(
          fc.record({ client: fc.integer({ min: 1, max: 5 }), seq: fc.integer({ min: 1, max: 12 }) }),
          {
            maxLength: 80,
          },
        ),
        (clientsMax, clientRangesMax, commands) => {
          const sessions = table(clientsMax, clientRangesMax);
          const outcome = new Map<string, DeliveryOutcome>();
          for (const { client, seq } of commands) {
            const key = `${client}:${seq}`;
            const now = sessions.deliver(c(client, seq));
            const before = outcome.get(key);
            if (before === undefined) assert.notEqual(now, "duplicate", `${key}: a duplicate of nothing`);
            else if (before === "delivered" || before === "duplicate") assert.equal(now, "duplicate", key);
            else assert.equal(now, before, `${key}: refused, then ${now}`);
            outcome.set(key, now === "duplicate" ? "delivered" : now);
            assert.equal(sessions.isDelivered(c(client, seq)), now === "delivered" || now === "duplicate");
            assert.ok(sessions.clientCount <= clientsMax);
            for (let id = 1; id <= 5; id++) assert.ok(sessions.rangeCount(id) <= clientRangesMax);
          }
        },
      ),
    );
  });

  it("property: two replicas fed the same log, one restored from the other's export midway, decide alike", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ client: fc.integer({ min: 1, max: 5 }), seq: fc.integer({ min: 1, max: 12 }) }),
          {
            maxLength: 80,
          },
        ),
        fc.nat(80),
        (commands, cut) => {
          const limits: SessionLimits = { clientsMax: 3, clientRangesMax: 2 };
          const a = new SessionTable(limits);
          let b = new SessionTable(limits);
          commands.forEach(({ client, seq }, index) => {
            if (index === cut) {
              b = new SessionTable(limits);
              assert.equal(b.import(a.export()), null);
            }
            assert.equal(b.deliver(c(client, seq)), a.deliver(c(client, seq)));
          });
          assert.deepEqual(b.export(), a.export());
        },
      ),
    );
  });
});

describe("SessionBugs.dropRangeSilently (a canary for the simulator)", () => {
  it("gives up a gap without telling: a command never delivered counts as delivered", () => {
    const sessions = new SessionTable({ clientsMax: 10, clientRangesMax: 100 }, { dropRangeSilently: true });
    sessions.deliver(c(1, 1));
    sessions.deliver(c(1, 3));
    assert.equal(sessions.isDelivered(c(1, 2)), true, "the broken table lies");
    assert.equal(sessions.deliver(c(1, 2)), "duplicate");
  });
});
