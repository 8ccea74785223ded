/**
 * Issue 10, real processes: three `paxos node --data --http` processes, concurrent HTTP clients doing
 * get/put/cas on a few keys and taking a lock, while a nemesis SIGKILLs and restarts, or SIGSTOPs
 * and resumes, one node at a time. The recorded history must be linearizable (the register model,
 * key by key), and no fencing token is ever granted twice.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Prng } from "../core/index.js";
import { checkHistory, operationsOf, registerModel } from "../lincheck/index.js";
import { freeTcpPorts, freeUdpPorts, ProcessGroup, type StartedProcess } from "../test-support/index.js";

interface Reply {
  readonly status: number;
  readonly body: string;
}

/** One HTTP request with a deadline; rejects on a connection error or when the deadline passes. */
function call(
  port: number,
  method: string,
  path: string,
  options: { body?: string; headers?: Record<string, string>; timeoutMs: number },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method, path, headers: options.headers, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.setTimeout(options.timeoutMs, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** How a call's outcome counts: done (with a reply), not done for sure, or unknown. */
type Attempt = { kind: "reply"; reply: Reply } | { kind: "not-done" } | { kind: "unknown" };

/** Statuses that say nothing was done: 503 (no leader, not leader, stopped before), 429 (busy). */
const NOT_DONE = new Set([429, 503]);

const RUN_MS = 12_000;
const KEYS = ["a", "b", "c"];

test("three real nodes under SIGKILL and SIGSTOP: the clients' history is linearizable, and no fencing token is granted twice", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "paxos-kv-nemesis-"));
  const group = new ProcessGroup();
  const prng = new Prng(20261205);
  try {
    const udp = await freeUdpPorts(3);
    const http = await freeTcpPorts(3);
    const config = join(dir, "cluster.json");
    writeFileSync(
      config,
      JSON.stringify({
        nodes: [0, 1, 2].map((i) => ({
          id: i + 1,
          host: "127.0.0.1",
          port: udp[i],
          http: `127.0.0.1:${http[i]}`,
        })),
      }),
    );
    const procs: (StartedProcess | null)[] = [null, null, null];
    const start = (i: number, first: boolean) => {
      procs[i] = group.start(`node ${i + 1}`, [
        "node",
        "--config",
        config,
        "--id",
        String(i + 1),
        "--data",
        join(dir, `n${i + 1}`),
        ...(first ? ["--new"] : []),
      ]);
    };
    for (const i of [0, 1, 2]) start(i, true);
    const healthy = async () => {
      for (const port of http) {
        const reply = await call(port, "GET", "/health", { timeoutMs: 500 }).catch(() => null);
        if (reply?.status === 200) return true;
      }
      return false;
    };
    // Up once a node says it is a member in good standing that knows a leader.
    const upBy = Date.now() + 30_000;
    while (!(await healthy())) {
      if (Date.now() > upBy)
        assert.fail(`no node became healthy:\n${procs.map((p) => p?.stderr.slice(-400)).join("\n")}`);
      if (procs.some((p) => p?.done()))
        assert.fail(`a node exited:\n${procs.map((p) => p?.stderr.slice(-400)).join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the poll interval
    }

    // --- the nemesis: one node at a time is killed and restarted, or paused and resumed ----------
    const faults: string[] = [];
    let stopping = false;
    const paused = new Set<number>();
    const nemesis = (async () => {
      while (!stopping) {
        await new Promise((resolve) => setTimeout(resolve, 1000 + prng.int(800)));
        if (stopping) break;
        const i = prng.int(3);
        const proc = procs[i] as StartedProcess;
        const downMs = 400 + prng.int(900);
        if (prng.chance(0.5)) {
          faults.push(`kill ${i + 1}`);
          proc.kill("SIGKILL");
          await proc.exited;
          await new Promise((resolve) => setTimeout(resolve, downMs));
          start(i, false);
        } else {
          faults.push(`pause ${i + 1}`);
          proc.kill("SIGSTOP");
          paused.add(i);
          await new Promise((resolve) => setTimeout(resolve, downMs));
          proc.kill("SIGCONT");
          paused.delete(i);
        }
      }
    })();

    // --- the clients ------------------------------------------------------------------------------
    const events: {
      process: number;
      f: string;
      key: string;
      input: unknown;
      output?: unknown;
      outcome?: "ok" | "info" | "fail";
      callAt: number;
      returnAt: number;
    }[] = [];
    let clock = 0;
    const tick = () => ++clock;
    const deadline = Date.now() + RUN_MS;

    /** Tries a request on node after node (from a random one), `tries` times in all. */
    const attempt = async (method: string, path: string, headers: Record<string, string>, body?: string) => {
      let unknown = false;
      const first = prng.int(3);
      for (let n = 0; n < 6; n++) {
        const port = http[(first + n) % 3] as number;
        try {
          const reply = await call(port, method, path, {
            headers,
            timeoutMs: 1500,
            ...(body !== undefined ? { body } : {}),
          });
          if (NOT_DONE.has(reply.status)) continue;
          if (reply.status === 504) {
            unknown = true;
            continue;
          }
          return { kind: "reply", reply } as Attempt;
        } catch {
          // Refused (the node is down) before anything was sent: nothing done. A timeout or a
          // reset after sending: unknown. Either way, the same seq goes to the next node.
          if (method !== "GET") unknown = true;
        }
      }
      return (unknown ? { kind: "unknown" } : { kind: "not-done" }) as Attempt;
    };

    const kvClient = async (process: number) => {
      let session = 0;
      while (session === 0 && Date.now() < deadline) {
        const opened = await attempt("POST", "/session", {});
        if (opened.kind === "reply" && opened.reply.status === 200)
          session = JSON.parse(opened.reply.body).session;
      }
      let seq = 0;
      let written = 0;
      while (Date.now() < deadline) {
        const key = KEYS[prng.int(KEYS.length)] as string;
        const f = prng.pick(["read", "read", "write", "cas"] as const);
        const event: (typeof events)[number] = { process, f, key, input: null, callAt: tick(), returnAt: 0 };
        events.push(event);
        if (f === "read") {
          const result = await attempt("GET", `/kv/${key}`, {});
          event.returnAt = tick();
          if (result.kind === "reply" && (result.reply.status === 200 || result.reply.status === 404)) {
            event.outcome = "ok";
            event.output = result.reply.status === 200 ? result.reply.body : null;
          } else event.outcome = "fail"; // a read that did not answer changed nothing
          continue;
        }
        const value = `${process}.${++written}`;
        const headers = { "paxos-session": String(session), "paxos-seq": String(++seq) };
        let path = `/kv/${key}`;
        if (f === "cas") {
          const seen = events.filter((e) => e.key === key && e.outcome === "ok" && e.f === "read");
          const expected = (seen[seen.length - 1]?.output as string | null | undefined) ?? null;
          event.input = [expected, value];
          path += expected === null ? "?prev-exist=false" : `?prev-value=${encodeURIComponent(expected)}`;
        } else event.input = value;
        const result = await attempt("PUT", path, headers, value);
        event.returnAt = tick();
        if (result.kind === "reply" && result.reply.status === 200) event.outcome = "ok";
        else if (result.kind === "reply" && result.reply.status === 412) event.outcome = "fail";
        else if (result.kind === "reply" && result.reply.status === 409) {
          // The session expired (a long outage): nothing was done unless an earlier try was.
          event.outcome = "info";
          session = 0;
          while (session === 0 && Date.now() < deadline + 5000) {
            const opened = await attempt("POST", "/session", {});
            if (opened.kind === "reply" && opened.reply.status === 200)
              session = JSON.parse(opened.reply.body).session;
          }
          seq = 0;
        } else event.outcome = result.kind === "not-done" ? "fail" : "info";
      }
    };

    const grants: { process: number; token: number; session: number }[] = [];
    const lockClient = async (process: number) => {
      let session = 0;
      while (Date.now() < deadline) {
        if (session === 0) {
          const opened = await attempt("POST", "/session", {});
          if (opened.kind === "reply" && opened.reply.status === 200)
            session = JSON.parse(opened.reply.body).session;
          continue;
        }
        const result = await attempt("POST", "/lock/L?wait-ms=1000", { "paxos-session": String(session) });
        if (result.kind === "reply" && result.reply.status === 200) {
          const { token } = JSON.parse(result.reply.body) as { token: number };
          grants.push({ process, token, session });
          await attempt("DELETE", "/lock/L", { "paxos-session": String(session) });
        } else if (result.kind === "reply" && result.reply.status === 409) session = 0;
      }
    };

    await Promise.all([1, 2, 3, 4, 5].map(kvClient).concat([11, 12].map(lockClient)));
    stopping = true;
    await nemesis;
    for (const i of paused) procs[i]?.kill("SIGCONT");

    // --- the verdicts -----------------------------------------------------------------------------
    const operations = operationsOf(events);
    const ok = operations.filter((o) => o.outcome === "ok");
    t.diagnostic(
      `faults: ${faults.join(", ")}; ${events.length} operations, ${ok.length} ok, ${operations.length - ok.length} unknown; ${grants.length} lock grants`,
    );
    assert.ok(faults.length >= 4, `the nemesis struck ${faults.length} times`);
    assert.ok(ok.length >= 50, `only ${ok.length} operations succeeded`);
    const verdict = checkHistory(registerModel, operations);
    assert.equal(
      verdict.verdict,
      "linearizable",
      verdict.failure === null
        ? verdict.verdict
        : `key ${verdict.failure.key}: ${JSON.stringify(verdict.failure.prefix.slice(-8))}`,
    );
    // A retried acquire may hear of the same grant twice (its session holds the lock already); a
    // token must never go to two sessions.
    const holderOf = new Map<number, number>();
    for (const grant of grants) {
      const holder = holderOf.get(grant.token);
      assert.ok(
        holder === undefined || holder === grant.session,
        `token ${grant.token} granted to sessions ${holder} and ${grant.session}`,
      );
      holderOf.set(grant.token, grant.session);
    }
    assert.ok(grants.length >= 2, `only ${grants.length} lock grants`);
  } finally {
    await group.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});
