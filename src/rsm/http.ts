import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { formatBallot } from "../core/index.js";
import type { Logger, NodeMetrics } from "../observe/index.js";
import type { ClusterConfig } from "../runtime/index.js";
import {
  HTTP_STATUS_OF,
  type NodeStatus,
  PaxosError,
  type PaxosNodeApi,
  type ProposeOptions,
} from "./api.js";
import type { KvChange, KvEntry, KvResult } from "./kv.js";
import type { AppCommand, AppResult, KvLockApp } from "./kv-lock-app.js";
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from "./limits.js";
import type { LockGrant, LockResult } from "./lock.js";
import { PaxosNode } from "./node.js";

/**
 * The HTTP API every node serves (docs/applications.md, "The HTTP API"): the key-value store, its
 * watches, the lock service and client sessions, over node:http. Writes are proposed on whichever
 * node gets them (a follower hands them to the leader) and answered once applied; reads are
 * linearizable (read index on the leader), and a follower forwards a read to the leader's HTTP
 * address itself, so a client never follows a redirect. Every bound is in `HttpLimits`.
 */

/** The headers of the API (lower case, as node:http gives them). */
export const HTTP_HEADERS = Object.freeze({
  /** Request: the client session a command runs in. Response: the session a lock request used. */
  session: "paxos-session",
  /** Request: the command's number in its session (writes; exactly once across retries). */
  seq: "paxos-seq",
  /**
   * Response of `GET /kv/<key>`: the revision that last changed the key. Of `GET /watch/...`: the
   * first revision the stream can carry (it starts there).
   */
  revision: "paxos-revision",
  /** Response of `GET /kv/<key>`: the revision that created the key. */
  createRevision: "paxos-create-revision",
  /** Request: set by a node that forwards a read to the leader (never forwarded again). */
  forwarded: "paxos-forwarded",
  /** Response: the id of the node whose answer this is (the leader's, for a forwarded read). */
  node: "paxos-node",
});

/** What `startHttpApi` needs besides the node. */
export interface HttpApiOptions {
  /**
   * The cluster file's value: a follower forwards reads to the leader's `"http"` address in it.
   * Without one for the leader, a read on a follower is answered 503 `not-leader`.
   */
  readonly cluster: ClusterConfig;
  /** Where to listen. Default: this node's `"http"` host in the cluster file, else 127.0.0.1. */
  readonly host?: string;
  /** Default: this node's `"http"` port in the cluster file, else a free port (0). */
  readonly port?: number;
  /** Bounds and timeouts (defaults: `DEFAULT_HTTP_LIMITS`). */
  readonly limits?: Partial<HttpLimits>;
  /** Where to log (pino). Default: silent. */
  readonly logger?: Logger;
  /**
   * The node's metrics, served on `GET /metrics` (Prometheus text) and fed with every request's
   * route, status and duration. Default: the node's own (`PaxosNode.metrics`, which `startNode`
   * builds); a node without metrics answers `/metrics` 404.
   */
  readonly metrics?: NodeMetrics | null;
  /** When `/health` says a node is not in good standing (defaults: `DEFAULT_HEALTH_LIMITS`). */
  readonly health?: Partial<HealthLimits>;
}

/** The bounds of `/health` (docs/operations.md, "Health"). */
export interface HealthLimits {
  /**
   * Most slots a node may be behind the highest slot it knows decided and still be in good
   * standing: past it the node is catching up (`lagging`).
   */
  readonly lagSlotsMax: number;
  /** Longest a write-ahead log sync may run before the storage counts as stalled (`storage-stalled`). */
  readonly syncStalledMs: number;
}

/**
 * 1,000 slots is a second or two of full-speed work on loopback: a follower that keeps up stays
 * within a few windows (64 slots each) of the leader. A sync normally takes milliseconds; 5 s means
 * a disk in trouble.
 */
export const DEFAULT_HEALTH_LIMITS: HealthLimits = Object.freeze({ lagSlotsMax: 1000, syncStalledMs: 5000 });

/** What `/health` knows of a node's storage (from its metrics' sample; null: unknown). */
export interface StorageStanding {
  readonly storageFailed: boolean;
  /** How long the write-ahead log's sync in progress has run (0: none runs). */
  readonly walSyncRunningMs: number;
}

/**
 * Why a node is not a member in good standing (the first reason, in this order), or null when it
 * is: `stopped`, `storage-failed`, `storage-stalled`, `rejoining`, `no-leader` (none known, or this
 * node campaigns), `lagging` (more than `lagSlotsMax` slots behind what it knows decided).
 */
export function healthProblem(
  status: NodeStatus,
  storage: StorageStanding | null,
  lagSlots: number,
  limits: HealthLimits = DEFAULT_HEALTH_LIMITS,
): { code: string; message: string } | null {
  if (status.mode === "stopped") return { code: "stopped", message: "the node is stopped" };
  if (storage?.storageFailed)
    return { code: "storage-failed", message: "the write-ahead log failed: the node stops (see its log)" };
  if (storage !== null && storage.walSyncRunningMs > limits.syncStalledMs)
    return {
      code: "storage-stalled",
      message: `a write-ahead log sync has run for ${Math.round(storage.walSyncRunningMs)} ms (more than ${limits.syncStalledMs}): the disk is stuck or overloaded`,
    };
  if (status.rejoining)
    return {
      code: "rejoining",
      message: "the node is rejoining after losing its state: it does not vote yet",
    };
  if (status.mode === "candidate")
    return {
      code: "no-leader",
      message: `no leader is known: this node campaigns at ballot ${formatBallot(status.ballot)} (no quorum has answered it yet)`,
    };
  if (status.leader === null)
    return { code: "no-leader", message: "no leader is known yet (an election is under way)" };
  if (lagSlots > limits.lagSlotsMax)
    return {
      code: "lagging",
      message: `the node is catching up: ${lagSlots} slots behind what it knows decided (more than ${limits.lagSlotsMax})`,
    };
  return null;
}

