// connector console: reads the admin API of the daemon that serves it (/status, /rates, /tap,
// /dead-letters) and acts on dead letters. Plain DOM, no library; every value from the daemon is
// set as text, never as markup.
"use strict";

const STATUS_EVERY_MS = 2000;
const RATES_EVERY_MS = 5000;
const LETTERS_EVERY_MS = 5000;
const OUTCOME_WATCH_MS = 60000;
const MAX_LETTER_ROWS = 500;
const MAX_TAP_LINES = 500;
const TOKEN_KEY = "connector-admin-token";
const SVG = "http://www.w3.org/2000/svg";

const $ = (selector) => document.querySelector(selector);
const view = { status: null, rates: null, letters: [], lettersTotal: 0, lettersSeen: null, selected: new Set(),
  open: new Map(), tap: null, watch: null };
let token = sessionStorage.getItem(TOKEN_KEY);
let signedOut = false;

class Unauthorized extends Error {}

// ---------------------------------------------------------------------------------------------
// building the page

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAll(node, attrs);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAll(node, attrs);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function setAll(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value === true ? "" : value);
  }
}

const number = (value) => (value === null || value === undefined ? "–" : Math.round(value).toLocaleString("en"));
const perSecond = (value) => (value === null || value === undefined ? "–" : `${value < 10 ? value.toFixed(1) : Math.round(value)}/s`);

function bytes(value) {
  if (value === null || value === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value < 10 && unit ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

function when(seconds) {
  if (!seconds) return "–";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function age(seconds) {
  if (!seconds) return "–";
  const past = Math.max(0, Date.now() / 1000 - seconds);
  if (past < 90) return `${Math.round(past)} s`;
  if (past < 5400) return `${Math.round(past / 60)} min`;
  if (past < 172800) return `${Math.round(past / 3600)} h`;
  return `${Math.round(past / 86400)} days`;
}

function latestRate(kind, name) {
  const series = view.rates && view.rates[kind] && view.rates[kind][name];
  return series && series.length ? series[series.length - 1] : null;
}

// ---------------------------------------------------------------------------------------------
// talking to the daemon

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers);
  const sent = token;
  if (sent) headers.authorization = `Bearer ${sent}`;
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (response.status === 401) {
    if (sent === token) askForToken(sent ? "The daemon refused that token." : ""); // not an answer to an old token
    throw new Unauthorized();
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = [body.error, body.detail].filter(Boolean).join(": ");
    } catch (ignored) { /* not JSON: keep the status text */ }
    throw new Error(`${path} answered ${response.status}: ${detail}`);
  }
  return response;
}

const getJSON = async (path) => (await api(path)).json();
const postJSON = async (path, body) => (await api(path, {
  method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" },
})).json();

function askForToken(message) {
  signedOut = true;
  daemonState("Sign in with the admin token", false);
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  for (const section of document.querySelectorAll(".view")) section.hidden = true;
  $("#token").focus();
}

function signIn(event) {
  event.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token").value = "";
  signedOut = false;
  $("#login").hidden = true;
  showView();
  refreshStatus();
  refreshRates();
}

function daemonState(text, bad) {
  const state = $("#daemon-state");
  if (state.textContent !== text) state.textContent = text; // a live region: announced only when it changes
  state.classList.toggle("bad", bad);
}

async function refreshStatus() {
  if (signedOut) return;
  try {
    view.status = await getJSON("/status");
  } catch (error) {
    if (!(error instanceof Unauthorized)) daemonState(`Cannot reach the daemon: ${error.message}`, true);
    return;
  }
  const status = view.status;
  const paused = Object.entries(status.sinks).filter(([, sink]) => sink.paused || sink.stalled).map(([name]) => name);
  const parts = [status.ready ? "Webhooks accepted" : "Webhooks REFUSED (503)"];
  if (!status.buffer.healthy) parts.push("buffer NOT WRITABLE");
  if (paused.length) parts.push(`not delivering: ${paused.join(", ")}`);
  daemonState(parts.join(" · "), !status.ready || paused.length > 0 || !status.buffer.healthy);
  renderOverview();
  renderSources();
  fillComponentChoices();
}

async function refreshRates() {
  if (signedOut) return;
  try {
    view.rates = await getJSON("/rates");
  } catch (error) {
    return; // the status line says what is wrong
  }
  if (view.status) renderOverview();
}

