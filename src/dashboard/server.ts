import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { AppReport, DecidedSlot, NodeReport, NodeState } from "./protocol.js";
import { handleReplayRequest } from "./replay.js";

/** The package's `dashboard/` folder: the page's static files. */
const STATIC_DIR = fileURLToPath(new URL("../../dashboard/", import.meta.url));
/** uPlot's distribution folder (served under /uplot/: the page works offline, with no CDN). */
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve("uplot"));
const UPLOT_FILES = new Set(["uPlot.esm.js", "uPlot.min.css"]);
/** A static file's name: no folders, no dots but the extension's. */
const STATIC_NAME = /^[a-z0-9-]+\.(html|js|css|svg)$/;
const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/** How often the page gets the cluster's state (the log, the nodes, the charts). */
export const STATE_INTERVAL_MS = 250;
/** Slots the log view keeps (the newest). */
const LOG_SLOTS_MAX = 40;
/** Seconds of history the charts keep. */
const CHART_SECONDS_MAX = 180;
/** Bytes a control request may have. */
const CONTROL_BYTES_MAX = 16 * 1024;
/** Bytes a page's event stream may have waiting before message batches to it are skipped. */
const STREAM_BACKLOG_BYTES_MAX = 1024 * 1024;

/** What the page's controls ask (POST /api/control, JSON). */
export const ControlRequest = z.discriminatedUnion("action", [
  z.object({
    action: z.enum(["crash", "restart", "cut", "reconnect"]),
    node: z.int().min(1),
  }),
  z.object({ action: z.literal("loss"), rate: z.number().min(0).max(1) }),
  z.object({ action: z.literal("submit"), value: z.string().min(1).max(7168) }),
  z.object({
    action: z.literal("kv"),
    op: z.enum(["put", "get", "delete"]),
    key: z.string().min(1).max(1024),
    value: z.string().max(7168).optional(),
  }),
  z.object({
    action: z.literal("lock"),
    op: z.enum(["acquire", "release"]),
    name: z.string().min(1).max(1024),
  }),
]);
export type ControlRequest = z.infer<typeof ControlRequest>;

/** The answer to a control: shown on the page as one line. */
export interface ControlAnswer {
  readonly ok: boolean;
  readonly message: string;
}

/** A node's process, as the cluster process sees it. */
export type NodeProcessState = "running" | "crashed" | "starting";

export interface DashboardOptions {
  /** Where to listen (port 0: any free port). */
  readonly host: string;
  readonly port: number;
  readonly nodeIds: readonly number[];
  /** The election timeout, in ms (shown on the page). */
  readonly electionTimeoutMs: number;
  /** Carries out a control; resolves with what to tell the page. */
  readonly control: (request: ControlRequest) => Promise<ControlAnswer>;
}

/** A running dashboard: feed it the nodes' reports; it serves the page and its event stream. */
export interface Dashboard {
  /** `http://host:port/`. */
  readonly url: string;
  /** A node's report (from its IPC channel). */
  report(message: NodeReport | AppReport): void;
  /** A node's process started, crashed or is starting again. */
  nodeProcess(id: number, state: NodeProcessState): void;
  close(): Promise<void>;
}

interface NodeView {
  id: number;
  process: NodeProcessState;
  state: NodeState | null;
  /** Messages sent and forwarded in the current second (for "sampling 1 in K"). */
  sentThisSecond: number;
  sampledThisSecond: number;
}

