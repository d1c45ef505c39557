// The report panel: clinical text analysed by the service's NLP pipeline, entities highlighted
// by type, negated and uncertain ones styled apart, and the disease predictions. With a study
// open, the report is saved with it: CheXpert's observations, the discrepancies with the AI
// findings both ways, and an AI-generated draft to edit (section "Report versus AI" below).

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

const DISCREPANCY_NAMES = {
  model_only: "AI only",
  report_only: "Report only",
  not_visible: "AI cannot see",
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
    this.study = null;
    this.studyNumber = 0;  // ignores answers for a study that is no longer open
    this.text = $("#report-text");
    $("#report-compare").addEventListener("click", () => this.compare());
    $("#report-draft").addEventListener("click", () => this.draft());
    this.setStudy(null);
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
      const result = await this.api.analyseText(text, $("#report-explain").value);
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
    this.#explanation(result.text ?? "", result.explanation);
    const models = (result.models ?? []).map(modelText).join(" · ");
    $("#report-models").textContent = models ? `Models: ${models}` : "";
  }

  /** The words behind the best disease, shaded by weight (red: towards it, blue: against). */
  #explanation(text, explanation) {
    show($("#report-explanation"), Boolean(explanation));
    if (!explanation) return;
    const method = explanation.method.replace("-", " ");
    $("#report-explanation-title").textContent =
      `Words behind “${explanation.label}” (${percent(explanation.score, 1)}, ${method})`;
    const nodes = [];
    let at = 0;
    for (const word of explanation.words) {
      if (word.start > at) nodes.push(text.slice(at, word.start));
      const alpha = Math.min(1, Math.abs(word.weight)).toFixed(2);
      const colour = word.weight >= 0 ? `rgba(220, 38, 38, ${alpha})` : `rgba(37, 99, 235, ${alpha})`;
      nodes.push(h("span", {
        class: "word-weight",
        style: { backgroundColor: colour },
        title: `${word.weight >= 0 ? "+" : ""}${word.weight.toFixed(2)}`,
        "data-weight": word.weight.toFixed(3),
      }, text.slice(word.start, word.end)));
      at = word.end;
    }
    if (at < text.length) nodes.push(text.slice(at));
    $("#report-words").replaceChildren(...nodes);
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

  // --- Report versus AI -----------------------------------------------------------------

  /** The open study (or null): the report in force is loaded and compared with its AI. */
  async setStudy(study) {
    if (this.study && this.study.id !== study?.id) this.text.value = "";  // not another's report
    this.study = study;
    const number = ++this.studyNumber;
    $("#report-compare").disabled = !study;
    $("#report-draft").disabled = !study;
    $("#report-study-hint").textContent = study
      ? "Save compares the report with this study's AI findings."
      : "Open a study to save the report with it and compare it with the AI findings.";
    show($("#report-ai"), false);
    show($("#report-draft-banner"), false);
    setError($("#report-ai-error"), "");
    if (!study) return;
    try {
      const saved = await this.api.json("GET", this.#url("report"));
      if (number !== this.studyNumber) return;
      this.text.value = saved.text;
      this.renderComparison(saved);
    } catch (error) {
      if (number === this.studyNumber && error.status !== 404) setError($("#report-ai-error"), error.message);
    }
  }

  /** After a new analysis of the open study: compare the saved report again. */
  async refresh() {
    if (!this.study || $("#report-ai").hidden) return;
    const number = this.studyNumber;
    const saved = await this.api.json("GET", this.#url("report")).catch(() => null);
    if (saved && number === this.studyNumber) this.renderComparison(saved);
  }

  async compare() {
    const text = this.text.value.trim();
    if (!this.study) return;
    if (!text) {
      setError($("#report-ai-error"), "Type or paste the report first.");
      return;
    }
    const number = this.studyNumber;
    setError($("#report-ai-error"), "");
    $("#report-compare").disabled = true;
    try {
      const result = await this.api.json("POST", this.#url("report"), { text });
      if (number === this.studyNumber) this.renderComparison(result);
    } catch (error) {
      if (number === this.studyNumber) setError($("#report-ai-error"), error.message);
    } finally {
      if (number === this.studyNumber) $("#report-compare").disabled = false;
    }
  }

  async draft() {
    if (!this.study) return;
    const number = this.studyNumber;
    setError($("#report-ai-error"), "");
    try {
      const draft = await this.api.json("GET", this.#url("report/draft"));
      if (number !== this.studyNumber) return;
      this.text.value = draft.text;
      $("#report-draft-banner").textContent = `AI-generated draft (${modelText(draft.model)}): `
        + "review every line against the image and edit it before saving.";
      show($("#report-draft-banner"), true);
      this.text.focus();
    } catch (error) {
      if (number === this.studyNumber) setError($("#report-ai-error"), error.message);
    }
  }

  renderComparison(result) {
    show($("#report-ai"), true);
    const stated = (result.observations ?? []).filter((o) => o.status !== "absent");
    $("#report-observations").replaceChildren(...stated.map((o) => {
      const words = [...new Set((o.evidence ?? []).flatMap((e) => [...e.severity, ...e.laterality, ...e.size]))];
      return h("li", { dataset: { label: o.label, status: o.status },
                       title: (o.evidence ?? []).map((e) => e.sentence).join("\n") },
        h("span", {}, o.label),
        h("span", { class: `flag obs-${o.status}` }, o.status),
        ...(words.length ? [h("span", { class: "muted" }, words.join(" "))] : []));
    }));
    if (!stated.length) $("#report-observations").append(h("li", { class: "muted" }, "No observation stated."));
    const comparison = result.comparison;
    show($("#report-ai-none"), !comparison);
    show($("#report-ai-compared"), Boolean(comparison));
    if (!comparison) return;
    $("#report-ai-model").textContent = `AI: ${comparison.model} v${comparison.model_version ?? "?"}`
      + ` · mapping ${comparison.mapping}`;
    const items = comparison.discrepancies ?? [];
    $("#report-discrepancies").replaceChildren(...items.map((d) => h("li",
      { class: `discrepancy discrepancy-${d.kind}`, dataset: { kind: d.kind, status: d.report_status } },
      h("span", { class: "discrepancy-kind" }, DISCREPANCY_NAMES[d.kind] ?? d.kind),
      h("span", {}, d.message))));
    if (!items.length) $("#report-discrepancies").append(h("li", { class: "muted" }, "The report and the AI agree."));
    const agreed = (comparison.agreements ?? []).map((a) => a.observation);
    $("#report-agreements").textContent = agreed.length ? `Both state: ${agreed.join(", ")}.` : "";
    $("#report-cannot-see").textContent = comparison.cannot_see?.length
      ? `The AI cannot see: ${comparison.cannot_see.join(", ")}.` : "";
  }

  #url(path) {
    return `/v1/studies/${encodeURIComponent(this.study.id)}/${path}`;
  }
}
