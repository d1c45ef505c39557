// The worklist: the user's studies with their status and AI summary (from the service, so it
// survives a reload), sorted and filtered by result, and uploads with progress. A duplicate
// upload (same de-identified content) offers the study already there.

import { $, formatBytes, formatTime, h, setError, show } from "./dom.js";

const STATUS_LABEL = { stored: "new", analysed: "analysed", analysing: "analysing", failed: "failed" };
const SEVERITY_RANK = { positive: 2, negative: 1, none: 0 };

/** "CR · CHEST PA", or "JPEG" for an image without DICOM attributes. */
export function studyTitle(study) {
  const part = [study.body_part, study.view, study.laterality].filter(Boolean).join(" ");
  const first = study.modality || contentKind(study);
  return part ? `${first} · ${part}` : first;
}

/** "DICOM", "PNG" or "JPEG" from a study's content type. */
export function contentKind(study) {
  const type = study.content_type || "";
  if (type.includes("dicom")) return "DICOM";
  return (type.split("/")[1] || "image").toUpperCase();
}

export class Worklist {
  /**
   * @param {import("./api.js").Api} api
   * @param {{onSelect: (study: object) => void, onUploaded: (study: object, first: boolean) => void}} hooks
   */
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    this.studies = [];
    this.selectedId = null;
    this.localStatus = new Map();   // study id -> "analysing" | "failed" while the page knows better
    this.sort = "newest";           // "newest" | "severity"
    this.filter = "all";            // "all" | "positive" | "negative" | "none"
    this.list = $("#study-list");
    this.empty = $("#worklist-empty");
    this.queue = $("#upload-queue");
    $("#worklist-sort").addEventListener("change", (event) => {
      this.sort = event.target.value;
      this.render();
    });
    $("#worklist-filter").addEventListener("change", (event) => {
      this.filter = event.target.value;
      this.render();
    });
  }

  /** The studies as listed: filtered by result, most urgent first when asked. */
  get visible() {
    const severity = (s) => s.triage?.severity ?? "none";
    const listed = this.studies.filter((s) => this.filter === "all" || severity(s) === this.filter);
    if (this.sort === "severity") {
      listed.sort((a, b) => SEVERITY_RANK[severity(b)] - SEVERITY_RANK[severity(a)]
        || (b.triage?.score ?? 0) - (a.triage?.score ?? 0)
        || String(b.created_at).localeCompare(String(a.created_at)));
    }
    return listed;
  }

  async refresh() {
    const body = await this.api.studies();
    this.studies = (body?.items ?? []).filter((s) => s.status !== "deleted");
    this.studies.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    this.render();
  }

  get selected() {
    return this.studies.find((s) => s.id === this.selectedId) ?? null;
  }

  select(id) {
    const study = this.studies.find((s) => s.id === id);
    if (!study) return;
    this.selectedId = id;
    this.render();
    this.list.querySelector(`[data-id="${id}"]`)?.scrollIntoView({ block: "nearest" });
    this.hooks.onSelect(study);
  }

  /** Select the previous (-1) or next (+1) study. */
  move(delta) {
    const listed = this.visible;
    if (!listed.length) return;
    const index = listed.findIndex((s) => s.id === this.selectedId);
    const next = index < 0 ? 0 : Math.min(listed.length - 1, Math.max(0, index + delta));
    this.select(listed[next].id);
  }

  setStatus(id, status) {
    if (status) this.localStatus.set(id, status);
    else this.localStatus.delete(id);
    this.render();
  }

  replace(study) {
    const index = this.studies.findIndex((s) => s.id === study.id);
    if (index >= 0) this.studies[index] = study;
    else this.studies.unshift(study);
    this.render();
  }

  remove(id) {
    this.studies = this.studies.filter((s) => s.id !== id);
    if (this.selectedId === id) this.selectedId = null;
    this.render();
  }

  render() {
    this.list.replaceChildren(...this.visible.map((study) => this.#item(study)));
    show(this.empty, this.studies.length === 0 && this.queue.children.length === 0);
  }

  #item(study) {
    const status = this.localStatus.get(study.id) ?? study.status ?? "stored";
    const kind = contentKind(study);
    const modality = study.modality || (kind === "DICOM" ? "OT" : kind);
    const size = study.width && study.height ? `${study.width} × ${study.height}` : "";
    const severity = study.triage?.severity ?? "none";
    const summary = study.triage?.text || "";
    const title = studyTitle(study);
    return h("li", {
      class: `study severity-${severity}`,
      role: "option",
      tabindex: "-1",
      "aria-selected": String(study.id === this.selectedId),
      dataset: { id: study.id, status, severity },
      onclick: () => this.select(study.id),
    },
      h("div", { class: "study-thumb" }, modality.slice(0, 4)),
      h("div", { class: "study-title", title }, title),
      h("span", { class: `status status-${status}` }, STATUS_LABEL[status] ?? status),
      h("div", { class: "study-sub" }, [size, formatTime(study.created_at)].filter(Boolean).join(" · ")),
      h("div", { class: "study-id" }, study.id.slice(0, 8)),
      h("div", { class: "study-ai", title: summary }, summary),
    );
  }

  /** Upload files one after another; each gets a row with its progress. */
  async upload(files) {
    let first = true;
    for (const file of files) {
      const row = this.#uploadRow(file);
      this.queue.prepend(row.element);
      show(this.empty, false);
      const { promise } = this.api.upload(file, row.progress);
      try {
        const study = await promise;
        if (study.duplicate) {
          row.duplicate(study);
          continue;
        }
        row.done();
        this.replace(study);
        this.hooks.onUploaded(study, first);
        first = false;
      } catch (error) {
        row.fail(error.message);
      }
    }
  }

  #uploadRow(file) {
    const bar = h("div");
    const state = h("span", { class: "upload-state" }, "0%");
    const error = h("div", { class: "upload-error", hidden: true });
    const element = h("li", { class: "upload" },
      h("div", { class: "upload-row" },
        h("span", { class: "upload-name", title: file.name }, `${file.name} · ${formatBytes(file.size)}`),
        state),
      h("div", { class: "progress" }, bar),
      error);
    return {
      element,
      progress: (fraction) => {
        bar.style.width = `${Math.round(fraction * 100)}%`;
        state.textContent = fraction >= 1 ? "processing…" : `${Math.round(fraction * 100)}%`;
      },
      done: () => {
        element.classList.add("done");
        state.textContent = "stored";
        setTimeout(() => {
          element.remove();
          show(this.empty, this.studies.length === 0 && this.queue.children.length === 0);
        }, 2500);
      },
      duplicate: (study) => {
        element.classList.add("duplicate");
        bar.style.width = "100%";
        state.textContent = "already here";
        setError(error, `The same image is already in the worklist (study ${study.id.slice(0, 8)}, ${formatTime(study.created_at)}).`);
        if (!this.studies.some((s) => s.id === study.id)) this.replace(study);
        const close = () => {
          element.remove();
          show(this.empty, this.studies.length === 0 && this.queue.children.length === 0);
        };
        element.append(
          h("button", { class: "btn btn-secondary btn-sm", type: "button", onclick: () => { close(); this.select(study.id); } }, "Open it"),
          h("button", { class: "btn btn-ghost btn-sm", type: "button", onclick: close }, "Dismiss"),
        );
      },
      fail: (message) => {
        element.classList.add("failed");
        state.textContent = "failed";
        setError(error, message);
        element.append(h("button", {
          class: "btn btn-ghost btn-sm",
          type: "button",
          onclick: () => {
            element.remove();
            show(this.empty, this.studies.length === 0 && this.queue.children.length === 0);
          },
        }, "Dismiss"));
      },
    };
  }
}
