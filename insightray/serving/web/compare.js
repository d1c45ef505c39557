// Side-by-side comparison with a prior study of the same patient: the service lists the
// priors (same patient pseudonym, an earlier study date; `/v1/studies/{id}/priors`, which
// gives intervals, never dates), and the chosen one opens beside the current study. Window
// and level, zoom and pan are linked both ways: the prior follows the current study's view
// (window in the images' values, zoom relative to fitting each image, the same point of the
// image at the centre) and the current one follows the prior when the reader works there.

import { $, show, toast } from "./dom.js";
import { RadiographViewer } from "./viewer.js";
import { imageOf, windowPresets } from "./windows.js";
import { studyTitle } from "./worklist.js";

export class PriorComparison {
  /**
   * @param {RadiographViewer} viewer the current study's viewer
   * @param {import("./api.js").Api} api
   */
  constructor(viewer, api) {
    this.viewer = viewer;
    this.api = api;
    this.study = null;
    this.priors = [];
    this.prior = null;          // the prior on screen
    this.number = 0;            // ignores answers for a study no longer open
    this.other = new RadiographViewer($("#prior-canvas"), (state) => this.#priorChanged(state));
    $("#prior-select").addEventListener("change", (event) => {
      const chosen = this.priors.find((p) => p.id === event.target.value);
      if (chosen) this.open(chosen);
      else this.close();
    });
    $("#prior-close").addEventListener("click", () => this.close());
  }

  /** The current study changed (null: none open): list its priors. */
  async setStudy(study) {
    this.close();
    this.study = study;
    this.priors = [];
    const number = ++this.number;
    this.#fill();
    if (!study) return;
    try {
      const body = await this.api.priors(study.id);
      if (number !== this.number) return;
      this.priors = body?.items ?? [];
      this.#fill();
    } catch (error) {
      toast(`Priors: ${error.message}`, "error");
    }
  }

  /** C: the latest prior, or back to one image. */
  toggle() {
    if (this.prior) this.close();
    else if (this.priors.length) this.open(this.priors[0]);
    else if (this.study) toast("No prior study of this patient in your worklist.", "info");
  }

  async open(prior) {
    const number = this.number;
    this.prior = prior;
    $("#prior-select").value = prior.id;
    $("#stage").classList.add("comparing");
    show($("#prior-pane"), true);
    $("#prior-label").textContent = `PRIOR · ${studyTitle(prior)}\n${interval(prior.days_before)}`;
    try {
      const pixels = await this.api.pixels(prior.id);
      if (number !== this.number || this.prior !== prior) return;
      this.other.setImage(imageOf(prior, pixels), windowPresets(prior, pixels)[0]);
      this.other.follow(this.viewer.view());  // linked: the prior takes the current view
      $("#prior-pane").dataset.study = prior.id;
    } catch (error) {
      toast(`Prior: ${error.message}`, "error");
      this.close();
    }
  }

  close() {
    this.prior = null;
    this.other.clear();
    $("#stage").classList.remove("comparing");
    show($("#prior-pane"), false);
    delete $("#prior-pane").dataset.study;
    if (this.priors.length) $("#prior-select").value = "";
  }

  /** The current study's view changed: the prior follows (not when the change was the
   * current study following the prior: a stale echo would undo the reader's last step). */
  sync(state) {
    if (state?.followed) return;
    if (this.prior && this.other.image) this.other.follow(this.viewer.view());
  }

  #priorChanged(state) {
    if (!state.hasImage || !this.prior) return;
    $("#prior-window").textContent = `W ${Math.round(state.windowWidth)}  L ${Math.round(state.center)}\nZoom ${(state.scale * 100).toFixed(0)}%`;
    if (!state.followed) this.viewer.follow(this.other.view());
  }

  #fill() {
    const select = $("#prior-select");
    const none = document.createElement("option");
    none.value = "";
    none.textContent = this.priors.length ? `Priors (${this.priors.length})` : "No prior";
    select.replaceChildren(none, ...this.priors.map((prior) => {
      const option = document.createElement("option");
      option.value = prior.id;
      option.textContent = `${studyTitle(prior)} · ${interval(prior.days_before)}`;
      return option;
    }));
    select.disabled = this.priors.length === 0;
  }
}

/** "412 days earlier": the interval between the studies, never their dates. */
function interval(days) {
  if (days === undefined || days === null) return "earlier";
  return days === 1 ? "1 day earlier" : `${days} days earlier`;
}
