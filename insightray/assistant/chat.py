"""The medical assistant: one call per question, with conversation memory.

A turn: emergency rules and triage first (an emergency gets the escalation template at
once; every answer carries its triage level, and an urgent one leads with what to do now), then
greetings, slot filling, follow-up resolution against the conversation's focus, one
embedding of the (resolved) question for the intent head (the packaged encoder it was trained
on) and, when the index was built by a fine-tuned retriever, one by that encoder for dense
retrieval (otherwise the same vector serves both), hybrid
retrieval re-ranked by focus and question type, then either an extractive, cited answer or
"I don't know" when retrieval confidence is low. Every answer carries the notice that it is
not medical advice.

Example:
    >>> assistant = Assistant()  # doctest: +SKIP
    >>> answer = assistant.ask("What causes gout?")  # doctest: +SKIP
    >>> answer.to_dict()["sources"][0]["document_id"]  # doctest: +SKIP
    '0000421'
    >>> follow_up = assistant.ask("How is it treated?", answer.conversation_id)  # doctest: +SKIP
    >>> follow_up.resolved_question  # doctest: +SKIP
    'How is Gout treated?'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from insightray.assistant.embeddings import Embedder, EmbedderConfig
from insightray.assistant.emergency import EmergencyAssessment, EmergencyDetector
from insightray.assistant.index import KnowledgeIndex, default_index_dir, load_index
from insightray.assistant.intents import (
    Intent,
    IntentClassifier,
    medquad_qtypes,
    smalltalk,
)
from insightray.assistant.responses import (
    NOTICE,
    ComposedAnswer,
    ResponseConfig,
    compose_extractive,
    covers,
    grounded,
    not_known,
    render_template,
)
from insightray.assistant.retrieval import Hit, Retriever, RetrieverConfig
from insightray.assistant.slots import Slot, SlotConfig, SlotFiller, slots_by_type
from insightray.assistant.state import (
    ConversationStore,
    DialogueState,
    MemoryConversations,
    Turn,
)
from insightray.assistant.triage import Triage, TriageAssessment
from insightray.errors import ConfigError, InputError

__all__ = [
    "Assistant",
    "AssistantAnswer",
    "AssistantConfig",
    "query_embedder_for",
    "retrieval_confidence",
]


@dataclass(frozen=True)
class AssistantConfig:
    """Settings of :class:`Assistant`.

    Attributes:
        index_dir: The knowledge index (default
            :func:`~insightray.assistant.index.default_index_dir`).
        sources: How many sources to return (at least 5 when available).
        min_confidence: Below this retrieval confidence the answer is "I don't know".
        intent_model: Intent head folder (default: the bundled one).
        embedder: Embedding model settings (the packaged encoder for the intent head, and for
            retrieval unless the index names a fine-tuned retriever: then its model with these
            settings).
        retriever: Ranking settings.
        slots: Slot filling settings.
        response: Extractive answer settings.
        max_conversations: Conversations kept in memory.
        ground_on_focus: Refuse an extractive answer whose cited passages never mention the
            disease or medicine the question names (off only to measure what it changes).
    """

    index_dir: Path | None = None
    sources: int = 5
    min_confidence: float = 0.4
    intent_model: Path | None = None
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    retriever: RetrieverConfig = field(default_factory=RetrieverConfig)
    slots: SlotConfig = field(default_factory=SlotConfig)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    max_conversations: int = 1000
    ground_on_focus: bool = True


@dataclass(frozen=True)
class AssistantAnswer:
    """One answer, with everything that led to it."""

    question: str
    resolved_question: str
    answer: str
    kind: str
    intent: Intent
    slots: tuple[Slot, ...]
    confidence: float
    emergency: bool
    conversation_id: str
    sources: tuple[Hit, ...] = ()
    composed: ComposedAnswer | None = None
    emergency_detail: EmergencyAssessment | None = None
    focus: str | None = None
    milliseconds: float = 0.0
    triage: TriageAssessment | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: answer, intent {primary, secondary}, slots, confidence,
        emergency, triage (``emergency``, ``urgent``, ``routine`` or ``self-care``), sources
        (best first: source, document_id, qa_id, url, score) and more."""
        composed = self.composed
        return {
            "triage": self.triage.level if self.triage else "routine",
            "triage_detail": self.triage.to_dict() if self.triage else None,
            "question": self.question,
            "resolved_question": self.resolved_question,
            "answer": self.answer,
            "kind": self.kind,
            "intent": self.intent.to_dict(),
            "slots": slots_by_type(self.slots),
            "confidence": round(self.confidence, 4),
            "emergency": self.emergency,
            "emergency_detail": self.emergency_detail.to_dict() if self.emergency_detail else None,
            "sources": [hit.to_dict() for hit in self.sources],
            "sentences": [s.to_dict() for s in composed.sentences] if composed else [],
            "citations": [c.to_dict() for c in composed.citations] if composed else [],
            "evidence": [p.to_dict() for p in composed.evidence] if composed else [],
            "notice": NOTICE,
            "focus": self.focus,
            "conversation_id": self.conversation_id,
            "milliseconds": round(self.milliseconds, 1),
        }


