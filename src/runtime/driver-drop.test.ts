import assert from "node:assert/strict";
import { test } from "node:test";
import { binaryCodec } from "../codec/index.js";
import { type Command, createQuorumSystem, type Decision, Prng, Replica } from "../core/index.js";
import { MemoryStorage } from "../storage/index.js";
import { waitFor } from "../test-support/index.js";
import { type Endpoint, MemoryNetwork } from "../transport/index.js";
import { ClusterAddressBook } from "./address-book.js";
import { parseClusterConfig } from "./config.js";
import { Driver } from "./driver.js";
import { clusterEnvelope, NO_KEYS } from "./identity.js";

const TICK_MS = 2;

test("Driver dropFrame: a node cut off decides nothing and counts what it dropped; reconnected, it catches up", async () => {
  const network = new MemoryNetwork();
  const nodes = [1, 2, 3].map((id) => ({ id, host: "127.0.0.1", port: id }));
  const parsed = parseClusterConfig(JSON.stringify({ nodes, clusterId: 77 }));
  assert.ok(parsed.ok);
  const config = parsed.value;
  const quorum = createQuorumSystem(config.acceptors, config.quorum);
  assert.ok(quorum.ok);
  let cut = true;
  const asked: Array<["in" | "out", Endpoint]> = [];
  const logs = new Map<number, Decision[]>();
  const drivers = new Map<number, Driver<Replica>>();
  for (const node of nodes) {
    const storage = new MemoryStorage();
    assert.ok((await storage.open()).ok);
    const log: Decision[] = [];
    logs.set(node.id, log);
    drivers.set(
      node.id,
      new Driver({
        name: `node ${node.id}`,
        role: new Replica({ id: node.id, quorum: quorum.value, prng: new Prng(500 + node.id) }),
        envelope: clusterEnvelope(config, { kind: "node", id: node.id }, { keys: NO_KEYS, incarnation: 1 }),
        transport: network.createTransport({ host: node.host, port: node.port }),
        codec: binaryCodec,
        addressBook: new ClusterAddressBook(config),
        storage,
        tickMs: TICK_MS,
        onDecision: (decision) => log.push(decision),
        onFatal: (error) => assert.fail(error),
        // Node 3 asks its hook about every frame; nodes 1 and 2 have none (the default).
        ...(node.id === 3
          ? {
              dropFrame: (direction: "in" | "out", peer: Endpoint) => {
                asked.push([direction, peer]);
                return cut;
              },
            }
          : {}),
      }),
    );
  }
  const driver = (id: number) => drivers.get(id) as Driver<Replica>;
  try {
    for (const d of drivers.values()) await d.start();
    await waitFor(
      () => [1, 2].some((id) => driver(id).role.mode === "leader"),
      "node 1 or 2 to lead (node 3 is cut off)",
    );
    const leader = [1, 2].find((id) => driver(id).role.mode === "leader") as number;
    const commands: Command[] = Array.from({ length: 5 }, (_, i) => ({
      client: 9,
      seq: i + 1,
      payload: `v${i}`,
    }));
    driver(leader).run((replica) => replica.submit(commands));
    const delivered = (id: number) => (logs.get(id) ?? []).flatMap((d) => d.commands.map((c) => c.payload));
    await waitFor(() => delivered(1).length === 5 && delivered(2).length === 5, "nodes 1 and 2 to decide");
    assert.deepEqual(delivered(3), []);
    const stats = driver(3).stats;
    assert.ok(stats.framesDroppedByHook > 0);
    assert.ok(asked.some(([direction]) => direction === "in"));
    // Hearing nobody, it campaigns: its prepares are dropped on the way out.
    await waitFor(
      () => asked.some(([direction]) => direction === "out"),
      "node 3 to send (and drop) a frame",
    );
    assert.equal(driver(1).stats.framesDroppedByHook, 0);
    assert.equal(driver(2).stats.framesDroppedByHook, 0);

    cut = false;
    await waitFor(() => delivered(3).length === 5, "node 3 to catch up once reconnected");
    assert.deepEqual(delivered(3), ["v0", "v1", "v2", "v3", "v4"]);
  } finally {
    for (const d of drivers.values()) await d.stop();
  }
});
