import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  hasLogged,
  LOG_MESSAGES,
  logRecords,
  numberField,
  parseLogLine,
  proposerModeMessage,
} from "./log-messages.js";

describe("log messages other code reads", () => {
  const installed = `{"level":30,"name":"node 1","commands":12,"stdoutLines":7,"msg":"${LOG_MESSAGES.snapshotInstalled}"}`;

  test("parseLogLine reads a JSON log line and nothing else", () => {
    assert.equal(parseLogLine(installed)?.msg, LOG_MESSAGES.snapshotInstalled);
    assert.equal(parseLogLine("FATAL InvariantViolation: x"), null);
    assert.equal(parseLogLine('{"level":30,"msg":"cut sh'), null, "a torn line");
    assert.equal(parseLogLine('{"level":30}'), null, "no msg");
  });

  test("logRecords finds the records of one message, not another that contains its text", () => {
    const text = [
      `{"msg":"${LOG_MESSAGES.started}","endpoint":{}}`,
      installed,
      `{"msg":"not ${LOG_MESSAGES.started}"}`,
      "plain text mentioning started",
    ].join("\n");
    assert.equal(logRecords(text, LOG_MESSAGES.started).length, 1);
    assert.equal(hasLogged(text, LOG_MESSAGES.snapshotInstalled), true);
    assert.equal(hasLogged(text, LOG_MESSAGES.stopping), false);
    const [record] = logRecords(text, LOG_MESSAGES.snapshotInstalled);
    assert.ok(record !== undefined);
    assert.equal(numberField(record, "commands"), 12);
    assert.equal(numberField(record, "stdoutLines"), 7);
    assert.equal(numberField(record, "missing"), 0);
  });

  test("a proposer that leads says LOG_MESSAGES.nowLeader", () => {
    assert.equal(proposerModeMessage("leader"), LOG_MESSAGES.nowLeader);
  });
});
