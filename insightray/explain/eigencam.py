"""EigenCAM for the chest X-ray detector: where in the film the detector's features concentrate.

A detector has no single logit to take gradients of, so the heatmap is the class-agnostic
EigenCAM (Muhammad & Yeasin, 2020): for each feature map that feeds the Detect head (the three
scales of YOLOv5's neck), the activations are projected on their first principal component
(:func:`first_component`: ``grad-cam``'s ``get_2d_projection`` without the square ``U`` of
the SVD that it computes and discards, the same map for much less work at 512 px), each map
is brought to the network input's size and scaled to ``[0, 1]``, and the scales are averaged.
The letterbox padding is then removed and the map resized to the original image, like
:func:`~insightray.explain.gradcam_heatmap`.

Only PyTorch detectors (``backend="torch"``) can be explained: an ONNX graph exposes no
intermediate activations.

Example:
    >>> from insightray.engine import load_predictor
    >>> import numpy as np
    >>> predictor = load_predictor(task="detection", backend="torch")
    >>> heat = eigencam_heatmap(predictor, np.random.default_rng(0).random((90, 120)))
    >>> heat.shape, bool(0 <= heat.min() and heat.max() <= 1)
    ((90, 120), True)
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from insightray.engine.backends import TorchBackend
from insightray.engine.detection import DetectionPredictor
from insightray.engine.preprocessing import prepare_image, to_unit_gray
from insightray.errors import ConfigError
from insightray.explain.gradcam import HOOK_LOCK, to_original_size

__all__ = ["eigencam_heatmap", "first_component"]


def first_component(features: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each position of a ``(C, H, W)`` feature map projected on the first principal
    component of the channels (positions centred), ``(H, W)``.

    Example:
        >>> first_component(np.ones((4, 2, 3), np.float32)).shape
        (2, 3)
    """
    rows = np.nan_to_num(features.reshape(features.shape[0], -1).T.astype(np.float32))
    rows = rows - rows.mean(axis=0)
    _, _, right = np.linalg.svd(rows, full_matrices=False)
    return np.asarray((rows @ right[0]).reshape(features.shape[1:]), dtype=np.float32)


def eigencam_heatmap(predictor: object, image: NDArray[Any]) -> NDArray[np.float32]:
    """EigenCAM of the detector for one image, ``(H, W)`` float32 in ``[0, 1]``.

    Raises:
        ConfigError: The predictor is not one PyTorch YOLO detector (ONNX, an ensemble).
    """
    backend = getattr(predictor, "backend", None)
    model: Any = getattr(backend, "model", None)
    if (
        not isinstance(predictor, DetectionPredictor)
        or not isinstance(backend, TorchBackend)
        or not hasattr(model, "detect_sources")
    ):
        raise ConfigError(
            "explanation",
            "only a single PyTorch YOLO detector can be explained",
            "use --backend torch, or explain one member of an ensemble",
        )
    pixels = to_unit_gray(image)
    tensor, info = prepare_image(
        pixels, predictor.image_size, predictor.channels, predictor.pad_value
    )
    captured: list[torch.Tensor] = []
    caller = threading.get_ident()  # a service may run the same model for others meanwhile

    def capture(_module: Any, args: Any) -> None:
        if threading.get_ident() == caller:
            captured.extend(feature.detach() for feature in args[0])

    hook = model.detect.register_forward_pre_hook(capture)
    try:
        with HOOK_LOCK, torch.no_grad():
            model(torch.tensor(tensor[None], device=backend.device))
    finally:
        hook.remove()
    rows, cols = info.size
    maps = []
    for feature in captured:
        projection = first_component(feature.float().cpu().numpy()[0])
        resized = cv2.resize(projection, (cols, rows))
        span = float(resized.max() - resized.min())
        maps.append((resized - resized.min()) / span if span > 0 else np.zeros_like(resized))
    heat = np.mean(maps, axis=0).astype(np.float32)
    return to_original_size(heat, info, (0, 0, *info.original_size), info.original_size)