// ---------------------------------------------------------------------------------------------
// overview: the graph, the sinks, the buffer

const NODE_W = 200;
const NODE_H = 74;
const ROW_H = 92;
const COLUMN_X = { sources: 16, mappers: 276, sinks: 536 };

function renderOverview() {
  const status = view.status;
  const graph = status.graph;
  const kinds = ["sources", "mappers", "sinks"];
  const rows = Math.max(1, ...kinds.map((kind) => Object.keys(graph[kind]).length));
  const width = COLUMN_X.sinks + NODE_W + 16;
  const height = rows * ROW_H + 40;
  const place = {};
  for (const kind of kinds) {
    const names = Object.keys(graph[kind]);
    const top = 36 + ((rows - names.length) * ROW_H) / 2;
    names.forEach((name, index) => { place[`${kind}:${name}`] = { x: COLUMN_X[kind], y: top + index * ROW_H }; });
  }
  const find = (name) => place[`sources:${name}`] || place[`mappers:${name}`];
  const drawing = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "group",
    "aria-label": "The pipeline: sources, mappers and sinks as the config wires them" },
  svgEl("defs", {}, svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7",
    markerHeight: "7", orient: "auto-start-reverse" }, svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa3b5" }))));
  drawing.style.maxWidth = `${width * 1.25}px`; // (the CSSOM, which the Content-Security-Policy allows)
  for (const [index, kind] of kinds.entries()) {
    drawing.append(svgEl("text", { x: COLUMN_X[kind], y: 20, class: "column", "aria-hidden": "true",
      text: ["Sources", "Mappers", "Sinks"][index] }));
  }
  for (const kind of ["mappers", "sinks"]) {
    for (const [name, component] of Object.entries(graph[kind])) {
      const to = place[`${kind}:${name}`];
      for (const input of component.inputs) {
        const from = find(input);
        if (!from) continue;
        const x1 = from.x + NODE_W; const y1 = from.y + NODE_H / 2; const x2 = to.x; const y2 = to.y + NODE_H / 2;
        const bend = (x2 - x1) / 2;
        drawing.append(svgEl("path", { class: "edge", d: `M ${x1} ${y1} C ${x1 + bend} ${y1} ${x2 - bend} ${y2} ${x2} ${y2}`,
          "aria-hidden": "true" }));
      }
    }
  }
  for (const kind of kinds) {
    for (const [name, component] of Object.entries(graph[kind])) {
      const { x, y } = place[`${kind}:${name}`];
      const lines = nodeLines(kind, name, component);
      const role = kind.slice(0, -1);
      const node = svgEl("g", { class: `node ${role}${lines.alert ? " paused" : ""}`, role: "group",
        "aria-label": `${role} ${name}: ${[component.type, ...lines.figures, lines.alert].filter(Boolean).join(", ")}`,
        transform: `translate(${x} ${y})` },
      svgEl("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
      svgEl("text", { x: 10, y: 20, class: "name", text: name }),
      svgEl("text", { x: 10, y: 37, class: "kind", text: component.type }));
      const figures = lines.alert ? lines.figures.slice(0, 1) : lines.figures; // an alert takes the last line
      figures.forEach((figure, index) => node.append(svgEl("text", { x: 10, y: 53 + index * 15, class: "figure", text: figure })));
      if (lines.alert) node.append(svgEl("text", { x: 10, y: 68, class: "alert", text: lines.alert.slice(0, 32) }));
      drawing.append(node);
    }
  }
  $("#graph").replaceChildren(drawing);
  renderSinks();
  renderBuffer();
}

function nodeLines(kind, name, component) {
  const status = view.status;
  if (kind === "sources") {
    const source = status.sources[name] || {};
    const refused = (source.refusals || []).length;
    return { figures: [`received ${number(source.received)} · ${perSecond(latestRate("sources", name))}`],
      alert: source.paused ? `PAUSED ${source.paused}` : refused ? `${refused} refused: see Sources` : null };
  }
  if (kind === "sinks") {
    const sink = status.sinks[name] || {};
    const waiting = sink.lag ? `lag ${number(sink.lag)} (${age(sink.oldest_pending_at)})` : "lag 0";
    const dead = sink.dead_letters ? `${number(sink.dead_letters)} dead letters` : null;
    return { figures: [`delivered ${number(sink.delivered)} · ${perSecond(latestRate("sinks", name))}`,
      [waiting, dead].filter(Boolean).join(" · ")],
      alert: sink.paused ? `PAUSED ${sink.paused}` : sink.stalled ? `STALLED ${sink.stalled}` : null };
  }
  return { figures: [`reads ${component.inputs.join(", ")}`], alert: null };
}

