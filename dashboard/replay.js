// The dashboard's replay page (served at /replay by src/dashboard/replay.ts): loads a simulator run
// from /replay/run?seed=N and steps through its events. A plain browser module: no bundler, no CDN.

const SVG = "http://www.w3.org/2000/svg";
/** Events shown in the lane diagram on each side of the current one. */
const WINDOW_EVENTS = 24;
/** Events listed on each side of the current one. */
const LIST_EVENTS = 12;
const LANE_HEIGHT = 30;
const LABEL_WIDTH = 96;

/** Colours by message type (the legend shows them). */
const COLOURS = {
  prepare: "#1f77b4",
  promise: "#17becf",
  accept: "#ff7f0e",
  accepted: "#b5651d",
  decide: "#2ca02c",
  heartbeat: "#9e9e9e",
  reject: "#d62728",
  catchup: "#8c564b",
  "snapshot-request": "#9467bd",
  "snapshot-chunk": "#9467bd",
  request: "#bcbd22",
  ack: "#bcbd22",
  refuse: "#bcbd22",
  "rejoin-query": "#e377c2",
  "rejoin-report": "#e377c2",
  other: "#555555",
};
const LEGEND = [
  ["prepare (1a)", "prepare"],
  ["promise (1b)", "promise"],
  ["accept (2a)", "accept"],
  ["accepted (2b)", "accepted"],
  ["decide", "decide"],
  ["heartbeat", "heartbeat"],
  ["reject", "reject"],
  ["catch-up", "catchup"],
  ["snapshot", "snapshot-chunk"],
  ["client request/ack", "request"],
  ["rejoin", "rejoin-query"],
];
/** Point events: their shape's colour. */
const POINT_COLOURS = {
  timer: "#c8c8c8",
  sync: "#a0a0a0",
  submit: "#bcbd22",
  crash: "#d62728",
  restart: "#2ca02c",
  "disk-fault": "#ff7f0e",
  open: "#ff7f0e",
  snapshot: "#9467bd",
  decide: "#2ca02c",
  duplicate: "#555555",
  hold: "#555555",
  laggard: "#8c564b",
  stray: "#000000",
};
/** Events about the whole cluster: a vertical line across the lanes. */
const GLOBAL_KINDS = new Set(["partition", "heal", "plan", "violation"]);
const NOISE_KINDS = new Set(["timer", "sync"]);

const $ = (id) => document.getElementById(id);
const state = { run: null, current: 0, showNoise: false };

function visible(event) {
  return state.showNoise || !NOISE_KINDS.has(event.kind);
}

function colourOf(event) {
  if (event.message) return COLOURS[event.message.type] ?? COLOURS.other;
  return COLOURS.other;
}

/** One line of text for an event (the list, and hover titles). */
function describe(event) {
  const m = event.message;
  const what = m ? m.summary : "a frame with no message the simulator can name (garbage, or an envelope notice)";
  const ballotSlot = m ? `${m.ballot ? ` ballot ${m.ballot}` : ""}${m.slot !== null ? ` slot ${m.slot}` : ""}` : "";
  switch (event.kind) {
    case "deliver":
      return `${event.from} \u2192 ${event.to}: ${what}${ballotSlot}${event.accepted ? "" : " (not taken in)"}`;
    case "drop":
      return `${event.from} \u2192 ${event.to}: ${what}${ballotSlot} dropped (${event.reason})`;
    case "duplicate":
      return `${event.from} \u2192 ${event.to}: ${what} duplicated by the network`;
    case "hold":
      return `${event.from} \u2192 ${event.to}: ${what} held back`;
    case "timer":
      return `${event.process} ticks`;
    case "sync":
      return `${event.process} disk sync completes`;
    case "submit":
      return `${event.process} submits ${event.payload}`;
    case "crash":
      return `${event.process} crashes`;
    case "restart":
      return `${event.process} restarts`;
    case "disk-fault":
      return `${event.process} disk fault: ${event.detail}`;
    case "open":
      return `${event.process} opens its data: ${event.detail} (rejoins)`;
    case "snapshot":
      return `${event.process} ${event.how} a snapshot through slot ${event.slot}`;
    case "decide":
      return `${event.process} delivers slot ${event.slot} (${event.commands} commands)`;
    case "partition":
      return `partition: ${event.shape} (${event.links} links cut)`;
    case "heal":
      return "the partition heals";
    case "laggard":
      return `${event.process} ${event.away ? "kept away" : "back"}`;
    case "plan":
      return `targeted sequence: ${event.detail}`;
    case "stray":
      return `stray peer \u2192 ${event.to}: ${event.attack} ${event.detail}`;
    case "violation":
      return `VIOLATION ${event.property}: ${event.detail}`;
    default:
      return event.kind;
  }
}

