"""Disease classification of free-text symptom descriptions with a fine-tuned BERT model.

The bundled default, ``textcls-symptom2disease-minilm``, is all-MiniLM-L6-v2 fine-tuned on
Symptom2Disease (24 diseases; see its ``card.json`` for data, split and held-out scores). It
reads patients' own descriptions ("I have been coughing and have a high fever"); it is a
research model and not a diagnosis.

Example:
    >>> classifier = DiseaseClassifier.load()  # doctest: +SKIP
    >>> classifier.predict("My skin is red, itchy and covered in dry scaly patches", top_k=1)
    ...  # doctest: +SKIP
    [('Psoriasis', 0.97)]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from insightray.models.catalog import bundled_models, resolve_card
from insightray.models.registry import ModelCard, load_card
from insightray.models.text.bert_classifier import TASK, LoadedClassifier, load_classifier

__all__ = ["DEFAULT_CLASSIFIER", "DiseaseClassifier", "bundled_classifiers"]

#: The bundled disease classifier used when no model is named.
DEFAULT_CLASSIFIER = "textcls-symptom2disease-minilm"


def bundled_classifiers() -> list[str]:
    """Names of the text classifiers shipped in ``insightray/weights``."""
    return [
        name
        for name in bundled_models()
        if load_card(resolve_card(name, default=name)).task == TASK
    ]


class DiseaseClassifier:
    """Ranks labels (diseases) for a text; wraps a loaded :class:`LoadedClassifier`.

    Args:
        loaded: Model, tokenizer and card, e.g. from :meth:`load`.
    """

    def __init__(self, loaded: LoadedClassifier) -> None:
        self._loaded = loaded

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_CLASSIFIER) -> DiseaseClassifier:
        """Load a bundled model by name, or a model folder or its ``card.json``.

        Raises:
            InputNotFoundError: No such model.
            ConfigError: The card is not a text classifier or a checksum fails.
        """
        return cls(load_classifier(name_or_path))

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
        return bool(self._loaded.card.preprocessing.get("multi_label", False))

    def predict(self, text: str, top_k: int | None = 5) -> list[tuple[str, float]]:
        """Labels ranked by score, best first: ``[(label, probability), ...]``.

        Args:
            text: The text to classify.
            top_k: Keep this many (``None``: all).
        """
        return self.predict_batch([text], top_k)[0]

    def predict_batch(
        self, texts: Sequence[str], top_k: int | None = 5
    ) -> list[list[tuple[str, float]]]:
        """:meth:`predict` for many texts at once (faster: batched)."""
        probs = self._loaded.predict_proba(list(texts))
        ranked: list[list[tuple[str, float]]] = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[: top_k if top_k else None]
            ranked.append([(self.labels[i], round(float(row[i]), 4)) for i in order])
        return ranked

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
            if score >= thresholds.get(label, 0.5)
        ]
