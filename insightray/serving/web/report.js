// The report panel: clinical text analysed by the service's NLP pipeline, entities highlighted
// by type, negated and uncertain ones styled apart, and the disease predictions.

import { modelText } from "./findings.js";
import { $, h, percent, setError, show } from "./dom.js";

const EXAMPLE = "Chest radiograph, PA view. No evidence of pneumothorax or pleural effusion. "
  + "Possible right lower lobe pneumonia. Patient reports cough and fever for 3 days. "
  + "History of diabetes, on metformin 500 mg twice daily.";

const TYPE_NAMES = {
  DISEASE: "Disease",
  SYMPTOM: "Symptom",
  MEDICATION: "Medication",
  DOSAGE: "Dosage",
  ANATOMY: "Anatomy",
  PROCEDURE: "Procedure",
};

function modifiers(entity) {
  const flags = [];
  if (entity.negated) flags.push("negated");
  if (entity.uncertain) flags.push("uncertain");
  if (entity.historical) flags.push("historical");
  if (entity.hypothetical) flags.push("hypothetical");
  if (entity.experiencer && entity.experiencer !== "patient") flags.push(entity.experiencer);
  return flags;
}

export class ReportPanel {
  /** @param {import("./api.js").Api} api */
  constructor(api) {
    this.api = api;
    this.text = $("#report-text");
    $("#report-analyse").addEventListener("click", () => this.analyse());
    $("#report-example").addEventListener("click", () => {
      this.text.value = EXAMPLE;
      this.text.focus();
    });
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.analyse();
      }
    });
  }

  async analyse() {
    const text = this.text.value.trim();
    if (!text) {
      setError($("#report-error"), "Type or paste some report text first.");
      return;
    }
    setError($("#report-error"), "");
    show($("#report-busy"), true);
    $("#report-analyse").disabled = true;
    try {
      const result = await this.api.analyseText(text);
      this.render(result);
    } catch (error) {
      setError($("#report-error"), error.message);
    } finally {
      show($("#report-busy"), false);
      $("#report-analyse").disabled = false;
    }
  }

  render(result) {
    show($("#report-empty"), false);
    show($("#report-result"), true);
    const entities = [...(result.entities ?? [])].sort((a, b) => a.start - b.start || b.end - a.end);
    const types = [...new Set(entities.map((e) => e.type))];
    $("#report-legend").replaceChildren(
      ...types.map((type) => h("span", { class: "legend-item" },
        h("span", { class: `ent ent-${type} legend-sample` }, TYPE_NAMES[type] ?? type))),
      h("span", { class: "legend-item" }, h("span", { class: "ent negated legend-sample" }, "negated")),
      h("span", { class: "legend-item" }, h("span", { class: "ent uncertain legend-sample" }, "uncertain")),
      h("span", { class: "legend-item" }, h("span", { class: "ent historical legend-sample" }, "historical")),
    );
    $("#report-highlighted").replaceChildren(...this.#highlighted(result.text ?? "", entities));
    $("#report-entities").replaceChildren(...entities.map((entity) => h("li", {},
      h("span", { class: `entity-type ent-${entity.type}` }, entity.type),
      h("span", {}, entity.text),
      ...modifiers(entity).map((flag) => h("span", { class: `flag flag-${flag}` }, flag)),
    )));
    if (!entities.length) $("#report-entities").append(h("li", { class: "muted" }, "No entities found."));
    const diseases = result.diseases ?? [];
    $("#report-diseases").replaceChildren(...diseases.map((d) => h("li", {},
      h("span", {}, d.label),
      h("span", { class: "pct" }, percent(d.score, 1)),
      h("div", { class: "bar" }, h("div", { style: { width: percent(d.score, 1) } })),
    )));
    if (!diseases.length) $("#report-diseases").append(h("li", { class: "muted" }, "No prediction."));
    const models = (result.models ?? []).map(modelText).join(" · ");
    $("#report-models").textContent = models ? `Models: ${models}` : "";
  }

  /** The text as nodes with each entity wrapped in a span (overlaps keep the first). */
  #highlighted(text, entities) {
    const nodes = [];
    let at = 0;
    for (const entity of entities) {
      if (entity.start < at || entity.end > text.length) continue;
      if (entity.start > at) nodes.push(text.slice(at, entity.start));
      const flags = modifiers(entity);
      nodes.push(h("mark", {
        class: ["ent", `ent-${entity.type}`, ...flags.filter((f) => ["negated", "uncertain", "historical"].includes(f))].join(" "),
        title: [TYPE_NAMES[entity.type] ?? entity.type, ...flags].join(" · "),
        dataset: { type: entity.type, negated: String(Boolean(entity.negated)), uncertain: String(Boolean(entity.uncertain)) },
      }, text.slice(entity.start, entity.end)));
      at = entity.end;
    }
    nodes.push(text.slice(at));
    return nodes;
  }
}
