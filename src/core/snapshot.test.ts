import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Acceptor } from "./acceptor.js";
import { ballot } from "./ballot.js";
import { Learner, type LearnerOptions } from "./learner.js";
import { DEFAULT_LIMITS } from "./limits.js";
import type { Decision, Envelope, Message, SlotValue, SnapshotChunkMessage } from "./messages.js";
import { emptyOutput, mergeDelta, mergeOutput, type Output } from "./output.js";
import { Prng } from "./prng.js";
import { Replica } from "./replica.js";
import { SessionTable, sessionLimitsProblem } from "./sessions.js";
import { chunkEnd, decodeSnapshot, encodeSnapshot, type Snapshot, textChecksum } from "./snapshot.js";
import { cmd, majorityOf, val } from "./test-util.js";

const QUORUM = majorityOf(3);
const slots = (from: number, to: number): SlotValue[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ slot: from + i, value: val(cmd(7, from + i)) }));

/** Small chunks, so that a snapshot takes several chunks and several requests. */
const SMALL = { snapshotChunkUnits: 8, snapshotChunksPerRequest: 2 };

/** Makes `entries` known chosen (as a co-located proposer tells its learner). */
function given(learner: Learner, entries: readonly SlotValue[]): void {
  for (const entry of entries) learner.learn(entry.slot, entry.value);
}

/** Has `learner` learn that slots through `slot` are decided, and ask for them (catch-up). */
function asking(learner: Learner, slot: number): void {
  learner.noteDecidedThrough(slot);
  for (let tick = 0; tick < 10 && learner.outstandingRequests === 0; tick++) learner.tick();
  assert.ok(learner.outstandingRequests > 0, "the learner asked");
}

function learner(id: number, options: Partial<LearnerOptions> = {}): Learner {
  return new Learner({ id, quorum: QUORUM, catchupTicks: 2, limits: SMALL, ...options });
}

/**
 * Delivers every message addressed to learners among `learners` (by id), in order, until none is
 * left; `drop` may refuse some. Returns what each learner output, merged.
 */
function route(
  learners: Map<number, Learner>,
  first: Map<number, Output>,
  drop: (message: Message) => boolean = () => false,
): Map<number, Output> {
  const merged = new Map<number, Output>();
  const queue: Array<{ to: number; message: Message }> = [];
  const take = (from: number, output: Output) => {
    mergeOutput(merged.get(from) ?? (merged.set(from, emptyOutput()).get(from) as Output), output);
    for (const envelope of output.send) {
      for (const [id] of learners)
        if (deliverable(envelope, id, from)) queue.push({ to: id, message: envelope.message });
    }
  };
  for (const [id, output] of first) take(id, output);
  for (let steps = 0; queue.length > 0; steps++) {
    assert.ok(steps < 10_000, "routing does not settle");
    const { to, message } = queue.shift() as { to: number; message: Message };
    if (drop(message)) continue;
    take(to, (learners.get(to) as Learner).step(message));
  }
  return merged;
}

function deliverable(envelope: Envelope, id: number, from: number): boolean {
  if (envelope.to.role !== "learner") return false;
  return envelope.to.id === undefined ? id !== from : envelope.to.id === id;
}

describe("snapshot encoding", () => {
  it("round-trips, app text verbatim (newlines, surrogate pairs)", () => {
    const snapshot: Snapshot = { slot: 42, sessions: [7, 1, 1, 9], app: 'line1\nline2 "q" 😀' };
    const decoded = decodeSnapshot(encodeSnapshot(snapshot));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, snapshot);
  });

  it("refuses damaged texts with a reason", () => {
    assert.deepEqual(decodeSnapshot("no header"), { ok: false, error: "snapshot has no header line" });
    assert.equal(decodeSnapshot("{nope\nx").ok, false);
    assert.equal(decodeSnapshot('{"slot":0,"sessions":[]}\nx').ok, false);
    assert.equal(decodeSnapshot('{"slot":3,"sessions":[-1]}\nx').ok, false);
  });

  it("chunks never split a surrogate pair", () => {
    const text = "ab😀cd😀😀e";
    const pieces: string[] = [];
    for (let at = 0; at < text.length; ) {
      const end = chunkEnd(text, at, 3);
      assert.ok(end > at);
      pieces.push(text.slice(at, end));
      at = end;
    }
    assert.equal(pieces.join(""), text);
    for (const piece of pieces)
      assert.ok(!/[\uD800-\uDBFF]$/.test(piece), `"${piece}" ends in a high surrogate`);
  });

  it("checksums differ for different texts", () => {
    assert.notEqual(textChecksum("abc"), textChecksum("abd"));
    assert.equal(textChecksum("abc"), textChecksum("abc"));
  });
});

