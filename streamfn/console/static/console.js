// The streamfn console: reads the ingest's JSON every few seconds and redraws each section.
// No framework and no build step; uPlot (vendored) draws the two line charts.
"use strict";

const REFRESH_MS = 5000;
const MODELS_EVERY = 6; // /models changes only when a version moves: every 6th refresh
const WINDOWS = 30;
const KEY_STORE = "streamfn-api-key";
const FLAG_MARK = { ok: "", warn: "▲ ", drift: "■ " };

const state = { tick: 0, paused: false, models: null, charts: {}, timer: null };
const $ = (selector, root = document) => root.querySelector(selector);

class Unauthorized extends Error {}

async function api(path) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers["X-API-Key"] = key;
  const answer = await fetch(path, { headers });
  if (answer.status === 401) throw new Unauthorized("the API key is missing or wrong");
  if (!answer.ok) {
    let detail = `${answer.status}`;
    try {
      const body = await answer.json();
      detail += `: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`;
    } catch (_) { /* not JSON */ }
    throw new Error(`${path} answered ${detail}`);
  }
  return answer;
}

const json = async (path) => (await api(path)).json();

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
const records = (n) => `${count(n)} record${n === 1 ? "" : "s"}`;
// HH:MM, with the seconds when the time is not on a minute (windows shorter than a minute).
const utc = (epochS) => new Date(epochS * 1000).toISOString().slice(11, epochS % 60 ? 19 : 16);
const stamp = (epochMs) => new Date(epochMs).toISOString().replace("T", " ").slice(0, 19) + " UTC";

function lineChart(id, title, series, data) {
  const target = document.getElementById(id);
  const width = Math.max(target.clientWidth, 280);
  const chart = state.charts[id];
  if (chart && chart.series.length === series.length + 1) {
    chart.setData(data);
    if (Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 200 });
    return;
  }
  if (chart) chart.destroy();
  target.replaceChildren();
  state.charts[id] = new uPlot({
    title, width, height: 200,
    scales: { x: { time: true } },
    axes: [{}, { size: 60 }],
    series: [{}, ...series],
  }, data, target);
}

function renderStatus(status) {
  const { series } = status;
  // The newest slot is still filling: leave it out of the chart and of the rate.
  const slots = series.slots.slice(0, -1);
  const perS = (values) => values.slice(0, -1).map((v) => v / series.slot_s);
  const minute = Math.round(60 / series.slot_s);
  const lastMinute = series.processed.slice(-(minute + 1), -1).reduce((a, b) => a + b, 0) / 60;
  const figures = {
    ingested: count(status.ingested),
    processed: count(status.processed),
    rate: count(Math.round(lastMinute)),
    lag: count(status.lag),
    pending: count(status.pending),
    dead_letters: count(status.dead_letters),
    pollers: `${status.pollers.answering} of ${status.pollers.known}`,
  };
  for (const [name, value] of Object.entries(figures)) {
    $(`[data-figure="${name}"]`).textContent = value;
  }
  lineChart("rate-chart", "records/s", [
    { label: "accepted", stroke: "#1a5fd0", width: 2 },
    { label: "written", stroke: "#1e8a3c", width: 2 },
  ], [slots, perS(series.ingested), perS(series.processed)]);
}

const percent = (share) => `${(100 * share).toFixed(share < 0.1 ? 1 : 0)}%`;

// A model's canary: the share its challenger serves, the step reached, or how it ended.
function canaryCell(canary) {
  if (!canary) return el("td", { text: "none", class: "none", "data-canary": "none" });
  const { version, status } = canary;
  let text = `v${version} serves ${percent(canary.serving)} (CANARY_SHARE)`;
  if (status === "widening") {
    text = `v${version} serves ${percent(canary.serving)}, step ${canary.step + 1} of ` +
      `${canary.steps.length} since ${stamp(canary.since_ms)}`;
  } else if (status !== "CANARY_SHARE") {
    text = `v${version} ${status} ${stamp(canary.updated_ms)}`;
  }
  return el("td", { text, title: canary.reason || null, "data-canary": status,
    class: status === "rolled back" ? "error" : null });
}

