import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, test } from "node:test";
import type { Message } from "../core/index.js";
import { parseClusterConfig } from "../runtime/index.js";
import { MESSAGES_PER_REPORT_MAX, type NodeReport } from "./protocol.js";
import { laneKind, NodeReporter } from "./reporter.js";
import { type ControlRequest, startDashboard } from "./server.js";

const cluster = (() => {
  const parsed = parseClusterConfig(
    JSON.stringify({
      nodes: [1, 2, 3].map((id) => ({ id, host: "127.0.0.1", port: 7100 + id })),
      quorum: { kind: "majority" },
    }),
  );
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
})();

const heartbeat = (from: number): Message => ({
  type: "heartbeat",
  from,
  ballot: { round: 2, node: from },
  decidedThrough: 7,
  proposedThrough: 7,
});

describe("NodeReporter (what a node tells the dashboard)", () => {
  test("maps every message type to a lane kind", () => {
    assert.equal(laneKind("catchup"), "catch-up");
    assert.equal(laneKind("snapshot-chunk"), "snapshot");
    assert.equal(laneKind("snapshot-request"), "snapshot");
    assert.equal(laneKind("accepted"), "accepted");
    assert.equal(laneKind("reject"), "other");
  });

  test("samples at most MESSAGES_PER_REPORT_MAX messages per report and counts all it sent", () => {
    const reporter = new NodeReporter(1, cluster, () => {});
    reporter.onTrace("out", heartbeat(1), "127.0.0.1:7102"); // not asked to report yet: not counted
    reporter.control({ type: "report" });
    for (let i = 0; i < 1000; i++) reporter.onTrace("out", heartbeat(1), `127.0.0.1:${7102 + (i % 2)}`);
    // Not drawn: messages in, to itself, or to an address that is no node.
    reporter.onTrace("in", heartbeat(2), "127.0.0.1:7102");
    reporter.onTrace("out", heartbeat(1), "127.0.0.1:7101");
    reporter.onTrace("out", heartbeat(1), "127.0.0.1:9999");
    const sample = (reporter as unknown as { sample: NodeReport["messages"] }).sample;
    const sent = (reporter as unknown as { sent: number }).sent;
    assert.equal(sample.length, MESSAGES_PER_REPORT_MAX);
    assert.equal(sent, 1000);
    for (const message of sample) {
      assert.equal(message.kind, "heartbeat");
      assert.equal(message.ballot, "2.1");
      assert.equal(message.slot, 7);
      assert.ok(message.to === 2 || message.to === 3);
    }
  });

  test("cut off drops every frame both ways; a loss rate drops frames sent only; both are counted", () => {
    const reporter = new NodeReporter(1, cluster, () => {});
    const peer = { host: "127.0.0.1", port: 7102 };
    assert.equal(reporter.dropFrame("out", peer), false);
    reporter.control({ type: "cut", on: true });
    assert.equal(reporter.dropFrame("out", peer), true);
    assert.equal(reporter.dropFrame("in", peer), true);
    reporter.control({ type: "cut", on: false });
    reporter.control({ type: "loss", rate: 1 });
    assert.equal(reporter.dropFrame("out", peer), true);
    assert.equal(reporter.dropFrame("in", peer), false);
    // Anything else on the channel is ignored.
    reporter.control({ type: "loss", rate: 7 });
    reporter.control("cut");
    assert.equal(reporter.dropFrame("out", peer), true);
    assert.equal((reporter as unknown as { framesDropped: number }).framesDropped, 4);
  });
});

/** One HTTP request to the dashboard: status and body. */
function call(url: string, method = "GET", body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("the dashboard's server", () => {
  test("serves the page and uPlot, checks controls, and streams the nodes' reports", async () => {
    const controls: ControlRequest[] = [];
    const dashboard = await startDashboard({
      host: "127.0.0.1",
      port: 0,
      nodeIds: [1, 2, 3],
      electionTimeoutMs: 300,
      control: async (request) => {
        controls.push(request);
        return { ok: true, message: "done" };
      },
    });
    try {
      const page = await call(dashboard.url);
      assert.equal(page.status, 200);
      assert.match(page.body, /<svg id="lanes"/);
      assert.match(page.body, /href="\/replay"/);
      assert.equal((await call(`${dashboard.url}app.js`)).status, 200);
      const uplot = await call(`${dashboard.url}uplot/uPlot.esm.js`);
      assert.equal(uplot.status, 200);
      assert.match(uplot.body, /export \{ uPlot as default \}|export default/);
      assert.equal((await call(`${dashboard.url}uplot/package.json`)).status, 404);
      assert.equal((await call(`${dashboard.url}..%2Fpackage.json`)).status, 404);

      const control = (body: string) => call(`${dashboard.url}api/control`, "POST", body);
      assert.deepEqual(JSON.parse((await control("{")).body), {
        ok: false,
        message: "the control is not JSON",
      });
      const bad = await control(JSON.stringify({ action: "loss", rate: 2 }));
      assert.equal(bad.status, 400);
      assert.match(JSON.parse(bad.body).message, /^bad control: rate: /);
      assert.equal((await control(JSON.stringify({ action: "crash", node: 4 }))).status, 400);
      assert.equal((await control("x".repeat(20_000))).status, 413);
      assert.equal(controls.length, 0);
      const good = await control(JSON.stringify({ action: "crash", node: 2 }));
      assert.equal(good.status, 200);
      assert.deepEqual(controls, [{ action: "crash", node: 2 }]);

      // The stream: the state at once, then the messages a node reports.
      dashboard.nodeProcess(1, "running");
      const events = await new Promise<string>((resolve, reject) => {
        const req = request(`${dashboard.url}events`, (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (chunk: string) => {
            text += chunk;
            if (text.includes("event: messages") && text.includes('"log":[{"slot":1,"ballot":"1.1"')) {
              req.destroy();
              resolve(text);
            }
          });
          dashboard.report({
            type: "report",
            id: 1,
            tMs: Date.now(),
            messages: [
              { tMs: Date.now(), from: 1, to: 2, kind: "accept", type: "accept", ballot: "1.1", slot: 1 },
            ],
            sent: 1,
            state: {
              mode: "leader",
              leader: 1,
              ballot: "1.1",
              promised: "1.1",
              floorSlot: 0,
              appliedThrough: 1,
              rejoining: false,
              cut: false,
              lossRate: 0,
              framesDropped: 0,
            },
            decided: [
              {
                slot: 1,
                ballot: "1.1",
                payloads: ['{"t":1,"c":{"op":"put","key":"a","value":"b"}}'],
                commands: 1,
              },
            ],
            commitLatenciesMs: [4],
          });
        });
        req.on("error", reject);
        req.end();
      });
      assert.match(events, /event: messages\ndata: \[\{"tMs":\d+,"from":1,"to":2,"kind":"accept"/);
      assert.match(events, /"leader":\{"id":1,"ballot":"1.1"\}/);
    } finally {
      await dashboard.close();
    }
  });
});
