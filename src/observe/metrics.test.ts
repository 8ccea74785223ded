import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { httpRouteOf, NodeMetrics, type NodeMetricsSample } from "./metrics.js";
import { parsePrometheusText, samplesOf, sampleValue } from "./prometheus-text.js";

/** A node's counters as a test sets them. */
function sampleWith(overrides: Partial<NodeMetricsSample> = {}): NodeMetricsSample {
  return {
    driver: {
      framesIn: 100,
      framesOut: 90,
      decodeErrors: 2,
      framesDropped: 3,
      framesIgnored: 4,
      framesPaused: 0,
      framesDroppedByHook: 5,
      decisions: 7,
      snapshotsTaken: 1,
      snapshotsInstalled: 0,
    },
    messagesIn: { accepted: 14, catchup: 2 },
    messagesOut: { accept: 14, "snapshot-chunk": 5 },
    frameRefusals: { "bad-mac": 6 },
    roleRefusals: { "ballot-past-ceiling": 1 },
    proposer: {
      mode: "leader",
      ballot: { round: 4, node: 1 },
      leader: 1,
      electionsStarted: 2,
      prepareResends: 3,
      acceptResends: 1,
      checkQuorumStepDowns: 0,
      droppedCommands: 0,
    },
    promised: { round: 4, node: 1 },
    appliedThroughSlot: 7,
    knownDecidedThroughSlot: 9,
    snapshotsRefused: 0,
    rejoining: false,
    proposals: 8,
    commandsDecided: 11,
    pendingProposals: 1,
    pendingReads: 0,
    sessionsOpen: 2,
    storage: { syncs: 12, bytes: 4096, diskBytes: 8192, segments: 1, compactions: 0 },
    storageFailed: false,
    walSyncRunningMs: 0,
    ...overrides,
  };
}

