import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { childrenOf, freePortRange, isAlive, ProcessGroup, waitFor } from "#test-support";

describe("paxos cluster and its nodes (issue 11)", () => {
  test("the nodes of a cluster whose process was SIGKILLed exit when it goes (their IPC channel closes)", async () => {
    const group = new ProcessGroup();
    const base = await freePortRange(3);
    const cluster = group.start(
      "cluster",
      ["cluster", "--nodes", "3", "--demo", "--base-port", String(base)],
      {
        logLevel: "warn",
      },
    );
    try {
      await waitFor(() => childrenOf(cluster.pid as number).length === 3, "three node processes", {
        detail: () => cluster.stderr,
      });
      const nodes = childrenOf(cluster.pid as number);
      for (const pid of nodes) group.grandchildren.add(pid);
      // Up and deciding (the demo's first value), so the nodes are past their start.
      await waitFor(() => cluster.stdout.includes("decided: demo-1"), "the first demo value", {
        detail: () => cluster.stderr,
      });
      assert.ok(nodes.every(isAlive));
      cluster.kill("SIGKILL");
      await cluster.exited;
      await waitFor(
        () => nodes.every((pid) => !isAlive(pid)),
        "every node to exit after its parent was killed",
        {
          timeoutMs: 10_000,
          detail: () => `still running: ${nodes.filter(isAlive).join(", ")}`,
        },
      );
    } finally {
      await group.stopAll();
    }
  });
});
