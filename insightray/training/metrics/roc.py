"""Binary ROC analysis: the curve, its area with a bootstrap interval, and operating points.

Scores are probabilities (or any score where higher means "more likely positive"); labels
are 0/1. The curve is computed at every distinct score, like scikit-learn's ``roc_curve``
with ``drop_intermediate=False``; an image is called positive when its score is ``>=`` the
threshold. The area is the Mann-Whitney statistic (ties count one half), which equals the
trapezoidal area under that curve.

Example:
    >>> labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    >>> roc_auc(labels, scores)
    0.75
    >>> point = youden_point(labels, scores)
    >>> point.threshold, point.sensitivity, point.specificity
    (0.8, 0.5, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from insightray.errors import ConfigError

__all__ = [
    "OperatingPoint",
    "RocCurve",
    "bootstrap_auc_ci",
    "bootstrap_auc_difference",
    "point_at_sensitivity",
    "point_at_threshold",
    "roc_auc",
    "roc_curve",
    "youden_point",
]

FloatArray = NDArray[np.float64]


def _checked(labels: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.int64], FloatArray]:
    truth = np.asarray(labels).astype(np.int64).ravel()
    values = np.asarray(scores, dtype=np.float64).ravel()
    if truth.shape != values.shape:
        raise ConfigError("ROC", "labels and scores differ in length", "pass paired lists")
    if truth.size and not np.isin(truth, (0, 1)).all():
        raise ConfigError("ROC", "labels must be 0 or 1", "binarise them first")
    if not np.isfinite(values).all():
        raise ConfigError("ROC", "a score is NaN or infinite", "check the model outputs")
    return truth, values


def _need_both_classes(truth: NDArray[np.int64]) -> None:
    if truth.sum() in (0, truth.size):
        raise ConfigError(
            "ROC",
            "the labels hold only one class, so ROC AUC is undefined",
            "evaluate on data with fractured and not fractured images",
        )


@dataclass(frozen=True)
class RocCurve:
    """False and true positive rates at each threshold (highest threshold first).

    The first point is ``(0, 0)`` at threshold ``+inf``.
    """

    fpr: FloatArray
    tpr: FloatArray
    thresholds: FloatArray


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> RocCurve:
    """The ROC curve at every distinct score.

    Raises:
        ConfigError: Bad input, or only one class present.
    """
    truth, values = _checked(labels, scores)
    _need_both_classes(truth)
    order = np.argsort(-values, kind="mergesort")
    sorted_scores, sorted_truth = values[order], truth[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_truth.size - 1]
    true_positives = np.cumsum(sorted_truth)[last_of_run]
    false_positives = (last_of_run + 1) - true_positives
    positives, negatives = truth.sum(), truth.size - truth.sum()
    return RocCurve(
        fpr=np.r_[0.0, false_positives / negatives],
        tpr=np.r_[0.0, true_positives / positives],
        thresholds=np.r_[np.inf, sorted_scores[last_of_run]],
    )


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U over positives x negatives, ties 1/2).

    Raises:
        ConfigError: Bad input, or only one class present.
    """
    truth, values = _checked(labels, scores)
    _need_both_classes(truth)
    ranks = _average_ranks(values)
    positives = int(truth.sum())
    negatives = truth.size - positives
    u_statistic = ranks[truth == 1].sum() - positives * (positives + 1) / 2
    return float(u_statistic / (positives * negatives))


