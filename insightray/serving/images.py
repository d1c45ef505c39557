"""The images the API sends back: preview, viewer pixels, overlays and heat maps.

Pixels are read by :mod:`insightray.imaging` only (from bytes decrypted in memory); this
module encodes what the routes answer. Everything here is blocking: call it from a thread.

Example:
    >>> image = read_image(study_bytes, name="upload")  # doctest: +SKIP
    >>> png = preview_png(image)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.imaging import LoadedImage

__all__ = [
    "CONTENT_TYPES",
    "PixelPayload",
    "heatmap_overlay_png",
    "heatmap_png",
    "pixel_payload",
    "png_bytes",
    "preview_png",
]

#: Media type of each accepted upload format.
CONTENT_TYPES = {
    "dicom": "application/dicom",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
}


@dataclass(frozen=True)
class PixelPayload:
    """Little-endian uint16 pixels, row-major, with the value range they map to."""

    data: bytes
    width: int
    height: int
    value_min: float
    value_max: float


def pixel_payload(values: NDArray[np.float32]) -> PixelPayload:
    """Quantise values to uint16: ``value = min + p * (max - min) / 65535``."""
    low, high = float(values.min()), float(values.max())
    scale = 65535.0 / (high - low) if high > low else 0.0
    quantised = np.rint((values.astype(np.float64) - low) * scale).astype("<u2")
    height, width = values.shape
    return PixelPayload(quantised.tobytes(), width, height, low, high)


def png_bytes(array: NDArray[Any]) -> bytes:
    """PNG-encode a uint8 array (grey, BGR or BGRA)."""
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ConfigError("image", "the PNG could not be encoded", "check the image shape")
    return bytes(encoded.tobytes())


def preview_png(image: LoadedImage) -> bytes:
    """An 8-bit grey PNG of a display image (its default window applied)."""
    return png_bytes(np.rint(np.clip(image.pixels, 0.0, 1.0) * 255.0).astype(np.uint8))


def heatmap_png(heat: NDArray[np.float32]) -> bytes:
    """An RGBA PNG of a ``[0, 1]`` heat map: jet colours, alpha = heat."""
    level = np.rint(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(level, cv2.COLORMAP_JET)
    return png_bytes(np.dstack([bgr, level]))


def heatmap_overlay_png(image: LoadedImage, heat: NDArray[np.float32]) -> bytes:
    """The image with its heat map blended on (alpha = heat x 0.5), as an 8-bit colour PNG."""
    grey = np.clip(image.pixels, 0.0, 1.0)[..., None] * 255.0
    level = np.rint(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    colour = cv2.applyColorMap(level, cv2.COLORMAP_JET).astype(np.float32)
    alpha = (level.astype(np.float32) / 255.0 * 0.5)[..., None]
    blended = grey * (1.0 - alpha) + colour * alpha
    return png_bytes(np.rint(blended).astype(np.uint8))
