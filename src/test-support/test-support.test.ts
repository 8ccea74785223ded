import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { freeTcpPorts, isAlive, ProcessGroup, startProcess, waitFor } from "./index.js";

describe("waitFor", () => {
  test("resolves once the condition holds, with the time it took", async () => {
    let turns = 0;
    const ms = await waitFor(() => ++turns >= 3, "three polls");
    assert.equal(turns, 3);
    assert.ok(ms >= 0);
  });

  test("rejects after the timeout, naming what it waited for and what it saw", async () => {
    await assert.rejects(
      waitFor(() => false, "a thing that never happens", { timeoutMs: 30, detail: () => "saw nothing" }),
      /timed out after \d+ ms waiting for a thing that never happens\nsaw nothing/,
    );
  });
});

describe("startProcess and ProcessGroup", () => {
  test("collects a process's output and how it ended", async () => {
    const proc = startProcess(process.execPath, [
      "-e",
      "console.log('out'); console.error('err'); process.exit(3)",
    ]);
    const exit = await proc.finish(10_000);
    assert.deepEqual(exit, { code: 3, signal: null });
    assert.equal(proc.stdout, "out\n");
    assert.equal(proc.stderr, "err\n");
    assert.equal(proc.done(), true);
  });

  test("stop sends SIGTERM, then SIGKILL to a process that ignores it", async () => {
    const stubborn = startProcess(process.execPath, [
      "-e",
      "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)",
    ]);
    await waitFor(() => stubborn.stdout.includes("ready"), "the process to set its handler");
    const exit = await stubborn.stop(100);
    assert.deepEqual(exit, { code: null, signal: "SIGKILL" });
    assert.equal(isAlive(stubborn.pid as number), false);
  });

  test("a group stops everything it started", async () => {
    const group = new ProcessGroup();
    const help = await group.run("paxos --help", ["--help"]);
    assert.equal(help.code, 0, help.stderr);
    const node = group.start("paxos node --help", ["node", "--help"]);
    await group.stopAll();
    assert.equal(node.done(), true);
  });
});

describe("freeTcpPorts", () => {
  test("gives distinct ports that a server can listen on", async () => {
    const ports = await freeTcpPorts(4);
    assert.equal(new Set(ports).size, 4);
    for (const port of ports) {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", resolve);
      });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