function renderModels(models, versions) {
  const rows = models.map((m) => {
    const served = (versions[m.model] || []).map((v) => `v${v.version} since ${stamp(v.since)}`);
    const champion = m.version ? `v${m.version}` : `not served: ${m.error || "unknown"}`;
    return el("tr", {},
      el("th", { scope: "row", text: m.model }),
      el("td", { text: m.registered_name }),
      el("td", { text: champion, class: m.version ? null : "error" }),
      el("td", { text: m.challenger ? `v${m.challenger}` : "none", class: "none" }),
      canaryCell(m.canary),
      el("td", { text: served.join("; ") || "none yet" }));
  });
  $("#models tbody").replaceChildren(...rows);
  const select = $("#rows-model");
  if (select.options.length === 1) {
    for (const m of models) select.append(el("option", { value: m.model, text: m.model }));
  }
}

function heatCell(part, name, win) {
  if (!part || part.psi === null || part.psi === undefined) {
    return el("td", { class: "none", text: "·", title: `${name}: no reference` });
  }
  // A window too small to flag shows its numbers greyed: its PSI is mostly noise.
  const few = win.flag === "too few records";
  const flag = few ? "few" : part.flag;
  const lines = [`${name}, window ${utc(win.window_start)}–${utc(win.window_end)} UTC`,
    `PSI ${part.psi.toFixed(3)} (${part.flag})`, records(win.records)];
  if ("missing_share" in part) {
    lines.push(`missing ${(100 * part.missing_share).toFixed(1)}% ` +
      `(reference ${(100 * part.reference_missing_share).toFixed(1)}%)`,
      `out of range ${part.out_of_range}`);
  }
  if (few) lines.push("too few records to flag");
  const text = lines.join("\n");
  return el("td", { class: flag, title: text, "aria-label": lines.join(", "), tabindex: "0",
    "data-flag": part.flag, "data-feature": name, text: `${FLAG_MARK[flag] || ""}${part.psi.toFixed(2)}` });
}

function driftTable(model, windows) {
  const oldestFirst = [...windows].reverse();
  const names = Object.keys(oldestFirst[oldestFirst.length - 1].features).sort();
  const head = el("tr", {}, el("th", { scope: "col", text: "input" }),
    ...oldestFirst.map((w) => el("th", { scope: "col", text: utc(w.window_start) })));
  const rows = names.map((name) => el("tr", { "data-feature": name },
    el("th", { scope: "row", text: name }),
    ...oldestFirst.map((w) => heatCell(w.features[name], name, w))));
  rows.push(el("tr", { "data-feature": "(prediction)" },
    el("th", { scope: "row", text: "(prediction)" }),
    ...oldestFirst.map((w) => heatCell(w.prediction, "prediction", w))));
  if (oldestFirst.some((w) => w.attribution)) {
    rows.push(el("tr", { "data-feature": "(attribution)" },
      el("th", { scope: "row", text: "(attribution nDCG)" }), ...oldestFirst.map(attributionCell)));
  }
  const flags = el("tr", {}, el("th", { scope: "row", text: "window" }),
    ...oldestFirst.map((w) => el("td", { class: ["ok", "warn", "drift"].includes(w.flag) ? w.flag : "none",
      text: w.flag === "too few records" ? "few" : w.flag, title: `${records(w.records)}: ${w.flag}` })));
  return el("div", { class: "scroll", tabindex: "0", role: "region",
    "aria-label": `${model}: PSI per input and window` },
  el("table", { class: "heat" }, el("caption", { class: "muted",
    text: `${model}: windows of the last ${oldestFirst.length} (UTC)` }),
  el("thead", {}, head), el("tbody", {}, ...rows, flags)));
}

// Macro F1 per window, estimated without labels (from the calibrated probabilities) and realised
// (once labels come back), on one chart: where they part, the labels no longer follow the inputs
// as the model learnt, which no estimate made from the inputs can see.
function scoresChart(model, id, windows) {
  const shown = [...windows].reverse().filter((w) => w.labelled > 0 || w.estimated_macro_f1 !== null);
  if (!shown.length) {
    delete state.charts[id];
    return el("p", { class: "muted", text: "No estimate and no labels yet: a calibrated classifier " +
      "is estimated as it predicts; POST /feedback for the realised scores." });
  }
  const labels = shown.reduce((a, w) => a + w.labelled, 0);
  const box = el("figure", {}, el("div", { id, class: "chart" }),
    el("figcaption", { text: `${model}: macro F1 per window, estimated without labels and ` +
      `realised from ${labels.toLocaleString("en")} labels` }));
  requestAnimationFrame(() => lineChart(id, "macro F1", [
    { label: "estimated", stroke: "#1a5fd0", width: 2, dash: [6, 4] },
    { label: "realised", stroke: "#8a1c12", width: 2 },
  ], [shown.map((w) => w.window_start), shown.map((w) => w.estimated_macro_f1),
    shown.map((w) => (w.labelled > 0 ? w.macro_f1 : null))]));
  return box;
}

