"""A fracture classifier exported to ONNX (its INT8 copy, for one) on ONNX Runtime.

The graph takes the prepared ``(B, C, H, W)`` batch (the card's preprocessing, as for the
PyTorch model) and gives one float logit per image; the probability, temperature and operating
point are the card's, as for :class:`~insightray.engine.classification.FracturePredictor`.
Grad-CAM needs gradients, which ONNX Runtime does not give: explain the parent model (the
card's ``lineage`` names it).

Example:
    >>> from insightray.engine import load_predictor
    >>> int8 = load_predictor("runs/fracture-int8", task="classification")  # doctest: +SKIP
    >>> int8.predict_paths(["hand.png"])[0].label  # doctest: +SKIP
    'fractured'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from insightray.engine.backends import OnnxBackend
from insightray.engine.classification import BaseFracturePredictor
from insightray.engine.predictor import onnx_file
from insightray.errors import ConfigError
from insightray.models import ModelCard

__all__ = ["OnnxFracturePredictor", "open_onnx_classifier"]


class OnnxFracturePredictor(BaseFracturePredictor):
    """A fracture classifier graph on ONNX Runtime and its card.

    Args:
        backend: The session over the ``.onnx`` file.
        card: Its model card.
    """

    def __init__(self, backend: OnnxBackend, card: ModelCard) -> None:
        super().__init__(card)
        if backend.input_channels != self.channels:
            raise ConfigError(
                str(backend.path),
                f"the graph takes {backend.input_channels} channels, the card {self.channels}",
                "export the model again from its card",
            )
        self.backend = backend

    def logits(self, batch: torch.Tensor) -> NDArray[np.float64]:
        """Raw (uncalibrated) fracture logits for a prepared ``(N, channels, H, W)`` batch."""
        output = self.backend(batch.numpy())
        return np.asarray(output.reshape(len(batch), -1)[:, -1], dtype=np.float64)


def open_onnx_classifier(
    card: ModelCard, card_path: Path, backend: str, device: str = "cpu"
) -> OnnxFracturePredictor:
    """Open a classification card whose weights file is an ``.onnx`` graph.

    Raises:
        ConfigError: ``backend`` is ``torch``.
        InputNotFoundError: The graph file is missing.
        CorruptFileError: Its SHA-256 differs from the card's.
    """
    if backend not in ("auto", "onnx"):
        raise ConfigError(
            f"backend {backend!r}", "this classifier is an ONNX graph", "use --backend onnx"
        )
    return OnnxFracturePredictor(OnnxBackend(onnx_file(card, card_path), device=device), card)
