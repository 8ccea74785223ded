import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import type { Page } from "playwright-core";
import { findChromium, launchChromium } from "#test-support";
import { handleReplayRequest } from "./replay.js";

/** Where the docs' screenshot of the replay goes (docs/simulator.md, "Replay"). */
const SCREENSHOT = new URL("../../docs/images/replay.png", import.meta.url);
/** A run takes a few seconds, more on a loaded machine. */
const LOAD_MS_MAX = 90_000;

const chromium = findChromium();

async function serve(): Promise<{ server: Server; base: string }> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (!(await handleReplayRequest(req, res, url))) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Waits until the page has shown a run (or failed to load one: then the test fails saying why). */
async function loaded(page: Page): Promise<void> {
  // The page marks its state on <body>: empty, loading, loaded or error.
  await page.waitForFunction('!["empty", "loading"].includes(document.body.dataset.state)', null, {
    timeout: LOAD_MS_MAX,
  });
  assert.equal(
    await page.getAttribute("body", "data-state"),
    "loaded",
    (await page.textContent("#status")) ?? "",
  );
}

/** What says where the replay is: the step counter and the highlighted event in the list. */
async function position(page: Page): Promise<{ step: string; current: string }> {
  return {
    step: (await page.textContent("#step")) ?? "",
    current: (await page.textContent("#events li.current")) ?? "",
  };
}

function stepNumber(step: string): number {
  return Number(/^event (\d+) of/.exec(step)?.[1] ?? Number.NaN);
}

test("replay in a real browser: a seed's verdict, stepping forwards and back, a failing run opened at its violation", {
  skip: "skip" in chromium ? chromium.skip : false,
  timeout: 4 * LOAD_MS_MAX,
}, async () => {
  if (!("path" in chromium)) return;
  const { server, base } = await serve();
  const browser = await launchChromium(chromium.path);
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));

    // A passing seed, loaded from the URL: every property passes.
    await page.goto(`${base}/replay?seed=42`);
    await loaded(page);
    const verdict = await page.$$eval("#verdict li", (items) =>
      items.map((li) => ({ text: li.textContent, status: li.className })),
    );
    assert.equal(verdict.length, 14);
    for (const v of verdict) assert.equal(v.status, "pass", v.text ?? "");
    assert.equal(await page.textContent('#verdict li[data-property="agreement"]'), "agreement: pass");
    assert.ok((await page.$$("#lanes .mark")).length > 10, "the lane diagram shows events");

    // Step forwards and back, with the keys and the buttons: the counter and the highlight follow.
    const start = await position(page);
    // It opens at the first event shown (ticks and syncs are hidden until asked for).
    assert.match(start.step, /^event \d+ of \d+/);
    await page.keyboard.press("ArrowRight");
    const second = await position(page);
    assert.notEqual(second.step, start.step);
    assert.notEqual(second.current, start.current);
    await page.click("#forward");
    const third = await position(page);
    assert.notEqual(third.step, second.step);
    assert.notEqual(third.current, second.current);
    await page.click("#back");
    assert.deepEqual(await position(page), second);
    await page.keyboard.press("ArrowLeft");
    assert.deepEqual(await position(page), start);
    // Further on, arrows carry a ballot and a slot on hover (their SVG titles).
    for (let i = 0; i < 60; i++) await page.keyboard.press("ArrowRight");
    const titles = await page.$$eval("#lanes .mark > title", (items) =>
      items.map((t) => t.textContent ?? ""),
    );
    assert.ok(
      titles.some((t) => /ballot \d+\.\d+ slot \d+/.test(t)),
      `a message with a ballot and a slot among: ${titles.join(" | ")}`,
    );
    assert.equal(await page.$$eval("#lanes .current, #lanes .current-point", (items) => items.length), 1);

    // A failing run, loaded with the form: it opens at its violation.
    await page.goto(`${base}/replay`);
    await page.fill("#seed", "18");
    await page.selectOption("#variant", "acceptor-ignores-promise");
    await page.click("#load");
    await loaded(page);
    assert.equal(await page.textContent("#verdict li.fail"), "agreement: fail");
    const atViolation = await position(page);
    assert.match(atViolation.current, /VIOLATION agreement/);
    assert.equal(await page.getAttribute("#events li.current", "class"), "event current violation");
    assert.match(new URL(page.url()).search, /seed=18&bugs=acceptor-ignores-promise/);
    mkdirSync(new URL(".", SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT.pathname });
    await page.keyboard.press("Home");
    const first = await position(page);
    assert.ok(stepNumber(first.step) < stepNumber(atViolation.step), `${first.step}, ${atViolation.step}`);
    await page.keyboard.press("v");
    assert.deepEqual(await position(page), atViolation);
    assert.deepEqual(errors, [], "no script errors on the page");
  } finally {
    await browser.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
