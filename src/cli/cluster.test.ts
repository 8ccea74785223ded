import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { describe, test } from "node:test";
import {
  childrenOf,
  freePortRange,
  isAlive,
  ProcessGroup,
  type StartedProcess,
  waitFor,
} from "../test-support/index.js";

/** The folder `paxos cluster` printed its config in (its temporary folder without --data). */
function configDir(stderr: string): string {
  const path = /; config (\S+)\n/.exec(stderr)?.[1];
  assert.ok(path !== undefined, stderr);
  return dirname(path);
}

/** Waits for `count` processes under `cluster` and has the group make sure they are gone at the end. */
async function childrenAre(
  processes: ProcessGroup,
  cluster: StartedProcess,
  count: number,
): Promise<number[]> {
  const pid = cluster.child.pid as number;
  await waitFor(() => childrenOf(pid).length === count, `${count} processes under the cluster`, {
    detail: () => cluster.stderr,
  });
  const pids = childrenOf(pid);
  for (const child of pids) processes.grandchildren.add(child);
  return pids;
}

/** Types `values` and waits for each to be printed as decided. */
async function decides(cluster: StartedProcess, values: readonly string[]): Promise<void> {
  cluster.child.stdin?.write(`${values.join("\n")}\n`);
  await waitFor(
    () => values.every((value) => cluster.stdout.includes(`decided: ${value}\n`)),
    `${values.join(", ")} to be decided`,
    {
      timeoutMs: 30_000,
      detail: () => `${cluster.stdout}\n${cluster.stderr}`,
    },
  );
}

