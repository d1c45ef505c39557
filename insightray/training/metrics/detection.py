"""Object-detection metrics: IoU, COCO-style average precision, mAP and PR curves.

Boxes are float arrays ``(N, 4)`` of ``x1, y1, x2, y2`` pixel corners; class ids are ints that
index ``class_names``. Predictions are matched greedily by descending score, each to the
unmatched ground-truth box of the same class with the highest IoU at or above the threshold
(the COCO rule). AP uses 101-point interpolation over the precision envelope, so ``map50`` and
``map50_95`` agree with pycocotools' ``COCOeval`` (area "all", under 100 boxes per image).
``map40`` is the VinBigData competition metric. Classes without ground truth get ``None`` and
are left out of the means; images without ground truth still add false positives.

Example:
    >>> evaluator = DetectionEvaluator(["nodule"])
    >>> evaluator.add([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.9], [0])
    >>> evaluator.compute().map50
    1.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from insightray.errors import ConfigError, InputError
from insightray.imaging.io import save_png

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

#: The ten COCO IoU thresholds 0.50:0.05:0.95, built exactly as pycocotools builds them.
COCO_IOU_THRESHOLDS: FloatArray = np.linspace(0.5, 0.95, 10, endpoint=True)
#: The 101 recall levels at which interpolated precision is sampled.
RECALL_LEVELS: FloatArray = np.linspace(0.0, 1.0, 101, endpoint=True)
COCO_IOU_THRESHOLDS.setflags(write=False)
RECALL_LEVELS.setflags(write=False)


def box_iou(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Pairwise intersection over union of two sets of ``x1, y1, x2, y2`` boxes.

    Areas are ``(x2 - x1) * (y2 - y1)`` (no +1). Pairs whose union is empty get 0.

    Args:
        a: ``(N, 4)`` boxes.
        b: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` float64 matrix of IoU values in ``[0, 1]``.

    Example:
        >>> box_iou([[0, 0, 10, 10]], [[0, 0, 10, 5], [20, 20, 30, 30]])
        array([[0.5, 0. ]])
    """
    boxes_a, boxes_b = _as_boxes(a, "box_iou", "a"), _as_boxes(b, "box_iou", "b")
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    sides = np.clip(bottom_right - top_left, 0.0, None)
    inter = sides[..., 0] * sides[..., 1]
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou: FloatArray = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return iou


@dataclass(frozen=True)
class ClassAP:
    """Average precision of one class; ``None`` where the class has no ground truth."""

    class_id: int
    name: str
    ap40: float | None
    ap50: float | None
    ap50_95: float | None
    num_gt: int


@dataclass(frozen=True, eq=False)
class PRCurve:
    """Raw precision-recall points of one class at IoU 0.5, one per prediction by score."""

    class_id: int
    name: str
    recall: FloatArray
    precision: FloatArray
    scores: FloatArray
    ap50: float

    def envelope(self) -> FloatArray:
        """Interpolated precision: the best precision at this recall or any higher one."""
        return np.maximum.accumulate(self.precision[::-1])[::-1]


