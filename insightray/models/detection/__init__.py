"""Object detection models."""

from __future__ import annotations

from insightray.models.detection.yolo import (
    DEFAULT_ANCHORS,
    Detect,
    YoloV5,
    count_parameters,
    gflops,
)

__all__ = ["DEFAULT_ANCHORS", "Detect", "YoloV5", "count_parameters", "gflops"]
