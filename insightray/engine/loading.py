"""Load a detector for inference from ``--model NAME_OR_PATH``, shared by the CLI and services.

``NAME_OR_PATH`` is a model card ``.json``, a folder holding ``card.json`` (such as a training
run's ``model/`` folder), an ``.onnx`` file with its ``<stem>.card.json`` beside it (as
``insightray export detect`` writes), or the name of a model bundled in
``insightray/weights/<name>/``; ``None`` means the default detector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from insightray.engine.backends import OnnxBackend, TorchBackend
from insightray.engine.detection import DetectionPredictor
from insightray.engine.export import export_onnx
from insightray.engine.weights import load_detector, verify_checksum
from insightray.errors import ConfigError, InputNotFoundError
from insightray.models import ModelCard, load_card
from insightray.models.catalog import resolve_card

__all__ = ["DEFAULT_DETECTOR", "load_detection_predictor", "resolve_detector"]

#: The detector used when no model is named (bundled under insightray/weights/<name>/).
DEFAULT_DETECTOR = "cxr-tbx11k-yolov5s"


def resolve_detector(name_or_path: str | None) -> Path:
    """Return the model card path that ``--model`` names (see the module docstring).

    Raises:
        InputNotFoundError: Nothing matches, or no default detector is bundled yet.
    """
    if name_or_path is not None and name_or_path.endswith(".onnx"):
        path = Path(name_or_path)
        card = path.with_name(path.stem + ".card.json")
        if not card.is_file():
            raise InputNotFoundError(
                name_or_path, f"no model card {card.name} beside the ONNX file", "export it again"
            )
        return card
    return resolve_card(name_or_path, default=DEFAULT_DETECTOR)


def load_detection_predictor(
    model: str | None,
    backend: str = "torch",
    device: str = "cpu",
    image_size: int | None = None,
    **options: Any,
) -> DetectionPredictor:
    """Build a predictor for ``--model``; with ``onnx``, export once beside the weights.

    The ONNX file is ``<weights stem>.onnx`` with a ``.onnx.sha256`` stamp holding the SHA-256
    of the weights it came from and its input size; it is exported again when they change.
    """
    card_path = resolve_detector(model)
    card = load_card(card_path)
    if backend not in ("torch", "onnx"):
        raise ConfigError(f"--backend {backend}", "unknown backend", "use torch or onnx")
    weights = card_path.parent / (card.weights_file or "")
    if card.weights_file is None:
        raise ConfigError(str(card_path), "the card names no weights_file", "train or export it")
    if backend == "onnx":
        chosen = OnnxBackend(_onnx_for(card, card_path), device=device)
        return DetectionPredictor(chosen, card, image_size=image_size, **options)
    if weights.suffix == ".onnx":
        raise ConfigError(str(card_path), "these weights are an ONNX export", "use --backend onnx")
    torch_backend = TorchBackend(load_detector(card, weights), device=device)
    return DetectionPredictor(torch_backend, card, image_size=image_size, **options)


def _onnx_for(card: ModelCard, card_path: Path) -> Path:
    weights = card_path.parent / str(card.weights_file)
    if weights.suffix == ".onnx":
        verify_checksum(card, weights)
        return weights
    target = weights.with_suffix(".onnx")
    stamp = target.with_name(target.name + ".sha256")
    expected = f"{card.weights_sha256} {card.input_size[0]}x{card.input_size[1]}"
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == expected:
        return target
    model = load_detector(card, weights)
    try:
        export_onnx(model, target, card.input_size)
        stamp.write_text(expected + "\n", encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            str(target),
            f"the ONNX export cannot be written beside the weights ({type(error).__name__})",
            "copy the model folder somewhere writable, or use `insightray export detect`",
        ) from error
    return target
