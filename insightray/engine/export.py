"""Export a detector to ONNX and check that ONNX Runtime reproduces PyTorch.

The exported graph has one input, ``images`` ``(B, C, H, W)`` float32 in ``[0, 1]``, and one
output, ``predictions`` ``(B, N, 5 + num_classes)``, the same decoded tensor the PyTorch model
returns first in eval mode. Batch norms are folded first, on a copy of the model.

Example:
    >>> from insightray.models import create_model
    >>> model = create_model("yolov5n", num_classes=2)
    >>> path = export_onnx(model, "yolov5n.onnx", image_size=640)  # doctest: +SKIP
    >>> verify_onnx(model, path, image_size=640) < 1e-4  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.jit import TracerWarning  # type: ignore[attr-defined]

from insightray.engine.backends import OnnxBackend, TorchBackend, checked_image_size
from insightray.errors import ConfigError
from insightray.extras import import_extra

__all__ = [
    "EXPORT_RECIPE",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "export_onnx",
    "prediction_difference",
    "verify_onnx",
]

INPUT_NAME = "images"
OUTPUT_NAME = "predictions"
#: Names what :func:`export_onnx` produces (opset, fusion, graph outputs). Bump it when the
#: recipe changes, so exports cached beside the weights are made again.
EXPORT_RECIPE = "opset17-fused-1"


class _PredictionsOnly(nn.Module):
    """Wrap a detector so the graph returns only its decoded predictions."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output = self.model(images)
        return output[0] if isinstance(output, (tuple, list)) else output  # type: ignore[no-any-return]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    image_size: int | tuple[int, int] = 640,
    channels: int | None = None,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> Path:
    """Export the fused, eval-mode detector to ONNX and validate it with ``onnx.checker``.

    The model passed in is not changed: a copy is fused and exported on the CPU.

    Args:
        model: A detector whose eval output is ``(predictions, raw)``.
        path: Where to write the ``.onnx`` file (parent folders are created).
        image_size: Square side, or ``(height, width)``, each a multiple of 32.
        channels: Input channels; ``None`` takes them from the first convolution.
        opset: ONNX opset version.
        dynamic_batch: Let the batch dimension vary; otherwise it is fixed at 1.

    Returns:
        The path written.

    Raises:
        ConfigError: The image size is not a positive multiple of 32.
    """
    onnx = import_extra("onnx", "export")
    height, width = checked_image_size(image_size)
    exported = copy.deepcopy(model).cpu().float().eval()
    backend = TorchBackend(exported, fuse=True)  # fuses in place and finds the channels
    wrapper = _PredictionsOnly(backend.model).eval()
    example = torch.zeros(1, channels or backend.input_channels, height, width)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        # The size checks in forward() are traced as constants, which is intended here, and
        # the TorchScript exporter (used because onnxscript is not a dependency) warns that it
        # is deprecated.
        warnings.simplefilter("ignore", TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            str(target),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=axes,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(target), full_check=True)
    return target


def verify_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    image_size: int | tuple[int, int] = 640,
    batch_size: int = 2,
    tolerance: float = 1e-4,
    seed: int = 0,
) -> float:
    """Run random images through PyTorch and ONNX Runtime and return their scale-aware difference.

    Each output is compared on its own scale: box coordinates (input pixels) as a fraction of
    the input's longer side, objectness and class scores (in ``[0, 1]``) as they are. fp32
    kernels of different instruction sets (AVX2, AVX-512, AMX) differ by a few 1e-4 pixels on
    boxes of hundreds of pixels, which an absolute tolerance would call a failed export.

    Args:
        model: The PyTorch detector the file was exported from (not changed).
        onnx_path: The exported file.
        image_size: Side, or ``(height, width)``, the file was exported with.
        batch_size: Images per check (use 1 for a file with a fixed batch).
        tolerance: Largest allowed difference on either scale.
        seed: Seed of the random images.

    Returns:
        The larger of the two differences.

    Raises:
        ConfigError: The difference exceeds ``tolerance``.

    Example:
        >>> verify_onnx(model, "yolov5n.onnx", image_size=640) < 1e-4  # doctest: +SKIP
        True
    """
    height, width = checked_image_size(image_size)
    onnx_backend = OnnxBackend(onnx_path)
    torch_backend = TorchBackend(copy.deepcopy(model).cpu().float(), fuse=True)
    rng = np.random.default_rng(seed)
    shape = (batch_size, onnx_backend.input_channels, height, width)
    images = rng.random(shape, dtype=np.float32)
    difference = prediction_difference(onnx_backend(images), torch_backend(images), (height, width))
    if not difference <= tolerance:
        raise ConfigError(
            str(onnx_path),
            f"ONNX Runtime differs from PyTorch by {difference:.3g} (allowed {tolerance:g}; boxes "
            "as a fraction of the image side, scores as they are)",
            "export again with the same model, or check for unsupported operators",
        )
    return difference


def prediction_difference(
    first: NDArray[np.float32], second: NDArray[np.float32], image_size: tuple[int, int]
) -> float:
    """The larger of the box difference (as a fraction of the longer side) and the score one.

    Example:
        >>> a = np.zeros((1, 2, 7), np.float32)
        >>> b = a.copy(); b[0, 0, 0] = 0.064; b[0, 1, 5] = 2e-5
        >>> round(prediction_difference(a, b, (640, 640)), 6)
        0.0001
    """
    boxes = float(np.abs(first[..., :4] - second[..., :4]).max()) / max(image_size)
    scores = float(np.abs(first[..., 4:] - second[..., 4:]).max())
    return max(boxes, scores)
