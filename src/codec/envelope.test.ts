import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Message } from "../core/index.js";
import {
  CLIENT_SENDERS_MAX,
  clusterIdOf,
  ENVELOPE_BYTES_MAX,
  EnvelopeGuard,
  type EnvelopeOptions,
  MAC_BYTES,
  type Opened,
  parseEnvelope,
  REPLAY_WINDOW_FRAMES,
} from "./envelope.js";
import { binaryCodec } from "./index.js";

const KEY = new TextEncoder().encode("a cluster key of 32 bytes, ok!!!");
const OLD_KEY = new TextEncoder().encode("the previous cluster key, 32 B..");
const CLUSTER = 0xc0ffee;
const NODES = [1, 2, 3].map((id) => ({ kind: "node" as const, id }));

function node(id: number, options: Partial<EnvelopeOptions> = {}): EnvelopeGuard {
  return new EnvelopeGuard({
    clusterId: CLUSTER,
    self: { kind: "node", id },
    roles: ["proposer", "acceptor", "learner"],
    incarnation: 1000,
    key: KEY,
    members: NODES,
    ...options,
  });
}

const heartbeat = (from: number): Message => ({
  type: "heartbeat",
  from,
  ballot: { round: 3, node: from },
  decidedThrough: 17,
  proposedThrough: 20,
});

function refusedFor(opened: Opened): string {
  assert.equal(opened.kind, "refused", `expected a refusal, got ${opened.kind}`);
  return opened.kind === "refused" ? opened.reason : "";
}

