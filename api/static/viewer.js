// The board image with its boxes: an SVG overlay in crop pixel coordinates, zoomed and
// panned together with the image (wheel, buttons, keys; drag to pan), boxes selectable by
// click, Tab or arrows, and a draw mode for adding a missed box. An optional mirror (a
// second viewport, e.g. the golden board) shows another image in the same pixels: it
// follows every zoom and pan, and wheel or drag on it move both.
import { classColor, el } from "/static/ui.js";

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}, ...kids) => el(tag, { ns: SVG, ...attrs }, ...kids);
const MAX_SCALE = 24;

export class Viewer {
  constructor(viewport, { onSelect = () => {}, onDraw = () => {}, onZoom = () => {} } = {}) {
    this.viewport = viewport;
    this.onSelect = onSelect;
    this.onDraw = onDraw;
    this.onZoom = onZoom;
    this.img = el("img", { alt: "", draggable: "false" });
    this.overlay = svg("svg", { class: "overlay", "aria-label": "defect boxes" });
    this.stage = el("div", { class: "stage" }, this.img, this.overlay);
    viewport.replaceChildren(this.stage);
    this.w = 1; this.h = 1; this.s = 1; this.tx = 0; this.ty = 0; this.fitted = true;
    this.boxes = []; this.classes = []; this.selected = null; this.showBoxes = true; this.drawing = false;
    this.mirrorView = null; this.layer = null;
    this._bind(viewport, true);
    new ResizeObserver(() => { if (this.fitted) this.fit(); }).observe(viewport);
  }

  // A second viewport that shows `src` (set with showMirror) in the same crop pixels, boxes drawn faintly.
  mirror(viewport) {
    const img = el("img", { alt: "", draggable: "false" });
    const ghosts = svg("svg", { class: "overlay ghosts", "aria-hidden": "true" });
    const stage = el("div", { class: "stage" }, img, ghosts);
    viewport.replaceChildren(stage);
    this.mirrorView = { viewport, stage, img, ghosts };
    this._bind(viewport, false);
    this._size(this.mirrorView);
    this.render();
  }

  // The mirror's image (null: none); contain: keep its own aspect ratio (an image not in crop pixels).
  showMirror(src, alt = "", contain = false) {
    const m = this.mirrorView;
    if (!m) return;
    if (!src) m.img.removeAttribute("src");
    else if (m.img.getAttribute("src") !== src) m.img.src = src;
    m.img.alt = alt;
    m.img.classList.toggle("contain", contain);
  }

  // A canvas (crop size) drawn over the image and under the boxes, or null to remove it.
  setLayer(canvas) {
    this.layer?.remove();
    this.layer = canvas;
    if (canvas) this.stage.insertBefore(canvas, this.overlay);
  }

  show(src, width, height, boxes, classes, alt) {
    this.img.alt = alt || "";
    if (this.img.getAttribute("src") !== src) this.img.src = src;
    this.w = width; this.h = height;
    this._size(this);
    if (this.mirrorView) this._size(this.mirrorView);
    this.selected = null;
    this.fit();
    this.setBoxes(boxes, classes);
  }

  _size({ img, stage, overlay, ghosts }) {
    img.width = this.w; img.height = this.h;
    for (const svgEl of [overlay, ghosts].filter(Boolean)) {
      svgEl.setAttribute("width", this.w);
      svgEl.setAttribute("height", this.h);
      svgEl.setAttribute("viewBox", `0 0 ${this.w} ${this.h}`);
    }
    stage.style.width = this.w + "px";
    stage.style.height = this.h + "px";
  }

  setBoxes(boxes, classes = this.classes) {
    this.boxes = boxes;
    this.classes = classes;
    if (this.selected !== null && this.selected >= boxes.length) this.selected = null;
    this.render();
  }

