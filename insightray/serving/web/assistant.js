// The assistant panel: a conversation with cited answers, the triage level and the
// emergency / urgent banner.

import { modelText } from "./findings.js";
import { $, h, icon, show } from "./dom.js";

/** What each triage level means, in the badge above an answer. */
const TRIAGE_LABELS = {
  emergency: "emergency, call now",
  urgent: "urgent, be seen today",
  routine: "routine",
  "self-care": "self-care at home",
};

/** A paragraph with "[n]" markers turned into links to citation n. */
function citedParagraph(text, citations) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const number = Number(match[1]);
    const citation = citations.get(number);
    parts.push(text.slice(at, match.index));
    parts.push(citation?.url
      ? h("sup", {}, h("a", { href: citation.url, target: "_blank", rel: "noopener noreferrer", title: citation.focus || citation.source }, `[${number}]`))
      : `[${number}]`);
    at = match.index + match[0].length;
  }
  parts.push(text.slice(at));
  return parts;
}

export class AssistantPanel {
  /** @param {import("./api.js").Api} api */
  constructor(api) {
    this.api = api;
    this.conversationId = null;
    this.log = $("#chat-log");
    this.input = $("#chat-input");
    this.busy = false;
    $("#chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        this.ask();
      }
    });
    $("#chat-new").addEventListener("click", () => this.reset());
  }

  reset() {
    this.conversationId = null;
    this.log.replaceChildren($("#chat-empty") ?? h("div"));
    show($("#chat-empty"), true);
    this.input.focus();
  }

  async ask() {
    const question = this.input.value.trim();
    if (!question || this.busy) return;
    this.busy = true;
    $("#chat-send").disabled = true;
    show($("#chat-empty"), false);
    this.input.value = "";
    this.#append(h("div", { class: "msg msg-user" }, question));
    const pending = h("div", { class: "msg msg-bot busy" }, h("span", { class: "spinner" }), "Searching the knowledge base…");
    this.#append(pending);
    try {
      const answer = await this.api.ask(question, this.conversationId);
      this.conversationId = answer.conversation_id ?? this.conversationId;
      pending.replaceWith(this.#answer(answer));
    } catch (error) {
      pending.replaceWith(h("div", { class: "msg msg-error error-state", role: "alert" }, error.message));
    } finally {
      this.busy = false;
      $("#chat-send").disabled = false;
      this.log.scrollTop = this.log.scrollHeight;
    }
  }

  #append(node) {
    this.log.append(node);
    this.log.scrollTop = this.log.scrollHeight;
  }

  #answer(answer) {
    const citations = new Map((answer.citations ?? []).map((c) => [c.number, c]));
    const notice = answer.notice ?? "";
    const paragraphs = String(answer.answer ?? "").split(/\n{2,}/).filter((p) => p.trim());
    const body = [];
    const triage = answer.triage ?? "routine";
    if (answer.emergency) {
      body.push(h("div", { class: "emergency", role: "alert" }, icon("alert"),
        h("div", {}, paragraphs.shift() ?? "This may be an emergency: call your local emergency number now.")));
    } else if (triage === "urgent") {
      body.push(h("div", { class: "urgent", role: "alert" }, icon("alert"),
        h("div", {}, paragraphs.shift() ?? "Get medical advice today.")));
    }
    body.push(h("div", { class: `triage triage-${triage}`, title: (answer.triage_detail?.reasons ?? []).join(", ") },
      `Triage: ${TRIAGE_LABELS[triage] ?? triage}`));
    for (const paragraph of paragraphs) {
      const isNotice = notice && paragraph.trim() === notice.trim();
      body.push(h("p", { class: isNotice ? "notice" : null }, ...(isNotice ? [paragraph] : citedParagraph(paragraph, citations))));
    }
    if (citations.size) {
      body.push(h("ol", { class: "citations", "aria-label": "Sources" },
        ...[...citations.values()].map((c) => h("li", {},
          h("span", { class: "num" }, `[${c.number}]`),
          c.url
            ? h("a", { href: c.url, target: "_blank", rel: "noopener noreferrer", class: "citation" }, `${c.focus || c.document_id} · ${c.source}`)
            : h("span", {}, `${c.focus || c.document_id} · ${c.source}`),
        ))));
    }
    const meta = [
      modelText(answer.model),
      answer.intent?.qtype ? `intent ${answer.intent.qtype}` : "",
      Number.isFinite(answer.confidence) ? `confidence ${answer.confidence.toFixed(2)}` : "",
    ].filter(Boolean).join(" · ");
    if (meta) body.push(h("div", { class: "msg-meta" }, meta));
    return h("div", { class: "msg msg-bot", dataset: { kind: answer.kind ?? "", emergency: String(Boolean(answer.emergency)), triage } }, ...body);
  }
}
