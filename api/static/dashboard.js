// Dashboard: yield and throughput trend, defect Pareto, coverage from the twins.
import { getJSON, withQuery } from "/static/api.js";
import { fillTrend, paretoChart, trendChart, VERDICT_COLORS } from "/static/charts.js";
import { renderSpc } from "/static/spc.js";
import { el, fmtPct, shell, showError } from "/static/ui.js";

const $ = (id) => document.getElementById(id);
const form = $("dash-filters");
const RANGES = { "1h": 3600, "8h": 8 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, all: null };
const DEFAULTS = { line: "", range: "24h", bucket: "" };

function current() {
  const q = new URLSearchParams(location.search);
  const out = {};
  for (const k of Object.keys(DEFAULTS)) out[k] = q.get(k) ?? DEFAULTS[k];
  if (!(out.range in RANGES)) out.range = DEFAULTS.range;
  return out;
}

function kpi(label, value, extra) {
  return el("div", { class: "card kpi" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), extra);
}

function meter(v) {
  return el("div", { class: "meter", role: "presentation" }, el("span", { style: `width:${Math.round(100 * (v || 0))}%` }));
}

// Boards per hour of the time the line ran (null: it ran no measurable time).
function perHour(v) {
  return v === null || v === undefined ? "n/a" : `${Math.round(v).toLocaleString("en-US")} /h`;
}

function ranFor(st) {
  const s = st.running_seconds ?? 0;
  const t = s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
  return `line ran ${t} (a gap over ${Math.round((st.idle_gap_seconds ?? 0) / 60)} min is a stop)`;
}

function renderKpis(st) {
  const c = st.counts || {};
  $("kpis").replaceChildren(
    kpi("Inspected", st.inspected ?? 0), kpi("Yield (pass share)", fmtPct(st.yield), meter(st.yield)),
    kpi("Throughput (while running)", perHour(st.throughput_per_hour), el("div", { class: "muted" }, ranFor(st))),
    kpi("Fail", c.fail ?? 0),
    kpi("Uncertain", c.uncertain ?? 0), kpi("Reviewed", st.reviewed ?? 0), kpi("Corrected by QA", st.corrected ?? 0));
}

async function renderCoverage(line) {
  const box = $("coverage");
  try {
    const lines = line ? [line] : (await getJSON("/api/v1/twin")).lines.map((l) => l.line_id);
    const docs = await Promise.all(lines.map((l) => getJSON(`/api/v1/twin/${encodeURIComponent(l)}`).catch(() => null)));
    const cards = docs.filter(Boolean).map((doc) => {
      const f = doc.features, cov = f.quality.properties.coverage, cnt = f.counters.properties;
      const text = cov === null || cov === undefined ? "no part seen entering yet (no part.entered events)"
        : `${cnt.inspected} inspected of ${cnt.entered} seen · ${cnt.uninspected} uninspected`;
      const corrected = el("div", { class: "muted twin-corrected" }, `twin: ${cnt.corrected ?? 0} corrected by QA`);
      return kpi(`line ${doc.attributes.lineId}`, cov === null || cov === undefined ? "n/a" : fmtPct(cov),
        [meter(cov), el("div", { class: "muted" }, text), corrected]);
    });
    box.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "No twin yet: coverage appears once parts are seen.")]));
  } catch (e) {
    box.replaceChildren(el("p", { class: "muted" }, `Coverage unavailable: ${e.message}`));
  }
}

async function load() {
  const f = current();
  const span = RANGES[f.range];
  const asked = f.bucket || "auto"; // auto: the server picks the finest bucket that fits the data's time span
  const now = new Date();
  const from = span ? new Date(now.getTime() - span * 1000).toISOString() : "";
  const params = { line: f.line, bucket: asked, from };
  try {
    const st = await getJSON(withQuery("/api/v1/stats", params));
    renderKpis(st);
    const bucket = st.bucket || asked;
    $("trend").replaceChildren(trendChart(fillTrend(st.trend || [], bucket, from, span ? now.toISOString() : ""), bucket));
    $("pareto").replaceChildren(paretoChart(st.pareto || []));
    $("dash-error").replaceChildren();
    $("updated").textContent = `updated ${new Date().toLocaleTimeString("sv-SE")}`;
  } catch (e) {
    showError("dash-error", e);
  }
  await renderCoverage(f.line);
  await renderSpc(f.line).catch((e) => showError("dash-error", e));
}

async function main() {
  await shell("dashboard");
  $("trend-legend").append(...Object.entries(VERDICT_COLORS).map(([k, c]) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${c}` }), k)),
    el("span", {}, el("span", { class: "swatch", style: "background:#0b5cad" }), "yield (line)"));
  try {
    const lines = (await getJSON("/api/v1/twin")).lines;
    $("d-line").append(...lines.map((l) => el("option", { value: l.line_id }, l.line_id)));
  } catch { /* no twin here */ }
  const f = current();
  for (const k of Object.keys(DEFAULTS)) form.elements.namedItem(k).value = f[k];
  form.addEventListener("change", () => {
    const q = new URLSearchParams();
    for (const k of Object.keys(DEFAULTS)) {
      const v = form.elements.namedItem(k).value;
      if (v !== DEFAULTS[k]) q.set(k, v);
    }
    history.pushState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
    load();
  });
  window.addEventListener("popstate", () => {
    const g = current();
    for (const k of Object.keys(DEFAULTS)) form.elements.namedItem(k).value = g[k];
    load();
  });
  await load();
  setInterval(load, 30_000);
}

main();
