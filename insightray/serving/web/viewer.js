// The radiograph viewer: window/level applied in the browser to the uint16 pixels the service
// decoded (pydicom on the server; no DICOM decoding here), zoom, pan, invert, and the AI
// overlays (detector boxes, Grad-CAM heatmap) and measurements drawn in image coordinates on
// one canvas. Image coordinates are always the full-resolution image's; the pixels held may be
// a smaller level of it (large images), with a full-detail tile over the part being read.

import { angleOf, drawMeasurements, lengthOf, regionStats } from "./measure.js";

const MEASURE_TOOLS = new Set(["length", "angle", "rectangle", "ellipse"]);

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
    // {width, height (full image), levelWidth, levelHeight, data: Uint16Array (the level),
    //  valueMin, valueMax, spacing, spacingSource, monochrome1, unit}
    this.image = null;
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
    this.measurements = [];
    this.measuring = null;        // the measurement being drawn
    this.onMeasured = null;       // (measurement) => void, when one is finished
    this.tile = null;             // {region: [x, y, w, h], width, height, data, canvas}
    this.frame = 0;               // the frame shown of a multi-frame image
    this.onFrameScroll = null;    // (step) => void: the wheel scrolls frames when set
    this.followed = false;        // the next render shows a view taken from another viewer
    this.drawOverlay = null;      // (ctx, toScreen) => void: another module's layer on top
    this.#bindEvents();
    new ResizeObserver(() => this.#resize()).observe(canvas);
    this.#resize();
  }

  /**
   * Show a new image; `window` is the initial {center, width} in value units. The overlays
   * stay: the findings panel owns them (an analysis may answer before the pixels arrive).
   */
  setImage(image, window) {
    this.image = { levelWidth: image.width, levelHeight: image.height, monochrome1: false, ...image };
    this.buffer.width = this.image.levelWidth;
    this.buffer.height = this.image.levelHeight;
    this.imageData = new ImageData(this.image.levelWidth, this.image.levelHeight);
    this.pixels32 = new Uint32Array(this.imageData.data.buffer);
    this.tile = null;
    this.frame = image.frame ?? 0;
    this.measurements = [];
    this.measuring = null;
    this.defaultWindow = window || this.fullRange();
    this.reset();
  }

  /**
   * Another frame of the same multi-frame image, {frame, data, valueMin, valueMax} at the
   * level held: window, zoom, pan and measurements stay as they are.
   */
  setFrame(frame) {
    if (!this.image) return;
    this.image = { ...this.image, data: frame.data, valueMin: frame.valueMin, valueMax: frame.valueMax };
    this.frame = frame.frame;
    this.tile = null;
    this.windowDirty = true;
    this.#schedule();
  }

  /** The scale at which the whole image fits the canvas. */
  fitScale() {
    if (!this.image) return 1;
    const rect = this.canvas.getBoundingClientRect();
    const margin = 16;
    return Math.max(MIN_SCALE, Math.min(
      (rect.width - 2 * margin) / this.image.width,
      (rect.height - 2 * margin) / this.image.height,
    ));
  }

  /**
   * The view as fractions, to link another viewer to this one: the window, the zoom
   * relative to fitting, and the image point at the canvas centre as fractions of its size.
   */
  view() {
    if (!this.image) return null;
    const rect = this.canvas.getBoundingClientRect();
    return {
      center: this.center,
      width: this.width,
      zoom: this.scale / this.fitScale(),
      fx: (rect.width / 2 - this.offsetX) / this.scale / this.image.width,
      fy: (rect.height / 2 - this.offsetY) / this.scale / this.image.height,
    };
  }

  /** Follow another viewer's {@link view}; changes under a hair are ignored (no echo). */
  follow(view) {
    if (!this.image || !view) return;
    const mine = this.view();
    const near = (a, b, tolerance) => Math.abs(a - b) <= tolerance;
    if (near(mine.center, view.center, 0.01) && near(mine.width, view.width, 0.01)
      && near(mine.zoom, view.zoom, 1e-4) && near(mine.fx, view.fx, 1e-4) && near(mine.fy, view.fy, 1e-4)) return;
    const rect = this.canvas.getBoundingClientRect();
    this.followed = true;  // its render is no change of the reader's: not linked back
    this.scale = view.zoom * this.fitScale();
    this.offsetX = rect.width / 2 - view.fx * this.image.width * this.scale;
    this.offsetY = rect.height / 2 - view.fy * this.image.height * this.scale;
    this.setWindow(view.center, view.width);
  }

  clear() {
    this.image = null;
    this.tile = null;
    this.measurements = [];
    this.measuring = null;
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
    this.scale = this.fitScale();
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

  /** The measurements on the frame shown (those of no frame show on every frame). */
  visibleMeasurements() {
    return this.measurements.filter((m) => m.frame === null || m.frame === undefined || m.frame === this.frame);
  }

  /** Saved measurements: [{id, kind, points, value, frame}]. */
  setMeasurements(items) {
    this.measurements = items;
    this.#schedule();
  }

  /** A full-detail tile {region: [x, y, w, h], width, height, data} over part of a level. */
  setTile(tile) {
    if (tile) {
      tile.canvas = document.createElement("canvas");
      tile.canvas.width = tile.width;
      tile.canvas.height = tile.height;
      tile.imageData = new ImageData(tile.width, tile.height);
    }
    this.tile = tile;
    this.windowDirty = true;
    this.#schedule();
  }

  /** The visible part of the image, in full-resolution pixels: [x, y, w, h]. */
  visibleRegion() {
    if (!this.image) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x0 = Math.max(0, Math.floor(-this.offsetX / this.scale));
    const y0 = Math.max(0, Math.floor(-this.offsetY / this.scale));
    const x1 = Math.min(this.image.width, Math.ceil((rect.width - this.offsetX) / this.scale));
    const y1 = Math.min(this.image.height, Math.ceil((rect.height - this.offsetY) / this.scale));
    return x1 > x0 && y1 > y0 ? [x0, y0, x1 - x0, y1 - y0] : null;
  }

  /** How many full-resolution pixels one pixel of the level held stands for. */
  get levelFactor() {
    return this.image ? this.image.width / this.image.levelWidth : 1;
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

  /** Draw again (after a change of the {@link drawOverlay} layer). */
  redraw() {
    this.#schedule();
  }

  /** The image point under a pointer event, in full-resolution pixels. */
  imagePoint(event) {
    return this.#imagePoint(event);
  }

  /** Everything the corner overlays and tests need to know. */
  state() {
    return {
      hasImage: Boolean(this.image),
      width: this.image?.width ?? 0,
      height: this.image?.height ?? 0,
      spacing: this.image?.spacing ?? null,
      spacingSource: this.image?.spacingSource ?? null,
      monochrome1: this.image?.monochrome1 ?? false,
      levelFactor: this.levelFactor,
      measurements: this.measurements.length,
      frame: this.frame,
      center: this.center,
      windowWidth: this.width,
      inverted: this.inverted,
      scale: this.scale,
      tool: this.tool,
      cursor: this.cursor,
      followed: this.followed,
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
    // MONOCHROME1 stores dense as dark: its display is inverted, the values and window are not.
    const flip = this.inverted !== Boolean(this.image.monochrome1);
    for (let p = 0; p < 65536; p++) {
      let gray = Math.round(windowValue(valueMin + p * step, this.center, this.width));
      if (flip) gray = 255 - gray;
      lut[p] = 0xff000000 | (gray << 16) | (gray << 8) | gray;  // RGBA bytes on a little-endian host
    }
    const out = this.pixels32;
    for (let i = 0; i < data.length; i++) out[i] = lut[data[i]];
    this.buffer.getContext("2d").putImageData(this.imageData, 0, 0);
    if (this.tile) {
      const tileOut = new Uint32Array(this.tile.imageData.data.buffer);
      const tileData = this.tile.data;
      for (let i = 0; i < tileData.length; i++) tileOut[i] = lut[tileData[i]];
      this.tile.canvas.getContext("2d").putImageData(this.tile.imageData, 0, 0);
    }
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
      if (this.tile) {
        const [tx, ty, tw, th] = this.tile.region;
        ctx.drawImage(this.tile.canvas, this.offsetX + tx * this.scale, this.offsetY + ty * this.scale,
          tw * this.scale, th * this.scale);
      }
      if (this.heatmap && this.showHeatmap) {
        ctx.globalAlpha = this.heatmapOpacity;
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(this.heatmap, this.offsetX, this.offsetY, w, h);
        ctx.globalAlpha = 1;
      }
      if (this.showBoxes) drawn = this.#drawBoxes(ctx);
      const toScreen = ([x, y]) => [this.offsetX + x * this.scale, this.offsetY + y * this.scale];
      drawMeasurements(ctx, this.visibleMeasurements(), toScreen, this.measuring);
      this.drawOverlay?.(ctx, toScreen);
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
    dataset.measurements = String(this.visibleMeasurements().length);
    dataset.tile = this.tile ? this.tile.region.join(",") : "";
    dataset.level = this.image ? `${this.image.levelWidth}x${this.image.levelHeight}` : "";
    dataset.fullWidth = String(this.image?.width ?? 0);
    dataset.fullHeight = String(this.image?.height ?? 0);
    dataset.frame = this.image ? String(this.frame) : "";
    dataset.zoom = this.image ? (this.scale / this.fitScale()).toFixed(3) : "";
    this.#emit();
    this.followed = false;
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
    const measure = MEASURE_TOOLS.has(this.tool) && !pan;
    this.canvas.classList.toggle("tool-pan", pan);
    this.canvas.classList.toggle("tool-measure", measure);
    this.canvas.classList.toggle("tool-wl", !pan && !measure);
  }

  /** A measurement's value from its points and the pixels held. */
  measure(kind, points) {
    const { spacing, spacingSource, unit } = this.image;
    if (kind === "length") return lengthOf(points, spacing, spacingSource);
    if (kind === "angle") return { value: angleOf(points), unit: "deg", warning: null };
    return regionStats(kind, points, this.image, spacing, unit || "value");
  }

  #finishMeasure() {
    const item = this.measuring;
    this.measuring = null;
    item.value = this.measure(item.kind, item.points);
    item.frame = this.onFrameScroll ? this.frame : null;  // a multi-frame image: this frame's
    this.measurements = [...this.measurements, item];
    this.#schedule();
    this.onMeasured?.(item);
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
      const { data, valueMin, valueMax, levelWidth, levelHeight, width, height } = this.image;
      const lcol = Math.min(levelWidth - 1, Math.floor((col * levelWidth) / width));
      const lrow = Math.min(levelHeight - 1, Math.floor((row * levelHeight) / height));
      const value = valueMin + (data[lrow * levelWidth + lcol] * (valueMax - valueMin)) / 65535;
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
      if (!pan && MEASURE_TOOLS.has(this.tool)) {
        const { x, y } = this.#imagePoint(event);
        const point = [x, y];
        if (this.measuring?.kind === "angle" && this.measuring.stage === 2) {
          this.measuring.points[2] = point;
          this.#finishMeasure();
          return;
        }
        this.measuring = { kind: this.tool, points: [point, [...point]], stage: 1, startX: event.clientX, startY: event.clientY };
        this.drag = { mode: "measure" };
        this.#schedule();
        return;
      }
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
      if (this.measuring && (this.drag?.mode === "measure" || this.measuring.stage === 2)) {
        const { x, y } = this.#imagePoint(event);
        this.measuring.points[this.measuring.points.length - 1] = [x, y];
        this.#readout(event);
        this.#schedule();
        return;
      }
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
      if (this.drag.mode === "measure" && this.measuring) {
        const moved = Math.hypot(event.clientX - this.measuring.startX, event.clientY - this.measuring.startY);
        if (moved < 3) {
          this.measuring = null;          // a click, not a drag: nothing measured
        } else if (this.measuring.kind === "angle") {
          this.measuring.stage = 2;       // the second arm follows the pointer to a click
          this.measuring.points.push([...this.measuring.points[1]]);
        } else {
          this.#finishMeasure();
        }
        this.#schedule();
      }
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
      if (this.onFrameScroll && !event.ctrlKey && event.deltaY !== 0) {
        this.onFrameScroll(Math.sign(event.deltaY));  // a multi-frame image: Ctrl+wheel zooms
        return;
      }
      const { sx, sy } = this.#imagePoint(event);
      this.zoomBy(Math.exp(-event.deltaY * 0.0015), sx, sy);
    }, { passive: false });
    canvas.addEventListener("dblclick", () => this.fit());
  }
}
