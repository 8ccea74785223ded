/**
 * The real crash test (see crash.ts): three `paxos node` processes with write-ahead logs, killed with
 * SIGKILL at random moments and restarted while a client writes. No acked value may be lost, no value
 * delivered twice, no decided value changed.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { formatCrashReport, runCrashTest } from "./crash.js";

/** Rounds of kill and restart: about 1.5 s each, so the test stays well under a minute. */
const ROUNDS = 15;

test("SIGKILLed nodes restarted on their write-ahead logs lose no acked value and change no decision", {
  timeout: 120_000,
}, async (t) => {
  const report = await runCrashTest({ rounds: ROUNDS });
  t.diagnostic(formatCrashReport(report));
  t.diagnostic(
    `unacknowledged ${report.unacknowledged}, duplicates ${report.duplicates}, decided changed ` +
      `${report.decidedChanged}, kills ${report.kills}, decided ${report.decided}, ` +
      `${report.durationMs} ms, seed ${report.seed}`,
  );
  const evidence = () =>
    `${report.problems.join("\n")}\nevidence kept in ${report.dir}\ntimeline:\n${report.timeline.join("\n")}`;
  assert.equal(report.lost, 0, `acked values lost\n${evidence()}`);
  assert.equal(report.duplicates, 0, `values delivered twice\n${evidence()}`);
  assert.equal(report.decidedChanged, 0, `a decided value changed\n${evidence()}`);
  assert.equal(report.unknown, 0, `values never submitted were decided\n${evidence()}`);
  assert.ok(report.acknowledged > 0, `nothing acked\n${evidence()}`);
  assert.deepEqual(report.problems, [], evidence());
});