function sparkline(series, name) {
  const points = series || [];
  const top = Math.max(1, ...points);
  const step = points.length > 1 ? 140 / (points.length - 1) : 0;
  const minutes = view.rates ? Math.round((points.length * view.rates.every_seconds) / 60) : 0;
  const now = points.length ? points[points.length - 1] : 0;
  const chart = svgEl("svg", { class: "spark", viewBox: "0 0 140 32", role: "img",
    "aria-label": `${name}: delivered per second over the last ${minutes} min, now ${perSecond(now)}, peak ${perSecond(Math.max(0, ...points))}` },
  svgEl("line", { x1: 0, y1: 31, x2: 140, y2: 31 }));
  if (points.length > 1) {
    chart.append(svgEl("polyline", { points: points.map((value, index) => `${(index * step).toFixed(1)},${(31 - (value / top) * 29).toFixed(1)}`).join(" ") }));
  }
  return chart;
}

function renderSinks() {
  const rows = Object.entries(view.status.sinks).map(([name, sink]) => el("tr", { "data-sink": name },
    el("th", { scope: "row", text: name }),
    el("td", { class: sink.paused || sink.stalled ? "state-bad" : "state-ok",
      text: sink.paused ? `paused: ${sink.paused}` : sink.stalled ? `stalled: ${sink.stalled}` : "delivering" }),
    el("td", { class: "num", "data-field": "lag", text: number(sink.lag) }),
    el("td", { class: "num", text: sink.lag ? age(sink.oldest_pending_at) : "–" }),
    el("td", { class: "num", "data-field": "dead_letters", text: number(sink.dead_letters) }),
    el("td", { class: "num", "data-field": "delivered", text: number(sink.delivered) }),
    el("td", { class: "num", text: perSecond(latestRate("sinks", name)) }),
    el("td", {}, sparkline(view.rates && view.rates.sinks[name], name)),
    el("td", { text: sink.last_error ? `${when(sink.last_error_at)}: ${sink.last_error}` : "–" })));
  $("#sinks tbody").replaceChildren(...rows);
}

function renderBuffer() {
  const buffer = view.status.buffer;
  const facts = [["Location", buffer.location], ["Writable", buffer.healthy ? "yes" : "NO: see the daemon's log"],
    ["Webhooks", view.status.ready ? "accepted" : "refused with 503 until the buffer can store"]];
  const stored = el("dd", { "data-field": "buffer-bytes" }, bytes(buffer.bytes));
  if (buffer.max_bytes) {
    stored.append(" of ", bytes(buffer.max_bytes), " ",
      el("meter", { min: 0, max: buffer.max_bytes, high: buffer.max_bytes * 0.8, value: buffer.bytes,
        "aria-label": "Buffer use against its max_bytes" }));
  }
  const list = [];
  for (const [name, value] of facts) list.push(el("dt", { text: name }), el("dd", { text: value }));
  list.push(el("dt", { text: "Stored" }), stored);
  if (buffer.free_disk_bytes !== null && buffer.free_disk_bytes !== undefined) {
    list.push(el("dt", { text: "Free disk" }), el("dd", { text: bytes(buffer.free_disk_bytes) }));
  }
  $("#buffer").replaceChildren(...list);
}

// ---------------------------------------------------------------------------------------------
// sources

