// The labelling mode: walks the queue of GET /v1/labels/queue (the reader's unlabelled studies,
// most informative for the served fracture model first, by the chosen strategy), opens each in
// the viewer and saves the reader's label with POST /v1/labels/{id}: fracture or no fracture,
// or for a chest study its boxes, starting from the model's own boxes of the study's analysis
// (drag to move, drag an edge or corner to resize, Delete to remove, drag on the image to add
// one of the detector's classes). The service keeps every label with who gave it and when.

import { $, formatTime, h, setError, show, toast } from "./dom.js";
import { PALETTE } from "./findings.js";

/**
 * Roles granted both `analyze` (the queue) and `study_write` (a label) in
 * insightray/serving/security/roles.py; tests/serving/test_web_labelling.py keeps the two in step.
 */
export const LABELLER_ROLES = ["clinician", "researcher", "admin"];

const GRAB_PX = 7;      // screen pixels within which a box edge is taken for a resize
const MIN_SIDE_PX = 2;  // image pixels: a smaller new box was a click, not a drag

/** The label in force (the newest) as one line: "fracture" / "3 boxes", who and when. */
function labelLine(item) {
  const what = item.task === "fracture"
    ? (item.value.fractured ? "fracture" : "no fracture")
    : `${item.value.boxes.length} box${item.value.boxes.length === 1 ? "" : "es"}`;
  return `${what} · ${item.user} · ${formatTime(item.created_at)}`;
}

export class LabellingPanel {
  /**
   * @param {import("./viewer.js").RadiographViewer} viewer
   * @param {import("./api.js").Api} api
   * @param {{open: (id: string) => Promise<object | null>, currentId: () => string | null}} hooks
   *   `open` shows a study in the viewer and resolves to it (null if another was opened since)
   */
  constructor(viewer, api, hooks) {
    this.viewer = viewer;
    this.api = api;
    this.hooks = hooks;
    this.items = [];        // the queue: [{study_id, score}]
    this.index = -1;        // the item open
    this.study = null;      // its study
    this.task = "fracture"; // "fracture" or "detection"
    this.boxes = [];        // [{label, box: [x1, y1, x2, y2]}] in full-image pixels
    this.selected = -1;
    this.classes = [];      // the detector's classes
    this.drag = null;
    this.labelled = 0;
    this.#bind();
  }

