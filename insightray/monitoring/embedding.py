"""The model's own view of an image: pooled backbone features from a named layer.

A forward hook on one layer (by default the detector's last spatial-pyramid-pooling block, or
the classifier's Grad-CAM layer) captures its feature map, which is averaged over space into
one vector per image. The network runs in PyTorch from the card's weights, whatever backend
serves the predictions, and the input is prepared exactly as the card says.

Example:
    >>> embedder = Embedder.from_model(None, task="detection")  # the bundled detector
    >>> import numpy as np
    >>> embedder.embed([np.zeros((64, 64), np.float32)]).shape
    (1, 512)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine import load_model, prepare_input
from insightray.engine.predictor import weights_path
from insightray.errors import ConfigError
from insightray.models import ModelCard, load_card, model_defaults
from insightray.models.catalog import default_model, find_task, resolve_card

__all__ = ["Embedder", "default_layer", "module_of"]

FloatArray = NDArray[np.float64]
T = TypeVar("T")


def default_layer(model: nn.Module, card: ModelCard) -> str:
    """The layer whose pooled output is the embedding.

    The last SPP/SPPF block (the end of a YOLO backbone), else the card's Grad-CAM layer, else
    the registered default.

    Raises:
        ConfigError: None of those exist.
    """
    pooling: list[str] = [name for name, module in model.named_modules()
                          if type(module).__name__ in ("SPPF", "SPP")]  # fmt: skip
    if pooling:
        return pooling[-1]
    layer = card.explain.cam_layer or model_defaults(card.name).cam_layer
    if layer:
        return str(layer)
    raise ConfigError(
        f"model {card.name}", "no embedding layer is known", "pass the layer name to profile it"
    )


class _Captured(Exception):
    """Stops the forward pass once the embedding layer has run."""


class Embedder:
    """Pooled features of one layer of a model, for a batch of images.

    Args:
        model: The network (put in eval mode).
        card: Its card (preprocessing, input size, channels).
        layer: Dotted module name; see :func:`default_layer`.
        batch_size: Images per forward pass.
    """

    def __init__(
        self, model: nn.Module, card: ModelCard, layer: str | None = None, batch_size: int = 8
    ) -> None:
        self.model = model.eval()
        self.card = card
        self.layer = layer or default_layer(model, card)
        modules = dict(model.named_modules())
        if self.layer not in modules:
            raise ConfigError(
                f"layer {self.layer!r}", f"model {card.name} has no such layer", "name another"
            )
        self._module = modules[self.layer]
        self.channels = card.preprocessing.channels or model_defaults(card.name).in_channels or 1
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @classmethod
    def from_model(
        cls, model: str | Path | None, *, task: str | None = None, layer: str | None = None
    ) -> Embedder:
        """Load a model by name or path (or ``task``'s default) and embed with it."""
        default = default_model(find_task(task).name) if task is not None else ""
        card_path = resolve_card(model, default=default)
        card = load_card(card_path)
        return cls(load_model(card, weights_path(card, card_path)), card, layer)

    def embed(self, images: Sequence[NDArray[Any]]) -> FloatArray:
        """``(N, features)`` pooled activations of ``images`` (``[0, 1]`` gray arrays)."""
        rows: list[FloatArray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = np.stack([self._prepare(image) for image in chunk])
            rows.append(self._run(torch.from_numpy(batch)))
        return np.concatenate(rows) if rows else np.zeros((0, 0))

    def capture(self, run: Callable[[], T]) -> tuple[T, FloatArray]:
        """Call ``run`` (a prediction with this same model) and return its value and the
        embeddings of every image it ran, in order: prediction and embedding in one pass."""
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple | list) else output)

        with self._lock:
            handle = self._module.register_forward_hook(hook)
            try:
                value = run()
            finally:
                handle.remove()
        return value, np.concatenate([_pooled(item) for item in captured])

    def _prepare(self, image: NDArray[Any]) -> NDArray[np.float32]:
        prepared = prepare_input(
            image, self.card.preprocessing, self.card.input_size, self.channels
        )
        return prepared.tensor

    def _run(self, batch: torch.Tensor) -> FloatArray:
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple | list) else output)
            raise _Captured  # the layers after it are not needed

        with self._lock:  # one hook at a time: the model is shared between threads
            handle = self._module.register_forward_hook(hook)
            try:
                with torch.inference_mode(), contextlib.suppress(_Captured):
                    self.model(batch)
            finally:
                handle.remove()
        return _pooled(captured[0])


def module_of(predictor: object) -> nn.Module | None:
    """The PyTorch network a predictor runs, if it runs one (not an ONNX session)."""
    backend = getattr(predictor, "backend", None)
    model = getattr(backend, "model", None) or getattr(predictor, "model", None)
    return model if isinstance(model, nn.Module) else None


def _pooled(features: torch.Tensor) -> FloatArray:
    values = features.float()
    pooled = values.mean(dim=(2, 3)) if values.ndim == 4 else values.flatten(1)
    return pooled.cpu().numpy().astype(np.float64)
