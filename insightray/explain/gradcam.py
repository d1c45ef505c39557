"""Grad-CAM heatmaps for classifiers, at the original image's size, and their overlays.

The heatmap comes from the maintained ``grad-cam`` package (Gildenblat et al.): gradients of
the fracture logit with respect to the activations of the layer the model card names
(``explain.cam_layer``, else the architecture's registered default: ``layer4`` for the
ResNets, ``_conv_head`` for EfficientNet-Lite0), averaged per channel into weights, ReLU of
the weighted sum, scaled to ``[0, 1]``. The map is computed on the network input (enhanced
and letterboxed), then the padding is removed, the map resized to the region the enhancement
kept and placed on a map the size of the original image (zero outside a region-of-interest
crop).

Example:
    >>> from insightray.engine import load_predictor
    >>> import numpy as np
    >>> predictor = load_predictor(task="classification")
    >>> image = np.random.default_rng(0).random((120, 90), dtype=np.float32)
    >>> heat = gradcam_heatmap(predictor, image)
    >>> heat.shape, heat.dtype, bool(0 <= heat.min() and heat.max() <= 1)
    ((120, 90), dtype('float32'), True)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget
from torch import nn

from insightray.engine.classification import FracturePredictor
from insightray.engine.preprocessing import to_unit_gray
from insightray.errors import ConfigError
from insightray.imaging import save_png
from insightray.imaging.transforms import LetterboxInfo

__all__ = ["gradcam_heatmap", "heatmap_rgba", "overlay_heatmap", "save_overlay", "target_layer"]

FloatArray = NDArray[np.float32]

# Grad-CAM hooks the model's layer while it runs; one computation at a time per process keeps
# concurrent callers from reading each other's activations.
HOOK_LOCK = threading.Lock()


def target_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted path, e.g. ``features.8``).

    Raises:
        ConfigError: The model has no such layer, or no name was given.
    """
    if not name:
        raise ConfigError(
            "model card", "names no Grad-CAM layer", "add explain.cam_layer to the card"
        )
    try:
        return model.get_submodule(name)
    except AttributeError as error:
        raise ConfigError(
            f"Grad-CAM layer {name!r}", "the model has no such layer", "fix the model card"
        ) from error


def gradcam_heatmap(predictor: FracturePredictor, image: NDArray[Any]) -> FloatArray:
    """Grad-CAM of the fracture logit for one image, ``(H, W)`` float32 in ``[0, 1]``.

    Args:
        predictor: The classifier (its card names the target layer).
        image: The image as :func:`~insightray.imaging.read_image` gives it (or 8/16-bit).

    Returns:
        The heatmap at the original image's size.
    """
    if not isinstance(predictor, FracturePredictor):
        raise ConfigError(
            f"model {predictor.card.name}",
            "Grad-CAM needs one PyTorch network (not an ensemble or an ONNX/INT8 graph)",
            "explain a member model, or the parent its card's lineage names (--model)",
        )
    pixels = to_unit_gray(image)
    prepared = predictor.prepare(pixels)
    layer = target_layer(predictor.model, predictor.gradcam_layer)
    batch = torch.from_numpy(prepared.tensor[None]).to(predictor.device)
    with HOOK_LOCK, GradCAM(model=predictor.model, target_layers=[layer]) as cam:
        raw = cam(input_tensor=batch, targets=[BinaryClassifierOutputTarget(1)])[0]
    heat = np.nan_to_num(np.asarray(raw, dtype=np.float32))
    return to_original_size(heat, prepared.letterbox, prepared.crop, pixels.shape[:2])


def to_original_size(
    heat: FloatArray,
    info: LetterboxInfo,
    crop: tuple[int, int, int, int],
    shape: tuple[int, ...],
) -> FloatArray:
    """A heatmap over the network input, without its letterbox padding, resized to the
    ``crop`` region ``(top, left, bottom, right)`` of the original image (the region that was
    letterboxed) and placed on a map of the original's ``shape`` (zero outside the crop),
    clipped to ``[0, 1]``."""
    rows, cols = info.original_size
    left, top = info.pad
    new_rows, new_cols = round(rows * info.scale[1]), round(cols * info.scale[0])
    unpadded = heat[top : top + new_rows, left : left + new_cols]
    crop_top, crop_left, crop_bottom, crop_right = crop
    region = cv2.resize(
        unpadded, (crop_right - crop_left, crop_bottom - crop_top), interpolation=cv2.INTER_LINEAR
    )
    full = np.zeros(shape[:2], dtype=np.float32)
    full[crop_top:crop_bottom, crop_left:crop_right] = region
    return np.clip(full, 0.0, 1.0)


def overlay_heatmap(image: NDArray[Any], heatmap: FloatArray, alpha: float = 0.4) -> NDArray[Any]:
    """Blend a JET-coloured heatmap onto the gray image; returns uint8 BGR (for PNG writing).

    Example:
        >>> out = overlay_heatmap(np.zeros((4, 5), np.float32), np.ones((4, 5), np.float32))
        >>> out.shape, out.dtype
        ((4, 5, 3), dtype('uint8'))
    """
    gray = np.rint(to_unit_gray(image) * 255).astype(np.uint8)
    if heatmap.shape != gray.shape:
        raise ConfigError("heatmap", f"shape {heatmap.shape} differs from the image's", "")
    colour = cv2.applyColorMap(
        np.rint(np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET
    )
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    blended = cv2.addWeighted(base, 1 - alpha, colour, alpha, 0.0)
    return np.asarray(blended, dtype=np.uint8)


def heatmap_rgba(heatmap: FloatArray) -> NDArray[np.uint8]:
    """JET colours with alpha = heat, ``(H, W, 4)`` uint8 RGBA (for a viewer's opacity toggle)."""
    levels = np.rint(np.clip(heatmap, 0, 1) * 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return np.dstack([rgb, levels])


def save_overlay(
    image: NDArray[Any], heatmap: FloatArray, path: str | Path, alpha: float = 0.4
) -> Path:
    """Write :func:`overlay_heatmap` as a PNG and return its path."""
    return save_png(overlay_heatmap(image, heatmap, alpha), path)