describe("Envelope: sealing and opening", () => {
  test("round trip, with and without a key; the overhead stays within ENVELOPE_BYTES_MAX", () => {
    for (const key of [KEY, null]) {
      const a = node(1, { key });
      const b = node(2, { key });
      const body = binaryCodec.encode(heartbeat(1));
      const frame = a.seal(body, { role: "acceptor", id: 2 });
      assert.ok(frame.length - body.length <= ENVELOPE_BYTES_MAX);
      assert.equal(frame.length - body.length, key === null ? 13 : 13 + MAC_BYTES, "small overhead");
      const opened = b.open(frame);
      assert.equal(opened.kind, "message");
      if (opened.kind !== "message") return;
      assert.deepEqual(opened.sender, { kind: "node", id: 1 });
      assert.deepEqual([...opened.body], [...body]);
      const parsed = parseEnvelope(frame);
      assert.equal(parsed?.authenticated, key !== null);
      assert.equal(parsed?.seq, 1);
      assert.equal(parsed?.incarnation, 1000);
      assert.deepEqual(parsed?.receiver, { role: "acceptor", id: 2 });
    }
  });

  test("a broadcast (no receiver id) is taken by every member of the role; seqs count up per frame", () => {
    const a = node(1);
    const first = a.seal(new Uint8Array([1]), { role: "learner" });
    const second = a.seal(new Uint8Array([2]), { role: "learner" });
    assert.equal(parseEnvelope(first)?.seq, 1);
    assert.equal(parseEnvelope(second)?.seq, 2);
    assert.equal(node(2).open(first).kind, "message");
    assert.equal(node(3).open(first).kind, "message");
  });

  test("every failure reason is refused and counted, and state is untouched by it", () => {
    const a = node(1);
    const b = node(2);
    const body = binaryCodec.encode(heartbeat(1));
    const good = a.seal(body, { role: "acceptor", id: 2 });

    assert.equal(refusedFor(b.open(new Uint8Array(0))), "malformed-envelope");
    assert.equal(refusedFor(b.open(body)), "malformed-envelope", "a bare codec frame");
    assert.equal(refusedFor(b.open(good.subarray(0, 8))), "malformed-envelope", "cut inside the header");
    const badFlags = good.slice();
    badFlags[1] = (badFlags[1] as number) | 0x80;
    assert.equal(refusedFor(b.open(badFlags)), "malformed-envelope");

    assert.equal(refusedFor(node(2, { clusterId: CLUSTER + 1 }).open(good)), "wrong-cluster");
    assert.equal(refusedFor(node(3).open(good)), "wrong-receiver", "for node 2, not 3");
    const toClient = a.seal(body, { role: "client" });
    assert.equal(refusedFor(b.open(toClient)), "wrong-receiver", "a node is not a client");

    const keyless = node(1, { key: null }).seal(body, { role: "acceptor", id: 2 });
    const unauthenticated = b.open(keyless);
    assert.equal(refusedFor(unauthenticated), "unauthenticated");
    assert.equal(unauthenticated.kind === "refused" && unauthenticated.notify, "unauthenticated");

    for (const at of [0, 1, 6, 10, good.length - MAC_BYTES - 1, good.length - 1]) {
      const flipped = good.slice();
      flipped[at] = (flipped[at] as number) ^ 0x01;
      const reason = refusedFor(node(2).open(flipped));
      assert.ok(
        ["bad-mac", "malformed-envelope", "wrong-cluster", "unauthenticated"].includes(reason),
        `a flipped byte at ${at}: ${reason}`,
      );
    }
    const otherKey = node(1, { key: OLD_KEY }).seal(body, { role: "acceptor", id: 2 });
    assert.equal(refusedFor(b.open(otherKey)), "bad-mac");
    // The receiver is bound by the MAC: rewriting it to node 3 breaks the MAC.
    const forNode3 = a.seal(body, { role: "acceptor", id: 2 });
    forNode3[8] = 3; // senderId 1 at [7], receiverRole at [8]: make it "client" (3)
    assert.equal(refusedFor(node(3).open(forNode3)), "bad-mac");

    const stranger = node(9).seal(body, { role: "acceptor", id: 2 });
    assert.equal(refusedFor(b.open(stranger)), "unknown-sender");

    assert.equal(b.open(good).kind, "message");
    assert.equal(refusedFor(b.open(good)), "replay");

    const old = node(1, { incarnation: 999 }).seal(body, { role: "acceptor", id: 2 });
    const stale = b.open(old);
    assert.equal(refusedFor(stale), "stale-incarnation");
    assert.equal(stale.kind === "refused" && stale.notify, "stale-incarnation");

    assert.deepEqual(b.refusals.byReason(), {
      "bad-mac": 1,
      "malformed-envelope": 4,
      replay: 1,
      "stale-incarnation": 1,
      unauthenticated: 1,
      "unknown-sender": 1,
      "wrong-receiver": 1,
    });
  });

  test("a later incarnation of a sender replaces its window; an earlier one is refused from then on", () => {
    const b = node(2);
    const before = node(1, { incarnation: 5 });
    const after = node(1, { incarnation: 6 });
    const early = before.seal(new Uint8Array([1]), { role: "acceptor" });
    assert.equal(b.open(before.seal(new Uint8Array([1]), { role: "acceptor" })).kind, "message");
    assert.equal(b.open(after.seal(new Uint8Array([1]), { role: "acceptor" })).kind, "message");
    assert.equal(refusedFor(b.open(early)), "stale-incarnation");
  });

  test("without a key, incarnations and seqs are not enforced (a forged one could lock a sender out)", () => {
    const b = node(2, { key: null });
    const a = node(1, { key: null });
    const frame = a.seal(new Uint8Array([1]), { role: "acceptor" });
    assert.equal(b.open(frame).kind, "message");
    assert.equal(b.open(frame).kind, "message", "a duplicate passes: the protocol is idempotent");
    assert.equal(
      b.open(node(1, { key: null, incarnation: 1 }).seal(new Uint8Array([1]), { role: "acceptor" })).kind,
      "message",
    );
    assert.equal(b.refusals.total, 0);
  });

  test("key rotation: a second, accepted key verifies; frames are always sealed with the first", () => {
    const rotating = node(2, { key: KEY, acceptKey: OLD_KEY });
    const fromOld = node(1, { key: OLD_KEY }).seal(new Uint8Array([1]), { role: "acceptor" });
    const fromNew = node(3, { key: KEY }).seal(new Uint8Array([1]), { role: "acceptor" });
    assert.equal(rotating.open(fromOld).kind, "message");
    assert.equal(rotating.open(fromNew).kind, "message");
    const sent = rotating.seal(new Uint8Array([1]), { role: "acceptor" });
    assert.equal(node(1, { key: KEY }).open(sent).kind, "message");
    assert.equal(refusedFor(node(1, { key: OLD_KEY }).open(sent)), "bad-mac");
  });

  test("a key shorter than 16 bytes, a cluster id out of range are refused at construction", () => {
    assert.throws(() => node(1, { key: new Uint8Array(15) }), /at least 16 bytes/);
    assert.throws(() => node(1, { clusterId: 0 }), /cluster id/);
    assert.throws(() => node(1, { clusterId: 2 ** 32 }), /cluster id/);
  });

  test("multicast groups: a frame for another member of our role is ignored, not refused", () => {
    const proposer1 = new EnvelopeGuard({
      clusterId: CLUSTER,
      self: { kind: "proposer", id: 1 },
      roles: ["proposer"],
      incarnation: 1,
      groupDelivery: true,
    });
    const acceptor = new EnvelopeGuard({
      clusterId: CLUSTER,
      self: { kind: "acceptor", id: 1 },
      roles: ["acceptor"],
      incarnation: 1,
      groupDelivery: true,
    });
    const promiseTo2 = acceptor.seal(new Uint8Array([1]), { role: "proposer", id: 2 });
    assert.equal(proposer1.open(promiseTo2).kind, "ignored");
    assert.equal(proposer1.refusals.total, 0);
    assert.equal(
      proposer1.open(acceptor.seal(new Uint8Array([1]), { role: "proposer", id: 1 })).kind,
      "message",
    );
  });

  test("notices: unauthenticated, carry the reason, and reach only the party they name", () => {
    const b = node(2);
    const client = new EnvelopeGuard({
      clusterId: CLUSTER,
      self: { kind: "client", id: 77 },
      roles: ["client"],
      incarnation: 1,
    });
    const notice = b.notice("unauthenticated", { kind: "client", id: 77 });
    assert.equal(parseEnvelope(notice)?.authenticated, false);
    const opened = client.open(notice);
    assert.deepEqual(opened, { kind: "notice", reason: "unauthenticated", sender: { kind: "node", id: 2 } });
    const other = new EnvelopeGuard({
      clusterId: CLUSTER,
      self: { kind: "client", id: 78 },
      roles: ["client"],
      incarnation: 1,
    });
    assert.equal(refusedFor(other.open(notice)), "wrong-receiver");
  });

  test("clusterIdOf is a stable 32-bit hash, never 0", () => {
    assert.equal(clusterIdOf("cluster a"), clusterIdOf("cluster a"));
    assert.notEqual(clusterIdOf("cluster a"), clusterIdOf("cluster b"));
    const id = clusterIdOf("");
    assert.ok(Number.isInteger(id) && id >= 1 && id <= 0xffff_ffff);
  });
});