/** A running HTTP API (see `startHttpApi`). */
export interface HttpApi {
  /** Where it listens (the port the system chose, for port 0). */
  readonly address: { readonly host: string; readonly port: number };
  /**
   * Stops listening, ends every watch and lock wait (answered 503 `stopped`; a waiter leaves its
   * queue), lets requests in flight finish for up to a second, and closes every connection.
   */
  close(): Promise<void>;
}

/** The node the API serves. */
export type KvLockNode = PaxosNodeApi<AppCommand, AppResult, KvLockApp>;

/**
 * Starts the HTTP API of `node` (one that runs `KvLockApp`); resolves once it listens.
 *
 * @example
 * const node = await startNode({ cluster, id: 1, app: new KvLockApp() });
 * const http = await startHttpApi(node, { cluster, port: 8101 });
 * // curl -X PUT --data-binary 1 http://127.0.0.1:8101/kv/a  ->  {"revision":1}
 * await http.close();
 * await node.stop();
 */
export async function startHttpApi(node: KvLockNode, options: HttpApiOptions): Promise<HttpApi> {
  const server = new HttpApiServer(node, options);
  const address = await server.listen();
  return { address, close: () => server.close() };
}

/** The status of each application error code (the code itself is the JSON error's `code`). */
const APP_ERROR_STATUS: Readonly<Record<string, number>> = {
  "bad-command": 400,
  "no-session": 400,
  "key-too-large": 413,
  "value-too-large": 413,
  "name-too-large": 413,
  "cas-failed": 412,
  "not-held": 409,
  compacted: 410,
  // The store is full: retrying does not help until keys are deleted.
  "too-many-keys": 507,
  // These drain as locks are released and sessions end: retry later.
  "too-many-locks": 429,
  "too-many-waiters": 429,
  "too-many-sessions": 429,
};

/**
 * Server-numbered seqs (lock requests) jump this far ahead (in µs of the clock they follow) when
 * the session refuses one as already acknowledged: another node, whose clock is ahead, numbered a
 * later request of the session. 1,000 s covers any clock worth running a cluster on.
 */
const SEQ_SKEW_JUMP = 1_000_000_000;

/** Grace for requests in flight when the API closes, before their connections are cut. */
const CLOSE_GRACE_MS = 1000;

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Returned by a read that was forwarded to the leader (the leader's answer went to the client). */
const FORWARDED = Symbol("forwarded");

// ---------------------------------------------------------------------------------------------
// Small helpers.

/** An answer to send: a status and a JSON body. */
function sendJson(res: ServerResponse, status: number, body: unknown, headers: OutgoingHttpHeaders = {}) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
  headers: OutgoingHttpHeaders = {},
) {
  sendJson(res, status, { code, message, ...extra }, headers);
}

function badRequest(message: string): PaxosError {
  return new PaxosError("bad-request", message);
}

