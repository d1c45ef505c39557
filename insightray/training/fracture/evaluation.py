"""Evaluate fracture probabilities: AUC with a bootstrap interval, operating points, calibration.

:func:`evaluate_scores` turns labels and probabilities into a :class:`FractureEvaluation`:
ROC AUC with a 95 % percentile-bootstrap interval (resampling source-image groups when given,
since augmented copies of one image are not independent), the Youden point and the point at a
fixed sensitivity (0.90 by default), sensitivity, specificity and the confusion matrix at the
threshold in use, and the expected calibration error. :func:`evaluate_folder` runs a
predictor over a labelled folder (``images/`` plus ``images.csv`` with ``image`` and
``fractured``, or the other layouts of :mod:`insightray.training.fracture.dataset`).

Example:
    >>> report = evaluate_scores([0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.7, 0.9, 0.6, 0.4],
    ...                          threshold=0.5, resamples=200)
    >>> report.auc, report.sensitivity, report.specificity, report.confusion
    (0.8888888888888888, 0.6666666666666666, 0.6666666666666666, [[2, 1], [1, 2]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from insightray.engine.classification import FracturePredictor
from insightray.imaging import read_image
from insightray.training.fracture.dataset import load_fracture_items
from insightray.training.metrics.calibration import (
    expected_calibration_error,
    plot_reliability_diagram,
)
from insightray.training.metrics.classification import confusion_matrix
from insightray.training.metrics.roc import (
    OperatingPoint,
    bootstrap_auc_ci,
    point_at_sensitivity,
    point_at_threshold,
    roc_auc,
    youden_point,
)

__all__ = ["FolderScores", "FractureEvaluation", "evaluate_folder", "evaluate_scores"]


@dataclass(frozen=True)
class FractureEvaluation:
    """Everything measured on one labelled set.

    Attributes:
        images: Images evaluated.
        positives: Fractured images among them.
        auc: ROC AUC.
        auc_ci: 95 % bootstrap interval of the AUC.
        threshold: The threshold ``sensitivity``, ``specificity`` and ``confusion`` use.
        sensitivity: True positive rate at ``threshold``.
        specificity: True negative rate at ``threshold``.
        confusion: ``[[TN, FP], [FN, TP]]`` at ``threshold``.
        youden: The Youden operating point on this set.
        fixed_sensitivity: The point reaching the target sensitivity on this set.
        ece: Expected calibration error (10 bins).
    """

    images: int
    positives: int
    auc: float
    auc_ci: tuple[float, float]
    threshold: float
    sensitivity: float
    specificity: float
    confusion: list[list[int]]
    youden: OperatingPoint
    fixed_sensitivity: OperatingPoint
    ece: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (``evaluate fracture --json``)."""
        return {
            "images": self.images,
            "positives": self.positives,
            "auc": round(self.auc, 5),
            "auc_ci": [round(value, 5) for value in self.auc_ci],
            "threshold": round(self.threshold, 5),
            "sensitivity": round(self.sensitivity, 5),
            "specificity": round(self.specificity, 5),
            "confusion_matrix": self.confusion,
            "youden": _rounded(self.youden),
            "fixed_sensitivity": _rounded(self.fixed_sensitivity),
            "ece": round(self.ece, 5),
        }


def _rounded(point: OperatingPoint) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in point.to_dict().items()}


def evaluate_scores(
    labels: ArrayLike,
    probabilities: ArrayLike,
    *,
    threshold: float | None = None,
    target_sensitivity: float = 0.9,
    groups: Sequence[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> FractureEvaluation:
    """Measure probabilities against 0/1 labels.

    Args:
        labels: 0/1 truth.
        probabilities: Fracture probabilities.
        threshold: Threshold for sensitivity/specificity/confusion; ``None`` uses this set's
            Youden point (only fair on the set the threshold is being chosen on).
        target_sensitivity: Sensitivity of the fixed-sensitivity point.
        groups: Source-image group per image, for a group bootstrap.
        resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Raises:
        ConfigError: Only one class present, or bad values.
    """
    truth = np.asarray(labels).astype(np.int64)
    scores = np.asarray(probabilities, dtype=np.float64)
    youden = youden_point(truth, scores)
    chosen = youden.threshold if threshold is None else float(threshold)
    at_threshold = point_at_threshold(truth, scores, chosen)
    matrix = confusion_matrix(truth, (scores >= chosen).astype(np.int64), 2)
    return FractureEvaluation(
        images=int(truth.size),
        positives=int(truth.sum()),
        auc=roc_auc(truth, scores),
        auc_ci=bootstrap_auc_ci(truth, scores, resamples=resamples, seed=seed, groups=groups),
        threshold=chosen,
        sensitivity=at_threshold.sensitivity,
        specificity=at_threshold.specificity,
        confusion=matrix.tolist(),
        youden=youden,
        fixed_sensitivity=point_at_sensitivity(truth, scores, target_sensitivity),
        ece=expected_calibration_error(truth, scores),
    )


@dataclass(frozen=True)
class FolderScores:
    """Per-image probabilities of a labelled folder, with the evaluation."""

    paths: list[Path]
    labels: list[int]
    probabilities: list[float]
    evaluation: FractureEvaluation


def evaluate_folder(
    predictor: FracturePredictor,
    data: str | Path,
    *,
    target_sensitivity: float = 0.9,
    resamples: int = 2000,
    reliability_png: str | Path | None = None,
    batch_size: int = 8,
) -> FolderScores:
    """Classify every labelled image of ``data`` and evaluate at the card's operating point.

    Raises:
        InputNotFoundError: The folder or an image is missing.
        InputError: A label or image is invalid.
        ConfigError: The folder holds one class only.
    """
    items = load_fracture_items(data)
    probabilities: list[float] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        results = predictor.predict_arrays([read_image(item.path).pixels for item in chunk])
        probabilities.extend(result.probability for result in results)
    labels = [item.label for item in items]
    evaluation = evaluate_scores(
        labels,
        probabilities,
        threshold=predictor.threshold,
        target_sensitivity=target_sensitivity,
        groups=[item.group for item in items],
        resamples=resamples,
    )
    if reliability_png is not None:
        plot_reliability_diagram(labels, probabilities, reliability_png)
    return FolderScores([item.path for item in items], labels, probabilities, evaluation)
