import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { hasLogged, LOG_MESSAGES, logRecords } from "../observe/index.js";
import {
  childrenOf,
  freePortRange,
  freeTcpPorts,
  freeUdpPorts,
  ProcessGroup,
  runPaxosSync,
  type StartedProcess,
  waitFor,
} from "../test-support/index.js";
import { NODE_REJOINED_MESSAGE } from "./node.js";

/** Lines of a command's output. */
function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/** An error printed as one line: `paxos kv <sub>: ...` or `paxos lock <sub>: ...`. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  assert.equal(lines(stderr).length, 1, stderr);
  assert.match(stderr, pattern);
}

describe("paxos kv and paxos lock against three paxos node --http processes", () => {
  const group = new ProcessGroup();
  let dir = "";
  let http: string[] = [];
  let nodes: StartedProcess[] = [];
  let nodeList = "";

  /** Runs `paxos kv|lock ...args --node <all nodes>` to completion. */
  const paxos = (args: readonly string[], nodeArg = nodeList) =>
    group.run(`paxos ${args.slice(0, 2).join(" ")}`, [...args, "--node", nodeArg], 60_000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "paxos-kv-test-"));
    const udp = await freeUdpPorts(3);
    const tcp = await freeTcpPorts(3);
    http = tcp.map((port) => `127.0.0.1:${port}`);
    nodeList = http.join(",");
    const config = join(dir, "cluster.json");
    writeFileSync(
      config,
      JSON.stringify({
        nodes: udp.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port, http: http[i] })),
      }),
    );
    // Node 1 is told its address by --http; nodes 2 and 3 find theirs in the cluster file.
    nodes = [1, 2, 3].map((id) =>
      group.start(`node ${id}`, [
        "node",
        "--config",
        config,
        "--id",
        String(id),
        "--new",
        ...(id === 1 ? ["--http", http[0] as string] : []),
      ]),
    );
    for (const [i, node] of nodes.entries()) {
      await waitFor(() => hasLogged(node.stderr, LOG_MESSAGES.started), `node ${i + 1} to start`, {
        detail: () => node.stderr,
      });
      assert.equal(logRecords(node.stderr, LOG_MESSAGES.started)[0]?.http, http[i]);
    }
  });

  after(async () => {
    for (const node of nodes) node.kill("SIGCONT");
    await group.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test("put prints the revision; get prints the value from any node; a missing key exits 1 in one line", async () => {
    const put = await paxos(["kv", "put", "greeting/en", "hello, world"]);
    assert.equal(put.code, 0, put.stderr);
    const { revision } = JSON.parse(put.stdout) as { revision: number };
    assert.ok(revision >= 1);
    for (const address of http) {
      const get = await paxos(["kv", "get", "greeting/en"], address);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout, "hello, world\n");
    }
    const json = await paxos(["kv", "get", "greeting/en", "--json"]);
    assert.deepEqual(JSON.parse(json.stdout), {
      key: "greeting/en",
      value: "hello, world",
      createRevision: revision,
      modRevision: revision,
    });
    const missing = await paxos(["kv", "get", "no-such-key"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stdout, "");
    assertOneLine(missing.stderr, /^paxos kv get: no key "no-such-key"/);
  });

  test("del prints the revision and whether it deleted; cas applies when its condition holds, else exits 1 naming the entry", async () => {
    await paxos(["kv", "put", "doomed", "x"]);
    const del = await paxos(["kv", "del", "doomed"]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((JSON.parse(del.stdout) as { deleted: boolean }).deleted, true);
    const again = await paxos(["kv", "del", "doomed"]);
    assert.equal((JSON.parse(again.stdout) as { deleted: boolean }).deleted, false);

    const created = await paxos(["kv", "cas", "config", "v1", "--prev-exist", "false"]);
    assert.equal(created.code, 0, created.stderr);
    const revision = (JSON.parse(created.stdout) as { revision: number }).revision;
    const stale = await paxos(["kv", "cas", "config", "v2", "--prev-revision", String(revision + 50)]);
    assert.equal(stale.code, 1);
    assertOneLine(stale.stderr, new RegExp(`^paxos kv cas: .*revision ${revision} with value "v1"`));
    const fresh = await paxos(["kv", "cas", "config", "v2", "--prev-value", "v1"]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal((await paxos(["kv", "get", "config"])).stdout, "v2\n");
    const deleted = await paxos(["kv", "cas", "config", "--delete", "--prev-value", "v2"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await paxos(["kv", "get", "config"])).code, 1);
  });

  test("list prints one JSON line per key under the prefix, in key order", async () => {
    for (const key of ["fruit/b", "fruit/a", "veg/a"]) await paxos(["kv", "put", key, key.toUpperCase()]);
    const list = await paxos(["kv", "list", "fruit/"]);
    assert.equal(list.code, 0, list.stderr);
    const entries = lines(list.stdout).map((line) => JSON.parse(line) as { key: string; value: string });
    assert.deepEqual(
      entries.map((entry) => [entry.key, entry.value]),
      [
        ["fruit/a", "FRUIT/A"],
        ["fruit/b", "FRUIT/B"],
      ],
    );
  });

  test("watch prints one JSON line per change, the history then live ones, until SIGINT (exit 0)", async () => {
    const first = JSON.parse((await paxos(["kv", "put", "watched/a", "1"])).stdout) as { revision: number };
    const watch = group.start("paxos kv watch", [
      "kv",
      "watch",
      "watched/",
      "--revision",
      String(first.revision),
      "--node",
      nodeList,
    ]);
    await waitFor(() => lines(watch.stdout).length >= 1, "the history", { detail: () => watch.stderr });
    await paxos(["kv", "put", "elsewhere", "no"]);
    const second = JSON.parse((await paxos(["kv", "del", "watched/a"])).stdout) as { revision: number };
    await waitFor(() => lines(watch.stdout).length >= 2, "the live change", { detail: () => watch.stdout });
    watch.kill("SIGINT");
    const exit = await watch.finish(10_000);
    assert.equal(exit.code, 0, watch.stderr);
    assert.deepEqual(
      lines(watch.stdout).map((line) => JSON.parse(line)),
      [
        { revision: first.revision, key: "watched/a", value: "1" },
        { revision: second.revision, key: "watched/a", value: null },
      ],
    );
  });

  test("with a node that does not answer first in --node, requests fail over to the next", async () => {
    const [dead] = await freeTcpPorts(1);
    const put = await paxos(["kv", "put", "failover", "yes"], `127.0.0.1:${dead},${nodeList}`);
    assert.equal(put.code, 0, put.stderr);
    const get = await paxos(["kv", "get", "failover"], `127.0.0.1:${dead},${http[2]}`);
    assert.equal(get.stdout, "yes\n");
  });

  test("lock acquire prints the token and session; a second one times out (exit 1); release frees it; --hold holds until SIGINT", async () => {
    const acquired = await paxos(["lock", "acquire", "printer"]);
    assert.equal(acquired.code, 0, acquired.stderr);
    const first = JSON.parse(acquired.stdout) as { token: number; session: number };
    assert.ok(first.token >= 1 && first.session >= 1);
    const busy = await paxos(["lock", "acquire", "printer", "--wait-ms", "300"]);
    assert.equal(busy.code, 1);
    assertOneLine(busy.stderr, /^paxos lock acquire: lock "printer" not granted within 300 ms/);
    const released = await paxos(["lock", "release", "printer", "--session", String(first.session)]);
    assert.equal(released.code, 0, released.stderr);
    assert.deepEqual(JSON.parse(released.stdout), { released: "held" });

    const holder = group.start("paxos lock acquire --hold", [
      "lock",
      "acquire",
      "printer",
      "--hold",
      "--node",
      nodeList,
    ]);
    await waitFor(() => lines(holder.stdout).length >= 1, "the grant", { detail: () => holder.stderr });
    const held = JSON.parse(lines(holder.stdout)[0] as string) as { token: number; session: number };
    assert.ok(held.token > first.token);
    const state = await fetch(`http://${http[1]}/lock/printer`).then((r) => r.json());
    assert.deepEqual(state, { holder: { session: held.session, token: held.token }, waiters: [] });
    await waitFor(() => holder.stderr.includes("Ctrl-C releases it"), "the holder to say it holds");
    holder.kill("SIGINT");
    const exit = await holder.finish(20_000);
    assert.equal(exit.code, 0, holder.stderr);
    const after = await fetch(`http://${http[2]}/lock/printer`).then((r) => r.json());
    assert.deepEqual(after, { holder: null, waiters: [] });
  });

  // Last: it stops two nodes for a while.
  test("a write whose outcome cannot be known exits 3; the same --session and --seq again applies it once", async () => {
    const session = (
      (await fetch(`http://${http[0]}/session`, { method: "POST" }).then((r) => r.json())) as {
        session: number;
      }
    ).session;
    const write = ["kv", "put", "maybe", "v", "--session", String(session), "--seq", "1"];
    // Without a quorum, node 1 takes the write and cannot settle it.
    nodes[1]?.kill("SIGSTOP");
    nodes[2]?.kill("SIGSTOP");
    let unknown: Awaited<ReturnType<typeof paxos>>;
    try {
      unknown = await paxos([...write, "--timeout-ms", "1500"], http[0]);
    } finally {
      nodes[1]?.kill("SIGCONT");
      nodes[2]?.kill("SIGCONT");
    }
    assert.equal(unknown.code, 3, unknown.stderr);
    assertOneLine(unknown.stderr, /^paxos kv put: outcome unknown: /);
    const retried = await paxos(write);
    assert.equal(retried.code, 0, retried.stderr);
    const revision = (JSON.parse(retried.stdout) as { revision: number }).revision;
    const again = await paxos(write);
    assert.deepEqual(JSON.parse(again.stdout), { revision });
    const entry = await fetch(`http://${http[2]}/kv/maybe`);
    assert.equal(await entry.text(), "v");
    assert.equal(entry.headers.get("paxos-revision"), String(revision));
  });
});

describe("paxos kv and paxos lock usage", () => {
  test("usage errors exit 2 with one line", () => {
    const cases: string[][] = [
      ["kv"],
      ["kv", "bogus", "--node", "127.0.0.1:1"],
      ["kv", "get", "--node", "127.0.0.1:1"],
      ["kv", "put", "a", "--node", "127.0.0.1:1"],
      ["kv", "put", "a", "b", "c", "--node", "127.0.0.1:1"],
      ["kv", "put", "a", "b", "--node", "nonsense"],
      ["kv", "cas", "a", "b", "--node", "127.0.0.1:1"],
      ["kv", "cas", "a", "b", "--prev-exist", "true", "--node", "127.0.0.1:1"],
      ["kv", "get", "a", "--prev-value", "x", "--node", "127.0.0.1:1"],
      ["kv", "put", "a", "b", "--session", "1", "--node", "127.0.0.1:1"],
      ["kv", "get", "a", "--bogus"],
      ["lock"],
      ["lock", "acquire", "--node", "127.0.0.1:1"],
      ["lock", "release", "x", "--node", "127.0.0.1:1"],
      ["lock", "acquire", "x", "--wait-ms", "soon", "--node", "127.0.0.1:1"],
      ["node", "--config", "/dev/null", "--id", "1", "--http", "nope"],
    ];
    for (const args of cases) {
      const run = runPaxosSync(args);
      assert.equal(run.status, 2, `paxos ${args.join(" ")}: ${run.stderr}`);
      assert.equal(lines(run.stderr).length, 1, `paxos ${args.join(" ")}: ${run.stderr}`);
    }
    const noNode = runPaxosSync(["kv", "get", "a"]);
    if (process.env.PAXOS_NODES === undefined) assert.match(noNode.stderr, /missing --node/);
  });

  test("--help for kv and lock prints the usage and exits 0", () => {
    for (const command of ["kv", "lock"]) {
      const run = runPaxosSync([command, "--help"]);
      assert.equal(run.status, 0);
      assert.match(run.stdout, new RegExp(`^Usage: paxos ${command} `));
    }
  });
});

describe("paxos cluster with HTTP", () => {
  test("gives every node an HTTP port, prints the addresses, and paxos kv works against them", async () => {
    const group = new ProcessGroup();
    try {
      const base = await freePortRange(3);
      const cluster = group.start("cluster", ["cluster", "--nodes", "3", "--base-port", String(base)], {
        stdin: true,
      });
      await waitFor(() => cluster.stderr.includes("paxos cluster: HTTP API"), "the cluster to start", {
        detail: () => cluster.stderr,
      });
      await waitFor(() => childrenOf(cluster.child.pid as number).length === 3, "three node processes");
      for (const pid of childrenOf(cluster.child.pid as number)) group.grandchildren.add(pid);
      const addresses = [...cluster.stderr.matchAll(/node \d+ http:\/\/(127\.0\.0\.1:\d+)/g)].map(
        (m) => m[1],
      );
      assert.equal(addresses.length, 3, cluster.stderr);
      const nodeList = addresses.join(",");
      const put = await group.run("paxos kv put", ["kv", "put", "k", "v", "--node", nodeList], 60_000);
      assert.equal(put.code, 0, put.stderr);
      const get = await group.run(
        "paxos kv get",
        ["kv", "get", "k", "--node", addresses[2] as string],
        60_000,
      );
      assert.equal(get.stdout, "v\n");
      // Typed values still print as node 1 applies them.
      cluster.child.stdin?.write("typed\n");
      await waitFor(() => cluster.stdout.includes("decided: typed\n"), "the typed value to be decided");
    } finally {
      await group.stopAll();
    }
  });
});

describe("paxos node --http --rejoin", () => {
  test("a node whose state was lost rejoins as a learner, votes again, and serves what was written before", async () => {
    const dir = mkdtempSync(join(tmpdir(), "paxos-kv-rejoin-"));
    const group = new ProcessGroup();
    try {
      const udp = await freeUdpPorts(3);
      const tcp = await freeTcpPorts(3);
      const http = tcp.map((port) => `127.0.0.1:${port}`);
      const config = join(dir, "cluster.json");
      writeFileSync(
        config,
        JSON.stringify({
          nodes: udp.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port, http: http[i] })),
        }),
      );
      const start = (id: number, extra: readonly string[]) =>
        group.start(`node ${id}`, [
          "node",
          "--config",
          config,
          "--id",
          String(id),
          "--data",
          join(dir, `n${id}`),
          ...extra,
        ]);
      const nodes = [1, 2, 3].map((id) => start(id, ["--new"]));
      for (const node of nodes)
        await waitFor(() => hasLogged(node.stderr, LOG_MESSAGES.started), "a node to start", {
          detail: () => node.stderr,
        });
      const put = await group.run(
        "paxos kv put",
        ["kv", "put", "kept", "yes", "--node", http.join(",")],
        60_000,
      );
      assert.equal(put.code, 0, put.stderr);
      await group.stop(nodes[2] as StartedProcess);
      const usage = runPaxosSync(["node", "--config", config, "--id", "3", "--rejoin"]);
      assert.equal(usage.status, 2, usage.stderr);
      const rejoining = start(3, ["--rejoin"]);
      await waitFor(
        () => rejoining.stderr.includes(`"msg":"${NODE_REJOINED_MESSAGE}"`),
        "node 3 to vote again",
        {
          timeoutMs: 30_000,
          detail: () => rejoining.stderr,
        },
      );
      const get = await group.run("paxos kv get", ["kv", "get", "kept", "--node", http[2] as string], 60_000);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout.trim(), "yes");
    } finally {
      await group.stopAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
