import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { freeTcpPorts } from "#test-support";
import { etcdTarget } from "./etcd.js";
import { LatencyHistogram } from "./histogram.js";
import { formatKvTable, isDefaultRun, KV_DEFAULTS, kvSettingsFromEnv } from "./index.js";
import { ERROR_BACKOFF_MS, fillKeys, type LoadResult, runLoad } from "./load.js";
import { paxosTarget } from "./paxos.js";

/**
 * A stand-in for one node of the paxos HTTP API: `PUT /kv/<key>` stores the body and answers 204
 * after `delayMs`; `GET /kv/<key>` answers the value or 404 after `delayMs`; with `failPuts`, every
 * put answers 500. It counts requests, connections and bodies that were not 100 bytes.
 */
async function startStub(store: Map<string, Buffer>, options: { delayMs: number; failPuts?: boolean }) {
  const seen = { requests: 0, connections: 0, badBodies: 0 };
  const server: Server = createServer((request, response) => {
    seen.requests++;
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", async () => {
      await sleep(options.delayMs);
      const key = decodeURIComponent((request.url ?? "").replace(/^\/kv\//, ""));
      if (request.method === "PUT") {
        const body = Buffer.concat(chunks);
        if (body.length !== 100) seen.badBodies++;
        if (options.failPuts) {
          response.writeHead(500).end("disk on fire");
          return;
        }
        store.set(key, body);
        response.writeHead(204).end();
      } else {
        const value = store.get(key);
        if (value === undefined) response.writeHead(404).end();
        else response.writeHead(200).end(value);
      }
    });
  });
  server.on("connection", () => seen.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url, seen, close };
}

/** The invariants every result holds, whatever the machine's speed. */
function assertConsistent(result: LoadResult) {
  assert.equal(result.opsPerSecond, Math.round(result.ops / result.seconds));
  if (result.ops === 0) {
    assert.equal(result.p50Ms, null);
    return;
  }
  const { p50Ms, p99Ms, p999Ms, maxMs, meanMs } = result;
  assert.ok(p50Ms !== null && p99Ms !== null && p999Ms !== null && maxMs !== null && meanMs !== null);
  assert.ok(p50Ms > 0 && p50Ms <= p99Ms && p99Ms <= p999Ms && p999Ms <= maxMs, JSON.stringify(result));
}

describe("LatencyHistogram", () => {
  test("percentiles of 1..100,000 µs are within 0.4% of the exact ones", () => {
    const histogram = new LatencyHistogram();
    for (let us = 1; us <= 100_000; us++) histogram.record(us * 1000);
    assert.equal(histogram.count, 100_000);
    for (const [quantile, exact] of [
      [0.5, 50_000_000],
      [0.99, 99_000_000],
      [0.999, 99_900_000],
      [1, 100_000_000],
    ] as const) {
      const found = histogram.percentileNs(quantile) as number;
      assert.ok(Math.abs(found - exact) / exact <= 0.004, `p${quantile * 100}: ${found} for ${exact}`);
    }
    assert.equal(histogram.maxNs, 100_000_000);
    assert.equal(histogram.minNs, 1000);
    assert.ok(Math.abs((histogram.meanNs() as number) - 50_000_500) < 1);
  });

  test("small values are exact, and every value lands in order at a power of two's edge", () => {
    const histogram = new LatencyHistogram();
    for (const ns of [0, 1, 255, 256, 511, 512, 2 ** 32 - 1, 2 ** 32]) histogram.record(ns);
    assert.equal(histogram.percentileNs(1 / 8), 0);
    assert.equal(histogram.percentileNs(2 / 8), 1);
    assert.equal(histogram.percentileNs(3 / 8), 255);
    let previous = -1;
    for (let rank = 1; rank <= 8; rank++) {
      const value = histogram.percentileNs(rank / 8) as number;
      assert.ok(value >= previous, `rank ${rank}: ${value} after ${previous}`);
      previous = value;
    }
    assert.equal(histogram.percentileNs(1), 2 ** 32);
  });

  test("an empty histogram has no percentiles, and a quantile outside (0, 1] is refused", () => {
    const histogram = new LatencyHistogram();
    assert.equal(histogram.percentileNs(0.5), null);
    assert.equal(histogram.meanNs(), null);
    assert.throws(() => histogram.percentileNs(0), RangeError);
    assert.throws(() => histogram.percentileNs(1.5), RangeError);
  });
});

