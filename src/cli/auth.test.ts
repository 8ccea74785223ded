import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { binaryCodec, EnvelopeGuard } from "../codec/index.js";
import type { Message } from "../core/index.js";
import { hasLogged, LOG_MESSAGES, logRecords } from "../observe/index.js";
import { clusterIdOfConfig, parseClusterConfig, UNAUTHENTICATED_WARNING } from "../runtime/index.js";
import { freeUdpPorts, ProcessGroup, type StartedProcess, waitFor } from "../test-support/index.js";

const lines = (text: string) => text.split("\n").filter((line) => line !== "");
const started = (proc: StartedProcess) => () => hasLogged(proc.stderr, LOG_MESSAGES.started);

/** The refusals a node logged when it stopped. */
function refusalsAtStop(proc: StartedProcess): Record<string, number> {
  const records = logRecords(proc.stderr, LOG_MESSAGES.stopping);
  assert.equal(records.length, 1, `${proc.name} logged no "stopping" line: ${proc.stderr}`);
  return (records[0]?.refusals ?? {}) as Record<string, number>;
}

describe("paxos node with a cluster key (docs/security.md, Authentication and identity)", () => {
  test("a 3-node cluster with a key decides; keyless, replayed and other-cluster frames are refused and counted; a client without the key gets a clear error", async () => {
    const processes = new ProcessGroup();
    const dir = mkdtempSync(join(tmpdir(), "paxos-auth-test-"));
    const socket = createSocket("udp4");
    try {
      const key = "0123456789abcdef0123456789abcdef";
      writeFileSync(join(dir, "cluster.key"), `${key}\n`);
      const ports = await freeUdpPorts(3);
      const nodes = ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port }));
      const keyed = { name: "auth-test", nodes, auth: { keyFile: "cluster.key" } };
      const keyedPath = join(dir, "cluster.json");
      writeFileSync(keyedPath, JSON.stringify(keyed));
      // The same cluster (same name and nodes: same cluster id) with no key.
      const keylessPath = join(dir, "keyless.json");
      writeFileSync(keylessPath, JSON.stringify({ name: "auth-test", nodes }));
      const env = { PAXOS_CLUSTER_KEY: undefined, PAXOS_CLUSTER_ACCEPT_KEY: undefined };

      const nodeProcs = nodes.map((node) =>
        processes.start(
          `node ${node.id}`,
          ["node", "--config", keyedPath, "--id", String(node.id), "--new"],
          {
            env,
          },
        ),
      );
      for (const proc of nodeProcs) await waitFor(started(proc), `${proc.name} to start`);
      for (const proc of nodeProcs)
        assert.ok(!proc.stderr.includes(UNAUTHENTICATED_WARNING), "a keyed node warns of no key");

      const values = Array.from({ length: 10 }, (_, i) => `keyed value ${i + 1}`);
      const client = processes.start("client 9", ["client", "9", keyedPath], { stdin: true, env });
      client.child.stdin?.end(`${values.join("\n")}\n`);
      await waitFor(
        () => nodeProcs.every((proc) => lines(proc.stdout).length >= values.length),
        "every node to print every value",
      );
      assert.deepEqual(await client.exited, { code: 0, signal: null }, client.stderr);

      // Frames an attacker on the network could send to node 1.
      const parsed = parseClusterConfig(JSON.stringify(keyed));
      assert.ok(parsed.ok);
      const clusterId = clusterIdOfConfig(parsed.value);
      const keyBytes = new TextEncoder().encode(key);
      const send = (frame: Uint8Array, port = ports[0]) =>
        new Promise<void>((resolve, reject) =>
          socket.send(frame, port, "127.0.0.1", (error) => (error ? reject(error) : resolve())),
        );
      const request = (client: number, payload: string): Message => ({
        type: "request",
        from: client,
        commands: [{ client, seq: 1, payload }],
      });
      const party = (id: number, options: { key: Uint8Array | null; clusterId: number }) =>
        new EnvelopeGuard({
          clusterId: options.clusterId,
          self: { kind: "client", id },
          roles: ["client"],
          incarnation: Date.now(),
          key: options.key,
        });
      // 1. No MAC (a keyless sender), claiming to be node 2.
      const keylessNode = new EnvelopeGuard({
        clusterId,
        self: { kind: "node", id: 2 },
        roles: [],
        incarnation: Date.now(),
      });
      await send(
        keylessNode.seal(
          binaryCodec.encode({
            type: "heartbeat",
            from: 2,
            ballot: { round: 1_000_000, node: 2 },
            decidedThrough: 0,
            proposedThrough: 0,
          }),
          { role: "acceptor" },
        ),
      );
      // 2. A valid frame, then the same frame again (a replay): the first is decided, the second refused.
      const captured = party(501, { key: keyBytes, clusterId }).seal(
        binaryCodec.encode(request(501, "sent once")),
        { role: "proposer" },
      );
      for (const port of ports) await send(captured, port); // to every proposer, as a client does
      await waitFor(
        () => lines(nodeProcs[0]?.stdout ?? "").includes("sent once"),
        "the genuine frame decided",
      );
      await send(captured);
      // 3. Another cluster's frame, with the right key even.
      await send(
        party(502, { key: keyBytes, clusterId: (clusterId % 0xffff_fffe) + 1 }).seal(
          binaryCodec.encode(request(502, "other cluster")),
          { role: "proposer" },
        ),
      );
      // 4. A client without the key: a clear error, exit 1, nothing decided.
      const keyless = processes.start("client 10", ["client", "10", keylessPath], { stdin: true, env });
      keyless.child.stdin?.end("from a keyless client\n");
      const keylessExit = await keyless.finish(10_000);
      assert.deepEqual(keylessExit, { code: 1, signal: null }, keyless.stderr);
      assert.match(keyless.stderr, /the cluster refuses this client: our frames carry no MAC/);
      assert.ok(keyless.stderr.includes(UNAUTHENTICATED_WARNING), "the keyless client warns at start");

      // Node 1 still works: one more value from the keyed client is decided everywhere.
      const after = processes.start("client 11", ["client", "11", keyedPath], { stdin: true, env });
      after.child.stdin?.end("after the attacks\n");
      assert.deepEqual(await after.finish(10_000), { code: 0, signal: null }, after.stderr);
      await waitFor(
        () => nodeProcs.every((proc) => lines(proc.stdout).includes("after the attacks")),
        "every node to print the last value",
      );

      for (const proc of nodeProcs) assert.equal((await processes.stop(proc)).code, 0, proc.stderr);
      const refusals = refusalsAtStop(nodeProcs[0] as StartedProcess);
      assert.ok(
        (refusals.unauthenticated ?? 0) >= 2,
        `keyless node and keyless client: ${JSON.stringify(refusals)}`,
      );
      assert.equal(refusals.replay, 1, JSON.stringify(refusals));
      assert.equal(refusals["wrong-cluster"], 1, JSON.stringify(refusals));
      for (const proc of nodeProcs) {
        const printed = lines(proc.stdout);
        assert.ok(!printed.includes("other cluster"), `${proc.name} delivered another cluster's value`);
        assert.ok(!printed.includes("from a keyless client"), `${proc.name} delivered a keyless value`);
        assert.equal(printed.filter((line) => line === "sent once").length, 1, `${proc.name}: once`);
        assert.doesNotMatch(proc.stderr, /FATAL/);
      }
    } finally {
      socket.close();
      await processes.stopAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("paxos node over mutual TLS (docs/security.md, Mutual TLS)", () => {
  test("three nodes over TCP with TLS certificates decide a client's values; a client whose certificate the CA did not sign gets nothing", async () => {
    const processes = new ProcessGroup();
    const dir = mkdtempSync(join(tmpdir(), "paxos-tls-node-test-"));
    const openssl = (args: string[]) => {
      const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
      assert.equal(result.error, undefined, `openssl is needed for this test: ${result.error?.message}`);
      assert.equal(result.status, 0, `openssl ${args.join(" ")}: ${result.stderr}`);
    };
    const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    const ca = (name: string) =>
      openssl([
        "req",
        "-x509",
        ...newKey,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.pem`,
        "-days",
        "2",
        "-subj",
        `/CN=${name}`,
      ]);
    const cert = (name: string, by: string) => {
      openssl(["req", ...newKey, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
      writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:${name}\n`);
      openssl(
        [
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          `${by}.pem`,
          "-CAkey",
          `${by}.key`,
          "-CAcreateserial",
        ].concat(["-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`]),
      );
    };
    try {
      ca("ca");
      ca("rogue-ca");
      for (const name of ["node-1", "node-2", "node-3", "client-9"]) cert(name, "ca");
      cert("client-10", "rogue-ca");
      const ports = await freeTcpPorts(3);
      const nodes = ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port }));
      const configPath = join(dir, "cluster.json");
      const tls = {
        caFile: "ca.pem",
        certFile: "node-{id}.pem",
        keyFile: "node-{id}.key",
        clientCertFile: "client-{id}.pem",
        clientKeyFile: "client-{id}.key",
      };
      writeFileSync(configPath, JSON.stringify({ nodes, transport: "tcp", tls }));
      const nodeProcs = nodes.map((node) =>
        processes.start(`node ${node.id}`, [
          "node",
          "--config",
          configPath,
          "--id",
          String(node.id),
          "--new",
        ]),
      );
      for (const proc of nodeProcs) await waitFor(started(proc), `${proc.name} to start`);
      const values = ["tls 1", "tls 2", "tls 3"];
      const client = processes.start("client 9", ["client", "9", configPath], { stdin: true });
      client.child.stdin?.end(`${values.join("\n")}\n`);
      await waitFor(
        () => nodeProcs.every((proc) => lines(proc.stdout).length >= values.length),
        "every node to print every value",
      );
      assert.deepEqual(await client.finish(10_000), { code: 0, signal: null }, client.stderr);

      const rogue = processes.start("client 10", ["client", "10", configPath], { stdin: true });
      rogue.child.stdin?.end("from a rogue certificate\n");
      await new Promise((resolve) => setTimeout(resolve, 1500)); // a fixed window to show nothing is decided
      await processes.stop(rogue);
      for (const proc of nodeProcs) assert.equal((await processes.stop(proc)).code, 0, proc.stderr);
      for (const proc of nodeProcs) {
        assert.deepEqual(lines(proc.stdout).sort(), [...values].sort(), `${proc.name} printed other values`);
        assert.doesNotMatch(proc.stderr, /FATAL/);
      }
    } finally {
      await processes.stopAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** `count` TCP ports the OS says are free on 127.0.0.1 (free a moment ago). */
async function freeTcpPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === "object");
    ports.add(address.port);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return [...ports];
}
