import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { DATA_DIR_MESSAGES, REJOIN_STEPS } from "../runtime/index.js";
import { WalStorage } from "../storage/index.js";
import { NODE_REJOINED_MESSAGE } from "./node.js";

const BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));
const ACCEPTOR_SH = fileURLToPath(new URL("../../compat/usi/acceptor.sh", import.meta.url));

/** A child process with its output gathered as it comes. */
interface Child {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: Child[] = [];

function start(command: string, args: string[], env: Record<string, string> = {}, stdin = false): Child {
  const child = spawn(command, args, {
    stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"],
    env: { ...process.env, PAXOS_LOG_LEVEL: "info", ...env },
  });
  const proc: Child = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
  };
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    proc.stdout += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    proc.stderr += chunk;
  });
  children.push(proc);
  return proc;
}

const paxos = (args: string[], env: Record<string, string> = {}) =>
  start(process.execPath, [BIN, ...args], env);

/** Runs to the end (SIGKILL after `timeoutMs`: a hang fails the test, it does not stall it). */
async function run(args: string[], timeoutMs = 10_000) {
  const proc = paxos(args);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  const exit = await proc.exited;
  clearTimeout(timer);
  await new Promise((resolve) => setImmediate(resolve));
  return { ...exit, stderr: proc.stderr, stdout: proc.stdout };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** SIGTERM (SIGKILL after 3 s) to one of ours, by its pid; resolves when it has exited. */
async function stop(proc: Child) {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill("SIGTERM");
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), 3000);
  const exit = await proc.exited;
  clearTimeout(timer);
  return exit;
}

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "paxos-data-dir-cli-"));
  try {
    await body(dir);
  } finally {
    await Promise.all(children.splice(0).map(stop));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A one-node cluster file (the node starts at once and needs no peer to). */
function oneNodeConfig(dir: string): string {
  const path = join(dir, "cluster.json");
  const port = 20000 + Math.floor(Math.random() * 40000);
  writeFileSync(path, JSON.stringify({ nodes: [{ id: 1, host: "127.0.0.1", port }] }));
  return path;
}

/** The JSON log records of a process's stderr with this message. */
function records(text: string, msg: string): Array<Record<string, unknown>> {
  return text
    .split("\n")
    .filter((line) => line.startsWith("{") && line.includes(`"msg":${JSON.stringify(msg)}`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const started = (proc: Child) => () => proc.stderr.includes('"msg":"started"');

/** How `paxos node` says it came back: the `rejoining` of its last "durable state loaded". */
function loadedRejoining(proc: Child): unknown {
  return records(proc.stderr, DATA_DIR_MESSAGES.loaded).at(-1)?.rejoining;
}

/** A log in `dir` holding a promise, whose first record is then damaged. */
async function damagedLog(dir: string): Promise<void> {
  const wal = new WalStorage({ dir });
  assert.ok((await wal.open()).ok);
  wal.append({ promised: { round: 3, node: 1 } });
  await wal.sync();
  wal.append({ promised: { round: 4, node: 1 } });
  await wal.sync();
  await wal.close();
  const file = join(dir, "wal-00000001.log");
  const bytes = readFileSync(file);
  bytes[16 + 8 + 1] = (bytes[16 + 8 + 1] as number) ^ 0xff;
  writeFileSync(file, bytes);
}

describe("paxos node: a SIGKILL at each step of a rejoin set-up comes back rejoining", () => {
  for (const step of REJOIN_STEPS) {
    test(`killed after ${step}; the next start, even with --new, rejoins`, async () => {
      await inTempDir(async (temp) => {
        const config = oneNodeConfig(temp);
        const data = join(temp, "node-1");
        await damagedLog(data);
        const first = paxos(["node", "--config", config, "--id", "1", "--data", data], {
          PAXOS_TEST_PAUSE_AT: step,
        });
        await waitFor(() => first.stderr.includes(`test: paused after rejoin step ${step}`), "the pause");
        first.child.kill("SIGKILL");
        assert.deepEqual(await first.exited, { code: null, signal: "SIGKILL" });

        const next = paxos(["node", "--config", config, "--id", "1", "--data", data, "--new"]);
        await waitFor(started(next), `the next start: ${next.stderr}`);
        assert.equal(loadedRejoining(next), true, next.stderr);
        assert.ok(!existsSync(`${data}.rejoin-tmp`));
        const aside = readdirSync(temp).filter((name) => name.startsWith("node-1.damaged-"));
        assert.equal(aside.length, 1, readdirSync(temp).join(" "));
        const exit = await stop(next);
        assert.equal(exit.code, 0, `${JSON.stringify(exit)} ${next.stderr}`);
      });
    });
  }

  test("PAXOS_TEST_CRASH_AT: the node kills itself at the step, and the next start rejoins", async () => {
    await inTempDir(async (temp) => {
      const config = oneNodeConfig(temp);
      const data = join(temp, "node-1");
      mkdirSync(data);
      const first = paxos(["node", "--config", config, "--id", "1", "--data", data], {
        PAXOS_TEST_CRASH_AT: "temp-synced",
      });
      assert.deepEqual(await first.exited, { code: null, signal: "SIGKILL" });
      assert.ok(existsSync(`${data}.rejoin-tmp`), "the crash left the set-up half done");
      const next = paxos(["node", "--config", config, "--id", "1", "--data", data]);
      await waitFor(started(next), "the next start");
      assert.equal(loadedRejoining(next), true, next.stderr);
      assert.equal(records(next.stderr, DATA_DIR_MESSAGES.interruptedRejoin).length, 1, next.stderr);
      await stop(next);
    });
  });
});

describe("paxos node: fresh only when told new", () => {
  test("no --data and no --new: one line says why, and the node rejoins", async () => {
    await inTempDir(async (temp) => {
      const node = paxos(["node", "--config", oneNodeConfig(temp), "--id", "1"]);
      await waitFor(started(node), "the node to start");
      assert.equal(records(node.stderr, DATA_DIR_MESSAGES.noStateRejoin).length, 1, node.stderr);
      await stop(node);
    });
  });

  test("a memory-only node restarted into a running cluster without --new rejoins, then votes again", async () => {
    await inTempDir(async (temp) => {
      const config = join(temp, "cluster.json");
      const base = 20000 + Math.floor(Math.random() * 40000);
      const nodes = [1, 2, 3].map((id) => ({ id, host: "127.0.0.1", port: base + id }));
      writeFileSync(config, JSON.stringify({ nodes }));
      const node = (id: number, extra: string[]) =>
        paxos(["node", "--config", config, "--id", String(id), ...extra]);
      const procs = [1, 2, 3].map((id) => node(id, ["--new"]));
      for (const proc of procs) await waitFor(started(proc), "the nodes to start");
      const submit = async (id: number, values: string[]) => {
        const client = start(process.execPath, [BIN, "client", String(id), config], {}, true);
        client.child.stdin?.end(`${values.join("\n")}\n`);
        assert.deepEqual(await client.exited, { code: 0, signal: null }, client.stderr);
      };
      await submit(9, ["before 1", "before 2", "before 3"]);
      const third = procs[2] as Child;
      third.child.kill("SIGKILL");
      await third.exited;

      const back = node(3, []);
      await waitFor(started(back), "node 3 to start again");
      assert.equal(records(back.stderr, DATA_DIR_MESSAGES.noStateRejoin).length, 1, back.stderr);
      await submit(10, ["after 1", "after 2", "after 3"]);
      await waitFor(
        () => records(back.stderr, NODE_REJOINED_MESSAGE).length === 1,
        `node 3 to rejoin: ${back.stderr}`,
      );
      await waitFor(() => back.stdout.includes("after 3\n"), "node 3 to print the later values");
      for (const proc of [...procs.slice(0, 2), back]) assert.doesNotMatch(proc.stderr, /FATAL/);
    });
  });

  test("--new on a first start, then a restart without it loads the state (no rejoin)", async () => {
    await inTempDir(async (temp) => {
      const config = oneNodeConfig(temp);
      const data = join(temp, "node-1");
      const first = paxos(["node", "--config", config, "--id", "1", "--data", data, "--new"]);
      await waitFor(started(first), "the first start");
      assert.equal(records(first.stderr, DATA_DIR_MESSAGES.startedNew).length, 1, first.stderr);
      assert.equal((await stop(first)).code, 0);
      const again = paxos(["node", "--config", config, "--id", "1", "--data", data]);
      await waitFor(started(again), "the restart");
      assert.equal(loadedRejoining(again), false, again.stderr);
      assert.equal(records(again.stderr, DATA_DIR_MESSAGES.noStateRejoin).length, 0);
      await stop(again);
    });
  });

  test("a course acceptor: acceptor.sh passes --new on its first start in a run, not on a restart", async () => {
    await inTempDir(async (temp) => {
      const config = join(temp, "paxos.conf");
      const base = 20000 + Math.floor(Math.random() * 40000);
      writeFileSync(
        config,
        ["clients", "proposers", "acceptors", "learners"]
          .map((group, i) => `${group} 239.0.0.1 ${base + i}`)
          .join("\n"),
      );
      const markers = join(tmpdir(), "paxos-usi-runs");
      try {
        const first = start("sh", [ACCEPTOR_SH, "2", config]);
        await waitFor(started(first), `the acceptor to start: ${first.stderr}`);
        assert.equal(records(first.stderr, DATA_DIR_MESSAGES.noStateRefuse).length, 0, first.stderr);
        first.child.kill("SIGKILL");
        await first.exited;
        const again = start("sh", [ACCEPTOR_SH, "2", config]);
        await waitFor(started(again), "the restarted acceptor to start");
        assert.equal(records(again.stderr, DATA_DIR_MESSAGES.noStateRefuse).length, 1, again.stderr);
        await stop(again);
      } finally {
        for (const name of existsSync(markers) ? readdirSync(markers) : [])
          if (name.startsWith(`${process.pid}-`)) rmSync(join(markers, name), { force: true });
      }
    });
  });
});

describe("the data directory belongs to one node, and only our files in it", () => {
  test("a second node on a directory in use exits 1 naming the pid; a dead holder's lock is taken over", async () => {
    await inTempDir(async (temp) => {
      const config = oneNodeConfig(temp);
      const data = join(temp, "node-1");
      const holder = paxos(["node", "--config", config, "--id", "1", "--data", data, "--new"]);
      await waitFor(started(holder), "the first node");
      const second = await run(["node", "--config", config, "--id", "1", "--data", data]);
      assert.equal(second.code, 1, second.stderr);
      assert.equal(second.stderr, `paxos node: ${data} in use by pid ${holder.child.pid}\n`);

      holder.child.kill("SIGKILL");
      await holder.exited;
      assert.ok(existsSync(`${data}.lock`), "a SIGKILL leaves the lock behind");
      const third = paxos(["node", "--config", config, "--id", "1", "--data", data]);
      await waitFor(started(third), `the node after the holder died: ${third.stderr}`);
      assert.equal(loadedRejoining(third), false, "its state is its own: loaded, not a rejoin");
      assert.equal(readFileSync(`${data}.lock`, "utf8").trim(), String(third.child.pid));
      assert.equal((await stop(third)).code, 0);
      assert.ok(!existsSync(`${data}.lock`), "a clean stop releases the lock");
    });
  });

  test("operator errors are one line and exit 1, and nothing is renamed or created", async () => {
    await inTempDir(async (temp) => {
      const config = oneNodeConfig(temp);
      const file = join(temp, "afile");
      writeFileSync(file, "not a log");
      const home = join(temp, "home");
      mkdirSync(home);
      writeFileSync(join(home, "notes.txt"), "mine");
      const cases: Array<[string, RegExp]> = [
        [file, /is not a directory$/],
        [join(file, "sub"), /ENOTDIR|not a directory/],
        [home, /holds files that are not a paxos log \(notes\.txt\): refusing to use it$/],
        ["/sys/x", /\/sys\/x.*(EPERM|EACCES|EROFS|ENOENT)/],
        ["/proc/x", /\/proc\/x.*(EPERM|EACCES|EROFS|ENOENT)/],
      ];
      const before = readdirSync(temp).sort();
      for (const [data, expected] of cases) {
        for (const extra of [[], ["--new"], ["--rejoin"]]) {
          const result = await run(["node", "--config", config, "--id", "1", "--data", data, ...extra]);
          const what = `--data ${data} ${extra.join(" ")}: ${result.stderr}`;
          assert.equal(result.code, 1, what);
          const lines = result.stderr.split("\n").filter((line) => line !== "");
          assert.equal(lines.length, 1, what);
          assert.match(lines[0] as string, /^paxos node: /);
          assert.match(lines[0] as string, expected);
        }
      }
      assert.deepEqual(readdirSync(temp).sort(), before, "nothing renamed or created beside");
      assert.equal(readFileSync(file, "utf8"), "not a log");
      assert.deepEqual(readdirSync(home), ["notes.txt"]);
      assert.ok(!existsSync("/sys/x") && !existsSync("/proc/x"));
    });
  });

  test("a separate acceptor with a damaged log exits 1 and moves nothing", async () => {
    await inTempDir(async (temp) => {
      const config = join(temp, "paxos.conf");
      writeFileSync(
        config,
        "clients 239.0.0.1 21000\nproposers 239.0.0.1 21001\nacceptors 239.0.0.1 21002\nlearners 239.0.0.1 21003\n",
      );
      const data = join(temp, "acceptor-1");
      await damagedLog(data);
      const result = await run(["acceptor", "1", config, "--data", data]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /paxos acceptor: the log in .* is damaged/);
      assert.deepEqual(readdirSync(temp).sort(), ["acceptor-1", "paxos.conf"]);
    });
  });

  test("paxos cluster --data: a regular file is one line and exit 1; a directory in use too", async () => {
    await inTempDir(async (temp) => {
      const file = join(temp, "afile");
      writeFileSync(file, "not a log");
      const onFile = await run(["cluster", "--data", file, "--base-port", "21100"]);
      assert.equal(onFile.code, 1, onFile.stderr);
      assert.equal(onFile.stderr, `paxos cluster: --data ${file} is not a directory\n`);
      assert.equal(readFileSync(file, "utf8"), "not a log");
      const onProc = await run(["cluster", "--data", "/proc/x/y", "--base-port", "21100"]);
      assert.equal(onProc.code, 1, onProc.stderr);
      assert.match(onProc.stderr, /^paxos cluster: .*\/proc\/x/);
    });
  });

  test("paxos cluster --data: a first start is new with no flag; a restart loads every node's state", async () => {
    await inTempDir(async (temp) => {
      const data = join(temp, "cluster");
      const base = 20000 + Math.floor(Math.random() * 40000);
      for (const [round, value] of ["first", "second"].entries()) {
        const cluster = start(
          process.execPath,
          [BIN, "cluster", "--data", data, "--base-port", String(base)],
          { PAXOS_LOG_LEVEL: "warn" },
          true,
        );
        await waitFor(() => cluster.stderr.includes("paxos cluster: 3 nodes"), "the cluster to start");
        // A second cluster on the same directory is refused while this one runs.
        if (round === 0) {
          const second = await run(["cluster", "--data", data, "--base-port", String(base + 10)]);
          assert.equal(second.code, 1, second.stderr);
          assert.equal(second.stderr, `paxos cluster: ${data} in use by pid ${cluster.child.pid}\n`);
        }
        // Decided on the first start, and again after a restart: no node took itself for lost.
        cluster.child.stdin?.write(`${value}\n`);
        await waitFor(() => cluster.stdout.includes(`decided: ${value}\n`), `${value} to be decided`);
        assert.doesNotMatch(cluster.stderr, /rejoin/, `round ${round} (${value}): ${cluster.stderr}`);
        const exit = await stop(cluster);
        assert.ok(exit.code === 0 || exit.signal === "SIGTERM", `${JSON.stringify(exit)} ${cluster.stderr}`);
        assert.doesNotMatch(cluster.stderr, /paxos cluster: node \d+ exited/);
      }
      // (A node stopped before its signal handlers were installed may leave its lock: the next
      // start takes it over.)
      const entries = readdirSync(data).filter((name) => !name.endsWith(".lock"));
      // Beside each node's directory, its incarnation (docs/security.md, "Incarnations").
      assert.deepEqual(entries.sort(), [
        "cluster.json",
        "node-1",
        "node-1.incarnation",
        "node-2",
        "node-2.incarnation",
        "node-3",
        "node-3.incarnation",
      ]);
    });
  });
});
