#!/usr/bin/env node
// Benchmarks (not tests): `npm run bench [-- name ...]`. Each writes bench/results/<name>.json with
// the machine it ran on; docs quote these files. Names: usi, sim.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const resultsDir = `${root}bench/results`;
mkdirSync(resultsDir, { recursive: true });

const machine = {
  node: process.version,
  cpus: availableParallelism(),
  cpuModel: cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(totalmem() / 2 ** 30),
};

function save(name, result) {
  const file = `${resultsDir}/${name}.json`;
  writeFileSync(
    file,
    `${JSON.stringify({ benchmark: name, date: new Date().toISOString(), machine, ...result }, null, 2)}\n`,
  );
  console.log(`wrote ${file}`);
}

const benchmarks = {
  /** The course harness's speed run: 2 clients x N values, all learned within the 5 s window? */
  async usi() {
    const { runUsi } = await import("../dist/harness/index.js");
    const runs = [];
    for (const valuesPerClient of [100_000, 500_000]) {
      for (let attempt = 1; attempt <= 3; attempt++) {
        const result = await runUsi({ scriptsDir: `${root}compat/usi`, valuesPerClient, runSeconds: 5 });
        const learned = Math.min(...result.learned.map((lines) => lines.length));
        const run = {
          valuesPerClient,
          attempt,
          learnedAll: result.problems.length === 0,
          learnedAllMs: result.learnedAllMs,
          learnedWithinWindow: learned,
          valuesPerSecond: result.learnedAllMs
            ? Math.round((2 * valuesPerClient) / (result.learnedAllMs / 1000))
            : null,
          problems: result.problems.slice(0, 3),
        };
        runs.push(run);
        console.log(
          `usi: 2 x ${valuesPerClient}: ${run.learnedAll ? `all learned in ${run.learnedAllMs} ms` : `${learned} of ${2 * valuesPerClient} learned in the window`}`,
        );
      }
    }
    save("usi", {
      description:
        "compat/usi scripts, 3 acceptors, 2 proposers, 2 learners, 2 clients on loopback multicast; clients start 3 s after the proposers and everything stops 5 s after the clients start. learnedAllMs counts from client 1's start until both learners printed every value.",
      runs,
    });
  },

  /** Simulator throughput: seeds and events per second on all cores. */
  async sim() {
    const { runSeedBand } = await import("../dist/sim/index.js");
    const seeds = Array.from({ length: 2000 }, (_, i) => i + 1);
    const started = performance.now();
    const summary = await runSeedBand(seeds, { workers: availableParallelism() });
    const seconds = (performance.now() - started) / 1000;
    const result = {
      seeds: summary.seeds,
      events: summary.events,
      violations: summary.violations,
      seconds: Number(seconds.toFixed(2)),
      seedsPerSecond: Math.round(summary.seeds / seconds),
      eventsPerSecond: Math.round(summary.events / seconds),
    };
    console.log(`sim: ${result.seeds} seeds, ${result.events} events in ${result.seconds} s`);
    save("sim", result);
  },
};

/**
 * Decided values per second on a 3-node cluster of `paxos node` processes on loopback, each with
 * durable state (--data: fsync before every promise and vote, one sync per turn), fed by one
 * in-process client. Batched (up to 512 values a slot) and unbatched (one value a slot).
 */
async function durableRun({ values, batchCommandsMax, transport = "udp" }) {
  const { spawn } = await import("node:child_process");
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { Client, Prng } = await import("../dist/core/index.js");
  const { ClusterAddressBook, Driver, parseClusterConfig } = await import("../dist/runtime/index.js");
  const { UdpTransport, TcpTransport } = await import("../dist/transport/index.js");
  const { MemoryStorage } = await import("../dist/storage/index.js");
  const { binaryCodec } = await import("../dist/codec/index.js");
  const dir = mkdtempSync(join(tmpdir(), "paxos-bench-"));
  const base = 20000 + Math.floor(Math.random() * 40000);
  const config = {
    nodes: [1, 2, 3].map((id) => ({ id, host: "127.0.0.1", port: base + id })),
    transport,
    batchCommandsMax,
  };
  const configPath = join(dir, "cluster.json");
  writeFileSync(configPath, JSON.stringify(config));
  const children = [1, 2, 3].map((id) =>
    spawn(
      process.execPath,
      [
        `${root}bin/paxos.js`,
        "node",
        "--config",
        configPath,
        "--id",
        String(id),
        "--data",
        join(dir, `node-${id}`),
        "--quiet",
      ],
      {
        stdio: ["ignore", "ignore", "inherit"],
        env: { ...process.env, PAXOS_LOG_LEVEL: "warn" },
      },
    ),
  );
  const cluster = parseClusterConfig(JSON.stringify(config));
  const client = new Client({
    id: 4242,
    prng: new Prng(4242),
    windowCommands: 16384,
    firstSeq: Date.now() * 1000,
  });
  const driver = new Driver({
    name: "bench client",
    role: client,
    transport:
      transport === "tcp"
        ? new TcpTransport({ host: "127.0.0.1", port: 0 })
        : new UdpTransport({ host: "127.0.0.1", port: 0, receiveBufferBytes: 4 << 20 }),
    codec: binaryCodec,
    addressBook: new ClusterAddressBook(cluster.value),
    storage: new MemoryStorage(),
    tickMs: 10,
    onFatal: (error) => {
      throw error;
    },
  });
  await driver.start();
  // Wait for a leader: one value decided.
  driver.run((c) => c.submitAll(["warm-up"]).output);
  while (client.acked < 1) await new Promise((resolve) => setTimeout(resolve, 20));
  const started = performance.now();
  const chunk = 4096;
  for (let i = 0; i < values; i += chunk) {
    const payloads = Array.from({ length: Math.min(chunk, values - i) }, (_, j) => `value-${i + j}`);
    driver.run((c) => c.submitAll(payloads).output);
  }
  const deadline = started + 120_000;
  while (client.acked < values + 1 && performance.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 5));
  const seconds = (performance.now() - started) / 1000;
  const acked = client.acked - 1;
  await driver.stop();
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(children.map((child) => new Promise((resolve) => child.once("exit", resolve))));
  rmSync(dir, { recursive: true, force: true });
  return {
    values,
    acked,
    seconds: Number(seconds.toFixed(2)),
    valuesPerSecond: Math.round(acked / seconds),
    batchCommandsMax,
    transport,
  };
}

benchmarks.durable = async () => {
  const runs = [];
  for (const setup of [
    { values: 300_000, batchCommandsMax: 512 },
    { values: 300_000, batchCommandsMax: 512, transport: "tcp" },
    { values: 10_000, batchCommandsMax: 1 },
  ]) {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const run = await durableRun(setup);
      runs.push({ ...run, attempt });
      console.log(
        `durable: ${run.transport}, batch ${run.batchCommandsMax}: ${run.acked} of ${run.values} values in ${run.seconds} s = ${run.valuesPerSecond} values/s`,
      );
    }
  }
  save("durable", {
    description:
      "3 paxos node processes on loopback with --data (write-ahead log, fdatasync before promises and votes leave, one sync per event-loop turn), one in-process client submitting values as fast as its window allows; values/s = acknowledged values / seconds from first submit to last ack.",
    runs,
  });
};

const names = process.argv.slice(2);
for (const name of names.length > 0 ? names : Object.keys(benchmarks)) {
  const run = benchmarks[name];
  if (run === undefined) {
    console.error(`unknown benchmark "${name}" (known: ${Object.keys(benchmarks).join(", ")})`);
    process.exit(2);
  }
  await run();
}
