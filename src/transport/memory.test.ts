import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryNetwork } from "./memory.js";
import { collect, frameOf, text, waitFor } from "./test-util.js";

async function trio(network: MemoryNetwork) {
  const a = network.createTransport({ host: "a", port: 1 });
  const b = network.createTransport({ host: "b", port: 1 });
  const c = network.createTransport({ host: "c", port: 1 });
  await Promise.all([a.start(), b.start(), c.start()]);
  return { a, b, c, atB: collect(b), atC: collect(c), atA: collect(a) };
}

describe("MemoryNetwork", () => {
  it("delivers asynchronously, with the sender's endpoint, and counts both sides", async () => {
    const network = new MemoryNetwork();
    const { a, b, atB } = await trio(network);
    a.send(b.localEndpoint, frameOf("hello"));
    assert.equal(atB.length, 0, "delivery must not happen inside send()");
    await waitFor(() => atB.length === 1);
    assert.equal(text(atB[0]?.frame ?? new Uint8Array()), "hello");
    assert.deepEqual(atB[0]?.from, { host: "a", port: 1 });
    assert.equal(a.stats.framesSent, 1);
    assert.equal(a.stats.bytesSent, 5);
    assert.equal(b.stats.framesReceived, 1);
    assert.equal(b.stats.bytesReceived, 5);
    assert.equal(network.stats.framesDelivered, 1);
  });

  it("delivers with queueMicrotask when asked, in send order", async () => {
    const network = new MemoryNetwork({ delivery: "microtask" });
    const { a, b, atB } = await trio(network);
    for (let index = 0; index < 10; index++) a.send(b.localEndpoint, frameOf(String(index)));
    await Promise.resolve();
    assert.equal(atB.length, 10);
    assert.deepEqual(
      atB.map((item) => text(item.frame)),
      ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
    );
  });

  it("copies frames, so a sender reusing its buffer cannot change a frame in flight", async () => {
    const network = new MemoryNetwork();
    const { a, b, atB } = await trio(network);
    const buffer = frameOf("abc");
    a.send(b.localEndpoint, buffer);
    buffer[0] = 120;
    await waitFor(() => atB.length === 1);
    assert.equal(text(atB[0]?.frame ?? new Uint8Array()), "abc");
  });

  it("hands out ports for port 0 and refuses a duplicate endpoint", () => {
    const network = new MemoryNetwork();
    const first = network.createTransport({ host: "h", port: 0 });
    const second = network.createTransport({ host: "h", port: 0 });
    assert.notEqual(first.localEndpoint.port, second.localEndpoint.port);
    assert.ok(first.localEndpoint.port > 0);
    assert.throws(() => network.createTransport(first.localEndpoint), /already exists/);
  });

  it("disconnect cuts both directions, connect restores them", async () => {
    const network = new MemoryNetwork();
    const { a, b, c, atA, atB, atC } = await trio(network);
    network.disconnect(a.localEndpoint, b.localEndpoint);
    a.send(b.localEndpoint, frameOf("a>b"));
    b.send(a.localEndpoint, frameOf("b>a"));
    a.send(c.localEndpoint, frameOf("a>c"));
    await waitFor(() => atC.length === 1);
    assert.equal(atA.length + atB.length, 0);
    assert.equal(network.stats.framesLost, 2);

    network.connect(a.localEndpoint, b.localEndpoint);
    a.send(b.localEndpoint, frameOf("a>b"));
    b.send(a.localEndpoint, frameOf("b>a"));
    await waitFor(() => atA.length === 1 && atB.length === 1);
  });

  it("disconnect with oneWay cuts only that direction", async () => {
    const network = new MemoryNetwork();
    const { a, b, atA, atB } = await trio(network);
    network.disconnect(a.localEndpoint, b.localEndpoint, { oneWay: true });
    a.send(b.localEndpoint, frameOf("a>b"));
    b.send(a.localEndpoint, frameOf("b>a"));
    await waitFor(() => atA.length === 1);
    assert.equal(atB.length, 0);
    assert.equal(network.canReach(a.localEndpoint, b.localEndpoint), false);
    assert.equal(network.canReach(b.localEndpoint, a.localEndpoint), true);
  });

  it("isolate cuts an endpoint off from everyone but itself; heal and rejoin undo it", async () => {
    const network = new MemoryNetwork();
    const { a, b, c, atA, atB, atC } = await trio(network);
    network.isolate(a.localEndpoint);
    a.send(b.localEndpoint, frameOf("1"));
    c.send(a.localEndpoint, frameOf("2"));
    a.send(a.localEndpoint, frameOf("self"));
    b.send(c.localEndpoint, frameOf("3"));
    await waitFor(() => atA.length === 1 && atC.length === 1);
    assert.equal(text(atA[0]?.frame ?? new Uint8Array()), "self");
    assert.equal(atB.length, 0);

    network.heal();
    a.send(b.localEndpoint, frameOf("4"));
    await waitFor(() => atB.length === 1);

    network.isolate(b.localEndpoint);
    network.disconnect(a.localEndpoint, c.localEndpoint);
    network.rejoin(b.localEndpoint);
    assert.equal(network.canReach(a.localEndpoint, b.localEndpoint), true);
    assert.equal(network.canReach(a.localEndpoint, c.localEndpoint), false);
    network.heal();
    assert.equal(network.canReach(a.localEndpoint, c.localEndpoint), true);
  });

  it("drops frames with the injected random function", async () => {
    // Alternating 0.1 and 0.9 against a drop probability of 0.5: every other frame is lost.
    let calls = 0;
    const network = new MemoryNetwork({
      dropProbability: 0.5,
      random: () => (calls++ % 2 === 0 ? 0.1 : 0.9),
    });
    const { a, b, atB } = await trio(network);
    for (let index = 0; index < 10; index++) a.send(b.localEndpoint, frameOf(String(index)));
    await waitFor(() => network.stats.framesDelivered + network.stats.framesLost === 10);
    assert.deepEqual(
      atB.map((item) => text(item.frame)),
      ["1", "3", "5", "7", "9"],
    );
    network.setDropProbability(0);
    a.send(b.localEndpoint, frameOf("x"));
    await waitFor(() => atB.length === 6);
    assert.throws(() => network.setDropProbability(1.5), RangeError);
  });

  it("counts oversize frames and sends before start as send errors; loses frames to closed endpoints", async () => {
    const network = new MemoryNetwork({ frameBytesMax: 4 });
    const a = network.createTransport({ host: "a", port: 1 });
    const b = network.createTransport({ host: "b", port: 1 });
    const atB = collect(b);
    a.send(b.localEndpoint, frameOf("x"));
    assert.equal(a.stats.sendErrors, 1, "not started");
    await a.start();
    a.send(b.localEndpoint, frameOf("12345"));
    assert.equal(a.stats.sendErrors, 2, "oversize");
    a.send(b.localEndpoint, frameOf("1234"));
    assert.equal(network.stats.framesLost, 1, "b not started yet");
    await b.start();
    a.send(b.localEndpoint, frameOf("1234"));
    await b.close();
    await waitFor(() => network.stats.framesLost === 2, 2000, "the frame in flight to a closed transport");
    assert.equal(atB.length, 0);
    // The endpoint is free again once closed.
    const again = network.createTransport({ host: "b", port: 1 });
    await again.start();
    await a.close();
  });

  it("a frame arriving with no handler is counted as dropped", async () => {
    const network = new MemoryNetwork();
    const a = network.createTransport({ host: "a", port: 1 });
    const b = network.createTransport({ host: "b", port: 1 });
    await Promise.all([a.start(), b.start()]);
    a.send(b.localEndpoint, frameOf("x"));
    await waitFor(() => b.stats.framesDropped === 1);
  });
});
