// Insight Ray viewer: sign-in, worklist, viewer, AI findings, report and assistant panels.
// The page title and URL never change with the study: no identifiers end up in history,
// bookmarks or referrers.

import { Api } from "./api.js";
import { AssistantPanel } from "./assistant.js";
import { PriorComparison } from "./compare.js";
import { $, $$, confirmDialog, formatTime, setError, show, toast } from "./dom.js";
import { FindingsPanel } from "./findings.js";
import { FrameScroller } from "./frames.js";
import { LabellingPanel } from "./labelling.js";
import { ReportPanel } from "./report.js";
import { MeasurementsPanel } from "./measurements.js";
import { PacsSearch } from "./pacs.js";
import { TagBrowser } from "./tags.js";
import { RadiographViewer } from "./viewer.js";
import { imageOf, windowPresets } from "./windows.js";
import { contentKind, studyTitle, Worklist } from "./worklist.js";

const AUTO_TASK_KEY = "insightray.autoTask";

const api = new Api(() => sessionEnded());
const viewer = new RadiographViewer($("#canvas"), updateCorners);
const findings = new FindingsPanel(viewer, api, {
  onHeatmapChange: (on) => $('[data-action="heatmap"]').setAttribute("aria-pressed", String(on)),
});
const worklist = new Worklist(api, { onSelect: openStudy, onUploaded: studyUploaded });
const report = new ReportPanel(api);
new AssistantPanel(api);
const measurements = new MeasurementsPanel(viewer, api);
const tags = new TagBrowser(api);
const frames = new FrameScroller(viewer, api);
const compare = new PriorComparison(viewer, api);
const pacs = new PacsSearch(api, { onOpened: studiesFromPacs });
const labelling = new LabellingPanel(viewer, api, { open: openForLabelling, currentId: () => current?.id ?? null });

let current = null;       // the open study
let presets = [];         // window presets of the open study
let loadNumber = 0;       // ignores answers for a study that is no longer open

// --- sign in ------------------------------------------------------------------------------

function showSignIn(message = "") {
  show($("#app"), false);
  show($("#signin"), true);
  setError($("#signin-error"), message);
  $("#signin-password").value = "";
  ($("#signin-username").value ? $("#signin-password") : $("#signin-username")).focus();
}

async function showApp(user) {
  show($("#signin"), false);
  show($("#app"), true);
  const chip = $("#user-chip");
  chip.replaceChildren();
  const name = document.createElement("strong");
  name.textContent = user.username;
  const role = document.createElement("span");
  role.className = "role";
  role.textContent = user.role;
  chip.append(name, role);
  closeStudy();
  pacs.enable(user);
  labelling.enable(user);
  selectTab("findings");
  try {
    await worklist.refresh();
  } catch (error) {
    toast(`Worklist: ${error.message}`, "error");
  }
}

/** Studies brought in from the PACS: list them and open the first. */
async function studiesFromPacs(studies) {
  for (const study of studies) worklist.replace(study);
  if (studies.length) worklist.select(studies[0].id);
}

/** The boxes of the PACS SR filed beside an image, shown as a detection result. */
function srResult(study) {
  return {
    task: "cxr",
    result_id: `sr-${study.id}`,
    model: { name: "SR from the PACS", version: "" },
    findings: study.sr_findings,
  };
}

function sessionEnded() {
  if ($("#app").hidden) return;
  api.signOut();
  showSignIn("Your session has ended: sign in again.");
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("#signin-submit");
  button.disabled = true;
  setError($("#signin-error"), "");
  try {
    const username = $("#signin-username").value.trim();
    const answer = await api.signIn(username, $("#signin-password").value);
    await showApp({ username, role: answer.role ?? "" });
  } catch (error) {
    setError($("#signin-error"), error.message);
    $("#signin-password").select();
  } finally {
    button.disabled = false;
  }
});

$("#signout-button").addEventListener("click", () => {
  api.signOut();
  labelling.stop();
  closeStudy();
  showSignIn();
});

// --- studies ------------------------------------------------------------------------------

function closeStudy() {
  current = null;
  loadNumber++;
  viewer.clear();
  findings.clear();
  findings.setStudyOpen(false);
  presets = [];
  measurements.setStudy(null);
  tags.setStudy(null);
  report.setStudy(null);
  frames.setStudy(null);
  compare.setStudy(null);
  const placeholder = document.createElement("option");
  placeholder.textContent = "Window";
  $("#preset-select").replaceChildren(placeholder);
  setToolsEnabled(false);
  show($("#stage-empty"), true);
  show($("#stage-loading"), false);
  setError($("#stage-error"), "");
}

