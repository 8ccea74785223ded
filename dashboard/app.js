// The dashboard page of `paxos cluster --dashboard` (docs/dashboard.md): a plain browser module,
// no bundler. It listens to /events (server-sent events) and posts controls to /api/control.
import uPlot from "/uplot/uPlot.esm.js";

const KINDS = [
  "prepare",
  "promise",
  "accept",
  "accepted",
  "decide",
  "heartbeat",
  "catch-up",
  "snapshot",
  "other",
];
/** The diagram shows this much of the past. */
const WINDOW_MS = 5000;
/** How long an arrow is drawn to take (the nodes report when a message left, not when it arrived). */
const FLIGHT_MS = 150;
const LANE_HEIGHT = 56;
const LANE_TOP = 18;
const LABEL_WIDTH = 120;
const SVG_NS = "http://www.w3.org/2000/svg";
/** Times are drawn relative to this (SVG coordinates are single precision: no epoch ms). */
const T0 = Date.now();

const $ = (selector) => document.querySelector(selector);
const svg = $("#lanes");
const timeGroup = $("#time-group");
/** Drawn elements in time order: { tMs, element }. */
const drawn = [];
let nodeIds = [];
let lastState = null;
let lastLeader = null;
const lastProcess = new Map();
/** Arrows drawn so far (the browser test reads it). */
window.paxosDashboard = { messagesDrawn: 0, stateUpdates: 0 };

function el(name, attributes = {}, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function laneY(id) {
  return LANE_TOP + nodeIds.indexOf(id) * LANE_HEIGHT + LANE_HEIGHT / 2;
}

function plotWidth() {
  return Math.max(200, svg.clientWidth - LABEL_WIDTH - 10);
}

/** x of time `tMs` within the time group (moved left as time passes, see `frame`). */
function timeX(tMs) {
  return ((tMs - T0) / WINDOW_MS) * plotWidth();
}

function setUpLanes(ids) {
  nodeIds = ids;
  svg.setAttribute("height", String(LANE_TOP + ids.length * LANE_HEIGHT + 4));
  const markers = $("#markers");
  markers.replaceChildren();
  for (const kind of KINDS) {
    const marker = el("marker", {
      id: `arrow-${kind}`,
      viewBox: "0 0 10 10",
      refX: 9,
      refY: 5,
      markerWidth: 6,
      markerHeight: 6,
      orient: "auto-start-reverse",
    });
    marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: `var(--${kind})` }));
    markers.append(marker);
  }
  const lines = $("#lane-lines");
  lines.replaceChildren();
  for (const id of ids) {
    const y = laneY(id);
    lines.append(el("line", { class: "lane", x1: LABEL_WIDTH, x2: "100%", y1: y, y2: y }));
    lines.append(el("text", { class: "lane-label", id: `lane-label-${id}`, x: 6, y: y + 4 }, `node ${id}`));
  }
  $("#legend").replaceChildren(
    ...KINDS.map((kind) => {
      const span = document.createElement("span");
      span.style.setProperty("--c", `var(--${kind})`);
      span.textContent = kind;
      return span;
    }),
  );
}

function drawMessages(messages) {
  for (const message of messages) {
    if (!nodeIds.includes(message.from) || !nodeIds.includes(message.to)) continue;
    // A message its sender dropped (cut off, or the loss rate) is dashed and stops halfway.
    const lost = message.lost === true;
    const reach = lost ? 0.5 : 1;
    const line = el("line", {
      class: `msg k-${message.kind}${lost ? " lost" : ""}`,
      x1: timeX(message.tMs),
      y1: laneY(message.from),
      x2: timeX(message.tMs + FLIGHT_MS * reach),
      y2: laneY(message.from) + (laneY(message.to) - laneY(message.from)) * reach,
      stroke: `var(--${message.kind})`,
      ...(lost ? {} : { "marker-end": `url(#arrow-${message.kind})` }),
      "data-kind": message.kind,
      "data-from": message.from,
      "data-to": message.to,
    });
    const label = describe(message) + (lost ? " (lost: dropped by its sender)" : "");
    line.append(el("title", {}, label));
    line.addEventListener("mouseenter", () => {
      $("#hover").textContent = label;
    });
    insertDrawn(message.tMs, line);
    window.paxosDashboard.messagesDrawn++;
  }
}

