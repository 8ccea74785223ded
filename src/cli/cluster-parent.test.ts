import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { childrenOf, freePortRange, isAlive, ProcessGroup, runPaxosSync, waitFor } from "#test-support";

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
      // A cluster killed with SIGKILL cannot remove its temporary folder: the test does.
      const folder = /config (\/\S+)\/cluster\.json/.exec(cluster.stderr)?.[1];
      if (folder?.includes("paxos-cluster-")) rmSync(folder, { recursive: true, force: true });
    }
  });

  test("--dashboard wants HOST:PORT; a dashboard port in use is one line and exit 2, before any node starts", async () => {
    const bad = runPaxosSync(["cluster", "--dashboard", "nowhere"]);
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /--dashboard wants HOST:PORT, got "nowhere"/);

    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const base = await freePortRange(3);
      const group = new ProcessGroup();
      try {
        const run = await group.run(
          "cluster",
          ["cluster", "--base-port", String(base), "--dashboard", `127.0.0.1:${port}`],
          20_000,
        );
        assert.equal(run.code, 2, run.stderr);
        assert.match(
          run.stderr,
          new RegExp(`cannot serve the dashboard on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
        );
        assert.doesNotMatch(run.stderr, /\[node \d\]/);
      } finally {
        await group.stopAll();
      }
    } finally {
      taken.close();
    }
  });
});