function renderSources() {
  const cards = Object.entries(view.status.sources).map(([name, source]) => {
    const type = view.status.graph.sources[name] ? view.status.graph.sources[name].type : "";
    const facts = [["Received", number(source.received)], ["Received/s", perSecond(latestRate("sources", name))]];
    if ("paused" in source) {
      const outcome = source.last_outcome;
      const last = !outcome ? "none yet" : outcome.error !== undefined ? `${when(outcome.at)}: failed, ${outcome.error}`
        : `${when(outcome.at)}: stored ${number(outcome.stored)}`;
      facts.push(["State", source.paused ? `PAUSED: ${source.paused}` : "polling"], ["Last poll", last],
        ["Cursor", source.cursor === null ? "none yet (first run)" : source.cursor]);
    } else {
      facts.push(["Last test delivery", source.last_test_delivery ? `${when(source.last_test_delivery)} (verified)` : "none since start"]);
    }
    const list = el("dl", { class: "facts" });
    for (const [label, value] of facts) list.append(el("dt", { text: label }), el("dd", { text: value }));
    const card = el("section", { class: "card", "aria-label": `source ${name}` },
      el("h3", { text: `${name} ` }, el("small", { text: type })), list);
    if (!("paused" in source)) card.append(refusalTable(name, source.refusals || []));
    return card;
  });
  $("#source-list").replaceChildren(...cards);
}