function describe(message) {
  const parts = [`${message.type}: node ${message.from} → node ${message.to}`];
  if (message.ballot !== null) parts.push(`ballot ${message.ballot}`);
  if (message.slot !== null) parts.push(`slot ${message.slot}`);
  return parts.join(", ");
}

function insertDrawn(tMs, element) {
  timeGroup.append(element);
  drawn.push({ tMs, element });
}

/** A note on a lane at the present moment (a leader change, a crash). */
function laneEvent(id, text, className) {
  if (!nodeIds.includes(id)) return;
  const now = Date.now();
  insertDrawn(now, el("text", { class: `event ${className}`, x: timeX(now), y: laneY(id) - 8 }, text));
}

/** Moves the time group so that now is at the right edge, and drops what left the window. */
/** While the pointer is over the diagram it stands still (at this time), so arrows can be hovered. */
let frozenAtMs = null;
svg.addEventListener("mouseenter", () => {
  frozenAtMs = Date.now();
  $("#frozen").hidden = false;
});
svg.addEventListener("mouseleave", () => {
  frozenAtMs = null;
  $("#frozen").hidden = true;
});

function frame() {
  const now = frozenAtMs ?? Date.now();
  const offset = LABEL_WIDTH + plotWidth() - timeX(now);
  timeGroup.setAttribute("transform", `translate(${offset} 0)`);
  while (drawn.length > 0 && drawn[0].tMs < now - WINDOW_MS - FLIGHT_MS) drawn.shift().element.remove();
  requestAnimationFrame(frame);
}

// ---------------------------------------------------------------------------------------------
// Tables.

