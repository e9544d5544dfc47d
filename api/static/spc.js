// Control charts of a line (GET /api/v1/lines/{line}/process): points, centre line, control limits,
// the points a Western Electric rule fired on marked in red with the rule's number. Inline SVG, no library.
import { getJSON } from "/static/api.js";
import { el } from "/static/ui.js";

const NS = "http://www.w3.org/2000/svg";
const s = (tag, attrs = {}, ...kids) => el(tag, { ns: NS, ...attrs }, ...kids);
const W = 640, H = 240, M = { l: 56, r: 16, t: 14, b: 30 };

function path(points, color, dashed) {
  const d = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  return s("path", { d, fill: "none", stroke: color, "stroke-width": 1.8, "stroke-dasharray": dashed ? "5 4" : undefined });
}

export function controlChart(chart) {
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `control chart ${chart.name}`,
    "font-size": 11, class: "spc-chart" });
  const pts = chart.points || [];
  if (!pts.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#57606a" },
      chart.state === "baseline" ? "learning the baseline" : "no subgroup yet"));
    return svg;
  }
  const top = Math.max(...pts.map((p) => Math.max(p.value, p.ucl))) * 1.1 || 1;
  const x = (i) => M.l + ((W - M.l - M.r) * i) / Math.max(1, pts.length - 1);
  const y = (v) => M.t + (H - M.t - M.b) * (1 - v / top);
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    svg.append(s("line", { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), stroke: "#eef1f4" }),
      s("text", { x: M.l - 6, y: y(v) + 4, "text-anchor": "end" }, chart.kind === "p" ? `${(v * 100).toFixed(1)}%` : v.toFixed(2)));
  }
  svg.append(path(pts.map((p, i) => [x(i), y(p.ucl)]), "#cf222e", true), path(pts.map((p, i) => [x(i), y(p.lcl)]), "#cf222e", true),
    path(pts.map((p, i) => [x(i), y(chart.center)]), "#57606a", true), path(pts.map((p, i) => [x(i), y(p.value)]), "#0b5cad"));
  pts.forEach((p, i) => {
    const hit = p.rules.length > 0;
    svg.append(s("circle", { cx: x(i), cy: y(p.value), r: hit ? 4.5 : 2.5, fill: hit ? "#cf222e" : "#0b5cad",
      "data-rules": p.rules.join(",") }, s("title", {}, `#${p.index} ${p.value.toFixed(4)} (${p.n} boards)${hit ? " rules " + p.rules.join(",") : ""}`)));
    if (hit) svg.append(s("text", { x: x(i), y: y(p.value) - 8, "text-anchor": "middle", fill: "#cf222e" }, p.rules.join(",")));
  });
  return svg;
}

export async function renderSpc(line) {
  const box = document.getElementById("spc");
  if (!box) return;
  let lineId = line;
  if (!lineId) {
    try { lineId = (await getJSON("/api/v1/twin")).lines[0]?.line_id; } catch { lineId = null; }
  }
  if (!lineId) { box.replaceChildren(el("p", { class: "muted" }, "no line yet")); return; }
  const data = await getJSON(`/api/v1/lines/${encodeURIComponent(lineId)}/process`);
  if (!data.enabled) { box.replaceChildren(el("p", { class: "muted" }, "process control is off (spc.enabled)")); return; }
  const order = { drifting: 0, in_control: 1, baseline: 2 };
  const charts = [...data.charts].sort((a, b) => order[a.state] - order[b.state] || a.name.localeCompare(b.name));
  box.replaceChildren(...charts.map((c) => el("figure", { class: `spc ${c.state}` },
    el("figcaption", {}, `${lineId} · ${c.name} (${c.kind}-chart) · `,
      el("strong", {}, c.state === "drifting" ? `drifting since ${c.since}` : c.state.replace("_", " "))),
    controlChart(c))));
}