describe("SessionTable export and import (the limits travel with the table)", () => {
  const limits = { clientsMax: 2, clientRangesMax: 2 };

  it("rebuilds the same table, its limits and closed clients included, and it decides alike", () => {
    const table = new SessionTable(limits);
    for (const [client, seq] of [
      [1, 1],
      [1, 2],
      [2, 5],
      [1, 4],
      [2, 9],
      [2, 7], // a third range for client 2: refused, client 2 closed
    ] as const)
      table.deliver(cmd(client, seq));
    assert.equal(table.isClosed(2), true);
    const flat = table.export();
    assert.deepEqual(flat, [0, 2, 2, 1, 2, 1, 2, 1, 2, 4, 4, 2, 2, 5, 5, 9, 9]);
    const copy = new SessionTable(limits);
    assert.equal(copy.import(flat), null);
    assert.deepEqual(copy.export(), flat);
    // The same next deliveries give the same outcomes in both: a full table refuses client 3, a
    // closed client stays closed, an open one goes on.
    for (const command of [cmd(3, 1), cmd(2, 6), cmd(1, 3), cmd(1, 7)])
      assert.equal(copy.deliver(command), table.deliver(command), `${command.client}/${command.seq}`);
    assert.deepEqual(copy.export(), table.export());
    assert.equal(copy.isDelivered(cmd(1, 3)), true);
    assert.equal(copy.isDelivered(cmd(2, 7)), false);
  });

  it("refuses a list built under other limits, and one without limits, keeping its state", () => {
    const other = new SessionTable({ clientsMax: 3, clientRangesMax: 2 });
    other.deliver(cmd(1, 1));
    const table = new SessionTable(limits);
    table.deliver(cmd(5, 1));
    assert.match(
      table.import(other.export()) ?? "",
      /built with clientsMax 3, clientRangesMax 2; this cluster is configured with clientsMax 2, clientRangesMax 2/,
    );
    assert.match(table.import([1, 1, 1, 1]) ?? "", /without its limits/);
    assert.equal(table.isDelivered(cmd(5, 1)), true);
    assert.equal(sessionLimitsProblem(other.export(), limits)?.includes("clientsMax 3") ?? false, true);
    assert.equal(sessionLimitsProblem(other.export(), other.limits), null);
    assert.equal(sessionLimitsProblem([], limits), null, "an empty table has decided nothing");
  });

  it("refuses malformed lists and keeps its state", () => {
    const table = new SessionTable({ clientsMax: 10, clientRangesMax: 10 });
    table.deliver(cmd(1, 1));
    const h = [0, 10, 10, 0];
    assert.match(table.import([...h, 1, 2, 1, 1]) ?? "", /cut short/);
    assert.match(table.import([...h, 1, 2, 5, 6, 3, 4]) ?? "", /out of order/);
    assert.match(table.import([...h, 1, 1, 1, 1, 1, 1, 2, 2]) ?? "", /twice/);
    assert.match(table.import([0, 10, 10, 1, 4, 1, 1, 1, 1]) ?? "", /closed client 4 has no ranges/);
    assert.match(table.import([0, 10, 10, 3, 1]) ?? "", /cut short/);
    assert.equal(table.isDelivered(cmd(1, 1)), true);
  });
});

