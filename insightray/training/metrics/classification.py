"""Classification metrics: accuracy, per-class and macro F1, confusion, multi-label thresholds.

Single-label inputs are integer class ids; multi-label inputs are ``(N, C)`` 0/1 matrices.
Macro F1 follows scikit-learn's default: the mean over the classes that occur in the truth or
in the predictions (a class never seen and never predicted is left out), and a class with no
true or predicted examples scores 0 rather than raising.

Example:
    >>> report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    >>> report.accuracy, round(report.macro_f1, 4)
    (0.75, 0.7778)
    >>> report.confusion
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from insightray.errors import ConfigError

__all__ = [
    "ClassificationReport",
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "macro_f1",
    "multilabel_report",
    "per_class_f1",
    "precision_recall_f1",
    "tune_thresholds",
]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

#: Thresholds tried by :func:`tune_thresholds`: 0.05, 0.10, ... 0.95.
THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * step, 2) for step in range(1, 20))


def _ids(values: ArrayLike, name: str) -> IntArray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConfigError(name, f"expected a flat list of class ids, got shape {array.shape}", "")
    return array.astype(np.int64)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> IntArray:
    """Count ``(true, predicted)`` pairs: rows are true classes, columns predicted ones.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
        [[1, 0], [1, 1]]
    """
    truth, pred = _ids(y_true, "y_true"), _ids(y_pred, "y_pred")
    if truth.shape != pred.shape:
        raise ConfigError("metrics", "y_true and y_pred differ in length", "pass paired lists")
    if truth.size and (
        min(truth.min(), pred.min()) < 0 or max(truth.max(), pred.max()) >= num_classes
    ):
        raise ConfigError("metrics", f"class ids must lie in [0, {num_classes})", "check labels")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return matrix


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact matches; 0.0 for empty input.

    Example:
        >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
        0.75
    """
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    if truth.shape != pred.shape:
        raise ConfigError("metrics", "y_true and y_pred differ in shape", "pass paired values")
    if truth.size == 0:
        return 0.0
    if truth.ndim == 2:  # multi-label: subset accuracy, every label of a row must match
        return float(np.all(truth == pred, axis=1).mean())
    return float((truth == pred).mean())


def _safe_divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def precision_recall_f1(
    true_pos: ArrayLike, false_pos: ArrayLike, false_neg: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-class precision, recall and F1 from counts; 0 where undefined.

    Example:
        >>> [v.tolist() for v in precision_recall_f1([1], [1], [0])]
        [[0.5], [1.0], [0.6666666666666666]]
    """
    tp = np.asarray(true_pos, dtype=np.float64)
    fp = np.asarray(false_pos, dtype=np.float64)
    fn = np.asarray(false_neg, dtype=np.float64)
    precision = _safe_divide(tp, tp + fp)
    recall = _safe_divide(tp, tp + fn)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    return precision, recall, f1


def per_class_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> FloatArray:
    """F1 of every class id ``0 .. num_classes - 1`` (0 for a class with no examples at all).

    Example:
        >>> per_class_f1([0, 1, 1], [0, 0, 1], 2).round(3).tolist()
        [0.667, 0.667]
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix)
    return precision_recall_f1(tp, matrix.sum(axis=0) - tp, matrix.sum(axis=1) - tp)[2]


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's default).

    Example:
        >>> round(macro_f1([0, 1, 1, 2], [0, 1, 2, 2]), 4)
        0.7778
    """
    truth, pred = _ids(y_true, "y_true"), _ids(y_pred, "y_pred")
    if truth.size == 0:
        return 0.0
    count = num_classes if num_classes is not None else int(max(truth.max(), pred.max())) + 1
    present = np.union1d(truth, pred)
    return float(per_class_f1(truth, pred, count)[present].mean())


@dataclass(frozen=True)
class ClassificationReport:
    """Evaluation results, JSON-ready through :meth:`to_dict`.

    Attributes:
        examples: Number of evaluated examples.
        accuracy: Exact-match accuracy (subset accuracy for multi-label).
        macro_f1: Mean per-class F1 (see the module docstring for which classes count).
        micro_f1: F1 over all decisions pooled (equals accuracy for single-label).
        per_class: ``label -> {"precision", "recall", "f1", "support"}``.
        confusion: Rows true, columns predicted (single-label only; empty for multi-label).
        labels: Class names in id order.
    """

    examples: int
    accuracy: float
    macro_f1: float
    micro_f1: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dictionary for ``json.dumps``."""
        return asdict(self)


