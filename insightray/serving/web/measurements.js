// The measurements card: what the reader measured on the open study, saved with it on the
// service (so they come back after a reload), each removable.

import { $, h, show, toast } from "./dom.js";
import { measurementText } from "./measure.js";

const KIND_LABEL = { length: "Length", angle: "Angle", rectangle: "Rectangle", ellipse: "Ellipse" };

export class MeasurementsPanel {
  /**
   * @param {import("./viewer.js").RadiographViewer} viewer
   * @param {import("./api.js").Api} api
   */
  constructor(viewer, api) {
    this.viewer = viewer;
    this.api = api;
    this.study = null;
    this.items = [];
    viewer.onMeasured = (item) => this.#save(item);
    $("#measure-sr").addEventListener("click", () => this.#downloadSr());
  }

  /** The measurements as a DICOM SR file (DICOM studies: the SR references the image). */
  async #downloadSr() {
    const study = this.study;
    if (!study) return;
    try {
      const blob = await this.api.blob(`/v1/studies/${encodeURIComponent(study.id)}/measurements/sr`);
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: "measurements.sr.dcm" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      toast(`DICOM SR: ${error.message}`, "error");
    }
  }

  /** Load the saved measurements of a study (null: none open). */
  async setStudy(study) {
    this.study = study;
    this.items = [];
    this.render();
    if (!study) return;
    try {
      const body = await this.api.measurements(study.id);
      if (this.study?.id !== study.id) return;
      this.items = body?.items ?? [];
      this.viewer.setMeasurements(this.items);
      this.render();
    } catch (error) {
      toast(`Measurements: ${error.message}`, "error");
    }
  }

  async #save(item) {
    const study = this.study;
    if (!study) return;
    const body = { kind: item.kind, points: item.points.map(([x, y]) => [x, y]) };
    if (item.frame !== null && item.frame !== undefined) body.frame = item.frame;
    if (item.kind === "rectangle" || item.kind === "ellipse") body.stats = item.value;
    try {
      const saved = await this.api.saveMeasurement(study.id, body);
      if (this.study?.id !== study.id) return;
      // Lengths and angles as the service recomputed them; region statistics as measured here.
      const value = item.kind === "length" || item.kind === "angle" ? saved.value : item.value;
      this.items = [...this.items, { ...saved, value }];
      this.viewer.setMeasurements(this.items);
      this.render();
    } catch (error) {
      this.viewer.setMeasurements(this.items);
      toast(`Measurement not saved: ${error.message}`, "error");
    }
  }

  async #remove(item) {
    const study = this.study;
    try {
      await this.api.deleteMeasurement(study.id, item.id);
      this.items = this.items.filter((m) => m.id !== item.id);
      this.viewer.setMeasurements(this.items);
      this.render();
    } catch (error) {
      toast(`Delete failed: ${error.message}`, "error");
    }
  }

  render() {
    const card = $("#measure-card");
    show(card, Boolean(this.study));
    const list = $("#measure-list");
    list.replaceChildren(...this.items.map((item) => h("li", {
      class: "measurement",
      dataset: { id: item.id, kind: item.kind, frame: item.frame ?? "" },
    },
      h("span", { class: "measurement-kind" },
        `${KIND_LABEL[item.kind] ?? item.kind}${item.frame === null || item.frame === undefined ? "" : ` · frame ${item.frame + 1}`}`),
      h("span", { class: "measurement-value" }, measurementText(item.kind, item.value)),
      h("button", {
        class: "btn btn-ghost btn-sm",
        type: "button",
        title: "Delete this measurement",
        onclick: () => this.#remove(item),
      }, "×"),
      item.value?.warning ? h("span", { class: "measurement-warning" }, `* ${item.value.warning}`) : "",
    )));
    show($("#measure-empty"), this.items.length === 0);
    const dicom = (this.study?.content_type ?? "").includes("dicom");
    show($("#measure-sr"), dicom && this.items.length > 0);
  }
}