describe("Learner snapshots", () => {
  it("compact keeps logRetainSlots below the snapshot and persists it with a durable log", () => {
    const a = learner(1, { durableLog: true, logRetainSlots: 3, snapshotLogBytes: 1 });
    given(a, slots(1, 10));
    assert.equal(a.snapshotDue, true);
    const out = a.compact("state@10");
    assert.equal(a.snapshotDue, false);
    assert.deepEqual(out.persist?.snapshot, {
      slot: 10,
      sessions: [0, 100_000, 16_384, 0, 7, 1, 1, 10],
      app: "state@10",
    });
    assert.equal(a.firstHeldSlot, 8);
    assert.equal(a.heldSlots, 3);
    assert.equal(a.chosenValue(7), undefined);
    assert.deepEqual(a.chosenValue(8), val(cmd(7, 8)));
    // Nothing new delivered: no second snapshot.
    assert.equal(a.compact("again").persist, null);
  });

  it("a peer behind the snapshot gets it in chunks, installs it, then learns the rest from the log", () => {
    const a = learner(1, { logRetainSlots: 0 });
    given(a, slots(1, 10));
    a.compact("the application's state as of slot ten");
    given(a, slots(11, 12));
    const b = learner(2, { durableLog: true });
    b.noteDecidedThrough(12);
    const learners = new Map([
      [1, a],
      [2, b],
    ]);
    const got = emptyOutput();
    for (let tick = 0; tick < 3; tick++) {
      const outputs = route(learners, new Map([[2, b.tick()]]));
      mergeOutput(got, outputs.get(2) ?? emptyOutput());
    }
    assert.equal(b.deliveredThrough, 12);
    assert.equal(b.snapshotsInstalled, 1);
    assert.deepEqual(got.snapshot?.app, "the application's state as of slot ten");
    assert.deepEqual(
      got.decided.map((d: Decision) => d.slot),
      [11, 12],
    );
    // The session table came with it: slot 5's command counts as delivered.
    assert.equal(b.isDelivered(cmd(7, 5)), true);
    assert.equal(got.persist?.snapshot?.slot, 10);
    assert.deepEqual(
      got.persist?.decided?.map((d) => d.slot),
      [11, 12],
    );
  });

  it("a transfer survives lost chunks: the stalled asker asks again from where it stopped", () => {
    const a = learner(1, { logRetainSlots: 0 });
    given(a, slots(1, 30));
    a.compact("x".repeat(200));
    const b = learner(2);
    b.noteDecidedThrough(30);
    const learners = new Map([
      [1, a],
      [2, b],
    ]);
    let chunks = 0;
    const dropEveryThirdChunk = (message: Message) => message.type === "snapshot-chunk" && ++chunks % 3 === 0;
    for (let tick = 0; tick < 200 && b.deliveredThrough < 30; tick++)
      route(learners, new Map([[2, b.tick()]]), dropEveryThirdChunk);
    assert.equal(b.deliveredThrough, 30);
    assert.equal(b.currentSnapshot?.app, "x".repeat(200));
  });

  /** A whole snapshot text in one chunk, from node 1. */
  const wholeChunk = (slot: number, text: string): SnapshotChunkMessage => ({
    type: "snapshot-chunk",
    from: 1,
    slot,
    length: text.length,
    checksum: textChecksum(text),
    offset: 0,
    data: text,
  });

  /** Chunks large enough for a whole small snapshot. */
  const WHOLE = { snapshotChunkUnits: 1024 };

  it("refuses a snapshot whose assembled text fails its checksum", () => {
    const b = learner(2, { limits: WHOLE });
    asking(b, 5);
    const text = encodeSnapshot({ slot: 5, sessions: [], app: "abc" });
    const out = b.step({ ...wholeChunk(5, text), checksum: textChecksum(text) ^ 1 });
    assert.equal(out.snapshot, null);
    assert.equal(b.snapshotsRefused, 1);
    assert.equal(b.refusals.of("snapshot-checksum"), 1);
    assert.equal(b.deliveredThrough, 0);
  });

  it("a snapshot carries the limits its sessions were built with; a peer under the same limits installs it", () => {
    const limits = { ...SMALL, clientsMax: 5, clientRangesMax: 3 };
    const a = learner(1, { logRetainSlots: 0, limits });
    given(a, slots(1, 4));
    a.compact("four");
    const sessions = a.currentSnapshot?.sessions ?? [];
    assert.deepEqual(sessions.slice(0, 4), [0, 5, 3, 0], "header: mark, clientsMax, clientRangesMax, closed");
    const b = learner(2, { limits: { ...limits, ...WHOLE } });
    asking(b, 4);
    const text = encodeSnapshot(a.currentSnapshot as Snapshot);
    assert.deepEqual(decodeSnapshot(text), { ok: true, value: a.currentSnapshot }, "round trip");
    const out = b.step(wholeChunk(4, text));
    assert.equal(out.snapshot?.slot, 4);
    assert.deepEqual(b.currentSnapshot?.sessions, sessions);
    assert.equal(b.snapshotRefusal, null);
  });

  it("refuses, and counts, a snapshot whose sessions were built under other limits than its own", () => {
    const a = learner(1, { logRetainSlots: 0, limits: { ...SMALL, clientsMax: 5 } });
    given(a, slots(1, 4));
    a.compact("four");
    const b = learner(2, { limits: WHOLE }); // the default clientsMax, 100,000
    asking(b, 4);
    const out = b.step(wholeChunk(4, encodeSnapshot(a.currentSnapshot as Snapshot)));
    assert.equal(out.snapshot, null);
    assert.equal(b.deliveredThrough, 0);
    assert.equal(b.snapshotsRefused, 1);
    assert.equal(b.refusals.of("snapshot-sessions"), 1);
    assert.match(
      b.snapshotRefusal ?? "",
      /snapshot through slot 4 from learner 1: sessions built with clientsMax 5, clientRangesMax 16384; this cluster is configured with clientsMax 100000/,
    );
  });

  it("ignores chunks of snapshots it is already past, and of older snapshots mid-transfer", () => {
    const b = learner(2);
    given(b, slots(1, 3));
    const old = encodeSnapshot({ slot: 2, sessions: [], app: "" });
    const out = b.step(wholeChunk(2, old));
    assert.equal(out.snapshot, null);
    assert.equal(b.snapshotsRefused, 0);
  });

  it("restores from a snapshot and the log past it", () => {
    const restored = learner(3, {
      restoreSnapshot: { slot: 10, sessions: [0, 100_000, 16_384, 0, 7, 1, 1, 10], app: "s" },
      restoreLog: [val(cmd(7, 11)), val(cmd(7, 10), cmd(7, 12))],
    });
    assert.equal(restored.deliveredThrough, 12);
    const { snapshot, decisions } = restored.drainRestored();
    assert.equal(snapshot?.slot, 10);
    assert.deepEqual(
      decisions.map((d) => [d.slot, d.commands.map((c) => c.seq)]),
      [
        [11, [11]],
        [12, [12]],
      ],
    );
    assert.deepEqual(restored.drainRestored(), { snapshot: null, decisions: [] });
  });
});

