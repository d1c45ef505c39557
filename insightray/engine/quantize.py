"""INT8 post-training static quantisation of a detector's ONNX export (ONNX Runtime, QDQ).

The backbone and neck are quantised (convolutions with signed 8-bit weights per output
channel, and their activations, SiLU, concatenations, pooling and upsampling on unsigned 8-bit
tensors calibrated on real images); the Detect head's three 1x1 convolutions and everything
after them (sigmoid, grid and anchor arithmetic) stay in float:
quantising the decode zeroes every confidence (onnxruntime issue 14233), and the head's
logits need more than 8 bits to keep small objectness scores apart. The result is a new model
folder whose weights are the QDQ ``.onnx`` file and whose card's ``lineage`` names the parent,
its SHA-256, the method and the calibration data; it runs on the ``onnx`` backend.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.engine.export import export_onnx
from insightray.engine.preprocessing import prepare_image
from insightray.engine.weights import input_channels, load_torch_detector
from insightray.errors import ConfigError
from insightray.extras import import_extra
from insightray.imaging import image_paths, read_image
from insightray.models import Lineage, ModelCard, save_card
from insightray.models.catalog import CARD_FILE, sha256_file

__all__ = [
    "CALIBRATION_METHODS",
    "INT8_WEIGHTS",
    "calibration_images",
    "float_nodes",
    "quantize_detector",
]

#: Calibration methods by name (ONNX Runtime's ``CalibrationMethod`` members).
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
#: The quantised graph's file name in the new model folder.
INT8_WEIGHTS = "weights.onnx"
#: Calibration images whose activations ONNX Runtime holds at once (memory grows with it).
CALIBRATION_CHUNK = 8


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


class _Calibration:
    """Feeds prepared images one at a time to ONNX Runtime's calibrator, in chunks.

    ONNX Runtime keeps every intermediate tensor of every image it has been fed until the
    reader runs dry; 64 images of a 512 px YOLOv5s hold more than 12 GB. With ``__len__`` and
    ``set_range`` (its ``CalibStridedMinMax`` option) it collects :data:`CALIBRATION_CHUNK`
    images at a time and merges their ranges or histograms, so memory stays flat.
    """

    def __init__(
        self, paths: Sequence[Path], size: tuple[int, int], channels: int, pad: float
    ) -> None:
        self._paths = list(paths)
        self._shape = (size, channels, pad)
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

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        path = next(self._chunk, None)
        if path is None:
            return None
        return {"images": prepare_image(read_image(path).pixels, *self._shape)[0][None]}


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
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"method {method!r}", "unknown calibration method",
                          f"use one of {', '.join(CALIBRATION_METHODS)}")  # fmt: skip
    if not calibration:
        raise ConfigError("calibration", "no calibration images", "give a folder of images")
    card_path, parent, network = load_torch_detector(model)
    quantization = import_extra("onnxruntime.quantization", "export")
    onnx = import_extra("onnx", "export")
    channels = input_channels(parent) or 3
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        float_path = export_onnx(network, Path(scratch) / "float.onnx", parent.input_size)
        prepared = Path(scratch) / "prepared.onnx"
        shapes = import_extra("onnxruntime.quantization.shape_inference", "export")
        shapes.quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        excluded = float_nodes(onnx.load(str(prepared)))
        reader = _Calibration(
            calibration, parent.input_size, channels, parent.preprocessing.pad_value
        )
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
                nodes_to_exclude=excluded,
                extra_options={"CalibStridedMinMax": reader.stride()},
            )
    lineage = Lineage(
        "quantised",
        f"{card_path.parent.name} {parent.version}",
        parent.weights_sha256,
        {
            "scheme": "ONNX Runtime static QDQ: int8 per-channel weights, uint8 activations",
            "calibration": method,
            "calibration_images": len(calibration),
            "float_nodes": "the Detect head's 1x1 convolutions and the decode",
        },
        description or f"{len(calibration)} calibration images",
    )
    card = dataclasses.replace(
        parent,
        version=f"{parent.version}+int8",
        weights_file=weights_name,
        weights_sha256=sha256_file(target / weights_name),
        lineage=lineage,
        metrics={},
        notes=f"INT8 copy of {lineage.parent}; evaluate it before use. {parent.notes}",
    )
    save_card(card, target / card_name)
    return card


def calibration_images(source: Path, count: int) -> list[Path]:
    """The first ``count`` images, in name order, of a folder or a list file of image paths."""
    return sorted(image_paths(source))[:count]
