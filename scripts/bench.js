#!/usr/bin/env node
// Benchmarks (not tests): `npm run bench [-- name ...]`. Each writes bench/results/<name>.json with
// the machine it ran on; docs quote these files. Names: usi, sim, durable, bounded, kv. Newer
// benchmarks are TypeScript under bench/ (compiled by `npm run build` into dist/bench/), and this
// script only dispatches to them.
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

  /**
   * Simulator throughput: seeds and events per second on all cores, and the CPU time they took (the
   * worker threads' included), which a machine shared with other work disturbs less than the wall time.
   */
  async sim() {
    const { runSeedBand } = await import("../dist/sim/index.js");
    const seeds = Array.from({ length: 2000 }, (_, i) => i + 1);
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const summary = await runSeedBand(seeds, { workers: availableParallelism() });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const result = {
      description:
        "seeds 1..2000 of `paxos sim` on worker threads (one per core): every process runs the real Driver, codec, address book, openDataDir and WalStorage over the simulated network and file system",
      seeds: summary.seeds,
      events: summary.events,
      violations: summary.violations,
      seconds: Number(seconds.toFixed(2)),
      seedsPerSecond: Math.round(summary.seeds / seconds),
      eventsPerSecond: Math.round(summary.events / seconds),
      cpuSeconds: Number(cpuSeconds.toFixed(1)),
      cpuMsPerSeed: Number(((cpuSeconds * 1000) / summary.seeds).toFixed(1)),
      eventsPerCpuSecond: Math.round(summary.events / cpuSeconds),
    };
    console.log(
      `sim: ${result.seeds} seeds, ${result.events} events in ${result.seconds} s (${result.cpuSeconds} s of CPU)`,
    );
    save("sim", result);
  },
};

/**
 * Three `paxos node --data` processes on loopback (cluster file `extra` merged in), each with its data
 * directory, started with the shared process-start helper (dist/test-support); `stdout` and `stderr`
 * are its options ("pipe", "inherit", "ignore"), in a fresh temporary directory.
 */
async function startNodes({ extra = {}, nodeArgs = [], execArgs = [], stdout, stderr, logLevel }) {
  const { startPaxos } = await import("../dist/test-support/index.js");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "paxos-bench-"));
  const base = 20000 + Math.floor(Math.random() * 40000);
  const config = { nodes: [1, 2, 3].map((id) => ({ id, host: "127.0.0.1", port: base + id })), ...extra };
  const configPath = join(dir, "cluster.json");
  writeFileSync(configPath, JSON.stringify(config));
  const dataDir = (id) => join(dir, `node-${id}`);
  const processes = [1, 2, 3].map((id) =>
    startPaxos(
      ["node", "--config", configPath, "--id", String(id), "--data", dataDir(id), "--new", ...nodeArgs],
      {
        name: `node ${id}`,
        execArgs,
        stdout,
        stderr,
        logLevel,
      },
    ),
  );
  const children = processes.map((proc) => proc.child);
  const exited = processes.map((proc) => proc.exited);
  return { dir, config, children, dataDir, exited };
}

