/**
 * The `kv` benchmark (`npm run bench -- kv`): one closed-loop load generator against a 3-node paxos
 * cluster and a 3-member etcd cluster, one after the other on loopback, both keeping durable state;
 * puts and gets of 100-byte values over 1,000 keys with 1, 16, 64 and 256 clients spread over the
 * nodes. scripts/bench.js writes the report to bench/results/kv.json.
 */
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { ensureEtcd, etcdTarget, startEtcdCluster } from "./etcd.js";
import {
  fillKeys,
  KEYS_DEFAULT,
  type KvOp,
  type KvTarget,
  type LoadResult,
  runLoad,
  VALUE_BYTES_DEFAULT,
} from "./load.js";
import { paxosTarget, startPaxosCluster } from "./paxos.js";

export type KvSystem = "paxos" | "etcd";

export interface KvSettings {
  /** Seconds measured per point (`PAXOS_BENCH_SECONDS`, default 5). */
  readonly seconds: number;
  /** Seconds of load before each point is measured (`PAXOS_BENCH_WARMUP_SECONDS`, default 1). */
  readonly warmupSeconds: number;
  /** Client counts (`PAXOS_BENCH_CLIENTS`, default "1,16,64,256"). */
  readonly clients: readonly number[];
  /** Systems measured, in this order (`PAXOS_BENCH_SYSTEMS`, default "paxos,etcd"). */
  readonly systems: readonly KvSystem[];
  readonly ops: readonly KvOp[];
  readonly nodes: number;
  readonly keys: number;
  readonly valueBytes: number;
}

export const KV_DEFAULTS: KvSettings = {
  seconds: 5,
  warmupSeconds: 1,
  clients: [1, 16, 64, 256],
  systems: ["paxos", "etcd"],
  ops: ["put", "get"],
  nodes: 3,
  keys: KEYS_DEFAULT,
  valueBytes: VALUE_BYTES_DEFAULT,
};

function positiveNumber(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!(value > 0)) throw new Error(`${name}=${text} is not a positive number`);
  return value;
}

/** The settings, from the environment (see `KvSettings`) over `KV_DEFAULTS`. */
export function kvSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): KvSettings {
  const clients =
    env.PAXOS_BENCH_CLIENTS === undefined
      ? KV_DEFAULTS.clients
      : env.PAXOS_BENCH_CLIENTS.split(",").map((count) => {
          const value = Number(count);
          if (!Number.isInteger(value) || value < 1)
            throw new Error(`PAXOS_BENCH_CLIENTS: "${count}" is not a whole number of clients`);
          return value;
        });
  const systems =
    env.PAXOS_BENCH_SYSTEMS === undefined
      ? KV_DEFAULTS.systems
      : env.PAXOS_BENCH_SYSTEMS.split(",").map((name) => {
          if (name !== "paxos" && name !== "etcd")
            throw new Error(`PAXOS_BENCH_SYSTEMS: "${name}" is not paxos or etcd`);
          return name;
        });
  return {
    ...KV_DEFAULTS,
    seconds: positiveNumber(env.PAXOS_BENCH_SECONDS, "PAXOS_BENCH_SECONDS", KV_DEFAULTS.seconds),
    warmupSeconds: positiveNumber(
      env.PAXOS_BENCH_WARMUP_SECONDS,
      "PAXOS_BENCH_WARMUP_SECONDS",
      KV_DEFAULTS.warmupSeconds,
    ),
    clients,
    systems,
  };
}

/** Whether `settings` are the defaults (only such a run is written to kv.json, the file docs quote). */
export function isDefaultRun(settings: KvSettings): boolean {
  return JSON.stringify(settings) === JSON.stringify(KV_DEFAULTS);
}

/** How one system's part went: measured, skipped (etcd not installable), or failed (and why). */
export type SystemOutcome =
  | { readonly status: "measured"; readonly version?: string }
  | { readonly status: "skipped"; readonly reason: string }
  | { readonly status: "failed"; readonly reason: string };

export interface KvReport {
  readonly description: string;
  readonly settings: KvSettings;
  /** The filesystem type the data directories were on (`stat -f`): fsync means little on tmpfs. */
  readonly dataFilesystem: string;
  readonly etcdVersion: string | null;
  readonly systems: Readonly<Partial<Record<KvSystem, SystemOutcome>>>;
  readonly runs: readonly LoadResult[];
}

/** A running cluster of either system. */
interface Cluster {
  readonly target: KvTarget;
  stop(): Promise<void>;
}

