/**
 * The README's HTTP block (```sh example): a `paxos cluster` with HTTP, then curl and `paxos kv`
 * against it, each line's `# comment` the output it must print (the first line's says what it
 * starts). Run on free ports: 8101..8103 in the README become the ports found.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { freePortRange, PAXOS_BIN, ProcessGroup, waitFor } from "../test-support/index.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const block = /```sh example\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";

test("the README's HTTP API and command-line example runs and prints what its comments say", async (t) => {
  const lines = block.trim().split("\n");
  assert.ok(lines.length >= 5, "the README has the example");
  if (spawnSync("curl", ["--version"]).status !== 0) {
    t.skip("curl is not installed (.ci/run installs it)");
    return;
  }
  const base = await freePortRange(3);
  const ports = (text: string) => text.replace(/810([1-3])/g, (_, n: string) => String(base + Number(n) - 1));
  const group = new ProcessGroup();
  try {
    const [first, ...rest] = lines as [string, ...string[]];
    const clusterArgs = ports(first.replace(/#.*$/, "").replace(/&\s*$/, "").trim()).split(/\s+/).slice(2);
    // The cluster's UDP ports, free too (the README's default is 7101..).
    const udp = await freePortRange(3);
    const cluster = group.start("paxos cluster", [...clusterArgs, "--base-port", String(udp)]);
    const said = () => cluster.stdout + cluster.stderr;
    await waitFor(() => said().includes("HTTP API") || cluster.done(), "the cluster's HTTP addresses", {
      timeoutMs: 30_000,
    });
    assert.equal(cluster.done(), false, said());
    for (const line of rest) {
      const [command, comment] = line.split(/\s+# /) as [string, string | undefined];
      const words = ports(command.trim()).match(/"[^"]*"|\S+/g) ?? [];
      const argv = words.map((w) => w.replace(/^"|"$/g, ""));
      const run =
        argv[0] === "npx"
          ? spawnSync(process.execPath, [PAXOS_BIN, ...argv.slice(2)], { encoding: "utf8", timeout: 30_000 })
          : spawnSync(argv[0] as string, ["-sS", "--retry", "5", "--retry-connrefused", ...argv.slice(1)], {
              encoding: "utf8",
              timeout: 30_000,
            });
      assert.equal(run.status, 0, `${line}\n${run.stderr}`);
      if (comment !== undefined) assert.equal(run.stdout.trim(), comment.trim(), line);
    }
  } finally {
    await group.stopAll();
  }
});
