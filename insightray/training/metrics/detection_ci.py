"""Bootstrap 95 % intervals of detection metrics over images, and of paired differences.

Images are resampled with replacement; each resample's mAP@0.5, mAP@0.5:0.95 and per-class
AP50 are recomputed from the images' already matched predictions (an image's matches do not
depend on the other images, so matching is done once). The interval is the percentile
interval of the resampled values. A paired difference resamples the same images for two
evaluations of one image set (for example with and without test-time augmentation), so what
the images share cancels out.

Example:
    >>> from insightray.training.metrics import DetectionEvaluator
    >>> evaluator = DetectionEvaluator(["a"])
    >>> for i in range(20):
    ...     hit = i % 2 == 1  # every other image's box is a hit, scored above the misses
    ...     evaluator.add([[0, 0, 10, 10]], [0], [[0, 0, 10, 10 if hit else 4]],
    ...                   [0.9 if hit else 0.5], [0], image_id=str(i))
    >>> round(evaluator.compute().map50, 3)
    0.505
    >>> low, high = bootstrap_detection(evaluator, resamples=200).map50
    >>> 0.2 < low < 0.505 < high < 0.8
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.training.metrics.detection import (
    COCO_IOU_THRESHOLDS,
    DetectionEvaluator,
    ImageMatches,
    average_precisions,
    pool_matches,
)

__all__ = [
    "DetectionDifference",
    "DetectionIntervals",
    "bootstrap_detection",
    "bootstrap_detection_difference",
]

Interval = tuple[float, float]


@dataclass(frozen=True)
class DetectionIntervals:
    """Percentile-bootstrap intervals of one evaluation (``None``: no ground truth).

    Attributes:
        map50: Interval of mAP@0.5.
        map50_95: Interval of mAP@0.5:0.95.
        per_class_ap50: Interval of each class's AP50, by class name.
        resamples: Number of bootstrap resamples.
        level: Coverage, e.g. 0.95.
    """

    map50: Interval | None
    map50_95: Interval | None
    per_class_ap50: dict[str, Interval | None]
    resamples: int
    level: float

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: intervals as ``[low, high]`` lists."""
        return {
            "level": self.level,
            "resamples": self.resamples,
            "map50": _listed(self.map50),
            "map50_95": _listed(self.map50_95),
            "per_class_ap50": {name: _listed(ci) for name, ci in self.per_class_ap50.items()},
        }


@dataclass(frozen=True)
class DetectionDifference:
    """``a - b`` on the same images: the point differences and their paired intervals."""

    map50: float | None
    map50_95: float | None
    per_class_ap50: dict[str, float | None]
    intervals: DetectionIntervals

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "per_class_ap50": dict(self.per_class_ap50),
            "ci": self.intervals.to_dict(),
        }


def _listed(interval: Interval | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def _summaries(images: list[ImageMatches], num_classes: int) -> NDArray[np.float64]:
    """``[map50, map50_95, ap50 per class...]`` of a set of images (NaN where undefined)."""
    pooled = pool_matches(images, num_classes, len(COCO_IOU_THRESHOLDS))
    aps = average_precisions(pooled)
    ap50 = np.array([np.nan if ap is None else ap[0] for ap in aps])
    ap50_95 = np.array([np.nan if ap is None else ap.mean() for ap in aps])
    present = ~np.isnan(ap50)
    if not present.any():
        return np.full(2 + num_classes, np.nan)
    return np.concatenate([[ap50[present].mean(), ap50_95[present].mean()], ap50])


def _resampled(
    evaluators: list[DetectionEvaluator], resamples: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Point summaries ``(evaluators, stats)`` and resampled ``(evaluators, resamples, stats)``."""
    if resamples < 10:
        raise ConfigError(f"resamples {resamples}", "too few for an interval", "use e.g. 1000")
    matches = [e.image_matches(COCO_IOU_THRESHOLDS) for e in evaluators]
    count = len(matches[0])
    if count == 0:
        raise ConfigError("bootstrap", "no images were evaluated", "evaluate some images first")
    num_classes = len(evaluators[0].class_names)
    points = np.array([_summaries(m, num_classes) for m in matches])
    rng = np.random.default_rng(seed)
    draws = np.empty((len(evaluators), resamples, 2 + num_classes))
    for index in range(resamples):
        chosen = rng.integers(0, count, count)
        for which, images in enumerate(matches):
            draws[which, index] = _summaries([images[i] for i in chosen], num_classes)
    return points, draws


def _intervals(
    draws: NDArray[np.float64], names: tuple[str, ...], level: float
) -> DetectionIntervals:
    tail = (1.0 - level) / 2.0 * 100.0

    def interval(column: int) -> Interval | None:
        values = draws[:, column][~np.isnan(draws[:, column])]
        if len(values) < 0.5 * len(draws):  # mostly resamples without that class
            return None
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return float(low), float(high)

    per_class = {name: interval(2 + k) for k, name in enumerate(names)}
    return DetectionIntervals(interval(0), interval(1), per_class, len(draws), level)


def bootstrap_detection(
    evaluator: DetectionEvaluator, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> DetectionIntervals:
    """Percentile-bootstrap intervals of mAP@0.5, mAP@0.5:0.95 and per-class AP50 over images.

    Raises:
        ConfigError: No images, or fewer than 10 resamples.
    """
    _, draws = _resampled([evaluator], resamples, seed)
    return _intervals(draws[0], evaluator.class_names, level)


def bootstrap_detection_difference(
    a: DetectionEvaluator,
    b: DetectionEvaluator,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> DetectionDifference:
    """Paired bootstrap of ``metrics(a) - metrics(b)`` over the same images.

    Raises:
        ConfigError: The two evaluations hold different classes or image counts.
    """
    if a.class_names != b.class_names or a.num_images != b.num_images:
        raise ConfigError(
            "paired bootstrap",
            "the evaluations cover different images or classes",
            "evaluate both on the same images",
        )
    points, draws = _resampled([a, b], resamples, seed)
    diff = points[0] - points[1]

    def value(index: int) -> float | None:
        return None if np.isnan(diff[index]) else float(diff[index])

    per_class = {name: value(2 + k) for k, name in enumerate(a.class_names)}
    intervals = _intervals(draws[0] - draws[1], a.class_names, level)
    return DetectionDifference(value(0), value(1), per_class, intervals)