describe("runLoad (closed loop, against a stub of the paxos HTTP API)", () => {
  test("counts puts and gets spread over the nodes, with latencies at least the server's delay", async () => {
    const store = new Map<string, Buffer>();
    const delayMs = 5;
    const nodes = [await startStub(store, { delayMs }), await startStub(store, { delayMs })];
    try {
      const target = paxosTarget(nodes.map((node) => node.url));
      const clients = 4;
      const put = await runLoad({ target, op: "put", clients, warmupMs: 100, durationMs: 400, keys: 50 });
      assertConsistent(put);
      assert.equal(put.errors, 0, put.errorSamples.join("\n"));
      assert.equal(put.system, "paxos");
      assert.ok(put.ops > 0);
      // Closed loop: each client has one request in flight, and each takes at least delayMs (less
      // 1 ms: a timer may fire up to a millisecond early, since the event loop's clock is cached).
      assert.ok(put.opsPerSecond <= clients * (1000 / (delayMs - 1)), `${put.opsPerSecond} ops/s`);
      assert.ok((put.p50Ms as number) >= delayMs - 1, `p50 ${put.p50Ms} ms`);
      for (const node of nodes) {
        assert.ok(node.seen.requests > 0, "every node got requests");
        // Keep-alive: one connection per client of the node, not one per request.
        assert.ok(node.seen.connections <= clients / nodes.length, `${node.seen.connections} connections`);
        assert.equal(node.seen.badBodies, 0);
      }

      const filled = await fillKeys(target, { keys: 50 });
      assert.deepEqual(filled, { failed: 0, firstFailure: null });
      assert.equal(store.size, 50);
      const get = await runLoad({ target, op: "get", clients, warmupMs: 100, durationMs: 400, keys: 50 });
      assertConsistent(get);
      assert.equal(get.errors, 0);
      assert.equal(get.notFound, 0);
      assert.ok(get.ops > 0);
    } finally {
      for (const node of nodes) await node.close();
    }
  });

  test("a get of a missing key counts as not found, not as an error", async () => {
    const node = await startStub(new Map(), { delayMs: 0 });
    try {
      const get = await runLoad({
        target: paxosTarget([node.url]),
        op: "get",
        clients: 2,
        warmupMs: 50,
        durationMs: 200,
      });
      assertConsistent(get);
      assert.equal(get.errors, 0);
      assert.ok(get.notFound > 0 && get.notFound === get.ops);
    } finally {
      await node.close();
    }
  });

  test("a non-2xx answer is an error, counted and quoted, and has no latency", async () => {
    const node = await startStub(new Map(), { delayMs: 0, failPuts: true });
    try {
      const put = await runLoad({
        target: paxosTarget([node.url]),
        op: "put",
        clients: 2,
        warmupMs: 50,
        durationMs: 200,
      });
      assertConsistent(put);
      assert.equal(put.ops, 0);
      assert.ok(put.errors > 0);
      assert.match(put.errorSamples[0] ?? "", /PUT \/kv\/key-\d{4}: 500 disk on fire/);
      const filled = await fillKeys(paxosTarget([node.url]), { keys: 3, attemptsMax: 2 });
      assert.equal(filled.failed, 3);
      assert.match(filled.firstFailure ?? "", /500 disk on fire/);
    } finally {
      await node.close();
    }
  });

  test("a node that refuses connections gives errors, paced by the back-off, and no exception", async () => {
    const [port] = await freeTcpPorts(1);
    const durationMs = 200;
    const clients = 2;
    const put = await runLoad({
      target: paxosTarget([`http://127.0.0.1:${port}`]),
      op: "put",
      clients,
      warmupMs: 50,
      durationMs,
    });
    assert.equal(put.ops, 0);
    assert.ok(put.errors > 0);
    assert.ok(put.errors <= clients * (durationMs / ERROR_BACKOFF_MS + 1), `${put.errors} errors`);
    assert.match(put.errorSamples[0] ?? "", /ECONNREFUSED/);
  });

  test("rejects a run with no clients or no nodes", async () => {
    await assert.rejects(
      runLoad({
        target: paxosTarget(["http://127.0.0.1:1"]),
        op: "get",
        clients: 0,
        warmupMs: 0,
        durationMs: 1,
      }),
      RangeError,
    );
    await assert.rejects(
      runLoad({ target: paxosTarget([]), op: "get", clients: 1, warmupMs: 0, durationMs: 1 }),
      RangeError,
    );
  });
});

