import { Agent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { UsageError } from "./errors.js";

/**
 * The HTTP client of `paxos kv`, `paxos lock` and `paxos cluster`: requests to a list of nodes with
 * failover, exactly-once writes through a client session, and watches that resume where they left
 * off. The API it speaks is in docs/applications.md ("The HTTP API").
 */

/** Exit status of a command whose write may or may not have been applied. */
export const EXIT_UNKNOWN = 3;

/** Pause after every node was tried once without an answer, before trying them all again. */
const RETRY_PAUSE_MS = 200;
/** A request waits this long for its answer (a node answers a write it cannot settle in 10 s: 504). */
export const REQUEST_TIMEOUT_MS = 15_000;
/** Bytes of an answer kept (an answer longer than this is an error: no route answers that much). */
const ANSWER_BYTES_MAX = 64 * 1024 * 1024;
/** Connection errors that mean the request never reached a server: nothing was done. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
]);

/** `HOST:PORT` list of `--node` (or `PAXOS_NODES`); a usage error if malformed. */
export function parseNodeList(text: string | undefined, flag = "--node"): string[] {
  const source = text ?? process.env.PAXOS_NODES;
  if (source === undefined || source.trim() === "")
    throw new UsageError(
      `missing ${flag} HOST:PORT[,HOST:PORT...] (a node's HTTP address; or set PAXOS_NODES)`,
    );
  const nodes = source.split(",").map((item) => item.trim());
  for (const node of nodes) {
    const match = /^(?:http:\/\/)?([^\s:/]+):(\d{1,5})\/?$/.exec(node);
    if (match === null || Number(match[2]) < 1 || Number(match[2]) > 65535)
      throw new UsageError(`${flag} wants HOST:PORT[,HOST:PORT...], got "${node}"`);
  }
  return nodes.map((node) => node.replace(/^http:\/\//, "").replace(/\/$/, ""));
}

/** An answer from a node. */
export interface HttpAnswer {
  readonly address: string;
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The body as a JSON object (empty if it is not one). */
  readonly json: Readonly<Record<string, unknown>>;
}

/** No answer: the connection failed, or no answer came in time. */
export class ConnectionError extends Error {
  override readonly name = "ConnectionError";
  constructor(
    message: string,
    readonly address: string,
    /** Whether the request may have reached the node (then a write's outcome is unknown). */
    readonly maybeSent: boolean,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Most ms to wait for one answer (default `REQUEST_TIMEOUT_MS`). */
  readonly timeoutMs?: number;
  /** Whether an answer sends the request on to the next node (default: status 503). */
  readonly retry?: (answer: HttpAnswer) => boolean;
  /** Told of every attempt that did not settle the request (an answer retried, or no answer). */
  readonly onFailure?: (failure: HttpAnswer | ConnectionError) => void;
  /** Most ms to keep trying (default: the client's `deadlineMs`). */
  readonly deadlineMs?: number;
}

/** One line describing an error answer: its JSON `message`, or its status and body. */
export function answerMessage(answer: HttpAnswer): string {
  const message = answer.json.message;
  if (typeof message === "string") return message;
  return `HTTP ${answer.status} from ${answer.address}: ${answer.body.trim().slice(0, 200)}`;
}

function parseJson(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/**
 * Requests to a cluster's nodes, in the order given: on a connection error or a 503 the next node
 * is tried (first the leader a 503 `not-leader` names, when it gives its address), then all again
 * after a pause, until the deadline. The node that answered is tried first next time.
 *
 * @example
 * const client = new NodeClient(["127.0.0.1:8101", "127.0.0.1:8102"], { deadlineMs: 10_000 });
 * const answer = await client.request("GET", "/kv/a");
 * client.close();
 */
export class NodeClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 8 });
  private preferred = 0;

  constructor(
    readonly nodes: readonly string[],
    private readonly options: { readonly deadlineMs: number },
  ) {}

  /** One request to one node. */
  send(address: string, method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    const [host, port] = [
      address.slice(0, address.lastIndexOf(":")),
      Number(address.slice(address.lastIndexOf(":") + 1)),
    ];
    const body = options.body === undefined ? undefined : Buffer.from(options.body, "utf8");
    return new Promise((resolve, reject) => {
      const request = httpRequest({
        host,
        port,
        method,
        path,
        agent: this.agent,
        headers: {
          ...options.headers,
          ...(body !== undefined
            ? { "content-type": "application/octet-stream", "content-length": body.length }
            : {}),
        },
      });
      const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
      const timer = setTimeout(
        () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      request.on("response", (response) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > ANSWER_BYTES_MAX) request.destroy(new Error("the answer is too long"));
          else chunks.push(chunk);
        });
        response.on("end", () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            address,
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: text,
            json: parseJson(text),
          });
        });
        response.on("error", () => {});
      });
      request.on("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const code = error.code ?? "";
        reject(new ConnectionError(`${address}: ${error.message}`, address, !NOT_SENT.has(code)));
      });
      request.end(body);
    });
  }

  /** A request with failover (see the class); resolves with the last answer, or throws a `ConnectionError`. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<HttpAnswer> {
    const retry = options.retry ?? ((answer: HttpAnswer) => answer.status === 503);
    const deadline = performance.now() + (options.deadlineMs ?? this.options.deadlineMs);
    let last: HttpAnswer | ConnectionError | null = null;
    let hint: string | null = null;
    let next = this.preferred;
    let sincePause = 0;
    for (;;) {
      const address: string = hint ?? (this.nodes[next++ % this.nodes.length] as string);
      hint = null;
      try {
        const answer = await this.send(address, method, path, {
          ...options,
          timeoutMs: Math.max(
            1,
            Math.min(options.timeoutMs ?? REQUEST_TIMEOUT_MS, deadline - performance.now()),
          ),
        });
        if (!retry(answer)) {
          const index = this.nodes.indexOf(address);
          if (index >= 0) this.preferred = index;
          return answer;
        }
        last = answer;
        // A node that does not lead names the leader's address: that one next.
        const leaderHttp = answer.json.leaderHttp;
        if (typeof leaderHttp === "string" && leaderHttp !== address) hint = leaderHttp;
      } catch (error) {
        if (!(error instanceof ConnectionError)) throw error;
        last = error;
      }
      options.onFailure?.(last);
      if (performance.now() >= deadline) break;
      if (hint === null && ++sincePause >= this.nodes.length) {
        sincePause = 0;
        await sleep(Math.min(RETRY_PAUSE_MS, Math.max(0, deadline - performance.now())));
      }
    }
    if (last instanceof ConnectionError) throw last;
    return last as HttpAnswer;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** What became of a write. */
