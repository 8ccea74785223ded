/**
 * A closed-loop HTTP load generator for key-value stores: N clients, each sending one request,
 * awaiting its answer, recording the latency, and sending the next, for a fixed time after a warm-up.
 * One generator drives every system under test through a `KvTarget`, which says how to put and get a
 * key over HTTP; the generator owns the connections, the timing and the counting.
 */
import { Agent, request as httpRequest } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { LatencyHistogram } from "./histogram.js";

/** The operations measured. */
export type KvOp = "put" | "get";

/** One HTTP request a target sends for an operation. */
export interface KvRequest {
  readonly method: "GET" | "PUT" | "POST";
  /** Path and query, e.g. `/kv/user%2F1`. */
  readonly path: string;
  readonly body: Buffer | null;
  readonly contentType?: string;
}

/**
 * A system under test as the generator sees it: its nodes, and the request that puts or gets a key.
 * An answer counts as done when its status is 2xx, or 404 for a get (a key not there: counted apart,
 * as `notFound`); any other status, a connection error or a timeout is an error.
 *
 * @example
 * const target: KvTarget = {
 *   name: "paxos",
 *   urls: ["http://127.0.0.1:8101"],
 *   put: (key, value) => ({ method: "PUT", path: `/kv/${encodeURIComponent(key)}`, body: value }),
 *   get: (key) => ({ method: "GET", path: `/kv/${encodeURIComponent(key)}`, body: null }),
 * };
 */
export interface KvTarget {
  readonly name: string;
  /** Each node's base URL (`http://127.0.0.1:2379`); client i talks to node i mod the count. */
  readonly urls: readonly string[];
  put(key: string, value: Buffer): KvRequest;
  get(key: string): KvRequest;
}

/** Keys the clients pick from, uniformly at random (`key-0000` ...). */
export const KEYS_DEFAULT = 1000;
/** Bytes of every value put (printable ASCII, so a server that reads bodies as text sees them whole). */
export const VALUE_BYTES_DEFAULT = 100;
/** A request not answered within this long is an error (and its connection dropped). */
export const REQUEST_TIMEOUT_MS_DEFAULT = 10_000;
/**
 * A client that got an error waits this long before its next request, so a node that refuses
 * connections (or answers 503 at once) is not hammered in a tight loop that would count thousands of
 * errors a second and starve the other clients of the generator's CPU.
 */
export const ERROR_BACKOFF_MS = 10;
/** Error answers kept, as text, to say what went wrong. */
const ERROR_SAMPLES_MAX = 5;
/** Bytes of an error answer's body kept in its sample. */
const ERROR_BODY_BYTES_MAX = 200;
/** Distinct values the clients cycle through (made once, so making values costs nothing per request). */
const VALUE_POOL_SIZE = 64;

export interface LoadOptions {
  readonly target: KvTarget;
  readonly op: KvOp;
  /** Closed-loop clients (each with one request in flight at a time). */
  readonly clients: number;
  /** Time spent sending before measuring starts. */
  readonly warmupMs: number;
  /** Time measured. */
  readonly durationMs: number;
  readonly keys?: number;
  readonly valueBytes?: number;
  readonly requestTimeoutMs?: number;
}

/** What one run measured: operations completed within the measured time, and their latencies. */
export interface LoadResult {
  readonly system: string;
  readonly op: KvOp;
  readonly clients: number;
  /** Length of the measured window. */
  readonly seconds: number;
  /** Operations answered 2xx (or 404 for a get) within the window. */
  readonly ops: number;
  readonly opsPerSecond: number;
  /** Latency percentiles of those operations, in ms (null when there were none). */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly p999Ms: number | null;
  readonly meanMs: number | null;
  readonly maxMs: number | null;
  /** Gets answered 404 within the window (included in `ops`). */
  readonly notFound: number;
  /** Requests that failed within the window: another status, a connection error, a timeout. */
  readonly errors: number;
  /** The first few failures of the whole run (warm-up included), as text. */
  readonly errorSamples: readonly string[];
  /**
   * The generator's own CPU time over the run, as a percentage of one core: near 100 means the
   * generator, not the system, may be what limits the figure.
   */
  readonly generatorCpuPercent: number;
}