  #bind() {
    $("#label-start").addEventListener("click", () => this.start());
    $("#label-stop").addEventListener("click", () => this.stop());
    $("#label-skip").addEventListener("click", () => this.next());
    $("#label-yes").addEventListener("click", () => this.saveFracture(true));
    $("#label-no").addEventListener("click", () => this.saveFracture(false));
    $("#label-save-boxes").addEventListener("click", () => this.saveBoxes());
    $("#label-task").addEventListener("change", (event) => this.#setTask(event.target.value));
    const stage = $("#stage");  // capture: the box tools come before the viewer's own
    stage.addEventListener("pointerdown", (event) => this.#pointerDown(event), true);
    stage.addEventListener("pointermove", (event) => this.#pointerMove(event), true);
    stage.addEventListener("pointerup", (event) => this.#pointerUp(event), true);
    stage.addEventListener("pointercancel", (event) => this.#pointerUp(event), true);
  }

  /** Offer the mode to a role that may take the queue and save labels; hide it otherwise. */
  enable(user) {
    const allowed = LABELLER_ROLES.includes(user?.role);
    show($('[data-tab="label"]'), allowed);
    if (!allowed) this.stop();
  }

  get active() {
    return this.index >= 0 && this.index < this.items.length;
  }

  /** Box editing is on while a detection item is the study in the viewer. */
  get #editing() {
    return this.active && this.task === "detection" && this.study?.id === this.hooks.currentId();
  }

  /** Rank the queue with the chosen strategy and open its first item. */
  async start() {
    const strategy = $("#label-strategy").value;
    const n = Math.max(1, Math.min(500, Number($("#label-count").value) || 20));
    this.stop();
    setError($("#label-error"), "");
    show($("#label-busy"), true);
    $("#label-start").disabled = true;
    try {
      const body = await this.api.json("GET", `/v1/labels/queue?${new URLSearchParams({ strategy, n: String(n) })}`);
      this.items = body?.items ?? [];
      this.labelled = 0;
      $("#label-log").replaceChildren();
      $("#label-queue-model").textContent = body?.model ? `ranked by ${body.model}, ${body.strategy}` : "";
      if (!this.classes.length) await this.#loadClasses();
      if (!this.items.length) this.#finish("Nothing left to label: every study of yours has a fracture label.");
      else await this.#open(0);
    } catch (error) {
      setError($("#label-error"), `Queue: ${error.message}`);
    } finally {
      show($("#label-busy"), false);
      $("#label-start").disabled = false;
    }
  }

  /** Leave the mode; the AI boxes show again as the toolbar says. */
  stop() {
    this.items = [];
    this.index = -1;
    this.study = null;
    this.boxes = [];
    this.drag = null;
    show($("#label-item"), false);
    this.#restoreViewer();
  }

  /** The next item (the current one stays as it is). */
  async next() {
    if (this.active) await this.#open(this.index + 1);
  }

  /** Keys of the mode, while an item is open: Y / N fracture, S save boxes, J skip, Delete. */
  shortcut(key) {
    if (!this.active) return null;
    const keys = {
      y: () => this.task === "fracture" && this.saveFracture(true),
      n: () => this.task === "fracture" && this.saveFracture(false),
      s: () => this.task === "detection" && this.saveBoxes(),
      j: () => this.next(),
      Delete: () => this.#deleteBox(this.selected),
      Backspace: () => this.#deleteBox(this.selected),
    };
    return keys[key] ?? keys[key.toLowerCase()] ?? null;
  }

  async saveFracture(fractured) {
    await this.#save({ task: "fracture", fractured });
  }

  async saveBoxes() {
    const round = (v) => Math.round(v * 10) / 10;
    const boxes = this.boxes.map((b) => ({ label: b.label, box: b.box.map(round) }));
    await this.#save({ task: "detection", boxes });
  }

  async #save(body) {
    if (!this.active) return;
    const id = this.study.id;
    try {
      const saved = await this.api.json("POST", `/v1/labels/${encodeURIComponent(id)}`, body);
      this.labelled++;
      $("#label-log").append(h("li", { class: "label-log-item", dataset: { studyId: id, task: saved.task } },
        `${this.index + 1}. ${labelLine(saved)}`));
      toast(`Label saved: ${labelLine(saved)}`, "ok", 2500);
      await this.next();
    } catch (error) {
      setError($("#label-error"), `Label: ${error.message}`);
    }
  }

  async #loadClasses() {
    try {
      const body = await this.api.json("GET", "/v1/models");
      const detector = (body?.items ?? []).find((m) => m.task === "cxr");  // the service's task name
      const versions = detector?.versions ?? [];
      const served = versions.find((v) => v.stage === "production") ?? versions[versions.length - 1];
      this.classes = [...(served?.card?.labels ?? [])];
    } catch {
      this.classes = [];  // the classes of the model's own boxes are offered then
    }
  }

  async #open(index) {
    this.index = index;
    this.boxes = [];
    this.selected = -1;
    setError($("#label-error"), "");
    if (index >= this.items.length) {
      this.#finish(`Queue done: ${this.labelled} of ${this.items.length} labelled. Start again for the next batch.`);
      return;
    }
    const item = this.items[index];
    show($("#label-done"), false);
    show($("#label-item"), true);
    $("#label-item").dataset.studyId = item.study_id;
    $("#label-position").textContent = `Item ${index + 1} of ${this.items.length}`;
    $("#label-score").textContent = `score ${item.score.toFixed(3)}`;
    $("#label-saved").textContent = "";
    const study = await this.hooks.open(item.study_id);
    if (!study || this.items[this.index] !== item) return;
    this.study = study;
    const [results, history] = await Promise.all([
      this.api.results(study.id).catch(() => null),
      this.api.json("GET", `/v1/labels/${encodeURIComponent(study.id)}`).catch(() => null),
    ]);
    if (this.items[this.index] !== item) return;
    const last = history?.items?.at(-1);
    $("#label-saved").textContent = last ? `Last label: ${labelLine(last)}` : "Not labelled yet.";
    const detection = [...(results?.items ?? [])].reverse().find((r) => r.task === "cxr");
    this.boxes = (detection?.findings ?? []).map((f) => ({ label: f.label, box: [...f.box] }));
    for (const box of this.boxes) if (!this.classes.includes(box.label)) this.classes.push(box.label);
    const chest = Boolean(detection) || /chest/i.test(study.body_part ?? "");
    this.#fillClasses();
    this.#setTask(chest ? "detection" : "fracture");
  }