async function openStudy(study) {
  if (current?.id === study.id) return;
  closeStudy();
  current = study;
  report.setStudy(study);
  const number = loadNumber;
  show($("#stage-empty"), false);
  show($("#stage-loading"), true);
  findings.setStudyOpen(true);
  $("#delete-button").disabled = false;
  try {
    const pixels = await api.pixels(study.id);
    if (number !== loadNumber) return;
    presets = windowPresets(study, pixels);
    viewer.setImage(imageOf(study, pixels), presets[0]);
    fillPresets();
    setToolsEnabled(true);
    measurements.setStudy(study);
    tags.setStudy(study);
    frames.setStudy(study, pixels);
    compare.setStudy(study);
  } catch (error) {
    if (number !== loadNumber) return;
    setError($("#stage-error"), `The image cannot be shown: ${error.message}`);
  } finally {
    if (number === loadNumber) show($("#stage-loading"), false);
  }
  if (study.results?.length) {
    try {
      const body = await api.results(study.id);
      if (number === loadNumber) findings.setResults(body?.items ?? []);
    } catch (error) {
      if (number === loadNumber) findings.setError(`Results: ${error.message}`);
    }
  } else if (study.sr_findings?.length) {
    findings.setResults([srResult(study)]);
  }
}

/** Open a study of the labelling queue; resolves to it, or null if another was opened since. */
async function openForLabelling(id) {
  if (!worklist.studies.some((s) => s.id === id)) worklist.replace(await api.study(id));
  worklist.selectedId = id;
  worklist.render();
  await openStudy(worklist.studies.find((s) => s.id === id));
  return current?.id === id ? current : null;
}

function fillPresets() {
  const select = $("#preset-select");
  select.replaceChildren(...presets.map((p, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = `${i + 1} · ${p.name}`;
    return option;
  }));
  select.value = "0";
}

/** Viewer tools work only with an image on the canvas (the heatmap button follows its result). */
function setToolsEnabled(enabled) {
  for (const control of $$('.toolbar .btn-tool:not([data-action="heatmap"]), #preset-select')) control.disabled = !enabled;
  $("#delete-button").disabled = !enabled && !current;
}

function applyPreset(index) {
  const preset = presets[index];
  if (!preset) return;
  viewer.setWindow(preset.center, preset.width);
  $("#preset-select").value = String(index);
}

$("#preset-select").addEventListener("change", (event) => {
  applyPreset(Number(event.target.value));
  $("#canvas").focus();
});

async function analyse(task, study = current) {
  if (!study) return;
  const id = study.id;
  worklist.setStatus(id, "analysing");
  if (current?.id === id) {
    findings.setError("");
    findings.setBusy(true);
    selectTab("findings");
  }
  try {
    const result = await api.analyse(id, task);
    worklist.setStatus(id, null);
    // The service's study carries the worklist summary ("2 findings", "fracture 99 %").
    const fresh = await api.study(id).catch(() => null);
    worklist.replace(fresh ?? { ...study, status: "analysed", results: [...(study.results ?? []), result] });
    if (current?.id === id) {
      current = worklist.studies.find((s) => s.id === id) ?? current;
      findings.addResult(result);
      report.refresh();
    }
  } catch (error) {
    worklist.setStatus(id, "failed");
    if (current?.id === id) findings.setError(error.message);
    else toast(`Analysis failed: ${error.message}`, "error");
  } finally {
    if (current?.id === id) findings.setBusy(false);
  }
}

function studyUploaded(study, first) {
  if (first) worklist.select(study.id);
  const task = $("#auto-task").value;
  if (task) analyse(task, study);
}

$("#run-cxr").addEventListener("click", () => analyse("cxr"));
$("#run-fracture").addEventListener("click", () => analyse("fracture"));
$("#refresh-button").addEventListener("click", () => worklist.refresh().catch((e) => toast(e.message, "error")));
$("#delete-button").addEventListener("click", async () => {
  if (!current) return;
  const study = current;
  const ok = await confirmDialog("Delete this study?", "The image and its AI results are erased from the store. This cannot be undone.", "Delete");
  if (!ok) return;
  try {
    await api.deleteStudy(study.id);
    worklist.remove(study.id);
    closeStudy();
    toast("Study deleted.", "ok");
  } catch (error) {
    toast(`Delete failed: ${error.message}`, "error");
  }
});

