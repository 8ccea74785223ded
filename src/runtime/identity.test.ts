import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { binaryCodec, EnvelopeGuard, parseEnvelope } from "../codec/index.js";
import { Client, type Message, Prng } from "../core/index.js";
import { MemoryStorage } from "../storage/index.js";
import { waitFor } from "../test-support/index.js";
import { MemoryNetwork } from "../transport/index.js";
import { ClusterAddressBook } from "./address-book.js";
import { clusterIdOfConfig, parseClusterConfig } from "./config.js";
import { Driver } from "./driver.js";
import { CLUSTER_KEY_ENV, clusterEnvelope, loadClusterKeys, nextIncarnation } from "./identity.js";

const KEY = new TextEncoder().encode("0123456789abcdef0123456789abcdef");

describe("Cluster keys and incarnations", () => {
  test("the key comes from --key-file, else auth.keyFile (relative to the cluster file), else PAXOS_CLUSTER_KEY", () => {
    const dir = mkdtempSync(join(tmpdir(), "paxos-keys-"));
    try {
      writeFileSync(join(dir, "a.key"), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
      writeFileSync(join(dir, "b.key"), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
      writeFileSync(join(dir, "short.key"), "too short\n");
      const configPath = join(dir, "cluster.json");
      const env = { [CLUSTER_KEY_ENV]: "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" };
      const text = (keys: ReturnType<typeof loadClusterKeys>) =>
        keys.ok && keys.value.key !== null ? new TextDecoder().decode(keys.value.key) : String(keys.ok);
      assert.equal(
        text(loadClusterKeys({ keyFile: join(dir, "b.key"), auth: { keyFile: "a.key" }, configPath, env })),
        "b".repeat(32),
      );
      assert.equal(
        text(loadClusterKeys({ auth: { keyFile: "a.key" }, configPath, env })),
        "a".repeat(32),
        "trailing newline dropped",
      );
      assert.equal(text(loadClusterKeys({ configPath, env })), "e".repeat(32));
      const none = loadClusterKeys({ configPath, env: {} });
      assert.ok(none.ok && none.value.key === null && none.value.acceptKey === null);
      const short = loadClusterKeys({ auth: { keyFile: "short.key" }, configPath });
      assert.ok(!short.ok && /at least 16 bytes/.test(short.error), "a short key is an error");
      const missing = loadClusterKeys({ auth: { keyFile: "nope.key" }, configPath });
      assert.ok(!missing.ok && /ENOENT/.test(missing.error));
      const rotating = loadClusterKeys({ auth: { keyFile: "a.key", acceptKeyFile: "b.key" }, configPath });
      assert.ok(rotating.ok && rotating.value.acceptKey !== null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("incarnations: the clock, kept strictly increasing by DIR.incarnation when the clock steps back", () => {
    const dir = mkdtempSync(join(tmpdir(), "paxos-incarnation-"));
    try {
      const data = join(dir, "data");
      assert.equal(nextIncarnation(undefined, 5000), 5000);
      assert.equal(nextIncarnation(data, 5000), 5000);
      assert.equal(nextIncarnation(data, 5000), 5001, "same clock: one more");
      assert.equal(nextIncarnation(data, 1000), 5002, "the clock stepped back: still one more");
      assert.equal(nextIncarnation(data, 9000), 9000);
      assert.equal(readFileSync(`${data}.incarnation`, "utf8"), "9000\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Clients authenticate their acks", () => {
  test("a keyed client refuses a forged (keyless or wrongly keyed) ack and takes a genuine one", async () => {
    const parsed = parseClusterConfig(
      JSON.stringify({ nodes: [{ id: 1, host: "127.0.0.1", port: 1 }], auth: { keyFile: "unused" } }),
    );
    assert.ok(parsed.ok);
    const config = parsed.value;
    const network = new MemoryNetwork();
    const node = network.createTransport({ host: "127.0.0.1", port: 1 });
    const requests: Uint8Array[] = [];
    node.onFrame((frame) => requests.push(frame));
    await node.start();
    const client = new Client({ id: 77, prng: new Prng(1) });
    const storage = new MemoryStorage();
    await storage.open();
    const driver = new Driver({
      name: "client 77",
      role: client,
      envelope: clusterEnvelope(
        config,
        { kind: "client", id: 77 },
        { keys: { key: KEY, acceptKey: null }, incarnation: 1 },
      ),
      transport: network.createTransport({ host: "127.0.0.1", port: 2 }),
      codec: binaryCodec,
      addressBook: new ClusterAddressBook(config),
      storage,
      tickMs: 5,
      onFatal: (error) => assert.fail(error),
    });
    await driver.start();
    try {
      let seq = 0;
      driver.run((c) => {
        const result = c.submit("x=1");
        assert.ok(result.ok);
        seq = result.value.seq;
        return result.value.output;
      });
      await waitFor(() => requests.length > 0, "the request");
      const request = parseEnvelope(requests[0] as Uint8Array);
      assert.ok(request?.authenticated, "the client's request carries a MAC");
      const ack: Message = { type: "ack", from: 1, client: 77, seqs: [seq] };
      const nodeWith = (key: Uint8Array | null) =>
        new EnvelopeGuard({
          clusterId: clusterIdOfConfig(config),
          self: { kind: "node", id: 1 },
          roles: [],
          incarnation: 2,
          key,
        });
      const to = driver.role.id;
      node.send(
        { host: "127.0.0.1", port: 2 },
        nodeWith(null).seal(binaryCodec.encode(ack), { role: "client", id: to }),
      );
      node.send(
        { host: "127.0.0.1", port: 2 },
        nodeWith(new TextEncoder().encode("another key, 32 bytes long......")).seal(binaryCodec.encode(ack), {
          role: "client",
          id: to,
        }),
      );
      await waitFor(() => driver.refusals.total === 2, "both forged acks refused");
      assert.deepEqual(driver.refusals.byReason(), { "bad-mac": 1, unauthenticated: 1 });
      assert.equal(client.acked, 0, "a forged ack is not an ack");
      node.send(
        { host: "127.0.0.1", port: 2 },
        nodeWith(KEY).seal(binaryCodec.encode(ack), { role: "client", id: to }),
      );
      await waitFor(() => client.acked === 1, "the genuine ack");
    } finally {
      await driver.stop();
      await node.close();
    }
  });
});