def _average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing their average rank (scipy's ``rankdata``, without scipy)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def _clusters(size: int, groups: ArrayLike | None) -> list[NDArray[np.intp]]:
    """Indices per resampling unit: each image, or each group when groups are given."""
    if groups is None:
        return [np.array([index]) for index in range(size)]
    keys = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    if keys.size != size:
        raise ConfigError("bootstrap", "groups and labels differ in length", "pass one per image")
    return [np.flatnonzero(keys == key) for key in range(int(keys.max()) + 1)]


def bootstrap_auc_ci(
    labels: ArrayLike,
    scores: ArrayLike,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the ROC AUC.

    Resamples images with replacement (or whole groups, when ``groups`` is given, so copies
    of one source image move together); resamples that draw a single class are redrawn.

    Args:
        labels: 0/1 truth.
        scores: Scores.
        level: Coverage, e.g. 0.95.
        resamples: Bootstrap resamples.
        seed: Random seed.
        groups: Optional group id per image.

    Returns:
        ``(low, high)``.
    """
    truth, values = _checked(labels, scores)
    _need_both_classes(truth)
    if not 0 < level < 1:
        raise ConfigError("level", f"{level} is outside (0, 1)", "use e.g. 0.95")
    clusters = _clusters(truth.size, groups)
    rng = np.random.default_rng(seed)
    areas: list[float] = []
    attempts = 0
    while len(areas) < resamples and attempts < resamples * 20:
        attempts += 1
        chosen = rng.integers(0, len(clusters), len(clusters))
        index = np.concatenate([clusters[c] for c in chosen])
        sample = truth[index]
        if sample.sum() in (0, sample.size):
            continue
        areas.append(roc_auc(sample, values[index]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(areas, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_auc_difference(
    labels: ArrayLike,
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    groups: ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Paired bootstrap of ``AUC(a) - AUC(b)`` on the same images.

    Both models are scored on the same resample each time, so the interval reflects the
    difference itself (narrower than comparing two separate intervals).

    Returns:
        ``(difference, low, high)``; an interval excluding 0 means a real difference at
        that level.
    """
    truth, first = _checked(labels, scores_a)
    _, second = _checked(labels, scores_b)
    _need_both_classes(truth)
    clusters = _clusters(truth.size, groups)
    rng = np.random.default_rng(seed)
    differences: list[float] = []
    while len(differences) < resamples:
        index = np.concatenate([clusters[c] for c in rng.integers(0, len(clusters), len(clusters))])
        sample = truth[index]
        if sample.sum() in (0, sample.size):
            continue
        differences.append(roc_auc(sample, first[index]) - roc_auc(sample, second[index]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return roc_auc(truth, first) - roc_auc(truth, second), float(low), float(high)


@dataclass(frozen=True)
class OperatingPoint:
    """A decision threshold and what it achieves on the data it was measured on.

    Attributes:
        threshold: Call positive when the probability is ``>=`` this.
        sensitivity: True positive rate.
        specificity: True negative rate.
        rule: How it was chosen (``"youden"``, ``"sensitivity>=0.90"``, ``"fixed"``).
    """

    threshold: float
    sensitivity: float
    specificity: float
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


def _finite(curve: RocCurve) -> tuple[FloatArray, FloatArray, FloatArray]:
    # Drop the +inf point: it calls nothing positive and is never a useful threshold.
    return curve.fpr[1:], curve.tpr[1:], curve.thresholds[1:]


def youden_point(labels: ArrayLike, scores: ArrayLike) -> OperatingPoint:
    """The threshold maximising ``sensitivity + specificity - 1`` (ties: the highest one)."""
    fpr, tpr, thresholds = _finite(roc_curve(labels, scores))
    best = int(np.argmax(tpr - fpr))
    return OperatingPoint(float(thresholds[best]), float(tpr[best]), 1 - float(fpr[best]), "youden")


def point_at_sensitivity(
    labels: ArrayLike, scores: ArrayLike, target: float = 0.9
) -> OperatingPoint:
    """The highest threshold whose sensitivity reaches ``target`` (best specificity there)."""
    if not 0 < target <= 1:
        raise ConfigError("sensitivity target", f"{target} is outside (0, 1]", "use e.g. 0.9")
    fpr, tpr, thresholds = _finite(roc_curve(labels, scores))
    best = int(np.flatnonzero(tpr >= target - 1e-12)[0])
    return OperatingPoint(
        float(thresholds[best]),
        float(tpr[best]),
        1 - float(fpr[best]),
        f"sensitivity>={target:.2f}",
    )


def point_at_threshold(labels: ArrayLike, scores: ArrayLike, threshold: float) -> OperatingPoint:
    """Sensitivity and specificity of a given threshold (e.g. the card's, on new data)."""
    truth, values = _checked(labels, scores)
    _need_both_classes(truth)
    called = values >= threshold
    sensitivity = float(called[truth == 1].mean())
    specificity = float((~called[truth == 0]).mean())
    return OperatingPoint(float(threshold), sensitivity, specificity, "fixed")