@dataclass(frozen=True)
class DetectionMetrics:
    """Result of :meth:`DetectionEvaluator.compute`; means are ``None`` without any ground truth.

    ``precision`` and ``recall`` pool all classes at IoU 0.5 over predictions scoring at least
    ``conf_threshold``; precision is ``None`` when no prediction passes.
    """

    map40: float | None
    map50: float | None
    map50_95: float | None
    precision: float | None
    recall: float | None
    per_class: tuple[ClassAP, ...]
    images: int
    conf_threshold: float
    pr_curves: tuple[PRCurve, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (PR curves are left out).

        Example:
            >>> DetectionEvaluator(["a"]).compute().to_dict()["per_class"][0]["ap50"] is None
            True
        """
        return {
            "map40": self.map40,
            "map50": self.map50,
            "map50_95": self.map50_95,
            "precision": self.precision,
            "recall": self.recall,
            "per_class": [asdict(c) for c in self.per_class],
            "images": self.images,
        }


class _Image(NamedTuple):
    gt_boxes: FloatArray
    gt_classes: IntArray
    pred_boxes: FloatArray
    pred_scores: FloatArray
    pred_classes: IntArray


class _ClassMatches(NamedTuple):
    scores: FloatArray  # descending
    true_positive: BoolArray  # (predictions, thresholds)
    num_gt: int


class DetectionEvaluator:
    """Collects ground truth and predictions image by image, then computes detection metrics.

    Args:
        class_names: One name per class id; class ``i`` is ``class_names[i]``.

    Example:
        >>> evaluator = DetectionEvaluator(["nodule", "effusion"])
        >>> evaluator.add(
        ...     gt_boxes=[[0, 0, 10, 10]], gt_classes=[0],
        ...     pred_boxes=[[0, 0, 10, 10], [5, 5, 9, 9]], pred_scores=[0.9, 0.8],
        ...     pred_classes=[0, 1], image_id="a.dcm")
        >>> result = evaluator.compute()
        >>> result.map50, result.precision, result.per_class[1].ap50
        (1.0, 0.5, None)
    """

    def __init__(self, class_names: list[str] | tuple[str, ...]) -> None:
        if not class_names:
            raise ConfigError("class_names", "the list is empty", "name at least one class")
        if len(set(class_names)) != len(class_names):
            raise ConfigError("class_names", "a name appears twice", "give each class one name")
        self.class_names: tuple[str, ...] = tuple(class_names)
        self._images: list[_Image] = []
        self._image_ids: dict[str, None] = {}  # insertion-ordered

    @property
    def num_images(self) -> int:
        """Number of images added so far."""
        return len(self._images)

    def add(
        self,
        gt_boxes: ArrayLike,
        gt_classes: ArrayLike,
        pred_boxes: ArrayLike,
        pred_scores: ArrayLike,
        pred_classes: ArrayLike,
        image_id: str | None = None,
    ) -> None:
        """Add one image; empty arrays mean no ground truth (a negative) or no predictions.

        Raises:
            InputError: Shapes disagree, boxes are not finite ``x1 <= x2, y1 <= y2`` corners,
                a class id is unknown, or ``image_id`` was already added.
        """
        subject = image_id if image_id is not None else f"image {len(self._images)}"
        if subject in self._image_ids:
            raise InputError(subject, "this image was already added", "add each image once")
        num_classes = len(self.class_names)
        gt = _as_boxes(gt_boxes, subject, "ground-truth boxes")
        gt_ids = _as_class_ids(gt_classes, len(gt), num_classes, subject, "ground-truth classes")
        pred = _as_boxes(pred_boxes, subject, "predicted boxes")
        pred_ids = _as_class_ids(pred_classes, len(pred), num_classes, subject, "predicted classes")
        scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(pred) or not np.isfinite(scores).all():
            problem = f"{len(scores)} scores for {len(pred)} predicted boxes, or a score is NaN"
            raise InputError(subject, problem, "give one finite score per predicted box")
        self._images.append(_Image(gt, gt_ids, pred, scores, pred_ids))
        self._image_ids[subject] = None

    def items(self) -> list[tuple[str, FloatArray, IntArray, FloatArray, FloatArray, IntArray]]:
        """What was added, in order: ``(image id, gt boxes, gt classes, predicted boxes,
        scores, predicted classes)`` per image (to save out-of-fold predictions, or pool)."""
        return [
            (image_id, *image)
            for image_id, image in zip(self._image_ids, self._images, strict=True)
        ]

    def average_precision(self, iou_threshold: float) -> list[float | None]:
        """AP of each class at one IoU threshold; ``None`` for classes without ground truth.

        Example:
            >>> evaluator = DetectionEvaluator(["a"])
            >>> evaluator.add([[0, 0, 10, 10]], [0], [[0, 0, 10, 6]], [0.5], [0])
            >>> evaluator.average_precision(0.5), evaluator.average_precision(0.7)
            ([1.0], [0.0])
        """
        if not 0.0 <= iou_threshold <= 1.0:
            raise ConfigError("iou_threshold", f"{iou_threshold} is outside 0..1", "pick 0.5")
        matches = self._match(np.array([iou_threshold]))
        return [_nullable(_ap_per_threshold(m)[0], m.num_gt) for m in matches]

    def compute(self, conf_threshold: float = 0.25) -> DetectionMetrics:
        """Compute mAP@0.4, mAP@0.5, mAP@0.5:0.95, per-class AP, precision/recall and PR curves.

        Args:
            conf_threshold: Minimum score for the pooled precision and recall at IoU 0.5.
        """
        thresholds = np.concatenate([[0.4], COCO_IOU_THRESHOLDS])
        matches = self._match(thresholds)
        per_class: list[ClassAP] = []
        curves: list[PRCurve] = []
        tp_at_conf = dets_at_conf = total_gt = 0
        for class_id, (name, m) in enumerate(zip(self.class_names, matches, strict=True)):
            ap = _ap_per_threshold(m)
            ap40, ap50, ap50_95 = (_nullable(v, m.num_gt) for v in (ap[0], ap[1], ap[1:].mean()))
            per_class.append(ClassAP(class_id, name, ap40, ap50, ap50_95, m.num_gt))
            confident = m.scores >= conf_threshold
            tp_at_conf += int(m.true_positive[confident, 1].sum())
            dets_at_conf += int(confident.sum())
            total_gt += m.num_gt
            if m.num_gt:
                tp_sum = np.cumsum(m.true_positive[:, 1], dtype=np.float64)
                ranks = np.arange(1, len(tp_sum) + 1, dtype=np.float64)
                curves.append(
                    PRCurve(class_id, name, tp_sum / m.num_gt, tp_sum / ranks, m.scores, ap[1])
                )
        return DetectionMetrics(
            map40=_mean_or_none([c.ap40 for c in per_class]),
            map50=_mean_or_none([c.ap50 for c in per_class]),
            map50_95=_mean_or_none([c.ap50_95 for c in per_class]),
            precision=tp_at_conf / dets_at_conf if dets_at_conf else None,
            recall=tp_at_conf / total_gt if total_gt else None,
            per_class=tuple(per_class),
            images=len(self._images),
            conf_threshold=conf_threshold,
            pr_curves=tuple(curves),
        )

    def _match(self, thresholds: FloatArray) -> list[_ClassMatches]:
        images = self.image_matches(thresholds)
        return pool_matches(images, len(self.class_names), len(thresholds))

    def image_matches(self, thresholds: FloatArray) -> list[ImageMatches]:
        """Each image's matched predictions per class, in the order the images were added.

        The unit the bootstrap resamples (:mod:`insightray.training.metrics.detection_ci`).
        """
        num_classes = len(self.class_names)
        empty = (np.zeros(0), np.zeros((0, len(thresholds)), dtype=np.bool_))
        result = []
        for image in self._images:
            per_class = [empty] * num_classes
            for class_id in np.unique(image.pred_classes):
                mine = image.pred_classes == class_id
                order = np.argsort(-image.pred_scores[mine], kind="mergesort")
                preds = image.pred_boxes[mine][order]
                gts = image.gt_boxes[image.gt_classes == class_id]
                hits = _greedy_match(preds, gts, thresholds)
                per_class[class_id] = (image.pred_scores[mine][order], hits)
            num_gt = np.bincount(image.gt_classes, minlength=num_classes).astype(np.int64)
            result.append(ImageMatches(tuple(per_class), num_gt))
        return result


class ImageMatches(NamedTuple):
    """One image's predictions per class: ``(scores, true-positive flags per threshold)``,
    and its ground-truth count per class."""

    per_class: tuple[tuple[FloatArray, BoolArray], ...]
    num_gt: IntArray


def pool_matches(
    images: list[ImageMatches], num_classes: int, num_thresholds: int
) -> list[_ClassMatches]:
    """Pool images' matches class by class, predictions sorted by descending score."""
    result = []
    for class_id in range(num_classes):
        scores = [np.zeros(0)] + [image.per_class[class_id][0] for image in images]
        hits = [np.zeros((0, num_thresholds), dtype=np.bool_)]
        all_scores = np.concatenate(scores)
        all_hits = np.concatenate(hits + [image.per_class[class_id][1] for image in images])
        order = np.argsort(-all_scores, kind="mergesort")
        num_gt = int(sum(int(image.num_gt[class_id]) for image in images))
        result.append(_ClassMatches(all_scores[order], all_hits[order], num_gt))
    return result


def average_precisions(matches: list[_ClassMatches]) -> list[FloatArray | None]:
    """Per class, AP at each threshold column; ``None`` for a class without ground truth."""
    return [_ap_per_threshold(m) if m.num_gt else None for m in matches]


def plot_pr_curves(result: DetectionMetrics, path: str | Path) -> Path:
    """Draw the IoU 0.5 precision-recall curve of every class to a PNG with OpenCV.

    Each curve is the interpolated precision envelope, the one AP integrates.

    Args:
        result: Output of :meth:`DetectionEvaluator.compute`.
        path: Where to write the PNG; parent folders are created.

    Returns:
        The written path.

    Example:
        >>> evaluator = DetectionEvaluator(["a"])
        >>> evaluator.add([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.9], [0])
        >>> plot_pr_curves(evaluator.compute(), "runs/pr.png")  # doctest: +SKIP
        PosixPath('runs/pr.png')
    """
    width, height, left, top, size = 980, 620, 80, 70, 480
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    font, black, grey = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0), (215, 215, 215)

    def pixel(recall: float, precision: float) -> tuple[int, int]:
        return round(left + recall * size), round(top + (1.0 - precision) * size)

    for tick in np.linspace(0.0, 1.0, 6):
        cv2.line(canvas, pixel(tick, 0.0), pixel(tick, 1.0), grey, 1)
        cv2.line(canvas, pixel(0.0, tick), pixel(1.0, tick), grey, 1)
        x, y = pixel(tick, 0.0)
        cv2.putText(canvas, f"{tick:.1f}", (x - 12, y + 20), font, 0.45, black, 1, cv2.LINE_AA)
        x, y = pixel(0.0, tick)
        cv2.putText(canvas, f"{tick:.1f}", (x - 34, y + 5), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, pixel(0.0, 1.0), pixel(1.0, 0.0), black, 1)
    summary = "n/a" if result.map50 is None else f"{result.map50:.3f}"
    title = f"Precision-recall at IoU 0.5 (mAP50 {summary})"
    cv2.putText(canvas, title, (left, top - 40), font, 0.6, black, 1, cv2.LINE_AA)
    cv2.putText(canvas, "Recall", (left + size // 2 - 25, top + size + 42), font, 0.5, black, 1)
    cv2.putText(canvas, "Precision", (5, top - 14), font, 0.5, black, 1, cv2.LINE_AA)
    legend_x = left + size + 30
    if not result.pr_curves:
        cv2.putText(canvas, "no class has ground truth", (legend_x, top + 20), font, 0.5, black)
    for row, curve in enumerate(result.pr_curves):
        color = _PALETTE_BGR[row % len(_PALETTE_BGR)]
        if len(curve.recall):
            envelope = curve.envelope()
            xs = np.concatenate([[0.0], np.repeat(curve.recall, 2)])
            ys = np.concatenate([np.repeat(envelope, 2), [0.0]])
            points = np.array([pixel(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
            cv2.polylines(canvas, [points], False, color, 2, cv2.LINE_AA)
        y = top + 10 + row * 24
        cv2.line(canvas, (legend_x, y), (legend_x + 24, y), color, 3)
        name = curve.name.encode("ascii", "replace").decode("ascii")  # Hershey fonts are ASCII
        label = f"{name}  AP50 {curve.ap50:.3f}"
        cv2.putText(canvas, label, (legend_x + 32, y + 5), font, 0.45, black, 1, cv2.LINE_AA)
    return save_png(canvas, path)


# Ten distinct colours (BGR) for the curves; cycled beyond ten classes.
_PALETTE_BGR = (
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
    (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23),
)  # fmt: skip


def _greedy_match(preds: FloatArray, gts: FloatArray, thresholds: FloatArray) -> BoolArray:
    """True-positive flags ``(predictions, thresholds)`` for score-sorted predictions."""
    num_thresholds = len(thresholds)
    hits = np.zeros((len(preds), num_thresholds), dtype=np.bool_)
    if len(preds) == 0 or len(gts) == 0:
        return hits
    ious = box_iou(preds, gts)
    limits = np.minimum(thresholds, 1.0 - 1e-10)  # as COCO: an IoU of exactly 1 can match 1.0
    taken = np.zeros((num_thresholds, len(gts)), dtype=np.bool_)
    rows = np.arange(num_thresholds)
    last = len(gts) - 1
    for index in range(len(preds)):
        candidates = np.where(taken, -1.0, ious[index][None, :])
        best = last - np.argmax(candidates[:, ::-1], axis=1)  # the last of equal bests, as COCO
        hit = candidates[rows, best] >= limits
        hits[index] = hit
        taken[rows[hit], best[hit]] = True
    return hits


def _ap_per_threshold(matches: _ClassMatches) -> FloatArray:
    """101-point interpolated AP for each threshold column (0 without ground truth)."""
    hits, num_gt = matches.true_positive, matches.num_gt
    count, num_thresholds = hits.shape
    if count == 0 or num_gt == 0:
        return np.zeros(num_thresholds)
    tp_sum = np.cumsum(hits, axis=0, dtype=np.float64)
    recall = tp_sum / num_gt
    precision = tp_sum / np.arange(1, count + 1, dtype=np.float64)[:, None]
    envelope = np.flip(np.maximum.accumulate(np.flip(precision, axis=0), axis=0), axis=0)
    ap = np.empty(num_thresholds)
    for column in range(num_thresholds):
        index = np.searchsorted(recall[:, column], RECALL_LEVELS, side="left")
        sampled = np.where(index < count, envelope[np.minimum(index, count - 1), column], 0.0)
        ap[column] = sampled.mean()
    return ap


def _nullable(value: float, num_gt: int) -> float | None:
    return float(value) if num_gt else None


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _as_boxes(value: ArrayLike, subject: str, what: str) -> FloatArray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(subject, f"{what} have shape {boxes.shape}", "pass (N, 4) x1, y1, x2, y2")
    if not np.isfinite(boxes).all():
        raise InputError(subject, f"{what} hold NaN or infinite values", "drop those boxes")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise InputError(subject, f"{what} have x2 < x1 or y2 < y1", "pass x1, y1, x2, y2 corners")
    return boxes


def _as_class_ids(
    value: ArrayLike, count: int, num_classes: int, subject: str, what: str
) -> IntArray:
    raw = np.asarray(value).reshape(-1)
    if raw.size == 0:
        raw = np.zeros(0, dtype=np.int64)
    numeric = np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)
    if not numeric or (raw.size and not np.array_equal(raw, np.round(raw))):
        raise InputError(subject, f"{what} are not whole numbers", "pass integer class ids")
    ids = raw.astype(np.int64)
    if len(ids) != count:
        raise InputError(subject, f"{len(ids)} {what} for {count} boxes", "give one id per box")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise InputError(
            subject, f"{what} include {ids.min()}..{ids.max()}", f"use ids 0..{num_classes - 1}"
        )
    return ids