function ensureNodeRows(nodes) {
  const body = $("#nodes tbody");
  if (body.children.length === nodes.length) return;
  body.replaceChildren();
  for (const node of nodes) {
    const row = document.createElement("tr");
    row.id = `node-${node.id}`;
    for (const field of [
      "id",
      "process",
      "mode",
      "ballot",
      "promised",
      "floor",
      "applied",
      "lag",
      "network",
    ]) {
      const cell = document.createElement("td");
      cell.dataset.field = field;
      row.append(cell);
    }
    const controls = document.createElement("td");
    for (const [action, text] of [
      ["crash", "crash"],
      ["restart", "restart"],
      ["cut", "cut off"],
      ["reconnect", "reconnect"],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = text;
      button.dataset.action = action;
      button.dataset.node = String(node.id);
      controls.append(button);
    }
    row.append(controls);
    body.append(row);
  }
}

function setCell(row, field, text) {
  const cell = row.querySelector(`[data-field="${field}"]`);
  if (cell.textContent !== text) cell.textContent = text;
}

function renderNodes(state) {
  ensureNodeRows(state.nodes);
  for (const node of state.nodes) {
    const row = $(`#node-${node.id}`);
    const s = node.state;
    const down = node.process !== "running";
    row.classList.toggle("down", down);
    row.classList.toggle("leader", state.leader?.id === node.id);
    setCell(row, "id", `node ${node.id}`);
    setCell(row, "process", node.process);
    setCell(row, "mode", s === null ? "" : down ? "down" : s.rejoining ? "rejoining" : s.mode);
    setCell(row, "ballot", s?.ballot ?? "");
    setCell(row, "promised", s === null ? "" : (s.promised ?? "(rejoining)"));
    setCell(row, "floor", s === null ? "" : String(s.floorSlot));
    setCell(row, "applied", s === null ? "" : String(s.appliedThrough));
    setCell(row, "lag", node.lag === null ? "" : String(node.lag));
    const network =
      s === null ? "" : s.cut ? "cut off" : s.lossRate > 0 ? `${Math.round(s.lossRate * 100)}% loss` : "ok";
    setCell(
      row,
      "network",
      s !== null && s.framesDropped > 0 ? `${network} (${s.framesDropped} dropped)` : network,
    );
    row.querySelector('[data-action="crash"]').disabled = down;
    row.querySelector('[data-action="restart"]').disabled = node.process !== "crashed";
    row.querySelector('[data-action="cut"]').disabled = down || s?.cut === true;
    row.querySelector('[data-action="reconnect"]').disabled = down || s?.cut !== true;
    const label = $(`#lane-label-${node.id}`);
    if (label !== null) {
      const role = down
        ? node.process === "starting"
          ? "starting"
          : "down"
        : s?.cut
          ? "cut off"
          : state.leader?.id === node.id
            ? "leader"
            : (s?.mode ?? "");
      label.textContent = `node ${node.id} ${role}`;
      label.classList.toggle("down", down || s?.cut === true);
    }
    if (lastProcess.get(node.id) === "running" && node.process === "crashed")
      laneEvent(node.id, "✕ crashed", "crash");
    if (
      lastProcess.get(node.id) !== undefined &&
      lastProcess.get(node.id) !== "running" &&
      node.process === "running"
    )
      laneEvent(node.id, "restarted", "restart");
    lastProcess.set(node.id, node.process);
  }
}

/** One command's payload (the session layer's JSON envelope), in a few words. */
function commandText(payload) {
  let envelope;
  try {
    envelope = JSON.parse(payload);
  } catch {
    return payload;
  }
  if (envelope.clock) return "clock";
  if (envelope.open) return "open session";
  if (envelope.keepalive) return `keep-alive ${envelope.s}`;
  const c = envelope.c;
  if (c === undefined) return payload;
  const who = envelope.s === undefined ? "" : ` (session ${envelope.s})`;
  if (c.op === "put") return `put ${c.key}=${c.value}${who}`;
  if (c.op === "append") return `append ${c.key}+=${c.value}${who}`;
  if (c.op === "delete") return `delete ${c.key}${who}`;
  if (c.op === "cas") return `cas ${c.key}=${c.value}${who}`;
  if (c.op === "acquire" || c.op === "release") return `${c.op} lock ${c.name}${who}`;
  return JSON.stringify(c);
}

function renderLog(state) {
  const rows = state.log.map((slot) => {
    const row = document.createElement("tr");
    const commands =
      slot.commands === 0
        ? "no-op"
        : slot.payloads.length === 0
          ? `${slot.commands} command(s) (learned from a peer)`
          : slot.payloads.map(commandText).join("; ") +
            (slot.commands > slot.payloads.length
              ? `; and ${slot.commands - slot.payloads.length} more`
              : "");
    for (const [text, className] of [
      [String(slot.slot), ""],
      [slot.ballot ?? "", ""],
      [commands, "commands"],
    ]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      if (className) cell.className = className;
      row.append(cell);
    }
    return row;
  });
  $("#log tbody").replaceChildren(...rows);
}

function renderApp(state) {
  const app = state.app;
  if (app === null) return;
  $("#app-source").textContent = `node ${app.id}'s replica, revision ${app.revision}`;
  $("#kv tbody").replaceChildren(
    ...app.entries.map((entry) => tableRow([entry.key, entry.value, String(entry.modRevision)])),
  );
  $("#locks tbody").replaceChildren(
    ...app.locks.map((lock) =>
      tableRow([lock.name, String(lock.holder), String(lock.token), lock.waiters.join(", ")]),
    ),
  );
}

function tableRow(texts) {
  const row = document.createElement("tr");
  for (const text of texts) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  return row;
}

function renderSummary(state) {
  const leader = $("#leader");
  const id = state.leader === null ? "" : String(state.leader.id);
  leader.dataset.leader = id;
  leader.textContent =
    state.leader === null
      ? "no leader (an election is under way)"
      : `node ${state.leader.id} leads at ballot ${state.leader.ballot}`;
  $("#sampling").textContent =
    state.samplingOneIn > 1 ? `sampling 1 in ${state.samplingOneIn} messages` : "showing every message";
  $("#sampling").dataset.oneIn = String(state.samplingOneIn);
  const key = state.leader === null ? null : `${state.leader.id}@${state.leader.ballot}`;
  if (key !== null && key !== lastLeader)
    laneEvent(state.leader.id, `★ leads at ${state.leader.ballot}`, "lead");
  lastLeader = key;
}

// ---------------------------------------------------------------------------------------------
// Charts.

let charts = null;

function makeChart(target, label, stroke, unit) {
  const width = Math.max(280, target.clientWidth || 400);
  return new uPlot(
    {
      width,
      height: 180,
      series: [
        {},
        { label, stroke, width: 2, spanGaps: false, value: (_u, v) => (v == null ? "–" : `${v} ${unit}`) },
      ],
      axes: [{}, { label: unit }],
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
    },
    [[], []],
    target,
  );
}

function renderCharts(state) {
  if (charts === null)
    charts = {
      decisions: makeChart($("#chart-decisions"), "decisions per second", "#1a7f37", "decisions/s"),
      latency: makeChart($("#chart-latency"), "commit latency (median)", "#0969da", "ms"),
    };
  const { tSec, decisionsPerSecond, latencyMs } = state.chart;
  charts.decisions.setData([tSec, decisionsPerSecond]);
  charts.latency.setData([tSec, latencyMs.map((v) => (v === null || Number.isNaN(v) ? null : v))]);
}

// ---------------------------------------------------------------------------------------------
// Controls.

async function control(request) {
  const answer = $("#answer");
  answer.textContent = "…";
  answer.className = "hint";
  try {
    const response = await fetch("/api/control", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request),
    });
    const body = await response.json();
    answer.textContent = body.message;
    answer.className = body.ok ? "good" : "bad";
  } catch (error) {
    answer.textContent = `the dashboard did not answer: ${error.message}`;
    answer.className = "bad";
  }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (button === null) return;
  void control({ action: button.dataset.action, node: Number(button.dataset.node) });
});
$("#loss-set").addEventListener("click", () => {
  void control({ action: "loss", rate: Math.min(100, Math.max(0, Number($("#loss").value) || 0)) / 100 });
});
$("#submit-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void control({ action: "submit", value: $("#submit-value").value });
});
$("#kv-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const op = $("#kv-op").value;
  void control({
    action: "kv",
    op,
    key: $("#kv-key").value,
    ...(op === "put" ? { value: $("#kv-value").value } : {}),
  });
});
$("#lock-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void control({ action: "lock", op: event.submitter?.dataset.op ?? "acquire", name: $("#lock-name").value });
});

