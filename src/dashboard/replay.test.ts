import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { describeScenario, runSeed, scenarioForSeed } from "../sim/index.js";
import { handleReplayRequest } from "./replay.js";
import { type ReplayRun, recordRun } from "./replay-run.js";
import { REPLAY_VARIANTS } from "./replay-variants.js";

let server: Server;
let base: string;

before(async () => {
  server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (!(await handleReplayRequest(req, res, url))) res.writeHead(404).end("not a replay route");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function getRun(query: string): Promise<ReplayRun> {
  const response = await fetch(`${base}/replay/run?${query}`);
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as ReplayRun;
}

describe("the replay routes (handleReplayRequest)", () => {
  test("serve the page and its script, and leave other paths to the caller", async () => {
    const page = await fetch(`${base}/replay`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(await page.text(), /<script type="module" src="\/replay\/replay.js">/);
    const script = await fetch(`${base}/replay/replay.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.match(await script.text(), /\/replay\/run\?/);
    const other = await fetch(`${base}/replayed`);
    assert.equal(other.status, 404);
    assert.equal(await other.text(), "not a replay route");
    const unknown = await fetch(`${base}/replay/nothing`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, "unknown-route");
    const post = await fetch(`${base}/replay/run?seed=1`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    assert.equal(((await post.json()) as { code: string }).code, "method-not-allowed");
  });

  test("a passing seed: every property passes, and the events are the run's", async () => {
    const run = await getRun("seed=42");
    assert.equal(run.seed, 42);
    assert.equal(run.scenario.description, describeScenario(scenarioForSeed(42)));
    assert.equal(run.violation, null);
    for (const v of run.verdict) assert.equal(v.status, "pass", `${v.property}`);
    assert.equal(run.verdict.length, 14);
    // The worker ran the very run `paxos sim --seed 42` runs.
    const direct = await runSeed(42);
    assert.equal(run.totals.traceHash, direct.traceHash);
    assert.equal(run.totals.events, direct.events);
    assert.equal(run.truncated, null);
    assert.equal(run.firstIndex, 0);
    assert.equal(run.events.length, run.eventsTotal);
    assert.ok(run.events.length > 1000, `${run.events.length} events`);
    const lanes = new Set(run.processes);
    for (const e of run.events) {
      if (e.kind === "deliver" || e.kind === "drop") assert.ok(lanes.has(e.from) && lanes.has(e.to), e.from);
      if ("process" in e) assert.ok(lanes.has(e.process), e.process);
    }
    const accepts = run.events.filter((e) => e.kind === "deliver" && e.message?.type === "accept");
    assert.ok(accepts.length > 0, "accepts are delivered");
  });

  test("a failing seed (a broken variant): the violation, its verdict and its event's index", async () => {
    const run = await getRun("seed=18&bugs=acceptor-ignores-promise");
    assert.equal(run.variant?.name, "acceptor-ignores-promise");
    const violation = run.violation;
    assert.ok(violation !== null, "seed 18 with the broken acceptor fails");
    assert.equal(violation.property, "agreement");
    const event = run.events[violation.index];
    assert.equal(event?.kind, "violation");
    assert.equal(event?.event, violation.event);
    assert.equal(violation.index, run.events.length - 1, "the run stops at its violation");
    const verdict = new Map(run.verdict.map((v) => [v.property, v]));
    assert.equal(verdict.get("agreement")?.status, "fail");
    assert.equal(verdict.get("agreement")?.detail, violation.detail);
    assert.equal(verdict.get("prefix")?.status, "pass");
    assert.equal(verdict.get("liveness")?.status, "not reached");
    // Seed 18 has no key-value clients.
    assert.equal(verdict.get("linearizability")?.status, "not checked");
    // The same seed with the correct code passes.
    const correct = await getRun("seed=18");
    assert.equal(correct.violation, null);
  });

  test("bad input is answered 400 with {code, message}, naming what is wrong", async () => {
    const bad: [string, RegExp][] = [
      ["", /seed is missing/],
      ["seed=", /non-negative integer/],
      ["seed=abc", /non-negative integer, got "abc"/],
      ["seed=-1", /non-negative integer/],
      ["seed=1.5", /non-negative integer/],
      ["seed=1e3", /non-negative integer/],
      ["seed=99999999999999999", /non-negative integer/],
      ["seed=1&seed=2", /more than once/],
      ["seed=1&bugs=nope", /bugs must be one of acceptor-ignores-promise, /],
      ["seed=1&stray=yes", /stray must be 0 or 1/],
      ["seed=1&speed=2", /unknown parameter "speed"/],
    ];
    for (const [query, message] of bad) {
      const response = await fetch(`${base}/replay/run?${query}`);
      assert.equal(response.status, 400, query);
      const body = (await response.json()) as { code: string; message: string };
      assert.equal(body.code, "bad-request", query);
      assert.match(body.message, message, query);
    }
  });

  test("lists the broken variants, and each example seed fails with its variant", async () => {
    const response = await fetch(`${base}/replay/variants`);
    const variants = (await response.json()) as { name: string; exampleSeed: number | null }[];
    assert.deepEqual(
      variants.map((v) => v.name),
      Object.keys(REPLAY_VARIANTS),
    );
    for (const [name, variant] of Object.entries(REPLAY_VARIANTS)) {
      if (variant.exampleSeed === null) continue;
      const result = await runSeed(variant.exampleSeed, { bugs: variant.bugs });
      assert.ok(result.violations.length > 0, `${name} fails at seed ${variant.exampleSeed}`);
    }
  });

  test(`at most two runs at a time: a third is answered 429 busy`, async () => {
    const responses = await Promise.all(
      ["4", "6", "10"].map((seed) => fetch(`${base}/replay/run?seed=${seed}`)),
    );
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 429]);
    const busy = responses.find((r) => r.status === 429) as Response;
    assert.equal(((await busy.json()) as { code: string }).code, "busy");
    for (const r of responses) if (r.status === 200) await r.arrayBuffer();
  });
});

describe("recordRun: a long run keeps a bounded number of events, and says so", () => {
  test("a passing run keeps its first events", async () => {
    const run = await recordRun({ seed: 42, variant: null, stray: false }, 100);
    assert.equal(run.events.length, 100);
    assert.equal(run.firstIndex, 0);
    assert.ok(run.eventsTotal > 100);
    assert.match(run.truncated ?? "", /the first 100 are kept/);
  });

  test("a failing run keeps its last events, which end at the violation", async () => {
    const run = await recordRun({ seed: 18, variant: "acceptor-ignores-promise", stray: false }, 50);
    assert.equal(run.events.length, 50);
    assert.equal(run.firstIndex, run.eventsTotal - 50);
    assert.equal(run.violation?.index, 49);
    assert.equal(run.events[49]?.kind, "violation");
    assert.match(run.truncated ?? "", /the last 50 are kept/);
    // The kept events are the run's last, in order.
    const full = await recordRun({ seed: 18, variant: "acceptor-ignores-promise", stray: false });
    assert.deepEqual(run.events, full.events.slice(-50));
  });
});
