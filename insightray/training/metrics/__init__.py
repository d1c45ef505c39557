"""Evaluation metrics for training and validation.

Example:
    >>> from insightray.training.metrics import DetectionEvaluator
    >>> DetectionEvaluator(["nodule"]).compute().images
    0
"""

from __future__ import annotations

from insightray.training.metrics.detection import (
    COCO_IOU_THRESHOLDS,
    RECALL_LEVELS,
    ClassAP,
    DetectionEvaluator,
    DetectionMetrics,
    PRCurve,
    box_iou,
    plot_pr_curves,
)

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "RECALL_LEVELS",
    "ClassAP",
    "DetectionEvaluator",
    "DetectionMetrics",
    "PRCurve",
    "box_iou",
    "plot_pr_curves",
]