// ---------------------------------------------------------------------------------------------
// The event stream.

const events = new EventSource("/events");
events.addEventListener("open", () => {
  $("#connection").textContent = "live";
  $("#connection").className = "good";
});
events.addEventListener("error", () => {
  $("#connection").textContent = "disconnected (retrying)";
  $("#connection").className = "bad";
});
events.addEventListener("messages", (event) => drawMessages(JSON.parse(event.data)));
events.addEventListener("state", (event) => {
  const state = JSON.parse(event.data);
  const ids = state.nodes.map((node) => node.id);
  if (ids.join() !== nodeIds.join()) setUpLanes(ids);
  lastState = state;
  renderSummary(state);
  renderNodes(state);
  renderLog(state);
  renderApp(state);
  renderCharts(state);
  window.paxosDashboard.stateUpdates++;
});
window.paxosDashboard.lastState = () => lastState;
// A new width changes the time scale: start the diagram afresh, and fit the charts.
window.addEventListener("resize", () => {
  for (const item of drawn.splice(0)) item.element.remove();
  if (charts !== null) {
    charts.decisions.setSize({ width: Math.max(280, $("#chart-decisions").clientWidth), height: 180 });
    charts.latency.setSize({ width: Math.max(280, $("#chart-latency").clientWidth), height: 180 });
  }
});
requestAnimationFrame(frame);