const autoTask = $("#auto-task");
autoTask.value = localStorage.getItem(AUTO_TASK_KEY) ?? "cxr";
autoTask.addEventListener("change", () => localStorage.setItem(AUTO_TASK_KEY, autoTask.value));

// --- upload: click, keyboard or drop anywhere ---------------------------------------------

const fileInput = $("#file-input");
$("#dropzone").addEventListener("click", () => fileInput.click());
$("#dropzone").addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    fileInput.click();
  }
});
fileInput.addEventListener("change", () => {
  const files = [...fileInput.files];
  fileInput.value = "";
  if (files.length) worklist.upload(files);
});

let dragDepth = 0;
const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
window.addEventListener("dragenter", (event) => {
  if (!hasFiles(event) || $("#app").hidden) return;
  dragDepth++;
  show($("#drop-overlay"), true);
  $("#dropzone").classList.add("dragging");
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) {
    show($("#drop-overlay"), false);
    $("#dropzone").classList.remove("dragging");
  }
});
window.addEventListener("dragover", (event) => {
  if (hasFiles(event)) event.preventDefault();
});
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dragDepth = 0;
  show($("#drop-overlay"), false);
  $("#dropzone").classList.remove("dragging");
  const files = [...(event.dataTransfer?.files ?? [])];
  if (files.length && !$("#app").hidden) worklist.upload(files);
});

// --- viewer tools -------------------------------------------------------------------------

function setTool(tool) {
  viewer.setTool(tool);
  for (const button of $$("[data-tool]")) button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
}

function toggleBoxes() {
  const button = $('[data-action="boxes"]');
  const on = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(on));
  viewer.setShowBoxes(on);
}

const actions = {
  "zoom-in": () => viewer.zoomBy(1.25),
  "zoom-out": () => viewer.zoomBy(0.8),
  fit: () => viewer.fit(),
  invert: () => viewer.toggleInvert(),
  reset: () => {
    viewer.reset();
    $("#preset-select").value = "0";
  },
  boxes: toggleBoxes,
  heatmap: () => findings.toggleHeatmap(),
};

// Full detail where the reader looks: once the view settles on a part of a large image shown
// finer than its level, that part comes at full resolution (one tile, at most 4096 px a side).
let tileTimer = 0;
let tileAsked = "";
function scheduleTile(state) {
  if (!current || !state.hasImage || state.levelFactor <= 1) return;
  clearTimeout(tileTimer);
  tileTimer = setTimeout(async () => {
    const region = viewer.visibleRegion();
    if (!region || viewer.scale * viewer.levelFactor <= 1.05) return;
    if (Math.max(region[2], region[3]) > 4096) return;
    const frame = viewer.frame;
    const key = `${current.id}:${frame}:${region.join(",")}`;
    if (key === tileAsked) return;
    tileAsked = key;
    const id = current.id;
    try {
      const tile = await api.pixels(id, region, frames.active ? frame : null);
      if (current?.id === id && viewer.frame === frame) viewer.setTile({ region: tile.region, width: tile.width, height: tile.height, data: tile.data });
    } catch (error) {
      toast(`Full detail: ${error.message}`, "error");
    }
  }, 300);
}

for (const button of $$("[data-tool]")) button.addEventListener("click", () => setTool(button.dataset.tool));
for (const button of $$("[data-action]")) button.addEventListener("click", () => actions[button.dataset.action]());

function updateCorners(state) {
  $('[data-action="invert"]').setAttribute("aria-pressed", String(state.inverted));
  if (!state.hasImage || !current) {
    for (const corner of $$(".corner")) corner.textContent = "";
    return;
  }
  scheduleTile(state);
  compare.sync(state);
  const spacing = state.spacing
    ? `${Number(state.spacing[1]).toFixed(3)} mm/px${state.spacingSource === "ImagerPixelSpacing" ? " (detector)" : ""}`
    : "spacing unknown: lengths in px";
  const level = state.levelFactor > 1 ? `  (level 1:${state.levelFactor.toFixed(1)})` : "";
  const descriptions = [current.study_description, current.series_description].filter(Boolean).join(" / ");
  $("#overlay-tl").textContent = [
    `${studyTitle(current)} · ${contentKind(current)}`,
    descriptions,
    `${state.width} × ${state.height} px${level}`,
    spacing,
  ].filter(Boolean).join("\n");
  $("#overlay-tr").textContent = `Study ${current.id.slice(0, 8)}\n${formatTime(current.created_at)}${current.photometric ? `\n${current.photometric}` : ""}`;
  $("#overlay-bl").textContent = `W ${Math.round(state.windowWidth)}  L ${Math.round(state.center)}${state.inverted ? "  INVERTED" : ""}\nZoom ${(state.scale * 100).toFixed(0)}%`;
  const cursor = state.cursor;
  if (cursor) {
    const mm = state.spacing ? `  (${(cursor.col * state.spacing[1]).toFixed(1)}, ${(cursor.row * state.spacing[0]).toFixed(1)} mm)` : "";
    $("#overlay-br").textContent = `x ${cursor.col}  y ${cursor.row}${mm}\nValue ${Number(cursor.value.toFixed(1))}`;
  } else {
    $("#overlay-br").textContent = "";
  }
}