/** An in-process client (id `id`) for a cluster file, started, with a leader found (one value acked). */
async function startClient(config, id, transport = "udp") {
  const { Client, Prng } = await import("../dist/core/index.js");
  const { ClusterAddressBook, Driver, parseClusterConfig, clusterEnvelope, loadClusterKeys } = await import(
    "../dist/runtime/index.js"
  );
  const { UdpTransport, TcpTransport } = await import("../dist/transport/index.js");
  const { MemoryStorage } = await import("../dist/storage/index.js");
  const { binaryCodec } = await import("../dist/codec/index.js");
  const cluster = parseClusterConfig(JSON.stringify(config));
  const client = new Client({ id, prng: new Prng(id), windowCommands: 16384, firstSeq: Date.now() * 1000 });
  // With PAXOS_CLUSTER_KEY set, the nodes (which inherit the environment) and this client authenticate.
  const keys = loadClusterKeys({ env: process.env });
  if (!keys.ok) throw new Error(keys.error);
  const driver = new Driver({
    name: "bench client",
    role: client,
    envelope: clusterEnvelope(
      cluster.value,
      { kind: "client", id },
      { keys: keys.value, incarnation: Date.now() },
    ),
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
  driver.run((c) => c.submitAll(["warm-up"]).output);
  const { waitFor } = await import("../dist/test-support/index.js");
  await waitFor(() => client.acked >= 1, "the warm-up value to be acked", { timeoutMs: 60_000 });
  return { client, driver };
}

/**
 * Decided values per second on a 3-node cluster of `paxos node` processes on loopback, each with
 * durable state (--data: fsync before every promise and vote, one sync per turn), fed by one
 * in-process client. Batched (up to 512 values a slot) and unbatched (one value a slot).
 */
async function durableRun({ values, batchCommandsMax, transport = "udp" }) {
  const { rmSync } = await import("node:fs");
  const nodes = await startNodes({
    extra: { transport, batchCommandsMax },
    nodeArgs: ["--quiet"],
    stdout: "ignore",
    stderr: "inherit",
    logLevel: "warn",
  });
  const { client, driver } = await startClient(nodes.config, 4242, transport);
  const started = performance.now();
  const chunk = 4096;
  for (let i = 0; i < values; i += chunk) {
    const payloads = Array.from({ length: Math.min(chunk, values - i) }, (_, j) => `value-${i + j}`);
    driver.run((c) => c.submitAll(payloads).output);
  }
  const { waitFor } = await import("../dist/test-support/index.js");
  // Not acked within 2 minutes: the figure counts what was.
  await waitFor(() => client.acked >= values + 1, "every value to be acked", {
    timeoutMs: 120_000,
    pollMs: 5,
  }).catch(() => {});
  const seconds = (performance.now() - started) / 1000;
  const acked = client.acked - 1;
  await driver.stop();
  for (const child of nodes.children) child.kill("SIGTERM");
  await Promise.all(nodes.exited);
  rmSync(nodes.dir, { recursive: true, force: true });
  return {
    values,
    acked,
    seconds: Number(seconds.toFixed(2)),
    valuesPerSecond: Math.round(acked / seconds),
    batchCommandsMax,
    transport,
  };
}

/** The middle value of `numbers`. */
function median(numbers) {
  const sorted = [...numbers].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : Math.round((sorted[mid - 1] + sorted[mid]) / 2);
}

benchmarks.durable = async () => {
  // Long enough (about 10 s batched) that start-up and JIT warm-up do not decide the figure; three
  // attempts each, and the median is the figure quoted.
  const attempts = Number(process.env.PAXOS_BENCH_ATTEMPTS ?? 3);
  const runs = [];
  const medians = [];
  // PAXOS_BENCH_VALUES scales the runs down (or up) for a quick A/B; the recorded figures use 1M.
  const scale = Number(process.env.PAXOS_BENCH_VALUES ?? 1_000_000) / 1_000_000;
  for (const setup of [
    { values: Math.round(1_000_000 * scale), batchCommandsMax: 512 },
    { values: Math.round(1_000_000 * scale), batchCommandsMax: 512, transport: "tcp" },
    { values: Math.round(20_000 * scale), batchCommandsMax: 1 },
  ]) {
    const figures = [];
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const run = await durableRun(setup);
      runs.push({ ...run, attempt });
      figures.push(run.valuesPerSecond);
      console.log(
        `durable: ${run.transport}, batch ${run.batchCommandsMax}: ${run.acked} of ${run.values} values in ${run.seconds} s = ${run.valuesPerSecond} values/s`,
      );
    }
    const { transport = "udp", batchCommandsMax } = setup;
    medians.push({ transport, batchCommandsMax, medianValuesPerSecond: median(figures) });
    console.log(`durable: ${transport}, batch ${batchCommandsMax}: median ${median(figures)} values/s`);
  }
  save("durable", {
    description:
      "3 paxos node processes on loopback with --data (write-ahead log, fdatasync before promises and votes leave, one sync per event-loop turn), one in-process client submitting values as fast as its window allows; values/s = acknowledged values / seconds from first submit to last ack; the median of the attempts is the figure quoted.",
    medians,
    runs,
  });
};

/**
 * Bounded memory and disk over a long run: 3 `paxos node --data` processes decide `values` values
 * (default 10 million; PAXOS_BENCH_VALUES overrides) fed by one in-process client that keeps at most
 * `inFlightMax` unacknowledged. Every 2 s it samples each node's resident memory (/proc) and the size
 * of its data directory. Snapshots (every 32 MiB of estimated values, the default) compact the log on
 * disk and in memory, so both stay flat while the decided count grows. At the end every node's state
 * machine digest must be the same.
 */
async function boundedRun({
  values,
  inFlightMax = 100_000,
  sampleMs = 2000,
  heapCapMiB = 256,
  snapshotLogBytes = undefined,
}) {
  const { rmSync, readFileSync, readdirSync, statSync, createWriteStream } = await import("node:fs");
  const { LOG_MESSAGES } = await import("../dist/observe/index.js");
  const { join } = await import("node:path");
  const cluster = await startNodes({
    extra: snapshotLogBytes !== undefined ? { snapshotLogBytes } : {},
    // A heap cap far below what 10 million values take: a node whose memory grew with the values
    // would run out of heap and die.
    execArgs: [`--max-old-space-size=${heapCapMiB}`],
    stdout: "pipe",
    stderr: "pipe",
    logLevel: "info",
  });
  const { dir, children, exited } = cluster;
  const logs = [1, 2, 3].map((id) => join(dir, `node-${id}.log`));
  const applied = [0, 0, 0];
  children.forEach((child, i) => {
    child.stderr.pipe(createWriteStream(logs[i]));
    // Each applied command prints one line: counting them tells when a node has caught up.
    child.stdout.on("data", (chunk) => {
      for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) applied[i]++;
    });
  });
  const { client, driver } = await startClient(cluster.config, 4343);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const rssBytes = (pid) => {
    try {
      const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return match ? Number(match[1]) * 1024 : null;
    } catch {
      return null;
    }
  };
  const dirBytes = (path) => {
    let total = 0;
    for (const name of readdirSync(path)) total += statSync(join(path, name)).size;
    return total;
  };
  const samples = [];
  let nodeDied = null;
  const started = performance.now();
  let nextSample = started;
  let submitted = 0;
  const chunk = 4096;
  while (client.acked - 1 < values) {
    while (submitted < values && submitted - (client.acked - 1) < inFlightMax) {
      const count = Math.min(chunk, values - submitted);
      const from = submitted;
      driver.run((c) => c.submitAll(Array.from({ length: count }, (_, j) => `value-${from + j}`)).output);
      submitted += count;
    }
    const now = performance.now();
    if (now >= nextSample) {
      nextSample += sampleMs;
      const sample = {
        seconds: Number(((now - started) / 1000).toFixed(1)),
        decided: client.acked - 1,
        rssMiB: children.map((child) => Number(((rssBytes(child.pid) ?? 0) / 2 ** 20).toFixed(1))),
        diskMiB: [1, 2, 3].map((id) => Number((dirBytes(cluster.dataDir(id)) / 2 ** 20).toFixed(1))),
      };
      samples.push(sample);
      console.log(`bounded: ${JSON.stringify(sample)}`);
    }
    const dead = children.findIndex((child) => child.exitCode !== null || child.signalCode !== null);
    if (dead !== -1) {
      nodeDied = {
        node: dead + 1,
        decided: client.acked - 1,
        seconds: Number(((now - started) / 1000).toFixed(1)),
      };
      console.log(`bounded: node ${dead + 1} died after ${nodeDied.decided} values`);
      break;
    }
    await sleep(5);
  }
  const seconds = (performance.now() - started) / 1000;
  await driver.stop();
  // Acknowledged means decided and applied by the leader; followers may still be applying.
  const { waitFor } = await import("../dist/test-support/index.js");
  await waitFor(() => applied.every((count) => count >= values + 1), "every node to catch up", {
    timeoutMs: nodeDied === null ? 60_000 : 0,
    pollMs: 50,
  }).catch(() => {});
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(exited);
  const nodes = logs.map((file, i) => {
    const lines = readFileSync(file, "utf8")
      .split("\n")
      .filter((line) => line.startsWith("{"));
    const records = lines.map((line) => JSON.parse(line));
    const final = records.filter((r) => r.msg === LOG_MESSAGES.stateMachine).at(-1) ?? {};
    return {
      node: i + 1,
      snapshotsTaken: records.filter((r) => r.msg === LOG_MESSAGES.snapshotTaken).length,
      snapshotsInstalled: records.filter((r) => r.msg === LOG_MESSAGES.snapshotInstalled).length,
      commands: final.commands ?? null,
      digest: final.digest ?? null,
      snapshotSlot: final.snapshotSlot ?? null,
      heldSlots: final.heldSlots ?? null,
      votes: final.votes ?? null,
      heapUsedMiBAtEnd: final.heapUsedMiB ?? null,
    };
  });
  const agree = nodes.every(
    (n) => n.digest !== null && n.digest === nodes[0].digest && n.commands === nodes[0].commands,
  );
  if (nodeDied === null) rmSync(dir, { recursive: true, force: true });
  else console.log(`bounded: logs kept in ${dir}`);
  const after = (fraction) => samples.filter((s) => s.decided >= values * fraction);
  const peak = (list, key) => Math.max(0, ...list.flatMap((s) => s[key]));
  return {
    values,
    heapCapMiB,
    snapshotLogBytes: snapshotLogBytes ?? "default",
    nodeDied,
    seconds: Number(seconds.toFixed(1)),
    decided: client.acked - 1,
    valuesPerSecond: Math.round((client.acked - 1) / seconds),
    digestsAgree: agree,
    nodes,
    peakRssMiB: peak(samples, "rssMiB"),
    peakDiskMiB: peak(samples, "diskMiB"),
    peakRssMiBFirstTenth: peak(
      samples.filter((s) => s.decided <= values / 10),
      "rssMiB",
    ),
    peakRssMiBLastHalf: peak(after(0.5), "rssMiB"),
    peakDiskMiBFirstTenth: peak(
      samples.filter((s) => s.decided <= values / 10),
      "diskMiB",
    ),
    peakDiskMiBLastHalf: peak(after(0.5), "diskMiB"),
    samples,
  };
}

