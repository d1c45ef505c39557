// Window presets of a study: the DICOM file's own windows (named from its
// WindowCenterWidthExplanation, else "Window N"), an automatic percentile window, lung and bone
// windows (Hounsfield units for CT, percentiles of the image for radiographs and PNG/JPEG),
// and the full value range. The first is the default: the file's window, else the automatic one.

/** CT windows in Hounsfield units (centre, width), as reading rooms commonly set them. */
const CT_WINDOWS = [
  { name: "Lung (CT)", center: -600, width: 1500 },
  { name: "Bone (CT)", center: 400, width: 1800 },
  { name: "Soft tissue (CT)", center: 40, width: 400 },
  { name: "Brain (CT)", center: 40, width: 80 },
];

/** The values at the given fractions of the pixels, from a histogram of the uint16 codes. */
export function percentiles(pixels, fractions) {
  const histogram = new Uint32Array(65536);
  const data = pixels.data;
  for (let i = 0; i < data.length; i++) histogram[data[i]]++;
  const step = (pixels.valueMax - pixels.valueMin) / 65535;
  const wanted = fractions.map((f) => f * data.length);
  const found = new Array(fractions.length).fill(pixels.valueMax);
  let seen = 0, next = 0;
  const order = fractions.map((f, i) => [f, i]).sort((a, b) => a[0] - b[0]);
  for (let code = 0; code < 65536 && next < order.length; code++) {
    seen += histogram[code];
    while (next < order.length && seen >= wanted[order[next][1]]) {
      found[order[next][1]] = pixels.valueMin + code * step;
      next++;
    }
  }
  return found;
}

function between(name, low, high) {
  return { name, center: (low + high) / 2, width: Math.max(high - low, 1) };
}

/** Every preset of a study, the default first. */
export function windowPresets(study, pixels) {
  const stored = (study.windows ?? [])
    .filter((w) => w.name !== "Full range")
    .filter((w) => Number.isFinite(w.center) && Number.isFinite(w.width) && w.width > 0)
    .map((w, i) => ({ name: w.name || `Window ${i + 1}`, center: w.center, width: w.width }));
  const [p1, p2, p40, p70, p99, p998] = percentiles(pixels, [0.01, 0.02, 0.4, 0.7, 0.99, 0.998]);
  const auto = between("Auto (1–99 %)", p1, p99);
  const tissue = study.modality === "CT"
    ? CT_WINDOWS
    : [between("Lung (soft, 2–70 %)", p2, p70), between("Bone (40–99.8 %)", p40, p998)];
  const full = between("Full range", pixels.valueMin, pixels.valueMax);
  const list = [...stored, auto, ...tissue];
  const same = (a, b) => Math.abs(a.center - b.center) < 0.5 && Math.abs(a.width - b.width) < 1;
  if (!list.some((w) => same(w, full))) list.push(full);
  return list;
}

/** What RadiographViewer.setImage needs to show a study's pixels (as api.pixels answers them). */
export function imageOf(study, pixels) {
  return {
    width: pixels.fullWidth,
    height: pixels.fullHeight,
    levelWidth: pixels.width,
    levelHeight: pixels.height,
    data: pixels.data,
    valueMin: pixels.valueMin,
    valueMax: pixels.valueMax,
    spacing: study.pixel_spacing ?? null,
    spacingSource: study.spacing_source ?? null,
    monochrome1: study.photometric === "MONOCHROME1",
    unit: study.modality === "CT" ? "HU" : "value",
    frame: pixels.frame,
  };
}
