import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Client, Prng } from "../core/index.js";
import { ProcessGroup } from "../test-support/index.js";
import { busyReporter } from "./roles.js";

describe("paxos client at the edge", () => {
  test("an oversize line is refused before it is sent, with a clear error, and the client exits 1", async () => {
    const processes = new ProcessGroup();
    const dir = mkdtempSync(join(tmpdir(), "paxos-edge-test-"));
    try {
      const base = 20_000 + Math.floor(Math.random() * (40_000 - 4));
      const configPath = join(dir, "paxos.conf");
      writeFileSync(
        configPath,
        `clients 239.0.0.1 ${base}\nproposers 239.0.0.1 ${base + 1}\n` +
          `acceptors 239.0.0.1 ${base + 2}\nlearners 239.0.0.1 ${base + 3}\n`,
      );
      // No cluster runs: the only line never leaves the client.
      const client = processes.start("client 1", ["client", "1", configPath], { stdin: true });
      client.child.stdin?.end(`${"x".repeat(8193)}\n`);
      const exit = await client.exited;
      assert.deepEqual(exit, { code: 1, signal: null }, client.stderr);
      assert.match(
        client.stderr,
        /paxos client: line not sent: payload of 8193 UTF-8 bytes is over the 8192-byte limit\n/,
      );
    } finally {
      await processes.stopAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a leader's busy refusals are said on stderr at most once a second, with counts by reason", () => {
    const said: string[] = [];
    let now = 0;
    const report = busyReporter(
      "paxos client",
      (text) => said.push(text),
      () => now,
    );
    const client = new Client({ id: 7, prng: new Prng(7) });
    for (const payload of ["a", "b", "c"]) assert.ok(client.submit(payload).ok);
    client.step({ type: "refuse", from: 1, client: 7, reason: "client-pending-full", seqs: [1, 2] });
    report(client);
    assert.deepEqual(said, [
      "paxos client: the cluster is busy: values not taken for now: 2 (client-pending-full); sending them again\n",
    ]);
    client.step({ type: "refuse", from: 1, client: 7, reason: "pending-full", seqs: [3] });
    now = 500;
    report(client);
    assert.equal(said.length, 1, "not again within a second");
    now = 1000;
    report(client);
    assert.equal(
      said[1],
      "paxos client: the cluster is busy: values not taken for now: 1 (pending-full); sending them again\n",
    );
    report(client);
    assert.equal(said.length, 2, "nothing new, nothing said");
  });
});
