"""Disease classification of free-text symptom descriptions with a fine-tuned BERT model.

The bundled default, ``textcls-symptom2disease-minilm``, is all-MiniLM-L6-v2 fine-tuned on
Symptom2Disease (24 diseases; see its ``card.json`` for data, split and held-out scores). It
reads patients' own descriptions ("I have been coughing and have a high fever"); it is a
research model and not a diagnosis.

Example:
    >>> classifier = DiseaseClassifier.load()  # doctest: +SKIP
    >>> classifier.rank("My skin is red, itchy and covered in dry scaly patches", top_k=1)
    ...  # doctest: +SKIP
    [('Psoriasis', 0.97)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from insightray.engine.predictor import require_torch_cpu
from insightray.models.card import ModelCard, load_card
from insightray.models.catalog import bundled_models, default_model, resolve_card
from insightray.models.text.bert_classifier import TASK, LoadedClassifier, load_classifier

__all__ = [
    "DiseaseClassifier",
    "DiseasePrediction",
    "TextClassification",
    "bundled_classifiers",
    "open_text_classifier",
]

#: The bundled disease classifier used when no model is named.


def open_text_classifier(
    card: ModelCard, card_path: Path, *, backend: str = "auto", device: str = "cpu"
) -> DiseaseClassifier:
    """The ``text-classification`` task's predictor factory (torch on the CPU only)."""
    require_torch_cpu("text-classification", backend, device)
    return DiseaseClassifier.load(card_path.parent)


def bundled_classifiers() -> list[str]:
    """Names of the text classifiers shipped in ``insightray/weights``."""
    return [
        name
        for name in bundled_models()
        if load_card(resolve_card(name, default=name)).task == TASK
    ]


@dataclass(frozen=True)
class DiseasePrediction:
    """A disease label and the classifier's probability for it."""

    label: str
    score: float


@dataclass(frozen=True)
class TextClassification:
    """The ranked labels of one text.

    Example:
        >>> TextClassification((DiseasePrediction("Psoriasis", 0.97),)).to_dict()
        {'diseases': [{'label': 'Psoriasis', 'score': 0.97}]}
    """

    diseases: tuple[DiseasePrediction, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as in :meth:`~insightray.nlp.pipeline.ClinicalResult.to_dict`."""
        return {"diseases": [asdict(prediction) for prediction in self.diseases]}


class DiseaseClassifier:
    """Ranks labels (diseases) for a text; wraps a loaded :class:`LoadedClassifier`.

    Args:
        loaded: Model, tokenizer and card, e.g. from :meth:`load`.
    """

    def __init__(self, loaded: LoadedClassifier) -> None:
        self._loaded = loaded

    @classmethod
    def load(cls, name_or_path: str | Path | None = None) -> DiseaseClassifier:
        """Load a bundled model by name (``None``: the default), a model folder or its card.

        Raises:
            InputNotFoundError: No such model.
            ConfigError: The card is not a text classifier or a checksum fails.
        """
        chosen = name_or_path or default_model("text-classification")
        return cls(load_classifier(chosen))

    @property
    def loaded(self) -> LoadedClassifier:
        """The underlying model, tokenizer and card."""
        return self._loaded

    @property
    def name(self) -> str:
        """The model's folder name, e.g. ``textcls-symptom2disease-minilm``."""
        return self._loaded.folder.name

    @property
    def card(self) -> ModelCard:
        """The model card: labels, data, split, metrics."""
        return self._loaded.card

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in model output order."""
        return self._loaded.card.labels

    @property
    def multi_label(self) -> bool:
        """Whether labels are independent (sigmoid) rather than exclusive (softmax)."""
        return bool(self._loaded.card.preprocessing.extra.get("multi_label", False))

    def rank(self, text: str, top_k: int | None = 5) -> list[tuple[str, float]]:
        """Labels ranked by score, best first: ``[(label, probability), ...]``.

        Args:
            text: The text to classify.
            top_k: Keep this many (``None``: all).
        """
        return self.rank_many([text], top_k)[0]

    def rank_many(
        self, texts: Sequence[str], top_k: int | None = 5
    ) -> list[list[tuple[str, float]]]:
        """:meth:`rank` for many texts at once (faster: batched)."""
        probs = self._loaded.predict_proba(list(texts))
        ranked: list[list[tuple[str, float]]] = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[: top_k if top_k else None]
            ranked.append([(self.labels[i], round(float(row[i]), 4)) for i in order])
        return ranked

    def predict(self, inputs: Sequence[str]) -> list[TextClassification]:
        """The five best labels of each text (the :class:`~insightray.engine.Predictor` call)."""
        return [
            TextClassification(tuple(DiseasePrediction(label, score) for label, score in ranked))
            for ranked in self.rank_many(inputs)
        ]

    def warm_up(self) -> None:
        """Classify one short text (loads the tokenizer's tables)."""
        self.rank("warm up")

    def decide(self, text: str) -> list[str]:
        """The labels the model asserts: the best one (single-label), or every label whose
        score reaches its tuned threshold (multi-label)."""
        row = self._loaded.predict_proba([text])[0]
        if not self.multi_label:
            return [self.labels[int(row.argmax())]]
        thresholds = self._loaded.card.thresholds
        return [
            label
            for label, score in zip(self.labels, row, strict=True)
            if score >= thresholds.extra.get(label, 0.5)
        ]
