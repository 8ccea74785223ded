import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runSeed } from "./run.js";
import type { SimBugs } from "./simulation.js";
import type { TraceEvent, TraceEventKind } from "./trace-event.js";

/** The line trace's first letter for each kind of structured event that mirrors a line. */
const LINE_OF: Partial<Record<TraceEventKind, string>> = {
  timer: "t",
  sync: "s",
  submit: "c",
  crash: "x",
  restart: "r",
  heal: "h",
  partition: "p",
  open: "j",
  laggard: "a",
  plan: "P",
  stray: "S",
};

async function traced(seed: number, bugs?: SimBugs) {
  const lines: string[] = [];
  const events: TraceEvent[] = [];
  const result = await runSeed(seed, {
    ...(bugs ? { bugs } : {}),
    trace: (line) => lines.push(line),
    onEvent: (event) => events.push(event),
  });
  return { result, lines, events };
}

function countLines(lines: readonly string[], letters: string): number {
  return lines.filter((line) => letters.includes(line[0] as string)).length;
}

describe("the structured trace (SimOptions.onEvent)", () => {
  // 10 keeps a replica away (laggard), 105 runs a targeted sequence with a disk fault and a rejoin,
  // 14 has a stray peer; 18 and 11 fail with a broken variant.
  const cases: { seed: number; bugs?: SimBugs }[] = [
    { seed: 10 },
    { seed: 14 },
    { seed: 42 },
    { seed: 105 },
    { seed: 18, bugs: { acceptor: { ignorePromiseInPhase2: true } } },
    { seed: 11, bugs: { proposer: { reuseBallotAfterRestart: true } } },
  ];

  test("watching a run changes nothing in it: the same trace hash and event count", async () => {
    for (const { seed, bugs } of cases) {
      const plain = await runSeed(seed, bugs ? { bugs } : {});
      const { result } = await traced(seed, bugs);
      assert.equal(result.traceHash, plain.traceHash, `seed ${seed}`);
      assert.equal(result.events, plain.events, `seed ${seed}`);
      assert.deepEqual(result.violations, plain.violations, `seed ${seed}`);
    }
  });

  test("it has every event of the line trace, in order of event number and time", async () => {
    for (const { seed, bugs } of cases) {
      const { result, lines, events } = await traced(seed, bugs);
      for (const [kind, letter] of Object.entries(LINE_OF)) {
        const n = events.filter((e) => e.kind === kind).length;
        assert.equal(
          n,
          countLines(lines, letter as string),
          `seed ${seed}: ${kind} events and "${letter}" lines`,
        );
      }
      const snapshots = events.filter((e) => e.kind === "snapshot").length;
      assert.equal(snapshots, countLines(lines, "ki"), `seed ${seed}: snapshots`);
      assert.equal(events.filter((e) => e.kind === "disk-fault").length, countLines(lines, "fF"));
      // A "d" line is a message a driver took in: a delivery it accepted, with its message named.
      const taken = events.filter((e) => e.kind === "deliver" && e.accepted);
      assert.equal(taken.length, countLines(lines, "d"), `seed ${seed}: deliveries taken in`);
      assert.ok(
        taken.every((e) => e.kind === "deliver" && e.message !== null),
        "every message taken in is named",
      );
      for (let i = 1; i < events.length; i++) {
        const [before, after] = [events[i - 1] as TraceEvent, events[i] as TraceEvent];
        assert.ok(
          after.event >= before.event && after.timeMs >= before.timeMs,
          `seed ${seed}: order at ${i}`,
        );
      }
      for (const e of events) {
        if (e.kind === "deliver" || e.kind === "drop")
          assert.ok(e.sentMs <= e.timeMs, `sent after arrival: ${e}`);
      }
      assert.equal(events.at(-1)?.event, result.events);
    }
  });

  test("frames: what the network did to each is counted as the run counts it", async () => {
    const { result, events } = await traced(42);
    const count = (kind: TraceEventKind) => events.filter((e) => e.kind === kind).length;
    assert.equal(count("drop"), result.messagesDropped);
    // Each frame sent (a duplicated one twice) is delivered or dropped at most once; the few that
    // are not were still in flight when the run ended.
    const fates = count("deliver") + count("drop");
    const copies = result.messagesSent + count("duplicate");
    assert.ok(fates <= copies && fates > copies * 0.95, `${fates} fates of ${copies} copies`);
    const accepts = events.filter((e) => e.kind === "deliver" && e.message?.type === "accept");
    assert.ok(accepts.length > 0);
    for (const e of accepts) {
      if (e.kind !== "deliver" || e.message === null) continue;
      assert.match(e.message.ballot ?? "", /^\d+\.\d+$/);
      assert.ok(Number.isInteger(e.message.slot) && (e.message.slot as number) >= 1);
    }
    assert.ok(count("decide") > 0 && count("timer") > 0 && count("sync") > 0);
  });

  test("a failing run ends with its violation, numbered as the checker numbered it", async () => {
    const { result, events } = await traced(18, { acceptor: { ignorePromiseInPhase2: true } });
    const violation = result.violations[0];
    assert.ok(violation !== undefined, "seed 18 with the broken acceptor fails");
    const last = events.at(-1);
    assert.equal(last?.kind, "violation");
    if (last?.kind !== "violation") return;
    assert.equal(last.property, violation.property);
    assert.equal(last.detail, violation.detail);
    assert.equal(last.event, violation.event);
    assert.equal(events.filter((e) => e.kind === "violation").length, result.violations.length);
  });
});
