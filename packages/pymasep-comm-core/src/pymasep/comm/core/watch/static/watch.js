// The watch page: follows one recording through server-sent events (/events).
"use strict";

const $ = (id) => document.getElementById(id);
let source = null;
let state = null;
let chart = null;
let renderQueued = false;

function fresh() {
  return {
    start: null, conns: new Map(), frames: [], types: new Set(), minStep: null, maxStep: 0,
    selected: null, caughtUp: false,
  };
}

function connection(peer) {
  let c = state.conns.get(peer);
  if (!c) {
    c = { peer, address: "", wire: "", authenticated: false, tls: false, framesOut: 0,
          framesIn: 0, bytesOut: 0, bytesIn: 0, state: "open", reason: "",
          t: [], fo: [], fi: [], bo: [], bi: [] };
    state.conns.set(peer, c);
  }
  return c;
}

function take(r) {
  if (state.start === null) state.start = r.wall;
  const c = connection(r.peer);
  const t = r.wall - state.start;
  if (r.event === "connected") {
    Object.assign(c, { address: r.address, wire: r.wire, authenticated: r.authenticated,
                       tls: r.tls, state: "open", reason: "" });
  } else if (r.event === "sent" || r.event === "received") {
    if (r.dir === "out") { c.framesOut += 1; c.bytesOut += r.size; }
    else { c.framesIn += 1; c.bytesIn += r.size; }
    c.t.push(t); c.fo.push(c.framesOut); c.fi.push(c.framesIn);
    c.bo.push(c.bytesOut); c.bi.push(c.bytesIn);
    r.t = t;
    state.frames.push(r);
    if (r.type) state.types.add(r.type);
    if (r.step > state.maxStep) state.maxStep = r.step;
    if (state.minStep === null || r.step < state.minStep) state.minStep = r.step;
  } else if (r.event === "closed") {
    c.state = r.graceful ? "closed" : "broken";
    c.reason = r.reason;
  } else if (r.event === "broken") {
    c.state = "resuming";
    c.reason = r.reason;
  } else if (r.event === "resumed") {
    c.state = "open";
    c.reason = "";
  }
}

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function syncOptions(select, values, keepFirst) {
  const have = new Set(Array.from(select.options).map((o) => o.value));
  for (const v of values) {
    if (!have.has(v)) select.add(new Option(v, v));
  }
  if (!keepFirst && !select.value && select.options.length) select.value = select.options[0].value;
}

function renderConnections() {
  const body = $("connections").tBodies[0];
  body.replaceChildren();
  for (const c of state.conns.values()) {
    const row = body.insertRow();
    row.dataset.peer = c.peer;
    cell(row, c.peer, "peer");
    cell(row, c.address, "address");
    cell(row, c.wire, "wire");
    cell(row, c.authenticated ? "yes" : "no", "key");
    cell(row, c.tls ? "yes" : "no", "tls");
    cell(row, String(c.framesOut), "frames-out");
    cell(row, String(c.framesIn), "frames-in");
    cell(row, String(c.bytesOut), "bytes-out");
    cell(row, String(c.bytesIn), "bytes-in");
    const s = cell(row, c.state === "open" ? "open" : `${c.state}: ${c.reason}`, "state state-" + c.state);
    s.title = c.reason;
  }
}

function renderChart() {
  const peers = Array.from(state.conns.keys());
  syncOptions($("chart-peer"), peers, false);
  const c = state.conns.get($("chart-peer").value);
  const data = c ? [c.t, c.fo, c.fi, c.bo, c.bi] : [[], [], [], [], []];
  if (!chart) {
    const width = Math.max(400, $("chart").clientWidth || 800);
    chart = new uPlot({
      width, height: 220,
      scales: { x: { time: false }, frames: {}, bytes: {} },
      axes: [
        { label: "seconds since the start", values: (u, ticks) => ticks.map((v) => +v.toPrecision(4)) },
        { scale: "frames", label: "frames" },
        { scale: "bytes", label: "bytes", side: 1, grid: { show: false } },
      ],
      series: [
        { label: "s" },
        { label: "frames out", scale: "frames", stroke: "#d9822b", width: 2 },
        { label: "frames in", scale: "frames", stroke: "#138a4a", width: 2 },
        { label: "bytes out", scale: "bytes", stroke: "#d9822b", dash: [4, 4] },
        { label: "bytes in", scale: "bytes", stroke: "#138a4a", dash: [4, 4] },
      ],
    }, data, $("chart"));
  } else {
    chart.setData(data);
  }
}

function shownFrames() {
  const peer = $("filter-peer").value;
  const type = $("filter-type").value;
  return state.frames.filter((r) => (!peer || r.peer === peer) && (!type || r.type === type));
}

