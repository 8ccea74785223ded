import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Client } from "./client.js";
import type { Limits } from "./limits.js";
import type { Command, Message, RefuseMessage } from "./messages.js";
import type { Output } from "./output.js";
import { Prng } from "./prng.js";
import { Replica } from "./replica.js";
import { cmd, majorityOf } from "./test-util.js";

// The edge's bounds on client requests (docs/security.md, "The edge: clients, printers and limits"):
// over a pending bound the leader answers with a "not now" refusal, never silence; an oversize value
// is refused by the client before it is sent.

/**
 * A one-node cluster led by its only replica. `send` delivers its own messages back to it, except
 * accepts while `holdAccepts` is set (so commands stay pending), and collects what goes to clients.
 */
function soleLeader(limits: Partial<Limits>) {
  const replica = new Replica({ id: 1, quorum: majorityOf(1), prng: new Prng(1), limits });
  const toClients: Message[] = [];
  let holdAccepts = false;
  const send = (output: Output): void => {
    const inbox: Message[] = [];
    const route = (out: Output) => {
      for (const { to, message } of [...out.send, ...out.sendAfterPersist]) {
        if (to.role === "client") toClients.push(message);
        else if (!(holdAccepts && message.type === "accept")) inbox.push(message);
      }
    };
    route(output);
    for (let i = 0; i < 10_000 && inbox.length > 0; i++) route(replica.step(inbox.shift() as Message));
  };
  for (let tick = 0; tick < 2000 && replica.proposer.mode !== "leader"; tick++) send(replica.tick());
  assert.equal(replica.proposer.mode, "leader");
  return {
    replica,
    toClients,
    hold: () => {
      holdAccepts = true;
    },
    request: (from: number, commands: Command[]) => send(replica.step({ type: "request", from, commands })),
  };
}

function refusalsTo(messages: readonly Message[], client: number): RefuseMessage[] {
  return messages.filter((m): m is RefuseMessage => m.type === "refuse" && m.client === client);
}

describe("the edge: pending bounds refuse for now, never silently", () => {
  it("a client over clientPendingCommandsMax hears 'client-pending-full' for the rest; other clients are still taken", () => {
    const cluster = soleLeader({ clientPendingCommandsMax: 3, windowSlots: 1, batchCommandsMax: 1 });
    cluster.hold();
    // Three commands are queued, the other three are over the bound; then the first takes the only
    // slot of the window (held in flight), leaving two pending.
    cluster.request(
      7,
      [1, 2, 3, 4, 5, 6].map((seq) => cmd(7, seq)),
    );
    assert.deepEqual(
      refusalsTo(cluster.toClients, 7).map((r) => [r.reason, r.seqs]),
      [["client-pending-full", [4, 5, 6]]],
    );
    assert.equal(cluster.replica.proposer.inFlightCount, 1);
    assert.equal(cluster.replica.proposer.pendingCount, 2);
    // Room again for one: seq 4 resent is taken, seq 5 is not.
    cluster.request(7, [cmd(7, 4), cmd(7, 5)]);
    assert.deepEqual(refusalsTo(cluster.toClients, 7)[1]?.seqs, [5]);
    assert.equal(cluster.replica.proposer.pendingCount, 3);
    // Another client's commands are taken: the bound is per client.
    cluster.request(8, [cmd(8, 1), cmd(8, 2)]);
    assert.equal(cluster.replica.proposer.pendingCount, 5);
    assert.deepEqual(refusalsTo(cluster.toClients, 8), []);
  });

  it("over pendingCommandsMax every client hears 'pending-full', and its command is not queued", () => {
    const cluster = soleLeader({ pendingCommandsMax: 4, windowSlots: 1, batchCommandsMax: 1 });
    cluster.hold();
    // Client 7's first command goes in flight (the window's only slot), its other three wait.
    cluster.request(
      7,
      [1, 2, 3, 4].map((seq) => cmd(7, seq)),
    );
    assert.equal(cluster.replica.proposer.pendingCount, 3);
    cluster.request(
      8,
      [1, 2, 3].map((seq) => cmd(8, seq)),
    );
    assert.equal(cluster.replica.proposer.pendingCount, 4);
    assert.deepEqual(
      refusalsTo(cluster.toClients, 8).map((r) => [r.reason, r.seqs]),
      [["pending-full", [2, 3]]],
    );
    assert.deepEqual(refusalsTo(cluster.toClients, 7), []);
  });
});

describe("the edge: the library Client", () => {
  it("a 'not now' refusal keeps the command unacked and sends it again after a backoff; a final one does not", () => {
    const client = new Client({ id: 7, prng: new Prng(7), retryTicks: 10, retryTicksMax: 40 });
    const first = client.submit("a");
    const second = client.submit("b");
    assert.ok(first.ok && second.ok);
    const busy = client.step({
      type: "refuse",
      from: 1,
      client: 7,
      reason: "client-pending-full",
      seqs: [1],
    });
    assert.deepEqual(busy.send, [], "nothing is resent at once: the leader is full");
    assert.equal(client.refused, 0);
    assert.equal(client.refusalOf(1), null);
    assert.equal(client.unackedCount, 2);
    assert.equal(client.busy, 1);
    assert.deepEqual(client.drainBusy(), [{ reason: "client-pending-full", count: 1 }]);
    assert.deepEqual(client.drainBusy(), []);
    // Sent again later: within the backoff's reach (attempt 1 of base 10, at most 40 ticks).
    const resent: number[] = [];
    for (let tick = 0; tick < 60 && !resent.includes(1); tick++) {
      for (const { message } of client.tick().send)
        if (message.type === "request") resent.push(...message.commands.map((c) => c.seq));
    }
    assert.ok(resent.includes(1), "the busy-refused command is sent again");
    // A final refusal ends it.
    client.step({ type: "refuse", from: 1, client: 7, reason: "clients-full", seqs: [2] });
    assert.equal(client.refusalOf(2), "clients-full");
    assert.equal(client.unackedCount, 1);
  });

  it("an oversize value is refused before it is sent, with an error that names the limit", () => {
    const client = new Client({ id: 7, prng: new Prng(7) });
    const result = client.submit("x".repeat(8193));
    assert.deepEqual(result, { ok: false, error: "payload of 8193 UTF-8 bytes is over the 8192-byte limit" });
    assert.equal(client.unackedCount, 0);
    const all = client.submitAll(["ok", "€".repeat(3000)]);
    assert.deepEqual(all.refused, [
      { index: 1, problem: "payload of 9000 UTF-8 bytes is over the 8192-byte limit" },
    ]);
    assert.equal(all.output.send.length, 1);
    assert.equal(client.unackedCount, 1);
  });
});
