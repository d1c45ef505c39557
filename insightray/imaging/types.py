"""The typed values the imaging package hands to the rest of Insight Ray."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from numpy.typing import NDArray

VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
Output = Literal["display", "modality"]
#: What the readers accept: a path, the encoded bytes, or a binary file object.
Source = str | Path | bytes | BinaryIO

#: Default guard against decompression bombs: 100 megapixels (a 10,000 x 10,000 image).
DEFAULT_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (for CT, Hounsfield units).

    Attributes:
        center: Window centre, DICOM (0028,1050).
        width: Window width, DICOM (0028,1051); must be positive.
        function: DICOM (0028,1056) VOI LUT Function.
    """

    center: float
    width: float
    function: VoiFunction = "LINEAR"


@dataclass(frozen=True)
class ImageMeta:
    """What is known about an image, without any patient identifier.

    Attributes:
        source_format: ``"dicom"``, ``"png"``, ``"jpeg"`` or ``"tiff"``.
        original_size: ``(rows, columns)`` of the stored image, before any resize.
        photometric: Photometric interpretation as stored (``MONOCHROME1``, ``RGB``...).
        bits_stored: Significant bits per sample in the source.
        modality: DICOM Modality (``CR``, ``DX``, ``CT``...), ``None`` outside DICOM.
        body_part: DICOM Body Part Examined, if given.
        view: DICOM View Position (``PA``, ``AP``, ``LL``...), if given.
        pixel_spacing: ``(row, column)`` spacing in millimetres, if known.
        spacing_source: The attribute the spacing came from (``PixelSpacing`` or
            ``ImagerPixelSpacing``).
        transfer_syntax: DICOM transfer syntax name.
        frames: Number of frames in the source.
        frame: The frame that was read, for multi-frame sources.
        voi: How intensities were mapped: ``"window"``, ``"voi_lut"``, ``"min_max"``,
            ``"range"`` (full range of the stored type) or ``"none"`` (modality values).
        window: The window applied, when ``voi == "window"``.
        inverted: Whether MONOCHROME1 was inverted so that bright means dense.
    """

    source_format: str
    original_size: tuple[int, int]
    photometric: str
    bits_stored: int
    modality: str | None = None
    body_part: str | None = None
    view: str | None = None
    pixel_spacing: tuple[float, float] | None = None
    spacing_source: str | None = None
    transfer_syntax: str | None = None
    frames: int = 1
    frame: int | None = None
    voi: str = "range"
    window: Window | None = None
    inverted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class LoadedImage:
    """A decoded 2-D image: float32 pixels plus metadata.

    In ``display`` output the pixels lie in ``[0, 1]``, bright meaning dense (MONOCHROME1 is
    inverted). In ``modality`` output they are the modality values (for CT, Hounsfield units).
    """

    pixels: NDArray[np.float32]
    meta: ImageMeta
