"""Dialogue state across turns, and follow-up questions resolved to the topic in focus.

A conversation keeps ``{intent, entities, context, confidence, focus}``. The focus is the
disease or topic being discussed: a disease named in the message, else the topic of a
confidently retrieved answer whose name the message contains. A follow-up that names no
topic ("what about treatment?", "is it contagious?", "how is this diagnosed?") is rewritten
to carry the focus ("is gout contagious?") before retrieval.

Example:
    >>> state = DialogueState("c1", focus="Gout")
    >>> state.resolve("Is it contagious?")
    'Is Gout contagious?'
    >>> state.resolve("What about treatment?")
    'What about treatment of Gout?'
    >>> state.resolve("What causes asthma?", mentions=["asthma"])
    'What causes asthma?'
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from insightray.assistant.intents import Intent
from insightray.assistant.slots import Slot

__all__ = ["ConversationStore", "DialogueState", "MemoryConversations", "Turn"]

#: Words that refer back to the topic in focus ("it", "this condition"...), longest first.
_REFERENCE = re.compile(
    r"\b(?:this|that|the|my|his|her) (?:condition|disease|disorder|illness|syndrome|problem"
    r"|infection|cancer|diagnosis)\b|\b(?:it|this|that|they|them)\b(?!\s+(?:is|was)\s+(?:a|an)\b)"
    r"(?!\s+(?:is\s+|s\s+)?(?:safe|ok|okay|alright|normal|possible|true|bad|good|better|best"
    r"|common|necessary|dangerous|important|worth|hard|easy|likely|too late|time)\b)",
    re.IGNORECASE,
)
#: Openings of a follow-up that names only an aspect: "and the treatment?".
_ASPECT = re.compile(
    r"^\s*(?:and|so|ok(?:ay)?|also|then)?[\s,]*(?:what|how) about\b|^\s*(?:and|also)\b",
    re.IGNORECASE,
)
_MAX_FOLLOW_UP_WORDS = 12


@dataclass(frozen=True)
class Turn:
    """One exchange: the question, what it was resolved to, its intent and focus."""

    question: str
    resolved: str
    intent: Intent | None
    focus: str | None
    confidence: float
    answer_kind: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "question": self.question,
            "resolved": self.resolved,
            "intent": self.intent.to_dict() if self.intent else None,
            "focus": self.focus,
            "confidence": round(self.confidence, 4),
            "answer_kind": self.answer_kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        """Inverse of :meth:`to_dict`."""
        intent = data.get("intent")
        return cls(
            data["question"],
            data["resolved"],
            _intent(intent) if intent else None,
            data.get("focus"),
            float(data.get("confidence", 0.0)),
            data.get("answer_kind", ""),
        )


@dataclass
class DialogueState:
    """What a conversation is about so far.

    Attributes:
        conversation_id: The conversation.
        intent: The last turn's intent.
        entities: Slots seen so far (latest mention of each text wins).
        context: The last turns, oldest first.
        confidence: The last turn's retrieval confidence.
        focus: The disease or topic in focus.
        max_turns: Turns kept in ``context``.
    """

    conversation_id: str
    intent: Intent | None = None
    entities: list[Slot] = field(default_factory=list)
    context: list[Turn] = field(default_factory=list)
    confidence: float = 0.0
    focus: str | None = None
    max_turns: int = 20

    def resolve(self, question: str, mentions: Sequence[str] = ()) -> str:
        """``question`` with the focus put in when it is a follow-up that names no topic.

        Args:
            question: The message.
            mentions: Diseases or topics the message names (non-negated slots).
        """
        if not self.focus or mentions or self.focus.lower() in question.lower():
            return question
        if len(question.split()) > _MAX_FOLLOW_UP_WORDS:
            return question
        reference = _REFERENCE.search(question)
        if reference:
            return question[: reference.start()] + self.focus + question[reference.end() :]
        stripped = question.rstrip(" ?.!")
        if _ASPECT.search(question) or len(question.split()) <= 4:
            return f"{stripped} of {self.focus}?"
        return question

    def update(
        self,
        turn: Turn,
        slots: Sequence[Slot] = (),
        *,
        focus: str | None = None,
    ) -> None:
        """Record a turn: its intent, confidence, slots and (when given) the new focus."""
        self.context = [*self.context, turn][-self.max_turns :]
        self.intent = turn.intent or self.intent
        self.confidence = turn.confidence
        known = {slot.text.lower(): slot for slot in self.entities}
        for slot in slots:
            known.pop(slot.text.lower(), None)
            known[slot.text.lower()] = slot
        self.entities = list(known.values())[-50:]
        if focus:
            self.focus = focus

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: intent, entities, context, confidence, focus."""
        return {
            "conversation_id": self.conversation_id,
            "intent": self.intent.to_dict() if self.intent else None,
            "entities": [slot.to_dict() for slot in self.entities],
            "context": [turn.to_dict() for turn in self.context],
            "confidence": round(self.confidence, 4),
            "focus": self.focus,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], max_turns: int = 20) -> DialogueState:
        """Inverse of :meth:`to_dict` (how a shared store brings a conversation back)."""
        intent = data.get("intent")
        return cls(
            data["conversation_id"],
            _intent(intent) if intent else None,
            [Slot(**slot) for slot in data.get("entities", [])],
            [Turn.from_dict(turn) for turn in data.get("context", [])],
            float(data.get("confidence", 0.0)),
            data.get("focus"),
            max_turns,
        )


