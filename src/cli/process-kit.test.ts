import assert from "node:assert/strict";
import { once } from "node:events";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pacedWriter } from "./process-kit.js";

/** A stream that holds every write until `flush()`: a reader that has stopped reading. */
function stalledStream() {
  const written: string[] = [];
  let held: (() => void)[] = [];
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk.toString());
      held.push(callback);
    },
  });
  return {
    stream,
    written,
    flush() {
      const callbacks = held;
      held = [];
      for (const callback of callbacks) callback();
    },
  };
}

test("pacedWriter pauses the intake once the backlog passes its limit, resumes on drain, drops nothing", async () => {
  const { stream, written, flush } = stalledStream();
  const calls: string[] = [];
  const intake = { pauseIntake: () => calls.push("pause"), resumeIntake: () => calls.push("resume") };
  const write = pacedWriter(stream, () => intake, 100);
  const lines = Array.from({ length: 30 }, (_, i) => `line ${String(i).padStart(2, "0")}\n`); // 8 bytes each
  for (const line of lines.slice(0, 12)) write(line); // 96 bytes waiting: under the limit
  assert.deepEqual(calls, []);
  for (const line of lines.slice(12)) write(line); // past it
  assert.deepEqual(calls, ["pause"], "one pause, however many writes follow");
  // The reader catches up: the stream drains, the intake resumes.
  while (stream.writableLength > 0) {
    flush();
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (calls.length < 2) await once(stream, "drain");
  assert.deepEqual(calls, ["pause", "resume"]);
  assert.equal(written.join(""), lines.join(""), "every line, in order");
});