describe("Snapshot transfer: the snapshot a transfer started on stays pinned", () => {
  /** An application state of 100 characters: with its header, 17 chunks of 8, 9 windows of 2. */
  const appAt = (slot: number): string => `the state as of slot ${slot}; `.repeat(4);

  /** A server that holds slots 1..10 in a snapshot only (nothing kept below it). */
  function server(limits: Partial<LearnerOptions["limits"]> = {}): Learner {
    const a = learner(1, { logRetainSlots: 0, limits: { ...SMALL, ...limits } });
    given(a, slots(1, 10));
    a.compact(appAt(10));
    return a;
  }

  /**
   * Serves learner 2 from learner 1 one message at a time, for at most `ticksMax` ticks of the
   * receiver and 1,000 messages, or until it has delivered `untilSlot`. After every message the
   * server receives, it learns one more slot and takes a snapshot: snapshots come faster than a
   * transfer's windows. Returns the snapshots the receiver installed and how many the server took.
   */
  function transferWhileSnapshotting(a: Learner, b: Learner, ticksMax: number, untilSlot: number) {
    const installed: Snapshot[] = [];
    let taken = 0;
    const queue: Array<{ to: number; message: Message }> = [];
    const take = (from: number, output: Output) => {
      if (output.snapshot !== null && from === 2) installed.push(output.snapshot);
      for (const envelope of output.send)
        for (const id of [1, 2])
          if (deliverable(envelope, id, from)) queue.push({ to: id, message: envelope.message });
    };
    let messages = 0;
    for (let tick = 0; tick < ticksMax && b.deliveredThrough < untilSlot && messages < 1000; tick++) {
      take(1, a.tick());
      take(2, b.tick());
      for (; queue.length > 0 && messages < 1000; messages++) {
        const { to, message } = queue.shift() as { to: number; message: Message };
        if (to === 2) {
          take(2, b.step(message));
          continue;
        }
        take(1, a.step(message));
        const next = a.deliveredThrough + 1;
        given(a, slots(next, next));
        assert.equal(a.compact(appAt(next)).persist, null);
        taken++;
      }
    }
    return { installed, taken };
  }

  it("a transfer finishes on the snapshot it started on while the server takes a snapshot per request", () => {
    const a = server();
    const b = learner(2);
    b.noteDecidedThrough(10);
    const { installed, taken } = transferWhileSnapshotting(a, b, 100, 10);
    assert.equal(b.deliveredThrough, 10);
    assert.deepEqual(
      installed.map((snapshot) => [snapshot.slot, snapshot.app]),
      [[10, appAt(10)]],
    );
    // The transfer took 9 windows: the server had moved on by as many snapshots while serving it.
    assert.ok(taken >= 9, `the server took ${taken} snapshots during the transfer`);
    assert.ok((a.currentSnapshot?.slot ?? 0) >= 19);
  });

  it("a receiver still behind then gets the server's newest snapshot, pinned the same way, and the rest", () => {
    const a = server();
    const b = learner(2);
    b.noteDecidedThrough(10);
    transferWhileSnapshotting(a, b, 100, 10);
    const target = a.deliveredThrough;
    b.noteDecidedThrough(target);
    const { installed, taken } = transferWhileSnapshotting(a, b, 200, target);
    assert.ok(b.deliveredThrough >= target);
    assert.equal(installed.length, 1, "one more snapshot, the one its second transfer started on");
    const second = installed[0] as Snapshot;
    assert.ok(second.slot > 10 && second.slot <= target + 1);
    assert.equal(second.app, appAt(second.slot));
    assert.ok(taken >= 9);
    assert.equal(b.snapshotsInstalled, 2);
    assert.equal(b.snapshotsRefused, 0);
  });

  it("(control) without pins the same transfer restarts on every newer snapshot and never finishes", () => {
    const a = server({ snapshotPinsMax: 0 });
    const b = learner(2);
    b.noteDecidedThrough(10);
    const { taken } = transferWhileSnapshotting(a, b, 100, 10);
    assert.ok(taken > 50);
    assert.equal(b.snapshotsInstalled, 0);
    assert.equal(b.deliveredThrough, 0);
    assert.equal(a.pinnedSnapshots, 0);
  });

  const request = (from: number, slot: number, offset: number): Message => ({
    type: "snapshot-request",
    from,
    role: "learner",
    slot,
    offset,
  });
  const catchup = (from: number): Message => ({
    type: "catchup",
    from,
    role: "learner",
    fromSlot: 1,
    toSlot: 10,
  });
  const chunks = (output: Output) =>
    output.send.map((envelope) => {
      assert.equal(envelope.message.type, "snapshot-chunk");
      const chunk = envelope.message as SnapshotChunkMessage;
      return [envelope.to.id, chunk.slot, chunk.offset];
    });
  /** The server learns slot `slot` and takes a snapshot as of it. */
  const advance = (a: Learner, slot: number) => {
    given(a, slots(slot, slot));
    a.compact(appAt(slot));
  };

  it("serves each peer from its own pin, and ignores a peer's requests for snapshots older than its pin", () => {
    const a = server();
    assert.deepEqual(chunks(a.step(catchup(2))), [
      [2, 10, 0],
      [2, 10, 8],
    ]);
    advance(a, 11);
    // Peer 2 goes on with slot 10; peer 3, new, starts on slot 11.
    assert.deepEqual(chunks(a.step(request(2, 10, 16))), [
      [2, 10, 16],
      [2, 10, 24],
    ]);
    assert.deepEqual(chunks(a.step(request(3, 10, 16))), [
      [3, 11, 0],
      [3, 11, 8],
    ]);
    assert.equal(a.pinnedSnapshots, 2);
    advance(a, 12);
    // A delayed request of peer 3's, from before it moved on to slot 11: dropped, the pin stays.
    assert.deepEqual(a.step(request(3, 10, 40)).send, []);
    assert.deepEqual(chunks(a.step(request(3, 11, 16))), [
      [3, 11, 16],
      [3, 11, 24],
    ]);
    // A duplicated catch-up from peer 2 mid-transfer starts it over on the same pin, not a newer one.
    assert.deepEqual(chunks(a.step(catchup(2))), [
      [2, 10, 0],
      [2, 10, 8],
    ]);
    // Once peer 2 is past its pin, a catch-up for the slots after it pins our newest.
    assert.deepEqual(
      chunks(a.step({ type: "catchup", from: 2, role: "learner", fromSlot: 11, toSlot: 12 })),
      [
        [2, 12, 0],
        [2, 12, 8],
      ],
    );
    assert.equal(a.pinnedSnapshots, 2);
  });

  it("keeps at most snapshotPinsMax pins, dropping the idlest, and drops pins idle for snapshotPinIdleTicks", () => {
    const a = server({ snapshotPinsMax: 2, snapshotPinIdleTicks: 5 });
    a.step(catchup(2));
    a.step(catchup(3));
    a.tick();
    a.tick();
    a.step(request(3, 10, 16)); // peer 3 is active, peer 2 has been idle for two ticks
    advance(a, 11);
    a.step(catchup(4)); // a new peer: the idlest pin (peer 2's) makes room for its pin of slot 11
    assert.equal(a.pinnedSnapshots, 2);
    assert.equal(a.snapshotPinsEvicted, 1);
    // Peer 2 lost its pin: its transfer starts over on the newest snapshot.
    assert.deepEqual(chunks(a.step(request(2, 10, 16))), [
      [2, 11, 0],
      [2, 11, 8],
    ]);
    assert.equal(a.snapshotPinsEvicted, 2, "peer 3's pin, as idle as peer 4's but older, made room");
    a.tick();
    advance(a, 12);
    a.step(request(2, 11, 16)); // peer 2 goes on from its pin
    // Peer 4 kept its pin through all this and is still served slot 11, not our newest (12).
    assert.deepEqual(chunks(a.step(request(4, 11, 16))), [
      [4, 11, 16],
      [4, 11, 24],
    ]);
    for (let tick = 0; tick < 5; tick++) a.tick();
    assert.equal(a.pinnedSnapshots, 2);
    a.tick();
    assert.equal(a.pinnedSnapshots, 0);
    // Peer 4 was silent past the bound: it gets the newest snapshot from the start.
    assert.deepEqual(chunks(a.step(request(4, 11, 32))), [
      [4, 12, 0],
      [4, 12, 8],
    ]);
    assert.equal(a.snapshotPinsEvicted, 2);
  });
});

