import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { SessionTable } from "../core/index.js";
import { hasLogged, LOG_MESSAGES, type LogMessage, logRecords, parseLogLine } from "../observe/index.js";
import { WalStorage } from "../storage/index.js";
import {
  childrenOf,
  freePortRange,
  freeTcpPorts,
  freeUdpPorts,
  isAlive,
  ProcessGroup,
  type StartedProcess,
  waitFor,
} from "../test-support/index.js";
import type { NodeStats } from "./node.js";

function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "paxos-node-test-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

const started = (proc: StartedProcess) => () => hasLogged(proc.stderr, LOG_MESSAGES.started);

describe("paxos node", () => {
  for (const transport of ["udp", "tcp"] as const) {
    test(`three nodes over ${transport} print the values of "paxos client" in one order`, async () => {
      const processes = new ProcessGroup();
      const temp = tempDir();
      try {
        const ports = await (transport === "udp" ? freeUdpPorts(3) : freeTcpPorts(3));
        const nodes = ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port }));
        const configPath = join(temp.dir, "cluster.json");
        writeFileSync(configPath, JSON.stringify({ nodes, transport, quorum: { kind: "majority" } }));
        const nodeProcs = nodes.map((node) =>
          processes.start(`node ${node.id}`, [
            "node",
            "--config",
            configPath,
            "--id",
            String(node.id),
            "--new",
          ]),
        );
        for (const proc of nodeProcs) await waitFor(started(proc), `${proc.name} to start`);

        const values = Array.from({ length: 30 }, (_, i) => `${transport} value ${i + 1}`);
        const client = processes.start("client 9", ["client", "9", configPath], { stdin: true });
        client.child.stdin?.end(`${values.join("\n")}\n`);
        await waitFor(
          () => nodeProcs.every((proc) => lines(proc.stdout).length >= values.length),
          "every node to print every value",
        );
        const printed = nodeProcs.map((proc) => lines(proc.stdout));
        assert.deepEqual([...(printed[0] ?? [])].sort(), [...values].sort(), "node 1 printed other values");
        assert.deepEqual(printed[1], printed[0], "node 2 printed another order");
        assert.deepEqual(printed[2], printed[0], "node 3 printed another order");

        // Every value is decided: the client must hear its acks and exit 0 soon after.
        const clientExit = await Promise.race([
          client.exited,
          new Promise<never>((_, reject) =>
            setTimeout(
              () =>
                reject(
                  new Error(
                    `the client did not exit within 5 s of every value being decided: ${client.stderr}`,
                  ),
                ),
              5000,
            ).unref(),
          ),
        ]);
        assert.deepEqual(clientExit, { code: 0, signal: null }, client.stderr);

        for (const proc of nodeProcs) {
          const exit = await processes.stop(proc);
          assert.equal(exit.code, 0, `${proc.name}: ${proc.stderr}`);
        }
        const final = nodeProcs.map((proc) => lines(proc.stdout));
        assert.equal(final[0]?.length, values.length, "node 1 printed a value twice or an extra one");
        assert.deepEqual(final[1], final[0], "node 2 printed another order");
        assert.deepEqual(final[2], final[0], "node 3 printed another order");
        for (const proc of nodeProcs) assert.doesNotMatch(proc.stderr, /FATAL/);
      } finally {
        await processes.stopAll();
        temp.remove();
      }
    });
  }

  test("--help says that without --data the state lives in memory", async () => {
    const processes = new ProcessGroup();
    try {
      const run = await processes.run("node --help", ["node", "--help"]);
      assert.equal(run.code, 0);
      assert.match(run.stdout, /^Usage: paxos node /);
      assert.match(run.stdout.replace(/\s+/g, " "), /--data DIR .*Without it, state lives in memory/);
      assert.equal(run.stderr, "");
    } finally {
      await processes.stopAll();
    }
  });

  test("usage mistakes are one-line errors with exit status 2", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "cluster.json");
      writeFileSync(configPath, JSON.stringify({ nodes: [{ id: 1, host: "127.0.0.1", port: 7101 }] }));
      const badPath = join(temp.dir, "bad.json");
      writeFileSync(badPath, JSON.stringify({ nodes: [{ id: 1, host: "127.0.0.1", port: 0 }] }));
      const cases: Array<{ args: string[]; expect: RegExp }> = [
        { args: ["node", "--id", "1"], expect: /^paxos node: missing --config/ },
        { args: ["node"], expect: /^paxos node: missing --config/ },
        { args: ["node", "--config", configPath], expect: /^paxos node: missing <id>/ },
        { args: ["node", "--config", configPath, "--id", "2"], expect: /no node with id 2/ },
        { args: ["node", "--config", configPath, "--id", "x"], expect: /<id> must be a positive integer/ },
        { args: ["node", "--config", join(temp.dir, "nowhere.json"), "--id", "1"], expect: /nowhere\.json/ },
        { args: ["node", "--config", badPath, "--id", "1"], expect: /bad\.json: nodes\.0\.port: / },
        { args: ["node", "--config", configPath, "--id", "1", "--bogus"], expect: /^paxos node: .*--bogus/ },
      ];
      const runs = await Promise.all(cases.map(({ args }) => processes.run(args.join(" "), args)));
      for (const [index, run] of runs.entries()) {
        const { args, expect } = cases[index] as (typeof cases)[number];
        assert.equal(run.code, 2, `paxos ${args.join(" ")}: ${run.stderr}`);
        assert.equal(lines(run.stderr).length, 1, `paxos ${args.join(" ")}:\n${run.stderr}`);
        assert.match(run.stderr, expect);
        assert.equal(run.stdout, "");
      }
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });
});