/** A positive safe integer from a header or query value, or a bad request naming `what`. */
function positiveInt(text: string, what: string): number {
  if (!/^[1-9]\d*$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw badRequest(`${what} must be a positive integer, got "${text}"`);
  return Number(text);
}

function countValue(text: string, what: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw badRequest(`${what} must be an integer of 0 or more, got "${text}"`);
  return Number(text);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function decodePathPart(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw badRequest(`the ${what} is not valid percent-encoding`);
  }
}

/** Refuses query parameters a route does not know (a typo must not change what a request does). */
function onlyParams(query: URLSearchParams, known: readonly string[]): void {
  for (const name of query.keys())
    if (!known.includes(name))
      throw badRequest(
        `unknown query parameter "${name}"${known.length > 0 ? ` (known: ${known.join(", ")})` : ""}`,
      );
}

function parseHostPort(text: string): { host: string; port: number } | null {
  const match = /^(.+):(\d{1,5})$/.exec(text);
  if (match === null) return null;
  return { host: match[1] as string, port: Number(match[2]) };
}

function entryJson(entry: KvEntry) {
  return {
    key: entry.key,
    value: entry.value,
    createRevision: entry.createRevision,
    modRevision: entry.modRevision,
  };
}

/** One server-sent event for a change: `id` is its revision (a reconnecting EventSource resumes after it). */
function changeEvent(change: KvChange): string {
  const data = JSON.stringify({ revision: change.revision, key: change.key, value: change.value });
  return `id: ${change.revision}\nevent: ${change.value === null ? "delete" : "put"}\ndata: ${data}\n\n`;
}

// ---------------------------------------------------------------------------------------------
// Watches.

/** One watch's stream: changes under its prefix, in revision order, paced by the socket. */
class WatchStream {
  private queue: KvChange[] = [];
  private head = 0;
  private blocked = false;
  private ended = false;
  /** The last revision queued (changes at or below it are not sent again). */
  private last: number;

  constructor(
    private readonly res: ServerResponse,
    readonly prefix: string,
    fromRevision: number,
    private readonly queueMax: number,
  ) {
    this.last = fromRevision - 1;
    res.on("drain", () => {
      this.blocked = false;
      this.pump();
    });
  }

  /** False once the stream ended or its connection went away. */
  private live(): boolean {
    if (!this.ended && (this.res.destroyed || this.res.writableEnded)) this.ended = true;
    return !this.ended;
  }

  offer(change: KvChange): void {
    if (!this.live() || change.revision <= this.last || !change.key.startsWith(this.prefix)) return;
    this.last = change.revision;
    if (this.queue.length - this.head >= this.queueMax) {
      this.end("busy", `the watcher reads slower than the store changes (${this.queueMax} changes queued)`);
      return;
    }
    this.queue.push(change);
    this.pump();
  }

  /** A comment line on an idle stream (see `HttpLimits.watchHeartbeatMs`). */
  heartbeat(): void {
    if (this.live() && !this.blocked && this.head === this.queue.length) this.res.write(": keep-alive\n\n");
  }

  /** Ends the stream with an `error` event (`code`, `message`). */
  end(code: string, message: string): void {
    if (!this.live()) return;
    this.ended = true;
    this.queue = [];
    this.head = 0;
    this.res.end(`event: error\ndata: ${JSON.stringify({ code, message })}\n\n`);
  }

  private pump(): void {
    while (!this.blocked && this.live() && this.head < this.queue.length) {
      const change = this.queue[this.head++] as KvChange;
      if (!this.res.write(changeEvent(change))) this.blocked = true;
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Lock waits.

/** A lock request waiting for its grant. */
interface LockWait {
  readonly name: string;
  readonly session: number;
  /** The grant, once seen. */
  grant: LockGrant | null;
  /** Ends the wait: with the grant, or with why not. */
  wake: (() => void) | null;
  /** Why the wait ended without a grant (null: it has not). */
  ended: "timeout" | "gone" | "expired" | "stopped" | null;
}

function waitKey(session: number, name: string): string {
  return `${session}\n${name}`;
}

// ---------------------------------------------------------------------------------------------

class HttpApiServer {
  private readonly limits: HttpLimits;
  private readonly server: Server;
  private readonly agent: Agent;
  /** Stops listening to the application (set once the API listens). */
  private unsubscribe: () => void = () => {};
  private readonly excess = new WeakSet<Socket>();
  private connections = 0;
  private readonly watches = new Set<WatchStream>();
  private readonly lockWaits = new Map<string, Set<LockWait>>();
  private lockWaitCount = 0;
  private heartbeat: NodeJS.Timeout | null = null;
  /** The last server-numbered seq (lock requests): see `lockCommand`. */
  private lastLockSeq = 0;
  /** The store's revision as last seen by the watch fan-out (to notice changes it was not told of). */
  private revisionSeen: number;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly httpAddresses = new Map<number, string>();
  private readonly metrics: NodeMetrics | null;
  private readonly healthLimits: HealthLimits;

  constructor(
    private readonly node: KvLockNode,
    private readonly options: HttpApiOptions,
  ) {
    this.limits = { ...DEFAULT_HTTP_LIMITS, ...options.limits };
    this.metrics =
      options.metrics !== undefined ? options.metrics : node instanceof PaxosNode ? node.metrics : null;
    this.healthLimits = { ...DEFAULT_HEALTH_LIMITS, ...options.health };
    for (const member of options.cluster.nodes)
      if (member.http !== undefined) this.httpAddresses.set(member.id, member.http);
    this.revisionSeen = node.app.revision;
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: this.limits.forwardSocketsMax,
      maxFreeSockets: this.limits.forwardSocketsMax,
    });
    this.server = createServer({
      maxHeaderSize: this.limits.headerBytesMax,
      headersTimeout: this.limits.headersTimeoutMs,
      requestTimeout: this.limits.requestTimeoutMs,
      keepAliveTimeout: this.limits.keepAliveTimeoutMs,
      noDelay: true,
    });
    this.server.maxConnections = this.limits.connectionsMax * 2;
    this.server.on("connection", (socket: Socket) => {
      this.connections++;
      if (this.connections > this.limits.connectionsMax) this.excess.add(socket);
      socket.once("close", () => {
        this.connections--;
      });
    });
    this.server.on("request", (req, res) => this.onRequest(req, res));
    // `Expect: 100-continue`: a body announced too large is refused before the client sends it.
    this.server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
      if (Number(header(req, "content-length") ?? 0) > this.limits.bodyBytesMax) {
        res.setHeader(HTTP_HEADERS.node, String(this.node.id));
        this.tooLarge(res, { connection: "close" });
        return;
      }
      res.writeContinue();
      this.onRequest(req, res);
    });
  }

  private get logger(): Logger | undefined {
    return this.options.logger;
  }

  listen(): Promise<{ host: string; port: number }> {
    const own = this.options.cluster.nodes.find((member) => member.id === this.node.id)?.http;
    const ownAddress = own === undefined ? null : parseHostPort(own);
    const host = this.options.host ?? ownAddress?.host ?? "127.0.0.1";
    const port = this.options.port ?? ownAddress?.port ?? 0;
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        this.server.on("error", (error) => this.logger?.error({ error: error.message }, "http server error"));
        const address = this.server.address();
        const bound = typeof address === "object" && address !== null ? address.port : port;
        this.unsubscribe = this.node.app.subscribe({ change: this.onChange, grant: this.onGrant });
        this.node.on("applied", this.onApplied);
        this.heartbeat = setInterval(() => {
          for (const watch of this.watches) watch.heartbeat();
        }, this.limits.watchHeartbeatMs);
        this.heartbeat.unref();
        resolve({ host, port: bound });
      });
    });
  }

  close(): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.closing = true;
    this.unsubscribe();
    this.node.off("applied", this.onApplied);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    for (const watch of this.watches) watch.end("stopped", "the node is stopping");
    for (const waits of this.lockWaits.values())
      for (const wait of waits) {
        wait.ended ??= "stopped";
        wait.wake?.();
      }
    this.closed = new Promise<void>((resolve) => {
      const cut = setTimeout(() => this.server.closeAllConnections(), CLOSE_GRACE_MS);
      this.server.close(() => {
        clearTimeout(cut);
        this.agent.destroy();
        resolve();
      });
      this.server.closeIdleConnections();
    });
    return this.closed;
  }

  // -------------------------------------------------------------------------------------------
  // Requests.

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader(HTTP_HEADERS.node, String(this.node.id));
    const metrics = this.metrics;
    if (metrics !== null) {
      // Counted once the answer is done (a watch: when its stream ends), with the status sent.
      const startedMs = performance.now();
      res.once("close", () => {
        const url = req.url ?? "/";
        const mark = url.indexOf("?");
        metrics.httpRequest(
          mark < 0 ? url : url.slice(0, mark),
          req.method ?? "GET",
          res.statusCode,
          performance.now() - startedMs,
        );
      });
    }
    if (this.excess.has(req.socket)) {
      sendError(
        res,
        429,
        "busy",
        `this node has ${this.limits.connectionsMax} connections open, its limit: retry later`,
        {},
        { connection: "close" },
      );
      return;
    }
    if (this.closing) {
      sendError(res, 503, "stopped", "the node is stopping", {}, { connection: "close" });
      return;
    }
    this.route(req, res).catch((error: unknown) => this.fail(res, error, req.method !== "GET"));
  }

  /**
   * Answers a failure: a `PaxosError` with its status, anything else 500 (and logged). A command
   * (`write`) cut off by the node stopping has an unknown outcome: 504, as a timeout, not the 503 of
   * `HTTP_STATUS_OF` that says nothing was done.
   */
  private fail(res: ServerResponse, error: unknown, write = false): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof PaxosError) {
      const extra: Record<string, unknown> = {};
      if (error.leader !== null) {
        extra.leader = error.leader;
        const leaderHttp = this.httpAddresses.get(error.leader);
        if (leaderHttp !== undefined) extra.leaderHttp = leaderHttp;
      }
      const status = write && error.code === "stopped" ? 504 : HTTP_STATUS_OF[error.code];
      sendError(res, status, error.code, error.message, extra);
      return;
    }
    this.logger?.error({ error: (error as Error)?.message ?? String(error) }, "http request failed");
    sendError(res, 500, "internal", `internal error: ${(error as Error)?.message ?? String(error)}`);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? "/";
    const mark = url.indexOf("?");
    // Split by hand: the WHATWG URL parser would resolve "." and ".." segments of a key.
    const path = mark < 0 ? url : url.slice(0, mark);
    const query = new URLSearchParams(mark < 0 ? "" : url.slice(mark + 1));
    const method = req.method ?? "GET";
    if (path === "/health") {
      if (this.allowed(res, method, ["GET"])) this.health(res);
      return;
    }
    if (path === "/metrics") {
      if (this.allowed(res, method, ["GET"])) await this.serveMetrics(res, query);
      return;
    }
    if (path === "/kv") {
      if (this.allowed(res, method, ["GET"])) await this.list(req, res, query);
      return;
    }
    if (path.startsWith("/kv/")) {
      const key = decodePathPart(path.slice(4), "key");
      if (!this.allowed(res, method, ["GET", "PUT", "DELETE"])) return;
      if (key === "") throw badRequest("the key is empty: /kv/<key>");
      if (method === "GET") await this.get(req, res, key, query);
      else if (method === "PUT") await this.put(req, res, key, query);
      else await this.delete(req, res, key, query);
      return;
    }
    if (path === "/watch" || path.startsWith("/watch/")) {
      const prefix = decodePathPart(path.slice("/watch/".length), "prefix");
      if (this.allowed(res, method, ["GET"])) this.watch(req, res, prefix, query);
      return;
    }
    if (path.startsWith("/lock/")) {
      const name = decodePathPart(path.slice(6), "lock name");
      if (!this.allowed(res, method, ["GET", "POST", "DELETE"])) return;
      if (name === "") throw badRequest("the lock name is empty: /lock/<name>");
      if (method === "GET") await this.lockState(req, res, name, query);
      else if (method === "POST") await this.acquire(req, res, name, query);
      else await this.release(req, res, name, query);
      return;
    }
    if (path === "/session") {
      if (!this.allowed(res, method, ["POST"])) return;
      onlyParams(query, []);
      const session = await this.node.openSession();
      sendJson(res, 200, { session }, { [HTTP_HEADERS.session]: String(session) });
      return;
    }
    if (path.startsWith("/session/")) {
      if (!this.allowed(res, method, ["PUT"])) return;
      onlyParams(query, []);
      const session = positiveInt(decodePathPart(path.slice(9), "session"), "the session");
      await this.node.keepAlive(session);
      sendJson(res, 200, { session });
      return;
    }
    sendError(res, 404, "unknown-route", `no route ${method} ${path} (see docs/applications.md)`);
  }

  /** False (having answered 405) when `method` is not one of `methods`. */
  private allowed(res: ServerResponse, method: string, methods: readonly string[]): boolean {
    if (methods.includes(method)) return true;
    sendError(
      res,
      405,
      "method-not-allowed",
      `${method} is not allowed here (allowed: ${methods.join(", ")})`,
      {},
      { allow: methods.join(", ") },
    );
    return false;
  }

  /**
   * 200 when the node is a member in good standing: running, its storage healthy, voting (not
   * rejoining), knowing a leader, and applied to within `lagSlotsMax` of the highest slot it knows
   * decided. Otherwise 503 naming the first reason (`code`, `message`), with the same fields.
   */
  private health(res: ServerResponse): void {
    const status = this.node.status();
    const sample = this.metrics?.sample() ?? null;
    const knownDecidedThrough = sample?.knownDecidedThroughSlot ?? status.appliedThrough;
    const lagSlots = Math.max(0, knownDecidedThrough - status.appliedThrough);
    const facts = { ...status, knownDecidedThrough, lagSlots };
    const why = healthProblem(
      status,
      sample === null
        ? null
        : { storageFailed: sample.storageFailed, walSyncRunningMs: sample.walSyncRunningMs },
      lagSlots,
      this.healthLimits,
    );
    if (why === null) sendJson(res, 200, { status: "ok", ...facts });
    else sendJson(res, 503, { ...facts, status: "unavailable", ...why });
  }

  /** `GET /metrics`: the node's metrics in the Prometheus text format. */
  private async serveMetrics(res: ServerResponse, query: URLSearchParams): Promise<void> {
    onlyParams(query, []);
    if (this.metrics === null) {
      sendError(res, 404, "no-metrics", "this node was started without metrics");
      return;
    }
    const text = await this.metrics.text();
    res.writeHead(200, {
      "content-type": this.metrics.contentType,
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  // -------------------------------------------------------------------------------------------
  // Key-value routes.

  private async get(req: IncomingMessage, res: ServerResponse, key: string, query: URLSearchParams) {
    onlyParams(query, []);
    const entry = await this.readOrForward(req, res, (app) => app.get(key));
    if (entry === FORWARDED) return;
    if (entry === null) {
      sendError(res, 404, "not-found", `no key ${JSON.stringify(key)}`);
      return;
    }
    const body = Buffer.from(entry.value, "utf8");
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": body.length,
      [HTTP_HEADERS.revision]: String(entry.modRevision),
      [HTTP_HEADERS.createRevision]: String(entry.createRevision),
    });
    res.end(body);
  }

  private async list(req: IncomingMessage, res: ServerResponse, query: URLSearchParams) {
    onlyParams(query, ["prefix", "limit"]);
    const prefix = query.get("prefix") ?? "";
    const limitText = query.get("limit");
    const limit = limitText === null ? this.limits.listKeysDefault : positiveInt(limitText, "limit");
    const result = await this.readOrForward(req, res, (app) => app.list(prefix, limit));
    if (result === FORWARDED) return;
    if (!result.ok) return this.appError(res, result);
    if (result.op !== "list") throw new Error(`a list answered ${result.op}`);
    sendJson(res, 200, {
      revision: result.revision,
      entries: result.entries.map(entryJson),
      more: result.more,
    });
  }

  private async put(req: IncomingMessage, res: ServerResponse, key: string, query: URLSearchParams) {
    onlyParams(query, ["prev-revision", "prev-value", "prev-exist"]);
    const options = this.writeSession(req);
    const conditions = casConditions(query);
    const body = await this.readBody(req, res);
    if (body === null) return;
    let value: string;
    try {
      value = UTF8.decode(body);
    } catch {
      throw badRequest("the value is not UTF-8 text");
    }
    const command: AppCommand =
      conditions === null ? { op: "put", key, value } : { op: "cas", key, value, ...conditions };
    const result = (await this.node.propose(command, options)) as KvResult;
    if (!result.ok) return this.appError(res, result);
    sendJson(res, 200, { revision: result.revision });
  }

  private async delete(req: IncomingMessage, res: ServerResponse, key: string, query: URLSearchParams) {
    onlyParams(query, ["prev-revision", "prev-value", "prev-exist"]);
    const options = this.writeSession(req);
    const conditions = casConditions(query);
    const command: AppCommand =
      conditions === null ? { op: "delete", key } : { op: "cas", key, value: null, ...conditions };
    const result = (await this.node.propose(command, options)) as KvResult;
    if (!result.ok) return this.appError(res, result);
    if (result.op !== "delete" && result.op !== "cas") throw new Error(`a delete answered ${result.op}`);
    sendJson(res, 200, { revision: result.revision, deleted: result.changed });
  }

  /** `Paxos-Session` and `Paxos-Seq` of a write, as propose options (both or neither). */
  private writeSession(req: IncomingMessage): ProposeOptions {
    const session = header(req, HTTP_HEADERS.session);
    const seq = header(req, HTTP_HEADERS.seq);
    if (session === undefined && seq === undefined) return {};
    if (session === undefined || seq === undefined)
      throw badRequest("a write in a session needs both Paxos-Session and Paxos-Seq");
    return {
      session: { session: positiveInt(session, "Paxos-Session"), seq: positiveInt(seq, "Paxos-Seq") },
    };
  }

  /** Answers an application error (a refused command) with its status. */
  private appError(
    res: ServerResponse,
    result: { readonly error: string; readonly message: string; readonly current?: KvEntry | null },
  ): void {
    const extra: Record<string, unknown> = {};
    if (result.current !== undefined)
      extra.current = result.current === null ? null : entryJson(result.current);
    if ("revision" in result) extra.revision = result.revision;
    sendError(res, APP_ERROR_STATUS[result.error] ?? 400, result.error, result.message, extra);
  }

  /**
   * Reads the request body, at most `bodyBytesMax` bytes; null when it is longer (answered 413 as
   * soon as that is known; the rest is read and dropped, so the connection stays usable).
   */
  private readBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer | null> {
    const max = this.limits.bodyBytesMax;
    if (Number(header(req, "content-length") ?? 0) > max) {
      this.tooLarge(res);
      return Promise.resolve(null);
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      let done = false;
      const onData = (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= max) {
          chunks.push(chunk);
          return;
        }
        done = true;
        req.off("data", onData);
        req.resume();
        this.tooLarge(res);
        resolve(null);
      };
      req.on("data", onData);
      req.once("end", () => {
        if (done) return;
        done = true;
        resolve(Buffer.concat(chunks));
      });
      req.once("close", () => {
        if (done) return;
        done = true;
        reject(new PaxosError("bad-request", "the client went away before sending the whole body"));
      });
    });
  }

  private tooLarge(res: ServerResponse, headers: OutgoingHttpHeaders = {}): void {
    sendError(
      res,
      413,
      "too-large",
      `the body is over ${this.limits.bodyBytesMax} bytes, the limit (a value is at most 7,168 bytes)`,
      {},
      headers,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Reads on the leader: forwarded by a follower.

  /**
   * Runs a linearizable read; on a follower that knows the leader, forwards the request to the
   * leader's HTTP address instead and returns `FORWARDED` once the leader's answer went out.
   */
  private async readOrForward<T>(
    req: IncomingMessage,
    res: ServerResponse,
    query: (app: KvLockApp) => T,
  ): Promise<T | typeof FORWARDED> {
    // A follower that knows the leader forwards at once (the leader confirms its leadership anyway).
    const status = this.node.status();
    if (
      status.mode !== "leader" &&
      status.leader !== null &&
      status.leader !== this.node.id &&
      header(req, HTTP_HEADERS.forwarded) === undefined &&
      this.httpAddresses.has(status.leader)
    ) {
      await this.forward(
        req,
        res,
        new PaxosError(
          "not-leader",
          `node ${this.node.id} does not lead; node ${status.leader} does`,
          status.leader,
        ),
      );
      return FORWARDED;
    }
    try {
      return await this.node.read(query);
    } catch (error) {
      if (
        !(error instanceof PaxosError) ||
        error.code !== "not-leader" ||
        error.leader === null ||
        error.leader === this.node.id
      )
        throw error;
      await this.forward(req, res, error);
      return FORWARDED;
    }
  }

  /** Sends the request to the leader (`notLeader.leader`) and relays its answer. */
  private forward(req: IncomingMessage, res: ServerResponse, notLeader: PaxosError): Promise<void> {
    const leader = notLeader.leader as number;
    if (header(req, HTTP_HEADERS.forwarded) !== undefined) throw notLeader;
    const text = this.httpAddresses.get(leader);
    const address = text === undefined ? null : parseHostPort(text);
    if (address === null)
      throw new PaxosError(
        "not-leader",
        `node ${this.node.id} does not lead and node ${leader}, the leader, has no "http" address in the cluster file`,
        leader,
      );
    return new Promise<void>((resolve) => {
      const upstream = httpRequest({
        host: address.host,
        port: address.port,
        method: req.method ?? "GET",
        path: req.url ?? "/",
        agent: this.agent,
        timeout: this.limits.forwardTimeoutMs,
        headers: { [HTTP_HEADERS.forwarded]: String(this.node.id) },
      });
      upstream.on("response", (answer) => {
        const headers: OutgoingHttpHeaders = {};
        for (const name of [
          "content-type",
          "content-length",
          HTTP_HEADERS.revision,
          HTTP_HEADERS.createRevision,
          HTTP_HEADERS.node,
        ]) {
          const value = answer.headers[name];
          if (value !== undefined) headers[name] = value;
        }
        res.writeHead(answer.statusCode ?? 502, headers);
        answer.pipe(res);
        answer.once("end", () => resolve());
        answer.once("error", () => {
          res.destroy();
          resolve();
        });
      });
      upstream.on("timeout", () =>
        upstream.destroy(new Error(`no answer in ${this.limits.forwardTimeoutMs} ms`)),
      );
      upstream.on("error", (error) => {
        if (!res.headersSent)
          this.fail(
            res,
            new PaxosError(
              "not-leader",
              `node ${this.node.id} does not lead; forwarding to node ${leader} (${text}) failed: ${error.message}`,
              leader,
            ),
          );
        else res.destroy();
        resolve();
      });
      res.once("close", () => {
        if (!res.writableFinished) upstream.destroy();
      });
      upstream.end();
    });
  }

  // -------------------------------------------------------------------------------------------
  // Watches.

  private watch(req: IncomingMessage, res: ServerResponse, prefix: string, query: URLSearchParams): void {
    onlyParams(query, ["revision"]);
    if (this.watches.size >= this.limits.watchesMax)
      throw new PaxosError("busy", `${this.limits.watchesMax} watches are open on this node, the limit`);
    const app = this.node.app;
    const revisionText = query.get("revision");
    const lastEventId = header(req, "last-event-id");
    const from =
      revisionText !== null
        ? countValue(revisionText, "revision")
        : lastEventId !== undefined
          ? countValue(lastEventId, "Last-Event-ID") + 1
          : null;
    let history: readonly KvChange[] = [];
    if (from !== null) {
      const since = app.changesSince(prefix, from);
      if (!since.ok) {
        sendError(
          res,
          410,
          "compacted",
          `changes before revision ${since.oldest} are no longer kept: list, then watch from the list's revision + 1`,
          { oldest: since.oldest },
        );
        return;
      }
      history = since.changes;
    }
    const start = from ?? app.revision + 1;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
      // Where the stream starts: a client that reconnects before any event resumes from here.
      [HTTP_HEADERS.revision]: String(start),
    });
    // A first line at once: the client knows the watch is in place from here on.
    res.write(`: watching ${JSON.stringify(prefix)} from revision ${start}\n\n`);
    const stream = new WatchStream(res, prefix, start, this.limits.watchQueueMax);
    this.watches.add(stream);
    res.once("close", () => this.watches.delete(stream));
    for (const change of history) stream.offer(change);
  }

  /** Each change as this node applies it, to every watch. */
  private readonly onChange = (change: KvChange): void => {
    if (change.revision > this.revisionSeen + 1) this.catchUp(change.revision - 1);
    if (change.revision > this.revisionSeen) this.revisionSeen = change.revision;
    for (const watch of this.watches) watch.offer(change);
  };

  /**
   * After each applied slot: if the store's revision moved without changes being told (the node
   * installed a peer's snapshot), the watches get the skipped changes from the kept history.
   */
  private readonly onApplied = (): void => {
    const revision = this.node.app.revision;
    if (revision > this.revisionSeen) this.catchUp(revision);
  };

  /** Offers every watch the changes after `revisionSeen` through `through`, from the history. */
  private catchUp(through: number): void {
    const from = this.revisionSeen + 1;
    this.revisionSeen = through;
    if (this.watches.size === 0) return;
    const since = this.node.app.changesSince("", from);
    if (!since.ok) {
      for (const watch of this.watches)
        watch.end(
          "compacted",
          `this node skipped changes it no longer keeps (from revision ${from}): list, then watch again`,
        );
      return;
    }
    for (const change of since.changes) {
      if (change.revision > through) break;
      for (const watch of this.watches) watch.offer(change);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Locks.

  private readonly onGrant = (grant: LockGrant): void => {
    const waits = this.lockWaits.get(waitKey(grant.client, grant.name));
    if (waits === undefined) return;
    for (const wait of waits) {
      wait.grant ??= grant;
      wait.wake?.();
    }
  };

  /**
   * Proposes a lock command in `session`, numbered by this node: `seq` follows this node's clock in
   * µs, acknowledging every earlier seq of the session (so the session keeps one result). A lock
   * command is idempotent (an acquire again gets the same grant or place), so a retry under a new
   * seq changes nothing. A seq refused as already acknowledged (a node with a clock ahead numbered
   * the session since) is retried once, far ahead.
   */
  private async lockCommand(command: AppCommand, session: number): Promise<LockResult> {
    for (let attempt = 0; ; attempt++) {
      this.lastLockSeq = Math.max(Date.now() * 1000, this.lastLockSeq + 1);
      const seq = this.lastLockSeq;
      try {
        return (await this.node.propose(command, {
          session: { session, seq, ackedThrough: seq - 1 },
        })) as LockResult;
      } catch (error) {
        if (attempt > 0 || !(error instanceof PaxosError) || error.code !== "bad-request") throw error;
        this.lastLockSeq += SEQ_SKEW_JUMP;
      }
    }
  }

  /** The `Paxos-Session` of a lock request (lock requests take no `Paxos-Seq`: see `lockCommand`). */
  private lockSession(req: IncomingMessage): number | null {
    if (header(req, HTTP_HEADERS.seq) !== undefined)
      throw badRequest(
        "lock requests take no Paxos-Seq: the node numbers them (use a session of its own for locks)",
      );
    const session = header(req, HTTP_HEADERS.session);
    return session === undefined ? null : positiveInt(session, "Paxos-Session");
  }

  private async lockState(req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams) {
    onlyParams(query, []);
    const state = await this.readOrForward(req, res, (app) => ({
      holder: app.holder(name),
      waiters: app.waiters(name),
    }));
    if (state === FORWARDED) return;
    sendJson(res, 200, {
      holder: state.holder === null ? null : { session: state.holder.client, token: state.holder.token },
      waiters: state.waiters,
    });
  }

  private async acquire(req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams) {
    onlyParams(query, ["wait-ms"]);
    const waitText = query.get("wait-ms");
    const waitMs = waitText === null ? this.limits.lockWaitMsDefault : countValue(waitText, "wait-ms");
    if (waitMs > this.limits.lockWaitMsMax)
      throw badRequest(`wait-ms is at most ${this.limits.lockWaitMsMax}`);
    const given = this.lockSession(req);
    if (this.lockWaitCount >= this.limits.lockWaitsMax)
      throw new PaxosError("busy", `${this.limits.lockWaitsMax} lock requests wait on this node, the limit`);
    this.lockWaitCount++;
    try {
      const session = given ?? (await this.node.openSession());
      const sessionHeader = { [HTTP_HEADERS.session]: String(session) };
      // Listen before proposing: the grant can be applied in the same turn as the acquire.
      const wait: LockWait = { name, session, grant: null, wake: null, ended: null };
      const key = waitKey(session, name);
      const waits = this.lockWaits.get(key) ?? new Set<LockWait>();
      waits.add(wait);
      this.lockWaits.set(key, waits);
      try {
        let result: LockResult;
        try {
          result = await this.lockCommand({ op: "acquire", name }, session);
        } catch (error) {
          if (error instanceof PaxosError && error.outcomeUnknown) {
            // Whether it is queued or granted is unknown: leave, to be sure of where it stands.
            const left = await this.leave(name, session);
            if (left)
              return sendError(
                res,
                504,
                "timeout",
                `the acquire's outcome was unknown (${error.message}); the session released the lock to be sure`,
                { granted: false, session },
                sessionHeader,
              );
          }
          throw error;
        }
        if (!result.ok) return this.appError(res, result);
        if (result.op !== "acquire") throw new Error(`an acquire answered ${result.op}`);
        if (result.status === "granted")
          return sendJson(res, 200, { token: result.token, session }, sessionHeader);
        await this.awaitGrant(wait, waitMs, res);
        if (wait.grant !== null && wait.ended === null)
          return sendJson(res, 200, { token: wait.grant.token, session }, sessionHeader);
        // Not granted in time (or the client left, or the node stops): leave the queue.
        const ended = wait.ended;
        const left = await this.leave(name, session);
        if (ended === "gone") return;
        if (ended === "stopped") throw new PaxosError("stopped", "the node is stopping");
        if (ended === "expired")
          throw new PaxosError("session-expired", `session ${session} expired while it waited`);
        if (!left)
          return sendError(
            res,
            504,
            "timeout",
            `lock ${JSON.stringify(name)} was not granted within ${waitMs} ms, and leaving its queue failed: the session may still wait`,
            { session },
            sessionHeader,
          );
        sendError(
          res,
          504,
          "timeout",
          `lock ${JSON.stringify(name)} was not granted within ${waitMs} ms; the request left its queue`,
          { granted: false, session },
          sessionHeader,
        );
      } finally {
        waits.delete(wait);
        if (waits.size === 0) this.lockWaits.delete(key);
      }
    } finally {
      this.lockWaitCount--;
    }
  }

  /**
   * Waits until the grant, `waitMs`, the client leaving, the session expiring or the API closing;
   * keeps the session alive meanwhile (`lockWaitKeepAliveMs`).
   */
  private awaitGrant(wait: LockWait, waitMs: number, res: ServerResponse): Promise<void> {
    if (wait.grant !== null || wait.ended !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        wait.ended ??= "timeout";
        finish();
      }, waitMs);
      const keepAlive = setInterval(() => {
        this.node.keepAlive(wait.session).catch((error: unknown) => {
          if (error instanceof PaxosError && error.code === "session-expired") {
            wait.ended ??= "expired";
            finish();
          }
        });
      }, this.limits.lockWaitKeepAliveMs);
      const gone = () => {
        if (!res.writableFinished) {
          wait.ended ??= "gone";
          finish();
        }
      };
      res.once("close", gone);
      const finish = () => {
        clearTimeout(timer);
        clearInterval(keepAlive);
        res.off("close", gone);
        wait.wake = null;
        resolve();
      };
      wait.wake = finish;
    });
  }

  /** Releases the lock or leaves its queue for `session`; whether that is known to be done. */
  private async leave(name: string, session: number): Promise<boolean> {
    try {
      const result = await this.lockCommand({ op: "release", name }, session);
      return result.ok || result.error === "not-held";
    } catch (error) {
      // An expired session holds and waits for nothing.
      return error instanceof PaxosError && error.code === "session-expired";
    }
  }

  private async release(req: IncomingMessage, res: ServerResponse, name: string, query: URLSearchParams) {
    onlyParams(query, []);
    const session = this.lockSession(req);
    if (session === null) throw badRequest("a release needs the Paxos-Session header (the holder's session)");
    const result = await this.lockCommand({ op: "release", name }, session);
    if (!result.ok) return this.appError(res, result);
    if (result.op !== "release") throw new Error(`a release answered ${result.op}`);
    sendJson(res, 200, { released: result.released });
  }
}

/**
 * The compare-and-set conditions of a write's query, or null for a plain write:
 * `prev-revision=N` (the key last changed at N; 0: absent), `prev-value=V` (its value is V) and
 * `prev-exist=false` (the key is absent). Any of them together.
 */
function casConditions(
  query: URLSearchParams,
): { expectRevision?: number; expectValue?: string | null } | null {
  const revision = query.get("prev-revision");
  const value = query.get("prev-value");
  const exist = query.get("prev-exist");
  if (revision === null && value === null && exist === null) return null;
  const conditions: { expectRevision?: number; expectValue?: string | null } = {};
  if (revision !== null) conditions.expectRevision = countValue(revision, "prev-revision");
  if (value !== null) conditions.expectValue = value;
  if (exist !== null) {
    if (exist !== "false")
      throw badRequest(
        `prev-exist takes only "false" (the key is absent); for "exists", give prev-revision or prev-value`,
      );
    if (conditions.expectRevision !== undefined && conditions.expectRevision !== 0)
      throw badRequest("prev-exist=false contradicts a prev-revision other than 0");
    conditions.expectRevision = 0;
  }
  return conditions;
}
