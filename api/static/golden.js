// The golden board beside the tested one: the Viewer's mirror (same zoom and pan), the
// difference |board − golden| overlaid on the tested board on demand (computed here, in a
// canvas, from the two same-origin images), and a line naming the recipe, the golden
// image (sha256) and the alignment score. A board that could not be aligned shows its
// golden with a note and no difference: its raw crop is not in the golden's pixels.
import { el, toast } from "/static/ui.js";

export const DIFF_COLOR = [255, 0, 255]; // magenta: far from every class colour, visible on copper and laminate
const LOW = 24, HIGH = 72; // grey-level difference: under LOW nothing (JPEG noise), from HIGH fully opaque

async function pixels(src, w, h) {
  const img = new Image();
  img.src = src;
  await img.decode();
  const ctx = new OffscreenCanvas(w, h).getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0, w, h);
  return ctx.getImageData(0, 0, w, h).data;
}

// |board − golden| in grey levels as a magenta layer: transparent where they match.
export async function differenceCanvas(boardSrc, goldenSrc, w, h) {
  const [a, b] = await Promise.all([pixels(boardSrc, w, h), pixels(goldenSrc, w, h)]);
  const canvas = el("canvas", { class: "diff", width: w, height: h, "aria-hidden": "true" });
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(w, h);
  const [r, g, bl] = DIFF_COLOR;
  for (let i = 0; i < a.length; i += 4) {
    const d = Math.abs(0.299 * (a[i] - b[i]) + 0.587 * (a[i + 1] - b[i + 1]) + 0.114 * (a[i + 2] - b[i + 2]));
    if (d < LOW) continue;
    out.data[i] = r; out.data[i + 1] = g; out.data[i + 2] = bl;
    out.data[i + 3] = Math.round(140 + 115 * Math.min(1, (d - LOW) / (HIGH - LOW)));
  }
  ctx.putImageData(out, 0, 0);
  return canvas;
}

const fmtScore = (s) => (s === null || s === undefined ? "n/a" : Number(s).toFixed(3));

function copySha(sha) {
  const done = () => toast("Golden sha256 copied.", "ok");
  if (navigator.clipboard) navigator.clipboard.writeText(sha).then(done, () => toast(sha));
  else toast(sha);
}

export class GoldenPair {
  // ids: panes (both panes), pane (the golden's), viewport, info, button, boardCaption, goldenCaption
  constructor(viewer, ids) {
    const $ = (id) => document.getElementById(id);
    this.viewer = viewer;
    this.dom = Object.fromEntries(Object.entries(ids).map(([k, id]) => [k, $(id)]));
    this.wanted = false; // the difference toggle, kept from board to board
    this.detail = null;
    this.token = 0;
    this.cached = null; // { key: the two images, canvas }
    viewer.mirror(this.dom.viewport);
    this.dom.button.addEventListener("click", () => this.toggle());
    viewer.mirrorView.img.addEventListener("error", () => { // e.g. a TIFF golden, which browsers cannot show
      if (!this.paired) return;
      this.dom.info.append(el("strong", { class: "unaligned-note" }, "the golden image cannot be shown"));
    });
  }

  get paired() { return !!(this.detail && this.detail.golden_url); }
  // What the browser loads: TIFF goldens come as PNG (the API converts them; others come as stored).
  get src() { return this.paired ? `${this.detail.golden_url}?display=true` : null; }
  get aligned() { return this.paired && this.detail.golden_aligned !== false; }

  // A new board: show its golden (or none: the page as without goldens).
  show(d) {
    this.detail = d;
    const { panes, pane, info, button } = this.dom;
    panes.classList.toggle("paired", this.paired);
    pane.hidden = info.hidden = button.hidden = !this.paired;
    this.viewer.showMirror(this.src, `golden board of recipe ${d.recipe || "?"}`,
                           !this.aligned);
    panes.classList.toggle("unaligned", this.paired && !this.aligned);
    if (this.paired) this.describe(d);
    button.disabled = !this.aligned;
    this.apply();
  }

  describe(d) {
    const { info, boardCaption, goldenCaption } = this.dom;
    const sha = d.golden_sha256;
    const code = el("code", { class: "sha", title: `golden sha256 ${sha}`, id: "golden-sha" }, sha);
    const copy = el("button", { type: "button", class: "copy", "aria-label": "Copy the golden sha256",
                                onclick: () => copySha(sha) }, "Copy");
    const parts = [el("span", {}, "recipe ", el("strong", { id: "golden-recipe" }, d.recipe || "?")),
      el("span", { class: "sha-wrap" }, "golden ", code, copy),
      el("span", { id: "alignment-score" }, `alignment ${fmtScore(d.alignment_score)}`)];
    if (!this.aligned) {
      parts.push(el("strong", { class: "unaligned-note", id: "unaligned-note", role: "note" },
        `board could not be aligned to its golden (score ${fmtScore(d.alignment_score)})`));
    }
    info.replaceChildren(...parts, el("span", { class: "diff-key", id: "diff-key" },
      el("span", { class: "swatch diff-swatch" }), "difference from the golden"));
    boardCaption.textContent = this.aligned ? "Tested board, registered to the golden"
      : "Tested board, raw crop (not aligned)";
    goldenCaption.textContent = `Golden · ${d.recipe || "?"}`;
  }

  toggle() {
    if (!this.paired) {
      toast("This board has no golden image.");
      return;
    }
    if (!this.aligned) {
      toast("The board could not be aligned to its golden: there is no difference to show.");
      return;
    }
    this.wanted = !this.wanted;
    this.apply();
  }

  // Show (computing it once per board) or hide the difference layer.
  async apply() {
    const on = this.wanted && this.aligned;
    this.dom.button.setAttribute("aria-pressed", String(on));
    this.dom.info.classList.toggle("diff-on", on);
    const token = ++this.token, d = this.detail;
    const key = on ? `${d.evidence_url} ${d.golden_url}` : null;
    if (!on || this.cached?.key !== key) this.viewer.setLayer(null);
    if (!on) return;
    if (this.cached?.key === key) {
      this.viewer.setLayer(this.cached.canvas);
      return;
    }
    const crop = d.crop || { width: 640, height: 640 };
    try {
      const canvas = await differenceCanvas(d.evidence_url, this.src, crop.width, crop.height);
      if (token !== this.token) return;
      this.cached = { key, canvas };
      this.viewer.setLayer(canvas);
    } catch (e) {
      if (token === this.token) toast(`The difference could not be computed: ${e.message || e}`, "error");
    }
  }
}