describe("paxos node: session limits are the cluster's", () => {
  test("a node whose snapshot on disk was built under other session limits than the cluster file's does not start", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const data = join(temp.dir, "data");
      const built = new SessionTable({ clientsMax: 5, clientRangesMax: 2 });
      built.deliver({ client: 7, seq: 1, payload: "x" });
      const storage = new WalStorage({ dir: data });
      assert.ok((await storage.open()).ok);
      storage.append({ snapshot: { slot: 1, sessions: built.export(), app: "" } });
      await storage.sync();
      await storage.close();
      const configPath = join(temp.dir, "cluster.json");
      const node = { id: 1, host: "127.0.0.1", port: 7101 };
      writeFileSync(configPath, JSON.stringify({ nodes: [node], clientsMax: 6, clientRangesMax: 2 }));
      const args = ["node", "--config", configPath, "--id", "1", "--data", data];
      const run = await processes.run("node with other limits", args);
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /the snapshot on disk \(slot 1\) does not fit .*cluster\.json: sessions built with clientsMax 5, clientRangesMax 2; this cluster is configured with clientsMax 6, clientRangesMax 2/,
      );
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });
});

/** The JSON log records of a process's stderr with this message. */
function records(proc: StartedProcess, msg: LogMessage) {
  return logRecords(proc.stderr, msg);
}

describe("paxos node --stats-ms", () => {
  test("logs the driver's and transport's counters, the refusals by reason, the mode and the state every N ms", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const [port] = await freeUdpPorts(1);
      const configPath = join(temp.dir, "cluster.json");
      writeFileSync(configPath, JSON.stringify({ nodes: [{ id: 1, host: "127.0.0.1", port }] }));
      const node = processes.start("node 1", [
        "node",
        "--config",
        configPath,
        "--id",
        "1",
        "--new",
        "--stats-ms",
        "50",
      ]);
      const statsLines = () =>
        node.stderr
          .split("\n")
          .map(parseLogLine)
          .filter((record) => record?.msg === LOG_MESSAGES.stats) as unknown as NodeStats[];
      // A one-node cluster leads itself; its own messages to itself go through the driver.
      await waitFor(
        () => statsLines().some((s) => s.mode === "leader" && (s.driver.framesIn ?? 0) > 0),
        "a stats line as leader",
        {
          detail: () => node.stderr,
        },
      );
      const stats = statsLines().at(-1) as NodeStats;
      assert.equal(typeof stats.driver.decodeErrors, "number");
      assert.equal(typeof stats.transport.framesReceived, "number");
      assert.equal(typeof stats.refusals, "object");
      assert.equal(typeof stats.refusalsTotal, "number");
      assert.equal(typeof stats.frameRefusals, "object");
      assert.deepEqual(stats.ballot.node, 1);
      assert.equal(stats.commands, 0);
      assert.match(stats.digest, /^[0-9a-f]{16}$/);
      const exit = await processes.stop(node);
      assert.equal(exit.code, 0, node.stderr);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });

  test("--stats-ms wants a positive integer", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const configPath = join(temp.dir, "cluster.json");
      writeFileSync(configPath, JSON.stringify({ nodes: [{ id: 1, host: "127.0.0.1", port: 7101 }] }));
      const run = await processes.run("node --stats-ms 0", [
        "node",
        "--config",
        configPath,
        "--id",
        "1",
        "--stats-ms",
        "0",
      ]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /--stats-ms wants a positive integer/);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });
});

