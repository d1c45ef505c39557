"""Tests for insightray.training.metrics.detection."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from insightray.errors import ConfigError, InputError
from insightray.training.metrics import DetectionEvaluator, box_iou, plot_pr_curves

NAMES = ["nodule", "effusion", "cardiomegaly"]


def test_box_iou_values() -> None:
    iou = box_iou([[0, 0, 10, 10], [0, 0, 0, 0]], [[0, 0, 10, 5], [5, 0, 15, 10], [20, 20, 30, 30]])
    # 50 / 100; overlap 50 / union 150; disjoint; a zero-area box never overlaps.
    np.testing.assert_allclose(iou, [[0.5, 1 / 3, 0.0], [0.0, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def _hand_case() -> DetectionEvaluator:
    evaluator = DetectionEvaluator(NAMES)
    # Image A: two nodules; p1 hits g1 exactly, p3 duplicates g1.
    evaluator.add(
        gt_boxes=[[0, 0, 10, 10], [20, 20, 30, 30]],
        gt_classes=[0, 0],
        pred_boxes=[[0, 0, 10, 10], [0, 0, 10, 10]],
        pred_scores=[0.9, 0.7],
        pred_classes=[0, 0],
        image_id="A",
    )
    # Image B: one nodule g3; p2 overlaps it with IoU 0.45, p4 with IoU 0.825; an effusion
    # prediction with no effusion anywhere.
    evaluator.add(
        gt_boxes=[[0, 0, 10, 10]],
        gt_classes=[0],
        pred_boxes=[[0.0, 0.0, 10.0, 4.5], [0.0, 0.0, 10.0, 8.25], [40.0, 40.0, 50.0, 50.0]],
        pred_scores=[0.8, 0.6, 0.3],
        pred_classes=[0, 0, 1],
        image_id="B",
    )
    return evaluator


def test_hand_computed_case() -> None:
    # Nodules: 3 GT. Predictions by score: p1 0.9, p2 0.8, p3 0.7, p4 0.6.
    # IoU 0.5: p1 TP (g1), p2 FP (0.45), p3 FP (g1 taken, g2 IoU 0), p4 TP (g3, 0.825).
    #   precision 1, 1/2, 1/3, 1/2; recall 1/3, 1/3, 1/3, 2/3; envelope 1, 1/2, 1/2, 1/2.
    #   Recall levels 0.00..0.33 (34 levels) take 1, 0.34..0.66 (33) take 1/2,
    #   0.67..1.00 (34) find no point and take 0: AP50 = (34 + 16.5) / 101 = 0.5.
    # IoU 0.4: p1 TP, p2 TP (g3), p3 FP, p4 FP (g3 taken): precision 1, 1, 2/3, 1/2,
    #   recall 1/3, 2/3, 2/3, 2/3; envelope 1, 1, 2/3, 1/2: levels 0.00..0.66 take 1,
    #   AP40 = 67 / 101.
    # IoU 0.55..0.80 behave as 0.5 (p4 still matches): AP = 0.5 at 7 thresholds. At 0.85,
    #   0.90, 0.95 only p1 is a TP: 34 levels of 1: AP = 34 / 101. AP50:95 = (3.5 + 102/101) / 10.
    result = _hand_case().compute()
    nodule, effusion, cardiomegaly = result.per_class
    assert nodule.num_gt == 3
    assert nodule.ap50 == pytest.approx(0.5, abs=1e-12)
    assert nodule.ap40 == pytest.approx(67 / 101, abs=1e-12)
    assert nodule.ap50_95 == pytest.approx((3.5 + 102 / 101) / 10, abs=1e-12)
    # Classes without ground truth are null and left out of the means.
    assert effusion.ap50 is None and cardiomegaly.ap50_95 is None and effusion.num_gt == 0
    assert result.map50 == pytest.approx(0.5, abs=1e-12)
    assert result.map40 == pytest.approx(67 / 101, abs=1e-12)
    assert result.map50_95 == pytest.approx(nodule.ap50_95, abs=1e-12)
    # At conf 0.25 all five predictions count: 2 TP at IoU 0.5 (the effusion is an FP).
    assert result.precision == pytest.approx(2 / 5)
    assert result.recall == pytest.approx(2 / 3)
    stricter = _hand_case().compute(conf_threshold=0.65)  # p1, p2, p3: one TP
    assert stricter.precision == pytest.approx(1 / 3) and stricter.recall == pytest.approx(1 / 3)
    curve = result.pr_curves[0]
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 1 / 3, 1 / 2])
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(curve.envelope(), [1, 1 / 2, 1 / 2, 1 / 2])
    assert [c.class_id for c in result.pr_curves] == [0]
    assert _hand_case().average_precision(0.4)[0] == pytest.approx(67 / 101, abs=1e-12)


def test_to_dict_is_json_ready() -> None:
    payload = json.loads(json.dumps(_hand_case().compute().to_dict()))
    assert set(payload) == {
        "map40",
        "map50",
        "map50_95",
        "precision",
        "recall",
        "per_class",
        "images",
    }
    assert payload["images"] == 2
    assert payload["per_class"][1] == {
        "class_id": 1,
        "name": "effusion",
        "ap40": None,
        "ap50": None,
        "ap50_95": None,
        "num_gt": 0,
    }


def _random_dataset(seed: int = 7, images: int = 20) -> list[dict[str, Any]]:
    """Ground truth plus noisy predictions: jittered hits, wrong classes, misses, clutter."""
    rng = np.random.default_rng(seed)
    dataset = []
    for index in range(images):
        count = 0 if index % 7 == 3 else int(rng.integers(1, 6))  # some negatives
        xy = rng.uniform(0, 400, (count, 2))
        gt_boxes = np.hstack([xy, xy + rng.uniform(15, 120, (count, 2))])
        gt_classes = rng.integers(0, 3, count)
        boxes, classes = [], []
        for box, cls in zip(gt_boxes, gt_classes, strict=True):
            for _ in range(int(rng.integers(0, 3))):  # 0 (a miss), 1 or 2 (a duplicate)
                size = box[2:] - box[:2]
                jitter = rng.normal(0, 0.15, 4) * np.concatenate([size, size])
                noisy = box + jitter
                noisy[2:] = np.maximum(noisy[2:], noisy[:2] + 1)
                boxes.append(noisy)
                classes.append(cls if rng.random() < 0.85 else int(rng.integers(0, 3)))
        for _ in range(int(rng.integers(0, 4))):  # clutter
            xy = rng.uniform(0, 450, 2)
            boxes.append(np.concatenate([xy, xy + rng.uniform(10, 80, 2)]))
            classes.append(int(rng.integers(0, 3)))
        dataset.append(
            {
                "gt_boxes": gt_boxes,
                "gt_classes": gt_classes,
                "pred_boxes": np.array(boxes).reshape(-1, 4),
                "pred_scores": rng.uniform(0.01, 1.0, len(boxes)),
                "pred_classes": np.array(classes, dtype=np.int64),
            }
        )
    return dataset


def _evaluate(dataset: list[dict[str, Any]]) -> DetectionEvaluator:
    evaluator = DetectionEvaluator(NAMES)
    for index, image in enumerate(dataset):
        evaluator.add(**image, image_id=str(index))
    return evaluator


@pytest.mark.parametrize("seed", [7, 2024])
def test_matches_pycocotools(seed: int) -> None:
    pytest.importorskip("pycocotools", reason="pycocotools is not installed (dev extra)")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = _random_dataset(seed)
    assert max(len(image["pred_boxes"]) for image in dataset) < 100  # COCO keeps 100 per image

    def xywh(box: NDArray[np.float64]) -> list[float]:
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for image_id, image in enumerate(dataset, start=1):
        for box, cls in zip(image["gt_boxes"], image["gt_classes"], strict=True):
            w, h = xywh(box)[2:]
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCO ids start at 1: id 0 reads as unmatched
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": xywh(box),
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, score, cls in zip(
            image["pred_boxes"], image["pred_scores"], image["pred_classes"], strict=True
        ):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": xywh(box),
                    "score": float(score),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i + 1, "width": 600, "height": 600} for i in range(len(dataset))],
            "annotations": annotations,
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(NAMES)],
        }
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(detections), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()

    result = _evaluate(dataset).compute()
    assert result.map50_95 == pytest.approx(coco_eval.stats[0], abs=1e-6)
    assert result.map50 == pytest.approx(coco_eval.stats[1], abs=1e-6)
    # Per class too: precision[T, R, K, area "all", maxDets 100].
    coco_per_class = coco_eval.eval["precision"][:, :, :, 0, 2].mean(axis=1)  # (T, K)
    for k, class_ap in enumerate(result.per_class):
        assert class_ap.ap50_95 == pytest.approx(coco_per_class[:, k].mean(), abs=1e-6)
        assert class_ap.ap50 == pytest.approx(coco_per_class[0, k], abs=1e-6)
    assert result.map50_95 is not None and result.map50 is not None and result.map40 is not None
    assert 0.1 < result.map50_95 < result.map50 < result.map40 < 1.0  # not trivial


def test_lower_iou_threshold_scores_higher() -> None:
    result = _evaluate(_random_dataset()).compute()
    assert result.map40 is not None and result.map50 is not None
    assert result.map40 > result.map50  # some hits overlap by 0.4 to 0.5
    for class_ap in result.per_class:
        assert class_ap.ap40 is not None and class_ap.ap50 is not None
        assert class_ap.ap40 >= class_ap.ap50


def test_perfect_and_empty_predictions() -> None:
    dataset = _random_dataset(seed=3)
    perfect = DetectionEvaluator(NAMES)
    nothing = DetectionEvaluator(NAMES)
    for image in dataset:
        count = len(image["gt_boxes"])
        scores = np.linspace(0.9, 0.5, count)
        perfect.add(
            image["gt_boxes"], image["gt_classes"], image["gt_boxes"], scores, image["gt_classes"]
        )
        nothing.add(image["gt_boxes"], image["gt_classes"], [], [], [])
    best, worst = perfect.compute(), nothing.compute()
    assert (best.map40, best.map50, best.map50_95) == (1.0, 1.0, 1.0)
    assert (best.precision, best.recall) == (1.0, 1.0)
    assert (worst.map40, worst.map50, worst.map50_95, worst.recall) == (0.0, 0.0, 0.0, 0.0)
    assert worst.precision is None  # no prediction passed the confidence threshold
    assert all(c.ap50 == 0.0 for c in worst.per_class)


def test_negative_images_add_false_positives() -> None:
    evaluator = DetectionEvaluator(["nodule"])
    evaluator.add([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0.5], [0])
    assert evaluator.compute().map50 == 1.0
    evaluator.add([], [], [[0, 0, 10, 10]], [0.9], [0])  # a negative image, confident FP
    # Order FP, TP: precision 0, 1/2 at recall 0, 1 -> envelope 1/2 everywhere.
    assert evaluator.compute().map50 == pytest.approx(0.5)
    assert evaluator.compute().images == 2


def test_empty_evaluator_gives_nulls() -> None:
    result = DetectionEvaluator(NAMES).compute()
    assert (result.map50, result.precision, result.recall, result.images) == (None, None, None, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gt_boxes": [[0, 0, 10]], "gt_classes": [0]}, "shape"),
        ({"gt_boxes": [[10, 0, 0, 10]], "gt_classes": [0]}, "x2 < x1"),
        ({"gt_boxes": [[0, 0, np.nan, 10]], "gt_classes": [0]}, "NaN"),
        ({"gt_boxes": [[0, 0, 10, 10]], "gt_classes": [3]}, "ids 0..2"),
        ({"gt_boxes": [[0, 0, 10, 10]], "gt_classes": [0.5]}, "whole numbers"),
        ({"gt_boxes": [[0, 0, 10, 10]], "gt_classes": [0, 1]}, "one id per box"),
        ({"pred_boxes": [[0, 0, 1, 1]], "pred_scores": [], "pred_classes": [0]}, "scores"),
    ],
)
def test_bad_input_raises_input_error(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "gt_boxes": [],
        "gt_classes": [],
        "pred_boxes": [],
        "pred_scores": [],
        "pred_classes": [],
    }
    with pytest.raises(InputError, match=message):
        DetectionEvaluator(NAMES).add(**(arguments | kwargs), image_id="x.dcm")


def test_duplicate_image_and_bad_config() -> None:
    evaluator = DetectionEvaluator(NAMES)
    evaluator.add([], [], [], [], [], image_id="a")
    with pytest.raises(InputError, match="already added"):
        evaluator.add([], [], [], [], [], image_id="a")
    with pytest.raises(ConfigError):
        DetectionEvaluator([])
    with pytest.raises(ConfigError):
        DetectionEvaluator(["a", "a"])
    with pytest.raises(ConfigError):
        evaluator.average_precision(1.5)


def test_plot_pr_curves_writes_png(tmp_path: Path) -> None:
    result = _evaluate(_random_dataset()).compute()
    path = plot_pr_curves(result, tmp_path / "plots" / "pr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (620, 980, 3)
    assert (image != 255).any(axis=2).mean() > 0.01  # something was drawn
    empty = plot_pr_curves(DetectionEvaluator(NAMES).compute(), tmp_path / "empty.png")
    assert cv2.imread(str(empty)) is not None
