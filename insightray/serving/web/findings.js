// The AI findings panel: detector boxes (threshold, per-class toggles, a list that highlights
// its box), the fracture result with its operating point, the heatmap controls (the
// detector's EigenCAM or the fracture Grad-CAM, whichever the reader picks),
// and the reader's verdict on each box and on the fracture label (accept, reject, relabel),
// saved with PUT /v1/results/{id}/feedback/{index}: the service's live agreement per model.

import { $, h, percent, probabilityText, setError, show } from "./dom.js";

// What each result's heatmap_method is called on screen.
const HEATMAP_METHODS = { eigencam: "EigenCAM", gradcam: "Grad-CAM" };
// The task of each result and its name on screen.
const TASK_NAMES = { cxr: "Detector", fracture: "Fracture" };

// Saturated colours that stand out on a grayscale radiograph, one per class (in label order).
export const PALETTE = ["#ffb020", "#38bdf8", "#f472b6", "#a3e635", "#c084fc", "#fb7185", "#2dd4bf", "#facc15"];

/** The operating point of a detection result; the model card's when the service gives it. */
function operatingPoint(result) {
  const value = result?.threshold;
  return Number.isFinite(value) ? value : null;
}

export function modelText(model) {
  if (!model) return "";
  return model.version ? `${model.name} v${model.version}` : model.name;
}

export class FindingsPanel {
  /**
   * @param {import("./viewer.js").RadiographViewer} viewer
   * @param {import("./api.js").Api} api
   * @param {{onHeatmapChange: (on: boolean) => void}} hooks
   */
  constructor(viewer, api, hooks) {
    this.viewer = viewer;
    this.api = api;
    this.hooks = hooks;
    this.detection = null;
    this.fracture = null;
    this.threshold = 0.25;
    this.hiddenClasses = new Set();
    this.sticky = null;
    this.heatmapLoaded = null;   // result id whose heatmap the viewer holds
    this.heatmapTask = null;     // "cxr" or "fracture": whose heatmap the controls show
    this.verdicts = new Map();   // "<result id>:<index>" -> {verdict, label} of this reader
    this.#bind();
  }

  #bind() {
    const slider = $("#threshold");
    slider.addEventListener("input", () => this.setThreshold(Number(slider.value)));
    $("#heatmap-toggle").addEventListener("change", (event) => this.setHeatmap(event.target.checked));
    $("#heatmap-source").addEventListener("change", (event) => {
      const on = $("#heatmap-toggle").checked;
      this.#setHeatmapTask(event.target.value);
      if (on) this.setHeatmap(true);
    });
    $("#heatmap-opacity").addEventListener("input", (event) => {
      const value = Number(event.target.value);
      this.viewer.setHeatmapOpacity(value);
      $("#heatmap-opacity-value").textContent = percent(value);
    });
    $("#findings-list").addEventListener("mouseleave", () => this.#highlight(this.sticky));
    for (const button of document.querySelectorAll("#fracture-feedback [data-verdict]")) {
      button.addEventListener("click", () => {
        if (this.fracture) this.judge(this.fracture, 0, button.dataset.verdict);
      });
    }
  }

