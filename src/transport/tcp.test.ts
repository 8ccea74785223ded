import assert from "node:assert/strict";
import { connect, createServer } from "node:net";
import { after, describe, it } from "node:test";
import { encodeFrames } from "./framing.js";
import { TcpTransport, type TcpTransportOptions } from "./tcp.js";
import { collect, frameOf, text, waitFor } from "./test-util.js";

/** A TCP port that was free on 127.0.0.1 a moment ago (nothing listens on it now). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}

describe("TcpTransport on 127.0.0.1", () => {
  const open: TcpTransport[] = [];
  after(() => Promise.all(open.map((transport) => transport.close())));

  async function started(options: TcpTransportOptions = {}): Promise<TcpTransport> {
    const transport = new TcpTransport({ host: "127.0.0.1", port: 0, ...options });
    open.push(transport);
    await transport.start();
    return transport;
  }

  it("connects lazily and delivers frames with the connection's remote address", async () => {
    const a = await started();
    const b = await started();
    const atA = collect(a);
    const atB = collect(b);
    assert.equal(a.stats.connects, 0);
    a.send(b.localEndpoint, frameOf("prepare"));
    await waitFor(() => atB.length === 1, 2000, "prepare");
    assert.equal(text(atB[0]?.frame ?? new Uint8Array()), "prepare");
    assert.equal(atB[0]?.from.host, "127.0.0.1");
    assert.notEqual(atB[0]?.from.port, a.localEndpoint.port, "the remote port is a's ephemeral port");
    assert.equal(a.stats.connects, 1);
    assert.equal(a.stats.reconnects, 0);
    b.send(a.localEndpoint, frameOf("promise"));
    await waitFor(() => atA.length === 1, 2000, "promise");
    assert.equal(a.stats.framesSent, 1);
    assert.equal(a.stats.bytesSent, 7);
    assert.equal(b.stats.bytesReceived, 7);
  });

  it("batches many frames of mixed sizes and keeps their order", async () => {
    const a = await started();
    const b = await started();
    const atB = collect(b);
    const sizes = [0, 1, 3, 4, 5, 1000, 200_000, 65_536, 7];
    const frames: Uint8Array[] = [];
    // About 9 MB in one turn: under the default 16 MiB queue limit, so nothing may be dropped.
    for (let index = 0; index < 300; index++) {
      const frame = new Uint8Array(sizes[index % sizes.length] ?? 0).fill(index % 251);
      frames.push(frame);
      a.send(b.localEndpoint, frame);
    }
    await waitFor(() => atB.length === frames.length, 4000, "every frame");
    for (let index = 0; index < frames.length; index++) {
      const got = atB[index]?.frame;
      assert.equal(got?.length, frames[index]?.length);
      if (got !== undefined && got.length > 0) assert.equal(got[got.length - 1], index % 251);
    }
    assert.equal(a.stats.connects, 1);
    assert.equal(a.stats.sendErrors, 0);
  });

  it("refuses to send a frame above frameBytesMax, counting it", async () => {
    const a = await started({ frameBytesMax: 100 });
    const b = await started();
    const atB = collect(b);
    a.send(b.localEndpoint, new Uint8Array(101));
    assert.equal(a.stats.sendErrors, 1);
    a.send(b.localEndpoint, new Uint8Array(100));
    await waitFor(() => atB.length === 1);
  });

  it("closes a connection whose header announces an oversize frame, counting it, and keeps serving", async () => {
    const sender = await started();
    const receiver = await started({ frameBytesMax: 1000 });
    const atReceiver = collect(receiver);
    sender.send(receiver.localEndpoint, new Uint8Array(1001));
    await waitFor(() => receiver.stats.framesDropped === 1, 2000, "the oversize frame dropped");
    assert.equal(atReceiver.length, 0);
    // The sender notices the close and reconnects for its next frame.
    await waitFor(
      () => {
        sender.send(receiver.localEndpoint, frameOf("small"));
        return atReceiver.length > 0;
      },
      3000,
      "a frame after the reconnect",
    );
    assert.ok(sender.stats.reconnects >= 1);
  });

  it("survives a garbage length header from a raw socket: counted, connection closed", async () => {
    const receiver = await started();
    const atReceiver = collect(receiver);
    const raw = connect({ host: "127.0.0.1", port: receiver.localEndpoint.port });
    raw.on("error", () => undefined);
    let rawClosed = false;
    raw.on("close", () => {
      rawClosed = true;
    });
    // One good frame, then a header claiming 4 GiB - 1.
    raw.write(Buffer.concat([encodeFrames([frameOf("ok")]), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])]));
    await waitFor(() => rawClosed, 2000, "the receiver to close the connection");
    assert.equal(receiver.stats.framesDropped, 1);
    assert.deepEqual(
      atReceiver.map((item) => text(item.frame)),
      ["ok"],
    );
    const sender = await started();
    sender.send(receiver.localEndpoint, frameOf("still alive"));
    await waitFor(() => atReceiver.length === 2);
  });

  it("reconnects after the server restarts on the same port", async () => {
    const a = await started({ backoffBaseMs: 10, backoffMaxMs: 100 });
    const first = await started();
    const port = first.localEndpoint.port;
    const atFirst = collect(first);
    a.send(first.localEndpoint, frameOf("before"));
    await waitFor(() => atFirst.length === 1, 2000, "before the restart");
    await first.close();

    const second = await started({ port });
    assert.equal(second.localEndpoint.port, port);
    const atSecond = collect(second);
    // Frames written before a notices the old connection closed are lost, as over any TCP transport;
    // the protocol retransmits, and so does this loop.
    await waitFor(
      () => {
        a.send(second.localEndpoint, frameOf("after"));
        return atSecond.length > 0;
      },
      3000,
      "a frame after the restart",
    );
    assert.equal(text(atSecond[0]?.frame ?? new Uint8Array()), "after");
    assert.ok(a.stats.connects >= 2);
    assert.ok(a.stats.reconnects >= 1);
  });

  it("keeps only the newest frames for an unreachable peer, then delivers them once it listens", async () => {
    const port = await freePort();
    const a = await started({ queueFramesMax: 3, backoffBaseMs: 10, backoffMaxMs: 50 });
    for (let index = 0; index < 10; index++) a.send({ host: "127.0.0.1", port }, frameOf(String(index)));
    assert.equal(a.stats.sendErrors, 7, "the 7 oldest frames dropped");
    const b = await started({ port });
    const atB = collect(b);
    await waitFor(() => atB.length === 3, 3000, "the queued frames");
    assert.deepEqual(
      atB.map((item) => text(item.frame)),
      ["7", "8", "9"],
    );
  });

  it("retries with backoff while the peer is down and counts queued frames as errors on close", async () => {
    const port = await freePort();
    const a = await started({ backoffBaseMs: 5, backoffMaxMs: 20 });
    a.send({ host: "127.0.0.1", port }, frameOf("lost"));
    await waitFor(() => a.stats.socketErrors >= 3, 2000, "a few refused attempts");
    assert.match(String(a.lastError?.message), /ECONNREFUSED/);
    assert.equal(a.stats.connects, 0);
    await a.close();
    assert.equal(a.stats.sendErrors, 1);
  });

  it("counts sends before start and after close; rejects start on a taken port", async () => {
    const a = new TcpTransport();
    a.send({ host: "127.0.0.1", port: 9 }, frameOf("x"));
    assert.equal(a.stats.sendErrors, 1);
    const b = await started();
    const c = new TcpTransport({ port: b.localEndpoint.port });
    await assert.rejects(c.start(), /EADDRINUSE/);
    await c.close();
    await a.close();
    a.send(b.localEndpoint, frameOf("x"));
    assert.equal(a.stats.sendErrors, 2);
    assert.throws(() => new TcpTransport({ frameBytesMax: 10, queueBytesMax: 5 }), /queueBytesMax/);
  });
});
