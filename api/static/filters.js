// Queue filters <-> URL query (shareable, back/forward) <-> API parameters.

export const FILTER_KEYS = ["review_status", "verdict", "defect_class", "line", "camera", "part", "from", "to", "sort"];
// The default queue is what needs a human: pending boards the model failed or could not decide.
const DEFAULTS = { review_status: "pending", verdict: "review", sort: "risk" };
const VERDICTS = { review: ["fail", "uncertain"], any: [] };

// The filters in a query string; absent keys take their defaults.
export function readFilters(search = location.search) {
  const q = new URLSearchParams(search);
  const out = {};
  for (const k of FILTER_KEYS) out[k] = q.get(k) || DEFAULTS[k] || "";
  return out;
}

// Query string for the page URL: only what differs from the defaults.
export function filterQuery(filters) {
  const q = new URLSearchParams();
  for (const k of FILTER_KEYS) {
    const v = filters[k];
    if (v && v !== (DEFAULTS[k] || "")) q.set(k, v);
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// The verdicts the filters select ([]: any).
export function verdictsOf(filters) {
  return VERDICTS[filters.verdict] || (filters.verdict ? [filters.verdict] : []);
}

// Parameters of GET /api/v1/inspections (and /count, without sort).
export function apiParams(filters) {
  const p = {};
  for (const k of FILTER_KEYS) {
    if (k === "verdict") p.verdict = verdictsOf(filters);
    else if (filters[k] && !(k === "review_status" && filters[k] === "all")) p[k] = filters[k];
  }
  return p;
}

// <input type=datetime-local> value (local time) <-> ISO instant in the URL.
export function localToIso(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function isoToLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
