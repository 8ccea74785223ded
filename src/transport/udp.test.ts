import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { collect, frameOf, text, waitFor } from "./test-util.js";
import { UDP_FRAME_BYTES_MAX } from "./transport.js";
import { UdpTransport } from "./udp.js";

describe("UdpTransport on 127.0.0.1", () => {
  const open: UdpTransport[] = [];
  after(() => Promise.all(open.map((transport) => transport.close())));

  async function started(): Promise<UdpTransport> {
    const transport = new UdpTransport({ host: "127.0.0.1", port: 0 });
    open.push(transport);
    await transport.start();
    return transport;
  }

  it("binds an ephemeral port and exchanges frames with the sender's address", async () => {
    const a = await started();
    const b = await started();
    assert.equal(a.localEndpoint.host, "127.0.0.1");
    assert.ok(a.localEndpoint.port > 0);
    const atA = collect(a);
    const atB = collect(b);
    a.send(b.localEndpoint, frameOf("ping"));
    await waitFor(() => atB.length === 1, 2000, "ping");
    assert.equal(text(atB[0]?.frame ?? new Uint8Array()), "ping");
    assert.deepEqual(atB[0]?.from, a.localEndpoint);
    b.send(atB[0]?.from ?? a.localEndpoint, frameOf("pong"));
    await waitFor(() => atA.length === 1, 2000, "pong");
    await waitFor(() => a.stats.framesSent === 1);
    assert.equal(a.stats.bytesSent, 4);
    assert.equal(b.stats.framesReceived, 1);
    assert.equal(b.stats.bytesReceived, 4);
  });

  it("sends the largest datagram and refuses a larger one, counting it", async () => {
    const a = await started();
    const b = await started();
    const atB = collect(b);
    a.send(b.localEndpoint, new Uint8Array(UDP_FRAME_BYTES_MAX + 1));
    assert.equal(a.stats.sendErrors, 1);
    a.send(b.localEndpoint, new Uint8Array(UDP_FRAME_BYTES_MAX).fill(1));
    await waitFor(() => atB.length === 1, 2000, "the largest datagram");
    assert.equal(atB[0]?.frame.length, UDP_FRAME_BYTES_MAX);
    assert.equal(a.stats.sendErrors, 1);
  });

  it("counts sends before start, after close, and to an invalid port, without throwing", async () => {
    const transport = new UdpTransport();
    transport.send({ host: "127.0.0.1", port: 9 }, frameOf("x"));
    await transport.start();
    transport.send({ host: "127.0.0.1", port: 0 }, frameOf("x"));
    transport.send({ host: "127.0.0.1", port: 70000 }, frameOf("x"));
    await transport.close();
    await transport.close();
    transport.send({ host: "127.0.0.1", port: 9 }, frameOf("x"));
    assert.equal(transport.stats.sendErrors, 4);
    await assert.rejects(transport.start(), /closed/);
  });

  it("rejects start() when the port is taken", async () => {
    const a = await started();
    const b = new UdpTransport({ port: a.localEndpoint.port });
    await assert.rejects(b.start(), /cannot bind 127\.0\.0\.1:\d+.*EADDRINUSE/);
    await b.close();
  });

  it("counts a frame arriving with no handler as dropped", async () => {
    const a = await started();
    const b = await started();
    a.send(b.localEndpoint, frameOf("x"));
    await waitFor(() => b.stats.framesDropped === 1);
  });
});
