"""One way from an image to a network input, for every image model, read from its card.

An image (``[0, 1]`` float gray as :func:`~insightray.imaging.read_image` gives, 8/16-bit
integers, or colour) becomes ``[0, 1]`` gray, goes through the card's enhancement
(:class:`~insightray.imaging.enhance.RadiographEnhancement`), is letterboxed to the input size
with the card's padding, normalised by the card's mean and standard deviation when it gives
them, and repeated to the network's channels. Training uses the same functions, so a model
sees at inference exactly what it saw when it learnt.

Example:
    >>> from insightray.models import Preprocessing
    >>> prepared = prepare_input(np.zeros((100, 200), np.float32), Preprocessing(), (64, 64), 3)
    >>> prepared.tensor.shape, prepared.letterbox.pad
    ((3, 64, 64), (0, 16))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from insightray.errors import InputError
from insightray.imaging.enhance import Box, RadiographEnhancement
from insightray.imaging.transforms import LetterboxInfo, letterbox
from insightray.models import Preprocessing

__all__ = ["PreparedImage", "prepare_image", "prepare_input", "prepare_pixels", "to_unit_gray"]

FloatArray = NDArray[np.float32]

_NO_ENHANCEMENT = RadiographEnhancement()


@dataclass(frozen=True)
class PreparedImage:
    """A network input and how it maps back to the original pixels.

    Attributes:
        tensor: ``(channels, H, W)`` float32.
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
    mean: float | tuple[float, ...] | None = None,
    std: float | tuple[float, ...] | None = None,
    pad_value: float = 0.0,
) -> PreparedImage:
    """Enhance, letterbox, normalise and repeat one image to ``channels``.

    Example:
        >>> prepared = prepare_pixels(np.ones((10, 20)), RadiographEnhancement(), 32, 1, 0.5, 0.25)
        >>> float(prepared.tensor.max())
        2.0
    """
    enhanced, crop = enhancement.apply(to_unit_gray(image))
    boxed, info = letterbox(enhanced, size, pad_value)
    tensor = np.broadcast_to(boxed, (channels, *boxed.shape))
    if mean is not None or std is not None:
        shift = np.reshape(np.asarray(0.0 if mean is None else mean, np.float32), (-1, 1, 1))
        spread = np.reshape(np.asarray(1.0 if std is None else std, np.float32), (-1, 1, 1))
        tensor = (tensor - shift) / spread
    return PreparedImage(np.ascontiguousarray(tensor, dtype=np.float32), crop, info)


def prepare_input(
    image: NDArray[Any], preprocessing: Preprocessing, size: tuple[int, int], channels: int
) -> PreparedImage:
    """The network input for one image, as the card's preprocessing says."""
    enhancement = (
        RadiographEnhancement.from_dict(preprocessing.enhancement)
        if preprocessing.enhancement
        else _NO_ENHANCEMENT
    )
    return prepare_pixels(
        image,
        enhancement,
        size,
        channels,
        preprocessing.mean,
        preprocessing.std,
        preprocessing.pad_value,
    )


def prepare_image(
    pixels: NDArray[Any], size: tuple[int, int], channels: int, pad_value: float = 0.0
) -> tuple[FloatArray, LetterboxInfo]:
    """Letterbox a 2-D image to ``size`` ``(rows, cols)`` and make it ``(C, H, W)``.

    The detector's path (no enhancement, no normalisation). Integer arrays are scaled by
    their type's maximum (uint8 by 255).

    Example:
        >>> image, info = prepare_image(np.zeros((100, 200), np.float32), (64, 64), 3)
        >>> image.shape, info.pad
        ((3, 64, 64), (0, 16))
    """
    prepared = prepare_pixels(pixels, _NO_ENHANCEMENT, size, channels, pad_value=pad_value)
    return prepared.tensor, prepared.letterbox
