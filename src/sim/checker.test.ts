import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Command, Decision, Snapshot } from "../core/index.js";
import { AppDigest } from "./app.js";
import { SafetyChecker } from "./checker.js";

const a: Command = { client: 1, seq: 1, payload: "a" };
const b: Command = { client: 1, seq: 2, payload: "b" };
const decision = (slot: number, commands: Command[], delivered = commands): Decision => ({
  slot,
  value: { commands },
  commands: delivered,
});

/** The application state after applying `commands` in order. */
function appOf(commands: Command[]): string {
  const app = new AppDigest();
  for (const command of commands) app.apply(command);
  return app.encode();
}

/** Client 1 delivered seqs 1 and 2 (one range): the sessions of a snapshot through slot 2 here. */
const SESSIONS_1_2 = [1, 1, 1, 2];
const snapshotThrough2: Snapshot = { slot: 2, sessions: SESSIONS_1_2, app: appOf([a, b]) };

/** A checker where "l1" delivered slots 1 and 2 (commands a and b). */
function twoSlots(): SafetyChecker {
  const checker = new SafetyChecker(false);
  checker.submit(a);
  checker.submit(b);
  checker.decision("l1", decision(1, [a]), 1);
  checker.decision("l1", decision(2, [b]), 2);
  return checker;
}

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

  test("a snapshot install jumps a learner forward: it goes on after the snapshot's slot", () => {
    const checker = twoSlots();
    const c: Command = { client: 1, seq: 3, payload: "c" };
    checker.submit(c);
    checker.decision("l1", decision(3, [c]), 3);
    checker.snapshotTaken("l1", { slot: 3, sessions: [1, 1, 1, 3], app: appOf([a, b, c]) }, 4);
    assert.deepEqual(checker.violations, [], "a snapshot taken as of the last slot delivered");
    const fresh = twoSlots();
    fresh.submit(c);
    fresh.snapshotInstalled("l2", snapshotThrough2, 3);
    fresh.decision("l2", decision(3, [c]), 4);
    fresh.appState("l2", 3, appOf([a, b, c]), 5);
    assert.deepEqual(fresh.violations, []);
    assert.ok(fresh.deliveredAll("l2"), "the commands in the snapshot count as delivered");
  });

  test("prefix: a snapshot installed backwards, below what the learner delivered", () => {
    const checker = twoSlots();
    checker.submit({ client: 1, seq: 3, payload: "c" });
    checker.decision("l1", decision(3, [{ client: 1, seq: 3, payload: "c" }]), 3);
    checker.snapshotInstalled("l1", snapshotThrough2, 4);
    assert.equal(checker.violations[0]?.property, "prefix");
  });

  test("snapshot: an application state that is not the agreed sequence's through the slot", () => {
    const checker = twoSlots();
    checker.snapshotInstalled("l2", { ...snapshotThrough2, app: appOf([a]) }, 3);
    assert.equal(checker.violations[0]?.property, "snapshot");
    const taken = twoSlots();
    taken.snapshotTaken("l1", { ...snapshotThrough2, slot: 1 }, 3);
    assert.equal(taken.violations[0]?.property, "snapshot", "taken below the delivered slot");
  });

  test("snapshot: sessions that miss a command in it (it would be delivered again)", () => {
    const checker = twoSlots();
    checker.snapshotInstalled("l2", { ...snapshotThrough2, sessions: [1, 1, 1, 1] }, 3);
    assert.equal(checker.violations[0]?.property, "snapshot");
  });

  test("snapshot: a slot through it that nobody decided", () => {
    const checker = twoSlots();
    checker.snapshotInstalled("l2", { ...snapshotThrough2, slot: 3 }, 3);
    assert.equal(checker.violations[0]?.property, "snapshot");
  });

  test("at-most-once: a command in an installed snapshot delivered again after it", () => {
    const checker = twoSlots();
    checker.snapshotInstalled("l2", snapshotThrough2, 3);
    checker.decision("l2", decision(3, [b]), 4);
    assert.deepEqual(
      checker.violations.map((v) => v.property),
      ["at-most-once"],
    );
  });

  test("a learner restarted from a snapshot resumes from its slot, not before", () => {
    const checker = twoSlots();
    const c: Command = { client: 1, seq: 3, payload: "c" };
    checker.submit(c);
    checker.learnerRestarted("l1", 2, snapshotThrough2, 3);
    checker.decision("l1", decision(3, [c]), 4);
    assert.deepEqual(checker.violations, []);
    const behind = twoSlots();
    behind.learnerRestarted("l1", 1, snapshotThrough2, 3);
    assert.equal(behind.violations[0]?.property, "snapshot");
  });

  test("app-state: an application that is not the agreed sequence's state", () => {
    const checker = twoSlots();
    checker.appState("replica:1", 2, appOf([b, a]), 3);
    assert.equal(checker.violations[0]?.property, "app-state");
    const ahead = twoSlots();
    ahead.appState("replica:1", 3, appOf([a, b]), 3);
    assert.equal(ahead.violations[0]?.property, "app-state", "past the decided sequence");
  });
  test("fresh-ballot: a restart that kept its state never prepares at a ballot used before", () => {
    const ballot = { round: 2, node: 2 };
    const checker = new SafetyChecker(false);
    checker.prepare(ballot, "replica:2", 1, 1);
    checker.prepare(ballot, "replica:2", 1, 2);
    assert.equal(checker.violations.length, 0, "one incarnation may send its prepare again");
    checker.prepare(ballot, "replica:2", 2, 3);
    assert.equal(checker.violations[0]?.property, "fresh-ballot");
  });

  test("fresh-ballot: after losing its state, a ballot only prepared with may be prepared again", () => {
    const ballot = { round: 2, node: 2 };
    const checker = new SafetyChecker(false);
    checker.prepare(ballot, "replica:2", 1, 1);
    checker.stateLost("replica:2");
    checker.prepare(ballot, "replica:2", 2, 2);
    checker.proposal(ballot, "replica:2", 2, 3);
    assert.deepEqual(checker.violations, []);
  });

  test("fresh-ballot: no ballot an earlier incarnation sent accepts at, whatever it lost", () => {
    const ballot = { round: 2, node: 2 };
    const prepared = new SafetyChecker(false);
    prepared.prepare(ballot, "replica:2", 1, 1);
    prepared.proposal(ballot, "replica:2", 1, 2);
    prepared.stateLost("replica:2");
    prepared.prepare(ballot, "replica:2", 2, 3);
    assert.equal(prepared.violations[0]?.property, "fresh-ballot");
    const proposed = new SafetyChecker(false);
    proposed.proposal(ballot, "replica:2", 1, 1);
    proposed.stateLost("replica:2");
    proposed.proposal(ballot, "replica:2", 2, 2);
    assert.equal(proposed.violations[0]?.property, "fresh-ballot", "accepts in two incarnations");
  });
});

describe("AppDigest", () => {
  test("encodes, decodes and goes on as if never encoded", () => {
    const app = new AppDigest();
    app.apply(a);
    const copy = AppDigest.decode(app.encode());
    assert.ok(copy !== null);
    app.apply(b);
    copy.apply(b);
    assert.equal(copy.encode(), app.encode());
    assert.equal(copy.commandCount, 2);
    assert.equal(AppDigest.decode("not a state"), null);
    assert.notEqual(appOf([a, b]), appOf([b, a]), "the order of commands matters");
  });
});
