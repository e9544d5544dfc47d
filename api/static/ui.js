// Shared page helpers: the top navigation (who is signed in, sign out), element building,
// formatting, class colours, toasts.

import { session, signOut } from "/static/api.js";

export const DEFAULT_CLASSES = ["open", "short", "mousebite", "spur", "copper", "pin-hole"];
const PAGES = [["queue", "/", "Review queue"], ["live", "/live", "Live line"],
               ["dashboard", "/dashboard", "Dashboard"], ["models", "/models", "Models"]];
// Okabe-Ito colours (distinguishable with colour-blindness), one per DeepPCB class.
const PALETTE = ["#e69f00", "#56b4e9", "#009e73", "#f0e442", "#cc79a7", "#ff5a36", "#b3de69", "#bc80bd"];

// el("a", {href: "/", class: "x", onclick: fn}, "text", child, ...)
export function el(tag, attrs = {}, ...children) {
  const ns = attrs.ns;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "ns" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function classColor(name, classes = DEFAULT_CLASSES) {
  let i = classes.indexOf(name);
  if (i < 0) i = [...name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) >>> 0, 7);
  return PALETTE[i % PALETTE.length];
}

export function fmtTime(iso, withDate = true) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (withDate) Object.assign(opts, { year: "numeric", month: "2-digit", day: "2-digit" });
  return d.toLocaleString("sv-SE", opts); // 2026-11-21 16:00:00, sortable and unambiguous
}

export const fmtPct = (v, digits = 1) => (v === null || v === undefined ? "–" : (100 * v).toFixed(digits) + " %");
export const fmtConf = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));

export function badge(kind, text = kind, title = undefined) {
  return el("span", { class: `badge ${kind}`, title }, text);
}

export function isTyping(event) {
  const t = event.target;
  return t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
}

let toastTimer = 0;
export function toast(message, kind = "info") {
  let box = document.getElementById("toast");
  if (!box) {
    box = el("div", { id: "toast", class: "toast", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  box.textContent = message;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), kind === "error" ? 6000 : 2500);
}

function renderNav(active, me) {
  const header = document.getElementById("top");
  const links = PAGES.map(([key, href, label]) =>
    el("a", { href, class: key === active ? "active" : undefined, "aria-current": key === active ? "page" : undefined },
       label));
  const out = el("button", { type: "button", class: "link", id: "signout" }, "Sign out");
  out.addEventListener("click", async () => {
    try { await signOut(); } finally { location.assign("/signin"); }
  });
  header.replaceChildren(
    el("a", { href: "/", class: "brand", "aria-label": "twinspect home" }, "twinspect"),
    el("nav", { "aria-label": "Pages" }, links),
    el("div", { class: "who" }, el("span", { id: "whoami", title: "signed in" }, me.name),
       badge("role", me.role), out),
  );
}

// Every page but /signin: check the session (401 redirects to /signin), draw the top nav.
export async function shell(active) {
  const me = await session();
  renderNav(active, me);
  document.body.classList.add("ready");
  return me;
}

export function showError(where, error) {
  const box = typeof where === "string" ? document.getElementById(where) : where;
  box.replaceChildren(el("p", { class: "error", role: "alert" }, String(error.message || error)));
}

// A modal list of keyboard keys: rows = [[keys, what], ...]; returns {toggle, close, isOpen}.
export function keysDialog(rows) {
  let backdrop = null, before = null;
  const close = () => {
    if (!backdrop) return;
    backdrop.remove();
    backdrop = null;
    before?.focus?.();
  };
  const open = () => {
    before = document.activeElement;
    const closeBtn = el("button", { type: "button", onclick: close }, "Close");
    const table = el("table", {}, el("tbody", {}, rows.map(([keys, what]) =>
      el("tr", {}, el("td", {}, keys.split(" ").map((k) => [el("kbd", {}, k), " "])), el("td", {}, what)))));
    backdrop = el("div", { class: "dialog-backdrop", onclick: (e) => { if (e.target === backdrop) close(); } },
      el("div", { class: "dialog", id: "help", role: "dialog", "aria-modal": "true", "aria-labelledby": "help-title" },
        el("h2", { id: "help-title" }, "Keyboard"), table, el("p", {}, closeBtn)));
    document.body.append(backdrop);
    closeBtn.focus();
  };
  return { toggle: () => (backdrop ? close() : open()), close, isOpen: () => !!backdrop };
}
