import assert from "node:assert/strict";
import { Agent, request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import { type ClusterConfig, parseClusterConfig } from "../runtime/index.js";
import { freeTcpPorts, freeUdpPorts, waitFor } from "../test-support/index.js";
import { type HttpApi, startHttpApi } from "./http.js";
import type { AppCommand, AppResult } from "./index.js";
import type { KvChange } from "./kv.js";
import { KvLockApp } from "./kv-lock-app.js";
import { type AppLimits, DEFAULT_APP_LIMITS, type HttpLimits } from "./limits.js";
import { type PaxosNode, startNode } from "./node.js";

type Node = PaxosNode<AppCommand, AppResult, KvLockApp>;

/** A cluster of real nodes in this process, on loopback, each with its HTTP API. */
interface TestCluster {
  readonly cluster: ClusterConfig;
  readonly nodes: Node[];
  readonly apis: HttpApi[];
  /** Each node's base URL, by index. */
  readonly urls: string[];
  /** Changes the first node's application reported through the hook it was built with. */
  readonly hookChanges: KvChange[];
  url(id: number): string;
  leader(): Node;
  followers(): Node[];
  stop(): Promise<void>;
}

/**
 * Starts `size` nodes of a `size`-node cluster (only `started` of them, default all) with HTTP
 * APIs, and waits until every started node knows one leader (unless `awaitLeader` is false).
 */
async function startCluster(
  options: {
    size?: number;
    started?: number;
    limits?: Partial<HttpLimits>;
    appLimits?: Partial<AppLimits>;
    awaitLeader?: boolean;
  } = {},
): Promise<TestCluster> {
  const size = options.size ?? 3;
  const started = options.started ?? size;
  const udp = await freeUdpPorts(size);
  const tcp = await freeTcpPorts(size);
  const parsed = parseClusterConfig(
    JSON.stringify({
      nodes: udp.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port, http: `127.0.0.1:${tcp[i]}` })),
    }),
  );
  assert.ok(parsed.ok);
  const cluster = parsed.value;
  const hookChanges: KvChange[] = [];
  const nodes = await Promise.all(
    Array.from({ length: started }, (_, i) =>
      startNode<AppCommand, AppResult, KvLockApp>({
        cluster,
        id: i + 1,
        app: new KvLockApp({
          limits: { ...DEFAULT_APP_LIMITS, ...options.appLimits },
          ...(i === 0 ? { onChange: (change: KvChange) => hookChanges.push(change) } : {}),
        }),
      }),
    ),
  );
  const apis = await Promise.all(
    nodes.map((node) =>
      startHttpApi(node, { cluster, ...(options.limits ? { limits: options.limits } : {}) }),
    ),
  );
  const urls = apis.map((api) => `http://127.0.0.1:${api.address.port}`);
  const leaderOf = () => nodes.find((node) => node.status().mode === "leader");
  if (options.awaitLeader ?? true)
    await waitFor(
      () => {
        const leader = leaderOf();
        return leader !== undefined && nodes.every((node) => node.status().leader === leader.id);
      },
      "every node to know one leader",
      { detail: () => JSON.stringify(nodes.map((node) => node.status())) },
    );
  return {
    cluster,
    nodes,
    apis,
    urls,
    hookChanges,
    url: (id) => urls[id - 1] as string,
    leader: () => leaderOf() as Node,
    followers: () => nodes.filter((node) => node !== leaderOf()),
    async stop() {
      await Promise.all(apis.map((api) => api.close()));
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  json(): Record<string, unknown>;
}

async function call(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const response = await fetch(url, {
    method: init.method ?? "GET",
    ...(init.body !== undefined ? { body: init.body } : {}),
    ...(init.headers !== undefined ? { headers: init.headers } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

/** Asserts the JSON error shape: `{code, message}` (strings) and the code. */
function assertError(answer: Answer, status: number, code: string): Record<string, unknown> {
  assert.equal(answer.status, status, answer.text);
  assert.equal(answer.headers.get("content-type"), "application/json");
  const body = answer.json();
  assert.equal(body.code, code, answer.text);
  assert.equal(typeof body.message, "string");
  assert.ok((body.message as string).length > 0);
  return body;
}

/** A server-sent event stream read in the background. */
interface EventStream {
  readonly status: number;
  readonly events: { event: string; id: string; data: Record<string, unknown> }[];
  close(): void;
}

async function openWatch(url: string): Promise<EventStream> {
  const controller = new AbortController();
  const response = await fetch(url, { signal: controller.signal });
  const events: EventStream["events"] = [];
  if (response.body !== null && response.status === 200) {
    const body = response.body;
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = "";
      try {
        for await (const chunk of body) {
          buffer += decoder.decode(chunk as Uint8Array, { stream: true });
          for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields: Record<string, string> = {};
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(": ");
              fields[line.slice(0, colon)] = line.slice(colon + 2);
            }
            if (fields.data !== undefined)
              events.push({
                event: fields.event ?? "message",
                id: fields.id ?? "",
                data: JSON.parse(fields.data),
              });
          }
        }
      } catch {
        // Aborted.
      }
    })();
  } else {
    await response.text();
  }
  return { status: response.status, events, close: () => controller.abort() };
}

const encode = encodeURIComponent;

describe("HTTP API on three real nodes", () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster();
  });
  after(async () => {
    await c.stop();
  });

  test("a put on a follower is answered once applied; a get on every node returns it (followers forward)", async () => {
    const follower = c.followers()[0] as Node;
    const put = await call(`${c.url(follower.id)}/kv/${encode("greeting/en")}`, {
      method: "PUT",
      body: "hello, world",
    });
    assert.equal(put.status, 200, put.text);
    const { revision } = put.json();
    assert.ok(typeof revision === "number" && revision >= 1);
    // Answered once applied on the node that took it.
    assert.equal(follower.app.get("greeting/en")?.value, "hello, world");
    for (const node of c.nodes) {
      const get = await call(`${c.url(node.id)}/kv/${encode("greeting/en")}`);
      assert.equal(get.status, 200, get.text);
      assert.equal(get.text, "hello, world");
      assert.equal(get.headers.get("paxos-revision"), String(revision));
      // The answer is the leader's: a follower forwarded the read.
      assert.equal(get.headers.get("paxos-node"), String(c.leader().id));
    }
    // The key may hold a slash unencoded, and any UTF-8.
    const raw = await call(`${c.url(1)}/kv/greeting/en`);
    assert.equal(raw.text, "hello, world");
  });

  test("a forwarded read reaching a node that does not lead is 503 not-leader naming the leader", async () => {
    const follower = c.followers()[0] as Node;
    const answer = await call(`${c.url(follower.id)}/kv/anything`, { headers: { "paxos-forwarded": "9" } });
    const body = assertError(answer, 503, "not-leader");
    assert.equal(body.leader, c.leader().id);
    assert.equal(body.leaderHttp, c.cluster.nodes.find((n) => n.id === c.leader().id)?.http);
  });

  test("a follower that does not know the leader's HTTP address answers 503 not-leader", async () => {
    const follower = c.followers()[0] as Node;
    const blind = await startHttpApi(follower, {
      cluster: { ...c.cluster, nodes: c.cluster.nodes.map(({ http: _http, ...node }) => node) },
    });
    try {
      const answer = await call(`http://127.0.0.1:${blind.address.port}/kv/anything`);
      const body = assertError(answer, 503, "not-leader");
      assert.match(body.message as string, /no "http" address/);
    } finally {
      await blind.close();
    }
  });

  test("a missing key is 404 not-found; an unknown route 404; a wrong method 405 with Allow", async () => {
    assertError(await call(`${c.url(1)}/kv/no-such-key`), 404, "not-found");
    assertError(await call(`${c.url(2)}/nope`), 404, "unknown-route");
    const wrong = await call(`${c.url(1)}/kv/a`, { method: "POST" });
    assertError(wrong, 405, "method-not-allowed");
    assert.equal(wrong.headers.get("allow"), "GET, PUT, DELETE");
    assertError(await call(`${c.url(1)}/kv/`, { method: "PUT", body: "x" }), 400, "bad-request");
    assertError(await call(`${c.url(1)}/kv/a?bogus=1`), 400, "bad-request");
  });

  test("delete answers the revision and whether the key existed; the key is gone", async () => {
    const put = await call(`${c.url(1)}/kv/doomed`, { method: "PUT", body: "x" });
    const putRevision = put.json().revision as number;
    const deleted = await call(`${c.url(2)}/kv/doomed`, { method: "DELETE" });
    assert.equal(deleted.status, 200, deleted.text);
    assert.deepEqual(deleted.json(), { revision: putRevision + 1, deleted: true });
    assertError(await call(`${c.url(3)}/kv/doomed`), 404, "not-found");
    const again = await call(`${c.url(1)}/kv/doomed`, { method: "DELETE" });
    assert.equal(again.json().deleted, false);
  });

  test("compare-and-set: prev-exist, prev-revision and prev-value succeed when they hold, else 412 with the entry", async () => {
    const url = `${c.url(2)}/kv/cas-key`;
    const created = await call(`${url}?prev-exist=false`, { method: "PUT", body: "v1" });
    assert.equal(created.status, 200, created.text);
    const revision = created.json().revision as number;
    const exists = assertError(
      await call(`${url}?prev-exist=false`, { method: "PUT", body: "v2" }),
      412,
      "cas-failed",
    );
    assert.deepEqual(exists.current, {
      key: "cas-key",
      value: "v1",
      createRevision: revision,
      modRevision: revision,
    });
    assertError(
      await call(`${url}?prev-revision=${revision + 100}`, { method: "PUT", body: "v2" }),
      412,
      "cas-failed",
    );
    const byRevision = await call(`${url}?prev-revision=${revision}`, { method: "PUT", body: "v2" });
    assert.equal(byRevision.status, 200, byRevision.text);
    assertError(await call(`${url}?prev-value=v1`, { method: "PUT", body: "v3" }), 412, "cas-failed");
    const byValue = await call(`${url}?prev-value=v2`, { method: "PUT", body: "v3" });
    assert.equal(byValue.status, 200, byValue.text);
    assert.equal((await call(url)).text, "v3");
    assertError(await call(`${url}?prev-value=v2`, { method: "DELETE" }), 412, "cas-failed");
    const deleted = await call(`${url}?prev-value=v3`, { method: "DELETE" });
    assert.equal(deleted.json().deleted, true);
    assertError(await call(`${url}?prev-exist=true`, { method: "PUT", body: "x" }), 400, "bad-request");
  });

  test("list by prefix: entries in key order, with a limit and whether there are more", async () => {
    for (const key of ["fruit/b", "fruit/a", "fruit/c", "veg/a"])
      assert.equal(
        (await call(`${c.url(1)}/kv/${key}`, { method: "PUT", body: key.toUpperCase() })).status,
        200,
      );
    const all = await call(`${c.url(3)}/kv?prefix=fruit/`);
    assert.equal(all.status, 200, all.text);
    const body = all.json() as { entries: { key: string; value: string }[]; more: boolean; revision: number };
    assert.deepEqual(
      body.entries.map((entry) => [entry.key, entry.value]),
      [
        ["fruit/a", "FRUIT/A"],
        ["fruit/b", "FRUIT/B"],
        ["fruit/c", "FRUIT/C"],
      ],
    );
    assert.equal(body.more, false);
    const limited = (await call(`${c.url(2)}/kv?prefix=fruit/&limit=2`)).json();
    assert.equal((limited.entries as unknown[]).length, 2);
    assert.equal(limited.more, true);
    assertError(await call(`${c.url(1)}/kv?limit=0`), 400, "bad-request");
  });

  test("a watch gets the changes since its revision, then live changes under its prefix only; the app's own hook still runs", async () => {
    const first = (await call(`${c.url(1)}/kv/watched/a`, { method: "PUT", body: "1" })).json()
      .revision as number;
    const watch = await openWatch(`${c.url(2)}/watch/watched/?revision=${first}`);
    try {
      assert.equal(watch.status, 200);
      await waitFor(() => watch.events.length >= 1, "the history to arrive");
      assert.deepEqual(watch.events[0], {
        event: "put",
        id: String(first),
        data: { revision: first, key: "watched/a", value: "1" },
      });
      await call(`${c.url(3)}/kv/elsewhere`, { method: "PUT", body: "no" });
      const second = (await call(`${c.url(3)}/kv/watched/b`, { method: "PUT", body: "2" })).json().revision;
      const third = (await call(`${c.url(1)}/kv/watched/a`, { method: "DELETE" })).json().revision;
      await waitFor(() => watch.events.length >= 3, "two live changes", {
        detail: () => JSON.stringify(watch.events),
      });
      assert.deepEqual(watch.events.slice(1), [
        { event: "put", id: String(second), data: { revision: second, key: "watched/b", value: "2" } },
        { event: "delete", id: String(third), data: { revision: third, key: "watched/a", value: null } },
      ]);
      await waitFor(() => c.hookChanges.some((change) => change.revision === third), "node 1's own hook");
    } finally {
      watch.close();
    }
  });

  test("locks: a second client waits and is granted a higher token once the holder releases", async () => {
    const first = await call(`${c.url(1)}/lock/printer`, { method: "POST" });
    assert.equal(first.status, 200, first.text);
    const { token: firstToken, session: firstSession } = first.json() as { token: number; session: number };
    assert.equal(first.headers.get("paxos-session"), String(firstSession));
    const opened = await call(`${c.url(3)}/session`, { method: "POST" });
    const secondSession = opened.json().session as number;
    const waiting = call(`${c.url(3)}/lock/printer?wait-ms=20000`, {
      method: "POST",
      headers: { "paxos-session": String(secondSession) },
    });
    await waitFor(
      () => c.leader().app.waiters("printer").includes(secondSession),
      "the second client to be queued",
    );
    const state = (await call(`${c.url(2)}/lock/printer`)).json();
    assert.deepEqual(state, {
      holder: { session: firstSession, token: firstToken },
      waiters: [secondSession],
    });
    const released = await call(`${c.url(2)}/lock/printer`, {
      method: "DELETE",
      headers: { "paxos-session": String(firstSession) },
    });
    assert.deepEqual(released.json(), { released: "held" });
    const granted = await waiting;
    assert.equal(granted.status, 200, granted.text);
    const { token, session } = granted.json() as { token: number; session: number };
    assert.equal(session, secondSession);
    assert.ok(token > firstToken, `${token} > ${firstToken}`);
    await call(`${c.url(1)}/lock/printer`, {
      method: "DELETE",
      headers: { "paxos-session": String(session) },
    });
  });

  test("a lock wait that times out is 504 and leaves the queue: the lock is not granted to it later", async () => {
    const holder = (await call(`${c.url(2)}/lock/door`, { method: "POST" })).json() as { session: number };
    const timedOut = await call(`${c.url(1)}/lock/door?wait-ms=200`, { method: "POST" });
    const body = assertError(timedOut, 504, "timeout");
    assert.equal(body.granted, false);
    assert.deepEqual(c.leader().app.waiters("door"), []);
    await call(`${c.url(2)}/lock/door`, {
      method: "DELETE",
      headers: { "paxos-session": String(holder.session) },
    });
    const state = (await call(`${c.url(3)}/lock/door`)).json();
    assert.deepEqual(state, { holder: null, waiters: [] });
    assertError(
      await call(`${c.url(1)}/lock/door`, { method: "DELETE", headers: { "paxos-session": "999999" } }),
      409,
      "session-expired",
    );
  });

  test("a write retried with the same Paxos-Session and Paxos-Seq on another node applies once", async () => {
    const session = (await call(`${c.url(1)}/session`, { method: "POST" })).json().session as number;
    const headers = { "paxos-session": String(session), "paxos-seq": "1" };
    const first = await call(`${c.url(1)}/kv/once`, { method: "PUT", body: "a", headers });
    const revision = first.json().revision as number;
    const retried = await call(`${c.url(2)}/kv/once`, { method: "PUT", body: "a", headers });
    assert.deepEqual(retried.json(), { revision });
    const entry = await call(`${c.url(3)}/kv/once`);
    assert.equal(entry.headers.get("paxos-revision"), String(revision));
    const listed = (await call(`${c.url(3)}/kv?prefix=once`)).json();
    assert.equal(listed.revision, c.leader().app.revision);
    assert.ok(c.nodes.every((node) => node.app.get("once")?.modRevision === revision));
    // The next command of the session applies; a header alone is a bad request.
    const next = await call(`${c.url(3)}/kv/once`, {
      method: "PUT",
      body: "b",
      headers: { "paxos-session": String(session), "paxos-seq": "2" },
    });
    assert.ok((next.json().revision as number) > revision);
    assertError(
      await call(`${c.url(1)}/kv/once`, { method: "PUT", body: "c", headers: { "paxos-seq": "3" } }),
      400,
      "bad-request",
    );
    // A kept-alive session answers 200; an unknown one 409.
    assert.equal((await call(`${c.url(2)}/session/${session}`, { method: "PUT" })).status, 200);
    assertError(await call(`${c.url(2)}/session/987654`, { method: "PUT" }), 409, "session-expired");
  });

  test("a body over the limit is 413 too-large, announced or streamed; a value over 7 KiB is 413 too", async () => {
    const announced = await call(`${c.url(1)}/kv/big`, { method: "PUT", body: "x".repeat(20_000) });
    assertError(announced, 413, "too-large");
    const streamed = await fetch(`${c.url(1)}/kv/big`, {
      method: "PUT",
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < 10; i++) controller.enqueue(new TextEncoder().encode("y".repeat(2000)));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    assert.equal(streamed.status, 413);
    assert.equal(((await streamed.json()) as { code: string }).code, "too-large");
    assertError(
      await call(`${c.url(1)}/kv/big`, { method: "PUT", body: "z".repeat(8000) }),
      413,
      "value-too-large",
    );
    assertError(await call(`${c.url(1)}/kv/big`), 404, "not-found");
  });

  test("/health is 200 with the node's status on every node", async () => {
    for (const node of c.nodes) {
      const answer = await call(`${c.url(node.id)}/health`);
      assert.equal(answer.status, 200, answer.text);
      const body = answer.json();
      assert.equal(body.status, "ok");
      assert.equal(body.id, node.id);
      assert.equal(body.leader, c.leader().id);
    }
  });

  test("keep-alive: many requests reuse one connection", async () => {
    const sockets = new Set<Socket>();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve, reject) => {
          const request = httpRequest(`${c.url(1)}/health`, { agent }, (response) => {
            sockets.add(response.socket);
            response.resume();
            response.on("end", resolve);
          });
          request.on("error", reject);
          request.end();
        });
      }
      assert.equal(sockets.size, 1);
    } finally {
      agent.destroy();
    }
  });
});

