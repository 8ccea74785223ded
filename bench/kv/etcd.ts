/**
 * The etcd side of the `kv` benchmark: etcd found (or installed from Debian's `etcd-server` package),
 * a 3-member cluster on 127.0.0.1 with its data in a temporary folder, and the `KvTarget` that drives
 * it through etcd's v3 JSON gateway.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPorts, type StartedProcess, startProcess } from "#test-support";
import { awaitHealthy, tail } from "./health.js";
import type { KvTarget } from "./load.js";

/** etcd is there (`version`: what `etcd --version` says), or the reason it is not. */
export type EtcdAvailability =
  | { readonly ok: true; readonly version: string; readonly installed: boolean }
  | { readonly ok: false; readonly reason: string };

/** The Debian package that holds the `etcd` server (3.4 on Debian 12). */
export const ETCD_PACKAGE = "etcd-server";
/** Most time for `apt-get update` and `apt-get install` together. */
const INSTALL_TIMEOUT_MS = 10 * 60_000;

function hasEtcd(): boolean {
  return spawnSync("sh", ["-c", "command -v etcd"], { encoding: "utf8" }).status === 0;
}

/** What `etcd --version` prints first ("etcd Version: 3.4.23" gives "3.4.23"). */
function etcdVersion(): string {
  const run = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  const match = /etcd Version:\s*(\S+)/.exec(`${run.stdout}${run.stderr}`);
  return match?.[1] ?? "unknown";
}

/** Runs `command args` to the end (apt-get's output collected, not shown); null, or why it failed. */
async function runQuietly(command: string, args: readonly string[]): Promise<string | null> {
  const run = startProcess(command, args, { env: { DEBIAN_FRONTEND: "noninteractive" } });
  const exit = await run.finish(INSTALL_TIMEOUT_MS);
  if (exit.code === 0) return null;
  const how = exit.code === null ? `ended by ${exit.signal ?? "a failed start"}` : `exited ${exit.code}`;
  return `\`${command} ${args.join(" ")}\` ${how}: ${tail(`${run.stdout}\n${run.stderr}`)}`;
}

let availability: Promise<EtcdAvailability> | null = null;

/**
 * Finds `etcd` on the PATH; if it is not there, installs Debian's `etcd-server` with apt-get (once
 * per process, as root, non-interactively). Resolves with why not, rather than throwing, so the
 * benchmark can skip etcd and say why.
 */
export function ensureEtcd(log: (line: string) => void = console.log): Promise<EtcdAvailability> {
  availability ??= (async (): Promise<EtcdAvailability> => {
    if (hasEtcd()) return { ok: true, version: etcdVersion(), installed: false };
    if (spawnSync("sh", ["-c", "command -v apt-get"]).status !== 0)
      return {
        ok: false,
        reason: `etcd is not installed and there is no apt-get to install ${ETCD_PACKAGE}`,
      };
    if (process.getuid?.() !== 0)
      return {
        ok: false,
        reason: `etcd is not installed, and installing ${ETCD_PACKAGE} with apt-get needs root (run: sudo apt-get install ${ETCD_PACKAGE})`,
      };
    log(`kv: etcd is not installed: installing Debian's ${ETCD_PACKAGE} with apt-get`);
    const failure =
      (await runQuietly("apt-get", ["update"])) ??
      (await runQuietly("apt-get", ["install", "-y", "--no-install-recommends", ETCD_PACKAGE]));
    if (failure !== null) return { ok: false, reason: `could not install ${ETCD_PACKAGE}: ${failure}` };
    if (!hasEtcd())
      return { ok: false, reason: `${ETCD_PACKAGE} installed, but there is still no etcd command` };
    return { ok: true, version: etcdVersion(), installed: true };
  })();
  return availability;
}

/** A running etcd cluster this code started. */
export interface EtcdCluster {
  /** Each member's client URL (`http://127.0.0.1:PORT`). */
  readonly urls: readonly string[];
  /** The folder that holds every member's data directory. */
  readonly dir: string;
  /** Stops the members it started (by pid: SIGTERM, then SIGKILL) and removes `dir`. */
  stop(): Promise<void>;
}

/**
 * Starts `count` etcd members on 127.0.0.1 (distinct client and peer ports, a fresh cluster token),
 * each with its data directory in a new temporary folder, and waits until every member answers
 * `/health`. etcd's defaults are kept: it fsyncs its write-ahead log before it answers a put, and a
 * range (get) is linearizable. Throws, having stopped what it started, if a member exits or the
 * cluster is not healthy within a minute.
 *
 * @example
 * const etcd = await startEtcdCluster(3);
 * try { ... etcdTarget(etcd.urls) ... } finally { await etcd.stop(); }
 */
export async function startEtcdCluster(count: number): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), "paxos-bench-etcd-"));
  const ports = await freeTcpPorts(2 * count);
  const members = Array.from({ length: count }, (_, index) => ({
    name: `member-${index + 1}`,
    clientUrl: `http://127.0.0.1:${ports[2 * index]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * index + 1]}`,
    dataDir: join(dir, `member-${index + 1}`),
  }));
  const initialCluster = members.map((member) => `${member.name}=${member.peerUrl}`).join(",");
  const token = `paxos-bench-${process.pid}-${Date.now()}`;
  const processes: StartedProcess[] = [];
  const stop = async () => {
    await Promise.all(processes.map((proc) => proc.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const member of members) {
      mkdirSync(member.dataDir, { mode: 0o700 });
      processes.push(
        startProcess(
          "etcd",
          [
            `--name=${member.name}`,
            `--data-dir=${member.dataDir}`,
            `--listen-client-urls=${member.clientUrl}`,
            `--advertise-client-urls=${member.clientUrl}`,
            `--listen-peer-urls=${member.peerUrl}`,
            `--initial-advertise-peer-urls=${member.peerUrl}`,
            `--initial-cluster=${initialCluster}`,
            "--initial-cluster-state=new",
            `--initial-cluster-token=${token}`,
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
          ],
          // The cluster's own ETCD_* settings from the environment would override the flags above.
          { name: `etcd ${member.name}`, stdout: "ignore", stderr: "collect", env: cleanEtcdEnv() },
        ),
      );
    }
    await awaitHealthy(
      members.map((member) => member.clientUrl),
      processes,
      "every etcd member to answer /health",
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { urls: members.map((member) => member.clientUrl), dir, stop };
}

/** `process.env`'s ETCD_* variables, unset (etcd reads them as flags). */
function cleanEtcdEnv(): Record<string, undefined> {
  return Object.fromEntries(
    Object.keys(process.env)
      .filter((name) => name.startsWith("ETCD_"))
      .map((name) => [name, undefined]),
  );
}

const base64 = (text: string | Buffer) => Buffer.from(text).toString("base64");

/**
 * etcd through its v3 JSON gateway (etcd 3.4: `/v3/kv/put`, `/v3/kv/range`; keys and values in
 * base64). The range keeps etcd's default, a linearizable read (it goes through a read index).
 */
export function etcdTarget(urls: readonly string[]): KvTarget {
  return {
    name: "etcd",
    urls,
    put: (key, value) => ({
      method: "POST",
      path: "/v3/kv/put",
      body: Buffer.from(JSON.stringify({ key: base64(key), value: base64(value) })),
      contentType: "application/json",
    }),
    get: (key) => ({
      method: "POST",
      path: "/v3/kv/range",
      body: Buffer.from(JSON.stringify({ key: base64(key) })),
      contentType: "application/json",
    }),
  };
}
