// The DICOM tag browser: the stored header, filterable. Identifying values (names, IDs, dates)
// come from the service only for roles allowed to see them; otherwise the service withholds
// them and the panel says so.

import { $, h, setError, show } from "./dom.js";

export class TagBrowser {
  /** @param {import("./api.js").Api} api */
  constructor(api) {
    this.api = api;
    this.study = null;
    this.rows = [];
    $("#tags-filter").addEventListener("input", () => this.render());
  }

  async setStudy(study) {
    this.study = study;
    this.rows = [];
    setError($("#tags-error"), "");
    $("#tags-note").textContent = "";
    const dicom = Boolean(study && (study.content_type || "").includes("dicom"));
    show($("#tags-empty"), !dicom);
    $("#tags-empty").textContent = study ? "Not a DICOM file: no tags." : "Open a DICOM study to see its tags.";
    this.render();
    if (!dicom) return;
    try {
      const body = await this.api.tags(study.id);
      if (this.study?.id !== study.id) return;
      this.rows = body.items ?? [];
      $("#tags-note").textContent = [
        body.phi_visible ? "Identifying values shown (your role may see them)." : "Identifying values withheld for your role.",
        body.deidentified ? "The stored file is de-identified." : "",
      ].filter(Boolean).join(" ");
      this.render();
    } catch (error) {
      setError($("#tags-error"), `Tags: ${error.message}`);
    }
  }

  render() {
    const needle = $("#tags-filter").value.trim().toLowerCase();
    const rows = needle
      ? this.rows.filter((r) => `${r.tag} ${r.keyword} ${r.value}`.toLowerCase().includes(needle))
      : this.rows;
    $("#tags-body").replaceChildren(...rows.map((row) => h("tr", {
      class: `${row.phi ? "phi" : ""} depth-${row.depth}`,
      dataset: { keyword: row.keyword, phi: String(row.phi) },
    },
      h("td", { class: "tag-code" }, row.tag),
      h("td", { class: "tag-keyword", title: row.keyword }, `${row.depth ? "› " : ""}${row.keyword}`),
      h("td", { class: "tag-vr" }, row.vr),
      h("td", { class: "tag-value", title: row.value }, row.value),
    )));
  }
}
