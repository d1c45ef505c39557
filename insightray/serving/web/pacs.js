// The PACS in the worklist (admins, when the service has a PACS configured): a QIDO search by
// patient ID, and "Open", which brings the study in (de-identified and encrypted by the
// service, like an upload) with the boxes of the SR filed beside it in the PACS. Search terms
// go in a POST body, never in a URL.

import { $, h, setError, show } from "./dom.js";

export class PacsSearch {
  /**
   * @param {import("./api.js").Api} api
   * @param {{onOpened: (studies: object[]) => void}} hooks
   */
  constructor(api, hooks) {
    this.api = api;
    this.hooks = hooks;
    this.form = $("#pacs-search");
    this.results = $("#pacs-results");
    this.error = $("#pacs-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.search($("#pacs-patient").value.trim());
    });
  }

  /** Show the search for an admin when the service has a PACS; hide it otherwise. */
  async enable(user) {
    show(this.form, false);
    this.results.replaceChildren();
    if (user?.role !== "admin") return;
    try {
      const status = await this.api.json("GET", "/v1/pacs/status");
      show(this.form, Boolean(status?.dicomweb_url));
    } catch {
      show(this.form, false);
    }
  }

  async search(patientId) {
    setError(this.error, "");
    this.results.replaceChildren();
    try {
      const body = await this.api.json("POST", "/v1/pacs/studies/search",
        patientId ? { patient_id: patientId } : {});
      const items = body?.items ?? [];
      if (!items.length) setError(this.error, "No study in the PACS matches.");
      this.results.replaceChildren(...items.map((study) => this.#item(study)));
    } catch (error) {
      setError(this.error, error.message);
    }
  }

  #item(study) {
    const when = study.study_date
      ? `${study.study_date.slice(0, 4)}-${study.study_date.slice(4, 6)}-${study.study_date.slice(6, 8)}`
      : "";
    const what = [when, (study.modalities ?? []).join("/"), study.description].filter(Boolean).join(" · ");
    const who = [study.patient_name, study.patient_id].filter(Boolean).join(" · ");
    const button = h("button", { class: "btn btn-secondary btn-sm", type: "button" }, "Open");
    const item = h("li", { class: "pacs-study" },
      h("div", { class: "pacs-what" }, what || "study"),
      h("div", { class: "pacs-who muted" }, who),
      button);
    button.addEventListener("click", () => this.#open(study, button));
    return item;
  }

  async #open(study, button) {
    button.disabled = true;
    button.textContent = "Opening…";
    setError(this.error, "");
    try {
      const body = await this.api.json("POST", "/v1/pacs/open", { study_uid: study.study_instance_uid });
      button.textContent = "Opened";
      this.hooks.onOpened(body?.items ?? []);
    } catch (error) {
      button.disabled = false;
      button.textContent = "Open";
      setError(this.error, error.message);
    }
  }
}
