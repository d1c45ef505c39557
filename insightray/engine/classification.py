"""Fracture classification inference from a model card, at the card's operating point.

An image is prepared as in training: the card's enhancement
(:class:`~insightray.imaging.enhance.RadiographEnhancement`), a letterbox to the card's input
size, then ``(x - mean) / std``. The model gives one logit; its sigmoid is the probability
of a fracture, and the label is ``fractured`` when the probability reaches the card's
``thresholds["operating_point"]`` (chosen on the validation split when the model was
trained; see ``notes`` and ``metrics`` in the card).

Example:
    >>> predictor = load_fracture_predictor()  # the bundled default model
    >>> import numpy as np
    >>> result = predictor.predict_arrays([np.zeros((300, 200), np.float32)])[0]
    >>> sorted(result.to_dict())
    ['label', 'probability', 'threshold']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine.weights import load_detector
from insightray.errors import ConfigError, InputError
from insightray.imaging import read_image
from insightray.imaging.enhance import Box, RadiographEnhancement
from insightray.imaging.transforms import LetterboxInfo, letterbox
from insightray.models import ModelCard, load_card
from insightray.models.catalog import resolve_card

__all__ = [
    "DEFAULT_FRACTURE_MODEL",
    "FRACTURE_LABELS",
    "FracturePredictor",
    "FractureResult",
    "PreparedImage",
    "load_fracture_predictor",
    "prepare_pixels",
    "to_unit_gray",
]

#: The fracture model used when none is named (bundled under insightray/weights/<name>/).
DEFAULT_FRACTURE_MODEL = "fracture-roboflow-lite0"
#: ``(negative, positive)`` label names.
FRACTURE_LABELS = ("not_fractured", "fractured")
#: Card keys: ``preprocessing`` enhancement settings, normalisation, Grad-CAM layer;
#: ``thresholds`` operating point.
ENHANCEMENT_KEY = "enhancement"
GRADCAM_LAYER_KEY = "gradcam_layer"
OPERATING_POINT_KEY = "operating_point"
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
    """

    probability: float
    label: str
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (probability rounded to 5 decimals)."""
        return {
            "probability": round(self.probability, 5),
            "label": self.label,
            "threshold": round(self.threshold, 5),
        }


@dataclass(frozen=True)
class PreparedImage:
    """A network input and how it maps back to the original pixels.

    Attributes:
        tensor: ``(channels, H, W)`` float32, normalised.
        crop: Region of the original image kept by the enhancement's ROI crop.
        letterbox: How the (cropped) image was letterboxed.
    """

    tensor: FloatArray
    crop: Box
    letterbox: LetterboxInfo


def to_unit_gray(image: NDArray[Any]) -> FloatArray:
    """Turn a 2-D or colour image (float in ``[0, 1]``, or uint8/uint16) into ``[0, 1]`` gray.

    Raises:
        InputError: The array is not an image.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., :3].mean(axis=2)
    elif array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or min(array.shape) < 1:
        raise InputError(
            "image", f"shape {array.shape} is not a 2-D image", "pass one grayscale radiograph"
        )
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    pixels = np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(pixels, 0.0, 1.0)


def prepare_pixels(
    image: NDArray[Any],
    enhancement: RadiographEnhancement,
    size: int | tuple[int, int],
    channels: int = 1,
    mean: float = GRAY_MEAN,
    std: float = GRAY_STD,
) -> PreparedImage:
    """Enhance, letterbox and normalise one image for the network (training and inference)."""
    enhanced, crop = enhancement.apply(to_unit_gray(image))
    boxed, info = letterbox(enhanced, size)
    normalised = (boxed - mean) / std
    tensor = np.ascontiguousarray(np.broadcast_to(normalised, (channels, *boxed.shape)))
    return PreparedImage(tensor.astype(np.float32), crop, info)


class FracturePredictor:
    """A fracture classifier and its card; thread-safe for inference.

    Args:
        model: The network (one logit per image).
        card: Its model card.
        device: Torch device.
    """

    def __init__(self, model: nn.Module, card: ModelCard, device: str = "cpu") -> None:
        if card.task != "classification":
            raise ConfigError(
                f"model card {card.name}",
                f"this is a {card.task} model, not a classifier",
                "pass a fracture classification model",
            )
        if OPERATING_POINT_KEY not in card.thresholds:
            raise ConfigError(
                f"model card {card.name}",
                f"thresholds has no {OPERATING_POINT_KEY!r}",
                "train the model with `insightray train fracture` or add the threshold",
            )
        self.card = card
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        preprocessing = card.preprocessing
        self.enhancement = RadiographEnhancement.from_dict(preprocessing.get(ENHANCEMENT_KEY, {}))
        self.channels = int(preprocessing.get("channels", 1))
        self.mean = float(preprocessing.get("mean", GRAY_MEAN))
        self.std = float(preprocessing.get("std", GRAY_STD))
        self.gradcam_layer = str(preprocessing.get(GRADCAM_LAYER_KEY, ""))

    @property
    def threshold(self) -> float:
        """The card's operating point."""
        return float(self.card.thresholds[OPERATING_POINT_KEY])

    def prepare(self, image: NDArray[Any]) -> PreparedImage:
        """The network input for one image (see :func:`prepare_pixels`)."""
        return prepare_pixels(
            image, self.enhancement, self.card.input_size, self.channels, self.mean, self.std
        )

    def probabilities(self, batch: torch.Tensor) -> NDArray[np.float64]:
        """Fracture probabilities for a prepared ``(N, channels, H, W)`` batch."""
        with torch.inference_mode():
            logits = self.model(batch.to(self.device)).reshape(len(batch), -1)[:, -1]
        return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)

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
            chunk = images[start : start + batch_size]
            batch = torch.from_numpy(np.stack([self.prepare(image).tensor for image in chunk]))
            results.extend(self.result(p) for p in self.probabilities(batch))
        return results

    def predict_paths(self, paths: Sequence[str | Path]) -> list[FractureResult]:
        """Read (DICOM, PNG, JPEG...) and classify image files."""
        return self.predict_arrays([read_image(path).pixels for path in paths])


def load_fracture_predictor(
    name_or_path: str | None = None, device: str = "cpu"
) -> FracturePredictor:
    """Build a predictor for ``--model NAME_OR_PATH`` (a card, a model folder or a bundled name).

    Raises:
        InputNotFoundError: Nothing matches, or the default model is not bundled.
        ConfigError: The card is no fracture classifier or names no weights.
        CorruptFileError: The weights' SHA-256 differs from the card's.
    """
    card_path = resolve_card(name_or_path, default=DEFAULT_FRACTURE_MODEL)
    card = load_card(card_path)
    if card.weights_file is None:
        raise ConfigError(str(card_path), "the card names no weights_file", "train the model")
    if card.task != "classification":
        raise ConfigError(
            str(card_path), f"this is a {card.task} model", "pass a fracture classifier"
        )
    model = load_detector(card, card_path.parent / card.weights_file)
    return FracturePredictor(model, card, device=device)
