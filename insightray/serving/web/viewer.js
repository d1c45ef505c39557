// The radiograph viewer: window/level applied in the browser to the uint16 pixels the service
// decoded (pydicom on the server; no DICOM decoding here), zoom, pan, invert, and the AI
// overlays (detector boxes, Grad-CAM heatmap) drawn in image coordinates on one canvas.

const MIN_SCALE = 0.05;
const MAX_SCALE = 40;

/** DICOM PS3.3 C.11.2.1.2 linear VOI function: value -> 0..255 for window (center, width). */
export function windowValue(value, center, width) {
  const w = Math.max(width, 1);
  const low = center - 0.5 - (w - 1) / 2;
  const high = center - 0.5 + (w - 1) / 2;
  if (value <= low) return 0;
  if (value > high) return 255;
  return ((value - (center - 0.5)) / (w - 1) + 0.5) * 255;
}

export class RadiographViewer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {(state: object) => void} onChange called after every change of view or cursor
   */
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.image = null;            // {width, height, data: Uint16Array, valueMin, valueMax, spacing}
    this.buffer = document.createElement("canvas");  // the windowed image at full resolution
    this.lut = new Uint32Array(65536);
    this.center = 0;
    this.width = 1;
    this.defaultWindow = null;
    this.inverted = false;
    this.scale = 1;
    this.offsetX = 0;
    this.offsetY = 0;
    this.tool = "wl";
    this.panHeld = false;
    this.boxes = [];
    this.showBoxes = true;
    this.highlight = null;
    this.heatmap = null;
    this.showHeatmap = false;
    this.heatmapOpacity = 0.5;
    this.cursor = null;
    this.drag = null;
    this.framePending = false;
    this.windowDirty = false;
    this.#bindEvents();
    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#resize();
  }

  /**
   * Show a new image; `window` is the initial {center, width} in value units. The overlays
   * stay: the findings panel owns them (an analysis may answer before the pixels arrive).
   */
  setImage(image, window) {
    this.image = image;
    this.buffer.width = image.width;
    this.buffer.height = image.height;
    this.imageData = new ImageData(image.width, image.height);
    this.pixels32 = new Uint32Array(this.imageData.data.buffer);
    this.defaultWindow = window || this.fullRange();
    this.reset();
  }

  clear() {
    this.image = null;
    this.boxes = [];
    this.heatmap = null;
    this.cursor = null;
    this.#schedule();
  }

  /** The window covering every value of the image. */
  fullRange() {
    if (!this.image) return { center: 0, width: 1 };
    const { valueMin, valueMax } = this.image;
    return { center: (valueMin + valueMax) / 2, width: Math.max(valueMax - valueMin, 1) };
  }

  setWindow(center, width) {
    this.center = center;
    this.width = Math.max(width, 1);
    this.windowDirty = true;
    this.#schedule();
  }

  toggleInvert(force) {
    this.inverted = force === undefined ? !this.inverted : force;
    this.windowDirty = true;
    this.#schedule();
  }

  setTool(tool) {
    this.tool = tool;
    this.#updateCursorClass();
    this.#emit();
  }

  setPanHeld(held) {
    this.panHeld = held;
    this.#updateCursorClass();
  }

  zoomBy(factor, screenX, screenY) {
    if (!this.image) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = screenX ?? rect.width / 2;
    const y = screenY ?? rect.height / 2;
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const applied = scale / this.scale;
    this.offsetX = x - (x - this.offsetX) * applied;
    this.offsetY = y - (y - this.offsetY) * applied;
    this.scale = scale;
    this.#schedule();
  }

  fit() {
    if (!this.image) return;
    const rect = this.canvas.getBoundingClientRect();
    const margin = 16;
    const scale = Math.min(
      (rect.width - 2 * margin) / this.image.width,
      (rect.height - 2 * margin) / this.image.height,
    );
    this.scale = Math.max(MIN_SCALE, scale);
    this.offsetX = (rect.width - this.image.width * this.scale) / 2;
    this.offsetY = (rect.height - this.image.height * this.scale) / 2;
    this.#schedule();
  }

  /** Back to the initial window, no inversion, fitted. */
  reset() {
    const window = this.defaultWindow || this.fullRange();
    this.inverted = false;
    this.setWindow(window.center, window.width);
    this.fit();
  }

  /** @param {Array<{box: number[], label: string, score: number, color: string, key: string}>} boxes */
  setBoxes(boxes) {
    this.boxes = boxes;
    this.#schedule();
  }

  setShowBoxes(show) {
    this.showBoxes = show;
    this.#schedule();
  }

  setHighlight(key) {
    this.highlight = key;
    this.#schedule();
  }

  setHeatmap(bitmap) {
    this.heatmap = bitmap;
    this.#schedule();
  }

  setHeatmapVisible(visible) {
    this.showHeatmap = visible;
    this.#schedule();
  }

  setHeatmapOpacity(opacity) {
    this.heatmapOpacity = opacity;
    this.#schedule();
  }

  /** Everything the corner overlays and tests need to know. */
  state() {
    return {
      hasImage: Boolean(this.image),
      width: this.image?.width ?? 0,
      height: this.image?.height ?? 0,
      spacing: this.image?.spacing ?? null,
      center: this.center,
      windowWidth: this.width,
      inverted: this.inverted,
      scale: this.scale,
      tool: this.tool,
      cursor: this.cursor,
    };
  }

  // --- rendering -------------------------------------------------------------------------

  #schedule() {
    if (this.framePending) return;
    this.framePending = true;
    requestAnimationFrame(() => {
      this.framePending = false;
      this.#render();
    });
  }

  #applyWindow() {
    const { data, valueMin, valueMax } = this.image;
    const step = (valueMax - valueMin) / 65535;
    const lut = this.lut;
    for (let p = 0; p < 65536; p++) {
      let gray = Math.round(windowValue(valueMin + p * step, this.center, this.width));
      if (this.inverted) gray = 255 - gray;
      lut[p] = 0xff000000 | (gray << 16) | (gray << 8) | gray;  // RGBA bytes on a little-endian host
    }
    const out = this.pixels32;
    for (let i = 0; i < data.length; i++) out[i] = lut[data[i]];
    this.buffer.getContext("2d").putImageData(this.imageData, 0, 0);
    this.windowDirty = false;
  }

  #render() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    let drawn = 0;
    if (this.image) {
      if (this.windowDirty) this.#applyWindow();
      const w = this.image.width * this.scale;
      const h = this.image.height * this.scale;
      ctx.imageSmoothingEnabled = this.scale < 3;
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(this.buffer, this.offsetX, this.offsetY, w, h);
      if (this.heatmap && this.showHeatmap) {
        ctx.globalAlpha = this.heatmapOpacity;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(this.heatmap, this.offsetX, this.offsetY, w, h);
        ctx.globalAlpha = 1;
      }
      if (this.showBoxes) drawn = this.#drawBoxes(ctx);
      this.#drawScaleBar(ctx);
    }
    const dataset = this.canvas.dataset;
    dataset.boxes = String(drawn);
    dataset.highlight = this.highlight ?? "";
    dataset.heatmap = this.heatmap && this.showHeatmap && this.image ? "on" : "off";
    dataset.window = this.image ? `${Math.round(this.center)}/${Math.round(this.width)}` : "";
    dataset.inverted = String(this.inverted);
    dataset.scale = this.scale.toFixed(3);
    dataset.offset = `${Math.round(this.offsetX)},${Math.round(this.offsetY)}`;
    this.#emit();
  }

  #drawBoxes(ctx) {
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const ordered = [...this.boxes].sort((a, b) => (a.key === this.highlight) - (b.key === this.highlight));
    for (const item of ordered) {
      const [x1, y1, x2, y2] = item.box;
      const sx = this.offsetX + x1 * this.scale;
      const sy = this.offsetY + y1 * this.scale;
      const sw = (x2 - x1) * this.scale;
      const sh = (y2 - y1) * this.scale;
      const active = item.key === this.highlight;
      const dimmed = this.highlight !== null && this.highlight !== "" && !active;
      ctx.save();
      ctx.globalAlpha = dimmed ? 0.35 : 1;
      if (active) {
        ctx.shadowColor = item.color;
        ctx.shadowBlur = 12;
        ctx.fillStyle = "rgba(255, 255, 255, 0.08)";
        ctx.fillRect(sx, sy, sw, sh);
      }
      ctx.strokeStyle = item.color;
      ctx.lineWidth = active ? 3 : 1.5;
      ctx.strokeRect(sx, sy, sw, sh);
      ctx.restore();
      const text = `${item.label} ${(item.score * 100).toFixed(0)}%`;
      const tw = ctx.measureText(text).width + 10;
      const th = 18;
      const ty = sy - th >= 0 ? sy - th : sy;
      const canvasWidth = this.canvas.width / (window.devicePixelRatio || 1);
      const tx = Math.max(0, Math.min(sx, canvasWidth - tw));
      ctx.fillStyle = item.color;
      ctx.globalAlpha = dimmed ? 0.3 : active ? 1 : 0.88;
      ctx.fillRect(tx - (active ? 1.5 : 0.75), ty, tw, th);
      ctx.globalAlpha = 1;
      ctx.fillStyle = "#05070a";
      ctx.fillText(text, tx + 5 - (active ? 1.5 : 0.75), ty + th / 2 + 0.5);
    }
    return this.boxes.length;
  }

  #drawScaleBar(ctx) {
    const spacing = this.image.spacing;
    if (!spacing) return;
    const mmPerScreenPx = spacing[1] / this.scale;
    const choices = [1, 2, 5, 10, 20, 50, 100, 200];
    const mm = choices.find((c) => c / mmPerScreenPx >= 70) ?? choices[choices.length - 1];
    const length = mm / mmPerScreenPx;
    const rect = this.canvas.getBoundingClientRect();
    const x = (rect.width - length) / 2;
    const y = rect.height - 18;
    ctx.strokeStyle = "rgba(230, 236, 242, 0.85)";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(x, y - 5); ctx.lineTo(x, y); ctx.lineTo(x + length, y); ctx.lineTo(x + length, y - 5);
    ctx.stroke();
    ctx.fillStyle = "rgba(230, 236, 242, 0.85)";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(mm >= 10 ? `${mm / 10} cm` : `${mm} mm`, x + length / 2, y - 3);
    ctx.textAlign = "start";
  }

  #resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(rect.width * dpr));
    const height = Math.max(1, Math.round(rect.height * dpr));
    if (this.canvas.width === width && this.canvas.height === height) return;
    const refit = this.image && this.canvas.width > 1;
    this.canvas.width = width;
    this.canvas.height = height;
    if (refit) this.fit();
    this.#schedule();
  }

  #emit() {
    this.onChange?.(this.state());
  }

  // --- interaction -----------------------------------------------------------------------

  #updateCursorClass() {
    const pan = this.tool === "pan" || this.panHeld;
    this.canvas.classList.toggle("tool-pan", pan);
    this.canvas.classList.toggle("tool-wl", !pan);
  }

  #imagePoint(event) {
    const rect = this.canvas.getBoundingClientRect();
    const sx = event.clientX - rect.left;
    const sy = event.clientY - rect.top;
    return { sx, sy, x: (sx - this.offsetX) / this.scale, y: (sy - this.offsetY) / this.scale };
  }

  #readout(event) {
    if (!this.image) return;
    const { x, y } = this.#imagePoint(event);
    const col = Math.floor(x);
    const row = Math.floor(y);
    if (col < 0 || row < 0 || col >= this.image.width || row >= this.image.height) {
      this.cursor = null;
    } else {
      const { data, valueMin, valueMax, width } = this.image;
      const value = valueMin + (data[row * width + col] * (valueMax - valueMin)) / 65535;
      this.cursor = { col, row, value };
    }
    this.#emit();
  }

  #bindEvents() {
    const canvas = this.canvas;
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener("pointerdown", (event) => {
      if (!this.image) return;
      canvas.focus();
      canvas.setPointerCapture(event.pointerId);
      const pan = this.tool === "pan" || this.panHeld || event.button === 1 || event.button === 2;
      this.drag = {
        mode: pan ? "pan" : "wl",
        x: event.clientX,
        y: event.clientY,
        center: this.center,
        width: this.width,
        offsetX: this.offsetX,
        offsetY: this.offsetY,
      };
      canvas.classList.add("dragging");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!this.drag) {
        this.#readout(event);
        return;
      }
      const dx = event.clientX - this.drag.x;
      const dy = event.clientY - this.drag.y;
      if (this.drag.mode === "pan") {
        this.offsetX = this.drag.offsetX + dx;
        this.offsetY = this.drag.offsetY + dy;
        this.#schedule();
      } else {
        // Right widens the window, down raises the level: the usual reading-room convention.
        const range = Math.max(this.image.valueMax - this.image.valueMin, 1);
        const perPixel = range / 600;
        this.setWindow(this.drag.center + dy * perPixel, Math.max(1, this.drag.width + dx * perPixel * 2));
      }
    });
    const end = (event) => {
      if (!this.drag) return;
      this.drag = null;
      canvas.classList.remove("dragging");
      if (canvas.hasPointerCapture(event.pointerId)) canvas.releasePointerCapture(event.pointerId);
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", () => {
      if (!this.drag && this.cursor) {
        this.cursor = null;
        this.#emit();
      }
    });
    canvas.addEventListener("wheel", (event) => {
      if (!this.image) return;
      event.preventDefault();
      const { sx, sy } = this.#imagePoint(event);
      this.zoomBy(Math.exp(-event.deltaY * 0.0015), sx, sy);
    }, { passive: false });
    canvas.addEventListener("dblclick", () => this.fit());
  }
}