describe("merging outputs and deltas with snapshots", () => {
  it("a snapshot supersedes decisions at or below its slot", () => {
    const target = emptyOutput();
    target.decided.push({ slot: 4, value: val(), commands: [] });
    mergeOutput(target, {
      ...emptyOutput(),
      snapshot: { slot: 9, sessions: [], app: "" },
      decided: [{ slot: 10, value: val(), commands: [] }],
    });
    assert.deepEqual(
      target.decided.map((d) => d.slot),
      [10],
    );
    const delta = mergeDelta(
      { decided: slots(3, 4) },
      { snapshot: { slot: 4, sessions: [], app: "" }, floorSlot: 5 },
    );
    assert.deepEqual(delta?.decided, []);
    assert.equal(delta?.floorSlot, 5);
  });
});

describe("acceptor trimming after a snapshot", () => {
  it("drops votes below the floor, persists the floor, and reports it in promises", () => {
    const acceptor = new Acceptor({ id: 1 });
    for (const slot of [1, 2, 3, 4])
      acceptor.step({ type: "accept", from: 1, ballot: ballot(1, 1), slot, value: val(cmd(1, slot)) });
    const out = acceptor.trimBelow(3);
    assert.deepEqual(out.persist, { floorSlot: 3 });
    assert.equal(acceptor.voteCount, 2);
    assert.equal(acceptor.trimBelow(2).persist, null);
    const promise = acceptor.step({ type: "prepare", from: 2, ballot: ballot(2, 2), firstSlot: 1 });
    const message = promise.sendAfterPersist[0]?.message;
    assert.ok(message?.type === "promise");
    assert.equal(message.floorSlot, 3);
    assert.deepEqual(
      message.accepted.map((entry) => entry.slot),
      [3, 4],
    );
  });

  it("a replica's snapshot trims its acceptor in the same persisted delta", () => {
    const replica = new Replica({ id: 1, quorum: QUORUM, prng: new Prng(1), snapshotLogBytes: 1 });
    const acceptor = replica.acceptor as Acceptor;
    for (const slot of [1, 2, 3]) {
      const accept = {
        type: "accept" as const,
        from: 2,
        ballot: ballot(1, 2),
        slot,
        value: val(cmd(1, slot)),
      };
      replica.step(accept);
      for (const from of [2, 3])
        replica.step({ type: "accepted", from, ballot: ballot(1, 2), slot, value: null });
    }
    assert.equal(replica.learner.deliveredThrough, 3);
    assert.equal(replica.snapshotDue, true);
    const out = replica.snapshot("app@3");
    assert.equal(out.persist?.snapshot?.slot, 3);
    assert.equal(out.persist?.floorSlot, 4);
    assert.equal(acceptor.voteCount, 0);
    assert.equal(replica.state().snapshot?.app, "app@3");
  });
});