/**
 * Starts the dashboard's HTTP server: the page (`dashboard/index.html` and its modules), uPlot,
 * the event stream `/events` (server-sent events: `messages` as nodes report them, `state` every
 * `STATE_INTERVAL_MS`), `POST /api/control`, and the replay routes under `/replay`.
 *
 * @example
 * const dashboard = await startDashboard({ host: "127.0.0.1", port: 0, nodeIds: [1, 2, 3],
 *   electionTimeoutMs: 300, control: async () => ({ ok: false, message: "no controls" }) });
 * console.log(dashboard.url);
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const views = new Map<number, NodeView>(
    options.nodeIds.map((id) => [
      id,
      { id, process: "starting", state: null, sentThisSecond: 0, sampledThisSecond: 0 },
    ]),
  );
  const log = new Map<number, DecidedSlot>();
  let app: AppReport | null = null;
  const chart = { tSec: [] as number[], decisionsPerSecond: [] as number[], latencyMs: [] as number[] };
  chart.tSec.push(Math.floor(Date.now() / 1000));
  chart.decisionsPerSecond.push(0);
  chart.latencyMs.push(Number.NaN);
  let latenciesThisSecond: number[] = [];
  let appliedAtLastSecond: number | null = null;
  /** 1 in how many sent messages the diagram shows (1: all), over the last second. */
  let samplingOneIn = 1;
  const streams = new Set<ServerResponse>();

  const maxApplied = () => {
    let max = 0;
    for (const view of views.values()) max = Math.max(max, view.state?.appliedThrough ?? 0);
    return max;
  };
  /** The running node that leads at the highest ballot (stale claims of a cut-off node lose). */
  const leader = () => {
    let best: { id: number; ballot: string } | null = null;
    for (const view of views.values()) {
      if (view.process !== "running" || view.state?.mode !== "leader" || view.state.cut) continue;
      if (best === null || compareBallotText(view.state.ballot, best.ballot) > 0)
        best = { id: view.id, ballot: view.state.ballot };
    }
    return best;
  };

  const broadcast = (event: string, data: unknown, skippable: boolean) => {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const stream of streams) {
      if (skippable && stream.writableLength > STREAM_BACKLOG_BYTES_MAX) continue;
      stream.write(text);
    }
  };

  const stateMessage = () => {
    const top = maxApplied();
    return {
      tMs: Date.now(),
      electionTimeoutMs: options.electionTimeoutMs,
      leader: leader(),
      samplingOneIn,
      nodes: [...views.values()].map((view) => ({
        id: view.id,
        process: view.process,
        state: view.state,
        lag: view.state === null ? null : top - view.state.appliedThrough,
      })),
      log: [...log.values()].sort((a, b) => b.slot - a.slot),
      app,
      chart,
    };
  };

  const everySecond = setInterval(() => {
    let sent = 0;
    let sampled = 0;
    for (const view of views.values()) {
      sent += view.sentThisSecond;
      sampled += view.sampledThisSecond;
      view.sentThisSecond = 0;
      view.sampledThisSecond = 0;
    }
    samplingOneIn = sampled === 0 || sent <= sampled ? 1 : Math.round(sent / sampled);
    const applied = maxApplied();
    const decisions = appliedAtLastSecond === null ? 0 : Math.max(0, applied - appliedAtLastSecond);
    appliedAtLastSecond = applied;
    latenciesThisSecond.sort((a, b) => a - b);
    const median =
      latenciesThisSecond.length === 0
        ? Number.NaN
        : (latenciesThisSecond[Math.floor(latenciesThisSecond.length / 2)] as number);
    latenciesThisSecond = [];
    chart.tSec.push(Math.floor(Date.now() / 1000));
    chart.decisionsPerSecond.push(decisions);
    chart.latencyMs.push(median);
    if (chart.tSec.length > CHART_SECONDS_MAX) {
      chart.tSec.shift();
      chart.decisionsPerSecond.shift();
      chart.latencyMs.shift();
    }
  }, 1000);
  const stateTimer = setInterval(() => broadcast("state", stateMessage(), true), STATE_INTERVAL_MS);

  const report = (message: NodeReport | AppReport) => {
    const view = views.get(message.id);
    if (view === undefined) return;
    if (message.type === "app") {
      // The leader's replica is the one that answers reads; until one is known, any node's.
      const lead = leader();
      if (lead === null || lead.id === message.id || app === null) app = message;
      return;
    }
    view.state = message.state;
    view.sentThisSecond += message.sent;
    view.sampledThisSecond += message.messages.length;
    for (const latencyMs of message.commitLatenciesMs) latenciesThisSecond.push(latencyMs);
    for (const slot of message.decided) {
      const known = log.get(slot.slot);
      if (known === undefined || (known.ballot === null && slot.ballot !== null)) log.set(slot.slot, slot);
    }
    while (log.size > LOG_SLOTS_MAX) {
      let oldest = Number.POSITIVE_INFINITY;
      for (const slot of log.keys()) oldest = Math.min(oldest, slot);
      log.delete(oldest);
    }
    if (message.messages.length > 0) broadcast("messages", message.messages, true);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { ok: false, message: `internal error: ${(error as Error).message}` });
    });
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://dashboard.invalid");
    const path = url.pathname;
    // The replay page and its API (src/dashboard/replay.ts) come first.
    if (path.startsWith("/replay") && (await handleReplayRequest(req, res, url))) return;
    if (path === "/events") {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      res.write(`event: state\ndata: ${JSON.stringify(stateMessage())}\n\n`);
      streams.add(res);
      req.on("close", () => streams.delete(res));
      return;
    }
    if (path === "/api/control") {
      if (req.method !== "POST") {
        sendJson(res, 405, { ok: false, message: "POST a JSON control here" });
        return;
      }
      const body = await readBody(req);
      if (body === null) {
        sendJson(res, 413, { ok: false, message: `a control is at most ${CONTROL_BYTES_MAX} bytes` });
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        sendJson(res, 400, { ok: false, message: "the control is not JSON" });
        return;
      }
      const request = ControlRequest.safeParse(parsed);
      if (!request.success) {
        const issue = request.error.issues[0];
        sendJson(res, 400, {
          ok: false,
          message: `bad control: ${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`,
        });
        return;
      }
      if ("node" in request.data && !views.has(request.data.node)) {
        sendJson(res, 400, { ok: false, message: `there is no node ${request.data.node}` });
        return;
      }
      const answer = await options.control(request.data);
      sendJson(res, answer.ok ? 200 : 409, answer);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(res, 405, { ok: false, message: `${req.method} is not allowed here` });
      return;
    }
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (path.startsWith("/uplot/") && UPLOT_FILES.has(path.slice(7))) {
      await sendFile(res, join(UPLOT_DIR, path.slice(7)));
      return;
    }
    const name = path === "/" ? "index.html" : path.slice(1);
    if (STATIC_NAME.test(name) && !name.startsWith("replay")) {
      await sendFile(res, join(STATIC_DIR, name));
      return;
    }
    sendJson(res, 404, { ok: false, message: `no page ${path}` });
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = address !== null && typeof address === "object" ? address.port : options.port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/`,
    report,
    nodeProcess(id, state) {
      const view = views.get(id);
      if (view === undefined) return;
      view.process = state;
      if (state !== "running") view.state = view.state === null ? null : { ...view.state, mode: "down" };
    },
    async close() {
      clearInterval(everySecond);
      clearInterval(stateTimer);
      for (const stream of streams) stream.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Orders "round.node" ballots as the protocol does: by round, then node. */
function compareBallotText(a: string, b: string): number {
  const [roundA = 0, nodeA = 0] = a.split(".").map(Number);
  const [roundB = 0, nodeB = 0] = b.split(".").map(Number);
  return roundA - roundB || nodeA - nodeB;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function sendFile(res: ServerResponse, path: string): Promise<void> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch {
    sendJson(res, 404, { ok: false, message: `no file ${path.split("/").pop()}` });
    return;
  }
  const extension = path.slice(path.lastIndexOf(".") + 1);
  res.writeHead(200, {
    "content-type": CONTENT_TYPES[extension] ?? "application/octet-stream",
    "content-length": data.length,
    "cache-control": "no-cache",
  });
  res.end(data);
}

/** The request's body as text, or null past `CONTROL_BYTES_MAX` (the rest is read and dropped). */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= CONTROL_BYTES_MAX) chunks.push(chunk);
    });
    req.once("end", () => resolve(bytes > CONTROL_BYTES_MAX ? null : Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}