function filesystemOf(path: string): string {
  try {
    return execFileSync("stat", ["-f", "-c", "%T", path], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const fixed = (value: number | null, digits: number) => (value === null ? "-" : value.toFixed(digits));

/** The runs as a text table, one line a run. */
export function formatKvTable(runs: readonly LoadResult[]): string {
  const header = ["system", "op", "clients", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "gen cpu%"];
  const rows = runs.map((run) => [
    run.system,
    run.op,
    String(run.clients),
    String(run.opsPerSecond),
    fixed(run.p50Ms, 2),
    fixed(run.p99Ms, 2),
    fixed(run.p999Ms, 2),
    String(run.errors),
    String(run.generatorCpuPercent),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) =>
        column < 2 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

/**
 * Measures each system in `settings.systems` in turn: starts its cluster, puts every key once, then
 * runs the generator for every op and client count, and stops the cluster. A system that cannot
 * start is reported (`failed`, or `skipped` for an etcd that cannot be installed) and the others
 * still run. SIGINT or SIGTERM stops the cluster that runs, then exits.
 *
 * @example
 * const report = await runKvBenchmark(kvSettingsFromEnv());
 * console.log(formatKvTable(report.runs));
 */
export async function runKvBenchmark(
  settings: KvSettings,
  log: (line: string) => void = console.log,
): Promise<KvReport> {
  const systems: Partial<Record<KvSystem, SystemOutcome>> = {};
  const runs: LoadResult[] = [];
  let etcdVersion: string | null = null;
  let running: Cluster | null = null;
  const interrupted = (signal: NodeJS.Signals) => {
    log(`kv: ${signal}: stopping the cluster that runs`);
    void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    for (const system of settings.systems) {
      let cluster: Cluster;
      if (system === "etcd") {
        const etcd = await ensureEtcd(log);
        if (!etcd.ok) {
          systems.etcd = { status: "skipped", reason: etcd.reason };
          log(`kv: etcd skipped: ${etcd.reason}`);
          continue;
        }
        etcdVersion = etcd.version;
        log(`kv: etcd ${etcd.version}${etcd.installed ? " (installed now)" : ""}: starting 3 members`);
        try {
          const started = await startEtcdCluster(settings.nodes);
          cluster = { target: etcdTarget(started.urls), stop: started.stop };
        } catch (error) {
          systems.etcd = { status: "failed", reason: `etcd did not start: ${messageOf(error)}` };
          log(`kv: etcd FAILED to start: ${messageOf(error)}`);
          continue;
        }
      } else {
        log(`kv: paxos: starting ${settings.nodes} nodes`);
        try {
          const started = await startPaxosCluster(settings.nodes);
          cluster = { target: paxosTarget(started.urls), stop: started.stop };
        } catch (error) {
          systems.paxos = { status: "failed", reason: `paxos did not start: ${messageOf(error)}` };
          log(`kv: paxos FAILED to start: ${messageOf(error)}`);
          continue;
        }
      }
      running = cluster;
      try {
        const filled = await fillKeys(cluster.target, {
          keys: settings.keys,
          valueBytes: settings.valueBytes,
        });
        if (filled.failed > 0) {
          const reason = `${filled.failed} of ${settings.keys} puts failed while filling the keys; the first: ${filled.firstFailure}`;
          systems[system] = { status: "failed", reason };
          log(`kv: ${system} FAILED: ${reason}`);
          continue;
        }
        for (const op of settings.ops) {
          for (const clients of settings.clients) {
            const run = await runLoad({
              target: cluster.target,
              op,
              clients,
              warmupMs: settings.warmupSeconds * 1000,
              durationMs: settings.seconds * 1000,
              keys: settings.keys,
              valueBytes: settings.valueBytes,
            });
            runs.push(run);
            log(
              `kv: ${system} ${op} x ${clients}: ${run.opsPerSecond} ops/s, p50 ${fixed(run.p50Ms, 2)} ms, p99 ${fixed(run.p99Ms, 2)} ms, p99.9 ${fixed(run.p999Ms, 2)} ms, ${run.errors} errors`,
            );
            if (run.errors > 0) log(`kv:   first errors: ${run.errorSamples.join(" | ")}`);
          }
        }
        systems[system] =
          system === "etcd" && etcdVersion !== null
            ? { status: "measured", version: etcdVersion }
            : { status: "measured" };
      } finally {
        running = null;
        await cluster.stop();
      }
    }
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
  return {
    description:
      "One closed-loop HTTP load generator (this process, node:http keep-alive, one agent per node) against a 3-node paxos cluster (paxos node --data --http, UDP between nodes) and a 3-member etcd cluster (v3 JSON gateway), one system after the other on loopback, each with its state durable on disk (fsync before it answers a put). For each op and client count: every key put once beforehand; clients spread round-robin over the nodes, each with one request in flight, keys uniform over `settings.keys`, values of `settings.valueBytes` printable bytes; `warmupSeconds` of load, then `seconds` measured. ops/s = answers (2xx, or 404 for a get) that arrived in the measured window / its length; latencies from request to the answer's last byte (process.hrtime.bigint), percentiles within 0.4% (a log-linear histogram). errors: other statuses, connection errors and timeouts in the window (a client waits 10 ms after one). generatorCpuPercent: the generator's own CPU time over the run, as a share of one core. Gets are linearizable on both (etcd's default range; paxos's GET).",
    settings,
    dataFilesystem: filesystemOf(tmpdir()),
    etcdVersion,
    systems,
    runs,
  };
}