export type WriteOutcome =
  | { readonly kind: "done"; readonly answer: HttpAnswer }
  /** Refused, or never sent: nothing was applied. */
  | { readonly kind: "failed"; readonly message: string; readonly answer: HttpAnswer | null }
  /** It may or may not have been applied (and no retry could learn which). */
  | { readonly kind: "unknown"; readonly message: string };

/** Answers a write is retried on (with the same session and seq): no leader, unknown, busy. */
const WRITE_RETRY = (answer: HttpAnswer) =>
  answer.status === 503 || answer.status === 504 || answer.status === 429;

/**
 * Exactly-once writes: opens a client session (`POST /session`) and sends each write with
 * `Paxos-Session` and a new `Paxos-Seq`, retrying the same seq on the next node after a connection
 * error, a 503, 504 or 429, so a write whose answer was lost is applied once and its original
 * answer comes back. A session that expired (idle longer than the cluster's session TTL) is opened
 * again, unless a write of it may have been applied.
 *
 * @example
 * const writer = new SessionWriter(client);
 * const outcome = await writer.write("PUT", "/kv/a", "1"); // { kind: "done", answer } ...
 */
export class SessionWriter {
  private session: number | null;
  private seq: number;

  /**
   * `given`: write in this session, numbering from this seq (a script that retries a write whose
   * outcome was unknown passes the same session and seq again); such a session is never reopened.
   */
  constructor(
    private readonly client: NodeClient,
    private readonly given: { readonly session: number; readonly seq: number } | null = null,
  ) {
    this.session = given?.session ?? null;
    this.seq = given === null ? 0 : given.seq - 1;
  }

  async write(method: string, path: string, body?: string): Promise<WriteOutcome> {
    for (let opened = 0; ; opened++) {
      if (this.session === null) {
        const session = await this.open();
        if (typeof session !== "number") return session;
        this.session = session;
        this.seq = 0;
      }
      const seq = ++this.seq;
      let mayBeApplied = false;
      const onFailure = (failure: HttpAnswer | ConnectionError) => {
        if (failure instanceof ConnectionError ? failure.maybeSent : failure.status === 504)
          mayBeApplied = true;
        if (!(failure instanceof ConnectionError) && failure.json.code === "stopped") mayBeApplied = true;
      };
      let answer: HttpAnswer;
      try {
        answer = await this.client.request(method, path, {
          ...(body !== undefined ? { body } : {}),
          headers: { "paxos-session": String(this.session), "paxos-seq": String(seq) },
          retry: WRITE_RETRY,
          onFailure,
        });
      } catch (error) {
        const message = (error as Error).message;
        return mayBeApplied
          ? {
              kind: "unknown",
              message: `no node answered (last: ${message}); the write may or may not be applied`,
            }
          : { kind: "failed", message: `no node answered (last: ${message})`, answer: null };
      }
      if (answer.status >= 200 && answer.status < 300) return { kind: "done", answer };
      if (
        answer.status === 409 &&
        answer.json.code === "session-expired" &&
        !mayBeApplied &&
        opened === 0 &&
        this.given === null
      ) {
        this.session = null;
        continue;
      }
      if (answer.status === 504 || (mayBeApplied && (answer.status === 503 || answer.status === 409)))
        return {
          kind: "unknown",
          message: `${answerMessage(answer)} (the write may or may not be applied)`,
        };
      return { kind: "failed", message: answerMessage(answer), answer };
    }
  }

