"""Fracture classification inference from a model card, at the card's operating point.

An image is prepared as in training (:func:`~insightray.engine.preprocessing.prepare_input`:
the card's enhancement, a letterbox to the card's input size, then ``(x - mean) / std``). The
model gives one logit; its sigmoid is the probability of a fracture, and the label is
``fractured`` when the probability reaches the card's ``thresholds.operating_point`` (chosen on
the validation split when the model was trained; see ``notes`` and ``metrics`` in the card).
When the card carries a temperature (``calibration.temperature``, Guo et al., 2017), the
probability is ``sigmoid(logit / temperature)`` and the operating point is on that scale.

Example:
    >>> from insightray.engine import load_predictor
    >>> predictor = load_predictor(task="classification")  # the bundled default model
    >>> import numpy as np
    >>> result = predictor.predict_arrays([np.zeros((300, 200), np.float32)])[0]
    >>> sorted(result.to_dict())
    ['label', 'ood_score', 'probability', 'threshold', 'warnings']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine.predictor import weights_path
from insightray.engine.preprocessing import PreparedImage, prepare_input
from insightray.engine.weights import input_channels, load_model
from insightray.errors import ConfigError
from insightray.imaging import LoadedImage, read_image
from insightray.models import ModelCard, model_defaults

__all__ = [
    "FRACTURE_LABELS",
    "GRAY_MEAN",
    "GRAY_STD",
    "BaseFracturePredictor",
    "FracturePredictor",
    "FractureResult",
    "open_fracture_predictor",
    "sigmoid",
]

#: ``(negative, positive)`` label names.
FRACTURE_LABELS = ("not_fractured", "fractured")
#: Grayscale normalisation (the mean and spread of ImageNet's channels, averaged).
GRAY_MEAN = 0.449
GRAY_STD = 0.226

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class FractureResult:
    """The classifier's answer for one image.

    Attributes:
        probability: Probability of a fracture, in ``[0, 1]``.
        label: ``"fractured"`` or ``"not_fractured"`` at ``threshold``.
        threshold: The operating point used.
        warnings: Why the image looks unlike the model's training images (see
            :mod:`insightray.monitoring.guard`); empty when all is well or unchecked.
        ood_score: Out-of-distribution score (above 1: beyond the guard's threshold);
            ``None`` when the model has no reference profile or the guard did not run.
    """

    probability: float
    label: str
    threshold: float
    warnings: tuple[str, ...] = ()
    ood_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (probability rounded to 5 decimals)."""
        return {
            "probability": round(self.probability, 5),
            "label": self.label,
            "threshold": round(self.threshold, 5),
            "warnings": list(self.warnings),
            "ood_score": self.ood_score,
        }


class BaseFracturePredictor:
    """What every fracture classifier shares: the card's checks, preprocessing, temperature,
    operating point and the ``predict_*`` methods; subclasses give :meth:`logits`.

    Args:
        card: The model card.

    Raises:
        ConfigError: Not a classification card, or no operating point.
    """

    def __init__(self, card: ModelCard) -> None:
        if card.task != "classification":
            raise ConfigError(
                f"model card {card.name}",
                f"this is a {card.task} model, not a classifier",
                "pass a fracture classification model",
            )
        if card.thresholds.operating_point is None:
            raise ConfigError(
                f"model card {card.name}",
                "thresholds has no 'operating_point'",
                "train the model with `insightray train fracture` or add the threshold",
            )
        self.card = card
        self.threshold = card.thresholds.operating_point
        self.temperature = card.calibration.temperature or 1.0
        self.channels = input_channels(card) or 1
        preprocessing = card.preprocessing
        if preprocessing.mean is None and preprocessing.std is None:  # cards of before 0.2
            preprocessing = dataclasses.replace(preprocessing, mean=(GRAY_MEAN,), std=(GRAY_STD,))
        self.preprocessing = preprocessing

    def prepare(self, image: NDArray[Any]) -> PreparedImage:
        """The network input for one image, as the card's preprocessing says."""
        return prepare_input(image, self.preprocessing, self.card.input_size, self.channels)

    def logits(self, batch: torch.Tensor) -> NDArray[np.float64]:
        """Raw (uncalibrated) fracture logits for a prepared ``(N, channels, H, W)`` batch."""
        raise NotImplementedError

    def probabilities(self, batch: torch.Tensor) -> NDArray[np.float64]:
        """Fracture probabilities for a prepared batch: ``sigmoid(logit / temperature)``, the
        card's temperature scaling (1 when the card has none)."""
        return sigmoid(self.logits(batch) / self.temperature)

    def prepared_batch(self, images: Sequence[NDArray[Any]]) -> torch.Tensor:
        """The network input for decoded images, stacked."""
        return torch.from_numpy(np.stack([self.prepare(image).tensor for image in images]))

    def result(self, probability: float) -> FractureResult:
        """Label a probability at the operating point."""
        label = FRACTURE_LABELS[int(probability >= self.threshold)]
        return FractureResult(float(probability), label, self.threshold)

    def predict_arrays(
        self, images: Sequence[NDArray[Any]], batch_size: int = 8
    ) -> list[FractureResult]:
        """Classify decoded images (``[0, 1]`` gray as :func:`read_image` gives, or 8/16-bit)."""
        results: list[FractureResult] = []
        for start in range(0, len(images), batch_size):
            batch = self.prepared_batch(images[start : start + batch_size])
            results.extend(self.result(p) for p in self.probabilities(batch))
        return results

    def predict_logits(
        self, images: Sequence[NDArray[Any]], batch_size: int = 8
    ) -> NDArray[np.float64]:
        """Raw (uncalibrated) logits of decoded images; ``probabilities`` divides them by
        ``temperature``."""
        chunks = [
            self.logits(self.prepared_batch(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0)

    def predict(self, inputs: Sequence[LoadedImage | NDArray[Any]]) -> list[FractureResult]:
        """Classify images read with :func:`~insightray.imaging.read_image`, or arrays."""
        images = [item.pixels if isinstance(item, LoadedImage) else item for item in inputs]
        return self.predict_arrays(images)

    def predict_paths(self, paths: Sequence[str | Path]) -> list[FractureResult]:
        """Read (DICOM, PNG, JPEG...) and classify image files."""
        return self.predict_arrays([read_image(path).pixels for path in paths])

    def warm_up(self) -> None:
        """Classify one blank image."""
        self.predict_arrays([np.zeros(self.card.input_size, np.float32)])


class FracturePredictor(BaseFracturePredictor):
    """A PyTorch fracture classifier and its card; thread-safe for inference.

    Args:
        model: The network (one logit per image).
        card: Its model card.
        device: Torch device.
    """

    def __init__(self, model: nn.Module, card: ModelCard, device: str = "cpu") -> None:
        super().__init__(card)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.gradcam_layer = card.explain.cam_layer or model_defaults(card.name).cam_layer or ""

    def logits(self, batch: torch.Tensor) -> NDArray[np.float64]:
        """Raw (uncalibrated) fracture logits for a prepared ``(N, channels, H, W)`` batch."""
        with torch.inference_mode():
            logits = self.model(batch.to(self.device)).reshape(len(batch), -1)[:, -1]
        return np.asarray(logits.float().cpu().numpy(), dtype=np.float64)


def sigmoid(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """The logistic function, computed without overflow."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64))))


def open_fracture_predictor(
    card: ModelCard, card_path: Path, *, backend: str = "auto", device: str = "cpu"
) -> FracturePredictor:
    """The ``classification`` task's predictor factory (see
    :func:`insightray.engine.load_predictor`).

    Raises:
        ConfigError: A backend the weights do not run on (``torch`` for PyTorch weights,
            ``onnx`` for an ``.onnx`` graph), or a card that names no weights.
        CorruptFileError: The weights' SHA-256 differs from the card's.
    """
    if (card.weights_file or "").endswith(".onnx"):  # an export, e.g. `optimize fracture --int8`
        from insightray.engine.classification_onnx import open_onnx_classifier

        return open_onnx_classifier(card, card_path, backend, device)  # type: ignore[return-value]
    if backend not in ("auto", "torch"):
        raise ConfigError(
            f"backend {backend!r}",
            "this fracture classifier runs on torch",
            "use torch, or quantise it with `insightray optimize fracture --int8`",
        )
    if (card.weights_file or "").endswith(".json"):  # an ensemble of classifiers
        from insightray.engine.classification_ensemble import open_classifier_ensemble

        return open_classifier_ensemble(card, card_path, device)  # type: ignore[return-value]
    return FracturePredictor(load_model(card, weights_path(card, card_path)), card, device=device)
