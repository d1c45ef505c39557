"""Inference engine: detection predictor, PyTorch and ONNX Runtime backends, export, weights.

Example:
    >>> from insightray.engine import DetectionPredictor
    >>> predictor = DetectionPredictor.from_card("chest.card.json")  # doctest: +SKIP
    >>> for result in predictor.iter_paths(["scan.dcm"]):  # doctest: +SKIP
    ...     print(result.to_dict())
"""

from __future__ import annotations

from insightray.engine.backends import Backend, OnnxBackend, TorchBackend, default_num_threads
from insightray.engine.detection import (
    Detection,
    DetectionPredictor,
    DetectionResult,
    postprocess,
    prepare_image,
    select_boxes,
)
from insightray.engine.export import export_onnx, verify_onnx
from insightray.engine.loading import DEFAULT_DETECTOR, load_detection_predictor, resolve_detector
from insightray.engine.overlay import draw_detections, write_overlay
from insightray.engine.weights import (
    load_detector,
    load_weights,
    save_detector,
    save_weights,
    verify_checksum,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "Backend",
    "Detection",
    "DetectionPredictor",
    "DetectionResult",
    "OnnxBackend",
    "TorchBackend",
    "default_num_threads",
    "draw_detections",
    "export_onnx",
    "load_detection_predictor",
    "load_detector",
    "load_weights",
    "postprocess",
    "prepare_image",
    "resolve_detector",
    "save_detector",
    "save_weights",
    "select_boxes",
    "verify_checksum",
    "verify_onnx",
    "write_overlay",
]