  /** A new session, or why there is none (nothing was written yet: a failure, never unknown). */
  private async open(): Promise<number | WriteOutcome> {
    try {
      const answer = await this.client.request("POST", "/session", { retry: WRITE_RETRY });
      const session = answer.json.session;
      if (answer.status === 200 && typeof session === "number") return session;
      return { kind: "failed", message: `cannot open a session: ${answerMessage(answer)}`, answer };
    } catch (error) {
      return {
        kind: "failed",
        message: `cannot open a session: no node answered (last: ${(error as Error).message})`,
        answer: null,
      };
    }
  }
}

/** One change a watch delivers. */
export interface WatchedChange {
  readonly revision: number;
  readonly key: string;
  /** null: deleted. */
  readonly value: string | null;
}

export interface WatchOptions {
  /** Start from this revision (null: from the node's current revision on). */
  readonly fromRevision: number | null;
  readonly onChange: (change: WatchedChange) => void;
  /** Told each time a stream opens: changes applied from then on will come. */
  readonly onOpen?: () => void;
  /** Ends the watch (resolves). */
  readonly signal: AbortSignal;
  /** Most ms with no node to watch on before giving up (default: the client's deadline). */
  readonly outageMs?: number;
}

/**
 * Follows `GET /watch/<prefix>` (server-sent events) on the client's nodes: each change once, in
 * revision order. When a stream ends or a node fails, it resumes on the next node from the revision
 * after the last one seen, so nothing is missed or repeated. Resolves when `signal` aborts; rejects
 * on `compacted` (the history it needs is gone) or when no node could be watched for `outageMs`.
 */
export async function watchChanges(client: NodeClient, prefix: string, options: WatchOptions): Promise<void> {
  let next = options.fromRevision;
  let index = 0;
  let outageSince: number | null = null;
  const outageMs = options.outageMs ?? Number.POSITIVE_INFINITY;
  while (!options.signal.aborted) {
    const address = client.nodes[index % client.nodes.length] as string;
    const path = `/watch/${encodeURIComponent(prefix)}${next === null ? "" : `?revision=${next}`}`;
    const result = await streamOnce(
      address,
      path,
      options.signal,
      (change) => {
        next = change.revision + 1;
        options.onChange(change);
      },
      (start) => {
        outageSince = null;
        next ??= start;
        options.onOpen?.();
      },
    );
    if (options.signal.aborted) return;
    if (result.kind === "fatal") throw new Error(result.message);
    index++;
    outageSince ??= performance.now();
    if (performance.now() - outageSince > outageMs)
      throw new Error(`no node could be watched for ${Math.round(outageMs)} ms (last: ${result.message})`);
    if (index % client.nodes.length === 0)
      await sleep(RETRY_PAUSE_MS, undefined, { signal: options.signal }).catch(() => {});
  }
}

/** One watch connection: until it ends (`retry`), fails for good (`fatal`) or is aborted. */
function streamOnce(
  address: string,
  path: string,
  signal: AbortSignal,
  onChange: (change: WatchedChange) => void,
  onOpen: (startRevision: number) => void,
): Promise<{ kind: "retry" | "fatal"; message: string }> {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(":")),
    Number(address.slice(address.lastIndexOf(":") + 1)),
  ];
  return new Promise((resolve) => {
    const request = httpRequest({ host, port, path, method: "GET", agent: false, signal });
    request.on("response", (response) => {
      if (response.statusCode !== 200) {
        let text = "";
        response.setEncoding("utf8").on("data", (chunk: string) => {
          if (text.length < 4096) text += chunk;
        });
        response.on("end", () => {
          const json = parseJson(text);
          const message = typeof json.message === "string" ? json.message : `HTTP ${response.statusCode}`;
          // 503 (no leader, stopping) and 429 (busy) pass; anything else is the request's fault.
          const status = response.statusCode ?? 0;
          resolve({
            kind: status === 503 || status === 429 ? "retry" : "fatal",
            message: `${address}: ${message}`,
          });
        });
        return;
      }
      const start = Number(response.headers["paxos-revision"]);
      if (Number.isSafeInteger(start)) onOpen(start);
      let buffer = "";
      let outcome: { kind: "retry" | "fatal"; message: string } = {
        kind: "retry",
        message: `${address}: the stream ended`,
      };
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          let data: string | null = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data = line.slice(6);
          }
          if (data === null) continue;
          const json = parseJson(data);
          if (event === "error") {
            const message = `${address}: ${typeof json.message === "string" ? json.message : "the watch failed"}`;
            outcome = { kind: json.code === "compacted" ? "fatal" : "retry", message };
          } else if (typeof json.revision === "number" && typeof json.key === "string") {
            onChange({
              revision: json.revision,
              key: json.key,
              value: typeof json.value === "string" ? json.value : null,
            });
          }
        }
      });
      response.on("end", () => resolve(outcome));
      response.on("error", () => resolve(outcome));
    });
    request.on("error", (error) => resolve({ kind: "retry", message: `${address}: ${error.message}` }));
    request.end();
  });
}
