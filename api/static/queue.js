// Review queue: risk-ordered inspections with thumbnails; filters live in the URL.
import { getJSON, withQuery } from "/static/api.js";
import { apiParams, filterQuery, FILTER_KEYS, isoToLocal, localToIso, readFilters } from "/static/filters.js";
import { badge, classColor, DEFAULT_CLASSES, el, fmtConf, fmtTime, isTyping, shell, showError } from "/static/ui.js";

const form = document.getElementById("filters");
const list = document.getElementById("queue");
const more = document.getElementById("load-more");
const count = document.getElementById("queue-count");
let cursor = null;
let loading = 0; // generation: a newer load makes older answers stale

function fillForm(filters) {
  for (const k of FILTER_KEYS) {
    const input = form.elements.namedItem(k);
    if (input) input.value = k === "from" || k === "to" ? isoToLocal(filters[k]) : filters[k];
  }
}

function formFilters() {
  const out = {};
  for (const k of FILTER_KEYS) {
    const v = form.elements.namedItem(k).value.trim();
    out[k] = k === "from" || k === "to" ? localToIso(v) : v;
  }
  return out;
}

function row(item, query) {
  const classes = (item.defect_classes || []).map((c) =>
    el("span", { class: "chip" }, el("span", { class: "swatch", style: `background:${classColor(c)}` }), c));
  const label = `${item.verdict} ${item.part_id}, max confidence ${fmtConf(item.max_confidence)}, ` +
    `${(item.defect_classes || []).join(", ") || "no defects"}, camera ${item.camera_id}`;
  return el("li", {},
    el("a", { class: `row ${item.verdict}`, href: `/review/${encodeURIComponent(item.id)}${query}`,
              "data-id": item.id, "aria-label": label },
      el("img", { src: item.thumbnail_url, alt: "", loading: "lazy", width: 64, height: 48 }),
      el("span", { class: "summary-line" }, badge(item.verdict), badge(item.review_status)),
      el("span", { class: "conf", title: "highest defect confidence" }, fmtConf(item.max_confidence)),
      el("span", { class: "classes" }, classes.length ? classes : el("span", { class: "muted" }, "no defects")),
      el("span", { class: "meta", title: `line ${item.line_id}` }, `${item.camera_id} · ${item.line_id}`),
      el("span", { class: "meta" }, fmtTime(item.captured_at)),
      el("span", { class: "meta mono", title: item.part_id }, item.part_id)));
}

async function load(append) {
  const gen = append ? loading : ++loading;
  const filters = readFilters();
  const url = withQuery("/api/v1/inspections", { ...apiParams(filters), cursor: append ? cursor : "", limit: 50 });
  more.disabled = true;
  try {
    const page = await getJSON(url);
    if (gen !== loading) return;
    const query = filterQuery(filters);
    if (!append) list.replaceChildren();
    list.append(...page.items.map((it) => row(it, query)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    const n = list.children.length;
    count.textContent = n ? `${n} shown${cursor ? "" : " (all)"}` : "";
    if (!n) list.append(el("li", { class: "empty" }, "Nothing to review with these filters."));
    document.getElementById("queue-error").replaceChildren();
  } catch (e) {
    if (gen === loading) showError("queue-error", e);
  } finally {
    more.disabled = false;
  }
}

function applyForm() {
  const query = filterQuery(formFilters());
  if (query !== location.search && !(query === "" && location.search === "")) {
    history.pushState(null, "", location.pathname + query);
  }
  load(false);
}

function moveFocus(step) {
  const rows = [...list.querySelectorAll("a.row")];
  if (!rows.length) return;
  const i = rows.indexOf(document.activeElement);
  const next = rows[Math.max(0, Math.min(rows.length - 1, i < 0 ? 0 : i + step))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
}

async function fillChoices() {
  const select = document.getElementById("f-defect_class");
  select.append(...DEFAULT_CLASSES.map((c) => el("option", { value: c }, c)));
  try {
    const twins = await getJSON("/api/v1/twin");
    document.getElementById("lines").append(...twins.lines.map((l) => el("option", { value: l.line_id })));
  } catch { /* no twin on this process: the line field stays free text */ }
}

async function main() {
  await shell("queue");
  await fillChoices();
  fillForm(readFilters());
  form.addEventListener("change", applyForm);
  form.addEventListener("submit", (e) => { e.preventDefault(); applyForm(); });
  document.getElementById("clear-filters").addEventListener("click", () => {
    form.reset();
    applyForm();
  });
  more.addEventListener("click", () => load(true));
  window.addEventListener("popstate", () => { fillForm(readFilters()); load(false); });
  document.addEventListener("keydown", (e) => {
    if (isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") moveFocus(1);
    else if (e.key === "k") moveFocus(-1);
  });
  await load(false);
}

main();