/** The name of key number `index` (fixed width, so every key has the same size). */
export function keyName(index: number): string {
  return `key-${String(index).padStart(4, "0")}`;
}

/** `count` distinct printable values of `bytes` bytes. */
export function makeValues(count: number, bytes: number): Buffer[] {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return Array.from({ length: count }, () =>
    Buffer.from(
      Array.from({ length: bytes }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join(""),
      "ascii",
    ),
  );
}

/** How one request ended. */
type Outcome = { readonly kind: "ok" | "not-found" } | { readonly kind: "error"; readonly detail: string };

/** Sends `request` to `base` through `agent` and reads the whole answer. Never rejects. */
function send(agent: Agent, base: URL, request: KvRequest, op: KvOp, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const headers: Record<string, string | number> = {};
    if (request.body !== null) {
      headers["content-length"] = request.body.length;
      headers["content-type"] = request.contentType ?? "application/octet-stream";
    }
    const outgoing = httpRequest(
      {
        agent,
        hostname: base.hostname,
        port: base.port,
        method: request.method,
        path: request.path,
        headers,
      },
      (response) => {
        const status = response.statusCode ?? 0;
        const ok = (status >= 200 && status < 300) || (op === "get" && status === 404);
        const kept: Buffer[] = [];
        let keptBytes = 0;
        response.on("data", (chunk: Buffer) => {
          if (!ok && keptBytes < ERROR_BODY_BYTES_MAX) {
            kept.push(chunk);
            keptBytes += chunk.length;
          }
        });
        response.on("end", () => {
          if (ok) finish({ kind: status === 404 ? "not-found" : "ok" });
          else {
            const body = Buffer.concat(kept).subarray(0, ERROR_BODY_BYTES_MAX).toString("utf8").trim();
            finish({ kind: "error", detail: `${request.method} ${request.path}: ${status} ${body}` });
          }
        });
        response.on("error", (error) =>
          finish({ kind: "error", detail: `${request.method} ${request.path}: ${error.message}` }),
        );
      },
    );
    outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    outgoing.on("error", (error) =>
      finish({ kind: "error", detail: `${request.method} ${request.path}: ${error.message}` }),
    );
    outgoing.end(request.body ?? undefined);
  });
}

/** Keep-alive agents, one per node, each with a socket for every client that talks to that node. */
function agentsFor(urls: readonly string[], clients: number): Agent[] {
  return urls.map((_, node) => {
    const clientsOfNode = Math.max(1, Math.ceil((clients - node) / urls.length));
    return new Agent({ keepAlive: true, maxSockets: clientsOfNode, maxFreeSockets: clientsOfNode });
  });
}

function toMs(ns: number | null): number | null {
  return ns === null ? null : Number((ns / 1e6).toFixed(3));
}