function refusalTable(name, refusals) {
  if (!refusals.length) return el("p", { text: "No refused deliveries since the daemon started." });
  const rows = [...refusals].reverse().map((refusal) => el("tr", {},
    el("td", { text: when(refusal.at) }), el("td", { class: "num", text: refusal.status }),
    el("td", { text: refusal.reason }), el("td", { text: refusal.client || "?" })));
  return el("div", { class: "scroll" }, el("table", { "aria-label": `Recent refusals of ${name}, newest first` },
    el("thead", {}, el("tr", {}, ...["Time", "Status", "Reason", "Client"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows)));
}

// ---------------------------------------------------------------------------------------------
// dead letters

function letterQuery() {
  const query = new URLSearchParams({ bodies: "0", limit: String(MAX_LETTER_ROWS) });
  if ($("#filter-sink").value) query.set("sink", $("#filter-sink").value);
  if ($("#filter-reason").value.trim()) query.set("reason", $("#filter-reason").value.trim());
  return `/dead-letters?${query}`;
}

async function refreshLetters(force = false) {
  if (signedOut) return;
  let answer;
  try {
    answer = await getJSON(letterQuery());
  } catch (error) {
    if (!(error instanceof Unauthorized)) $("#letter-outcome").textContent = error.message;
    return;
  }
  view.letters = answer.dead_letters;
  view.lettersTotal = answer.total;
  const known = new Set(view.letters.map((letter) => letter.id));
  for (const id of [...view.selected]) if (!known.has(id)) view.selected.delete(id);
  const seen = `${answer.total}:${view.letters.map((letter) => letter.id).join(",")}`;
  if (seen === view.lettersSeen && !force) return; // unchanged: keep the rows (and the focus in them)
  view.lettersSeen = seen;
  fillSinkFilter();
  renderLetters();
}

function fillSinkFilter() {
  const select = $("#filter-sink");
  if (!view.status || select.options.length > 1) return;
  for (const sink of Object.keys(view.status.sinks)) select.append(el("option", { value: sink, text: sink }));
}

function renderLetters() {
  const shown = view.letters;
  const focused = document.activeElement && document.activeElement.closest("#letters") ? document.activeElement.getAttribute("aria-label") : null;
  const filtered = $("#filter-sink").value || $("#filter-reason").value.trim();
  $("#letters-empty").hidden = shown.length > 0;
  $("#letters-empty").textContent = filtered ? "No dead letter matches the filter." : "No dead letters.";
  $("#select-shown").checked = shown.length > 0 && shown.every((letter) => view.selected.has(letter.id));
  const rows = [];
  for (const letter of shown) {
    const id = letter.id;
    rows.push(el("tr", { "data-letter": id },
      el("td", {}, el("input", { type: "checkbox", checked: view.selected.has(id), "aria-label": `Select dead letter ${id}`,
        onchange: (event) => { if (event.target.checked) view.selected.add(id); else view.selected.delete(id); } })),
      el("td", { class: "num", text: id }),
      el("td", { class: "actions" },
        el("button", { type: "button", "aria-label": `Replay dead letter ${id}`, text: "Replay", onclick: () => act("replay", [id]) }),
        el("button", { type: "button", class: "danger", "aria-label": `Purge dead letter ${id}`, text: "Purge",
          onclick: () => act("purge", [id]) }),
        el("button", { type: "button", class: "quiet", "aria-expanded": view.open.has(id) ? "true" : "false",
          "aria-controls": `payload-${id}`, "aria-label": `${view.open.has(id) ? "Hide" : "Show"} the payload of dead letter ${id}`,
          text: view.open.has(id) ? "Hide payload" : "Payload", onclick: () => togglePayload(id) })),
      el("td", { text: letter.sink }), el("td", { class: "reason", text: letter.reason }),
      el("td", { text: when(letter.failed_at) }), el("td", { text: letter.source }),
      el("td", {}, el("code", { text: letter.record_id }))));
    if (view.open.has(id)) {
      rows.push(el("tr", { class: "payload-row" }, el("td", { colspan: 8 },
        el("pre", { class: "payload", id: `payload-${id}`, tabindex: "0", "aria-label": `Payload of dead letter ${id}`,
          text: view.open.get(id) }))));
    }
  }
  if (view.lettersTotal > shown.length) {
    rows.push(el("tr", {}, el("td", { colspan: 8,
      text: `${view.lettersTotal - shown.length} more match and are not listed: narrow the filter, or act on these first.` })));
  }
  $("#letters tbody").replaceChildren(...rows);
  if (focused) { // the rows were rebuilt: the keyboard stays where it was
    const again = [...document.querySelectorAll("#letters [aria-label]")].find((node) => node.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
}

async function togglePayload(id) {
  if (view.open.has(id)) {
    view.open.delete(id);
  } else {
    try {
      const [letter] = (await getJSON(`/dead-letters?id=${id}`)).dead_letters;
      view.open.set(id, letter ? JSON.stringify(letter.body, null, 2) : "This dead letter is gone.");
    } catch (error) {
      view.open.set(id, error.message);
    }
  }
  renderLetters();
}

async function act(action, ids) {
  const outcome = $("#letter-outcome");
  if (!ids.length) {
    outcome.textContent = "Select dead letters first (the checkboxes), or use the filter and the \"all shown\" buttons.";
    return;
  }
  if (ids.length > 1 && !window.confirm(`${action === "purge" ? "Purge" : "Replay"} ${ids.length} dead letters?`
    + (action === "purge" ? " They cannot be replayed after." : ""))) return;
  const letters = view.letters.filter((letter) => ids.includes(letter.id));
  const lastId = Math.max(0, ...view.letters.map((letter) => letter.id));
  const watch = {};
  view.watch = watch; // a later action's outcome replaces this one's
  try {
    const answer = await postJSON(`/dead-letters/${action}`, { ids });
    const count = answer[action === "replay" ? "replayed" : "purged"];
    const plural = count === 1 ? "" : "s";
    outcome.textContent = action === "replay" ? `Replayed ${count} dead letter${plural}; waiting for the sink…`
      : `Purged ${count} dead letter${plural}.`;
  } catch (error) {
    outcome.textContent = error instanceof Unauthorized ? "" : `Not done: ${error.message}`;
    return;
  }
  for (const id of ids) { view.selected.delete(id); view.open.delete(id); }
  await refreshLetters(true);
  if (action === "replay") watchReplay(watch, letters, lastId);
}

// A replayed record has landed when its sink lists it among the replayed records it delivered;
// it failed again when it is a dead letter again.
async function watchReplay(watch, letters, lastId) {
  const outcome = $("#letter-outcome");
  const deadline = Date.now() + OUTCOME_WATCH_MS;
  const waiting = new Map(letters.map((letter) => [`${letter.sink}\u0000${letter.record_id}`, letter]));
  let delivered = 0;
  while (Date.now() < deadline && view.watch === watch) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await refreshStatus();
    await refreshLetters();
    if (view.watch !== watch) return;
    const again = view.letters.find((letter) => letter.id > lastId && waiting.has(`${letter.sink}\u0000${letter.record_id}`));
    if (again) {
      outcome.textContent = `Dead-lettered again: ${again.reason}`;
      return;
    }
    for (const [key, letter] of waiting) {
      const sink = view.status && view.status.sinks[letter.sink];
      if (sink && (sink.replayed || []).includes(letter.record_id)) { waiting.delete(key); delivered += 1; }
    }
    if (!waiting.size) {
      const sinks = [...new Set(letters.map((letter) => letter.sink))].join(", ");
      outcome.textContent = `Delivered: ${delivered} replayed record${delivered === 1 ? "" : "s"} reached ${sinks}.`;
      return;
    }
  }
  if (view.watch === watch) outcome.textContent = "The replay is stored but not delivered yet: see the sink's state in the overview.";
}

// ---------------------------------------------------------------------------------------------
// live tap

function fillComponentChoices() {
  const select = $("#tap-component");
  if (select.options.length > 1) return;
  const graph = view.status.graph;
  for (const kind of ["sources", "mappers", "sinks"]) {
    for (const name of Object.keys(graph[kind])) select.append(el("option", { value: name, text: `${name} (${kind.slice(0, -1)})` }));
  }
}

async function startTap() {
  const component = $("#tap-component").value;
  const controller = new AbortController();
  view.tap = controller;
  $("#tap-start").disabled = true;
  $("#tap-pause").disabled = false;
  $("#tap-component").disabled = true;
  $("#tap-state").textContent = `Watching ${component || "every component"}…`;
  try {
    const response = await api(`/tap${component ? `?component=${encodeURIComponent(component)}` : ""}`, { signal: controller.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines) if (line.trim()) addTapLine(line);
    }
    $("#tap-state").textContent = "The daemon ended the tap (it is stopping).";
  } catch (error) {
    if (error.name !== "AbortError" && !(error instanceof Unauthorized)) $("#tap-state").textContent = `The tap stopped: ${error.message}`;
  } finally {
    if (view.tap === controller) stopTap(false);
  }
}

function addTapLine(line) {
  let text = line;
  try { text = JSON.stringify(JSON.parse(line)); } catch (ignored) { /* show it as it came */ }
  const list = $("#tap-lines");
  list.append(el("li", { text }));
  while (list.children.length > MAX_TAP_LINES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function stopTap(announce = true) {
  if (view.tap) view.tap.abort();
  view.tap = null;
  $("#tap-start").disabled = false;
  $("#tap-pause").disabled = true;
  $("#tap-component").disabled = false;
  if (announce) $("#tap-state").textContent = "Paused: Start watches again.";
}

// ---------------------------------------------------------------------------------------------
// views and timers

const VIEWS = ["overview", "sources", "dead-letters", "tap"];

function showView() {
  const wanted = location.hash.slice(1);
  const current = VIEWS.includes(wanted) ? wanted : "overview";
  if (signedOut) return;
  for (const name of VIEWS) $(`#view-${name}`).hidden = name !== current;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${current}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current === "dead-letters") refreshLetters();
  if (current !== "tap" && view.tap) stopTap();
}

function every(ms, fn, onlyOn) {
  setInterval(() => {
    if (document.hidden) return;
    if (onlyOn && location.hash.slice(1) !== onlyOn) return;
    fn();
  }, ms);
}

function start() {
  $("#login-form").addEventListener("submit", signIn);
  window.addEventListener("hashchange", () => { showView(); $("#main").focus(); });
  $("#filter-sink").addEventListener("change", () => refreshLetters(true));
  $("#filter-reason").addEventListener("input", () => refreshLetters(true));
  $("#letter-filter").addEventListener("submit", (event) => event.preventDefault());
  $("#select-shown").addEventListener("change", (event) => {
    for (const letter of view.letters) { if (event.target.checked) view.selected.add(letter.id); else view.selected.delete(letter.id); }
    renderLetters();
  });
  $("#replay-selected").addEventListener("click", () => act("replay", [...view.selected]));
  $("#purge-selected").addEventListener("click", () => act("purge", [...view.selected]));
  $("#replay-shown").addEventListener("click", () => act("replay", view.letters.map((letter) => letter.id)));
  $("#purge-shown").addEventListener("click", () => act("purge", view.letters.map((letter) => letter.id)));
  $("#tap-start").addEventListener("click", startTap);
  $("#tap-pause").addEventListener("click", () => stopTap());
  $("#tap-clear").addEventListener("click", () => $("#tap-lines").replaceChildren());
  showView();
  refreshStatus();
  refreshRates();
  every(STATUS_EVERY_MS, refreshStatus);
  every(RATES_EVERY_MS, refreshRates);
  every(LETTERS_EVERY_MS, refreshLetters, "dead-letters");
}

start();
