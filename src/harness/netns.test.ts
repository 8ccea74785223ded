/**
 * Real `paxos node` processes on three hosts made of network namespaces joined by a bridge (see
 * netns.ts): a first batch of values is decided by all three; host 3's link is cut and a second
 * batch is still decided by hosts 1 and 2; the link is restored and node 3 catches up. Run over UDP
 * and over TCP. Where namespaces cannot be made (not root, no `ip`, a locked-down container) each
 * test is skipped with the reason.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type LabProcess, NetnsLab, probeNetns, waitFor } from "./netns.js";

const BIN = fileURLToPath(new URL("../../bin/paxos.js", import.meta.url));

/** Checked once per file: a few `ip` commands. */
const probe = probeNetns();

/** Labs not yet destroyed; `after` removes them if a test ended without its `finally` (a timeout). */
const liveLabs = new Set<NetnsLab>();
after(async () => {
  await Promise.all([...liveLabs].map((lab) => lab.destroy()));
});

/** Values per batch: enough to span several slots, few enough to stay quick. */
const BATCH_VALUES = 20;
/** Generous limits for each stage; a healthy run takes well under a second per stage. */
const START_TIMEOUT_MS = 10_000;
const DECIDE_TIMEOUT_MS = 12_000;
const CLIENT_EXIT_TIMEOUT_MS = 5_000;

function values(prefix: string): string[] {
  return Array.from({ length: BATCH_VALUES }, (_, i) => `${prefix}-${String(i + 1).padStart(2, "0")}`);
}

function hasAll(lines: readonly string[], wanted: readonly string[]): boolean {
  const seen = new Set(lines);
  return wanted.every((value) => seen.has(value));
}

function duplicatesIn(lines: readonly string[]): string[] {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const line of lines) {
    if (seen.has(line)) twice.push(line);
    seen.add(line);
  }
  return twice;
}

