// Review one board after another in the queue's order (same filters), with the keyboard.
import { getJSON, postJSON, withQuery } from "/static/api.js";
import { apiParams, filterQuery, readFilters } from "/static/filters.js";
import { classNamesOf, renderAudit, renderBoxes, renderConflict, renderDone, renderLegend, renderSummary,
         statusOf } from "/static/review_panel.js";
import { GoldenPair } from "/static/golden.js";
import { fmtConf, isTyping, keysDialog, shell, showError, toast } from "/static/ui.js";
import { Viewer } from "/static/viewer.js";

const $ = (id) => document.getElementById(id);
const filters = readFilters();
const query = filterQuery(filters);
const FRESH_MS = 30_000;
const state = { queue: [], cursor: null, exhausted: false, index: 0, detail: null, busy: false, nav: 0,
                cache: new Map(), me: "", meId: null, lastActed: null };
const KEYS = [
  ["j", "next board in the queue"], ["k", "previous board"],
  ["c", "confirm the verdict, go to the next pending"], ["r", "reject as false positive, go to the next pending"],
  ["u", "undo my last action (on this board, else on the board I reviewed last)"],
  ["o", "reopen a reviewed board: pending again with the model's verdict (its reviewer or a lead)"],
  ["1 2 3 4 5 6", "relabel the selected box to class 1-6"], ["x", "reject only the selected box"],
  ["← →", "select the previous / next box (or Tab, or click)"], ["b", "show / hide the boxes"],
  ["+ −", "zoom in / out, centred on the selected box (or the mouse wheel; drag to pan)"], ["0", "fit the image"],
  ["d", "overlay the difference from the golden board (boards compared with a golden)"],
  ["a", "draw a missed box (class from the relabel list)"], ["m", "write a comment (Ctrl+Enter adds it)"], ["q", "back to the queue"],
  ["Esc", "unselect, stop drawing, close this help"], ["?", "show / hide this help"],
];
const help = keysDialog(KEYS);
const viewer = new Viewer($("viewport"), {
  onSelect: () => renderSelection(),
  onDraw: (xyxy) => addBox(xyxy),
  onZoom: (s) => { $("zoom-level").textContent = Math.round(100 * s) + " %"; },
});
const pair = new GoldenPair(viewer, { panes: "panes", pane: "golden-pane", viewport: "golden-viewport",
  info: "golden-info", button: "toggle-diff", boardCaption: "board-caption", goldenCaption: "golden-caption" });

async function loadMore() {
  if (state.exhausted) return false;
  const page = await getJSON(withQuery("/api/v1/inspections",
    { ...apiParams(filters), cursor: state.cursor || "", limit: 100 }));
  const known = new Set(state.queue.map((it) => it.id));
  const fresh = page.items.filter((it) => !known.has(it.id));
  state.queue.push(...fresh);
  state.cursor = page.next_cursor;
  state.exhausted = !page.next_cursor;
  return fresh.length > 0;
}

async function detailOf(id, force = false) {
  const hit = state.cache.get(id);
  if (!force && hit && Date.now() - hit.t < FRESH_MS) return hit.d;
  const d = await getJSON(`/api/v1/inspections/${encodeURIComponent(id)}`);
  state.cache.set(id, { d, t: Date.now() });
  return d;
}

function prefetch(i) {
  const it = state.queue[i];
  if (!it || state.cache.has(it.id)) return;
  detailOf(it.id).then((d) => {
    new Image().src = d.evidence_url;
    if (d.golden_url) new Image().src = `${d.golden_url}?display=true`;
  }).catch(() => {});
}

function renderSelection() {
  const d = state.detail, i = viewer.selected;
  renderBoxes(d, i, pickBox);
  const b = i === null ? null : d.boxes[i];
  $("selection").textContent = b ? `Selected box ${i + 1}: ${b.class_name} ${fmtConf(b.confidence)}` : "No box selected.";
  if (b && classNamesOf(d).includes(b.class_name)) $("relabel-class").value = b.class_name;
}

function pickBox(i) {
  viewer.select(i);
  viewer.reveal(i);
}

function render(newBoard) {
  const d = state.detail;
  const names = classNamesOf(d);
  if (newBoard) {
    const crop = d.crop || { width: 640, height: 640 };
    pair.show(d);
    viewer.show(d.evidence_url, crop.width, crop.height, d.boxes || [], names, `board ${d.part_id}`);
    renderConflict(null, null);
    renderDone(false);
  } else {
    const keep = viewer.selected;
    viewer.setBoxes(d.boxes || [], names);
    if (keep !== null && keep < (d.boxes || []).length) viewer.select(keep);
  }
  renderLegend(d);
  renderSummary(d);
  renderAudit(d);
  renderSelection();
  const n = state.queue.length;
  $("position").textContent = `${state.index + 1} of ${n}${state.exhausted ? "" : "+"}`;
  $("prev").disabled = state.index <= 0;
  $("next").disabled = state.index >= n - 1 && state.exhausted;
  $("reopen").hidden = statusOf(d) === "pending";
  document.title = `${d.verdict} ${d.part_id} · Review · twinspect`;
}