describe("Envelope: the replay window (IPsec-style sliding bitmap)", () => {
  /** Frames 1..n from node 1 (seq = index + 1). */
  function frames(n: number): Uint8Array[] {
    const a = node(1);
    return Array.from({ length: n }, () => a.seal(new Uint8Array([0]), { role: "acceptor" }));
  }
  const seqOf = (frame: Uint8Array) => parseEnvelope(frame)?.seq;

  test("in-order, reordered within the window, duplicates, and the window's edges", () => {
    const all = frames(REPLAY_WINDOW_FRAMES + 100);
    const b = node(2);
    const highest = REPLAY_WINDOW_FRAMES + 10;
    assert.equal(seqOf(all[highest - 1] as Uint8Array), highest);
    assert.equal(b.open(all[highest - 1] as Uint8Array).kind, "message", "jump ahead");
    // seq highest - (W - 1) is the oldest still inside the window; highest - W is just outside it.
    const oldestInside = highest - (REPLAY_WINDOW_FRAMES - 1);
    assert.equal(b.open(all[oldestInside - 1] as Uint8Array).kind, "message", "the window's far edge");
    assert.equal(refusedFor(b.open(all[oldestInside - 1] as Uint8Array)), "replay");
    assert.equal(refusedFor(b.open(all[oldestInside - 2] as Uint8Array)), "replay", "behind the window");
    for (const seq of [highest - 1, highest - 31, highest - 32, highest - 33, highest - 64]) {
      assert.equal(b.open(all[seq - 1] as Uint8Array).kind, "message", `late seq ${seq}`);
      assert.equal(refusedFor(b.open(all[seq - 1] as Uint8Array)), "replay", `seq ${seq} again`);
    }
    assert.equal(refusedFor(b.open(all[highest - 1] as Uint8Array)), "replay", "the highest again");
    // Slide by 1, by 33 (across a word), and past a whole window: what was seen stays seen while inside.
    assert.equal(b.open(all[highest] as Uint8Array).kind, "message");
    assert.equal(refusedFor(b.open(all[highest - 2] as Uint8Array)), "replay", "seen before the slide");
    assert.equal(b.open(all[highest + 33] as Uint8Array).kind, "message");
    assert.equal(refusedFor(b.open(all[highest - 32] as Uint8Array)), "replay", "seen, 66 behind");
    assert.equal(b.open(all[highest - 3] as Uint8Array).kind, "message", "never seen, 37 behind");
  });

  test("a jump of a whole window or more forgets everything behind it", () => {
    const all = frames(3 * REPLAY_WINDOW_FRAMES);
    const b = node(2);
    assert.equal(b.open(all[0] as Uint8Array).kind, "message");
    assert.equal(b.open(all[2 * REPLAY_WINDOW_FRAMES] as Uint8Array).kind, "message");
    assert.equal(refusedFor(b.open(all[0] as Uint8Array)), "replay", "now behind the window");
    assert.equal(b.open(all[REPLAY_WINDOW_FRAMES + 1] as Uint8Array).kind, "message", "inside, unseen");
  });

  test("a random order of distinct frames is taken once each (within the window), duplicates never", () => {
    const all = frames(600);
    const b = node(2);
    let state = 12345;
    const order = [...all.keys()];
    for (let i = order.length - 1; i > 0; i--) {
      state = (state * 1103515245 + 12345) >>> 0;
      const j = state % (i + 1);
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    let taken = 0;
    for (const index of [...order, ...order])
      if (b.open(all[index] as Uint8Array).kind === "message") taken++;
    assert.equal(taken, 600, "each frame exactly once");
  });

  test("memory is bounded: members only, and a bounded table of clients", () => {
    const b = node(2);
    for (let id = 1; id <= CLIENT_SENDERS_MAX + 50; id++) {
      const client = new EnvelopeGuard({
        clusterId: CLUSTER,
        self: { kind: "client", id },
        roles: ["client"],
        incarnation: 1,
        key: KEY,
      });
      b.open(client.seal(new Uint8Array([1]), { role: "proposer" }));
    }
    assert.equal(b.sendersTracked, NODES.length + CLIENT_SENDERS_MAX);
  });
});
