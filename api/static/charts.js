// Inline SVG charts (no library): verdicts and yield over time, Pareto of defect classes.
import { classColor, el } from "/static/ui.js";

const NS = "http://www.w3.org/2000/svg";
const s = (tag, attrs = {}, ...kids) => el(tag, { ns: NS, ...attrs }, ...kids);
const W = 640, H = 270, M = { l: 46, r: 48, t: 16, b: 44 };
export const VERDICT_COLORS = { pass: "#2da44e", uncertain: "#d4a017", fail: "#cf222e" };

// Top of an axis with 4 even steps of 1, 2, 2.5 or 5 x 10^k (whole numbers for counts).
function niceMax(v) {
  const raw = Math.max(v, 1) / 4;
  const p = 10 ** Math.floor(Math.log10(raw)), f = raw / p;
  const m = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 && p >= 10 ? 2.5 : f <= 5 ? 5 : 10;
  return Math.max(1, m * p) * 4;
}

function frame(label) {
  return s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, "font-size": 12 });
}

function leftAxis(svg, max, title) {
  const h = H - M.t - M.b;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, y = M.t + h - (h * i) / 4;
    svg.append(s("line", { x1: M.l, x2: W - M.r, y1: y, y2: y, stroke: "#e3e7eb" }),
      s("text", { x: M.l - 6, y: y + 4, "text-anchor": "end" }, Number.isInteger(v) ? v : v.toFixed(1)));
  }
  svg.append(s("text", { x: 12, y: M.t + h / 2, transform: `rotate(-90 12 ${M.t + h / 2})`, "text-anchor": "middle" },
    title));
}

function rightPercentAxis(svg, title) {
  const h = H - M.t - M.b;
  for (let i = 0; i <= 4; i++) {
    const y = M.t + h - (h * i) / 4;
    svg.append(s("text", { x: W - M.r + 6, y: y + 4 }, `${i * 25}%`));
  }
  const x = W - 8;
  svg.append(s("text", { x, y: M.t + h / 2, transform: `rotate(90 ${x} ${M.t + h / 2})`, "text-anchor": "middle" },
    title));
}

function empty(svg, text) {
  svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "font-size": 15, fill: "#57606a" }, text));
  return svg;
}

function line(points, color, dashed = false) {
  const d = points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
  return s("path", { d, fill: "none", stroke: color, "stroke-width": 2.5, "stroke-dasharray": dashed ? "5 4" : undefined });
}

export function bucketLabel(iso, bucket) {
  const d = new Date(iso), p = (n) => String(n).padStart(2, "0");
  if (bucket === "day") return `${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${p(d.getHours())}:${p(d.getMinutes())}`;
}

// ", 1,480 /h while running" for a bucket whose running time is known.
function rate(b) {
  const v = b.throughput_per_hour;
  return v === null || v === undefined ? "" : ` · ${Math.round(v).toLocaleString("en-US")} /h while running`;
}

// Stacked bars of pass / uncertain / fail per bucket (throughput) and the yield line.
export function trendChart(trend, bucket) {
  const svg = frame("Inspections per time bucket by verdict, with the yield line");
  if (!trend.length) return empty(svg, "No inspections in this time range.");
  const max = niceMax(Math.max(...trend.map((b) => b.inspected)));
  const h = H - M.t - M.b, band = (W - M.l - M.r) / trend.length, bw = Math.max(2, Math.min(46, band * 0.72));
  leftAxis(svg, max, "inspected");
  rightPercentAxis(svg, "yield");
  const every = Math.ceil(trend.length / 9);
  const yieldPts = [];
  trend.forEach((b, i) => {
    const cx = M.l + band * (i + 0.5);
    let y = M.t + h;
    for (const k of ["pass", "uncertain", "fail"]) {
      const bh = (h * (b[k] || 0)) / max;
      if (bh > 0) {
        svg.append(s("rect", { x: cx - bw / 2, y: y - bh, width: bw, height: bh, fill: VERDICT_COLORS[k] },
          s("title", {}, `${bucketLabel(b.start, bucket)}: ${b[k]} ${k}${rate(b)}`)));
      }
      y -= bh;
    }
    if (b.yield !== null && b.yield !== undefined && b.inspected > 0) yieldPts.push([cx, M.t + h - h * b.yield]);
    if (i % every === 0) {
      svg.append(s("text", { x: cx, y: H - M.b + 16, "text-anchor": "middle" }, bucketLabel(b.start, bucket)));
    }
  });
  svg.append(s("line", { x1: M.l, x2: W - M.r, y1: M.t + h, y2: M.t + h, stroke: "#9aa3ad" }));
  if (yieldPts.length > 1) svg.append(line(yieldPts, "#0b5cad"));
  for (const [x, y] of yieldPts) svg.append(s("circle", { cx: x, cy: y, r: 3.5, fill: "#0b5cad", stroke: "#fff" }));
  const first = new Date(trend[0].start), last = new Date(trend[trend.length - 1].start);
  svg.append(s("text", { x: M.l, y: H - 6, fill: "#57606a" },
    `${first.toLocaleDateString("sv-SE")} → ${last.toLocaleDateString("sv-SE")} · one bar per ${bucket}`));
  return svg;
}