  /** Whether a result came from the service (an SR read from the PACS has no feedback). */
  #judgeable(result) {
    return Boolean(result?.result_id) && !String(result.result_id).startsWith("sr-");
  }

  /** The reader's earlier verdicts on a result, shown on its buttons. */
  async #loadVerdicts(result) {
    if (!this.#judgeable(result)) return;
    try {
      const body = await this.api.feedback(result.result_id);
      for (const item of body?.items ?? []) {
        this.verdicts.set(`${result.result_id}:${item.finding}`, { verdict: item.verdict, label: item.label });
      }
      this.render();
    } catch (error) {
      this.setError(`Feedback: ${error.message}`);
    }
  }

  /** Save the reader's verdict on finding `index` of `result` (a box, or 0: the label). */
  async judge(result, index, verdict, label = undefined) {
    const key = `${result.result_id}:${index}`;
    try {
      const saved = await this.api.judge(result.result_id, index, verdict, label);
      this.verdicts.set(key, { verdict: saved.verdict, label: saved.label });
      this.setError("");
    } catch (error) {
      this.setError(`Feedback: ${error.message}`);
    }
    this.render();
  }

  /** Forget everything (no study open). */
  clear() {
    this.detection = null;
    this.fracture = null;
    this.hiddenClasses.clear();
    this.sticky = null;
    this.heatmapLoaded = null;
    this.heatmapTask = null;
    this.verdicts.clear();
    this.setBusy(false);
    setError($("#findings-error"), "");
    this.render();
  }

  setBusy(busy) {
    show($("#findings-busy"), busy);
    $("#run-cxr").disabled = busy || !this.hasStudy;
    $("#run-fracture").disabled = busy || !this.hasStudy;
  }

  setStudyOpen(open) {
    this.hasStudy = open;
    this.setBusy(false);
  }

  setError(message) {
    setError($("#findings-error"), message);
  }

  /** Show the latest result of each task, e.g. from GET /v1/studies/{id}/results. */
  setResults(results) {
    const latest = (task) => [...results].reverse().find((r) => r.task === task) ?? null;
    this.#setDetection(latest("cxr"));
    this.#setFracture(latest("fracture"));
    const newest = [...results].reverse().find((r) => r.heatmap_url && (r.task === "cxr" || r.task === "fracture"));
    this.#setHeatmapTask(newest?.task ?? null);
  }

  /** A fresh analysis answer (its heatmap, if it has one, becomes the one the controls show). */
  addResult(result) {
    if (result.task === "cxr") this.#setDetection(result);
    else this.#setFracture(result);
    this.#setHeatmapTask(result.heatmap_url ? result.task : this.heatmapTask);
  }

  /** The result whose heatmap the controls show. */
  get #heatmapResult() {
    const result = this.#byTask[this.heatmapTask];
    return result?.heatmap_url ? result : null;
  }

  /** The open results that can carry a heatmap, by task. */
  get #byTask() {
    return { cxr: this.detection, fracture: this.fracture };
  }

  /** Show the heatmap of the latest result of `task` ("cxr" or "fracture"), hidden at first. */
  #setHeatmapTask(task) {
    const results = this.#byTask;
    const chosen = results[task]?.heatmap_url ? task : Object.keys(results).find((t) => results[t]?.heatmap_url) ?? null;
    if (chosen !== this.heatmapTask) {
      this.heatmapTask = chosen;
      this.#dropHeatmap();
    }
    this.render();
  }

  /** Forget the heatmap the viewer holds (another result's is wanted now). */
  #dropHeatmap() {
    this.heatmapLoaded = null;
    this.viewer.setHeatmap(null);
    this.setHeatmap(false);
  }

  #setDetection(result) {
    if (this.heatmapTask === "cxr" && result?.result_id !== this.detection?.result_id) this.#dropHeatmap();
    this.detection = result;
    this.hiddenClasses.clear();
    this.sticky = null;
    const point = operatingPoint(result);
    this.setThreshold(point ?? this.#defaultThreshold(result), false);
    this.#loadVerdicts(result);
  }

  /** Without an operating point from the service: show every box it returned. */
  #defaultThreshold(result) {
    const scores = [...(result?.findings ?? []), ...(result?.candidates ?? [])].map((f) => f.score);
    return scores.length ? Math.floor(Math.min(...scores) * 100) / 100 : 0.25;
  }

  #setFracture(result) {
    if (this.heatmapTask === "fracture" && result?.result_id !== this.fracture?.result_id) this.#dropHeatmap();
    this.fracture = result;
    this.#loadVerdicts(result);
  }

  setThreshold(value, rerender = true) {
    this.threshold = Math.min(1, Math.max(0, Math.round(value * 100) / 100));
    $("#threshold").value = String(this.threshold);
    $("#threshold-value").textContent = this.threshold.toFixed(2);
    if (rerender) this.render();
  }

  nudgeThreshold(delta) {
    if (this.detection) this.setThreshold(this.threshold + delta);
  }

  /** Show or hide the chosen result's heatmap, fetching it the first time. */
  async setHeatmap(on) {
    const result = this.#heatmapResult;
    const enabled = Boolean(on && result?.heatmap_url);
    $("#heatmap-toggle").checked = enabled;
    this.viewer.setHeatmapVisible(enabled);
    this.hooks.onHeatmapChange(enabled);
    if (!enabled || this.heatmapLoaded === result.result_id) return;
    try {
      const bitmap = await this.api.bitmap(result.heatmap_url);
      if (this.#heatmapResult?.result_id !== result.result_id) return;
      this.heatmapLoaded = result.result_id;
      this.viewer.setHeatmap(bitmap);
    } catch (error) {
      this.setError(`Heatmap: ${error.message}`);
      $("#heatmap-toggle").checked = false;
      this.viewer.setHeatmapVisible(false);
      this.hooks.onHeatmapChange(false);
    }
  }

  toggleHeatmap() {
    if (this.#heatmapResult) this.setHeatmap(!$("#heatmap-toggle").checked);
  }

  get heatmapAvailable() {
    return Boolean(this.#heatmapResult);
  }

  render() {
    show($("#findings-empty"), !this.detection && !this.fracture);
    this.#renderDetection();
    this.#renderFracture();
    this.#renderHeatmap();
    this.#renderOodBanner();
  }

  /** The heatmap card: which result's map (a choice when both have one), its method. */
  #renderHeatmap() {
    const result = this.#heatmapResult;
    show($("#heatmap-card"), Boolean(result));
    $('[data-action="heatmap"]').disabled = !result;
    $("#heatmap-toggle").disabled = !result;
    if (!result) return;
    const choices = Object.values(this.#byTask).filter((r) => r?.heatmap_url);
    const label = (r) => `${TASK_NAMES[r.task]}: ${HEATMAP_METHODS[r.heatmap_method] ?? "Grad-CAM"}`;
    const select = $("#heatmap-source");
    select.replaceChildren(...choices.map((r) => h("option", { value: r.task }, label(r))));
    select.value = result.task;
    show(select.closest("label"), choices.length > 1);
    $("#heatmap-method").textContent = `${label(result)} · ${modelText(result.model)}`;
  }

  /** A banner over the image when a model's out-of-distribution guard warned about it. */
  #renderOodBanner() {
    const flagged = [this.detection, this.fracture].filter((r) => r?.warnings?.length);
    const lines = flagged.map((r) => `${modelText(r.model)}: ${r.warnings.join("; ")}`);
    const banner = $("#ood-banner");
    banner.replaceChildren(
      ...(lines.length ? [h("strong", {}, "Image outside the model's training data. "), lines.join(" | ")] : []),
    );
    show(banner, lines.length > 0);
  }

  #colors() {
    const all = [...(this.detection?.findings ?? []), ...(this.detection?.candidates ?? [])];
    const labels = [...new Set(all.map((f) => f.label))];
    const ids = new Map(all.map((f) => [f.label, f.class_id ?? labels.indexOf(f.label)]));
    return (label) => PALETTE[(ids.get(label) ?? 0) % PALETTE.length];
  }

  #renderDetection() {
    const card = $("#detection-card");
    const result = this.detection;
    show(card, Boolean(result));
    if (!result) {
      this.viewer.setBoxes([]);
      return;
    }
    $('[data-role="model"]', card).textContent = modelText(result.model);
    const color = this.#colors();
    // The findings at the operating point, then the weaker candidates the service adds.
    const findings = [...(result.findings ?? []), ...(result.candidates ?? [])]
      .map((f, index) => ({ ...f, key: `${result.result_id}:${index}` }))
      .sort((a, b) => b.score - a.score);
    const listed = findings.filter((f) => f.score >= this.threshold);
    const shown = listed.filter((f) => !this.hiddenClasses.has(f.label));
    const point = operatingPoint(result);
    $("#threshold-hint").textContent = [
      `${listed.length} of ${findings.length} candidate${findings.length === 1 ? "" : "s"} at or above ${this.threshold.toFixed(2)}.`,
      point !== null ? `Operating point ${point.toFixed(2)} (model card).` : "",
    ].join(" ");

    const labels = [...new Set(findings.map((f) => f.label))];
    $("#class-toggles").replaceChildren(...labels.map((label) => {
      const total = findings.filter((f) => f.label === label).length;
      const visible = shown.filter((f) => f.label === label).length;
      return h("button", {
        class: "class-toggle",
        type: "button",
        "aria-pressed": String(!this.hiddenClasses.has(label)),
        title: `Show or hide ${label}`,
        dataset: { label },
        onclick: () => {
          if (this.hiddenClasses.has(label)) this.hiddenClasses.delete(label);
          else this.hiddenClasses.add(label);
          this.render();
        },
      }, h("span", { class: "swatch", style: { background: color(label) } }), label, h("span", { class: "count" }, `${visible}/${total}`));
    }));

    $("#findings-list").replaceChildren(...listed.map((f) => this.#findingItem(f, color(f.label), shown.includes(f), labels)));
    const none = $("#findings-none");
    const weaker = findings.length - listed.length;
    show(none, findings.length === 0 || listed.length === 0);
    none.textContent = findings.length === 0
      ? "No findings: the detector found no candidate."
      : `No finding at or above this threshold. ${weaker} weaker candidate${weaker === 1 ? "" : "s"}: lower the threshold to see ${weaker === 1 ? "it" : "them"}.`;

    this.viewer.setBoxes(shown.map((f) => ({ key: f.key, box: f.box, label: f.label, score: f.score, color: color(f.label) })));
    this.#highlight(this.sticky);
  }

  #findingItem(finding, color, visible, labels) {
    const [x1, y1, x2, y2] = finding.box;
    const size = finding.box_mm
      ? `${(finding.box_mm[2] - finding.box_mm[0]).toFixed(0)} × ${(finding.box_mm[3] - finding.box_mm[1]).toFixed(0)} mm`
      : `${Math.round(x2 - x1)} × ${Math.round(y2 - y1)} px`;
    const reason = visible ? "" : " · class hidden";
    return h("li", {
      class: `finding${visible ? "" : " below"}${finding.key === this.sticky ? " active" : ""}`,
      dataset: { key: finding.key, label: finding.label, visible: String(visible) },
      onmouseenter: () => this.#highlight(visible ? finding.key : null),
      onclick: () => {
        this.sticky = this.sticky === finding.key || !visible ? null : finding.key;
        this.render();
      },
    },
      h("span", { class: "swatch", style: { background: color } }),
      h("span", { class: "finding-label" }, finding.label),
      h("span", { class: "finding-score" }, percent(finding.score)),
      h("span", { class: "finding-sub", title: `box ${Math.round(x1)}, ${Math.round(y1)} to ${Math.round(x2)}, ${Math.round(y2)} px` }, `${size}${reason}`),
      ...(this.#judgeable(this.detection) ? [this.#verdictButtons(finding, labels)] : []),
    );
  }

  /** Accept / reject buttons and a relabel menu for one box; the saved verdict is pressed. */
  #verdictButtons(finding, labels) {
    const index = Number(finding.key.split(":").pop());
    const saved = this.verdicts.get(finding.key);
    const button = (verdict, text, title) => h("button", {
      class: `btn btn-ghost btn-sm verdict-button ${verdict}`,
      type: "button",
      title,
      "aria-pressed": String(saved?.verdict === verdict),
      dataset: { verdict },
      onclick: (event) => {
        event.stopPropagation();
        this.judge(this.detection, index, verdict);
      },
    }, text);
    const relabel = labels.filter((label) => label !== finding.label);
    const menu = relabel.length ? [h("select", {
      class: "relabel",
      title: "Right place, wrong class: pick the right one",
      "aria-label": `Relabel ${finding.label}`,
      onclick: (event) => event.stopPropagation(),
      onchange: (event) => {
        if (event.target.value) this.judge(this.detection, index, "correct", event.target.value);
      },
    },
      h("option", { value: "" }, saved?.verdict === "correct" ? `→ ${saved.label}` : "Relabel…"),
      ...relabel.map((label) => h("option", { value: label }, label)),
    )] : [];
    return h("span", { class: "verdict-buttons", dataset: { verdict: saved?.verdict ?? "" } },
      button("accept", "✓ Accept", "The model is right about this box"),
      button("reject", "✗ Reject", "The model is wrong: no such finding here"),
      ...menu,
    );
  }

  #highlight(key) {
    this.viewer.setHighlight(key);
    for (const item of $("#findings-list").children) item.classList.toggle("active", item.dataset.key === key);
  }

  #renderFracture() {
    const card = $("#fracture-card");
    const result = this.fracture;
    show(card, Boolean(result));
    if (!result) return;
    const { probability, threshold, label } = result.fracture;
    $('[data-role="model"]', card).textContent = modelText(result.model);
    const positive = probability >= threshold;
    const verdict = $("#fracture-verdict");
    verdict.className = `verdict ${positive ? "positive" : "negative"}`;
    verdict.textContent = positive ? "Fracture suspected" : "No fracture suspected";
    $("#fracture-label").textContent = label;
    // One colour for the decision: below the operating point the bar is never red.
    const fill = $("#prob-fill");
    fill.style.width = percent(probability, 1);
    fill.className = `prob-fill ${positive ? "positive" : "negative"}`;
    $("#prob-threshold").style.left = percent(threshold, 1);
    $("#fracture-probability").textContent = probabilityText(probability);
    $("#fracture-threshold").textContent = `${threshold.toFixed(3)} (model card)`;
    const saved = this.verdicts.get(`${result.result_id}:0`);
    const feedback = $("#fracture-feedback");
    show(feedback, this.#judgeable(result));
    feedback.dataset.verdict = saved?.verdict ?? "";
    for (const button of feedback.querySelectorAll("[data-verdict]")) {
      button.setAttribute("aria-pressed", String(saved?.verdict === button.dataset.verdict));
    }
  }
}
