/**
 * The paxos side of the `kv` benchmark: a cluster of `paxos node --data ... --http` processes on
 * 127.0.0.1 and the `KvTarget` for its HTTP API (`PUT /kv/<key>` with the raw value, `GET /kv/<key>`
 * answering the raw value or 404; any node takes any request; a get is linearizable).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPorts, freeUdpPorts, type StartedProcess, startPaxos } from "#test-support";
import { awaitHealthy } from "./health.js";
import type { KvTarget } from "./load.js";

/** A running paxos cluster this code started. */
export interface PaxosCluster {
  /** Each node's HTTP API (`http://127.0.0.1:PORT`). */
  readonly urls: string[];
  /** Stops the nodes it started (by pid: SIGTERM, then SIGKILL) and removes their data. */
  stop(): Promise<void>;
}

/**
 * Starts `count` paxos nodes on 127.0.0.1 from a cluster file it writes (each node with its UDP
 * port and its `"http"` address), each with `--data` (write-ahead log, fsync before promises and
 * votes leave) in a new temporary folder and `--new`, and waits until one node answers
 * `GET /health` with 200. Throws, having stopped what it started, if a node exits first (the
 * error quotes its stderr) or none is healthy within a minute.
 *
 * @example
 * const paxos = await startPaxosCluster(3);
 * try { ... paxosTarget(paxos.urls) ... } finally { await paxos.stop(); }
 */
export async function startPaxosCluster(count: number): Promise<PaxosCluster> {
  const dir = mkdtempSync(join(tmpdir(), "paxos-bench-kv-"));
  const nodePorts = await freeUdpPorts(count);
  const httpPorts = await freeTcpPorts(count);
  const nodes = Array.from({ length: count }, (_, index) => ({
    id: index + 1,
    host: "127.0.0.1",
    port: nodePorts[index] as number,
    http: `127.0.0.1:${httpPorts[index]}`,
  }));
  const configPath = join(dir, "cluster.json");
  writeFileSync(configPath, `${JSON.stringify({ nodes }, null, 2)}\n`);
  const processes: StartedProcess[] = [];
  const stop = async () => {
    await Promise.all(processes.map((proc) => proc.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  const urls = nodes.map((node) => `http://${node.http}`);
  try {
    for (const node of nodes) {
      processes.push(
        startPaxos(
          [
            "node",
            "--config",
            configPath,
            "--id",
            String(node.id),
            "--data",
            join(dir, `node-${node.id}`),
            "--new",
            "--http",
            node.http,
            "--quiet",
          ],
          { name: `paxos node ${node.id}`, stdout: "ignore", stderr: "collect", logLevel: "warn" },
        ),
      );
    }
    await awaitHealthy(urls, processes, "a paxos node to answer /health", 1);
  } catch (error) {
    await stop();
    throw error;
  }
  return { urls, stop };
}

/** The paxos HTTP API: `PUT /kv/<url-encoded key>` with the raw value; `GET /kv/<key>`. */
export function paxosTarget(urls: readonly string[]): KvTarget {
  return {
    name: "paxos",
    urls,
    put: (key, value) => ({
      method: "PUT",
      path: `/kv/${encodeURIComponent(key)}`,
      body: value,
      contentType: "application/octet-stream",
    }),
    get: (key) => ({ method: "GET", path: `/kv/${encodeURIComponent(key)}`, body: null }),
  };
}