// --- loading -------------------------------------------------------------------------------------

async function loadVariants() {
  try {
    const response = await fetch("/replay/variants");
    if (!response.ok) return;
    for (const variant of await response.json()) {
      const option = document.createElement("option");
      option.value = variant.name;
      option.textContent = `broken: ${variant.description}${variant.exampleSeed ? ` (fails at seed ${variant.exampleSeed})` : ""}`;
      $("variant").append(option);
    }
  } catch {
    // The list is a convenience: the page works without it.
  }
}

async function load(seed, variant, stray) {
  const query = new URLSearchParams({ seed });
  if (variant) query.set("bugs", variant);
  if (stray) query.set("stray", "1");
  history.replaceState(null, "", `/replay?${query}`);
  setStatus(`running seed ${seed}\u2026`);
  document.body.dataset.state = "loading";
  try {
    const response = await fetch(`/replay/run?${query}`);
    const body = await response.json();
    if (!response.ok) throw new Error(`${body.code}: ${body.message}`);
    show(body);
  } catch (error) {
    setStatus(error.message, true);
    document.body.dataset.state = "error";
  }
}

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function show(run) {
  state.run = run;
  $("run").hidden = false;
  const variant = run.variant ? `\ncode: broken (${run.variant.description})` : "\ncode: correct";
  const truncated = run.truncated ? `\nshown: ${run.truncated}` : "";
  $("scenario").textContent = `${run.report}${variant}${truncated}\nreplay as text: ${run.command}${run.variant ? " (with the variant: from the tests' SimBugs)" : ""}`;
  const verdict = $("verdict");
  verdict.replaceChildren();
  for (const v of run.verdict) {
    const li = document.createElement("li");
    li.className = v.status.replace(" ", "-");
    li.dataset.property = v.property;
    li.textContent = `${v.property}: ${v.status}`;
    if (v.detail) li.title = `at simulator event ${v.event}: ${v.detail}`;
    verdict.append(li);
  }
  $("verdict-note").textContent = run.violation
    ? `The run stopped at its first violation (${run.violation.property}, simulator event ${run.violation.event}): the other properties held until then.`
    : "Every property held through the run.";
  $("to-violation").disabled = run.violation === null;
  setStatus(`seed ${run.seed}: ${run.eventsTotal} events${run.violation ? `, violation of ${run.violation.property}` : ", no violation"}`);
  // A failing run opens at its violation.
  state.current = run.violation ? run.violation.index : Math.max(0, firstVisible(0, 1));
  document.body.dataset.state = "loaded";
  render();
}

// --- stepping ------------------------------------------------------------------------------------

/** The first visible event from `from` in `direction` (1 or -1), or -1. */
function firstVisible(from, direction) {
  const events = state.run.events;
  for (let i = from; i >= 0 && i < events.length; i += direction) if (visible(events[i])) return i;
  return -1;
}

function go(index) {
  if (!state.run || index < 0 || index >= state.run.events.length) return;
  state.current = index;
  render();
}

const moves = {
  forward: () => go(firstVisible(state.current + 1, 1)),
  back: () => go(firstVisible(state.current - 1, -1)),
  start: () => go(firstVisible(0, 1)),
  end: () => go(firstVisible(state.run.events.length - 1, -1)),
  violation: () => state.run.violation && go(state.run.violation.index),
};

// --- drawing -------------------------------------------------------------------------------------

function render() {
  const run = state.run;
  const event = run.events[state.current];
  $("step").textContent =
    `event ${run.firstIndex + state.current + 1} of ${run.eventsTotal} \u00b7 simulator event ${event.event} \u00b7 t ${event.timeMs} ms`;
  renderLanes();
  renderDetails(event);
  renderList();
}

