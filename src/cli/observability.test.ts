import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  hasLogged,
  LOG_MESSAGES,
  logRecords,
  type PrometheusText,
  parsePrometheusText,
  samplesOf,
  sampleValue,
} from "../observe/index.js";
import {
  freeTcpPorts,
  freeUdpPorts,
  ProcessGroup,
  runPaxosSync,
  type StartedProcess,
  waitFor,
} from "../test-support/index.js";

/** What a node's HTTP API answered. */
interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

async function call(url: string, init: { method?: string; body?: string } = {}): Promise<Answer> {
  const response = await fetch(url, {
    method: init.method ?? "GET",
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "",
    text: await response.text(),
  };
}

/**
 * Waits until `probe()` (one HTTP call at a time, asked again as soon as the last answered) gives
 * an answer `good` accepts; resolves with that answer.
 */
async function waitForAnswer<T>(
  probe: () => Promise<T>,
  good: (answer: T) => boolean,
  what: string,
  timeoutMs?: number,
): Promise<T> {
  let last: T | null = null;
  let found: T | null = null;
  let asking = false;
  await waitFor(
    () => {
      if (found !== null) return true;
      if (!asking) {
        asking = true;
        probe()
          .then((answer) => {
            last = answer;
            if (good(answer)) found = answer;
          })
          .catch((error: unknown) => {
            last = error as T;
          })
          .finally(() => {
            asking = false;
          });
      }
      return false;
    },
    what,
    { detail: () => JSON.stringify(last), ...(timeoutMs !== undefined ? { timeoutMs } : {}) },
  );
  return found as unknown as T;
}

describe("/metrics, /health and --debug of three paxos node --http processes", () => {
  const group = new ProcessGroup();
  let dir = "";
  let urls: string[] = [];
  let nodes: StartedProcess[] = [];

  const scrape = async (index: number): Promise<PrometheusText> => {
    const answer = await call(`${urls[index]}/metrics`);
    assert.equal(answer.status, 200, answer.text);
    assert.match(answer.contentType, /^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(answer.text);
  };
  const scrapeAll = () => Promise.all(urls.map((_, index) => scrape(index)));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "paxos-observe-test-"));
    const udp = await freeUdpPorts(3);
    const tcp = await freeTcpPorts(3);
    urls = tcp.map((port) => `http://127.0.0.1:${port}`);
    const config = join(dir, "cluster.json");
    writeFileSync(
      config,
      JSON.stringify({
        nodes: udp.map((port, i) => ({ id: i + 1, host: "127.0.0.1", port, http: `127.0.0.1:${tcp[i]}` })),
      }),
    );
    // Durable state in data directories (so the write-ahead log syncs); node 3 traces every message.
    nodes = [1, 2, 3].map((id) =>
      group.start(`node ${id}`, [
        "node",
        "--config",
        config,
        "--id",
        String(id),
        "--new",
        "--data",
        join(dir, `node-${id}`),
        ...(id === 3 ? ["--debug"] : []),
      ]),
    );
    for (const [i, node] of nodes.entries())
      await waitFor(() => hasLogged(node.stderr, LOG_MESSAGES.started), `node ${i + 1} to start`, {
        detail: () => node.stderr,
      });
    await waitForAnswer(
      () => Promise.all(urls.map((url) => call(`${url}/health`))),
      (answers) => answers.every((answer) => answer.status === 200),
      "every node to be healthy (a leader known by all)",
    );
  });

  after(async () => {
    await group.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test("after writes, /metrics has decisions, commit latencies, one leader and HTTP requests by route and status", async () => {
    // Ten writes through node 1 and ten through node 2 (a follower, or the leader), one read of a
    // missing key on node 1 (404).
    const writes = 10;
    // Before: nothing proposed on node 1 yet (this scrape is counted in the next one).
    const before = await scrape(0);
    assert.equal(sampleValue(before, "paxos_proposals_total"), 0);
    assert.equal(sampleValue(before, "paxos_commit_latency_seconds_count"), 0);
    for (let i = 0; i < writes; i++) {
      for (const index of [0, 1]) {
        const answer = await call(`${urls[index]}/kv/key-${index}-${i}`, { method: "PUT", body: `v${i}` });
        assert.equal(answer.status, 200, answer.text);
      }
    }
    assert.equal((await call(`${urls[0]}/kv/absent`)).status, 404);
    // Every node applies all twenty writes (followers learn them a little later).
    // (And, on a loaded machine, past any moment where a deposed leader has not yet stepped down.)
    const texts = await waitForAnswer(
      scrapeAll,
      (all) =>
        all.every((text) => sampleValue(text, "paxos_commands_decided_total") >= 2 * writes) &&
        new Set(all.map((text) => sampleValue(text, "paxos_leader_id"))).size === 1,
      "every node to apply the twenty writes and name one leader",
    );
    for (const [index, text] of texts.entries()) {
      const node = { node: String(index + 1) };
      assert.equal(text.types.get("paxos_slots_decided_total"), "counter");
      assert.ok(sampleValue(text, "paxos_slots_decided_total", node) > 0);
      assert.ok(sampleValue(text, "paxos_applied_through_slot", node) > 0);
      // The write-ahead log synced votes and promises.
      assert.ok(sampleValue(text, "paxos_wal_sync_seconds_count", node) > 0);
      assert.ok(sampleValue(text, "paxos_wal_syncs_total", node) > 0);
      assert.ok(sampleValue(text, "paxos_wal_disk_bytes", node) > 0);
      assert.equal(sampleValue(text, "paxos_wal_failed", node), 0);
      // Messages by type: every node votes. Each message sent is one frame per destination (one
      // sample: the two agree exactly); a message received was a frame that decoded.
      assert.ok(sampleValue(text, "paxos_messages_sent_total", { type: "accepted" }) > 0);
      const total = (name: string) => samplesOf(text, name).reduce((sum, sample) => sum + sample.value, 0);
      assert.equal(total("paxos_messages_sent_total"), sampleValue(text, "paxos_frames_sent_total"));
      assert.ok(total("paxos_messages_received_total") <= sampleValue(text, "paxos_frames_received_total"));
      assert.ok(total("paxos_messages_received_total") > 0);
      // The process's own metrics ride along.
      assert.ok(samplesOf(text, "process_cpu_user_seconds_total").length === 1);
    }
    // Nodes 1 and 2 each proposed their ten writes and saw each one committed.
    for (const index of [0, 1]) {
      const text = texts[index] as PrometheusText;
      assert.equal(sampleValue(text, "paxos_proposals_total"), writes);
      assert.equal(sampleValue(text, "paxos_commit_latency_seconds_count"), writes);
      assert.ok(sampleValue(text, "paxos_commit_latency_seconds_sum") > 0);
      assert.equal(
        sampleValue(text, "paxos_http_requests_total", { route: "/kv/:key", method: "PUT", status: "200" }),
        writes,
      );
    }
    assert.equal(sampleValue(texts[2] as PrometheusText, "paxos_commit_latency_seconds_count"), 0);
    const first = texts[0] as PrometheusText;
    assert.equal(
      sampleValue(first, "paxos_http_requests_total", { route: "/kv/:key", method: "GET", status: "404" }),
      1,
    );
    // The scrape of node 1 before the writes was answered before this one: it is counted by now.
    assert.ok(
      sampleValue(first, "paxos_http_requests_total", { route: "/metrics", method: "GET", status: "200" }) >=
        1,
    );
    // Exactly one leader, and every node names it.
    const leaders = texts.map((text) => sampleValue(text, "paxos_is_leader"));
    assert.deepEqual(
      leaders.filter((value) => value === 1),
      [1],
      `leader gauges ${leaders.join(",")}`,
    );
    const leaderId = leaders.indexOf(1) + 1;
    for (const text of texts) assert.equal(sampleValue(text, "paxos_leader_id"), leaderId);
    // Each node logged the leader it learned (the last "leader changed" names it).
    for (const node of nodes) {
      const changes = logRecords(node.stderr, LOG_MESSAGES.leaderChanged);
      assert.equal(changes[changes.length - 1]?.leader, leaderId, node.stderr);
    }
    const leaderText = texts[leaderId - 1] as PrometheusText;
    assert.ok(sampleValue(leaderText, "paxos_elections_started_total") >= 1);
    assert.ok(sampleValue(leaderText, "paxos_ballot_round") >= 1);
    assert.ok(sampleValue(leaderText, "paxos_leader_changes_total") >= 1);
    // Batches: every decided slot is in the histogram; the writes were one command each.
    const batches = sampleValue(leaderText, "paxos_batch_size_commands_count");
    assert.equal(batches, sampleValue(leaderText, "paxos_slots_decided_total"));
    assert.ok(sampleValue(leaderText, "paxos_batch_size_commands_sum") >= 2 * writes);
  });

  test("/health is 200 with the node's standing on every node", async () => {
    const answers = await waitForAnswer(
      () => Promise.all(urls.map((url) => call(`${url}/health`))),
      (all) => all.every((answer) => answer.status === 200 && JSON.parse(answer.text).lagSlots === 0),
      "every node healthy and caught up",
    );
    for (const [index, answer] of answers.entries()) {
      const body = JSON.parse(answer.text);
      assert.equal(body.status, "ok");
      assert.equal(body.id, index + 1);
      assert.equal(typeof body.leader, "number");
      assert.equal(body.rejoining, false);
      assert.equal(body.knownDecidedThrough, body.appliedThrough);
    }
  });

  test("--debug prints one readable line per message: time, peer, kind, ballot, slot, bytes", () => {
    const stderr = (nodes[2] as StartedProcess).stderr;
    const start = String.raw`^\d\d:\d\d:\d\d\.\d{3} node 3`;
    const peer = String.raw`node [12] \(127\.0\.0\.1:\d+\)`;
    // Leader or follower, node 3 took part in the writes: it sent accepts (leading) or accepteds.
    const sentVote = new RegExp(
      String.raw`${start} -> ${peer} (accept ballot=\d+\.[123] slot=\d+ commands=\d+|accepted ballot=\d+\.[123] slot=\d+) bytes=\d+$`,
      "m",
    );
    assert.match(stderr, sentVote);
    assert.match(
      stderr,
      new RegExp(String.raw`${start} <- ${peer} (heartbeat|accept|accepted|promise) ballot=\d+\.[123] `, "m"),
    );
    // The others print none.
    assert.doesNotMatch((nodes[0] as StartedProcess).stderr, / node 1 -> /);
  });

  test("with its peers gone the leader steps down: /health 503 no-leader, is_leader 0", async () => {
    const texts = await scrapeAll();
    const leaderIndex = texts.findIndex((text) => sampleValue(text, "paxos_is_leader") === 1);
    assert.ok(leaderIndex >= 0);
    // Stop both followers: the leader hears no phase-2 quorum and steps down within the election timeout.
    for (const [index, node] of nodes.entries()) if (index !== leaderIndex) node.kill("SIGKILL");
    const answer = await waitForAnswer(
      () => call(`${urls[leaderIndex]}/health`),
      (health) => health.status === 503,
      "the leader alone to say it is not in good standing",
    );
    const body = JSON.parse(answer.text);
    assert.equal(body.code, "no-leader", answer.text);
    assert.equal(body.status, "unavailable");
    assert.equal(typeof body.message, "string");
    const alone = await scrape(leaderIndex);
    assert.equal(sampleValue(alone, "paxos_is_leader"), 0);
    assert.ok(sampleValue(alone, "paxos_check_quorum_step_downs_total") >= 1);
    assert.equal(
      sampleValue(alone, "paxos_http_requests_total", { route: "/health", method: "GET", status: "503" }) >=
        1,
      true,
    );
  });
});

describe("paxos node --log-level", () => {
  test("an unknown level is one line naming the flag and the levels (exit 2)", () => {
    const run = runPaxosSync(["node", "--config", "cluster.json", "--id", "1", "--log-level", "loud"]);
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
    assert.match(
      run.stderr,
      /--log-level wants one of silent, fatal, error, warn, info, debug, trace; got "loud"/,
    );
  });
});
