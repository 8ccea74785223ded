import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ProcessGroup } from "../test-support/index.js";

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
});