describe("paxos node snapshots", () => {
  test("nodes snapshot and compact their logs; a node that was down installs a peer's snapshot; a restart resumes from its own", async () => {
    const processes = new ProcessGroup();
    const temp = tempDir();
    try {
      const ports = await freeUdpPorts(3);
      const nodes = ports.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port }));
      const configPath = join(temp.dir, "cluster.json");
      // Small batches (so there are many slots), tiny snapshots (about 30 values each) and no log kept
      // below them: a node that was down needs a snapshot.
      writeFileSync(
        configPath,
        JSON.stringify({ nodes, batchCommandsMax: 10, snapshotLogBytes: 3000, logRetainSlots: 0 }),
      );
      const dataOf = (id: number) => join(temp.dir, `node-${id}`);
      const startNode = (id: number, isNew = false) =>
        processes.start(`node ${id}`, [
          "node",
          "--config",
          configPath,
          "--id",
          String(id),
          "--data",
          dataOf(id),
          ...(isNew ? ["--new"] : []),
        ]);
      const procs = [1, 2, 3].map((id) => startNode(id, true));
      for (const proc of procs) await waitFor(started(proc), `${proc.name} to start`);
      const third = procs[2] as StartedProcess;
      await processes.stop(third);

      // Three clients one after another, each writing far more than one snapshot's worth: node 1
      // takes at least one snapshot during each (it snapshots at most once per turn).
      const values: string[] = [];
      for (const id of [9, 10, 11]) {
        const batch = Array.from({ length: 100 }, (_, i) => `client ${id} value ${i + 1}`);
        values.push(...batch);
        const client = processes.start(`client ${id}`, ["client", String(id), configPath], { stdin: true });
        client.child.stdin?.end(`${batch.join("\n")}\n`);
        assert.deepEqual(await client.exited, { code: 0, signal: null }, client.stderr);
      }
      const [first, second] = procs as [StartedProcess, StartedProcess];
      await waitFor(() => records(first, LOG_MESSAGES.snapshotTaken).length >= 3, "node 1 to snapshot");
      // Compaction keeps one segment: the log below the snapshot is gone from disk.
      const segments = readdirSync(dataOf(1)).filter((name) => name.startsWith("wal-"));
      assert.ok(segments.length <= 2, `node 1 keeps ${segments.length} segments`);

      const back = startNode(3);
      await waitFor(
        () => records(back, LOG_MESSAGES.snapshotInstalled).length >= 1,
        "node 3 to install a snapshot",
      );
      // Values written now are decided after everything else: once node 3 prints them, it has caught up.
      const later = ["later 1", "later 2", "later 3"];
      const client2 = processes.start("client 12", ["client", "12", configPath], { stdin: true });
      client2.child.stdin?.end(`${later.join("\n")}\n`);
      assert.deepEqual(await client2.exited, { code: 0, signal: null }, client2.stderr);
      await waitFor(
        () => later.every((value) => lines(back.stdout).includes(value)),
        "node 3 to deliver the later values",
      );
      values.push(...later);
      const digests = async () => {
        const finals = [];
        for (const proc of [first, second, back]) {
          const exit = await processes.stop(proc);
          assert.equal(exit.code, 0, `${proc.name}: ${proc.stderr}`);
          finals.push(records(proc, LOG_MESSAGES.stateMachine).at(-1));
        }
        return finals;
      };
      const finals = await digests();
      for (const final of finals) {
        assert.equal(final?.commands, values.length, JSON.stringify(finals));
        assert.equal(final?.digest, finals[0]?.digest, JSON.stringify(finals));
      }

      // Node 1 comes back from its own snapshot and log, with the same state.
      const again = startNode(1);
      await waitFor(started(again), "node 1 to start again");
      const restored = records(again, LOG_MESSAGES.restoredFromSnapshot)[0];
      assert.ok(restored !== undefined, again.stderr);
      assert.ok(lines(again.stdout).length < values.length, "it does not replay the whole log");
      await processes.stop(again);
      const final = records(again, LOG_MESSAGES.stateMachine).at(-1);
      assert.equal(final?.commands, values.length);
      assert.equal(final?.digest, finals[0]?.digest);
      for (const proc of processes.all) assert.doesNotMatch(proc.stderr, /FATAL/);
    } finally {
      await processes.stopAll();
      temp.remove();
    }
  });
});

describe("paxos cluster", () => {
  test("decides typed values, prints them as 'decided: <value>', and stops cleanly on SIGTERM", async () => {
    const processes = new ProcessGroup();
    try {
      const base = await freePortRange(3);
      const cluster = processes.start("cluster", ["cluster", "--nodes", "3", "--base-port", String(base)], {
        stdin: true,
      });
      await waitFor(() => cluster.stderr.includes("paxos cluster: 3 nodes"), "the cluster to start");
      assert.ok(cluster.stderr.includes(`127.0.0.1:${base}..${base + 2}`), cluster.stderr);
      await waitFor(() => childrenOf(cluster.child.pid as number).length === 3, "three node processes");
      for (const pid of childrenOf(cluster.child.pid as number)) processes.grandchildren.add(pid);

      const values = Array.from({ length: 10 }, (_, i) => `typed ${i + 1}`);
      cluster.child.stdin?.write(`${values.join("\n")}\n`);
      await waitFor(
        () => values.every((value) => cluster.stdout.includes(`decided: ${value}\n`)),
        "every value to be decided",
      );
      const exit = await processes.stop(cluster);
      assert.ok(
        exit.code === 0 || exit.signal === "SIGTERM",
        `exit ${exit.code} ${exit.signal}: ${cluster.stderr}`,
      );
      const decided = lines(cluster.stdout);
      assert.deepEqual([...decided].sort(), values.map((value) => `decided: ${value}`).sort());
      // Its nodes stopped too, without being killed, and none stopped on its own before.
      await waitFor(() => [...processes.grandchildren].every((pid) => !isAlive(pid)), "the nodes to exit", {
        timeoutMs: 5000,
      });
      assert.doesNotMatch(cluster.stderr, /paxos cluster: node \d+ exited/);
      assert.doesNotMatch(cluster.stderr, /FATAL/);
    } finally {
      await processes.stopAll();
    }
  });
});
