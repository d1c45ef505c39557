"""PNG (8 and 16 bit), JPEG and TIFF decoding with Pillow, checked for size before decoding."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from insightray.errors import CorruptFileError, ImageSizeError, MultiFrameError
from insightray.imaging.types import ImageMeta, LoadedImage
from insightray.imaging.windowing import normalize_range

#: Pillow modes and the bit depth of their samples.
_MODE_BITS = {
    "1": 1,
    "L": 8,
    "P": 8,
    "LA": 8,
    "RGB": 8,
    "RGBA": 8,
    "CMYK": 8,
    "I;16": 16,
    "I;16B": 16,
    "I;16L": 16,
    "I;16N": 16,
    "I": 32,
    "F": 32,
}


def decode_raster(
    source: Path | BinaryIO,
    source_format: str,
    *,
    frame: int | None,
    max_pixels: int,
    name: str | None = None,
) -> LoadedImage:
    """Decode a PNG, JPEG or TIFF file into ``[0, 1]`` float32 grayscale.

    Integer images are scaled by the full range of their type (8-bit by 255, 16-bit by 65535), so
    intensities stay comparable between images; 32-bit and float images by their own range.
    Colour images are reduced to luminance (ITU-R 601-2). ``source`` is a path or a binary
    file object; ``name`` names it in errors (default: the path).
    """
    subject = name if name is not None else str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb warning: we apply our own limit
            image = Image.open(source)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise ImageSizeError(
                    subject,
                    f"the image is {width} x {height} pixels",
                    "the file is damaged; export it again",
                )
            if width * height > max_pixels:
                raise ImageSizeError(
                    subject,
                    f"the image is {width} x {height} pixels, over the limit of "
                    f"{max_pixels:,} pixels",
                    "raise --max-pixels if the image is genuine",
                )
            frames = int(getattr(image, "n_frames", 1))
            if frames > 1 and (frame is None or not 0 <= frame < frames):
                raise MultiFrameError(subject, frames)
            if frames > 1 and frame is not None:
                image.seek(frame)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (ImageSizeError, MultiFrameError):
        raise
    except Image.DecompressionBombError:
        raise ImageSizeError(
            subject,
            "the image declares absurd dimensions",
            "raise --max-pixels if the image is genuine",
        ) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise CorruptFileError(
            subject,
            f"the {source_format.upper()} data cannot be decoded ({_first_line(err)})",
            "the file is truncated or damaged; export it again",
        ) from None
    mode = upright.mode
    bits = _MODE_BITS.get(mode, 8)
    pixels = _to_unit_gray(upright, mode)
    meta = ImageMeta(
        source_format=source_format,
        original_size=(height, width),
        photometric="MONOCHROME2"
        if mode in ("1", "L", "I", "F") or mode.startswith("I;16")
        else mode,
        bits_stored=bits,
        frames=frames,
        frame=frame if frames > 1 else None,
        voi="range" if mode not in ("I", "F") else "min_max",
    )
    return LoadedImage(pixels, meta)


def _to_unit_gray(image: Image.Image, mode: str) -> NDArray[np.float32]:
    if mode.startswith("I;16"):
        return _scale(np.asarray(image, dtype=np.uint16), 65535)
    if mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        return normalize_range(values, float(values.min()), float(values.max()))
    if mode != "L":
        image = image.convert("L")
    return _scale(np.asarray(image, dtype=np.uint8), 255)


def _scale(values: NDArray[np.unsignedinteger[Any]], top: int) -> NDArray[np.float32]:
    """Integers in ``[0, top]`` to ``[0, 1]`` in one pass (no clipping needed)."""
    return np.multiply(values, np.float32(1.0 / top), dtype=np.float32)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__