async function show(i) {
  const nav = ++state.nav;
  if (i >= state.queue.length && !state.exhausted) await loadMore();
  if (i < 0 || i >= state.queue.length) {
    toast(i < 0 ? "This is the first board of the queue." : "This is the last board of the queue.");
    return;
  }
  const d = await detailOf(state.queue[i].id);
  if (nav !== state.nav) return; // a later j/k won
  state.index = i;
  state.detail = d;
  history.replaceState(null, "", `/review/${encodeURIComponent(d.id)}${query}`);
  render(true);
  prefetch(i + 1);
  prefetch(i - 1);
}

async function nextPending() {
  for (let j = state.index + 1; ; j++) {
    if (j >= state.queue.length && !(await loadMore())) break;
    if (state.queue[j]?.review_status === "pending") return show(j);
  }
  const k = state.queue.findIndex((it, n) => n < state.index && it.review_status === "pending");
  if (k >= 0) return show(k);
  renderDone(true);
  return undefined;
}

function remember(d, mine = false) {
  state.detail = d;
  if (mine) state.lastActed = d.id;
  state.cache.set(d.id, { d, t: Date.now() });
  const it = state.queue[state.index];
  if (it && it.id === d.id) state.queue[state.index] = { ...it, review_status: statusOf(d), verdict: d.verdict };
}

async function act(action, extra = {}) {
  if (state.busy || !state.detail) return null;
  state.busy = true;
  const d = state.detail;
  const comment = $("comment").value.trim();
  const body = { action, version: d.version, ...extra };
  if (comment) body.comment = comment;
  try {
    const updated = await postJSON(`/api/v1/inspections/${encodeURIComponent(d.id)}/review`, body);
    if (comment) $("comment").value = "";
    remember(updated, action !== "comment");
    renderConflict(null, null);
    return updated;
  } catch (e) {
    if (e.status === 409 && e.body && e.body.current) {
      remember(e.body.current);
      render(false);
      renderConflict(e.message, e.body.current, state.me);
    } else {
      toast(`${action} failed: ${e.message}`, "error");
    }
    return null;
  } finally {
    state.busy = false;
  }
}

async function decide(action) {
  const updated = await act(action);
  if (!updated) return;
  toast(action === "confirm" ? `Confirmed ${updated.part_id}` : `Rejected ${updated.part_id} as false positive`, "ok");
  await nextPending();
}

async function relabel(n) {
  const d = state.detail, names = classNamesOf(d), cls = names[n - 1], i = viewer.selected;
  if (!cls) return;
  if (i === null) {
    toast("Select a box first: click it, Tab to it or use the arrow keys.");
    return;
  }
  const box = d.boxes[i];
  if (box.class_name === cls) {
    toast(`Box ${i + 1} is already ${cls}.`);
    return;
  }
  const updated = await act("relabel", { box_id: box.id, class_name: cls });
  if (!updated) return;
  const j = updated.boxes.findIndex((b) => b.id === box.id);
  render(false);
  viewer.select(j >= 0 ? j : i, { focus: $("viewport").contains(document.activeElement) });
  toast(`Box ${i + 1} relabelled ${box.class_name} → ${cls}. j: next board`, "ok");
}

async function rejectBox() {
  const d = state.detail, i = viewer.selected;
  if (i === null) {
    toast("Select a box first: click it, Tab to it or use the arrow keys.");
    return;
  }
  const box = d.boxes[i];
  if (box.rejected) {
    toast(`Box ${i + 1} is rejected already.`);
    return;
  }
  const updated = await act("reject", { box_id: box.id });
  if (!updated) return;
  render(false);
  viewer.select(i);
  toast(`Box ${i + 1} (${box.class_name}) rejected; verdict ${updated.verdict}.`, "ok");
}

async function addBox(xyxy) {
  setDrawing(false);
  const cls = $("relabel-class").value;
  const updated = await act("add_box", { xyxy, class_name: cls });
  if (!updated) return;
  render(false);
  viewer.select(updated.boxes.length - 1);
  toast(`Added a ${cls} box.`, "ok");
}

// My newest action on a board that an undo would take back (the server's rule: the newest
// action not undone yet, by this token), or null.
function undoable(d) {
  const audit = d.audit || [];
  const undone = new Set(audit.filter((a) => a.action === "undo" && a.after && a.after.undid != null)
    .map((a) => a.after.undid));
  const target = [...audit].reverse().find((a) => !["comment", "undo"].includes(a.action) && !undone.has(a.id));
  if (!target || target.action === "reopen") return null;
  const mine = target.actor_id && state.meId ? target.actor_id === state.meId : target.actor === state.me;
  return mine ? target : null;
}

