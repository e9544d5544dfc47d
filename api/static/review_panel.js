// The side panel of the review page: summary, boxes list, audit trail, legend, conflict.
import { badge, classColor, DEFAULT_CLASSES, el, fmtConf, fmtTime, toast } from "/static/ui.js";

const $ = (id) => document.getElementById(id);

export const classNamesOf = (d) => (d && d.class_names && d.class_names.length ? d.class_names : DEFAULT_CLASSES);
export const statusOf = (d) => (d.review && d.review.status) || d.review_status || "pending";

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function reviewedLine(d) {
  const r = d.review || {};
  if (statusOf(d) === "pending") return el("span", { class: "muted" }, "not reviewed yet");
  return el("span", { class: "muted" }, `by ${r.by || "?"} · ${fmtTime(r.at)}`);
}

// The part id whole, selectable, with a button that copies it.
function partId(d) {
  const copy = el("button", { type: "button", id: "copy-part", class: "link", "aria-label": "Copy the part id" }, "copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(d.part_id);
      toast(`Copied ${d.part_id}`, "ok");
    } catch {
      getSelection().selectAllChildren($("part-id"));
      toast("Selected: press Ctrl+C to copy");
    }
  });
  return el("span", { class: "part-line" }, el("span", { class: "mono part-id", id: "part-id" }, d.part_id), " ", copy);
}

export function renderSummary(d) {
  const model = d.model ? `${d.model.name} v${d.model.version}` : "";
  const reasons = d.current_reasons && d.current_reasons.length ? d.current_reasons : d.reasons || [];
  const changed = d.model_verdict && d.model_verdict !== d.verdict ? `the model said ${d.model_verdict}` : "";
  $("summary").replaceChildren(
    el("div", { class: "summary-line" }, badge(d.verdict), badge(statusOf(d)), reviewedLine(d)),
    facts([["part", partId(d)], ["max conf.", fmtConf(d.max_confidence)],
           ["camera", `${d.camera_id} · line ${d.line_id}`], ["captured", fmtTime(d.captured_at)],
           ["model", model], ["frame", `${d.frame_seq}${d.crop ? ` · crop ${d.crop.width} × ${d.crop.height} px` : ""}`],
           ["verdict", changed]]),
    el("h3", { class: "reasons-title" }, "Reasons now"),
    el("ul", { id: "reasons", class: "reasons" }, reasons.map((r) => el("li", {}, r))));
}

export function renderBoxes(d, selected, onPick) {
  const names = classNamesOf(d);
  const items = (d.boxes || []).map((b, i) => el("li", {},
    el("button", { type: "button", "aria-pressed": i === selected ? "true" : "false", onclick: () => onPick(i),
                   class: b.rejected ? "rejected" : undefined,
                   "aria-label": `Select box ${i + 1}: ${b.class_name} ${fmtConf(b.confidence)}` },
      el("span", { class: "swatch", style: `background:${classColor(b.class_name, names)}` }),
      `${i + 1}. ${b.class_name}`, el("span", { class: "muted" }, fmtConf(b.confidence)),
      el("span", { class: "src" }, b.rejected ? "rejected" : b.source || "model"))));
  $("boxes").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no boxes: the model found no defect")]));
}

export function renderAudit(d) {
  const rows = [...(d.audit || [])].reverse().map((a) => el("li", { "data-action": a.action },
    el("div", {}, el("span", { class: "what" }, a.summary || `${a.actor} (${a.role}) ${a.action}`)),
    el("div", { class: "muted" }, `#${a.id ?? "?"} · ${fmtTime(a.at)}${a.actor_id ? ` · token ${a.actor_id}` : ""}`),
    a.comment ? el("div", {}, `“${a.comment}”`) : null));
  $("audit").replaceChildren(...(rows.length ? rows : [el("li", { class: "muted" }, "no action yet")]));
}

export function renderLegend(d) {
  const names = classNamesOf(d);
  $("legend").replaceChildren(...names.map((c, i) => el("span", { class: "chip", title: `key ${i + 1}` },
    el("span", { class: "swatch", style: `background:${classColor(c, names)}` }), `${i + 1} ${c}`)));
  const select = $("relabel-class");
  const keep = select.value;
  select.replaceChildren(...names.map((c, i) => el("option", { value: c }, `${i + 1} · ${c}`)));
  if (names.includes(keep)) select.value = keep;
}

export function renderConflict(message, current, me = "") {
  const box = $("conflict");
  if (!current) {
    box.hidden = true;
    return;
  }
  const r = current.review || {};
  const other = r.by && r.by !== me;
  box.replaceChildren(el("strong", {}, other ? `Already reviewed by ${r.by}` : "Changed since you opened it"),
    el("div", {}, `${statusOf(current)} by ${r.by || "?"} at ${fmtTime(r.at)}`),
    el("div", { class: "muted" }, message || ""),
    el("div", { class: "muted" }, other ? `The board shows their decision; only ${r.by} or a lead may amend it. ` +
      "Add a comment if you disagree." : "The board now shows its current state; review it again."));
  box.hidden = false;
}

export function renderDone(show) {
  const box = $("review-error");
  box.replaceChildren(...(show ? [el("div", { class: "card done", role: "status" },
    el("strong", {}, "Queue cleared. "), "No pending board left with these filters. ",
    el("a", { href: "/" + location.search }, "Back to the queue"))] : []));
}
