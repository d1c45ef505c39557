"""Training losses."""

from __future__ import annotations

from insightray.training.losses.yolo import (
    LevelTargets,
    LossConfig,
    YoloLoss,
    assign_level,
    bbox_iou,
    bce_with_logits,
    scaled_gains,
    smooth_bce_targets,
)

__all__ = [
    "LevelTargets",
    "LossConfig",
    "YoloLoss",
    "assign_level",
    "bbox_iou",
    "bce_with_logits",
    "scaled_gains",
    "smooth_bce_targets",
]