async function undo() {
  if (!undoable(state.detail) && state.lastActed && state.lastActed !== state.detail.id) {
    const i = state.queue.findIndex((it) => it.id === state.lastActed);
    if (i >= 0) await show(i); // back to the board I reviewed last (c and r moved on)
  }
  const target = undoable(state.detail);
  if (!target) {
    toast("Nothing of yours to undo on this board.");
    return;
  }
  const updated = await act("undo");
  if (!updated) return;
  render(false);
  toast(`Undone: ${target.action} on ${updated.part_id}; now ${updated.verdict}, ${statusOf(updated)}.`, "ok");
}

async function reopen() {
  if (statusOf(state.detail) === "pending") {
    toast("This board is pending already.");
    return;
  }
  const updated = await act("reopen");
  if (!updated) return;
  render(false);
  toast(`Reopened ${updated.part_id}: pending, the model's verdict ${updated.verdict}.`, "ok");
}

// Zoom keys and buttons: centred on the selected box, else on the middle of the view.
function zoom(factor) {
  if (viewer.selected !== null) viewer.zoomOn(viewer.selected, factor);
  else viewer.zoomBy(factor);
}

function setDrawing(on) {
  viewer.setDrawMode(on);
  $("draw-box").setAttribute("aria-pressed", String(on));
  if (on) toast("Drag on the image to draw the missed box (Esc cancels).");
}

function toggleBoxes() {
  $("toggle-boxes").setAttribute("aria-pressed", String(viewer.toggleBoxes()));
}

const ACTIONS = {
  j: () => show(state.index + 1), k: () => show(state.index - 1), c: () => decide("confirm"),
  r: () => decide("reject"), x: rejectBox, b: toggleBoxes, a: () => setDrawing(!viewer.drawing), d: () => pair.toggle(),
  "?": () => help.toggle(),
  u: undo, o: reopen, "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8),
  0: () => viewer.fit(), m: () => $("comment").focus(), q: () => location.assign("/" + query),
  ArrowRight: () => viewer.selectStep(1), ArrowDown: () => viewer.selectStep(1),
  ArrowLeft: () => viewer.selectStep(-1), ArrowUp: () => viewer.selectStep(-1),
  Escape: () => { setDrawing(false); viewer.select(null); },
};

function onKey(e) {
  if (help.isOpen()) {
    if (e.key === "Escape" || e.key === "?") { e.preventDefault(); help.close(); }
    return;
  }
  if (isTyping(e)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || !state.detail) return;
  const fn = /^[1-9]$/.test(e.key) ? () => relabel(Number(e.key)) : ACTIONS[e.key];
  if (!fn) return;
  e.preventDefault();
  if (e.repeat && "crxuoj123456789k".includes(e.key)) return; // a held key must not review many boards
  Promise.resolve(fn()).catch((err) => toast(err.message || String(err), "error"));
}

function bind() {
  $("back").href = "/" + query;
  const safely = (fn) => () => Promise.resolve(fn()).catch((err) => toast(err.message || String(err), "error"));
  $("prev").addEventListener("click", safely(() => show(state.index - 1)));
  $("next").addEventListener("click", safely(() => show(state.index + 1)));
  $("confirm").addEventListener("click", safely(() => decide("confirm")));
  $("reject").addEventListener("click", safely(() => decide("reject")));
  $("relabel").addEventListener("click", () => {
    const n = classNamesOf(state.detail).indexOf($("relabel-class").value) + 1;
    if (n > 0) relabel(n);
  });
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("undo").addEventListener("click", safely(undo));
  $("reopen").addEventListener("click", safely(reopen));
  $("zoom-fit").addEventListener("click", () => viewer.fit());
  $("toggle-boxes").addEventListener("click", toggleBoxes);
  $("draw-box").addEventListener("click", () => setDrawing(!viewer.drawing));
  $("help-button").addEventListener("click", () => help.toggle());
  $("comment-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!$("comment").value.trim()) return;
    if (await act("comment")) { render(false); toast("Comment added.", "ok"); }
  });
  $("comment").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("comment-form").requestSubmit();
  });
  document.addEventListener("keydown", onKey);
  const verdict = { review: "fail + uncertain", any: "" }[filters.verdict] ?? filters.verdict;
  const parts = [filters.review_status, verdict, filters.defect_class, filters.line, filters.camera,
                 filters.part && `part ~ ${filters.part}`].filter((v) => v && v !== "all");
  $("filter-summary").textContent = `queue: ${parts.join(" · ") || "all"} · ${filters.sort} order`;
}

async function main() {
  const me = await shell("queue");
  state.me = me.name;
  state.meId = me.token_id || null;
  bind();
  const id = decodeURIComponent(location.pathname.split("/").pop());
  try {
    const [d] = await Promise.all([detailOf(id, true), loadMore()]);
    let i = state.queue.findIndex((it) => it.id === id);
    if (i < 0) {
      state.queue.unshift({ id: d.id, review_status: statusOf(d), verdict: d.verdict });
      i = 0;
    }
    state.index = i;
    state.detail = d;
    render(true);
    prefetch(i + 1);
  } catch (e) {
    showError("review-error", e);
  }
}

main();