/** Stops the cluster with SIGTERM; asserts a clean exit, every process gone and the temporary folder removed. */
async function stopsCleanly(
  processes: ProcessGroup,
  cluster: StartedProcess,
  pids: readonly number[],
): Promise<void> {
  const dir = configDir(cluster.stderr);
  assert.ok(existsSync(dir), `${dir} exists while the cluster runs`);
  const exit = await processes.stop(cluster);
  assert.deepEqual(exit, { code: 0, signal: null }, cluster.stderr);
  await waitFor(() => pids.every((pid) => !isAlive(pid)), "every process of the cluster to exit", {
    timeoutMs: 5000,
  });
  assert.equal(existsSync(dir), false, `the temporary folder ${dir} is removed`);
  assert.doesNotMatch(cluster.stderr, /exited \(|FATAL/);
}

describe("paxos cluster options", () => {
  test("a node that cannot start (its port in use) stops the cluster: exit 1, one line naming the node and why", async () => {
    const processes = new ProcessGroup();
    const base = await freePortRange(3);
    const squatter = createSocket("udp4");
    await new Promise<void>((resolve) => squatter.bind(base + 1, "127.0.0.1", resolve));
    try {
      const cluster = processes.start("cluster", ["cluster", "--base-port", String(base)]);
      const exit = await cluster.finish(30_000);
      assert.deepEqual(exit, { code: 1, signal: null }, cluster.stderr);
      const said = cluster.stderr.split("\n").filter((line) => line.startsWith("paxos cluster: node"));
      assert.equal(said.length, 1, cluster.stderr);
      assert.match(
        said[0] as string,
        new RegExp(
          `^paxos cluster: node 2 exited \\(status \\d\\): cannot start node 2 on 127\\.0\\.0\\.1:${base + 1}: .*EADDRINUSE.*; stopping the cluster$`,
        ),
      );
      assert.equal(existsSync(configDir(cluster.stderr)), false, "the temporary folder is removed");
    } finally {
      squatter.close();
      await processes.stopAll();
    }
  });

  test("--weights 3,1,1: a weighted quorum, written in the cluster file and said, and it decides", async () => {
    const processes = new ProcessGroup();
    try {
      const base = await freePortRange(3);
      const cluster = processes.start(
        "cluster",
        ["cluster", "--weights", "3,1,1", "--base-port", String(base)],
        { stdin: true },
      );
      await waitFor(() => cluster.stderr.includes("paxos cluster: quorum"), "the cluster to start");
      assert.match(cluster.stderr, /paxos cluster: 3 nodes on /);
      assert.match(
        cluster.stderr,
        /paxos cluster: quorum more than half the total weight \(weights 3,1,1\)\n/,
      );
      const file = JSON.parse(readFileSync(`${configDir(cluster.stderr)}/cluster.json`, "utf8")) as {
        quorum: unknown;
        nodes: { weight?: number }[];
      };
      assert.deepEqual(file.quorum, { kind: "weighted" });
      assert.deepEqual(
        file.nodes.map((node) => node.weight),
        [3, 1, 1],
      );
      const pids = await childrenAre(processes, cluster, 3);
      await decides(cluster, ["weighted 1", "weighted 2"]);
      await stopsCleanly(processes, cluster, pids);
    } finally {
      await processes.stopAll();
    }
  });

  test("--quorum flexible: phase-1 quorums of weight 3, phase-2 quorums of weight 1, and it decides", async () => {
    const processes = new ProcessGroup();
    try {
      const base = await freePortRange(3);
      const cluster = processes.start(
        "cluster",
        [
          "cluster",
          "--quorum",
          "flexible",
          "--phase1-weight",
          "3",
          "--phase2-weight",
          "1",
          "--base-port",
          String(base),
        ],
        { stdin: true },
      );
      await waitFor(() => cluster.stderr.includes("paxos cluster: quorum"), "the cluster to start");
      assert.match(
        cluster.stderr,
        /paxos cluster: quorum flexible: phase 1 \(prepare\) needs weight 3, phase 2 \(accept\) weight 1\n/,
      );
      const file = JSON.parse(readFileSync(`${configDir(cluster.stderr)}/cluster.json`, "utf8")) as {
        quorum: unknown;
      };
      assert.deepEqual(file.quorum, { kind: "flexible", phase1Weight: 3, phase2Weight: 1 });
      const pids = await childrenAre(processes, cluster, 3);
      await decides(cluster, ["flexible 1"]);
      await stopsCleanly(processes, cluster, pids);
    } finally {
      await processes.stopAll();
    }
  });

  test("--separate-roles: acceptors, proposers, learners and a client as separate processes, said where; typed values decided", async () => {
    const processes = new ProcessGroup();
    try {
      const base = await freePortRange(4);
      const cluster = processes.start(
        "cluster",
        [
          "cluster",
          "--separate-roles",
          "--acceptors",
          "3",
          "--proposers",
          "2",
          "--learners",
          "2",
          "--base-port",
          String(base),
        ],
        { stdin: true },
      );
      await waitFor(() => cluster.stderr.includes("paxos cluster: state:"), "the cluster to start");
      assert.match(
        cluster.stderr,
        /paxos cluster: separate roles over UDP multicast on 127\.0\.0\.1; config \S+paxos\.conf\n/,
      );
      assert.match(
        cluster.stderr,
        new RegExp(
          `3 acceptors \\(ids 1\\.\\.3, majority quorums of 2\\) on group 239\\.0\\.0\\.1:${base + 2}, pids \\d+,\\d+,\\d+\\n`,
        ),
      );
      assert.match(
        cluster.stderr,
        new RegExp(
          `2 proposers \\(ids 1\\.\\.2; one leads at a time\\) on group 239\\.0\\.0\\.1:${base + 1}, pids \\d+,\\d+\\n`,
        ),
      );
      assert.match(
        cluster.stderr,
        new RegExp(
          `2 learners \\(ids 1\\.\\.2; learner 1's values are printed\\) on group 239\\.0\\.0\\.1:${base + 3}, pids \\d+,\\d+\\n`,
        ),
      );
      assert.match(
        cluster.stderr,
        new RegExp(`1 client \\(id 1; sends what you type\\) on group 239\\.0\\.0\\.1:${base}, pid \\d+\\n`),
      );
      const pids = await childrenAre(processes, cluster, 3 + 2 + 2 + 1);
      const config = readFileSync(`${configDir(cluster.stderr)}/paxos.conf`, "utf8");
      assert.equal(
        config,
        `clients 239.0.0.1 ${base}\nproposers 239.0.0.1 ${base + 1}\nacceptors 239.0.0.1 ${base + 2}\nlearners 239.0.0.1 ${base + 3}\n`,
      );
      // A line that is not UTF-8 is refused, a blank line skipped, as the collapsed cluster does.
      cluster.child.stdin?.write(Buffer.from([0xc3, 0x28, 0x0a, 0x0a]));
      await decides(cluster, ["separate 1", "separate 2", "separate 3"]);
      assert.match(cluster.stderr, /paxos cluster: line 1 is not valid UTF-8; not sent\n/);
      const decided = cluster.stdout.split("\n").filter((line) => line !== "");
      assert.deepEqual(decided, ["decided: separate 1", "decided: separate 2", "decided: separate 3"]);
      await stopsCleanly(processes, cluster, pids);
    } finally {
      await processes.stopAll();
    }
  });
});
