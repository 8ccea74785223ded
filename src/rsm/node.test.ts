/**
 * The embeddable node's time (a leader's, in the log): sessions expire through the log even when
 * every client talks to a follower, because the leader puts its time in the log now and then.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseClusterConfig } from "../runtime/index.js";
import { freeUdpPorts, waitFor } from "../test-support/index.js";
import { PaxosError } from "./api.js";
import type { AppCommand, AppResult } from "./kv-lock-app.js";
import { KvLockApp } from "./kv-lock-app.js";
import { type PaxosNode, startNode } from "./node.js";

test("a session opened on a follower and left silent expires through the leader's clock entries", async () => {
  const ports = await freeUdpPorts(3);
  const parsed = parseClusterConfig(
    JSON.stringify({ nodes: ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port })) }),
  );
  assert.ok(parsed.ok);
  const nodes: PaxosNode<AppCommand, AppResult, KvLockApp>[] = await Promise.all(
    [1, 2, 3].map((id) =>
      startNode<AppCommand, AppResult, KvLockApp>({
        cluster: parsed.value,
        id,
        app: new KvLockApp(),
        limits: { clockIntervalMs: 50 },
        sessionLimits: { sessionTtlMs: 300 },
      }),
    ),
  );
  try {
    await nodes[0]?.propose({ op: "put", key: "a", value: "1" });
    await waitFor(() => nodes.every((n) => n.status().leader !== null), "every node to know the leader");
    const follower = nodes.find((n) => n.status().mode !== "leader") as PaxosNode<
      AppCommand,
      AppResult,
      KvLockApp
    >;
    const session = await follower.openSession();
    assert.ok(session > 0);
    // Silent for more than the TTL in the leader's time: the leader's clock entries (the only
    // entries in the log now) expire it on every replica, and the next keepalive finds it expired.
    await waitFor(() => !follower.machine.hasSession(session), "the session to expire", {
      timeoutMs: 10_000,
    });
    assert.ok(follower.machine.clockKnown, "the log has a leader's time");
    const error = await follower.keepAlive(session).catch((e: unknown) => e);
    assert.ok(error instanceof PaxosError && error.code === "session-expired", String(error));
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
});
