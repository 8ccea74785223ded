import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { binaryCodec } from "../codec/index.js";
import {
  type CatchupMessage,
  clusterMembers,
  createQuorumSystem,
  DEFAULT_LIMITS,
  Learner,
  type Output,
  type SnapshotRequestMessage,
} from "../core/index.js";

/**
 * How many bytes a learner sends in answer to one small request (issue 9: a 19-byte catch-up used
 * to return 2.4 MB). Encoded with the binary codec, as on the wire. The figures are printed as test
 * diagnostics; docs/security.md quotes them, with the same setup run against the code before.
 */
function server(): Learner {
  const quorum = createQuorumSystem([{ id: 1 }, { id: 2 }, { id: 3 }], { kind: "majority" });
  assert.ok(quorum.ok);
  const learner = new Learner({
    id: 1,
    quorum: quorum.value,
    members: clusterMembers([1, 2, 3]),
    logRetainSlots: 0,
  });
  // 256 slots, each a batch of 32 commands of 256 characters (about 8 KB a slot encoded).
  for (let slot = 1; slot <= 256; slot++) {
    const commands = Array.from({ length: 32 }, (_, i) => ({
      client: 7,
      seq: slot * 100 + i,
      payload: "p".repeat(256),
    }));
    learner.learn(slot, { commands });
  }
  return learner;
}

const bytesOf = (output: Output) =>
  output.send.reduce((sum, e) => sum + binaryCodec.encode(e.message).length, 0);

describe("Serving catch-up: the answer to one request is bounded (issue 9)", () => {
  const ask = (from: number): CatchupMessage => ({
    type: "catchup",
    from,
    role: "learner",
    fromSlot: 1,
    toSlot: 2 ** 53 - 1,
  });
  const requestBytes = binaryCodec.encode(ask(2)).length;

  test("a catch-up for every slot is answered with one decide message; a made-up id gets nothing", (t) => {
    const learner = server();
    const answer = bytesOf(learner.step(ask(2)));
    const stranger = bytesOf(learner.step(ask(999)));
    t.diagnostic(
      `catchup: request ${requestBytes} bytes, answer ${answer} bytes (${Math.round(answer / requestBytes)}x)`,
    );
    assert.ok(answer <= DEFAULT_LIMITS.bytesPerMessageMax + 1024, `answer ${answer} bytes`);
    assert.equal(stranger, 0);
  });

  test("a burst from one peer is answered up to its token bucket, then two a tick", (t) => {
    const learner = server();
    let answered = 0;
    let bytes = 0;
    for (let i = 0; i < 100; i++) {
      const out = learner.step(ask(3));
      if (out.send.length > 0) answered++;
      bytes += bytesOf(out);
    }
    t.diagnostic(`100 catch-ups in a burst: ${answered} answered, ${bytes} bytes`);
    assert.equal(answered, DEFAULT_LIMITS.serveRequestsBurst);
    learner.tick();
    assert.equal(learner.step(ask(3)).send.length, 1);
    assert.equal(learner.step(ask(3)).send.length, 1);
    assert.equal(learner.step(ask(3)).send.length, 0);
  });

  test("a snapshot request is answered with at most snapshotAnswerBytesMax of chunks", (t) => {
    const learner = server();
    learner.compact("s".repeat(1_000_000));
    const request: SnapshotRequestMessage = {
      type: "snapshot-request",
      from: 2,
      role: "learner",
      slot: 0,
      offset: 0,
    };
    const size = binaryCodec.encode(request).length;
    const answer = bytesOf(learner.step(request));
    t.diagnostic(
      `snapshot-request: request ${size} bytes, answer ${answer} bytes (${Math.round(answer / size)}x)`,
    );
    assert.ok(answer <= DEFAULT_LIMITS.snapshotAnswerBytesMax + 1024);
  });
});
