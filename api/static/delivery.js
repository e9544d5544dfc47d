// Models page, model delivery: each line's versions with their state, the shadow report against QA's
// reviewed verdicts (boards linked to their review), the history; promote / shadow / rollback for ml.
// The part model (the one that finds the boards) has its own section: promote (gated on its validation
// split and export parity) and roll back; no shadow runs (QA reviews defects, not board boxes).
import { getJSON, postJSON } from "/static/api.js";
import { badge, el, fmtPct, fmtTime, showError, toast } from "/static/ui.js";

const num = (v) => (typeof v === "number" ? v.toFixed(3) : v ?? "–");
const STATE = { active: "pass", shadow: "warn", registered: "ok", retired: "pending" };
const reviewLink = (id) => el("a", { href: `/review/${id}` }, id.slice(0, 8));

function gateTable(gate) {
  return el("table", { class: "metrics" }, el("caption", {}, gate.passed ? "The gate passed" : "The gate refused"),
    el("thead", {}, el("tr", {}, ["metric", "active", "candidate", "rule", ""].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, gate.rows.map((r) => el("tr", {}, el("th", { scope: "row" }, r.metric), el("td", {}, num(r.active)),
      el("td", {}, num(r.candidate)), el("td", {}, r.rule), el("td", {}, r.ok ? "ok" : badge("fail", "failed"))))),
    el("tfoot", {}, (gate.notes || []).map((n) => el("tr", {}, el("td", { colspan: 5, class: "muted" }, n)))));
}

async function act(line, what, body, out, refresh) {
  out.replaceChildren(el("p", { class: "muted" }, `${what}: working (a promotion runs the gate: minutes)…`));
  try {
    const r = await postJSON(`/api/v1/models/lines/${encodeURIComponent(line)}/${what}`, body);
    toast(`${what}: ${r.change ? `${r.change.action} ${r.change.model}` : "done"}`, "ok");
    out.replaceChildren(r.gate ? gateTable(r.gate) : "");
    await refresh();
  } catch (e) {
    out.replaceChildren(el("p", { class: "error", role: "alert" }, e.message), e.body?.gate ? gateTable(e.body.gate) : "");
  }
}

function versionsTable(info, canChange, run, role) {
  const ask = (label) => window.prompt(`${label}: why?`, "") || undefined;
  return el("table", { class: "metrics" }, el("caption", {}, `${role === "part" ? "Part model versions" : "Versions"} on ${info.line_id}`),
    el("thead", {}, el("tr", {}, ["version", "state", "input", "mAP50", "DeepPCB F", "created", ""]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, info.versions.map((v) => {
      const ref = `${v.name}:${v.version}`;
      const buttons = canChange && v.state !== "active" ? [
        el("button", { type: "button", class: "primary", onclick: () => run("promote", { model: ref, reason: ask(`promote ${ref}`) }) }, "Promote"),
        role === "defect" && v.state !== "shadow" ? el("button", { type: "button", onclick: () => run("shadow", { model: ref, reason: ask(`shadow ${ref}`) }) }, "Shadow") : null,
      ] : [];
      return el("tr", {}, el("th", { scope: "row", class: "mono" }, ref), el("td", {}, badge(STATE[v.state] || "ok", v.state)),
        el("td", {}, v.input), el("td", {}, num(v.val_metrics.map50)), el("td", {}, num(v.val_metrics.deeppcb_fscore)),
        el("td", {}, fmtTime(v.created_at)), el("td", {}, buttons));
    })));
}

function reportView(rep) {
  const a = rep.models.active, s = rep.models.shadow;
  const row = (label, f) => el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, f(a)), el("td", {}, f(s)));
  const classes = [...new Set([...Object.keys(a.class_recall), ...Object.keys(s.class_recall)])].sort();
  const ids = (list) => (list.length ? el("span", {}, list.slice(0, 12).map((id) => [reviewLink(id), " "])) : "–");
  return el("section", { "aria-label": "shadow report" },
    el("h3", {}, `Shadow report: ${rep.shadow} beside ${rep.active ?? "none"}`),
    el("p", {}, `${rep.boards} boards seen by both, ${rep.reviewed} reviewed by QA, ${rep.disagreements} disagreements`,
      rep.run ? ` · shadow run ${rep.run.run}, dropped ${rep.run.dropped} under load` : ""),
    el("table", { class: "metrics" }, el("thead", {}, el("tr", {}, ["vs reviewed truth", "active", "shadow"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, row("missed defects", (m) => m.missed), row("false rejects", (m) => m.false_rejects),
        row("miss rate", (m) => fmtPct(m.miss_rate)), row("false-reject rate", (m) => fmtPct(m.false_reject_rate)),
        row("agreement with review", (m) => fmtPct(m.agreement_with_review)),
        ...classes.map((c) => row(`recall ${c}`, (m) => fmtPct(m.class_recall[c]))),
        row("missed boards", (m) => ids(m.missed_ids)), row("falsely rejected boards", (m) => ids(m.false_reject_ids)))),
    rep.disagreeing.length ? el("p", {}, "Boards where they disagree: ",
      rep.disagreeing.slice(0, 30).map((d) => [reviewLink(d.inspection_id), ` (${d.active}/${d.shadow}) `])) : null);
}

function watchView(w) {
  if (!w) return null;
  if (!w.done) return el("p", { class: "muted" }, `Watching ${w.model} since ${fmtTime(w.since)}: ${w.boards} of ${w.needed} boards`);
  if (!w.alerts.length) return el("p", {}, `Watch after ${w.model}: no significant change over ${w.boards} boards (${w.test})`);
  return el("div", { class: "error", role: "alert" }, el("strong", {}, `model.alert: ${w.model} against ${w.previous}`),
    el("ul", {}, w.alerts.map((a) => el("li", {}, `${a.metric}: ${fmtPct(a.previous_rate)} -> ${fmtPct(a.rate)} over ${a.boards} boards (p = ${a.p_value.toExponential(2)})`))),
    "Roll back below if this is the new model's doing.");
}

async function lineView(line, me, box, role) {
  const canChange = me.role === "ml" || me.role === "admin";
  const out = el("div", { "aria-live": "polite" });
  const refresh = async () => {
    const info = await getJSON(`/api/v1/models/lines/${encodeURIComponent(line)}?role=${role}`);
    const run = (what, body) => act(line, what, body, out, refresh);
    if (role === "part") return partView(line, info, canChange, run, out, box);
    let report = el("p", { class: "muted" }, "No shadow run on this line yet.");
    if (info.shadow || info.history.some((c) => c.action === "shadow_started")) {
      report = reportView(await getJSON(`/api/v1/models/lines/${encodeURIComponent(line)}/shadow-report`));
    }
    const order = (await getJSON(`/api/v1/models/lines/${encodeURIComponent(line)}/review-order?limit=10`)).items;
    const next = order.length ? el("section", { "aria-label": "review next" },
      el("h3", {}, "Review next (what teaches the next model most)"),
      el("ol", {}, order.map((b) => el("li", {}, reviewLink(b.inspection_id), ` ${b.verdict}, score ${b.score.toFixed(2)}: ${b.why.join("; ")}`)))) : null;
    const last = info.history.find((c) => c.action === "activated" || c.action === "rolled_back");
    box.replaceChildren(el("article", { class: "card" },
      el("h2", {}, `Line ${line}: serving ${info.served ?? info.active ?? "–"}`, info.shadow ? ` · shadow ${info.shadow}` : ""),
      versionsTable(info, canChange, run, role),
      canChange ? el("p", {}, el("button", { type: "button", class: "bad", onclick: () => run("rollback", { reason: window.prompt("rollback: why?", "") || "rollback" }) },
        "Roll back"), last ? ` last change: ${last.action} ${last.model} by ${last.who} ${fmtTime(last.at)}` : "") : null,
      watchView(info.watch), out, report, next,
      el("h3", {}, "History"), el("ul", {}, info.history.slice(0, 20).map((c) => el("li", {},
        `${fmtTime(c.at)} ${c.action} ${c.model} (from ${c.previous ?? "–"}) by ${c.who}${c.forced ? " FORCED" : ""}: ${c.why}`)))));
  };
  await refresh();
}

function partView(line, info, canChange, run, out, box) {
  const last = info.history.find((c) => c.action === "activated" || c.action === "rolled_back");
  box.replaceChildren(el("article", { class: "card", "aria-label": "part model delivery" },
    el("h2", {}, `Line ${line}, part model: serving ${info.served ?? info.active ?? "–"}`),
    versionsTable(info, canChange, run, "part"),
    canChange ? el("p", {}, el("button", { type: "button", class: "bad", onclick: () => run("rollback", { role: "part", reason: window.prompt("rollback: why?", "") || "rollback" }) },
      "Roll back the part model"), last ? ` last change: ${last.action} ${last.model} by ${last.who} ${fmtTime(last.at)}` : "") : null,
    out, el("h3", {}, "History"), el("ul", {}, info.history.slice(0, 10).map((c) => el("li", {},
      `${fmtTime(c.at)} ${c.action} ${c.model} (from ${c.previous ?? "–"}) by ${c.who}${c.forced ? " FORCED" : ""}: ${c.why}`)))));
}

export async function showDelivery(me) {
  const box = document.getElementById("delivery");
  try {
    const { lines, roles } = await getJSON("/api/v1/models/lines");
    const views = lines.flatMap((line) => (roles[line] || ["defect"]).map((role) => [line, role, el("div")]));
    box.replaceChildren(...views.map(([, , div]) => div));
    await Promise.all(views.map(([line, role, div]) => lineView(line, me, div, role)));
  } catch (e) {
    showError(box, e);
  }
}