def _intent(data: dict[str, Any]) -> Intent:
    """Inverse of :meth:`Intent.to_dict`."""
    alternatives = tuple((a["qtype"], float(a["p"])) for a in data.get("alternatives", []))
    return Intent(
        data["primary"], data["secondary"], data.get("qtype"), float(data["confidence"]),
        alternatives,
    )  # fmt: skip


def new_conversation_id() -> str:
    """A fresh random conversation id (128 random bits, hex)."""
    return uuid.uuid4().hex


@runtime_checkable
class ConversationStore(Protocol):
    """Where dialogue states live between turns: :class:`MemoryConversations` in one
    process, or a shared store (the service keeps them in its database) so that any
    replica continues a conversation."""

    def new_id(self) -> str:
        """A fresh conversation id."""
        ...

    def get(self, conversation_id: str) -> DialogueState:
        """The state of ``conversation_id``, a new one when unknown or expired."""
        ...

    def save(self, state: DialogueState) -> None:
        """Keep ``state`` after a turn."""
        ...

    def delete(self, conversation_id: str) -> bool:
        """Forget a conversation; whether it existed."""
        ...


class MemoryConversations:
    """Dialogue states by conversation id in this process, the least recently used dropped
    beyond a limit (the CLI's store; the service uses its database).

    Example:
        >>> store = MemoryConversations(max_conversations=2)
        >>> store.get("a").focus = "Gout"
        >>> store.get("a").focus
        'Gout'
    """

    def __init__(self, max_conversations: int = 1000, max_turns: int = 20) -> None:
        self.max_conversations = max_conversations
        self.max_turns = max_turns
        self._states: OrderedDict[str, DialogueState] = OrderedDict()

    @staticmethod
    def new_id() -> str:
        """A fresh random conversation id."""
        return new_conversation_id()

    def get(self, conversation_id: str) -> DialogueState:
        """The state of ``conversation_id``, created when new."""
        state = self._states.pop(conversation_id, None)
        if state is None:
            state = DialogueState(conversation_id, max_turns=self.max_turns)
        self._states[conversation_id] = state
        while len(self._states) > self.max_conversations:
            self._states.popitem(last=False)
        return state

    def save(self, state: DialogueState) -> None:
        """States are kept by reference: nothing to do."""
        self._states[state.conversation_id] = state

    def delete(self, conversation_id: str) -> bool:
        """Forget a conversation; whether it existed."""
        return self._states.pop(conversation_id, None) is not None

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._states

    def __len__(self) -> int:
        return len(self._states)
