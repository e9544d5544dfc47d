// Models page: the active models and their cards (classes, image size, metrics, hashes).
import { getJSON } from "/static/api.js";
import { showDelivery } from "/static/delivery.js";
import { badge, classColor, el, fmtTime, shell, showError } from "/static/ui.js";

const NS = "http://www.w3.org/2000/svg";
const METRICS = [["map50", "mAP50"], ["map50_95", "mAP50-95"], ["precision", "precision"], ["recall", "recall"],
                 ["f1", "F1"], ["deeppcb_fscore", "DeepPCB F-score"]];
const num = (v) => (typeof v === "number" ? v.toFixed(3) : v ?? "–");

// The answer may be a list, {items: [...]}, {models: [...]} or {role: card}; items may wrap the card.
function modelsOf(resp) {
  const list = Array.isArray(resp) ? resp : resp.items || resp.models || Object.entries(resp.active || resp)
    .filter(([, v]) => v && typeof v === "object").map(([role, v]) => ({ role, ...v }));
  return list.map((m) => ({ ...(m.card || {}), ...m, card: undefined }));
}

function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function metricsTable(card) {
  const fp = card.val_metrics || card.metrics || {};
  const int8 = card.int8 && card.int8.val_metrics;
  const rows = METRICS.filter(([k]) => fp[k] !== undefined);
  if (!rows.length) return el("p", { class: "muted" }, "No metrics in this card.");
  return el("table", { class: "metrics" },
    el("caption", { class: "sr-only" }, "Validation metrics"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, `metric (${fp.split || "val"}, ${fp.images ?? "?"} images)`),
      el("th", { scope: "col" }, "fp32"), int8 ? el("th", { scope: "col" }, "int8") : null)),
    el("tbody", {}, rows.map(([k, label]) => el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, num(fp[k])),
      int8 ? el("td", {}, num(int8[k])) : null))));
}

function perClass(card, classes) {
  const vm = card.val_metrics || card.metrics || {};
  const ap = vm.per_class_ap50;
  if (!ap) return null;
  return el("table", { class: "metrics" }, el("caption", { class: "sr-only" }, "AP50 per class"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "class"), el("th", { scope: "col" }, "AP50"),
      el("th", { scope: "col" }, "AP50-95"))),
    el("tbody", {}, Object.entries(ap).map(([c, v]) => el("tr", {},
      el("th", { scope: "row" }, el("span", { class: "chip" },
        el("span", { class: "swatch", style: `background:${classColor(c, classes)}` }), c)),
      el("td", {}, num(v)), el("td", {}, num((vm.per_class_ap50_95 || {})[c]))))));
}

function history(card) {
  const h = (card.history || []).filter((e) => typeof e.mAP50 === "number");
  if (h.length < 2) return null;
  const w = 300, ht = 60, max = Math.max(...h.map((e) => e.mAP50), 0.01);
  const d = h.map((e, i) => `${i ? "L" : "M"}${((w * i) / (h.length - 1)).toFixed(1)},${(ht - 4 - ((ht - 8) * e.mAP50) / max).toFixed(1)}`).join("");
  return el("figure", { style: "margin:.3rem 0" },
    el("svg", { ns: NS, viewBox: `0 0 ${w} ${ht}`, width: w, height: ht, role: "img",
                "aria-label": `validation mAP50 over ${h.length} epochs, last ${num(h[h.length - 1].mAP50)}` },
      el("path", { ns: NS, d, fill: "none", stroke: "#0b5cad", "stroke-width": 2 })),
    el("figcaption", { class: "muted" }, `mAP50 over ${h.length} epochs (last ${num(h[h.length - 1].mAP50)})`));
}

function modelCard(m) {
  const classes = m.class_names || m.classes || [];
  const files = m.files || m.sha256 || {};
  const data = m.training_data || {};
  return el("article", { class: "card model-card", "aria-labelledby": `m-${m.name}` },
    el("header", {}, el("h2", { id: `m-${m.name}` }, m.name), el("span", { class: "mono" }, `v${m.version}`),
      badge("ok", m.role || m.task || "model"), m.active === false ? badge("warn", "inactive") : badge("pass", "active")),
    kv([["task", m.task], ["architecture", m.architecture], ["image size", m.imgsz ? `${m.imgsz} px` : ""],
        ["classes", classes.length ? el("span", { class: "summary-line" }, classes.map((c) => el("span", { class: "chip" },
          el("span", { class: "swatch", style: `background:${classColor(c, classes)}` }), c))) : ""],
        ["created", fmtTime(m.created_at)], ["training data", data.yaml],
        ["epochs", m.epochs ? `${m.epochs.trained} of ${m.epochs.planned}` : ""],
        ["export", m.export ? `${m.export.format}${m.export.half ? " fp16" : ""}, ${m.export.imgsz} px` : ""],
        ["int8", m.int8 ? m.int8.format : ""], ["frameworks", m.ultralytics_version ?
          `ultralytics ${m.ultralytics_version}, torch ${m.torch_version}` : ""]]),
    el("h3", {}, "Metrics"), metricsTable(m), perClass(m, classes), history(m),
    el("h3", {}, "Files (sha256)"),
    el("ul", { class: "hashes" }, Object.entries(files).map(([f, h]) =>
      el("li", {}, el("span", { class: "mono" }, f), el("code", { class: "mono" }, h)))),
    data.source_sha256 ? el("p", { class: "muted" }, "data source sha256 ", el("code", {}, data.source_sha256)) : null);
}

async function main() {
  const me = await shell("models");
  showDelivery(me);
  try {
    const models = modelsOf(await getJSON("/api/v1/models"));
    document.getElementById("models").replaceChildren(...(models.length ? models.map(modelCard)
      : [el("p", { class: "empty" }, "No active model.")]));
  } catch (e) {
    showError("models-error", e);
  }
}

main();
