import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProcessGroup, runPaxosSync, waitFor } from "../test-support/index.js";

function paxos(...args: string[]) {
  return runPaxosSync(args);
}

describe("paxos command", () => {
  test("sim --seed prints a report and the same trace hash on every run", () => {
    const first = paxos("sim", "--seed", "3");
    const second = paxos("sim", "--seed", "3");
    assert.equal(first.status, 0, first.stderr);
    const hash = /trace hash ([0-9a-f]{16})/.exec(first.stdout)?.[1];
    assert.ok(hash, first.stdout);
    assert.match(second.stdout, new RegExp(`trace hash ${hash}`));
  });

  test("sim --seeds prints a summary with seeds, events, decided values and violations", () => {
    const run = paxos("sim", "--seeds", "1..20", "--workers", "2");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /seeds run: 20/);
    assert.match(run.stdout, /events: [\d,]+/);
    assert.match(run.stdout, /decided values .*: [\d,]+/);
    assert.match(run.stdout, /violations: 0/);
  });

  test("sim interrupted during a band says how many seeds it ran, prints the summary so far and exits 130", async () => {
    const processes = new ProcessGroup();
    try {
      const sim = processes.start("sim", ["sim", "--seeds", "1..1000000", "--workers", "1"]);
      // Its progress line (once a second on a pipe) shows that seeds have been counted.
      await waitFor(() => /seeds [1-9]\d*\/1000000/.test(sim.stderr), "a progress line with seeds run", {
        timeoutMs: 60_000,
      });
      sim.kill("SIGINT");
      const exit = await sim.finish(10_000);
      assert.deepEqual(exit, { code: 130, signal: null }, sim.stderr);
      const ran = /^interrupted \(SIGINT\) after (\d+) seeds of 1000000 /m.exec(sim.stdout)?.[1];
      assert.ok(ran !== undefined && Number(ran) > 0, sim.stdout);
      assert.match(sim.stdout, new RegExp(`^seeds run: ${ran}$`, "m"));
      assert.match(sim.stdout, /^violations: 0$/m);
    } finally {
      await processes.stopAll();
    }
  });

  test("sim --stray-attacks runs a stray peer and says what it sent and what did not decode", () => {
    const run = paxos("sim", "--seed", "2", "--stray-attacks", "garbage");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /stray peer: sent \d+ frames \(garbage \d+\)/);
    assert.match(run.stdout, /(\d+) copies reached a process, \1 did not decode/);
  });

  test("a bad flag or command is a one-line error with exit status 2", () => {
    for (const args of [
      ["sim", "--bogus"],
      ["sim", "--seeds", "9..1"],
      ["sim", "--seed", "x"],
      ["sim", "--seed", "1", "--stray-attacks", "forged-vote"],
      ["nope"],
    ]) {
      const run = paxos(...args);
      assert.equal(run.status, 2, `paxos ${args.join(" ")}`);
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
    }
  });

  test("--help works for the command and its subcommands", () => {
    for (const args of [["--help"], ["sim", "--help"], ["demo", "--help"]]) {
      const run = paxos(...args);
      assert.equal(run.status, 0);
      assert.match(run.stdout, /Usage: paxos/);
    }
  });

  test("demo runs a simulated 5-node cluster and reports what it decided", () => {
    const run = paxos("demo", "--seconds", "0.3");
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /slot +1: /);
    assert.match(run.stdout, /all decided exactly once, no safety violation/);
  });
});