async function scenario(t: TestContext, transport: "udp" | "tcp"): Promise<void> {
  if (!probe.ok) {
    t.skip(`network namespaces not permitted here: ${probe.reason}`);
    return;
  }
  const lab = NetnsLab.create({ hosts: 3 });
  liveLabs.add(lab);
  const dir = mkdtempSync(join(tmpdir(), "paxos-netns-"));
  try {
    const config = join(dir, "cluster.json");
    writeFileSync(
      config,
      JSON.stringify({
        name: `netns-${transport}`,
        nodes: lab.hosts.map((host) => ({ id: host.index, host: host.address, port: 7100 + host.index })),
        quorum: { kind: "majority" },
        transport,
      }),
    );
    const env = { ...process.env, PAXOS_LOG_LEVEL: "info" };
    const nodes = lab.hosts.map((host) =>
      lab.spawn(
        host.index,
        process.execPath,
        [BIN, "node", "--config", config, "--id", String(host.index), "--new"],
        {
          name: `node ${host.index}`,
          env,
        },
      ),
    );
    const [node1, node2, node3] = nodes as [LabProcess, LabProcess, LabProcess];
    const report =
      (extra: readonly LabProcess[] = []) =>
      () =>
        [...nodes, ...extra]
          .map(
            (p) =>
              `${p.name} (exit ${p.exit ?? "running"}): ${p.lines.length} line(s) on stdout; stderr tail:\n${p.stderrTail(8)}`,
          )
          .join("\n");
    const noneExited = () => {
      const gone = nodes.filter((n) => n.exit !== null);
      assert.deepEqual(
        gone.map((n) => `${n.name} exited ${n.exit}`),
        [],
        report()(),
      );
    };
    // A client runs in host 1 with its values on stdin. Its stdin is closed only once the nodes have
    // printed the values, and it must then exit 0 (every value acked). A client that does not is
    // noted and stopped, and the scenario goes on, so one run shows both that and how the cluster
    // fared. (Closing stdin right after writing it races in `paxos client`: see the report.)
    const submit = (clientId: number, batch: readonly string[]): LabProcess => {
      const client = lab.spawn(1, process.execPath, [BIN, "client", String(clientId), config], {
        name: `client ${clientId}`,
        env,
      });
      client.write(batch);
      return client;
    };
    const clientProblems: string[] = [];
    const settleClient = async (client: LabProcess) => {
      client.closeInput();
      try {
        await waitFor(() => client.exit !== null, CLIENT_EXIT_TIMEOUT_MS, `${client.name} to exit`);
        if (client.exit !== "0")
          clientProblems.push(`${client.name} exited ${client.exit}:\n${client.stderrTail()}`);
      } catch {
        clientProblems.push(
          `${client.name} was still running ${CLIENT_EXIT_TIMEOUT_MS} ms after its stdin was closed and every node had printed its values (acks not received?)`,
        );
        await client.stop();
      }
    };

    const startMs = await waitFor(
      () =>
        nodes.every((n) => n.stderrLines.some((line) => line.includes('"msg":"started"'))) ||
        nodes.some((n) => n.exit !== null),
      START_TIMEOUT_MS,
      "three nodes to start",
      report(),
    );
    noneExited();
    t.diagnostic(`${transport}: nodes started in ${Math.round(startMs)} ms`);

    // Batch 1, through host 1: every node prints it.
    const first = values(`${transport}-a`);
    const client1 = submit(77, first);
    const firstMs = await waitFor(
      () => nodes.every((n) => hasAll(n.lines, first)),
      DECIDE_TIMEOUT_MS,
      "all three nodes to print the first batch",
      report([client1]),
    );
    t.diagnostic(`${transport}: first batch decided on all three nodes in ${Math.round(firstMs)} ms`);
    await settleClient(client1);
    noneExited();
    const node3Before = node3.lines.length;
    assert.equal(node3Before, first.length, report()());

    // Cut host 3 off the bridge; batch 2, through host 1 again, must still be decided by 1 and 2.
    // A new client id: a client numbers its commands from 1 in each run, so a second run under
    // id 77 would repeat (77, 1..20), which the nodes rightly treat as already delivered.
    lab.setLink(3, false);
    const second = values(`${transport}-b`);
    const client2 = submit(78, second);
    const secondMs = await waitFor(
      () => hasAll(node1.lines, second) && hasAll(node2.lines, second),
      DECIDE_TIMEOUT_MS,
      "nodes 1 and 2 to print the second batch with host 3 cut off",
      report([client2]),
    );
    t.diagnostic(
      `${transport}: second batch decided by nodes 1 and 2 (host 3 cut) in ${Math.round(secondMs)} ms`,
    );
    await settleClient(client2);
    noneExited();
    assert.equal(node3.lines.length, node3Before, `node 3 printed values while cut off:\n${report()()}`);

    // Restore host 3: node 3 catches up, in the same order as nodes 1 and 2.
    lab.setLink(3, true);
    const everything = [...first, ...second];
    const catchUpMs = await waitFor(
      () => hasAll(node3.lines, everything),
      DECIDE_TIMEOUT_MS,
      "node 3 to catch up after its link was restored",
      report(),
    );
    t.diagnostic(`${transport}: node 3 caught up ${second.length} values in ${Math.round(catchUpMs)} ms`);
    noneExited();

    // Stop the nodes so their outputs are complete, then compare them.
    const exits = await Promise.all(nodes.map((n) => n.stop()));
    assert.deepEqual(exits, ["0", "0", "0"], report()());
    for (const node of nodes) {
      assert.deepEqual(duplicatesIn(node.lines), [], `${node.name} printed values twice`);
      assert.deepEqual([...node.lines].sort(), [...everything].sort(), `${node.name} printed other values`);
    }
    assert.deepEqual(node2.lines, node1.lines, "nodes 1 and 2 printed different sequences");
    assert.deepEqual(node3.lines, node1.lines, "node 3 printed a different sequence from node 1");
    assert.deepEqual(clientProblems, [], "paxos client misbehaved (the cluster itself was fine)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await lab.destroy();
    liveLabs.delete(lab);
  }
}

describe("paxos node on three hosts (network namespaces joined by a bridge)", () => {
  for (const transport of ["udp", "tcp"] as const) {
    test(
      `${transport}: cutting one host's link leaves a majority deciding, and the host catches up when restored`,
      {
        timeout: 55_000,
      },
      (t) => scenario(t, transport),
    );
  }
});