// The estimate against the labels, in words: the newest window with both.
function estimateLine(windows) {
  const both = windows.find((w) => w.estimate_gap);
  const newest = windows[0];
  if (!both) {
    if (newest.estimated_macro_f1 === null) return [];
    return [el("p", { class: "estimate" }, el("strong", { text: "Estimated without labels: " }),
      `macro F1 ${newest.estimated_macro_f1.toFixed(3)}, accuracy ${newest.estimated_accuracy.toFixed(3)}` +
      " (no window with labels enough to compare yet).")];
  }
  const gap = both.estimate_gap.macro_f1;
  const words = both.estimate_gap.flag === "drift"
    ? `the labels say ${both.macro_f1.toFixed(3)} where the model's confidence says ` +
      `${both.estimated_macro_f1.toFixed(3)}: they part by ${Math.abs(gap).toFixed(3)}. The inputs ` +
      "no longer lead to the labels as they did in training (concept drift): an estimate made " +
      "from the model's confidence cannot see this, only labels can."
    : `estimated ${both.estimated_macro_f1.toFixed(3)}, realised ${both.macro_f1.toFixed(3)} ` +
      `(${gap >= 0 ? "+" : ""}${gap.toFixed(3)}): the estimate holds.`;
  return [el("p", { class: `estimate ${both.estimate_gap.flag}`, "data-estimate": both.estimate_gap.flag },
    el("strong", { text: `Window ${utc(both.window_start)}, macro F1: ` }), words)];
}

function attributionCell(win) {
  const part = win.attribution;
  if (!part || part.ndcg === null) {
    return el("td", { class: "none", text: "·", title: "no explained rows (OUTPUT_EXPLANATIONS)" });
  }
  const top = Object.entries(part.shares).sort((a, b) => b[1] - a[1]).slice(0, 3)
    .map(([name, share]) => `${name} ${(100 * share).toFixed(0)}%`);
  const lines = [`attribution, window ${utc(win.window_start)} UTC`,
    `nDCG ${part.ndcg.toFixed(3)} against the reference's ranking (${part.flag})`,
    `${part.explained.toLocaleString("en")} explained rows: ${top.join(", ")}`];
  return el("td", { class: part.flag, title: lines.join("\n"), "aria-label": lines.join(", "),
    tabindex: "0", "data-flag": part.flag, "data-feature": "(attribution)",
    text: `${FLAG_MARK[part.flag] || ""}${part.ndcg.toFixed(2)}` });
}

// A challenger scored in shadow: how often it agrees with the champion, its prediction PSI, and
// both versions' scores on the same labelled rows; one line per challenger version.
function challengerLines(newest) {
  return (newest.challengers || []).filter((c) => c.in_shadow !== "champion").map((c) => {
    const parts = [`agrees with the champion on ${c.agreement === null ? "—" : (c.agreement * 100).toFixed(1) + "%"} ` +
      `of ${records(c.compared)}`];
    if (c.prediction.psi !== null) parts.push(`prediction PSI ${c.prediction.psi.toFixed(3)} (${c.prediction.flag})`);
    parts.push(c.labelled
      ? `${c.labelled.toLocaleString("en")} labelled: macro F1 ${c.macro_f1.toFixed(3)} against the champion's ` +
        `${c.champion_macro_f1.toFixed(3)} on the same rows`
      : "no labels yet");
    return el("p", { class: "challenger", "data-challenger": c.version },
      el("strong", { text: `challenger v${c.version} in shadow: ` }), parts.join(" · "));
  });
}

