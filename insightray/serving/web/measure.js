// Reading-room measurements: length and angle, rectangle and ellipse regions with their
// statistics. Points are in full-resolution image pixels; `spacing` is [row, column] mm.
// The service recomputes lengths and angles from the saved points (imaging/measure.py).

/** Length of a line: {value, unit: "mm" | "px", warning}. */
export function lengthOf([a, b], spacing, spacingSource) {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  if (spacing && spacing[0] > 0 && spacing[1] > 0) {
    const warning = spacingSource === "ImagerPixelSpacing"
      ? "calibrated at the detector (ImagerPixelSpacing): anatomy is magnified, true size smaller"
      : null;
    return { value: Math.hypot(dx * spacing[1], dy * spacing[0]), unit: "mm", warning };
  }
  return { value: Math.hypot(dx, dy), unit: "px", warning: null };
}

/** The angle in degrees (0 to 180) at the middle of three points. */
export function angleOf([a, b, c]) {
  const first = Math.atan2(a[1] - b[1], a[0] - b[0]);
  const second = Math.atan2(c[1] - b[1], c[0] - b[0]);
  const degrees = Math.abs((first - second) * 180 / Math.PI) % 360;
  return degrees <= 180 ? degrees : 360 - degrees;
}

/**
 * Mean, SD, min, max of the values inside a rectangle or the ellipse it bounds.
 * `image` is the viewer's {width, height, data, valueMin, valueMax, levelWidth, levelHeight}:
 * the pixels sampled are the level's (the full image when it is small enough).
 */
export function regionStats(kind, [a, b], image, spacing, unit) {
  const fx = image.levelWidth / image.width;
  const fy = image.levelHeight / image.height;
  const x0 = Math.min(a[0], b[0]) * fx, x1 = Math.max(a[0], b[0]) * fx;
  const y0 = Math.min(a[1], b[1]) * fy, y1 = Math.max(a[1], b[1]) * fy;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const rx = Math.max((x1 - x0) / 2, 1e-9), ry = Math.max((y1 - y0) / 2, 1e-9);
  const step = (image.valueMax - image.valueMin) / 65535;
  let count = 0, sum = 0, squares = 0, min = Infinity, max = -Infinity;
  for (let row = Math.max(0, Math.floor(y0)); row < Math.min(image.levelHeight, Math.ceil(y1)); row++) {
    for (let col = Math.max(0, Math.floor(x0)); col < Math.min(image.levelWidth, Math.ceil(x1)); col++) {
      const px = col + 0.5, py = row + 0.5;
      if (px < x0 || px > x1 || py < y0 || py > y1) continue;
      if (kind === "ellipse" && ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 > 1) continue;
      const value = image.valueMin + image.data[row * image.levelWidth + col] * step;
      count++; sum += value; squares += value * value;
      if (value < min) min = value;
      if (value > max) max = value;
    }
  }
  const mean = count ? sum / count : 0;
  const sd = count > 1 ? Math.sqrt(Math.max(0, (squares - count * mean * mean) / (count - 1))) : 0;
  const w = Math.abs(b[0] - a[0]), h = Math.abs(b[1] - a[1]);
  const pixelsArea = kind === "ellipse" ? Math.PI * w * h / 4 : w * h;
  const calibrated = spacing && spacing[0] > 0 && spacing[1] > 0;
  return {
    mean, sd, min: count ? min : 0, max: count ? max : 0, count, unit,
    area: calibrated ? pixelsArea * spacing[0] * spacing[1] : pixelsArea,
    area_unit: calibrated ? "mm²" : "px²",
  };
}

/** The one-line label of a measurement's value. */
export function measurementText(kind, value) {
  if (!value) return "";
  if (kind === "length") return `${value.value.toFixed(1)} ${value.unit}${value.warning ? " *" : ""}`;
  if (kind === "angle") return `${value.value.toFixed(1)}°`;
  const number = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));
  return `mean ${number(value.mean)} ± ${number(value.sd)} ${value.unit} · ${number(value.area)} ${value.area_unit}`;
}

/** Draw saved and in-progress measurements; `toScreen` maps image points to the canvas. */
export function drawMeasurements(ctx, items, toScreen, active) {
  ctx.save();
  ctx.lineWidth = 1.5;
  ctx.font = "600 12px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  for (const item of [...items, ...(active ? [active] : [])]) {
    const points = item.points.map(toScreen);
    ctx.strokeStyle = item === active ? "#fde047" : "#67e8f9";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.beginPath();
    if (item.kind === "length" || item.kind === "angle") {
      points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    } else if (item.kind === "rectangle") {
      const [[x0, y0], [x1, y1]] = points;
      ctx.rect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    } else if (item.kind === "ellipse") {
      const [[x0, y0], [x1, y1]] = points;
      ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
    }
    ctx.stroke();
    for (const [x, y] of points) ctx.fillRect(x - 2, y - 2, 4, 4);
    const text = measurementText(item.kind, item.value);
    if (text) {
      const [x, y] = points[points.length - 1];
      const width = ctx.measureText(text).width + 8;
      ctx.fillStyle = "rgba(5, 7, 10, 0.75)";
      ctx.fillRect(x + 6, y - 20, width, 18);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(text, x + 10, y - 4);
    }
  }
  ctx.restore();
}
