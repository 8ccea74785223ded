import type { Message } from "../core/index.js";
import { NodeReporter } from "../dashboard/index.js";
import { LOG_MESSAGES, type Logger } from "../observe/index.js";
import {
  type AppCommand,
  type AppResult,
  KvLockApp,
  PaxosError,
  type PaxosNode,
  startHttpApi,
  startNode,
} from "../rsm/index.js";
import type { ClusterConfig, ClusterKeys } from "../runtime/index.js";
import type { TcpTlsOptions } from "../transport/index.js";
import { StartError, UsageError } from "./errors.js";
// (A cycle with node.ts, which calls runKvNode: the constant is read only when the node runs.)
import { NODE_REJOINED_MESSAGE } from "./node.js";

/** Most ms a stop may take after SIGTERM or SIGINT (HTTP grace, then the node) before exiting anyway. */
const STOP_MS_MAX = 3000;

/** How often the process checks that its node still runs (it stops itself on a fatal error). */
const ALIVE_CHECK_MS = 250;

/** What `paxos node --http` runs with (parsed and checked by `nodeCommand`). */
export interface KvNodeOptions {
  readonly cluster: ClusterConfig;
  readonly id: number;
  readonly http: { readonly host: string; readonly port: number };
  readonly dataDir: string | undefined;
  readonly isNew: boolean;
  readonly keys: ClusterKeys;
  readonly tls: TcpTlsOptions | undefined;
  readonly seed: number | undefined;
  readonly logger: Logger;
  /** `--rejoin`: the state was lost; start empty in the data directory and rejoin as a learner. */
  readonly rejoin: boolean;
  /** `--debug`: every message sent and received. */
  readonly onTrace?: (direction: "in" | "out", message: Message, peer: string, bytes: number) => void;
}

/** `HOST:PORT` of `--http` (port 0: any free port); a usage error otherwise. */
export function parseHttpAddress(text: string, what: string): { host: string; port: number } {
  const match = /^([^\s:]+):(\d{1,5})$/.exec(text);
  if (match === null || Number(match[2]) > 65535)
    throw new UsageError(`${what} wants HOST:PORT, got "${text}"`);
  return { host: match[1] as string, port: Number(match[2]) };
}

/**
 * `paxos node --http`: a node of the replicated key-value store and lock service (`startNode` with
 * `KvLockApp`) and its HTTP API. Logs `started` with the HTTP address; SIGTERM or SIGINT closes the
 * API, then stops the node; resolves with the exit status.
 */
export async function runKvNode(options: KvNodeOptions): Promise<number> {
  const { cluster, id, logger } = options;
  const self = cluster.nodes.find((node) => node.id === id);
  let node: PaxosNode<AppCommand, AppResult, KvLockApp>;
  // Started by `paxos cluster` with an IPC channel: report to the dashboard, take its controls, and
  // exit when the parent goes (see the end of this function).
  const reporter =
    process.send === undefined
      ? null
      : new NodeReporter(id, cluster, (message) => {
          if (process.connected) process.send?.(message);
        });
  // Listening from the start: the parent's first message (start reporting) comes right away.
  if (reporter !== null) process.on("message", (message) => reporter.control(message));
  const debugTrace = options.onTrace;
  const onTrace =
    reporter === null
      ? debugTrace
      : debugTrace === undefined
        ? reporter.onTrace
        : (direction: "in" | "out", message: Message, peer: string, bytes: number) => {
            debugTrace(direction, message, peer, bytes);
            reporter.onTrace(direction, message, peer);
          };
  /** Set when the node stopped on a fatal error (the process then exits 70). */
  let fatal = false;
  try {
    node = await startNode<AppCommand, AppResult, KvLockApp>({
      cluster,
      id,
      app: new KvLockApp(),
      isNew: options.isNew,
      keys: options.keys,
      logger,
      ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      rejoin: options.rejoin,
      // The process's CPU, memory and event-loop lag beside the node's metrics on /metrics.
      processMetrics: true,
      ...(onTrace !== undefined ? { onTrace } : {}),
      ...(reporter !== null ? { dropFrame: reporter.dropFrame } : {}),
      onFatal: (error) => {
        process.stderr.write(`FATAL node ${id}: ${error.message}\n`);
        fatal = true;
      },
      onSnapshot: (snapshot, how) =>
        logger.info(
          { slot: snapshot.slot, how },
          how === "taken" ? LOG_MESSAGES.snapshotTaken : LOG_MESSAGES.snapshotInstalled,
        ),
    });
  } catch (error) {
    // The data directory's problems (in use, not a directory, damaged past use) are StartErrors,
    // as for the digest node; a socket that cannot be bound is a usage error.
    if (error instanceof PaxosError) throw new StartError(error.message);
    throw new UsageError(
      `cannot start node ${id} on ${self?.host}:${self?.port}: ${(error as Error).message}`,
    );
  }
  let http: Awaited<ReturnType<typeof startHttpApi>>;
  try {
    http = await startHttpApi(node, { cluster, host: options.http.host, port: options.http.port, logger });
  } catch (error) {
    await node.stop();
    throw new UsageError(
      `cannot serve HTTP on ${options.http.host}:${options.http.port}: ${(error as Error).message}`,
    );
  }
  const httpAddress = `${http.address.host}:${http.address.port}`;
  node.on("leader", (leader) =>
    logger.info({ leader, ballot: node.status().ballot }, LOG_MESSAGES.leaderChanged),
  );
  // A rejoining node says once when it votes again (operators and tests wait for it).
  if (node.status().rejoining) {
    const rejoined = () => {
      if (node.status().rejoining) return;
      node.off("applied", rejoined);
      logger.info({}, NODE_REJOINED_MESSAGE);
    };
    node.on("applied", rejoined);
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) process.exit(130);
      stopping = true;
      clearInterval(alive);
      reporter?.stop();
      logger.info({ signal, status: node.status() }, LOG_MESSAGES.stopping);
      setTimeout(() => process.exit(0), STOP_MS_MAX).unref();
      void http
        .close()
        .then(() => node.stop())
        .then(() => resolve(0));
    };
    // startNode stops the node on a fatal error (a broken invariant, a failed write): the process
    // must not serve on without it.
    const alive = setInterval(() => {
      if (stopping || (!fatal && node.status().mode !== "stopped")) return;
      stopping = true;
      clearInterval(alive);
      logger.fatal({}, "fatal: the node stopped; stopping the process");
      process.stderr.write(`FATAL node ${id} stopped on a fatal error (see the log above)\n`);
      void http.close().finally(() => process.exit(70));
    }, ALIVE_CHECK_MS);
    alive.unref();
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    if (reporter !== null) {
      reporter.attach(node);
      // The parent went (exited, or was SIGKILLed): stop too, rather than hold the ports. (It may
      // have gone while the node was starting, before this listener.)
      if (!process.connected) stop("disconnect");
      else
        process.once("disconnect", () => {
          if (!stopping) stop("disconnect");
        });
    }
    logger.info(
      {
        endpoint: self === undefined ? null : `${self.host}:${self.port}`,
        transport: cluster.transport,
        http: httpAddress,
        data: options.dataDir ?? null,
        app: "kv-lock",
      },
      LOG_MESSAGES.started,
    );
  });
}