// --- panels and shortcuts -----------------------------------------------------------------

function selectTab(name) {
  for (const tab of $$(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of $$(".tab-panel")) show(panel, panel.id === `tab-${name}`);
}

for (const tab of $$(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));

function toggleHelp(visible = $("#help").hidden) {
  show($("#help"), visible);
  if (visible) $("#help-close").focus();
}

$("#help-button").addEventListener("click", () => toggleHelp(true));
$("#help-close").addEventListener("click", () => toggleHelp(false));
$("#help").addEventListener("click", (event) => {
  if (event.target.id === "help") toggleHelp(false);
});

const shortcuts = {
  "?": () => toggleHelp(),
  u: () => fileInput.click(),
  w: () => setTool("wl"),
  p: () => setTool("pan"),
  l: () => setTool("length"),
  a: () => setTool("angle"),
  g: () => setTool("rectangle"),
  e: () => setTool("ellipse"),
  i: actions.invert,
  r: actions.reset,
  "+": actions["zoom-in"],
  "=": actions["zoom-in"],
  "-": actions["zoom-out"],
  0: actions.fit,
  b: actions.boxes,
  h: actions.heatmap,
  "[": () => findings.nudgeThreshold(-0.05),
  "]": () => findings.nudgeThreshold(0.05),
  d: () => analyse("cxr"),
  x: () => analyse("fracture"),
  f: () => selectTab("findings"),
  m: () => selectTab("tags"),
  k: () => {
    if (!$('[data-tab="label"]').hidden) selectTab("label");
  },
  t: () => {
    selectTab("report");
    $("#report-text").focus();
  },
  q: () => {
    selectTab("assistant");
    $("#chat-input").focus();
  },
  ArrowLeft: () => frames.step(-1),
  ArrowRight: () => frames.step(1),
  c: () => compare.toggle(),
  ArrowDown: () => worklist.move(1),
  ArrowUp: () => worklist.move(-1),
};

/** Keys belong to the field: text entry, selects, and the arrow keys of sliders. */
function isTextEntry(target) {
  if (!(target instanceof Element)) return false;
  if (target.closest("textarea, select, [contenteditable]")) return true;
  if (target.tagName !== "INPUT") return false;
  return !["checkbox", "radio", "range", "button", "submit"].includes(target.type);
}

document.addEventListener("keydown", (event) => {
  if ($("#app").hidden) return;
  const typing = isTextEntry(event.target);
  if (event.key === "Escape") {
    if (viewer.measuring) viewer.measuring = null;
    if (!$("#help").hidden) toggleHelp(false);
    else if (typing) event.target.blur();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey || !$("#confirm").hidden) return;
  if (event.target.type === "range" && event.key.startsWith("Arrow")) return;
  if (event.key === " " && !event.repeat) {
    viewer.setPanHeld(true);
    event.preventDefault();
    return;
  }
  if (/^[1-9]$/.test(event.key)) {
    applyPreset(Number(event.key) - 1);
    return;
  }
  const action = labelling.shortcut(event.key) ?? shortcuts[event.key] ?? shortcuts[event.key.toLowerCase()];
  if (action) {
    event.preventDefault();
    action();
  }
});
document.addEventListener("keyup", (event) => {
  if (event.key === " ") viewer.setPanHeld(false);
});

// --- start --------------------------------------------------------------------------------

async function start() {
  if (!api.signedIn) {
    showSignIn();
    return;
  }
  try {
    await showApp(await api.me());
  } catch {
    api.signOut();
    showSignIn();
  }
}

start();