describe("Snapshot transfer: hostile and stray chunks (issue 9)", () => {
  const MEMBERS = { acceptors: [1, 2, 3], proposers: [1, 2, 3], learners: [1, 2, 3] };
  const WHOLE = { snapshotChunkUnits: 1024 };
  const text = encodeSnapshot({ slot: 5, sessions: [], app: "abc" });
  const chunk = (over: Partial<SnapshotChunkMessage> = {}): SnapshotChunkMessage => ({
    type: "snapshot-chunk",
    from: 1,
    slot: 5,
    length: text.length,
    checksum: textChecksum(text),
    offset: 0,
    data: text,
    ...over,
  });
  const receiver = (options: Partial<LearnerOptions> = {}) =>
    learner(2, { members: MEMBERS, limits: WHOLE, ...options });

  it("an unrequested snapshot is refused and counted; the state is untouched", () => {
    const b = receiver();
    const out = b.step(chunk());
    assert.equal(out.snapshot, null);
    assert.equal(b.deliveredThrough, 0);
    assert.equal(b.refusals.of("snapshot-chunk-unrequested"), 1);
  });

  it("an unrequested first chunk from a member makes the learner ask that member, whose answer it takes", () => {
    const a = learner(1, { logRetainSlots: 0, members: MEMBERS, limits: WHOLE });
    given(a, slots(1, 5));
    a.compact("five");
    const b = receiver();
    // A replica answers a leader's accept below its floor with its snapshot, unasked (Replica.step).
    const offered = a.step({ type: "catchup", from: 2, role: "learner", fromSlot: 1, toSlot: 1 });
    const asked = offered.send.flatMap((e) => b.step(e.message).send);
    assert.equal(b.refusals.of("snapshot-chunk-unrequested"), 1);
    assert.deepEqual(
      asked.map((e) => [e.to, e.message.type]),
      [[{ role: "learner", id: 1 }, "catchup"]],
    );
    const answer = asked.flatMap((e) => a.step(e.message).send);
    for (const envelope of answer) b.step(envelope.message);
    assert.equal(b.deliveredThrough, 5);
    assert.equal(b.currentSnapshot?.app, "five");
  });

  it("chunks from non-members are refused", () => {
    const b = receiver();
    asking(b, 5);
    b.step(chunk({ from: 99 }));
    assert.equal(b.refusals.of("snapshot-chunk-non-member"), 1);
    assert.equal(b.deliveredThrough, 0);
  });

  it("once a transfer started, chunks come only from its peer and within its window", () => {
    const long = encodeSnapshot({ slot: 5, sessions: [], app: "y".repeat(100) });
    const part = (from: number, offset: number, units = 8): SnapshotChunkMessage => ({
      type: "snapshot-chunk",
      from,
      slot: 5,
      length: long.length,
      checksum: textChecksum(long),
      offset,
      data: long.slice(offset, offset + units),
    });
    const b = learner(2, { members: MEMBERS }); // SMALL: 8 units a chunk, windows of 2
    asking(b, 5);
    b.step(part(1, 0));
    b.step(part(3, 8)); // another member, not asked for this transfer
    assert.equal(b.refusals.of("snapshot-chunk-unrequested"), 1);
    b.step(part(1, 64)); // far past the window
    assert.equal(b.refusals.of("snapshot-chunk-unexpected"), 1);
    for (let offset = 8; offset < long.length; offset += 8) b.step(part(1, offset));
    assert.equal(b.deliveredThrough, 5, "its peer's chunks in order finish the transfer");
  });

  it("a claimed length above snapshotUnitsMax is refused: 52,429 chunks of a 2^29-unit snapshot hold nothing", () => {
    const b = receiver();
    asking(b, 5);
    for (let i = 0; i < 52_429; i++)
      b.step(chunk({ length: 2 ** 29, offset: i * 10_240, data: "z".repeat(16), checksum: 1 }));
    assert.equal(b.refusals.of("snapshot-too-large"), 52_429);
    assert.ok(DEFAULT_LIMITS.snapshotUnitsMax < 2 ** 29 - 24, "below V8's longest string");
  });

  it("a snapshot slot beyond the horizon is refused (slot 2^53 - 1)", () => {
    const b = receiver();
    asking(b, 5);
    const far = encodeSnapshot({ slot: 2 ** 53 - 1, sessions: [], app: "" });
    b.step(chunk({ slot: 2 ** 53 - 1, length: far.length, checksum: textChecksum(far), data: far }));
    assert.equal(b.refusals.of("snapshot-beyond-horizon"), 1);
    assert.equal(b.deliveredThrough, 0);
  });

  it("a snapshot the application cannot restore is refused and counted, and nothing of it is kept", () => {
    const a = learner(1, { logRetainSlots: 0, limits: WHOLE });
    given(a, slots(1, 5));
    a.compact("not the application's state");
    const b = receiver();
    given(b, [{ slot: 1, value: val(cmd(8, 1)) }]);
    const tried: string[] = [];
    b.checkSnapshotsWith((snapshot) => {
      tried.push(snapshot.app);
      return snapshot.app.startsWith("{") ? null : "SyntaxError: not JSON";
    });
    asking(b, 5);
    const bad = encodeSnapshot(a.currentSnapshot as Snapshot);
    const out = b.step(chunk({ length: bad.length, checksum: textChecksum(bad), data: bad }));
    assert.equal(out.snapshot, null);
    assert.deepEqual(tried, ["not the application's state"]);
    assert.equal(b.refusals.of("snapshot-restore-failed"), 1);
    assert.match(b.snapshotRefusal ?? "", /SyntaxError: not JSON/);
    assert.equal(b.deliveredThrough, 1, "nothing of it kept");
    assert.equal(b.isDelivered(cmd(8, 1)), true, "the session table is the one it had");
    assert.equal(b.isDelivered(cmd(7, 3)), false);
    // A snapshot the application takes installs.
    const good = encodeSnapshot({ ...(a.currentSnapshot as Snapshot), app: '{"ok":true}' });
    const installed = b.step(chunk({ length: good.length, checksum: textChecksum(good), data: good }));
    assert.equal(installed.snapshot?.slot, 5);
    assert.equal(b.isDelivered(cmd(7, 3)), true);
  });

  it("snapshot requests are answered for members only; an answer is at most snapshotAnswerBytesMax", () => {
    const a = learner(1, {
      logRetainSlots: 0,
      members: MEMBERS,
      limits: { snapshotChunkUnits: 10 * 1024, snapshotChunksPerRequest: 8 },
    });
    given(a, slots(1, 5));
    a.compact("q".repeat(200_000));
    assert.deepEqual(
      a.step({ type: "snapshot-request", from: 9, role: "learner", slot: 0, offset: 0 }).send,
      [],
    );
    assert.equal(a.refusals.of("snapshot-request-non-member"), 1);
    const out = a.step({ type: "snapshot-request", from: 2, role: "learner", slot: 0, offset: 0 });
    const units = out.send.reduce((sum, e) => sum + (e.message as SnapshotChunkMessage).data.length, 0);
    assert.equal(out.send.length, 2, "two chunks of 10 Ki units (estimated 30 KiB each) in 64 KiB");
    assert.ok(units * 3 <= DEFAULT_LIMITS.snapshotAnswerBytesMax);
  });
});