def _per_class_table(
    labels: Sequence[str], tp: FloatArray, fp: FloatArray, fn: FloatArray
) -> tuple[dict[str, dict[str, float]], FloatArray]:
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    table = {
        label: {
            "precision": round(float(precision[i]), 6),
            "recall": round(float(recall[i]), 6),
            "f1": round(float(f1[i]), 6),
            "support": float(tp[i] + fn[i]),
        }
        for i, label in enumerate(labels)
    }
    return table, f1


def classification_report(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[str]
) -> ClassificationReport:
    """Single-label report: accuracy, macro and micro F1, per-class table, confusion matrix.

    Example:
        >>> classification_report([0, 1], [0, 0], ["flu", "cold"]).per_class["flu"]["recall"]
        1.0
    """
    truth, pred = _ids(y_true, "y_true"), _ids(y_pred, "y_pred")
    matrix = confusion_matrix(truth, pred, len(labels))
    tp = np.diag(matrix).astype(np.float64)
    fp, fn = matrix.sum(axis=0) - tp, matrix.sum(axis=1) - tp
    table, _ = _per_class_table(labels, tp, fp, fn)
    return ClassificationReport(
        examples=int(truth.size),
        accuracy=accuracy(truth, pred),
        macro_f1=macro_f1(truth, pred, len(labels)),
        micro_f1=accuracy(truth, pred),
        per_class=table,
        confusion=matrix.tolist(),
        labels=list(labels),
    )


def _binary(values: ArrayLike, name: str) -> NDArray[np.bool_]:
    array = np.asarray(values)
    if array.ndim != 2:
        raise ConfigError(name, f"expected an (N, C) 0/1 matrix, got shape {array.shape}", "")
    return array.astype(bool)


def multilabel_report(
    y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[str]
) -> ClassificationReport:
    """Multi-label report from ``(N, C)`` 0/1 matrices: subset accuracy, macro and micro F1.

    Macro F1 averages the classes that have a true or a predicted positive.

    Example:
        >>> report = multilabel_report([[1, 0], [1, 1]], [[1, 0], [1, 0]], ["a", "b"])
        >>> report.accuracy, report.macro_f1
        (0.5, 0.5)
    """
    truth, pred = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    if truth.shape != pred.shape:
        raise ConfigError("metrics", "y_true and y_pred differ in shape", "pass paired matrices")
    tp = (truth & pred).sum(axis=0).astype(np.float64)
    fp = (~truth & pred).sum(axis=0).astype(np.float64)
    fn = (truth & ~pred).sum(axis=0).astype(np.float64)
    table, f1 = _per_class_table(labels, tp, fp, fn)
    present = (tp + fp + fn) > 0
    micro = precision_recall_f1([tp.sum()], [fp.sum()], [fn.sum()])[2][0]
    return ClassificationReport(
        examples=int(truth.shape[0]),
        accuracy=accuracy(truth, pred),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        micro_f1=float(micro),
        per_class=table,
        labels=list(labels),
    )


def tune_thresholds(
    y_true: ArrayLike, scores: ArrayLike, grid: Sequence[float] = THRESHOLD_GRID
) -> list[float]:
    """For each class, the threshold from ``grid`` that maximises that class's F1.

    Ties go to the threshold closest to 0.5; a class without positives keeps 0.5.

    Args:
        y_true: ``(N, C)`` 0/1 truth.
        scores: ``(N, C)`` probabilities.
        grid: Candidate thresholds.

    Returns:
        One threshold per class.

    Example:
        >>> tune_thresholds([[1], [0], [1]], [[0.3], [0.2], [0.9]])  # 0.25 ties, 0.3 is nearer 0.5
        [0.3]
    """
    truth, probs = _binary(y_true, "y_true"), np.asarray(scores, dtype=np.float64)
    if truth.shape != probs.shape:
        raise ConfigError("thresholds", "y_true and scores differ in shape", "pass paired data")
    candidates = sorted(grid, key=lambda value: abs(value - 0.5))
    chosen: list[float] = []
    for column in range(truth.shape[1]):
        positives = truth[:, column]
        if not positives.any():
            chosen.append(0.5)
            continue
        best, best_f1 = 0.5, -1.0
        for threshold in candidates:
            predicted = probs[:, column] >= threshold
            tp = float((positives & predicted).sum())
            f1 = (
                2
                * tp
                / (2 * tp + float((~positives & predicted).sum() + (positives & ~predicted).sum()))
            )
            if f1 > best_f1:
                best, best_f1 = float(threshold), f1
        chosen.append(best)
    return chosen
