"""INT8 post-training static quantisation of an image model's ONNX export (ONNX Runtime, QDQ).

Detector:

The backbone and neck are quantised (convolutions with signed 8-bit weights per output
channel, and their activations, SiLU, concatenations, pooling and upsampling on unsigned 8-bit
tensors calibrated on real images); the Detect head's three 1x1 convolutions and everything
after them (sigmoid, grid and anchor arithmetic) stay in float:
quantising the decode zeroes every confidence (onnxruntime issue 14233), and the head's
logits need more than 8 bits to keep small objectness scores apart. The result is a new model
folder whose weights are the QDQ ``.onnx`` file and whose card's ``lineage`` names the parent,
its SHA-256, the method and the calibration data; it runs on the ``onnx`` backend.

Fracture classifier (:func:`quantize_classifier`): the network is quantised up to its final
linear layer, which gives the logit in float; the folder runs on ONNX Runtime through
:class:`~insightray.engine.classification_onnx.OnnxFracturePredictor`. Both share the export,
the calibration reader and the card writing.

Example:
    >>> card = quantize_detector("cxr-tbx11k-yolov5s", calibration, "runs/int8")  # doctest: +SKIP
    >>> card.lineage.method, card.weights_file  # doctest: +SKIP
    ('quantised', 'weights.onnx')
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from insightray.engine.classification import GRAY_MEAN, GRAY_STD
from insightray.engine.export import INPUT_NAME, export_onnx
from insightray.engine.preprocessing import prepare_image, prepare_input
from insightray.engine.weights import input_channels, load_torch_model, save_copy_card
from insightray.errors import ConfigError
from insightray.extras import import_extra
from insightray.imaging import image_paths, read_image
from insightray.models import Lineage, ModelCard
from insightray.models.catalog import CARD_FILE

__all__ = [
    "CALIBRATION_METHODS",
    "INT8_WEIGHTS",
    "calibration_images",
    "float_nodes",
    "output_layer",
    "quantize_classifier",
    "quantize_detector",
]

#: Calibration methods by name (ONNX Runtime's ``CalibrationMethod`` members).
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
#: The quantised graph's file name in the new model folder.
INT8_WEIGHTS = "weights.onnx"
#: Calibration images whose activations ONNX Runtime holds at once (memory grows with it).
CALIBRATION_CHUNK = 8

FloatArray = NDArray[np.float32]


def float_nodes(model: Any) -> list[str]:
    """The Detect head: its 1x1 convolutions (reshaped into predictions) and every node after.

    Args:
        model: An ``onnx.ModelProto`` exported by :func:`~insightray.engine.export.export_onnx`.
    """
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heads = [
        node
        for node in model.graph.node
        if node.op_type == "Conv"
        and any(c.op_type == "Reshape" for c in consumers.get(node.output[0], []))
    ]
    chosen: dict[str, Any] = {}
    waiting = list(heads)
    while waiting:
        node = waiting.pop()
        if node.name in chosen:
            continue
        chosen[node.name] = node
        waiting += [c for output in node.output for c in consumers.get(output, [])]
    return sorted(chosen)


def output_layer(model: Any) -> list[str]:
    """The node that produces the graph's output (a classifier's final linear layer).

    Kept in float so the logit is not clipped to the range the calibration images reached:
    a saturated uint8 logit ties the most confident images and costs AUC.

    Args:
        model: An ``onnx.ModelProto``.
    """
    outputs = {output.name for output in model.graph.output}
    return sorted(node.name for node in model.graph.node if set(node.output) & outputs)


class _Calibration:
    """Feeds prepared images one at a time to ONNX Runtime's calibrator, in chunks.

    ONNX Runtime keeps every intermediate tensor of every image it has been fed until the
    reader runs dry; 64 images of a 512 px YOLOv5s hold more than 12 GB. With ``__len__`` and
    ``set_range`` (its ``CalibStridedMinMax`` option) it collects :data:`CALIBRATION_CHUNK`
    images at a time and merges their ranges or histograms, so memory stays flat.
    """

    def __init__(self, paths: Sequence[Path], prepare: Callable[[Path], FloatArray]) -> None:
        self._paths = list(paths)
        self._prepare = prepare
        self._chunk: Iterator[Path] = iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._chunk = iter(self._paths[start_index:end_index])

    def stride(self) -> int:
        """The largest chunk of at most :data:`CALIBRATION_CHUNK` that divides the images."""
        return next(
            s for s in range(min(CALIBRATION_CHUNK, len(self)), 0, -1) if len(self) % s == 0
        )

    def get_next(self) -> dict[str, FloatArray] | None:
        path = next(self._chunk, None)
        return None if path is None else {INPUT_NAME: self._prepare(path)[None]}


def quantize_detector(
    model: str | Path | None,
    calibration: Sequence[Path],
    out_dir: str | Path,
    method: str = "percentile",
    description: str = "",
    *,
    weights_name: str = INT8_WEIGHTS,
    card_name: str = CARD_FILE,
) -> ModelCard:
    """Write an INT8 copy of a detector as a new model folder and return its card.

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        calibration: Images to calibrate activation ranges on (a few dozen training images;
            never the images the result is evaluated on).
        out_dir: The new model folder.
        method: ``minmax``, ``percentile`` or ``entropy``.
        description: What the calibration images are, for the card.
        weights_name: The quantised graph's file name in ``out_dir``.
        card_name: The card's file name in ``out_dir`` (``<stem>.card.json`` for an export
            that sits beside other files, as ``export detect --int8`` writes).

    Raises:
        ConfigError: Not a detector, no calibration images or an unknown method.
        MissingExtraError: ONNX Runtime or onnx is not installed (``insightray[export]``).
    """
    card_path, parent, network = _checked_parent(model, "detection", calibration, method)
    channels = input_channels(parent) or 3

    def prepare(path: Path) -> FloatArray:
        pixels = read_image(path).pixels
        return prepare_image(pixels, parent.input_size, channels, parent.preprocessing.pad_value)[0]

    settings = {"float_nodes": "the Detect head's 1x1 convolutions and the decode"}
    return _quantize(
        card_path, parent, network, _Calibration(calibration, prepare), float_nodes, out_dir,
        method,
        settings | {"calibration_images": len(calibration)},
        description or f"{len(calibration)} calibration images", weights_name, card_name,
    )  # fmt: skip


def quantize_classifier(
    model: str | Path | None,
    calibration: Sequence[Path],
    out_dir: str | Path,
    method: str = "percentile",
    description: str = "",
) -> ModelCard:
    """Write an INT8 copy of a fracture classifier as a new model folder and return its card.

    Every convolution and the pooling are quantised (int8 weights per output channel, uint8
    activations); the final linear layer runs in float (:func:`output_layer`), so the card's
    temperature and operating point apply as they did to the parent (check them with
    ``evaluate fracture`` on images not used for calibration).

    Args:
        model: The parent: a card, a model folder or a bundled name (``None``: the default).
        calibration: Training images to calibrate activation ranges on.
        out_dir: The new model folder (``weights.onnx`` and ``card.json``).
        method: ``minmax``, ``percentile`` or ``entropy``.
        description: What the calibration images are, for the card.

    Raises:
        ConfigError: Not a single trained classifier, no calibration images or an unknown
            method.
        MissingExtraError: ONNX Runtime or onnx is not installed (``insightray[export]``).

    Example:
        >>> card = quantize_classifier(None, train_images, "runs/int8")  # doctest: +SKIP
        >>> card.version  # doctest: +SKIP
        '0.1.0+int8'
    """
    card_path, parent, network = _checked_parent(model, "classification", calibration, method)
    preprocessing = dataclasses.replace(
        parent.preprocessing,
        mean=parent.preprocessing.mean or (GRAY_MEAN,),
        std=parent.preprocessing.std or (GRAY_STD,),
    )
    channels = input_channels(parent) or 1

    def prepare(path: Path) -> FloatArray:
        pixels = read_image(path).pixels
        return prepare_input(pixels, preprocessing, parent.input_size, channels).tensor

    return _quantize(
        card_path, parent, network, _Calibration(calibration, prepare), output_layer, out_dir,
        method,
        {"float_nodes": "the final linear layer (the logit)",
         "calibration_images": len(calibration)},
        description or f"{len(calibration)} calibration images", INT8_WEIGHTS, CARD_FILE,
    )  # fmt: skip


def _checked_parent(
    model: str | Path | None, task: str, calibration: Sequence[Path], method: str
) -> tuple[Path, ModelCard, nn.Module]:
    """The parent's card path, card and network, after checking the request."""
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"method {method!r}", "unknown calibration method",
                          f"use one of {', '.join(CALIBRATION_METHODS)}")  # fmt: skip
    if not calibration:
        raise ConfigError("calibration", "no calibration images", "give a folder of images")
    return load_torch_model(model, task)