describe("NodeMetrics (prom-client, one registry per node)", () => {
  test("counters and gauges are read from the node at each scrape", async () => {
    let sample = sampleWith();
    const metrics = new NodeMetrics({ nodeId: 1, sample: () => sample });
    let text = parsePrometheusText(await metrics.text());
    assert.equal(text.types.get("paxos_slots_decided_total"), "counter");
    assert.equal(text.types.get("paxos_is_leader"), "gauge");
    assert.equal(sampleValue(text, "paxos_slots_decided_total", { node: "1" }), 7);
    assert.equal(sampleValue(text, "paxos_commands_decided_total"), 11);
    assert.equal(sampleValue(text, "paxos_is_leader"), 1);
    assert.equal(sampleValue(text, "paxos_ballot_round"), 4);
    assert.equal(sampleValue(text, "paxos_lag_slots"), 2);
    assert.equal(sampleValue(text, "paxos_elections_started_total"), 2);
    assert.equal(sampleValue(text, "paxos_phase1_retries_total"), 3);
    assert.equal(sampleValue(text, "paxos_catchup_requests_received_total"), 2);
    assert.equal(sampleValue(text, "paxos_snapshot_chunks_sent_total"), 5);
    assert.equal(sampleValue(text, "paxos_frames_dropped_total", { reason: "decode-error" }), 2);
    assert.equal(sampleValue(text, "paxos_frames_dropped_total", { reason: "control" }), 5);
    assert.equal(sampleValue(text, "paxos_frames_dropped_total", { reason: "mailbox-full" }), 3);
    assert.equal(sampleValue(text, "paxos_frames_refused_total", { reason: "bad-mac" }), 6);
    assert.equal(sampleValue(text, "paxos_inputs_refused_total", { reason: "ballot-past-ceiling" }), 1);
    assert.equal(sampleValue(text, "paxos_messages_sent_total", { type: "accept" }), 14);
    // The next scrape reads the node afresh: counters follow it, gauges too.
    sample = sampleWith({
      driver: { ...sample.driver, decisions: 20 },
      proposer: { ...sample.proposer, mode: "follower", leader: 2 },
      roleRefusals: { "ballot-past-ceiling": 1, "not-a-member": 4 },
    });
    text = parsePrometheusText(await metrics.text());
    assert.equal(sampleValue(text, "paxos_slots_decided_total"), 20);
    assert.equal(sampleValue(text, "paxos_is_leader"), 0);
    assert.equal(sampleValue(text, "paxos_leader_id"), 2);
    assert.equal(samplesOf(text, "paxos_inputs_refused_total").length, 2);
  });

  test("observed events fill the histograms and counters", async () => {
    const metrics = new NodeMetrics({ nodeId: 3, sample: () => sampleWith() });
    metrics.committed(0.8); // ms
    metrics.committed(30);
    metrics.decided(5);
    metrics.walSynced(2);
    metrics.leaderChanged();
    metrics.httpRequest("/kv/a%2Fb", "PUT", 200, 1.5);
    metrics.httpRequest("/kv/other", "PUT", 200, 1.5);
    metrics.httpRequest("/nowhere", "BREW", 404, 0.1);
    const text = parsePrometheusText(await metrics.text());
    assert.equal(sampleValue(text, "paxos_commit_latency_seconds_count", { node: "3" }), 2);
    assert.equal(sampleValue(text, "paxos_commit_latency_seconds_bucket", { le: "0.001" }), 1);
    assert.equal(sampleValue(text, "paxos_commit_latency_seconds_bucket", { le: "0.05" }), 2);
    assert.ok(Math.abs(sampleValue(text, "paxos_commit_latency_seconds_sum") - 0.0308) < 1e-9);
    assert.equal(sampleValue(text, "paxos_batch_size_commands_bucket", { le: "4" }), 0);
    assert.equal(sampleValue(text, "paxos_batch_size_commands_bucket", { le: "8" }), 1);
    assert.equal(sampleValue(text, "paxos_wal_sync_seconds_count"), 1);
    assert.equal(sampleValue(text, "paxos_leader_changes_total"), 1);
    // Keys never become labels: both writes count under one route.
    assert.equal(
      sampleValue(text, "paxos_http_requests_total", { route: "/kv/:key", method: "PUT", status: "200" }),
      2,
    );
    assert.equal(
      sampleValue(text, "paxos_http_requests_total", { route: "other", method: "other", status: "404" }),
      1,
    );
  });

  test("two nodes in one process keep apart (no global registry)", async () => {
    const one = new NodeMetrics({ nodeId: 1, sample: () => sampleWith() });
    const two = new NodeMetrics({
      nodeId: 2,
      sample: () => sampleWith({ proposer: { ...sampleWith().proposer, mode: "follower" } }),
    });
    one.leaderChanged();
    const first = parsePrometheusText(await one.text());
    const second = parsePrometheusText(await two.text());
    assert.equal(sampleValue(first, "paxos_leader_changes_total"), 1);
    assert.equal(sampleValue(second, "paxos_leader_changes_total"), 0);
    assert.equal(sampleValue(first, "paxos_is_leader", { node: "1" }), 1);
    assert.equal(sampleValue(second, "paxos_is_leader", { node: "2" }), 0);
  });

  test("routes are labelled without keys, names or ids", () => {
    assert.equal(httpRouteOf("/kv"), "/kv");
    assert.equal(httpRouteOf("/kv/a/b"), "/kv/:key");
    assert.equal(httpRouteOf("/watch"), "/watch/:prefix");
    assert.equal(httpRouteOf("/watch/app/"), "/watch/:prefix");
    assert.equal(httpRouteOf("/lock/l"), "/lock/:name");
    assert.equal(httpRouteOf("/session/12"), "/session/:id");
    assert.equal(httpRouteOf("/metrics"), "/metrics");
    assert.equal(httpRouteOf("/../etc"), "other");
  });
});

describe("parsePrometheusText", () => {
  test("reads labels with escapes, special values and timestamps; refuses what is not the format", () => {
    const text = parsePrometheusText(
      [
        "# HELP m A metric",
        "# TYPE m gauge",
        'm{a="x\\"y",b="line\\nbreak",c="back\\\\slash"} 1.5',
        "m_inf +Inf",
        "m_ts 3 1700000000000",
        "",
      ].join("\n"),
    );
    assert.equal(text.types.get("m"), "gauge");
    assert.equal(text.help.get("m"), "A metric");
    assert.deepEqual(text.samples[0], {
      name: "m",
      labels: { a: 'x"y', b: "line\nbreak", c: "back\\slash" },
      value: 1.5,
    });
    assert.equal(sampleValue(text, "m_inf"), Number.POSITIVE_INFINITY);
    assert.equal(sampleValue(text, "m_ts"), 3);
    assert.throws(() => parsePrometheusText("m{a=1} 2"), /line 1: label a has no ="value"/);
    assert.throws(() => parsePrometheusText("m 1 2 3"), /line 1/);
    assert.throws(() => parsePrometheusText("m abc"), /line 1: "abc" is not a sample value/);
    assert.throws(() => sampleValue(text, "absent"), /0 samples of absent/);
  });
});