benchmarks.bounded = async () => {
  const values = Number(process.env.PAXOS_BENCH_VALUES ?? 10_000_000);
  // The control: the same run with snapshots off must outgrow the heap cap (or the cap proves nothing).
  const control = await boundedRun({ values, snapshotLogBytes: 0 });
  console.log(
    `bounded, control without snapshots: ${control.nodeDied ? `a node ran out of memory after ${control.nodeDied.decided} values` : `all ${values} values decided (peak RSS ${control.peakRssMiB} MiB)`}`,
  );
  const run = await boundedRun({ values });
  console.log(
    `bounded: ${run.values} values in ${run.seconds} s (${run.valuesPerSecond}/s); peak RSS ${run.peakRssMiB} MiB (first tenth ${run.peakRssMiBFirstTenth}, last half ${run.peakRssMiBLastHalf}); peak disk ${run.peakDiskMiB} MiB (first tenth ${run.peakDiskMiBFirstTenth}, last half ${run.peakDiskMiBLastHalf}); digests agree: ${run.digestsAgree}`,
  );
  // A run of another length keeps its own file, so the default run's figures stay where docs quote them.
  save(values === 10_000_000 ? "bounded" : `bounded-${values}`, {
    description:
      "3 paxos node processes with --data on loopback UDP, each with its V8 heap capped (--max-old-space-size=heapCapMiB), default snapshot policy (32 MiB of estimated values, 128 slots kept below a snapshot), one in-process client with at most 100,000 values unacknowledged. Samples every 2 s: each node's resident memory and data directory size. digestsAgree: every node's state machine ended with the same command count and digest.",
    ...run,
    control: { ...control, samples: undefined },
  });
};

/**
 * The key-value benchmark (bench/kv/): paxos and etcd side by side under one closed-loop load
 * generator. PAXOS_BENCH_SECONDS, PAXOS_BENCH_WARMUP_SECONDS, PAXOS_BENCH_CLIENTS ("1,16") and
 * PAXOS_BENCH_SYSTEMS ("etcd") change the run; a run with other settings than the defaults is written
 * to kv-trial.json, so kv.json keeps the figures docs quote.
 */
benchmarks.kv = async () => {
  const { formatKvTable, isDefaultRun, kvSettingsFromEnv, runKvBenchmark } = await import(
    "../dist/bench/kv/index.js"
  );
  const settings = kvSettingsFromEnv();
  const report = await runKvBenchmark(settings);
  console.log(`\n${formatKvTable(report.runs)}\n`);
  for (const [system, outcome] of Object.entries(report.systems)) {
    if (outcome.status !== "measured") console.log(`kv: ${system} ${outcome.status}: ${outcome.reason}`);
  }
  save(isDefaultRun(settings) ? "kv" : "kv-trial", report);
  // A system that should have run and did not makes the benchmark fail (after its figures are saved).
  if (Object.values(report.systems).some((outcome) => outcome.status === "failed")) process.exitCode = 1;
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