  #finish(message) {
    const done = $("#label-done");
    done.textContent = message;
    show(done, true);
    this.index = this.items.length;
    show($("#label-item"), false);
    this.#restoreViewer();
  }

  #setTask(task) {
    this.task = task;
    $("#label-task").value = task;
    $("#label-item").dataset.task = task;
    show($("#label-fracture"), task === "fracture");
    show($("#label-detection"), task === "detection");
    const editing = task === "detection";
    this.viewer.drawOverlay = editing ? (ctx, toScreen) => this.#draw(ctx, toScreen) : null;
    this.viewer.setShowBoxes(!editing && this.#aiBoxesWanted());  // the copies are edited, not both
    this.#renderBoxes();
  }

  #aiBoxesWanted() {
    return $('[data-action="boxes"]').getAttribute("aria-pressed") === "true";
  }

  #restoreViewer() {
    this.viewer.drawOverlay = null;
    this.viewer.setShowBoxes(this.#aiBoxesWanted());
  }

  #fillClasses() {
    const select = $("#label-class");
    const chosen = select.value;
    select.replaceChildren(...this.classes.map((name) => h("option", { value: name }, name)));
    if (this.classes.includes(chosen)) select.value = chosen;
  }

  // --- the boxes -------------------------------------------------------------------------

  /** One colour per class, in the detector's label order (as the findings panel's boxes). */
  #color(label) {
    const index = this.classes.indexOf(label);
    return PALETTE[Math.max(0, index) % PALETTE.length];
  }

  #renderBoxes() {
    const list = $("#label-boxes");
    list.replaceChildren(...this.boxes.map((item, index) => {
      const options = this.classes.map((name) => h("option", { value: name }, name));
      const select = h("select", { "aria-label": "Class", onchange: (event) => {
        item.label = event.target.value;
        this.viewer.redraw();
      } }, options);
      select.value = item.label;
      const [x1, y1, x2, y2] = item.box.map(Math.round);
      return h("li", {
        class: "label-box",
        "aria-selected": String(index === this.selected),
        dataset: { box: item.box.map((v) => v.toFixed(1)).join(",") },
        onclick: (event) => {
          if (event.target.closest("select, button")) return;
          this.selected = index;
          this.#renderBoxes();
        },
      },
      h("span", { class: "swatch", style: { background: this.#color(item.label) } }),
      select,
      h("span", { class: "muted small" }, `${x1},${y1} – ${x2},${y2}`),
      h("button", { class: "btn btn-ghost btn-sm", type: "button", title: "Delete this box (Delete)",
        "aria-label": "Delete box", onclick: () => this.#deleteBox(index) }, "×"));
    }));
    $("#label-boxes-none").hidden = this.boxes.length > 0;
    this.viewer.redraw();
  }

  #deleteBox(index) {
    if (this.task !== "detection" || index < 0 || index >= this.boxes.length) return;
    this.boxes.splice(index, 1);
    this.selected = -1;
    this.#renderBoxes();
  }

  /** The box and edges under an image point: edges within reach resize, the inside moves. */
  #hit(point) {
    const reach = GRAB_PX / this.viewer.scale;
    for (let index = this.boxes.length - 1; index >= 0; index--) {
      const [x1, y1, x2, y2] = this.boxes[index].box;
      const withinY = point.y >= y1 - reach && point.y <= y2 + reach;
      const withinX = point.x >= x1 - reach && point.x <= x2 + reach;
      const edges = {
        left: withinY && Math.abs(point.x - x1) <= reach,
        right: withinY && Math.abs(point.x - x2) <= reach,
        top: withinX && Math.abs(point.y - y1) <= reach,
        bottom: withinX && Math.abs(point.y - y2) <= reach,
      };
      if (Object.values(edges).some(Boolean)) return { index, edges };
      if (point.x > x1 && point.x < x2 && point.y > y1 && point.y < y2) return { index, edges: null };
    }
    return null;
  }

  #clamp(point) {
    const { width, height } = this.viewer.state();
    return { x: Math.min(width, Math.max(0, point.x)), y: Math.min(height, Math.max(0, point.y)) };
  }

  #pointerDown(event) {
    if (!this.#editing || event.target !== this.viewer.canvas || event.button !== 0 || this.viewer.panHeld) return;
    event.stopPropagation();
    event.preventDefault();
    this.viewer.canvas.focus();
    this.viewer.canvas.setPointerCapture(event.pointerId);
    const point = this.#clamp(this.viewer.imagePoint(event));
    const hit = this.#hit(point);
    if (hit) {
      this.selected = hit.index;
      this.drag = { index: hit.index, edges: hit.edges, start: point, box: [...this.boxes[hit.index].box] };
    } else {
      const label = $("#label-class").value || this.classes[0] || "finding";
      this.boxes.push({ label, box: [point.x, point.y, point.x, point.y] });
      this.selected = this.boxes.length - 1;
      this.drag = { index: this.selected, anchor: point, created: true };
    }
    this.#renderBoxes();
  }

  #pointerMove(event) {
    if (!this.drag) return;
    event.stopPropagation();
    const point = this.#clamp(this.viewer.imagePoint(event));
    const item = this.boxes[this.drag.index];
    if (this.drag.anchor) {
      const { x, y } = this.drag.anchor;
      item.box = [Math.min(x, point.x), Math.min(y, point.y), Math.max(x, point.x), Math.max(y, point.y)];
    } else if (this.drag.edges) {
      const [x1, y1, x2, y2] = this.drag.box;
      const { left, right, top, bottom } = this.drag.edges;
      const xs = [left ? point.x : x1, right ? point.x : x2].sort((a, b) => a - b);
      const ys = [top ? point.y : y1, bottom ? point.y : y2].sort((a, b) => a - b);
      item.box = [xs[0], ys[0], xs[1], ys[1]];
    } else {
      const { width, height } = this.viewer.state();
      const [x1, y1, x2, y2] = this.drag.box;
      const dx = Math.min(width - x2, Math.max(-x1, point.x - this.drag.start.x));
      const dy = Math.min(height - y2, Math.max(-y1, point.y - this.drag.start.y));
      item.box = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
    }
    this.viewer.redraw();
  }

  #pointerUp(event) {
    if (!this.drag) return;
    event.stopPropagation();
    const canvas = this.viewer.canvas;
    if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
    const [x1, y1, x2, y2] = this.boxes[this.drag.index].box;
    if (x2 - x1 < MIN_SIDE_PX || y2 - y1 < MIN_SIDE_PX) {
      if (this.drag.created) this.boxes.splice(this.drag.index, 1);  // a click: nothing drawn
      else this.boxes[this.drag.index].box = this.drag.box ?? this.boxes[this.drag.index].box;
      this.selected = -1;
    }
    this.drag = null;
    this.#renderBoxes();
  }

  #draw(ctx, toScreen) {
    if (!this.#editing) return;
    ctx.save();
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    this.boxes.forEach((item, index) => {
      const [sx1, sy1] = toScreen([item.box[0], item.box[1]]);
      const [sx2, sy2] = toScreen([item.box[2], item.box[3]]);
      const color = this.#color(item.label);
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = index === this.selected ? 3 : 1.5;
      ctx.setLineDash(index === this.selected ? [] : [6, 3]);
      ctx.strokeRect(sx1, sy1, sx2 - sx1, sy2 - sy1);
      if (index === this.selected) {
        for (const [x, y] of [[sx1, sy1], [sx2, sy1], [sx1, sy2], [sx2, sy2]]) ctx.fillRect(x - 4, y - 4, 8, 8);
      }
      ctx.fillText(item.label, sx1 + 2, sy1 - 2);
    });
    ctx.restore();
    this.viewer.canvas.dataset.labelBoxes = String(this.boxes.length);
  }
}