describe("HTTP API bounds and health without a leader", () => {
  test("past the connection bound a request is answered 429 busy, not left hanging", async () => {
    const c = await startCluster({ size: 1, limits: { connectionsMax: 2 } });
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const socket = connect(c.apis[0]?.address.port as number, "127.0.0.1");
        await new Promise((resolve) => socket.once("connect", resolve));
        idle.push(socket);
      }
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = httpRequest(`${c.url(1)}/health`, { agent: false }, (response) => {
          let body = "";
          response.setEncoding("utf8").on("data", (chunk: string) => {
            body += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        });
        request.on("error", reject);
        request.end();
      });
      assert.equal(answer.status, 429);
      assert.equal(JSON.parse(answer.body).code, "busy");
      // Once the idle connections close, a new one is served again.
      for (const socket of idle) socket.destroy();
      let status = 0;
      let asking = false;
      await waitFor(() => {
        if (status === 200) return true;
        if (!asking) {
          asking = true;
          const request = httpRequest(`${c.url(1)}/health`, { agent: false }, (response) => {
            response.resume();
            response.on("end", () => {
              status = response.statusCode ?? 0;
              asking = false;
            });
          });
          request.on("error", () => {
            asking = false;
          });
          request.end();
        }
        return false;
      }, "the node to take connections again");
    } finally {
      for (const socket of idle) socket.destroy();
      await c.stop();
    }
  });

  test("past the watch bound a watch is answered 429 busy", async () => {
    const c = await startCluster({ size: 1, limits: { watchesMax: 1 } });
    try {
      const first = await openWatch(`${c.url(1)}/watch/`);
      assert.equal(first.status, 200);
      const second = await call(`${c.url(1)}/watch/`);
      assertError(second, 429, "busy");
      first.close();
    } finally {
      await c.stop();
    }
  });

  test("past the lock-wait bound a lock request is answered 429 busy", async () => {
    const c = await startCluster({ size: 1, limits: { lockWaitsMax: 1 } });
    try {
      const holder = await call(`${c.url(1)}/lock/l`, { method: "POST" });
      assert.equal(holder.status, 200);
      const session = (await call(`${c.url(1)}/session`, { method: "POST" })).json().session as number;
      const waiting = call(`${c.url(1)}/lock/l?wait-ms=10000`, {
        method: "POST",
        headers: { "paxos-session": String(session) },
      });
      await waitFor(() => c.nodes[0]?.app.waiters("l").includes(session) ?? false, "the first waiter");
      assertError(await call(`${c.url(1)}/lock/l?wait-ms=10000`, { method: "POST" }), 429, "busy");
      await call(`${c.url(1)}/lock/l`, {
        method: "DELETE",
        headers: { "paxos-session": String(holder.json().session) },
      });
      assert.equal((await waiting).status, 200);
    } finally {
      await c.stop();
    }
  });

  test("a watch from a revision no longer kept is 410 compacted with the oldest kept", async () => {
    const c = await startCluster({ size: 1, appLimits: { watchHistoryMax: 3 } });
    try {
      for (let i = 1; i <= 5; i++) await call(`${c.url(1)}/kv/k${i}`, { method: "PUT", body: String(i) });
      const answer = await call(`${c.url(1)}/watch/?revision=1`);
      const body = assertError(answer, 410, "compacted");
      assert.equal(body.oldest, 3);
      const kept = await openWatch(`${c.url(1)}/watch/?revision=3`);
      await waitFor(() => kept.events.length === 3, "the three kept changes");
      kept.close();
    } finally {
      await c.stop();
    }
  });

  test("/health is 503 with why when no leader is known; a read is 503 too", async () => {
    const c = await startCluster({ size: 3, started: 1, awaitLeader: false });
    try {
      const answer = await call(`${c.url(1)}/health`);
      const body = assertError(answer, 503, "no-leader");
      assert.equal(body.status, "unavailable");
      assert.equal(body.leader, null);
      const read = await call(`${c.url(1)}/kv/a`);
      assert.equal(read.status, 503, read.text);
    } finally {
      await c.stop();
    }
  });
});
