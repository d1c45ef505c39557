"""Hierarchical intent of a message: primary, secondary and the fine question type.

* primary: ``Emergency`` (set by :mod:`~insightray.assistant.emergency`'s rules),
  ``Question`` (a specific question: cause, treatment, dosage...), ``Information_Seeking``
  (general information, resources), or ``Smalltalk`` (greetings and thanks, by rules).
* secondary: ``Symptom_Inquiry``, ``Diagnosis_Clarification``, ``Treatment_Options``,
  ``Medication_Information``, ``Prevention_And_Risk``, ``General_Information`` (or
  ``Greeting`` / ``Thanks`` / ``Goodbye`` / ``Emergency_Escalation``).
* qtype: one of :data:`QTYPES` (``cause``, ``prevention``, ``dosage``, ``side_effects``,
  ``prognosis``...), predicted by a linear soft-max head over the MiniLM sentence
  embedding, trained on LiveQA sub-question types and MedQuAD question types (see
  :mod:`~insightray.training.intents`). The bundled weights live in
  ``insightray/weights/assistant-intent/`` with their model card.

The mapping tables below are data: raw LiveQA / MedQuAD types to :data:`QTYPES`, and each
fine type to its secondary and primary intent.

Example:
    >>> secondary_of("dosage"), primary_of("dosage"), primary_of("information")
    ('Medication_Information', 'Question', 'Information_Seeking')
    >>> canonical_qtype("exams and tests"), canonical_qtype("Outlook")
    ('diagnosis', 'prognosis')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from insightray.assistant.embeddings import Embedder, Vectors
from insightray.engine.predictor import require_torch_cpu
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models.card import ModelCard, load_card, save_card
from insightray.models.catalog import default_model, resolve_card

__all__ = [
    "QTYPES",
    "RAW_QTYPES",
    "Intent",
    "IntentClassifier",
    "IntentPredictor",
    "canonical_qtype",
    "medquad_qtypes",
    "open_intent_predictor",
    "primary_of",
    "secondary_of",
    "smalltalk",
]

CARD_FILE, WEIGHTS_FILE = "card.json", "weights.safetensors"

#: Fine question types -> secondary intent.
SECONDARY: dict[str, str] = {
    "symptoms": "Symptom_Inquiry",
    "complications": "Symptom_Inquiry",
    "when_to_seek_care": "Symptom_Inquiry",
    "diagnosis": "Diagnosis_Clarification",
    "cause": "Diagnosis_Clarification",
    "prognosis": "Diagnosis_Clarification",
    "treatment": "Treatment_Options",
    "research": "Treatment_Options",
    "side_effects": "Medication_Information",
    "dosage": "Medication_Information",
    "interaction": "Medication_Information",
    "usage": "Medication_Information",
    "precautions": "Medication_Information",
    "storage": "Medication_Information",
    "prevention": "Prevention_And_Risk",
    "susceptibility": "Prevention_And_Risk",
    "inheritance": "Prevention_And_Risk",
    "frequency": "Prevention_And_Risk",
    "information": "General_Information",
    "support": "General_Information",
}
#: The fine question types, in the classifier's label order.
QTYPES: tuple[str, ...] = tuple(SECONDARY)
#: Secondary intents whose primary is ``Information_Seeking`` (all others: ``Question``).
INFORMATION_SEEKING = frozenset({"General_Information"})

#: Raw LiveQA TYPE and MedQuAD qtype values -> fine type.
RAW_QTYPES: dict[str, str] = {
    # MedQuAD
    "information": "information",
    "symptoms": "symptoms",
    "treatment": "treatment",
    "inheritance": "inheritance",
    "genetic changes": "inheritance",
    "frequency": "frequency",
    "causes": "cause",
    "exams and tests": "diagnosis",
    "research": "research",
    "outlook": "prognosis",
    "susceptibility": "susceptibility",
    "considerations": "information",
    "prevention": "prevention",
    "stages": "prognosis",
    "complications": "complications",
    "support groups": "support",
    "when to contact a medical professional": "when_to_seek_care",
    "precautions": "precautions",
    "side effects": "side_effects",
    "severe reaction": "side_effects",
    "other information": "information",
    "indication": "usage",
    "usage": "usage",
    "brand names": "usage",
    "brand names of combination products": "usage",
    "how effective is it": "usage",
    "how does it work": "usage",
    "emergency or overdose": "dosage",
    "forget a dose": "dosage",
    "dose": "dosage",
    "storage and disposal": "storage",
    "dietary": "precautions",
    "important warning": "precautions",
    "contraindication": "precautions",
    "interactions with medications": "interaction",
    "interactions with herbs and supplements": "interaction",
    "interactions with foods": "interaction",
    "how can i learn more": "support",
    "why get vaccinated": "prevention",
    # LiveQA
    "cause": "cause",
    "prognosis": "prognosis",
    "diagnosis": "diagnosis",
    "diagnose_me": "diagnosis",
    "organization": "support",
    "resources": "support",
    "symptom": "symptoms",
    "association": "cause",
    "complication": "complications",
    "tapering": "dosage",
    "dosage": "dosage",
    "interaction": "interaction",
    "ingredient": "usage",
}

#: Greetings and thanks, answered by templates: (secondary intent, pattern).
SMALLTALK: tuple[tuple[str, str], ...] = (
    ("Greeting", r"(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|greetings)(?: there)?"),
    ("Thanks", r"(?:thanks?(?: you)?(?: (?:so|very) much)?|thank you|thx|cheers|much appreciated)"),
    ("Goodbye", r"(?:bye|goodbye|see you|good night|quit|exit)"),
)
_SMALLTALK = [
    (name, re.compile(rf"^\W*{pattern}(?:[\s,]+\w+){{0,2}}\W*$", re.I))
    for name, pattern in SMALLTALK
]


def canonical_qtype(raw: str) -> str | None:
    """The fine type of a raw LiveQA / MedQuAD type (``None`` if unknown)."""
    key = raw.strip().lower()
    return key if key in SECONDARY else RAW_QTYPES.get(key)


def secondary_of(qtype: str) -> str:
    """Secondary intent of a fine type."""
    return SECONDARY.get(qtype, "General_Information")


def primary_of(qtype: str) -> str:
    """Primary intent of a fine type: ``Information_Seeking`` or ``Question``."""
    return "Information_Seeking" if secondary_of(qtype) in INFORMATION_SEEKING else "Question"


def medquad_qtypes(qtype: str) -> tuple[str, ...]:
    """Raw passage ``qtype`` values that answer a fine type (for retrieval re-ranking).

    Example:
        >>> medquad_qtypes("prognosis")
        ('outlook', 'stages', 'prognosis')
    """
    return tuple(raw for raw, fine in RAW_QTYPES.items() if fine == qtype)


def smalltalk(text: str) -> str | None:
    """``Greeting``, ``Thanks`` or ``Goodbye`` when that is all the message says.

    Example:
        >>> smalltalk("Hello there!"), smalltalk("thanks a lot"), smalltalk("hi, I have gout")
        ('Greeting', 'Thanks', None)
    """
    for name, pattern in _SMALLTALK:
        if pattern.match(text.strip()):
            return name
    return None


@dataclass(frozen=True)
class Intent:
    """A message's intent.

    Attributes:
        primary: ``Question``, ``Information_Seeking``, ``Emergency`` or ``Smalltalk``.
        secondary: See the module docstring.
        qtype: The fine question type (``None`` for smalltalk).
        confidence: Probability of ``qtype`` (1.0 for rule decisions).
        alternatives: The next most likely fine types with their probabilities.
    """

    primary: str
    secondary: str
    qtype: str | None
    confidence: float
    alternatives: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "primary": self.primary,
            "secondary": self.secondary,
            "qtype": self.qtype,
            "confidence": round(self.confidence, 4),
            "alternatives": [{"qtype": q, "p": round(p, 4)} for q, p in self.alternatives],
        }


class IntentClassifier:
    """A linear soft-max head over sentence embeddings predicting :data:`QTYPES`.

    Args:
        weights: ``(classes, dim)`` float32.
        bias: ``(classes,)`` float32.
        labels: Fine type of each row.
        card: The model card (``None`` for a freshly trained head).
    """

    def __init__(
        self,
        weights: Vectors,
        bias: Vectors,
        labels: tuple[str, ...],
        card: ModelCard | None = None,
    ) -> None:
        if weights.shape[0] != len(labels) or bias.shape != (len(labels),):
            raise ConfigError("intent classifier", "weights and labels disagree", "retrain it")
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)
        self.labels = labels
        self.card = card

    def probabilities(self, vectors: Vectors) -> Vectors:
        """Class probabilities for ``(n, dim)`` embeddings."""
        logits = np.atleast_2d(vectors) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)

    def predict(self, vector: Vectors) -> Intent:
        """The intent of one embedded message."""
        probs = self.probabilities(vector)[0]
        order = np.argsort(-probs)
        qtype = self.labels[int(order[0])]
        alternatives = tuple((self.labels[int(i)], float(probs[i])) for i in order[1:3])
        return Intent(
            primary_of(qtype), secondary_of(qtype), qtype, float(probs[order[0]]), alternatives
        )

    def save(self, folder: Path, card: ModelCard) -> ModelCard:
        """Write ``weights.safetensors`` and ``card.json`` (with the weights' SHA-256)."""
        from safetensors.numpy import save_file

        from insightray.assistant.embeddings import file_sha256

        folder.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weights, "bias": self.bias}, str(folder / WEIGHTS_FILE))
        sha = file_sha256(folder / WEIGHTS_FILE)
        data = {**card.to_dict(), "weights_file": WEIGHTS_FILE, "weights_sha256": sha}
        final = ModelCard.from_dict(data)
        save_card(final, folder / CARD_FILE)
        self.card = final
        return final

    @classmethod
    def load(cls, folder: Path | None = None) -> IntentClassifier:
        """Load the bundled classifier, or one saved by :meth:`save`.

        Raises:
            InputNotFoundError: No card or weights there.
            ConfigError: The weights do not match the card's SHA-256.
        """
        from safetensors.numpy import load_file

        from insightray.assistant.embeddings import file_sha256

        if folder is None:
            folder = resolve_card(None, default=default_model("intent")).parent
        card_path = folder / CARD_FILE
        if not card_path.is_file():
            raise InputNotFoundError(
                str(folder), "no intent model card here", "reinstall insightray or retrain it"
            )
        card = load_card(card_path)
        weights_path = folder / (card.weights_file or WEIGHTS_FILE)
        if not weights_path.is_file():
            raise InputNotFoundError(str(weights_path), "the intent weights are missing", "")
        if card.weights_sha256 and file_sha256(weights_path) != card.weights_sha256:
            raise ConfigError(str(weights_path), "weights do not match the card", "retrain")
        tensors = load_file(str(weights_path))
        return cls(tensors["weight"], tensors["bias"], card.labels, card)