// Bars of defect counts by class, largest first, with the cumulative share line.
export function paretoChart(pareto, classes) {
  const svg = frame("Pareto of defect classes: count per class and cumulative share");
  if (!pareto.length) return empty(svg, "No defects in this time range.");
  const max = niceMax(Math.max(...pareto.map((p) => p.count)));
  const h = H - M.t - M.b, band = (W - M.l - M.r) / pareto.length, bw = Math.min(70, band * 0.66);
  leftAxis(svg, max, "defects");
  rightPercentAxis(svg, "cumulative");
  const y80 = M.t + h - h * 0.8;
  svg.append(s("line", { x1: M.l, x2: W - M.r, y1: y80, y2: y80, stroke: "#8c959f", "stroke-dasharray": "4 4" }),
    s("text", { x: W - M.r - 4, y: y80 - 4, "text-anchor": "end", fill: "#57606a" }, "80%"));
  const pts = [];
  pareto.forEach((p, i) => {
    const cx = M.l + band * (i + 0.5), bh = (h * p.count) / max;
    svg.append(s("rect", { x: cx - bw / 2, y: M.t + h - bh, width: bw, height: bh, fill: classColor(p.class_name, classes),
                           stroke: "#0005" }, s("title", {}, `${p.class_name}: ${p.count} (${(100 * p.share).toFixed(1)}%)`)),
      s("text", { x: cx, y: H - M.b + 16, "text-anchor": "middle" }, p.class_name),
      s("text", { x: cx, y: H - M.b + 31, "text-anchor": "middle", "font-weight": 600 },
        `${p.count} · ${Math.round(100 * p.share)}%`));
    pts.push([cx, M.t + h - h * p.cumulative]);
  });
  svg.append(s("line", { x1: M.l, x2: W - M.r, y1: M.t + h, y2: M.t + h, stroke: "#9aa3ad" }), line(pts, "#24292f"));
  for (const [x, y] of pts) svg.append(s("circle", { cx: x, cy: y, r: 3.5, fill: "#24292f", stroke: "#fff" }));
  return svg;
}

const BUCKET_S = { minute: 60, hour: 3600, day: 86400 };

// The API leaves out empty buckets; put them back (zero bars) so the time axis is even.
export function fillTrend(trend, bucket, fromIso, toIso, maxBars = 400) {
  const step = BUCKET_S[bucket] * 1000;
  if (!step || !trend.length) return trend;
  const byStart = new Map(trend.map((b) => [Math.floor(new Date(b.start).getTime() / step) * step, b]));
  const starts = [...byStart.keys()];
  let lo = fromIso ? Math.floor(new Date(fromIso).getTime() / step) * step : Math.min(...starts);
  let hi = toIso ? Math.floor(new Date(toIso).getTime() / step) * step : Math.max(...starts);
  if ((hi - lo) / step + 1 > maxBars) [lo, hi] = [Math.min(...starts), Math.max(...starts)]; // the data's own span
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || (hi - lo) / step + 1 > maxBars) return trend;
  const out = [];
  for (let t = lo; t <= hi; t += step) {
    out.push(byStart.get(t) || { start: new Date(t).toISOString(), inspected: 0, pass: 0, fail: 0, uncertain: 0,
                                  yield: null, running_seconds: 0, throughput_per_hour: null });
  }
  return out;
}