  // Build the boxes' elements (once per box list); zoom and selection only update attributes.
  render() {
    this.items = this.boxes.map((b, i) => {
      const [x1, y1, x2, y2] = b.xyxy;
      const color = classColor(b.class_name, this.classes);
      const geo = { x: x1, y: y1, width: Math.max(1, x2 - x1), height: Math.max(1, y2 - y1) };
      const conf = b.source === "review" ? "(QA)" : Number(b.confidence).toFixed(2);
      const text = `${b.class_name} ${conf}`;
      const rect = svg("rect", {
        class: `box${b.rejected ? " rejected" : ""}`, ...geo, stroke: color, tabindex: 0, role: "button",
        "data-index": i, "aria-label": `box ${i + 1}: ${b.class_name}, confidence ${conf}${b.rejected ? ", rejected" : ""}`,
      });
      rect.addEventListener("focus", () => this.select(i));
      const tagRect = svg("rect", { fill: color, opacity: b.rejected ? 0.55 : 0.92 });
      const tagText = svg("text", { "font-weight": 600, fill: "#111" }, text);
      const halo = svg("rect", { class: "halo", ...geo });
      const g = svg("g", { class: "b" }, halo, rect, svg("g", { class: "tag" }, tagRect, tagText));
      return { g, rect, halo, tagRect, tagText, text, b };
    });
    this.overlay.replaceChildren(...this.items.map((it) => it.g));
    this.overlay.classList.toggle("hidden-boxes", !this.showBoxes);
    this.renderGhosts();
    for (const it of this.items) { // the label's width at 13 px, measured once (estimated while hidden)
      it.tagText.setAttribute("font-size", 13);
      it.width13 = it.tagText.getComputedTextLength() || it.text.length * 8.2;
    }
    this.labels();
    this.mark();
  }

  // The boxes, faint and unlabelled, on the mirror.
  renderGhosts() {
    const m = this.mirrorView;
    if (!m) return;
    m.ghosts.replaceChildren(...this.boxes.filter((b) => !b.rejected).map((b) => {
      const [x1, y1, x2, y2] = b.xyxy;
      return svg("g", { class: "b" }, svg("rect", { class: "ghost", x: x1, y: y1, width: Math.max(1, x2 - x1),
        height: Math.max(1, y2 - y1), stroke: classColor(b.class_name, this.classes) }));
    }));
    m.ghosts.classList.toggle("hidden-boxes", !this.showBoxes);
  }

  // Labels keep their size on screen at any zoom: 1 screen pixel = 1/s crop pixels.
  labels() {
    const k = 1 / this.s;
    for (const it of this.items || []) {
      const [x1, y1] = it.b.xyxy;
      const th = 18 * k, ty = y1 - th >= 0 ? y1 - th : y1;
      const tw = (it.width13 + 8) * k;
      Object.entries({ x: x1, y: ty, width: tw, height: th }).forEach(([a, v]) => it.tagRect.setAttribute(a, v));
      Object.entries({ x: x1 + 4 * k, y: ty + 13.5 * k, "font-size": 13 * k })
        .forEach(([a, v]) => it.tagText.setAttribute(a, v));
    }
  }

  mark() {
    (this.items || []).forEach((it, i) => {
      const sel = i === this.selected;
      it.rect.classList.toggle("selected", sel);
      it.halo.classList.toggle("selected", sel);
      it.rect.setAttribute("aria-pressed", sel ? "true" : "false");
    });
  }

  select(i, { focus = false } = {}) {
    const changed = i !== this.selected;
    this.selected = i;
    this.mark();
    if (i !== null && focus) this.items[i]?.rect.focus({ preventScroll: true });
    if (changed) this.onSelect(i);
  }

  selectStep(step) {
    const n = this.boxes.length;
    if (!n) return;
    const i = this.selected === null ? (step > 0 ? 0 : n - 1) : (this.selected + step + n) % n;
    this.select(i, { focus: this.viewport.contains(document.activeElement) });
    this.reveal(i);
  }

  // Pan so the box is in view when zoomed in.
  reveal(i) {
    const [x1, y1, x2, y2] = this.boxes[i].xyxy;
    const vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    const sx1 = x1 * this.s + this.tx, sy1 = y1 * this.s + this.ty, sx2 = x2 * this.s + this.tx, sy2 = y2 * this.s + this.ty;
    if (sx1 >= 0 && sy1 >= 0 && sx2 <= vw && sy2 <= vh) return;
    this.tx = vw / 2 - ((x1 + x2) / 2) * this.s;
    this.ty = vh / 2 - ((y1 + y2) / 2) * this.s;
    this.fitted = false;
    this.apply();
  }

  toggleBoxes() {
    this.showBoxes = !this.showBoxes;
    this.overlay.classList.toggle("hidden-boxes", !this.showBoxes);
    this.mirrorView?.ghosts.classList.toggle("hidden-boxes", !this.showBoxes);
    return this.showBoxes;
  }

