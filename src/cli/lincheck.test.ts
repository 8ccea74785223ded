import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runPaxosSync } from "../test-support/index.js";

const testdata = (name: string) => fileURLToPath(new URL(`../../testdata/lincheck/${name}`, import.meta.url));

describe("paxos lincheck", () => {
  test("a linearizable history: exit 0", () => {
    const run = runPaxosSync(["lincheck", "--model", "register", testdata("register-ok.jsonl")]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^linearizable \(5 operations, 1 key\)/);
  });

  test("a stale read: exit 1, with the operation no order explains", () => {
    const run = runPaxosSync(["lincheck", "--model", "register", testdata("register-stale-read.jsonl")]);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stdout, /^not linearizable/);
    assert.match(run.stdout, /through line 6/);
    assert.match(run.stdout, /line 5-6: process 2 read null -> 1/);
  });

  test("kv: a lost append on one key, the other key fine: exit 1 naming the key", () => {
    const run = runPaxosSync(["lincheck", "--model", "kv", testdata("kv-lost-append.jsonl")]);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stdout, /\(4 operations, 2 keys\)/);
    assert.match(run.stdout, /key "a": no order explains the history through line 8/);
  });

  test("a budget too small: unknown, exit 3", () => {
    const run = runPaxosSync([
      "lincheck",
      "--model",
      "register",
      "--steps",
      "2",
      testdata("register-ok.jsonl"),
    ]);
    assert.equal(run.status, 3, run.stderr);
    assert.match(run.stdout, /^unknown: the search budget ran out/);
  });

  test("malformed files and bad usage: exit 2, with the line number", () => {
    const dir = mkdtempSync(join(tmpdir(), "paxos-lincheck-"));
    try {
      const bad = join(dir, "bad.jsonl");
      writeFileSync(
        bad,
        '{"process":1,"type":"invoke","f":"write","value":1}\n{"process":1,"type":"ok","f":"write"\n',
      );
      const run = runPaxosSync(["lincheck", "--model", "register", bad]);
      assert.equal(run.status, 2);
      assert.match(run.stderr, /line 2: not JSON/);
      const unknownF = join(dir, "f.jsonl");
      writeFileSync(unknownF, '{"process":1,"type":"invoke","f":"put","value":"x"}\n');
      assert.match(
        runPaxosSync(["lincheck", "--model", "register", unknownF]).stderr,
        /line 1: the register model has no "put"/,
      );
      for (const args of [
        ["lincheck", "--model", "queue", bad],
        ["lincheck", "--model", "kv"],
        ["lincheck", "--model", "kv", "--steps", "0", bad],
      ]) {
        const usage = runPaxosSync(args);
        assert.equal(usage.status, 2, args.join(" "));
        assert.equal(usage.stderr.trim().split("\n").length, 1, usage.stderr);
      }
      assert.equal(runPaxosSync(["lincheck", "--model", "kv", join(dir, "missing.jsonl")]).status, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--help", () => {
    const run = runPaxosSync(["lincheck", "--help"]);
    assert.equal(run.status, 0);
    assert.match(run.stdout, /Usage: paxos lincheck --model register\|kv FILE/);
  });
});
