"""The images the API sends back: preview, viewer pixels, overlays and heat maps.

Pixels are read by :mod:`insightray.imaging` only (from bytes decrypted in memory); this
module encodes what the routes answer. Everything here is blocking: call it from a thread.

Example:
    >>> image = read_image(study_bytes, name="upload")  # doctest: +SKIP
    >>> png = preview_png(image)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.errors import ConfigError, InputError
from insightray.imaging import LoadedImage
from insightray.imaging.upload import viewer_values

__all__ = [
    "CONTENT_TYPES",
    "PixelPayload",
    "heat_alpha",
    "heatmap_overlay_png",
    "heatmap_png",
    "pixel_level",
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


#: The longest side of the level the viewer gets first (a 2,048 x 2,048 level is 8 MiB).
OVERVIEW_SIDE = 2048
#: The longest side any one pixel answer may have (32 MiB at most).
MAX_LEVEL_SIDE = 4096


@dataclass(frozen=True)
class PixelPayload:
    """Little-endian uint16 pixels, row-major, with the value range they map to.

    ``region`` is the ``(x, y, w, h)`` of the full-resolution image the pixels cover; a
    payload smaller than its region is a downsampled level of it.
    """

    data: bytes
    width: int
    height: int
    value_min: float
    value_max: float
    full_width: int = 0
    full_height: int = 0
    region: tuple[int, int, int, int] = (0, 0, 0, 0)


def pixel_payload(
    values: NDArray[np.float32], value_range: tuple[float, float] | None = None
) -> PixelPayload:
    """Quantise values to uint16: ``value = min + p * (max - min) / 65535``."""
    low, high = value_range or (float(values.min()), float(values.max()))
    scale = 65535.0 / (high - low) if high > low else 0.0
    shifted = np.clip((values.astype(np.float64) - low) * scale, 0.0, 65535.0)
    quantised = np.rint(shifted).astype("<u2")
    height, width = values.shape
    return PixelPayload(quantised.tobytes(), width, height, low, high, width, height,
                        (0, 0, width, height))  # fmt: skip


def pixel_level(
    image: LoadedImage,
    max_side: int = OVERVIEW_SIDE,
    region: tuple[int, int, int, int] | None = None,
) -> PixelPayload:
    """The viewer's pixels of ``image`` (read with ``output="modality"``): the whole image or
    a ``region`` ``(x, y, w, h)`` of it, area-averaged down to ``max_side`` at most.

    The level is cut and shrunk before the viewer's values are computed, so an 81-megapixel
    image costs one more level-sized array, not another copy of the whole image; the value
    range is the whole image's, shared by every level and tile.

    Raises:
        InputError: The region lies outside the image.
    """
    full_height, full_width = image.pixels.shape
    x, y, w, h = region or (0, 0, full_width, full_height)
    x, y = min(max(x, 0), full_width), min(max(y, 0), full_height)
    w, h = min(w, full_width - x), min(h, full_height - y)
    if w <= 0 or h <= 0:
        raise InputError("pixels", "the region lies outside the image", "ask for x,y,w,h inside it")
    part: NDArray[Any] = image.pixels[y : y + h, x : x + w]
    factor = max(w, h) / max_side
    if factor > 1:
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        part = cv2.resize(part, size, interpolation=cv2.INTER_AREA)
    low = float(viewer_values(replace(image, pixels=np.array([[image.pixels.min()]]))).item())
    high = float(viewer_values(replace(image, pixels=np.array([[image.pixels.max()]]))).item())
    values = viewer_values(replace(image, pixels=np.ascontiguousarray(part, dtype=np.float32)))
    payload = pixel_payload(values, (low, high))
    return replace(payload, full_width=full_width, full_height=full_height, region=(x, y, w, h))


def png_bytes(array: NDArray[Any]) -> bytes:
    """PNG-encode a uint8 array (grey, BGR or BGRA)."""
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ConfigError("image", "the PNG could not be encoded", "check the image shape")
    return bytes(encoded.tobytes())


def preview_png(image: LoadedImage) -> bytes:
    """An 8-bit grey PNG of a display image (its default window applied)."""
    return png_bytes(np.rint(np.clip(image.pixels, 0.0, 1.0) * 255.0).astype(np.uint8))


#: Heat below this level is left transparent, and so is heat below the map's
#: :data:`HEAT_QUANTILE`: Grad-CAM of a small classifier is diffuse (on a fracture test image
#: 83 % of the film is above 0.4), and a colour wash over all of it hides the image.
HEAT_FLOOR = 0.4
HEAT_QUANTILE = 0.8


def heat_alpha(heat: NDArray[np.float32]) -> NDArray[np.float32]:
    """Opacity of a ``[0, 1]`` heat map: 0 below :data:`HEAT_FLOOR` and below the map's
    :data:`HEAT_QUANTILE` (so at most the hottest fifth is coloured), rising linearly to 1
    halfway from there to the peak."""
    clipped = np.clip(heat, 0.0, 1.0).astype(np.float32)
    floor = max(HEAT_FLOOR, float(np.quantile(clipped, HEAT_QUANTILE)))
    peak = float(clipped.max())
    if peak <= floor:
        return np.zeros_like(clipped)
    return np.clip(2.0 * (clipped - floor) / (peak - floor), 0.0, 1.0)


def heatmap_png(heat: NDArray[np.float32]) -> bytes:
    """An RGBA PNG of a ``[0, 1]`` heat map: jet colours, alpha from :func:`heat_alpha`."""
    level = np.rint(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(level, cv2.COLORMAP_JET)
    alpha = np.rint(heat_alpha(heat) * 255.0).astype(np.uint8)
    return png_bytes(np.dstack([bgr, alpha]))


def heatmap_overlay_png(image: LoadedImage, heat: NDArray[np.float32]) -> bytes:
    """The image with its heat map blended on (alpha = :func:`heat_alpha` x 0.5), as an 8-bit
    colour PNG."""
    grey = np.clip(image.pixels, 0.0, 1.0)[..., None] * 255.0
    level = np.rint(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    colour = cv2.applyColorMap(level, cv2.COLORMAP_JET).astype(np.float32)
    alpha = (heat_alpha(heat) * 0.5)[..., None]
    blended = grey * (1.0 - alpha) + colour * alpha
    return png_bytes(np.rint(blended).astype(np.uint8))