describe("targets", () => {
  test("paxos: PUT and GET /kv/<url-encoded key>, the value raw", () => {
    const value = Buffer.from("v".repeat(100));
    const put = paxosTarget(["http://127.0.0.1:1"]).put("a/b c", value);
    assert.equal(put.method, "PUT");
    assert.equal(put.path, "/kv/a%2Fb%20c");
    assert.equal(put.body, value);
    assert.deepEqual(paxosTarget([]).get("k?"), { method: "GET", path: "/kv/k%3F", body: null });
  });

  test("etcd: the v3 JSON gateway's put and range, key and value in base64", () => {
    const target = etcdTarget(["http://127.0.0.1:2379"]);
    const put = target.put("key-0001", Buffer.from("hello"));
    assert.equal(put.method, "POST");
    assert.equal(put.path, "/v3/kv/put");
    assert.deepEqual(JSON.parse(String(put.body)), {
      key: Buffer.from("key-0001").toString("base64"),
      value: Buffer.from("hello").toString("base64"),
    });
    const range = target.get("key-0001");
    assert.equal(range.path, "/v3/kv/range");
    // No serializable flag: etcd's default range is linearizable.
    assert.deepEqual(JSON.parse(String(range.body)), { key: Buffer.from("key-0001").toString("base64") });
  });
});

describe("kv settings", () => {
  test("default without the environment; the environment changes a run and makes it a trial", () => {
    assert.deepEqual(kvSettingsFromEnv({}), KV_DEFAULTS);
    assert.equal(isDefaultRun(kvSettingsFromEnv({})), true);
    const trial = kvSettingsFromEnv({
      PAXOS_BENCH_SECONDS: "2",
      PAXOS_BENCH_CLIENTS: "1,16",
      PAXOS_BENCH_SYSTEMS: "etcd",
    });
    assert.equal(trial.seconds, 2);
    assert.deepEqual(trial.clients, [1, 16]);
    assert.deepEqual(trial.systems, ["etcd"]);
    assert.equal(isDefaultRun(trial), false);
    assert.throws(() => kvSettingsFromEnv({ PAXOS_BENCH_SYSTEMS: "zookeeper" }), /zookeeper/);
    assert.throws(() => kvSettingsFromEnv({ PAXOS_BENCH_SECONDS: "0" }), /PAXOS_BENCH_SECONDS/);
  });

  test("the table has a header and one aligned line per run", () => {
    const run: LoadResult = {
      system: "etcd",
      op: "put",
      clients: 16,
      seconds: 5,
      ops: 5000,
      opsPerSecond: 1000,
      p50Ms: 1.5,
      p99Ms: 4,
      p999Ms: 9.25,
      meanMs: 1.6,
      maxMs: 12,
      notFound: 0,
      errors: 0,
      errorSamples: [],
      generatorCpuPercent: 20,
    };
    const lines = formatKvTable([run, { ...run, op: "get", clients: 256, p50Ms: null }]).split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0] ?? "", /^system\s+op\s+clients\s+ops\/s\s+p50 ms\s+p99 ms\s+p99\.9 ms\s+errors/);
    assert.match(lines[1] ?? "", /^etcd\s+put\s+16\s+1000\s+1\.50\s+4\.00\s+9\.25\s+0\s+20$/);
    assert.match(lines[2] ?? "", /^etcd\s+get\s+256\s+1000\s+-\s/);
    assert.equal(new Set(lines.map((line) => line.length)).size, 1);
  });
});