def retrieval_confidence(hits: list[Hit] | tuple[Hit, ...]) -> float:
    """How much to trust the best hit, 0 to 1: its cosine similarity to the question
    (0.25 -> 0, 0.75 -> 1) blended with whether the question names its topic.

    Example:
        >>> retrieval_confidence([])
        0.0
    """
    if not hits:
        return 0.0
    top = hits[0]
    meaning = float(np.clip((top.dense - 0.25) / 0.5, 0.0, 1.0))
    return round(0.7 * meaning + 0.3 * top.focus_match, 4)


def query_embedder_for(
    index: KnowledgeIndex, embedder: Embedder, config: EmbedderConfig
) -> Embedder:
    """The encoder of questions for ``index``: ``embedder`` when the index was built by its
    model, else the fine-tuned retriever the manifest names (with ``config``'s settings).

    Raises:
        ConfigError: That encoder's weights are not the ones that embedded the index.
    """
    named = index.manifest.get("retriever")
    chosen = embedder
    if named and embedder.retriever != Path(named):
        chosen = Embedder(replace(config, model_path=Path(named)))
    built_by = index.manifest.get("model", {}).get("sha256")
    if built_by and chosen.sha256(index.folder.parent) != built_by:
        raise ConfigError(
            str(index.folder),
            "the index was embedded by another encoder than the one for questions",
            "rebuild it with `insightray index build --force` (and --retriever DIR if wanted)",
        )
    return chosen


