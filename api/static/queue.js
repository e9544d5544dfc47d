// Review queue: risk-ordered inspections with thumbnails; filters live in the URL.
// "Most informative first" (sort=information) ranks the boards not reviewed yet of the line this
// process runs by what a review would teach the next model (the model's uncertainty at its fail
// threshold, disagreement with the shadow model); each row shows its score and, on hover, why.
// The default queue is what needs a human (pending fail and uncertain boards), with its total;
// new boards are announced from the event feed; a selection (shift+j/k, x, ctrl+a) is
// confirmed or rejected in one request (POST /api/v1/inspections/bulk-review).
import { getJSON, postJSON, withQuery } from "/static/api.js";
import { apiParams, filterQuery, FILTER_KEYS, isoToLocal, localToIso, readFilters, verdictsOf } from "/static/filters.js";
import { badge, classColor, DEFAULT_CLASSES, el, fmtConf, fmtTime, isTyping, shell, showError, toast } from "/static/ui.js";

const $ = (id) => document.getElementById(id);
const form = $("filters");
const list = $("queue");
const more = $("load-more");
const count = $("queue-count");
const POLL_MS = 2000; // the event feed, for the "new" badge
let cursor = null;
let loading = 0; // generation: a newer load makes older answers stale
let total = null;
const selection = { ids: new Set(), anchor: null };
const feed = { after: null, fresh: 0, off: false };

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

// The expected information of a board (sort=information): its score, what it is made of on hover.
function infoChip(info) {
  if (!info) return null;
  const shadow = info.why.some((w) => w.startsWith("the shadow model"));
  return el("span", { class: `chip info${shadow ? " disagree" : ""}`, title: info.why.join("\n") },
    `info ${info.score.toFixed(2)}`, shadow ? el("span", { class: "why" }, "shadow disagrees") : null);
}

function row(item, query) {
  const classes = (item.defect_classes || []).map((c) =>
    el("span", { class: "chip" }, el("span", { class: "swatch", style: `background:${classColor(c)}` }), c));
  const info = item.information ? `, expected information ${item.information.score.toFixed(2)}: ` +
    item.information.why.join("; ") : "";
  const label = `${item.verdict} ${item.part_id}, max confidence ${fmtConf(item.max_confidence)}, ` +
    `${(item.defect_classes || []).join(", ") || "no defects"}, camera ${item.camera_id}${info}`;
  const box = el("input", { type: "checkbox", class: "pick", "aria-label": `Select ${item.part_id}`, tabindex: -1 });
  box.addEventListener("change", () => { toggle(item.id, box.checked); selection.anchor = rowIndex(item.id); });
  return el("li", { "data-id": item.id, "data-version": item.version, "data-verdict": item.verdict }, box,
    el("a", { class: `row ${item.verdict}`, href: `/review/${encodeURIComponent(item.id)}${query}`,
              "data-id": item.id, "aria-label": label },
      el("img", { src: item.thumbnail_url, alt: "", loading: "lazy", width: 64, height: 48 }),
      el("span", { class: "summary-line" }, badge(item.verdict), badge(item.review_status)),
      el("span", { class: "conf", title: "highest defect confidence" }, fmtConf(item.max_confidence)),
      el("span", { class: "classes" }, infoChip(item.information),
         classes.length ? classes : el("span", { class: "muted" }, "no defects")),
      el("span", { class: "meta", title: `line ${item.line_id}` }, `${item.camera_id} · ${item.line_id}`),
      el("span", { class: "meta" }, fmtTime(item.captured_at)),
      el("span", { class: "part mono", title: "part id" }, item.part_id)));
}

function renderCount() {
  const n = list.querySelectorAll("a.row").length;
  const of = total === null ? "" : ` of ${total}`;
  count.textContent = n ? `${n} shown${of}${cursor ? "" : " (all)"}` : "";
  const pending = readFilters().review_status === "pending";
  $("queue-total").textContent = total === null ? "" : `${total} ${pending ? "pending" : "match"}`;
}

const ORDER_HINTS = {
  risk: "risk order: uncertain, then fail, least confident first",
  newest: "newest first",
  information: "most informative first{line}: where the model is least sure, or the shadow model disagrees",
};
let servedLine; // the line this process runs (sort=information ranks its boards), once asked

async function lineServed() {
  if (servedLine === undefined) {
    try {
      servedLine = (await getJSON("/api/v1/models/lines")).lines[0] || "";
    } catch {
      servedLine = "";
    }
  }
  return servedLine;
}

