// The JSON API as the pages use it: the session cookie travels by itself, unsafe requests
// echo the CSRF cookie in X-CSRF-Token, and a 401 sends the user to /signin?next=<this page>.

export const CSRF_COOKIE = "twinspect_csrf";
const SAFE = new Set(["GET", "HEAD"]);

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

export function signInUrl() {
  return "/signin?next=" + encodeURIComponent(location.pathname + location.search + location.hash);
}

function detailOf(body, status) {
  if (body && typeof body === "object" && body.detail !== undefined) {
    const d = body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e.loc ? e.loc.join(".") + ": " : "") + (e.msg || "")).join("; ");
    return JSON.stringify(d);
  }
  return typeof body === "string" && body ? body.slice(0, 200) : `HTTP ${status}`;
}

// Set by sign-out, which navigates by itself: from then on a 401 (the session is gone, as asked)
// from the page's polling must not race it with a redirect to /signin?next=<this page>.
let signingOut = false;

// fetch JSON; redirect: false keeps a 401 as an ApiError (the sign-in page uses it).
export async function request(method, url, body, { redirect = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method)) headers["X-CSRF-Token"] = cookie(CSRF_COOKIE);
  const r = await fetch(url, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (r.status === 401 && redirect) {
    if (!signingOut) location.assign(signInUrl());
    return new Promise(() => {}); // the page is leaving: nothing after this call should run

  }
  if (!r.ok) throw new ApiError(r.status, detailOf(data, r.status), data);
  return data;
}

export const getJSON = (url, opts) => request("GET", url, undefined, opts);
export const postJSON = (url, body, opts) => request("POST", url, body, opts);

// Build "path?query" from an object, leaving out empty values (an array repeats its key).
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x))); // repeated: verdict=fail&verdict=uncertain
    else if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export const session = () => getJSON("/api/v1/session");
export const signIn = (token) => postJSON("/api/v1/session", { token }, { redirect: false });
export function signOut() {
  signingOut = true;
  return request("DELETE", "/api/v1/session", undefined, { redirect: false });
}
