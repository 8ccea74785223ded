import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Worker } from "node:worker_threads";
// Types only from replay-run.js: the simulator loads in the worker, not in the server.
import type { ReplayRequest, ReplayRun } from "./replay-run.js";
import { REPLAY_VARIANTS } from "./replay-variants.js";

/**
 * The dashboard's replay (docs/simulator.md, "Replay"): a page that loads a simulator run by seed
 * and steps through it event by event, and the JSON it loads. Routes, all under `/replay`:
 *
 * - `GET /replay` the page (`dashboard/replay.html`; `?seed=N` loads that seed at once);
 * - `GET /replay/replay.js` its script (`dashboard/replay.js`, a plain browser module);
 * - `GET /replay/run?seed=N[&bugs=variant][&stray=1]` one run (`ReplayRun`), run in a worker thread;
 * - `GET /replay/variants` the broken variants `bugs=` may name.
 *
 * Errors are JSON `{code, message}` as in the HTTP API (docs/applications.md): 400 `bad-request`,
 * 404 `unknown-route`, 405 `method-not-allowed`, 429 `busy`, 504 `timeout`, 500 `internal`.
 */

/**
 * Runs at most this many seeds at a time (each takes a core for a few seconds; the machine may have
 * two): another request meanwhile is answered 429 `busy`.
 */
export const REPLAY_RUNS_MAX = 2;

/** A run taking longer than this is stopped (a seed takes seconds; the slowest under a minute). */
export const REPLAY_RUN_MS_MAX = 120_000;

/** Runs kept for a page reload or a second viewer (a run replays the same every time). */
const CACHED_RUNS_MAX = 4;

/** The folder of the dashboard's static files, from dist/dashboard/replay.js. */
const STATIC_DIR = new URL("../../dashboard/", import.meta.url);

const STATIC_FILES: Readonly<Record<string, { readonly file: string; readonly type: string }>> = {
  "/replay": { file: "replay.html", type: "text/html; charset=utf-8" },
  "/replay/": { file: "replay.html", type: "text/html; charset=utf-8" },
  "/replay/replay.js": { file: "replay.js", type: "text/javascript; charset=utf-8" },
};

/** A request's answer that is an error: its status, code and message. */
class ReplayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const running = new Map<string, Promise<ReplayRun>>();
const cached = new Map<string, ReplayRun>();

/**
 * Answers a request under `/replay` and resolves true; resolves false (and answers nothing) for any
 * other path, for the caller to route.
 *
 * @example
 * createServer(async (req, res) => {
 *   const url = new URL(req.url ?? "/", "http://localhost");
 *   if (!(await handleReplayRequest(req, res, url))) res.writeHead(404).end();
 * });
 */
export async function handleReplayRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<boolean> {
  const path = url.pathname;
  if (path !== "/replay" && !path.startsWith("/replay/")) return false;
  try {
    const isStatic = STATIC_FILES[path] !== undefined;
    if (!isStatic && path !== "/replay/run" && path !== "/replay/variants")
      throw new ReplayError(
        404,
        "unknown-route",
        `no route ${req.method} ${path} (see docs/simulator.md, "Replay")`,
      );
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      throw new ReplayError(405, "method-not-allowed", `${path} answers GET only`);
    }
    const file = STATIC_FILES[path];
    if (file !== undefined) {
      const body = await readFile(new URL(file.file, STATIC_DIR));
      send(res, 200, file.type, body);
    } else if (path === "/replay/variants") {
      const variants = Object.entries(REPLAY_VARIANTS).map(([name, v]) => ({
        name,
        description: v.description,
        exampleSeed: v.exampleSeed,
      }));
      sendJson(res, 200, variants);
    } else {
      sendJson(res, 200, await replayRun(parseRunQuery(url.searchParams)));
    }
  } catch (error) {
    if (error instanceof ReplayError)
      sendJson(res, error.status, { code: error.code, message: error.message });
    else
      sendJson(res, 500, {
        code: "internal",
        message: error instanceof Error ? error.message : String(error),
      });
  }
  return true;
}

/** `seed` (required), `bugs` and `stray` (optional); anything else is a bad request. */
export function parseRunQuery(query: URLSearchParams): ReplayRequest {
  for (const name of new Set(query.keys())) {
    if (name !== "seed" && name !== "bugs" && name !== "stray")
      throw badRequest(`unknown parameter "${name}" (use seed, bugs, stray)`);
    if (query.getAll(name).length > 1) throw badRequest(`parameter "${name}" is given more than once`);
  }
  const seedText = query.get("seed");
  if (seedText === null) throw badRequest("seed is missing: /replay/run?seed=N");
  const seed = Number(seedText);
  if (!/^\d{1,16}$/.test(seedText) || !Number.isSafeInteger(seed))
    throw badRequest(`seed must be a non-negative integer, got "${seedText.slice(0, 40)}"`);
  const bugs = query.get("bugs");
  if (bugs !== null && bugs !== "" && REPLAY_VARIANTS[bugs] === undefined)
    throw badRequest(
      `bugs must be one of ${Object.keys(REPLAY_VARIANTS).join(", ")}; got "${bugs.slice(0, 40)}"`,
    );
  const stray = query.get("stray");
  if (stray !== null && stray !== "0" && stray !== "1")
    throw badRequest(`stray must be 0 or 1, got "${stray.slice(0, 40)}"`);
  return { seed, variant: bugs === null || bugs === "" ? null : bugs, stray: stray === "1" };
}

function badRequest(message: string): ReplayError {
  return new ReplayError(400, "bad-request", message);
}

/** A run, from the cache, from a worker already running it, or from a new worker if one is free. */
function replayRun(request: ReplayRequest): Promise<ReplayRun> {
  const key = `${request.seed} ${request.variant ?? "-"} ${request.stray}`;
  const done = cached.get(key);
  if (done !== undefined) {
    cached.delete(key); // most recently used last
    cached.set(key, done);
    return Promise.resolve(done);
  }
  const inFlight = running.get(key);
  if (inFlight !== undefined) return inFlight;
  if (running.size >= REPLAY_RUNS_MAX)
    throw new ReplayError(429, "busy", `${REPLAY_RUNS_MAX} runs are under way: try again in a few seconds`);
  const run = runInWorker(request).then(
    (result) => {
      running.delete(key);
      cached.set(key, result);
      while (cached.size > CACHED_RUNS_MAX) cached.delete(cached.keys().next().value as string);
      return result;
    },
    (error: unknown) => {
      running.delete(key);
      throw error;
    },
  );
  running.set(key, run);
  return run;
}

function runInWorker(request: ReplayRequest): Promise<ReplayRun> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./replay-worker.js", import.meta.url), { workerData: request });
    // A run in progress does not keep a process that is otherwise done from exiting.
    worker.unref();
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timer = setTimeout(() => {
      finish(() =>
        reject(
          new ReplayError(
            504,
            "timeout",
            `seed ${request.seed} ran over ${REPLAY_RUN_MS_MAX / 1000} s: stopped`,
          ),
        ),
      );
      void worker.terminate();
    }, REPLAY_RUN_MS_MAX);
    timer.unref();
    worker.on("message", (run: ReplayRun) => finish(() => resolve(run)));
    worker.on("error", (error) => finish(() => reject(error)));
    worker.on("exit", (code) =>
      finish(() => reject(new Error(`the replay worker for seed ${request.seed} exited with code ${code}`))),
    );
  });
}

function send(res: ServerResponse, status: number, type: string, body: Buffer | string): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-cache",
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, "application/json", `${JSON.stringify(body)}\n`);
}
