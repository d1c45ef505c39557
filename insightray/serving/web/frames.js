// Multi-frame images (cine loops, stacks): the frame slider under the image ("frame i / n"),
// the mouse wheel and the arrow keys step through the frames. Each frame comes from the
// service (`/pixels?frame=i`, decoded there by the imaging reader) at the level first shown,
// and is kept for the next pass: window, zoom, pan and measurements stay as they are.

import { $, show, toast } from "./dom.js";

/** The most pixel bytes kept for quick scrolling back (frames beyond are fetched again). */
const CACHE_BYTES = 256 * 1024 * 1024;

export class FrameScroller {
  /**
   * @param {import("./viewer.js").RadiographViewer} viewer
   * @param {import("./api.js").Api} api
   */
  constructor(viewer, api) {
    this.viewer = viewer;
    this.api = api;
    this.study = null;
    this.count = 1;
    this.wanted = 0;
    this.loading = false;
    this.cache = new Map();   // frame -> pixels, oldest first
    this.cached = 0;
    $("#frame-slider").addEventListener("input", (event) => this.go(Number(event.target.value) - 1));
  }

  /** A study was opened with `first` (the pixels of its first frame) on the canvas. */
  setStudy(study, first) {
    this.study = study;
    this.count = Math.max(1, study?.frames ?? 1);
    this.cache.clear();
    this.cached = 0;
    this.wanted = 0;
    const multi = Boolean(study) && this.count > 1;
    this.viewer.onFrameScroll = multi ? (step) => this.step(step) : null;
    if (multi && first) this.#keep(0, first);
    const slider = $("#frame-slider");
    slider.max = String(this.count);
    slider.value = "1";
    show($("#frame-bar"), multi);
    this.#label(0);
  }

  get active() {
    return Boolean(this.study) && this.count > 1;
  }

  step(delta) {
    if (this.active) this.go(this.wanted + delta);
  }

  /** Show frame `index` (clamped); the last one asked wins while fetches are under way. */
  go(index) {
    if (!this.active) return;
    this.wanted = Math.max(0, Math.min(this.count - 1, index));
    $("#frame-slider").value = String(this.wanted + 1);
    this.#label(this.wanted);
    this.#load();
  }

  async #load() {
    if (this.loading) return;
    const study = this.study;
    while (this.study === study && this.viewer.frame !== this.wanted) {
      const index = this.wanted;
      let pixels = this.cache.get(index);
      if (!pixels) {
        this.loading = true;
        try {
          pixels = await this.api.pixels(study.id, null, index);
        } catch (error) {
          toast(`Frame ${index + 1}: ${error.message}`, "error");
          return;
        } finally {
          this.loading = false;
        }
        if (this.study !== study) return;
        this.#keep(index, pixels);
      }
      this.viewer.setFrame({ frame: index, data: pixels.data, valueMin: pixels.valueMin, valueMax: pixels.valueMax });
    }
  }

  #keep(index, pixels) {
    this.cache.set(index, pixels);
    this.cached += pixels.data.byteLength;
    for (const [key, old] of this.cache) {
      if (this.cached <= CACHE_BYTES || key === index) break;
      this.cache.delete(key);
      this.cached -= old.data.byteLength;
    }
  }

  #label(index) {
    $("#frame-label").textContent = this.active ? `frame ${index + 1} / ${this.count}` : "";
  }
}
