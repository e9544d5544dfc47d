// Live line view: polls /api/v1/live/status once a second and refreshes the frames.
"use strict";

const COUNTERS = [
  ["boards_seen", "Boards seen"], ["inspected", "Inspected"], ["uninspected", "Uninspected"],
  ["coverage", "Coverage"], ["pass", "Pass"], ["fail", "Fail"], ["uncertain", "Uncertain"],
  ["fps", "Frames/s"],
];

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function renderCounters(s) {
  const dl = document.getElementById("counters");
  dl.replaceChildren();
  for (const [key, label] of COUNTERS) {
    let v = s.counters[key];
    if (v === undefined) continue;
    if (key === "coverage") v = (100 * v).toFixed(1) + " %";
    else if (typeof v === "number" && !Number.isInteger(v)) v = v.toFixed(1);
    const box = el("div", { class: "counter" });
    box.append(el("dt", {}, label), el("dd", { "data-key": key }, String(v)));
    dl.append(box);
  }
}

function renderCameras(s, tick) {
  const root = document.getElementById("cameras");
  for (const cam of s.cameras) {
    let card = document.getElementById("cam-" + cam.camera_id);
    if (!card) {
      card = el("figure", { id: "cam-" + cam.camera_id, class: "camera" });
      const img = el("img", { alt: "latest frame of camera " + cam.camera_id });
      const cap = el("figcaption");
      card.append(img, cap);
      root.append(card);
    }
    const online = cam.online;
    card.classList.toggle("offline", !online);
    card.querySelector("figcaption").replaceChildren(
      el("strong", {}, cam.camera_id),
      el("span", { class: "badge " + (online ? "ok" : "bad") }, online ? cam.state : "offline · " + cam.state),
      el("span", { class: "muted" }, `${cam.fps.toFixed(1)} fps · ${cam.frames_in} frames · ${cam.dropped} dropped`),
    );
    if (online || !card.querySelector("img").src) {
      card.querySelector("img").src = `/api/v1/live/cameras/${encodeURIComponent(cam.camera_id)}/frame.jpg?t=${tick}`;
    }
  }
}

function renderVerdicts(s) {
  const ol = document.getElementById("verdicts");
  ol.replaceChildren();
  for (const v of s.recent) {
    const li = el("li", { class: "verdict " + v.outcome });
    const img = el("img", { alt: "evidence of " + v.part_id, loading: "lazy",
                             src: `/api/v1/live/parts/${encodeURIComponent(v.part_id)}/evidence.jpg` });
    const text = el("div");
    text.append(el("strong", {}, v.outcome.toUpperCase()), el("span", {}, " " + v.part_id));
    const defects = v.defects.length ? v.defects.map(d => `${d.class_name} ${d.confidence.toFixed(2)}`).join(", ") : "no defects";
    text.append(el("div", { class: "muted" }, defects));
    li.append(img, text);
    ol.append(li);
  }
}

let tick = 0;
async function refresh() {
  tick += 1;
  const badge = document.getElementById("line-state");
  try {
    const r = await fetch("/api/v1/live/status", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    badge.textContent = "line " + s.line_state;
    badge.className = "badge " + (s.line_state === "running" ? "ok" : "warn");
    renderCounters(s);
    renderCameras(s, tick);
    renderVerdicts(s);
  } catch (e) {
    badge.textContent = "disconnected";
    badge.className = "badge bad";
  }
}
refresh();
setInterval(refresh, 1000);