  fitScale() {
    const vw = this.viewport.clientWidth || 1, vh = this.viewport.clientHeight || 1;
    return Math.min(vw / this.w, vh / this.h);
  }

  fit() {
    const vw = this.viewport.clientWidth, vh = this.viewport.clientHeight;
    this.s = this.fitScale();
    this.tx = (vw - this.w * this.s) / 2;
    this.ty = (vh - this.h * this.s) / 2;
    this.fitted = true;
    this.apply(true);
  }

  zoomBy(factor, cx = this.viewport.clientWidth / 2, cy = this.viewport.clientHeight / 2) {
    const min = this.fitScale() * 0.5;
    const s = Math.max(min, Math.min(MAX_SCALE, this.s * factor));
    this.tx = cx - ((cx - this.tx) * s) / this.s;
    this.ty = cy - ((cy - this.ty) * s) / this.s;
    this.s = s;
    this.fitted = false;
    this.apply(true);
  }

  // Zoom by ``factor`` with box i's centre in the middle of the viewport.
  zoomOn(i, factor) {
    const [x1, y1, x2, y2] = this.boxes[i].xyxy;
    this.s = Math.max(this.fitScale() * 0.5, Math.min(MAX_SCALE, this.s * factor));
    this.tx = this.viewport.clientWidth / 2 - ((x1 + x2) / 2) * this.s;
    this.ty = this.viewport.clientHeight / 2 - ((y1 + y2) / 2) * this.s;
    this.fitted = false;
    this.apply(true);
  }

  apply(rescaled = false) {
    const transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.s})`;
    this.stage.style.transform = transform;
    if (this.mirrorView) this.mirrorView.stage.style.transform = transform;
    if (rescaled) {
      this.labels();
      this.onZoom(this.s);
    }
  }

  setDrawMode(on) {
    this.drawing = on;
    this.viewport.classList.toggle("drawing", on);
  }

  toImage(event) {
    const r = this.viewport.getBoundingClientRect();
    const x = (event.clientX - r.left - this.tx) / this.s, y = (event.clientY - r.top - this.ty) / this.s;
    return [Math.max(0, Math.min(this.w, x)), Math.max(0, Math.min(this.h, y))];
  }

  // Wheel zooms at the pointer, drag pans; on the primary viewport a click selects a box and a
  // drag in draw mode draws one. The mirror has the same size, so its coordinates are the same.
  _bind(vp, primary) {
    vp.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = vp.getBoundingClientRect();
      this.zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    let drag = null;
    vp.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false, target: e.target,
               start: primary && this.drawing ? this.toImage(e) : null, temp: null };
      vp.setPointerCapture(e.pointerId);
    });
    vp.addEventListener("pointermove", (e) => { if (drag) this._dragMove(vp, drag, e); });
    vp.addEventListener("pointerup", (e) => {
      if (!drag) return;
      const d = drag;
      drag = null;
      vp.classList.remove("panning");
      if (d.start && d.moved) this._drawEnd(d, e);
      else if (!d.moved && primary) {
        const box = d.target instanceof Element ? d.target.closest("rect.box") : null;
        this.select(box ? Number(box.dataset.index) : null, { focus: !!box });
      }
    });
    vp.addEventListener("pointercancel", () => { drag = null; vp.classList.remove("panning"); });
  }

  _dragMove(vp, drag, e) {
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    drag.moved = true;
    if (drag.start) {
      const [x, y] = this.toImage(e), [x0, y0] = drag.start;
      drag.temp?.remove();
      drag.temp = svg("rect", { class: "box selected", x: Math.min(x, x0), y: Math.min(y, y0), width: Math.abs(x - x0),
                                height: Math.abs(y - y0), stroke: "#fff" });
      this.overlay.append(drag.temp);
      return;
    }
    vp.classList.add("panning");
    this.tx = drag.tx + dx;
    this.ty = drag.ty + dy;
    this.fitted = false;
    this.apply();
  }

  _drawEnd(d, e) {
    d.temp?.remove();
    const [x, y] = this.toImage(e), [x0, y0] = d.start;
    const xyxy = [Math.min(x, x0), Math.min(y, y0), Math.max(x, x0), Math.max(y, y0)].map((v) => Math.round(v));
    if (xyxy[2] - xyxy[0] >= 3 && xyxy[3] - xyxy[1] >= 3) this.onDraw(xyxy);
  }
}
