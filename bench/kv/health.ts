/** Waiting for a system's nodes to answer `GET /health`. */
import { get as httpGet } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type StartedProcess, waitFor } from "#test-support";

/** Time between two rounds of `/health` requests. */
const POLL_MS = 100;
/** A `/health` request not answered within this long counts as not healthy. */
const REQUEST_TIMEOUT_MS = 1000;

/** Resolves with the status of `GET url` (0 on a connection error or no answer in time). */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = httpGet(url, { timeout: REQUEST_TIMEOUT_MS }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
    });
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", () => resolve(0));
  });
}

/** A background poll of `/health` (see `pollHealth`). */
export interface HealthPoll {
  /** True once enough nodes answered 200 in one round. */
  healthy(): boolean;
  /** Ends the poll (a request in flight finishes on its own). */
  stop(): void;
}

/**
 * Polls `GET <url>/health` on every URL, every 100 ms, until `healthyCount` of them (default: all)
 * answer 200 in one round, or `stop()`. `healthy()` is synchronous, for `waitFor`.
 *
 * @example
 * const poll = pollHealth(urls);
 * try { await waitFor(() => poll.healthy(), "the nodes to be healthy"); } finally { poll.stop(); }
 */
export function pollHealth(urls: readonly string[], healthyCount = urls.length): HealthPoll {
  let healthy = false;
  let stopped = false;
  void (async () => {
    while (!healthy && !stopped) {
      const statuses = await Promise.all(urls.map((url) => statusOf(`${url}/health`)));
      if (statuses.filter((status) => status === 200).length >= healthyCount) healthy = true;
      else await sleep(POLL_MS);
    }
  })();
  return {
    healthy: () => healthy,
    stop: () => {
      stopped = true;
    },
  };
}

/** Most time for fresh nodes or members to start, elect a leader and answer `/health`. */
const READY_TIMEOUT_MS = 60_000;
/** Lines of a process's stderr quoted when it fails to start. */
const TAIL_LINES = 15;

/** The last lines of a process's output, for an error. */
export function tail(text: string): string {
  return text.trim().split("\n").slice(-TAIL_LINES).join("\n");
}

/**
 * Waits until `healthyCount` of `urls` answer `/health` with 200 (see `pollHealth`), or throws: one
 * of `processes` exited first (with its output), or none became healthy in a minute.
 */
export async function awaitHealthy(
  urls: readonly string[],
  processes: readonly StartedProcess[],
  what: string,
  healthyCount = urls.length,
): Promise<void> {
  const health = pollHealth(urls, healthyCount);
  try {
    await waitFor(() => health.healthy() || processes.some((proc) => proc.done()), what, {
      timeoutMs: READY_TIMEOUT_MS,
      pollMs: 50,
      detail: () => processes.map((proc) => `${proc.name}: ${tail(proc.stderr)}`).join("\n"),
    });
  } finally {
    health.stop();
  }
  const dead = processes.find((proc) => proc.done());
  if (dead !== undefined)
    throw new Error(
      `${dead.name} exited (${dead.exit?.code ?? dead.exit?.signal}) before ${what}: ${tail(dead.stderr)}`,
    );
}
