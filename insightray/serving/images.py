"""Decoding stored study bytes, and the images the API sends back (preview, pixels, overlays).

Study bytes are decrypted in memory and decoded by :func:`insightray.imaging.read_image`,
the one reader of the package, through a private temporary file that lives only for the
call (the readers take paths). Everything here is blocking: call it from a thread.

Example:
    >>> image = decode(open("chest.dcm", "rb").read(), tmp_dir)  # doctest: +SKIP
    >>> png = preview_png(image)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from numpy.typing import NDArray

from insightray.errors import ConfigError, InsightRayError
from insightray.imaging import LoadedImage, detect_format, read_image
from insightray.imaging.types import Output

__all__ = [
    "CONTENT_TYPES",
    "PixelPayload",
    "decode",
    "detect_bytes_format",
    "dicom_windows",
    "full_range_window",
    "heatmap_overlay_png",
    "heatmap_png",
    "modality_values",
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


def _with_file(data: bytes, tmp_dir: Path, action: Any) -> Any:
    tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="decode-") as handle:
        handle.write(data)
        handle.flush()
        try:
            return action(Path(handle.name))
        except InsightRayError as error:  # name the upload, not the server's scratch file
            error.subject = "upload"
            error.args = tuple(str(a).replace(handle.name, "upload") for a in error.args)
            raise


def detect_bytes_format(data: bytes, tmp_dir: Path) -> str:
    """``"dicom"``, ``"png"``, ``"jpeg"`` or ``"tiff"`` from the bytes (never the file name).

    Raises:
        EmptyFileError: No bytes.
        UnsupportedFormatError: None of those formats.
    """
    return str(_with_file(data[:132], tmp_dir, detect_format))


def decode(data: bytes, tmp_dir: Path, output: Output = "display") -> LoadedImage:
    """Decode study bytes with :func:`~insightray.imaging.read_image`.

    Raises:
        InputError: The bytes are not a readable single-frame image (corrupt, no pixels...).
    """
    image: LoadedImage = _with_file(data, tmp_dir, lambda path: read_image(path, output=output))
    return image


def dicom_windows(data: bytes, low: float, high: float, inverted: bool) -> list[dict[str, Any]]:
    """The windows stored in a DICOM header, in the units of :func:`pixel_payload`.

    For MONOCHROME1 the pixel values are inverted (``low + high - value``), so the centres
    are too. A "Full range" window is always last.
    """
    with warnings.catch_warnings():  # pydicom warnings can quote tag values
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        centers = _numbers(ds.get("WindowCenter"))
        widths = _numbers(ds.get("WindowWidth"))
        names = ds.get("WindowCenterWidthExplanation")
    labels = [str(name) for name in (names if isinstance(names, list | tuple) else [names])]
    windows = []
    for index, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if width <= 0:
            continue
        name = labels[index] if index < len(labels) and labels[index] not in ("", "None") else ""
        shown = low + high - center if inverted else center
        windows.append({"name": name or f"Window {index + 1}", "center": shown, "width": width})
    return [*windows, full_range_window(low, high)]


def full_range_window(low: float, high: float) -> dict[str, Any]:
    """The window that shows every value."""
    return {"name": "Full range", "center": (low + high) / 2, "width": max(high - low, 1.0)}


def _numbers(value: Any) -> list[float]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    try:
        return [float(item) for item in items]
    except (TypeError, ValueError):
        return []


@dataclass(frozen=True)
class PixelPayload:
    """Little-endian uint16 pixels, row-major, with the value range they map to."""

    data: bytes
    width: int
    height: int
    value_min: float
    value_max: float


def modality_values(image: LoadedImage) -> NDArray[np.float32]:
    """Pixel values for the viewer from an image decoded with ``output="modality"``.

    DICOM: values after the modality LUT, MONOCHROME1 inverted (``min + max - value``) so
    bright means dense. PNG/JPEG/TIFF: the stored sample values (0-255 for 8 bits).
    """
    if image.meta.source_format != "dicom":
        top = float(2 ** max(1, min(image.meta.bits_stored, 16)) - 1)
        return np.asarray(image.pixels * np.float32(top), dtype=np.float32)
    values = image.pixels
    if image.meta.photometric == "MONOCHROME1":
        values = np.float32(values.min() + values.max()) - values
    return np.asarray(values, dtype=np.float32)


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