/**
 * Runs `clients` closed-loop clients against `target` for `warmupMs + durationMs`, client i on node
 * i mod the node count, each picking a key uniformly at random; counts what completes in the last
 * `durationMs`. Requests still in flight at the end are awaited, not counted.
 *
 * @example
 * const result = await runLoad({ target, op: "put", clients: 16, warmupMs: 1000, durationMs: 5000 });
 * console.log(result.opsPerSecond, result.p99Ms);
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { target, op, clients } = options;
  if (!Number.isInteger(clients) || clients < 1) throw new RangeError(`clients ${clients} is not 1 or more`);
  if (target.urls.length === 0) throw new RangeError(`${target.name}: no node to send to`);
  const keyCount = options.keys ?? KEYS_DEFAULT;
  const keys = Array.from({ length: keyCount }, (_, index) => keyName(index));
  const values = makeValues(VALUE_POOL_SIZE, options.valueBytes ?? VALUE_BYTES_DEFAULT);
  const timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
  const bases = target.urls.map((url) => new URL(url));
  const agents = agentsFor(target.urls, clients);

  const latencies = new LatencyHistogram();
  let notFound = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const now = () => process.hrtime.bigint();
  const started = now();
  const measureFrom = started + BigInt(Math.round(options.warmupMs * 1e6));
  const measureUntil = measureFrom + BigInt(Math.round(options.durationMs * 1e6));
  const cpuBefore = process.cpuUsage();

  const client = async (index: number) => {
    const node = index % bases.length;
    const agent = agents[node] as Agent;
    const base = bases[node] as URL;
    let valueIndex = index;
    while (now() < measureUntil) {
      const key = keys[Math.floor(Math.random() * keyCount)] as string;
      const request =
        op === "put" ? target.put(key, values[valueIndex++ % VALUE_POOL_SIZE] as Buffer) : target.get(key);
      const sent = now();
      const outcome = await send(agent, base, request, op, timeoutMs);
      const answered = now();
      const measured = answered >= measureFrom && answered < measureUntil;
      if (outcome.kind === "error") {
        if (measured) errors++;
        if (errorSamples.length < ERROR_SAMPLES_MAX) errorSamples.push(outcome.detail);
        await sleep(ERROR_BACKOFF_MS);
        continue;
      }
      if (!measured) continue;
      if (outcome.kind === "not-found") notFound++;
      latencies.record(Number(answered - sent));
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));
  } finally {
    for (const agent of agents) agent.destroy();
  }
  const cpu = process.cpuUsage(cpuBefore);
  const wallUs = Number(now() - started) / 1000;
  const seconds = options.durationMs / 1000;
  return {
    system: target.name,
    op,
    clients,
    seconds,
    ops: latencies.count,
    opsPerSecond: Math.round(latencies.count / seconds),
    p50Ms: toMs(latencies.percentileNs(0.5)),
    p99Ms: toMs(latencies.percentileNs(0.99)),
    p999Ms: toMs(latencies.percentileNs(0.999)),
    meanMs: toMs(latencies.meanNs()),
    maxMs: toMs(latencies.count === 0 ? null : latencies.maxNs),
    notFound,
    errors,
    errorSamples,
    generatorCpuPercent: Math.round(((cpu.user + cpu.system) / wallUs) * 100),
  };
}

/**
 * A put that fails while filling the keys is tried again after `FILL_RETRY_MS`, this many times in
 * all: a cluster that says it is healthy may still be electing its leader (or answering 503 while
 * a follower learns who leads), and a benchmark should not give up on its first second.
 */
const FILL_ATTEMPTS_MAX = 50;
const FILL_RETRY_MS = 100;

/**
 * Puts every key once (`concurrency` requests at a time, spread over the nodes), so gets find them,
 * retrying a failed put (see `FILL_ATTEMPTS_MAX`). Resolves with the puts that still failed and the
 * first failure's text.
 */
export async function fillKeys(
  target: KvTarget,
  options: {
    keys?: number;
    valueBytes?: number;
    concurrency?: number;
    requestTimeoutMs?: number;
    attemptsMax?: number;
  } = {},
): Promise<{ failed: number; firstFailure: string | null }> {
  const keyCount = options.keys ?? KEYS_DEFAULT;
  const concurrency = Math.min(keyCount, options.concurrency ?? 16);
  const values = makeValues(VALUE_POOL_SIZE, options.valueBytes ?? VALUE_BYTES_DEFAULT);
  const bases = target.urls.map((url) => new URL(url));
  const agents = agentsFor(target.urls, concurrency);
  let next = 0;
  let failed = 0;
  let firstFailure: string | null = null;
  const worker = async (index: number) => {
    const node = index % bases.length;
    for (let key = next++; key < keyCount; key = next++) {
      const request = target.put(keyName(key), values[key % VALUE_POOL_SIZE] as Buffer);
      for (let attempt = 1; ; attempt++) {
        const outcome = await send(
          agents[node] as Agent,
          bases[node] as URL,
          request,
          "put",
          options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT,
        );
        if (outcome.kind !== "error") break;
        firstFailure ??= outcome.detail;
        if (attempt >= (options.attemptsMax ?? FILL_ATTEMPTS_MAX)) {
          failed++;
          break;
        }
        await sleep(FILL_RETRY_MS);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)));
  } finally {
    for (const agent of agents) agent.destroy();
  }
  return { failed, firstFailure };
}
