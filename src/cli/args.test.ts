import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { editDistance, parseCommandArgs } from "./args.js";
import { UsageError } from "./errors.js";

const OPTIONS = {
  nodes: { type: "string" },
  "base-port": { type: "string" },
  data: { type: "string" },
  demo: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function parse(...args: string[]) {
  return parseCommandArgs("cluster", args, OPTIONS);
}

/** The one-line message of the usage error `run` throws. */
function usageError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    assert.equal(error.message.includes("\n"), false, error.message);
    return error.message;
  }
  assert.fail("no usage error");
}

describe("parseCommandArgs: the options of every paxos command", () => {
  test("reads values, flags, short flags and positionals as parseArgs does", () => {
    const { values, positionals } = parse("--nodes", "5", "x", "--demo", "--base-port=7200", "-h", "y");
    assert.deepEqual({ ...values }, { nodes: "5", demo: true, "base-port": "7200", help: true });
    assert.deepEqual(positionals, ["x", "y"]);
    assert.deepEqual(parse("--", "--nodes").positionals, ["--nodes"]);
  });

  test("an unknown option is named, with the nearest known one and where the help is", () => {
    assert.equal(
      usageError(() => parse("--baseport", "3")),
      'unknown option --baseport (did you mean --base-port?); see "paxos cluster --help"',
    );
    assert.equal(
      usageError(() => parse("--node=3")),
      'unknown option --node (did you mean --nodes?); see "paxos cluster --help"',
    );
    // Nothing near: no guess.
    assert.equal(
      usageError(() => parse("--transport", "tcp")),
      'unknown option --transport; see "paxos cluster --help"',
    );
    assert.equal(
      usageError(() => parse("-x")),
      'unknown option -x; see "paxos cluster --help"',
    );
  });

  test("a value that starts with '-' is taken as the value, for the command's own check to name", () => {
    assert.equal(parse("--nodes", "-3").values.nodes, "-3");
    assert.equal(parse("--data", "-").values.data, "-");
  });

  test("an option without its value names the option; the next option is never taken as a value", () => {
    assert.equal(
      usageError(() => parse("--nodes")),
      '--nodes needs a value; see "paxos cluster --help"',
    );
    assert.equal(
      usageError(() => parse("--data", "--demo")),
      '--data needs a value; see "paxos cluster --help"',
    );
    assert.equal(
      usageError(() => parse("--data", "-h")),
      '--data needs a value; see "paxos cluster --help"',
    );
  });

  test("an option given twice is refused, whichever way it was written", () => {
    assert.equal(
      usageError(() => parse("--nodes", "3", "--nodes", "4")),
      "--nodes given twice; give it once",
    );
    assert.equal(
      usageError(() => parse("--nodes=3", "--nodes", "3")),
      "--nodes given twice; give it once",
    );
    assert.equal(
      usageError(() => parse("--demo", "--demo")),
      "--demo given twice; give it once",
    );
    assert.equal(
      usageError(() => parse("-h", "--help")),
      "--help given twice; give it once",
    );
  });

  test("a flag given a value is refused", () => {
    assert.equal(
      usageError(() => parse("--demo=yes")),
      '--demo takes no value (got "yes")',
    );
  });

  test("'-' and negative numbers are positionals; positionals are refused where a command takes none", () => {
    assert.deepEqual(parse("-", "-5", "-0.5").positionals, ["-", "-5", "-0.5"]);
    assert.equal(
      usageError(() => parseCommandArgs("sim", ["3"], { seed: { type: "string" } }, false)),
      'unexpected argument "3"; see "paxos sim --help"',
    );
  });

  test("--debug is accepted by every command (main.ts shows an error's stack with it)", () => {
    assert.deepEqual(parse("--debug").positionals, []);
  });

  test("edit distance counts inserts, deletes and substitutions", () => {
    assert.equal(editDistance("baseport", "base-port"), 1);
    assert.equal(editDistance("sed", "seed"), 1);
    assert.equal(editDistance("kitten", "sitting"), 3);
    assert.equal(editDistance("", "abc"), 3);
    assert.equal(editDistance("same", "same"), 0);
  });
});
