"""Inference engine: one predictor per task from a model card, backends, export, weights.

Example:
    >>> from insightray.engine import load_predictor
    >>> predictor = load_predictor(task="detection")  # the bundled default detector
    >>> for result in predictor.predict_paths(["scan.dcm"]):  # doctest: +SKIP
    ...     print(result.to_dict())
"""

from __future__ import annotations

from insightray.engine.backends import (
    Backend,
    OnnxBackend,
    OpenVinoBackend,
    TorchBackend,
    default_num_threads,
)
from insightray.engine.detection import (
    Detection,
    DetectionPredictor,
    DetectionResult,
    postprocess,
    select_boxes,
)
from insightray.engine.export import export_onnx, verify_onnx
from insightray.engine.overlay import draw_detections, write_overlay
from insightray.engine.predictor import (
    Predictor,
    Result,
    list_backends,
    load_predictor,
    open_backend,
    register_backend,
)
from insightray.engine.preprocessing import prepare_image, prepare_input
from insightray.engine.weights import (
    load_model,
    load_weights,
    save_weights,
    verify_checksum,
    write_model,
)

__all__ = [
    "Backend",
    "Detection",
    "DetectionPredictor",
    "DetectionResult",
    "OnnxBackend",
    "OpenVinoBackend",
    "Predictor",
    "Result",
    "TorchBackend",
    "default_num_threads",
    "draw_detections",
    "export_onnx",
    "list_backends",
    "load_model",
    "load_predictor",
    "load_weights",
    "open_backend",
    "postprocess",
    "prepare_image",
    "prepare_input",
    "register_backend",
    "save_weights",
    "select_boxes",
    "verify_checksum",
    "verify_onnx",
    "write_model",
    "write_overlay",
]