/** The visible events within `count` of the current one on each side (the current one always). */
function around(count) {
  const events = state.run.events;
  const picked = [state.current];
  for (let i = state.current - 1, n = 0; i >= 0 && n < count; i--) if (visible(events[i])) picked.unshift(i), n++;
  for (let i = state.current + 1, n = 0; i < events.length && n < count; i++) if (visible(events[i])) picked.push(i), n++;
  return picked;
}

function svg(name, attributes, parent) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  parent?.append(element);
  return element;
}

function renderLanes() {
  const run = state.run;
  const lanes = $("lanes");
  lanes.replaceChildren();
  const width = Math.max(900, $("lanes-box").clientWidth - 2);
  const height = 28 + run.processes.length * LANE_HEIGHT + 10;
  lanes.setAttribute("width", width);
  lanes.setAttribute("height", height);
  const laneOf = new Map(run.processes.map((key, i) => [key, i]));
  const y = (key) => 28 + (laneOf.get(key) ?? 0) * LANE_HEIGHT + LANE_HEIGHT / 2;
  const indices = around(WINDOW_EVENTS);
  const events = indices.map((i) => run.events[i]);
  // From the first event's time back to when the frames shown were sent (at most as far back again:
  // a frame delayed for long starts at the left edge).
  const first = Math.min(...events.map((e) => e.timeMs));
  let t1 = Math.max(...events.map((e) => e.timeMs));
  const sent = Math.min(first, ...events.filter((e) => e.sentMs !== undefined).map((e) => e.sentMs));
  let t0 = Math.max(sent, first - Math.max(t1 - first, 20));
  if (t1 - t0 < 10) (t0 -= 5), (t1 += 5);
  const left = LABEL_WIDTH + 10;
  const right = width - 14;
  const x = (t) => left + ((Math.max(t, t0) - t0) / (t1 - t0)) * (right - left);

  run.processes.forEach((key) => {
    svg("line", { class: "lane-line", x1: left, x2: right, y1: y(key), y2: y(key) }, lanes);
    const label = svg("text", { class: "lane-label", x: 6, y: y(key) + 4 }, lanes);
    label.textContent = key;
  });
  svg("text", { class: "axis", x: left, y: 14 }, lanes).textContent = `t ${t0} ms`;
  svg("text", { class: "axis", x: right, y: 14, "text-anchor": "end" }, lanes).textContent = `t ${t1} ms`;
  const current = run.events[state.current];
  svg("line", { class: "cursor", x1: x(current.timeMs), x2: x(current.timeMs), y1: 20, y2: height - 4 }, lanes);

  indices.forEach((index) => {
    const event = run.events[index];
    const isCurrent = index === state.current;
    let mark;
    if (event.kind === "deliver" || event.kind === "drop") {
      const colour = colourOf(event);
      const [x1, y1, x2, y2] = [x(event.sentMs), y(event.from), x(event.timeMs), y(event.to)];
      if (event.from === event.to) {
        mark = svg("path", { d: `M ${x1} ${y1} C ${x1} ${y1 - 14}, ${x2} ${y2 - 14}, ${x2} ${y2}`, fill: "none", stroke: colour, "stroke-width": 2 }, lanes);
      } else {
        mark = svg("line", { x1, y1, x2, y2, stroke: colour, "stroke-width": 2, "marker-end": `url(#head-${index})` }, lanes);
        const marker = svg("marker", { id: `head-${index}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, lanes);
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: colour }, marker);
      }
      if (event.kind === "drop") {
        mark.classList.add("drop");
        const cross = svg("text", { x: x2, y: y2 + 4, "text-anchor": "middle", fill: "#d62728", "font-size": 13 }, lanes);
        cross.textContent = "\u00d7";
      }
    } else if (GLOBAL_KINDS.has(event.kind)) {
      const colour = event.kind === "violation" ? "#b00020" : event.kind === "heal" ? "#2ca02c" : "#8c564b";
      mark = svg("line", { x1: x(event.timeMs), x2: x(event.timeMs), y1: 22, y2: height - 4, stroke: colour, "stroke-width": event.kind === "violation" ? 3 : 1.5 }, lanes);
    } else {
      // A stray peer's frame leaves from its own lane.
      const key = event.kind === "stray" ? "stray:1" : (event.process ?? event.from);
      const colour = POINT_COLOURS[event.kind] ?? "#555";
      const size = event.kind === "timer" || event.kind === "sync" ? 3 : 6;
      mark =
        event.kind === "crash"
          ? svg("path", { d: crossPath(x(event.timeMs), y(key), size), stroke: colour, "stroke-width": 3 }, lanes)
          : svg("circle", { cx: x(event.timeMs), cy: y(key), r: size, fill: colour }, lanes);
    }
    mark.classList.add("mark");
    if (isCurrent) mark.classList.add(mark.tagName === "circle" ? "current-point" : "current");
    mark.dataset.index = index;
    svg("title", {}, mark).textContent = `${describe(event)} (t ${event.timeMs} ms)`;
    mark.addEventListener("click", () => go(index));
  });
}

function crossPath(cx, cy, r) {
  return `M ${cx - r} ${cy - r} L ${cx + r} ${cy + r} M ${cx - r} ${cy + r} L ${cx + r} ${cy - r}`;
}

function renderDetails(event) {
  const rows = [
    ["event", `${state.run.firstIndex + state.current + 1} of ${state.run.eventsTotal}`],
    ["what", describe(event)],
    ["kind", event.kind],
    ["simulator event", event.event],
    ["time", `${event.timeMs} ms (tick ${Math.floor(event.timeMs / 10)})`],
  ];
  for (const [key, value] of Object.entries(event)) {
    if (["kind", "event", "timeMs", "message"].includes(key)) continue;
    rows.push([key, String(value)]);
  }
  if (event.message) {
    rows.push(["message", event.message.type], ["ballot", event.message.ballot ?? "-"], ["slot", event.message.slot ?? "-"]);
    rows.push(["summary", event.message.summary]);
  }
  if (event.sentMs !== undefined) rows.push(["in flight", `${event.timeMs - event.sentMs} ms`]);
  const details = $("details");
  details.replaceChildren();
  for (const [key, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    details.append(dt, dd);
  }
}

function renderList() {
  const list = $("events");
  list.replaceChildren();
  for (const index of around(LIST_EVENTS)) {
    const event = state.run.events[index];
    const li = document.createElement("li");
    li.className = `event${index === state.current ? " current" : ""}${event.kind === "violation" ? " violation" : ""}`;
    li.dataset.index = index;
    li.textContent = `#${state.run.firstIndex + index + 1} t${event.timeMs} ${describe(event)}`;
    li.title = li.textContent;
    li.addEventListener("click", () => go(index));
    list.append(li);
  }
}

function renderLegend() {
  const legend = $("legend");
  for (const [label, type] of LEGEND) {
    const span = document.createElement("span");
    span.style.setProperty("--c", COLOURS[type]);
    span.textContent = label;
    legend.append(span);
  }
  const note = document.createElement("span");
  note.className = "hint";
  note.textContent = "dashed with \u00d7: dropped; dots: decisions, syncs, ticks; red \u00d7: crash; vertical lines: partitions, heals, violations";
  legend.append(note);
}

// --- wiring --------------------------------------------------------------------------------------

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const seed = $("seed").value.trim();
  if (seed === "") return setStatus("type a seed (a non-negative integer)", true);
  load(seed, $("variant").value, $("stray").checked);
});
$("forward").addEventListener("click", moves.forward);
$("back").addEventListener("click", moves.back);
$("to-start").addEventListener("click", moves.start);
$("to-end").addEventListener("click", moves.end);
$("to-violation").addEventListener("click", moves.violation);
$("show-timers").addEventListener("change", (e) => {
  state.showNoise = e.target.checked;
  if (state.run) render();
});
document.addEventListener("keydown", (e) => {
  // Keys typed into the seed box or the variant list are theirs.
  if (!state.run || (e.target instanceof HTMLInputElement && e.target.type === "text") || e.target instanceof HTMLSelectElement)
    return;
  const move = { ArrowRight: "forward", ArrowLeft: "back", Home: "start", End: "end", v: "violation" }[e.key];
  if (!move) return;
  e.preventDefault();
  moves[move]();
});
window.addEventListener("resize", () => state.run && renderLanes());

renderLegend();
await loadVariants();
const params = new URLSearchParams(location.search);
if (params.get("seed")) {
  $("seed").value = params.get("seed");
  $("variant").value = params.get("bugs") ?? "";
  $("stray").checked = params.get("stray") === "1";
  load(params.get("seed"), params.get("bugs") ?? "", params.get("stray") === "1");
}