describe("Snapshot transfer: a transfer in progress is finished first (seed 726829)", () => {
  const MEMBERS = { acceptors: [1, 2, 3], proposers: [1, 2, 3], learners: [1, 2, 3] };
  /** A snapshot of `slot` long enough for several windows (SMALL: 8 units a chunk, 2 a window). */
  const textAt = (slot: number) => encodeSnapshot({ slot, sessions: [], app: `state ${slot} `.repeat(10) });
  const part = (from: number, slot: number, offset: number): SnapshotChunkMessage => {
    const text = textAt(slot);
    return {
      type: "snapshot-chunk",
      from,
      slot,
      length: text.length,
      checksum: textChecksum(text),
      offset,
      data: text.slice(offset, offset + 8),
    };
  };
  /** Sends every chunk of `slot`'s snapshot from `from`, in order, from `offset` on. */
  const rest = (b: Learner, from: number, slot: number, offset: number): Output => {
    const merged = emptyOutput();
    for (let at = offset; at < textAt(slot).length; at += 8)
      mergeOutput(merged, b.step(part(from, slot, at)));
    return merged;
  };

  it("a newer snapshot from another peer does not restart a transfer that is making progress", () => {
    const b = learner(2, { members: MEMBERS });
    asking(b, 9); // asked every member
    b.step(part(1, 5, 0));
    b.step(part(3, 9, 0)); // peer 3 has taken a newer snapshot since: not taken mid-transfer
    b.step(part(1, 5, 8));
    b.step(part(3, 9, 8));
    const out = rest(b, 1, 5, 16);
    assert.equal(out.snapshot?.slot, 5, "the transfer it was on finished");
    assert.equal(b.snapshotsInstalled, 1);
    assert.equal(b.deliveredThrough, 5);
  });

  it("a newer snapshot is taken once the transfer has stalled, or from the peer it assembles from", () => {
    const stalled = learner(2, { members: MEMBERS });
    asking(stalled, 9);
    stalled.step(part(1, 5, 0));
    for (let tick = 0; tick < 2; tick++) stalled.tick(); // catchupTicks: 2, one retry
    stalled.step(part(3, 9, 0));
    assert.equal(rest(stalled, 3, 9, 8).snapshot?.slot, 9);

    const moved = learner(2, { members: MEMBERS });
    asking(moved, 9);
    moved.step(part(1, 5, 0));
    moved.step(part(1, 9, 0)); // peer 1 serves a newer snapshot now (its pin was dropped)
    assert.equal(rest(moved, 1, 9, 8).snapshot?.slot, 9);
  });

  const firstChunk = (output: Output): SnapshotChunkMessage => {
    const message = output.send[0]?.message;
    assert.equal(message?.type, "snapshot-chunk");
    return message as SnapshotChunkMessage;
  };

  it("an accept below a replica's floor offers the leader's learner the slot, but never moves the pin of its transfer", () => {
    const a = learner(1, { logRetainSlots: 0, members: MEMBERS });
    given(a, slots(1, 5));
    a.compact("five ".repeat(20));
    const first = a.step({ type: "catchup", from: 2, role: "learner", fromSlot: 1, toSlot: 5 });
    assert.equal(firstChunk(first).slot, 5);
    given(a, slots(6, 8));
    a.compact("eight ".repeat(20));
    // A late accept for slot 7, below the floor now: the peer's transfer of 5 is how it learns it.
    assert.deepEqual(a.offerDecided(2, 7).send, []);
    const next = a.step({ type: "snapshot-request", from: 2, role: "learner", slot: 5, offset: 16 });
    assert.deepEqual(
      next.send.map((e) => [
        (e.message as SnapshotChunkMessage).slot,
        (e.message as SnapshotChunkMessage).offset,
      ]),
      [
        [5, 16],
        [5, 24],
      ],
      "still served from the snapshot its transfer started on",
    );
    // A peer with no transfer here is offered the newest snapshot.
    assert.equal(firstChunk(a.offerDecided(3, 7)).slot, 8);
  });
});