class IntentPredictor:
    """The ``intent`` task's predictor: questions in, :class:`Intent` out.

    Each question is embedded with the sentence encoder the head was trained on, then
    classified; rule decisions (emergencies, smalltalk) are the assistant's, not this model's.

    Args:
        classifier: The trained head (its card is the predictor's card).
        embedder: The sentence encoder.
    """

    def __init__(self, classifier: IntentClassifier, embedder: Embedder) -> None:
        if classifier.card is None:
            raise ConfigError("intent classifier", "it has no model card", "save it first")
        self.card: ModelCard = classifier.card
        self.classifier = classifier
        self.embedder = embedder

    def predict(self, inputs: Sequence[str]) -> list[Intent]:
        """The intent of each question."""
        vectors = self.embedder.encode(list(inputs))
        return [self.classifier.predict(vector) for vector in vectors]

    def warm_up(self) -> None:
        """Embed and classify one question (loads the encoder)."""
        self.predict(["What is asthma?"])


def open_intent_predictor(
    card: ModelCard, card_path: Path, *, backend: str = "auto", device: str = "cpu"
) -> IntentPredictor:
    """The ``intent`` task's predictor factory (torch on the CPU only)."""
    require_torch_cpu("intent", backend, device)
    return IntentPredictor(IntentClassifier.load(card_path.parent), Embedder())
