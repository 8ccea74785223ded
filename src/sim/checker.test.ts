import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Command, Decision } from "../core/index.js";
import { SafetyChecker } from "./checker.js";

const a: Command = { client: 1, seq: 1, payload: "a" };
const b: Command = { client: 1, seq: 2, payload: "b" };
const decision = (slot: number, commands: Command[], delivered = commands): Decision => ({
  slot,
  value: { commands },
  commands: delivered,
});

describe("SafetyChecker", () => {
  test("accepts agreeing, gap-free, valid, once-only deliveries", () => {
    const checker = new SafetyChecker(false);
    checker.submit(a);
    checker.submit(b);
    for (const learner of ["l1", "l2"]) {
      checker.decision(learner, decision(1, [a]), 1);
      checker.decision(learner, decision(2, [b]), 2);
    }
    assert.deepEqual(checker.violations, []);
    assert.ok(checker.deliveredAll("l1"));
  });

  test("agreement: two values decided in one slot", () => {
    const checker = new SafetyChecker(false);
    checker.submit(a);
    checker.submit(b);
    checker.decision("l1", decision(1, [a]), 1);
    checker.decision("l2", decision(1, [b]), 2);
    assert.deepEqual(
      checker.violations.map((v) => v.property),
      ["agreement"],
    );
  });

  test("prefix: a learner skipping a slot", () => {
    const checker = new SafetyChecker(false);
    checker.submit(a);
    checker.decision("l1", decision(2, [a]), 1);
    assert.equal(checker.violations[0]?.property, "prefix");
  });

  test("validity: a value no client submitted", () => {
    const checker = new SafetyChecker(false);
    checker.decision("l1", decision(1, [{ client: 9, seq: 1, payload: "forged" }]), 1);
    assert.equal(checker.violations[0]?.property, "validity");
  });

  test("at-most-once: a request delivered twice by one learner", () => {
    const checker = new SafetyChecker(false);
    checker.submit(a);
    checker.decision("l1", decision(1, [a]), 1);
    checker.decision("l1", decision(2, [a]), 2);
    assert.equal(checker.violations[0]?.property, "at-most-once");
  });

  test("unique-ballot-value: two values voted at one (slot, ballot)", () => {
    const checker = new SafetyChecker(false);
    const ballot = { round: 1, node: 1 };
    checker.vote({ type: "accepted", from: 1, ballot, slot: 1, value: { commands: [a] } }, 1);
    checker.vote({ type: "accepted", from: 2, ballot, slot: 1, value: { commands: [b] } }, 2);
    assert.equal(checker.violations[0]?.property, "unique-ballot-value");
  });

  test("a restarted learner may deliver from slot 1 again", () => {
    const checker = new SafetyChecker(false);
    checker.submit(a);
    checker.decision("l1", decision(1, [a]), 1);
    checker.learnerRestarted("l1");
    checker.decision("l1", decision(1, [a]), 2);
    assert.deepEqual(checker.violations, []);
  });
});
