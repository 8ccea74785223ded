import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { after, describe, it } from "node:test";
import { isMulticastAddress, MulticastTransport, type MulticastTransportOptions } from "./multicast.js";
import { collect, frameOf, testGroup, text, waitFor } from "./test-util.js";
import { UDP_FRAME_BYTES_MAX } from "./transport.js";

describe("MulticastTransport on interface 127.0.0.1", () => {
  const open: MulticastTransport[] = [];
  after(() => Promise.all(open.map((transport) => transport.close())));

  async function started(options: MulticastTransportOptions): Promise<MulticastTransport> {
    const transport = new MulticastTransport({ interfaceAddress: "127.0.0.1", ...options });
    open.push(transport);
    await transport.start();
    return transport;
  }

  it("three members bound to the same group port all receive one send, the sender included", async () => {
    const group = await testGroup();
    const members = [
      await started({ groups: [group] }),
      await started({ groups: [group] }),
      await started({ groups: [group] }),
    ];
    const received = members.map((member) => collect(member));
    members[0]?.send(group, frameOf("accept"));
    await waitFor(() => received.every((frames) => frames.length === 1), 2000, "every member");
    for (const frames of received) {
      assert.equal(text(frames[0]?.frame ?? new Uint8Array()), "accept");
      assert.deepEqual(frames[0]?.from, members[0]?.localEndpoint);
    }
    assert.equal(members[0]?.localEndpoint.host, "127.0.0.1");
    await waitFor(() => members[0]?.stats.framesSent === 1);
  });

  it("keeps two groups on the same port apart", async () => {
    const acceptors = await testGroup();
    const learners = {
      host: acceptors.host.replace(/\.(\d+)$/, (_, last) => `.${(Number(last) % 254) + 1}`),
      port: acceptors.port,
    };
    assert.notEqual(acceptors.host, learners.host);
    const acceptor = await started({ groups: [acceptors] });
    const learner = await started({ groups: [learners] });
    const atAcceptor = collect(acceptor);
    const atLearner = collect(learner);
    acceptor.send(learners, frameOf("to learners"));
    learner.send(acceptors, frameOf("to acceptors"));
    await waitFor(() => atAcceptor.length === 1 && atLearner.length === 1, 2000, "one frame each");
    // A later frame to the same group proves nothing else was queued before it.
    acceptor.send(learners, frameOf("again"));
    await waitFor(() => atLearner.length === 2);
    assert.deepEqual(
      atLearner.map((item) => text(item.frame)),
      ["to learners", "again"],
    );
    assert.deepEqual(
      atAcceptor.map((item) => text(item.frame)),
      ["to acceptors"],
    );
  });

  it("a send-only transport reaches the group, and a unicast reply to `from` reaches it", async () => {
    const group = await testGroup();
    const member = await started({ groups: [group] });
    const client = await started({});
    const atMember = collect(member);
    const atClient = collect(client);
    client.send(group, frameOf("request"));
    await waitFor(() => atMember.length === 1, 2000, "request");
    member.send(atMember[0]?.from ?? client.localEndpoint, frameOf("reply"));
    await waitFor(() => atClient.length === 1, 2000, "reply");
    assert.equal(text(atClient[0]?.frame ?? new Uint8Array()), "reply");
  });

  it("refuses frames larger than a datagram, counting them", async () => {
    const group = await testGroup();
    const member = await started({ groups: [group], selfTest: false });
    member.send(group, new Uint8Array(UDP_FRAME_BYTES_MAX + 1));
    assert.equal(member.stats.sendErrors, 1);
  });

  it("counts sends before start and after close", async () => {
    const group = await testGroup();
    const member = new MulticastTransport({ groups: [group] });
    member.send(group, frameOf("early"));
    await member.start();
    await member.close();
    member.send(group, frameOf("late"));
    assert.equal(member.stats.sendErrors, 2);
  });

  it("rejects start() clearly when the group port is held without SO_REUSEADDR", async () => {
    const group = await testGroup();
    const holder = createSocket("udp4");
    await new Promise<void>((resolve) => holder.bind(group.port, group.host, resolve));
    try {
      const member = new MulticastTransport({ groups: [group] });
      await assert.rejects(member.start(), /cannot bind 239\.255\.\d+\.\d+:\d+.*EADDRINUSE/);
      await member.close();
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  it("validates groups and the interface address", () => {
    assert.throws(
      () => new MulticastTransport({ groups: [{ host: "127.0.0.1", port: 7000 }] }),
      /not an IPv4 multicast/,
    );
    assert.throws(() => new MulticastTransport({ groups: [{ host: "239.0.0.1", port: 0 }] }), /port/);
    assert.throws(() => new MulticastTransport({ interfaceAddress: "lo" }), /IPv4/);
    assert.equal(isMulticastAddress("224.0.0.1"), true);
    assert.equal(isMulticastAddress("239.255.255.255"), true);
    assert.equal(isMulticastAddress("240.0.0.1"), false);
    assert.equal(isMulticastAddress("223.1.1.1"), false);
  });
});