// A challenger's window of the rows it served as the canary: how many, how many of its share it
// could not serve, and the champion in shadow on the same rows (its entry's `champion_*` figures
// are the served version's: the challenger's).
function canaryLines(newest) {
  const canary = newest.canary;
  if (!canary) return [];
  const parts = [`${records(canary.served)} served, ${count(canary.failed)} failed ` +
    `(error rate ${(100 * canary.error_rate).toFixed(1)}%)`];
  for (const c of (newest.challengers || []).filter((e) => e.in_shadow === "champion")) {
    parts.push(`champion v${c.version} in shadow agrees on ` +
      `${c.agreement === null ? "—" : (c.agreement * 100).toFixed(1) + "%"} of ${records(c.compared)}`);
    if (c.champion_psi !== null) parts.push(`prediction PSI against the champion's ${c.champion_psi.toFixed(3)}`);
    if (c.labelled) {
      parts.push(`${c.labelled.toLocaleString("en")} labelled: macro F1 ${c.champion_macro_f1.toFixed(3)} ` +
        `against the champion's ${c.macro_f1.toFixed(3)} on the same rows`);
    }
  }
  return [el("p", { class: "canary", "data-canary": newest.version },
    el("strong", { text: `canary v${newest.version}, window ${utc(newest.window_start)}: ` }),
    parts.join(" · "))];
}

function renderDrift(monitoring) {
  // Redraw only what changed: a redraw loses the cell under the pointer or the focus.
  const seen = JSON.stringify(monitoring.windows);
  if (seen === state.drawnDrift) return;
  state.drawnDrift = seen;
  // One block per model and version: a version's windows compare it with its own training data.
  const byVersion = {};
  for (const w of monitoring.windows) (byVersion[`${w.model} v${w.version}`] ||= []).push(w);
  const blocks = Object.entries(byVersion).map(([name, windows]) => {
    const newest = windows[0];
    const { model, version } = newest;
    const flagged = Object.entries(newest.features).filter(([, f]) => f.flag !== "ok")
      .map(([name, f]) => `${name} ${f.flag} (PSI ${f.psi.toFixed(2)})`);
    const summary = newest.flag === "too few records"
      ? `newest window: ${records(newest.records)}, too few to flag`
      : `newest window: ${newest.flag}${flagged.length ? ": " + flagged.join(", ") : ""}`;
    const chartId = `scores-${model}-${version}`;
    if (state.charts[chartId]) { state.charts[chartId].destroy(); delete state.charts[chartId]; }
    return el("article", { "data-model": model, "data-version": version },
      el("h3", {}, `${name} `, el("span", { class: `flag ${["ok", "warn", "drift"].includes(newest.flag) ? newest.flag : "none"}`,
        text: `${FLAG_MARK[newest.flag] || ""}${summary}` })),
      ...canaryLines(newest),
      ...challengerLines(newest),
      ...estimateLine(windows),
      el("div", { class: "model-drift" }, driftTable(name, windows), scoresChart(name, chartId, windows)),
      el("p", { class: "cell-detail muted", "aria-live": "polite",
        text: "Hover or focus a cell for its numbers." }));
  });
  if (!blocks.length) blocks.push(el("p", { class: "muted", text: "No windows yet." }));
  $("#drift-models").replaceChildren(...blocks);
}

const LEADING = new Set(["message_id", "record_index", "model", "registered_model",
  "model_version", "prediction", "prediction_label", "received_at", "predicted_at", "imputed"]);