def _quantize(
    card_path: Path,
    parent: ModelCard,
    network: nn.Module,
    reader: _Calibration,
    kept_float: Callable[[Any], list[str]],
    out_dir: str | Path,
    method: str,
    settings: dict[str, Any],
    description: str,
    weights_name: str,
    card_name: str,
) -> ModelCard:
    """Export the parent, quantise it (static QDQ) and write the graph and its card."""
    quantization = import_extra("onnxruntime.quantization", "export")
    onnx = import_extra("onnx", "export")
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        float_path = export_onnx(network, Path(scratch) / "float.onnx", parent.input_size)
        prepared = Path(scratch) / "prepared.onnx"
        shapes = import_extra("onnxruntime.quantization.shape_inference", "export")
        shapes.quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines, not ours
            quantization.quantize_static(
                str(prepared),
                str(target / weights_name),
                reader,
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                activation_type=quantization.QuantType.QUInt8,
                weight_type=quantization.QuantType.QInt8,
                calibrate_method=getattr(
                    quantization.CalibrationMethod, CALIBRATION_METHODS[method]
                ),
                nodes_to_exclude=kept_float(onnx.load(str(prepared))),
                extra_options={"CalibStridedMinMax": reader.stride()},
            )
    lineage = Lineage(
        "quantised",
        f"{card_path.parent.name} {parent.version}",
        parent.weights_sha256,
        {"scheme": "ONNX Runtime static QDQ: int8 per-channel weights, uint8 activations",
         "calibration": method} | settings,
        description,
    )  # fmt: skip
    return save_copy_card(
        parent, lineage, target / weights_name, target / card_name, "int8", "INT8"
    )


def calibration_images(source: Path, count: int) -> list[Path]:
    """The first ``count`` images, in name order, of a folder or a list file of image paths."""
    return sorted(image_paths(source))[:count]
