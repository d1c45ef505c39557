"""Scoring a text classifier: reports from probabilities, the card's split, a loaded model.

Example:
    >>> import numpy as np
    >>> data = TextDataset(("a", "b"), ("x", "y"), np.array([0, 1]), False)
    >>> report_for(data, np.eye(2, dtype=np.float32), None).accuracy
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.models.card import ModelCard
from insightray.models.text.bert_classifier import LoadedClassifier
from insightray.training.metrics.classification import (
    ClassificationReport,
    classification_report,
    multilabel_report,
)
from insightray.training.textcls.data import TextDataset, stratified_split

__all__ = ["evaluate_textcls", "report_for", "split_for_card"]


def report_for(
    data: TextDataset, probs: NDArray[np.float32], thresholds: Sequence[float] | None
) -> ClassificationReport:
    """Scores of predicted probabilities: the top label (single-label), or every label at or
    above its threshold (multi-label; 0.5 for each label when ``thresholds`` is ``None``)."""
    if data.multi_label:
        cut = np.asarray(thresholds if thresholds is not None else [0.5] * len(data.labels))
        return multilabel_report(data.targets, probs >= cut[None, :], data.labels)
    return classification_report(data.targets, probs.argmax(axis=1), data.labels)


def split_for_card(data: TextDataset, card: ModelCard, part: str) -> TextDataset:
    """The ``train``, ``val`` or ``test`` part of ``data``, split as the card's model was.

    Raises:
        ConfigError: Unknown part, or the card has no split record.
    """
    if part == "all":
        return data
    split = card.preprocessing.extra.get("split")
    if part not in ("train", "val", "test") or not isinstance(split, dict):
        raise ConfigError(part, "unknown split or the card records none", "use --split all")
    fractions = tuple(float(f) for f in split["fractions"])
    indices = stratified_split(data, (fractions[0], fractions[1], fractions[2]), int(split["seed"]))
    rows: tuple[int, ...] = getattr(indices, part)
    return data.subset(rows)


def evaluate_textcls(loaded: LoadedClassifier, data: TextDataset) -> ClassificationReport:
    """Score a loaded classifier on ``data`` (labels matched to the model's by name).

    Multi-label decisions use the card's per-class thresholds (0.5 where absent).
    """
    data = data.with_labels(loaded.card.labels)
    probs = loaded.predict_proba(data.texts)
    thresholds = [loaded.card.thresholds.extra.get(label, 0.5) for label in loaded.card.labels]
    return report_for(data, probs, thresholds)