// Parameters of the listing and its count: sort=information covers the line this process runs, so
// without a line filter both name that line (the total then counts what the order ranks).
async function queryParams(filters) {
  const params = apiParams(filters);
  if (filters.sort === "information" && !filters.line) {
    const line = await lineServed();
    if (line) params.line = line;
  }
  const hint = ORDER_HINTS[filters.sort] || filters.sort;
  $("order-hint").textContent = hint.replace("{line}", params.line ? ` on ${params.line}` : "");
  return params;
}

async function fetchTotal(filters) {
  const { sort: _sort, ...params } = await queryParams(filters);
  try {
    return (await getJSON(withQuery("/api/v1/inspections/count", params))).total;
  } catch {
    return null;
  }
}

async function loadTotal(filters) {
  total = await fetchTotal(filters);
  renderCount();
}

async function load(append) {
  const gen = append ? loading : ++loading;
  const filters = readFilters();
  const url = withQuery("/api/v1/inspections", { ...(await queryParams(filters)), cursor: append ? cursor : "", limit: 50 });
  more.disabled = true;
  try {
    const [page, counted] = await Promise.all([getJSON(url), append ? total : fetchTotal(filters)]);
    if (gen !== loading) return;
    total = counted; // shown with the rows it counts
    const query = filterQuery(filters);
    if (!append) {
      list.replaceChildren();
      clearSelection();
      showNew(0);
    }
    list.append(...page.items.map((it) => row(it, query)));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    renderCount();
    if (!list.children.length) list.append(el("li", { class: "empty" }, "Nothing to review with these filters."));
    $("queue-error").replaceChildren();
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

// -- selection and bulk review ---------------------------------------------------------------------

const rows = () => [...list.querySelectorAll("a.row")];
const rowIndex = (id) => rows().findIndex((a) => a.dataset.id === id);

function toggle(id, on) {
  if (on) selection.ids.add(id);
  else selection.ids.delete(id);
  renderSelection();
}

function clearSelection() {
  selection.ids.clear();
  selection.anchor = null;
  renderSelection();
}

function renderSelection() {
  for (const li of list.querySelectorAll("li[data-id]")) {
    const on = selection.ids.has(li.dataset.id);
    li.classList.toggle("selected", on);
    li.querySelector("input.pick").checked = on;
  }
  const n = selection.ids.size;
  $("bulk").hidden = n === 0;
  $("bulk-count").textContent = `${n} selected`;
}

function focused() {
  return rows().indexOf(document.activeElement);
}

function moveFocus(step, extend = false) {
  const all = rows();
  if (!all.length) return;
  const i = focused();
  const j = Math.max(0, Math.min(all.length - 1, i < 0 ? 0 : i + step));
  if (extend) { // shift+j/k: the range from the anchor to the new row
    if (selection.anchor === null) selection.anchor = i < 0 ? j : i;
    const [lo, hi] = [Math.min(selection.anchor, j), Math.max(selection.anchor, j)];
    selection.ids = new Set(all.slice(lo, hi + 1).map((a) => a.dataset.id));
    renderSelection();
  }
  all[j].focus();
  all[j].scrollIntoView({ block: "nearest" });
}

function toggleFocused() {
  const all = rows(), i = focused();
  if (i < 0) return;
  toggle(all[i].dataset.id, !selection.ids.has(all[i].dataset.id));
  selection.anchor = i;
}

function selectAll() {
  selection.ids = new Set(rows().map((a) => a.dataset.id));
  selection.anchor = 0;
  renderSelection();
}

function askBulk(action) {
  const n = selection.ids.size;
  if (!n) return;
  const dialog = $("bulk-dialog");
  const verb = action === "confirm" ? "Confirm the model's verdict on" : "Reject as false positive";
  $("bulk-question").textContent = `${verb} ${n} board${n === 1 ? "" : "s"}?`;
  $("bulk-detail").textContent = action === "confirm"
    ? "Fail stays fail, uncertain becomes fail (it has boxes) or pass. One audit entry per board."
    : "Every box is rejected; each board passes. One audit entry per board.";
  $("bulk-yes").textContent = `Yes, ${action} ${n}`;
  dialog.returnValue = "";
  dialog.onclose = () => { if (dialog.returnValue === "yes") bulk(action); };
  dialog.showModal();
  $("bulk-yes").focus();
}

async function bulk(action) {
  const items = [...list.querySelectorAll("li[data-id]")].filter((li) => selection.ids.has(li.dataset.id))
    .map((li) => ({ id: li.dataset.id, version: Number(li.dataset.version) }));
  try {
    const out = await postJSON("/api/v1/inspections/bulk-review", { action, items });
    const skipped = out.skipped.length ? `; ${out.skipped.length} skipped: ${out.skipped[0].reason}` : "";
    toast(`${action === "confirm" ? "Confirmed" : "Rejected"} ${out.reviewed.length} boards${skipped}`,
          out.skipped.length ? "error" : "ok");
    await load(false);
  } catch (e) {
    toast(`${action} failed: ${e.message}`, "error");
  }
}

// -- new boards from the event feed ------------------------------------------------------------------

function showNew(n) {
  feed.fresh = n;
  const button = $("new-items");
  button.hidden = n === 0;
  button.textContent = `${n} new · show (n)`;
}

// Whether a part.inspected event is a board the queue's filters would show (new boards are pending).
function wanted(event, filters) {
  const data = event.data || {};
  const verdicts = verdictsOf(filters);
  if (!["pending", "all"].includes(filters.review_status)) return false;
  if (verdicts.length && !verdicts.includes(data.verdict)) return false;
  if ((filters.line && event.lineid !== filters.line) || (filters.camera && data.camera_id !== filters.camera)) return false;
  if (filters.defect_class && !(data.defects || []).some((d) => d.class_name === filters.defect_class)) return false;
  return !filters.part || String(data.part_id).includes(filters.part);
}

async function poll() {
  if (feed.off) return;
  const filters = readFilters();
  try {
    if (feed.after === null) {
      feed.after = (await getJSON("/api/v1/events?limit=1")).head;
      return;
    }
    const page = await getJSON(withQuery("/api/v1/events", { after: feed.after, type: "part.inspected", limit: 500 }));
    feed.after = page.next_after;
    const ranked = filters.sort === "information" && !filters.line && servedLine ? { ...filters, line: servedLine } : filters;
    const n = page.events.filter((e) => wanted(e, ranked)).length;
    if (n) {
      showNew(feed.fresh + n);
      loadTotal(filters);
    }
  } catch (e) {
    feed.off = e.status === 404 || e.status === 403; // no event log on this process: no badge
  }
}

async function fillChoices() {
  const select = $("f-defect_class");
  select.append(...DEFAULT_CLASSES.map((c) => el("option", { value: c }, c)));
  try {
    const twins = await getJSON("/api/v1/twin");
    $("lines").append(...twins.lines.map((l) => el("option", { value: l.line_id })));
  } catch { /* no twin on this process: the line field stays free text */ }
}

function onKey(e) {
  if (isTyping(e) || e.altKey || e.metaKey || $("bulk-dialog").open) return;
  if (e.ctrlKey) {
    if (e.key === "a") { e.preventDefault(); selectAll(); }
    return;
  }
  const keys = { j: () => moveFocus(1), k: () => moveFocus(-1), J: () => moveFocus(1, true), K: () => moveFocus(-1, true),
                 x: toggleFocused, c: () => askBulk("confirm"), r: () => askBulk("reject"), Escape: clearSelection,
                 n: () => { if (feed.fresh) load(false); } };
  const fn = keys[e.key];
  if (!fn || (e.repeat && "cr".includes(e.key))) return;
  e.preventDefault();
  fn();
}

async function main() {
  await shell("queue");
  await fillChoices();
  fillForm(readFilters());
  form.addEventListener("change", applyForm);
  form.addEventListener("submit", (e) => { e.preventDefault(); applyForm(); });
  $("clear-filters").addEventListener("click", () => {
    form.reset();
    applyForm();
  });
  more.addEventListener("click", () => load(true));
  $("new-items").addEventListener("click", () => load(false));
  $("bulk-confirm").addEventListener("click", () => askBulk("confirm"));
  $("bulk-reject").addEventListener("click", () => askBulk("reject"));
  $("bulk-clear").addEventListener("click", clearSelection);
  window.addEventListener("popstate", () => { fillForm(readFilters()); load(false); });
  document.addEventListener("keydown", onKey);
  await poll(); // the feed's head before the first page: what comes after it is new
  await load(false);
  setInterval(poll, POLL_MS);
}

main();