class Assistant:
    """Answers health questions from the knowledge index, with citations.

    Args:
        config: Settings.
        index: An already loaded index (default: load ``config.index_dir``).
        embedder: A shared embedder for the intent head (default: a new one).
        query_embedder: A shared embedder for retrieval (default: ``embedder`` when the index
            was built by the packaged encoder, else one for the index's retriever).

    Raises:
        ConfigError: The query encoder is not the model that embedded the index.
    """

    def __init__(
        self,
        config: AssistantConfig | None = None,
        *,
        index: KnowledgeIndex | None = None,
        embedder: Embedder | None = None,
        query_embedder: Embedder | None = None,
    ) -> None:
        self.config = config or AssistantConfig()
        self.index = index or load_index(self.config.index_dir or default_index_dir())
        self.embedder = embedder or Embedder(self.config.embedder)
        self.query_embedder = query_embedder or query_embedder_for(
            self.index, self.embedder, self.config.embedder
        )
        self.retriever: Retriever = self.index.retriever(self.query_embedder, self.config.retriever)
        self.emergency = EmergencyDetector()
        self.triage = Triage(self.emergency)
        topics = {p.focus for p in self.index.passages} | {
            s for p in self.index.passages for s in p.synonyms
        }
        slot_config = self.config.slots
        if not slot_config.topics:
            slot_config = SlotConfig(**{**slot_config.__dict__, "topics": tuple(sorted(topics))})
        self.slots = SlotFiller(slot_config)
        self.conversations: ConversationStore = MemoryConversations(self.config.max_conversations)
        self._intents: IntentClassifier | None = None
        self._topics = {t.lower(): t for t in sorted(topics)}

    @property
    def intents(self) -> IntentClassifier:
        """The intent head (loaded on first use)."""
        if self._intents is None:
            self._intents = IntentClassifier.load(self.config.intent_model)
        return self._intents

    def warm_up(self) -> None:
        """Load every model now rather than on the first question."""
        self.embedder.encode_one("warm up")
        self.query_embedder.encode_one("warm up")
        self.slots.extract("warm up")
        _ = self.intents

    def ask(
        self,
        question: str,
        conversation_id: str | None = None,
        conversations: ConversationStore | None = None,
    ) -> AssistantAnswer:
        """Answer ``question``; pass the returned ``conversation_id`` back for follow-ups.

        Args:
            question: The message.
            conversation_id: The conversation it continues (``None``: a new one).
            conversations: Where the dialogue state lives (default: this assistant's
                in-process store; the service passes its database store).

        Raises:
            InputError: The question is empty.
        """
        started = time.perf_counter()
        text = " ".join(question.split())
        if not text:
            raise InputError("question", "it is empty", "type a question")
        store = conversations or self.conversations
        conversation_id = conversation_id or store.new_id()
        state = store.get(conversation_id)
        assessment = self.emergency.assess(text)
        small = None if assessment.is_emergency else smalltalk(text)
        if small:
            intent = Intent("Smalltalk", small, None, 1.0)
            body = render_template(small.lower())
            triage = self.triage.assess(text, (), assessment)
            return self._finish(store, state, question, text, body, small.lower(), intent, (), 1.0,
                                (), None, assessment, started, triage=triage)  # fmt: skip
        slots = tuple(self.slots.extract(text))
        triage = self.triage.assess(text, slots, assessment)
        if triage.level == "emergency":
            evidence = ", ".join(
                e for m in assessment.matches for e in m.evidence[:1]
            ) or ", ".join(r.replace("_", " ") for r in triage.reasons)
            body = render_template("emergency", advice=triage.advice, evidence=evidence)
            intent = Intent("Emergency", "Emergency_Escalation", None, 1.0)
            return self._finish(store, state, question, text, body, "emergency", intent, slots, 1.0,
                                (), None, assessment, started, triage=triage)  # fmt: skip
        mentions = [s.text for s in slots if s.type == "Disease" and not s.negated]
        resolved = state.resolve(text, mentions)
        vector = self.embedder.encode_one(resolved)
        intent = self.intents.predict(vector)
        if self.query_embedder is not self.embedder:
            vector = self.query_embedder.encode_one(resolved)
        hits = self.retriever.search(
            resolved,
            max(self.config.sources, self.config.response.passages),
            query_vector=vector,
            qtypes=medquad_qtypes(intent.qtype or ""),
        )
        confidence = retrieval_confidence(hits)
        named_slots = [s for s in slots if s.type in ("Disease", "Medication") and not s.negated]
        if confidence < self.config.min_confidence:
            medical = any(s.type in ("Disease", "Symptom", "Medication") for s in slots)
            kind = "dont_know" if medical else "out_of_scope"
            if not medical:
                intent = Intent(intent.primary, "Out_Of_Scope", intent.qtype, intent.confidence)
            body = f"{render_template(kind)}\n\n{NOTICE}"
            if named_slots:
                body = not_known(named_slots[0].text, named_slots[0].type)
            composed = None
        else:
            composed = compose_extractive(
                resolved,
                hits,
                self.config.response,
                intent.qtype,
                self.retriever.chunks_of,
            )
            body, kind = composed.text, composed.kind
            named = [
                *mentions,
                *(s.text for s in slots if s.type == "Medication" and not s.negated),
            ]
            topics = [*named, hits[0].passage.focus, *hits[0].passage.synonyms]
            missing = [
                slot
                for slot in named_slots
                if kind == "extractive"
                and self.config.ground_on_focus
                and not grounded(slot.text, composed.evidence)
            ]
            general = intent.qtype in ("information", "support")  # a description answers it
            if missing:
                composed, kind = None, "dont_know"  # the evidence never names the focus
                body = not_known(missing[0].text, missing[0].type)
            elif kind == "extractive" and not (
                general or covers(resolved, composed.sentences, topics, intent.qtype)
            ):
                composed, kind = None, "dont_know"  # the passages do not answer this
                body = f"{render_template(kind)}\n\n{NOTICE}"
        if triage.acts_now:
            body = f"{render_template('act_now', advice=triage.advice)}\n\n{body}"
        return self._finish(store, state, question, resolved, body, kind, intent, slots, confidence,
                            tuple(hits), composed, assessment, started, mentions,
                            triage=triage)  # fmt: skip

    def _finish(
        self,
        store: ConversationStore,
        state: DialogueState,
        question: str,
        resolved: str,
        body: str,
        kind: str,
        intent: Intent,
        slots: tuple[Slot, ...],
        confidence: float,
        hits: tuple[Hit, ...],
        composed: ComposedAnswer | None,
        assessment: EmergencyAssessment,
        started: float,
        mentions: list[str] | None = None,
        *,
        triage: TriageAssessment | None = None,
    ) -> AssistantAnswer:
        focus = self._new_focus(mentions or [], hits, confidence)
        turn = Turn(question, resolved, intent, focus or state.focus, confidence, kind)
        state.update(turn, slots, focus=focus)
        store.save(state)
        return AssistantAnswer(
            question=question,
            resolved_question=resolved,
            answer=body,
            kind=kind,
            intent=intent,
            slots=slots,
            confidence=confidence,
            emergency=kind == "emergency",
            triage=triage,
            conversation_id=state.conversation_id,
            sources=hits[: max(self.config.sources, 0)],
            composed=composed,
            emergency_detail=assessment if kind == "emergency" else None,
            focus=state.focus,
            milliseconds=(time.perf_counter() - started) * 1000,
        )

    def _new_focus(
        self, mentions: list[str], hits: tuple[Hit, ...], confidence: float
    ) -> str | None:
        """A disease the message names (as the index spells it), else the confident top
        hit's topic when the message names it."""
        for mention in mentions:
            return self._topics.get(mention.lower(), mention)
        if hits and confidence >= self.config.min_confidence and hits[0].focus_match >= 0.99:
            return hits[0].passage.focus
        return None