function renderRows(answer) {
  const rows = answer.rows.map((r) => {
    const inputs = Object.entries(r).filter(([k]) => !LEADING.has(k) && !k.startsWith("proba_"))
      .map(([k, v]) => `${k}=${v}`).join(", ");
    return el("tr", {},
      el("td", { text: (r.predicted_at || "").replace("T", " ").replace("Z", "") }),
      el("td", { text: r.model }), el("td", { text: r.model_version }),
      el("td", { text: r.message_id }), el("td", { class: "number", text: r.record_index }),
      el("td", { text: r.prediction_label || r.prediction }),
      el("td", { class: "inputs", text: inputs, title: inputs }));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No rows yet." })));
  $("#predictions tbody").replaceChildren(...rows);
}

function renderObjects(answer) {
  const rows = answer.partitions.map((p) => el("tr", {},
    el("th", { scope: "row", text: p.model }), el("td", { text: p.date }),
    el("td", { class: "number", text: count(p.objects) }), el("td", { class: "number", text: count(p.rows) }),
    el("td", {}, p.newest
      ? el("a", { href: `/ui/api/objects/${p.newest}`, "data-download": p.newest.split("/").pop(),
        text: `download ${p.newest.split("/").pop()}` })
      : "")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No objects yet." })));
  $("#objects tbody").replaceChildren(...rows);
}

// A download goes through fetch so that the API key travels in a header, never in the URL.
document.addEventListener("click", async (event) => {
  const link = event.target.closest("a[data-download]");
  if (!link) return;
  event.preventDefault();
  try {
    const blob = await (await api(link.getAttribute("href"))).blob();
    const url = URL.createObjectURL(blob);
    const save = el("a", { href: url, download: link.dataset.download });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (error) {
    showProblem(error);
  }
});

// A cell's numbers in its block's detail line: a title shows on hover only, not on focus or touch.
function showCell(event) {
  const cell = event.target.closest("#drift-models td[title]");
  if (!cell) return;
  const detail = cell.closest("article").querySelector(".cell-detail");
  detail.textContent = cell.getAttribute("title").replaceAll("\n", " · ");
}
for (const kind of ["focusin", "mouseover", "click"]) document.addEventListener(kind, showCell);

function showProblem(error) {
  if (error instanceof Unauthorized) {
    clearTimeout(state.timer); // nothing to fetch until a key is given
    $("#login").hidden = false;
    $("#console").hidden = true;
    $("#login-error").textContent = sessionStorage.getItem(KEY_STORE) ? "That key was refused." : "";
    return;
  }
  const problem = $("#problem");
  problem.textContent = String(error.message || error);
  problem.hidden = false;
}

async function refresh() {
  const model = $("#rows-model").value;
  // A canary's share moves step by step: while one widens, /models is read at every refresh.
  const widening = (state.models || []).some((m) => m.canary && m.canary.status === "widening");
  const wantModels = state.models === null || widening || state.tick % MODELS_EVERY === 0;
  const calls = [
    json("/ui/api/status"),
    json(`/ui/api/monitoring?windows=${WINDOWS}`),
    json(`/ui/api/rows${model ? `?model=${encodeURIComponent(model)}` : ""}`),
    json("/ui/api/objects"),
    wantModels ? json("/ui/api/models") : Promise.resolve(null),
  ];
  const [status, monitoring, rows, objects, models] = await Promise.allSettled(calls);
  state.tick += 1;
  const failed = [status, monitoring, rows, objects, models].filter((r) => r.status === "rejected");
  if (failed.some((r) => r.reason instanceof Unauthorized)) return showProblem(new Unauthorized());
  $("#problem").hidden = true;
  if (models.status === "fulfilled" && models.value) state.models = models.value.models;
  const draw = [
    [status, (v) => { renderStatus(v); if (state.models) renderModels(state.models, v.versions); }],
    [monitoring, renderDrift], [rows, renderRows], [objects, renderObjects],
  ];
  for (const [result, render] of draw) {
    if (result.status === "fulfilled") {
      try { render(result.value); } catch (error) { failed.push({ reason: error }); }
    }
  }
  if (failed.length) showProblem(failed[0].reason);
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}` +
    (failed.length ? ` (${failed.length} part${failed.length > 1 ? "s" : ""} failed)` : "");
  document.body.dataset.refreshed = String(state.tick);
}

function schedule() {
  clearTimeout(state.timer);
  if (!state.paused && $("#login").hidden) state.timer = setTimeout(async () => { await refresh(); schedule(); }, REFRESH_MS);
}

$("#pause").addEventListener("click", (event) => {
  state.paused = !state.paused;
  event.target.setAttribute("aria-pressed", String(state.paused));
  event.target.textContent = state.paused ? "Resume updates" : "Pause updates";
  if (state.paused) clearTimeout(state.timer);
  else refresh().then(schedule);
});

$("#rows-model").addEventListener("change", () => refresh());

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("#key").value);
  $("#login").hidden = true;
  $("#console").hidden = false;
  refresh().then(schedule);
});

window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(state.charts)) {
    const target = document.getElementById(id);
    if (target) chart.setSize({ width: Math.max(target.clientWidth, 280), height: 200 });
  }
});

refresh().then(schedule);
