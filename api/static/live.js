// Live line view: polls /api/v1/live/status once a second and refreshes the camera frames.
import { ApiError, getJSON } from "/static/api.js";
import { badge, el, shell, showError } from "/static/ui.js";

const COUNTERS = [
  ["boards_seen", "Boards seen"], ["inspected", "Inspected"], ["uninspected", "Uninspected"],
  ["coverage", "Coverage"], ["pass", "Pass"], ["fail", "Fail"], ["uncertain", "Uncertain"], ["fps", "Frames/s"],
];
const $ = (id) => document.getElementById(id);

function renderCounters(s) {
  const boxes = [];
  for (const [key, label] of COUNTERS) {
    let v = s.counters[key];
    if (v === undefined) continue;
    if (key === "coverage") v = (100 * v).toFixed(1) + " %";
    else if (typeof v === "number" && !Number.isInteger(v)) v = v.toFixed(1);
    boxes.push(el("div", { class: "counter" }, el("dt", {}, label), el("dd", { "data-key": key }, String(v))));
  }
  $("counters").replaceChildren(...boxes);
}

// Share of a camera's frames dropped (its buffer full: the consumer too slow): over the last polls
// when frames came in since, else over the whole run. A warning from WARN_DROP on.
const WARN_DROP = 0.05, WINDOW = 10;
const dropHistory = new Map(); // camera id -> [[frames_in, dropped], ...] of the last WINDOW polls

function dropShare(cam) {
  const seen = dropHistory.get(cam.camera_id) || [];
  seen.push([cam.frames_in, cam.dropped]);
  if (seen.length > WINDOW) seen.shift();
  dropHistory.set(cam.camera_id, seen);
  const [f0, d0] = seen[0], df = cam.frames_in - f0, dd = cam.dropped - d0;
  if (df >= 20 && dd >= 0) return dd / df;
  return cam.frames_in > 0 ? cam.dropped / cam.frames_in : 0;
}

function dropBadge(cam) {
  const share = dropShare(cam);
  if (share < WARN_DROP) return null;
  return badge("warn drop", `dropping ${Math.round(100 * share)} % of frames`,
    "frames arrive faster than this camera's pipeline takes them: the buffer drops the oldest " +
    "(boards may go uninspected); see the part model's and the defect model's time");
}

function renderCameras(s, tick) {
  const root = $("cameras");
  for (const cam of s.cameras) {
    let card = document.getElementById("cam-" + cam.camera_id);
    if (!card) {
      card = el("figure", { id: "cam-" + cam.camera_id, class: "camera" },
        el("img", { alt: "latest annotated frame of camera " + cam.camera_id }), el("figcaption"));
      root.append(card);
    }
    const online = cam.online;
    card.classList.toggle("offline", !online);
    card.querySelector("figcaption").replaceChildren(...[
      el("strong", {}, cam.camera_id),
      online ? badge("ok", cam.state) : badge("offline", "offline · " + cam.state, cam.last_error || undefined),
      dropBadge(cam), // null unless the camera drops frames (replaceChildren would write "null")
      el("span", { class: "muted" }, `${cam.fps.toFixed(1)} fps · ${cam.frames_in} frames · ${cam.dropped} dropped` +
        (cam.reconnects ? ` · ${cam.reconnects} reconnects` : "")),
    ].filter(Boolean));
    const img = card.querySelector("img");
    if (online || !img.src) img.src = `/api/v1/live/cameras/${encodeURIComponent(cam.camera_id)}/frame.jpg?t=${tick}`;
  }
}

function renderVerdicts(s) {
  $("verdicts").replaceChildren(...s.recent.map((v) => {
    const defects = v.defects.length ? v.defects.map((d) => `${d.class_name} ${d.confidence.toFixed(2)}`).join(", ")
      : "no defects";
    return el("li", { class: "verdict " + v.outcome },
      el("img", { alt: "evidence of " + v.part_id, loading: "lazy",
                  src: `/api/v1/live/parts/${encodeURIComponent(v.part_id)}/evidence.jpg` }),
      el("div", {}, el("strong", {}, v.outcome.toUpperCase()), " ", el("span", { class: "mono" }, v.part_id),
        el("div", { class: "muted" }, `${v.camera_id} · ${defects}`)));
  }));
}

function renderFaults(s) {
  // storage or event log refusing writes: the line keeps inspecting, verdicts wait; say so plainly
  const faults = (s.health && s.health.faults) || [];
  const items = faults.map((f) => {
    const p = document.createElement("p");
    p.className = "fault";
    p.textContent = `${f.component}: ${f.reason}` + (f.since ? ` (since ${new Date(f.since * 1000).toLocaleTimeString()})` : "");
    return p;
  });
  $("live-faults").replaceChildren(...items);
}

let tick = 0, timer = 0;
async function refresh() {
  tick += 1;
  const state = $("line-state");
  try {
    const s = await getJSON("/api/v1/live/status");
    $("live-title").textContent = `Live line ${s.line_id}`;
    state.textContent = "line " + s.line_state;
    state.className = "badge " + (s.line_state === "running" ? "ok" : "warn");
    renderFaults(s);
    if (s.health && !s.health.ready) state.className = "badge bad";
    renderCounters(s);
    renderCameras(s, tick);
    renderVerdicts(s);
    $("live-error").replaceChildren();
  } catch (e) {
    state.textContent = "disconnected";
    state.className = "badge bad";
    if (e instanceof ApiError && e.status === 404) {
      showError("live-error", e); // a hub runs no cameras: stop polling
      clearInterval(timer);
    }
  }
}

async function main() {
  await shell("live");
  await refresh();
  timer = setInterval(refresh, 1000);
}

main();