function renderTimeline() {
  syncOptions($("filter-peer"), Array.from(state.conns.keys()), true);
  syncOptions($("filter-type"), Array.from(state.types).sort(), true);
  const frames = shownFrames();
  const limit = 5000;
  const body = $("timeline").tBodies[0];
  body.replaceChildren();
  for (const r of frames.slice(0, limit)) {
    const row = body.insertRow();
    row.dataset.seq = r.seq;
    row.dataset.step = r.step;
    if (state.selected === r) row.className = "selected";
    cell(row, String(r.seq));
    cell(row, r.t.toFixed(3));
    cell(row, String(r.step), "step");
    cell(row, r.peer, "peer");
    cell(row, r.dir, "dir-" + r.dir);
    cell(row, r.type || (r.base64 !== undefined ? "(binary)" : ""), "type");
    cell(row, String(r.size));
    row.addEventListener("click", () => select(r));
  }
  $("shown-count").textContent = frames.length > limit
    ? `${frames.length} messages (first ${limit} shown)` : `${frames.length} messages`;
  const scrubber = $("scrubber");
  scrubber.min = String(state.minStep ?? 0);
  scrubber.max = String(state.maxStep);
}

function render() {
  if (!state) return;
  renderConnections();
  renderChart();
  renderTimeline();
}

const escapeText = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const escapeAttr = (t) => escapeText(t).replace(/"/g, "&quot;");

function prettyXml(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) return text;
  const out = [];
  const walk = (node, depth) => {
    const pad = "  ".repeat(depth);
    if (node.nodeType === Node.TEXT_NODE) {
      const t = node.nodeValue.trim();
      if (t) out.push(pad + escapeText(t));
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    const attrs = Array.from(node.attributes).map((a) => ` ${a.name}="${escapeAttr(a.value)}"`).join("");
    const kids = Array.from(node.childNodes).filter(
      (k) => k.nodeType === Node.ELEMENT_NODE || (k.nodeType === Node.TEXT_NODE && k.nodeValue.trim()));
    if (!kids.length) { out.push(`${pad}<${node.tagName}${attrs}/>`); return; }
    if (kids.length === 1 && kids[0].nodeType === Node.TEXT_NODE && kids[0].nodeValue.length < 80) {
      out.push(`${pad}<${node.tagName}${attrs}>${escapeText(kids[0].nodeValue.trim())}</${node.tagName}>`);
      return;
    }
    out.push(`${pad}<${node.tagName}${attrs}>`);
    for (const k of kids) walk(k, depth + 1);
    out.push(`${pad}</${node.tagName}>`);
  };
  walk(doc.documentElement, 0);
  return out.join("\n");
}

function select(r) {
  state.selected = r;
  $("xml-title").textContent =
    `#${r.seq} · step ${r.step} · ${r.dir === "out" ? "to" : "from"} ${r.peer} · ${r.type || "binary"} · ${r.size} bytes`;
  $("xml").textContent = r.xml !== undefined ? prettyXml(r.xml) : `(base64) ${r.base64}`;
  for (const row of $("timeline").tBodies[0].rows) {
    const chosen = Number(row.dataset.seq) === r.seq;
    row.classList.toggle("selected", chosen);
    if (chosen) row.scrollIntoView({ block: "nearest" });
  }
}

function scrub() {
  const step = Number($("scrubber").value);
  $("step-label").textContent = `step ${step}`;
  const r = shownFrames().find((f) => f.step === step);
  if (r) select(r);
}

function open(name) {
  if (source) source.close();
  if (chart) { chart.destroy(); chart = null; }
  state = fresh();
  $("chart-peer").replaceChildren();
  $("status").textContent = "loading…";
  source = new EventSource(`/events?name=${encodeURIComponent(name)}`);
  source.addEventListener("header", (e) => {
    const h = JSON.parse(e.data);
    $("header-info").textContent = `${h.side} ${h.id} · pymasep-comm ${h.package_version} · started ${new Date(h.started_wall * 1000).toISOString()}`;
  });
  source.addEventListener("records", (e) => {
    for (const r of JSON.parse(e.data)) take(r);
    if (state.caughtUp) $("status").textContent = `live · ${state.frames.length} messages`;
    queueRender();
  });
  source.addEventListener("caught-up", () => {
    state.caughtUp = true;
    $("status").textContent = `live · ${state.frames.length} messages`;
    document.body.dataset.caughtUp = "yes";
    queueRender();
  });
  source.onerror = () => { $("status").textContent = "disconnected (retrying)"; };
}

async function refreshRecordings() {
  const response = await fetch("/recordings");
  const listing = await response.json();
  const select = $("recording");
  const before = select.value;
  syncOptions(select, listing.map((r) => r.name), true);
  if (!before && listing.length) {
    const wanted = new URLSearchParams(location.search).get("name");
    const names = listing.map((r) => r.name);
    select.value = names.includes(wanted) ? wanted : names[names.length - 1];
    open(select.value);
  }
}

$("recording").addEventListener("change", () => open($("recording").value));
$("chart-peer").addEventListener("change", renderChart);
$("filter-peer").addEventListener("change", renderTimeline);
$("filter-type").addEventListener("change", renderTimeline);
$("scrubber").addEventListener("input", scrub);
refreshRecordings();
setInterval(refreshRecordings, 2000);
