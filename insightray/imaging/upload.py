"""Uploads: an image sent as bytes, read once into everything a viewer and a store need.

:func:`read_upload` sniffs the format, parses a DICOM file ONCE and returns its modality
values, the values a viewer shows (as stored: a MONOCHROME1 image is inverted on display),
the stored windows in those units and the technical metadata. The parsed data set travels
inside the result (:attr:`ParsedUpload.dataset`) so that de-identification
(:mod:`insightray.imaging.deid`) and re-encoding need no second parse; callers outside the
imaging package never touch it.

Example:
    >>> upload = read_upload(open("chest.dcm", "rb").read(), strict=True)  # doctest: +SKIP
    >>> upload.source_format, upload.windows[-1]["name"]  # doctest: +SKIP
    ('dicom', 'Full range')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from insightray.imaging.dicom import (
    decode_dicom,
    number_of_frames,
    read_dataset,
    read_part10,
    stored_windows,
    voi_lut_windows,
)
from insightray.imaging.io import detect_format, read_image
from insightray.imaging.types import DEFAULT_MAX_PIXELS, ImageMeta, LoadedImage

__all__ = [
    "ParsedUpload",
    "full_range_window",
    "read_upload",
    "reading_attributes",
    "viewer_values",
]

#: Header attributes a reader wants on screen that never identify a patient.
SAFE_ATTRIBUTES = ("Laterality", "ImageLaterality", "PatientOrientation")
#: Free-text attributes PS3.15's Basic Profile removes (they may name a patient): kept only
#: when the service does not de-identify.
DESCRIPTION_ATTRIBUTES = ("StudyDescription", "SeriesDescription")


@dataclass(frozen=True)
class ParsedUpload:
    """An upload decoded once.

    Attributes:
        source_format: ``"dicom"``, ``"png"``, ``"jpeg"`` or ``"tiff"``.
        image: The image read with ``output="modality"`` (see
            :func:`~insightray.imaging.read_image`).
        values: The viewer's values (:func:`viewer_values` of ``image``).
        windows: The file's VOI in the units of ``values`` (DICOM only: each VOI LUT as
            the linear window of its range, then the stored windows), then a "Full range"
            window; each ``{"name", "center", "width"}``.
        dataset: The parsed DICOM data set (``None`` for other formats), for
            de-identification and re-encoding inside the imaging package.
    """

    source_format: str
    image: LoadedImage
    values: NDArray[np.float32]
    windows: list[dict[str, Any]]
    dataset: Dataset | None = field(default=None, repr=False, compare=False)

    @property
    def meta(self) -> ImageMeta:
        """The image's patient-free metadata."""
        return self.image.meta

    @property
    def value_range(self) -> tuple[float, float]:
        """The lowest and highest of :attr:`values`."""
        return _range(self.values)


def read_upload(
    data: bytes,
    *,
    strict: bool = False,
    name: str = "upload",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ParsedUpload:
    """Read an uploaded image: a DICOM file is parsed exactly once.

    Args:
        data: The encoded file.
        strict: Read DICOM as de-identification needs it (:func:`~insightray.imaging.dicom.
            read_part10`: the ``DICM`` prefix required, every element converted); otherwise
            as :func:`~insightray.imaging.read_image` does.
        name: How errors name the input.
        max_pixels: Refuse images larger than this.

    Raises:
        EmptyFileError: No bytes.
        UnsupportedFormatError: Not DICOM, PNG, JPEG or TIFF.
        InputError: A damaged file, no pixel data...
    """
    source_format = detect_format(data, name=name)
    if source_format != "dicom":
        image = read_image(data, output="modality", max_pixels=max_pixels, name=name)
        values = viewer_values(image)
        return ParsedUpload(source_format, image, values, [full_range_window(*_range(values))])
    reader = read_part10 if strict else partial(read_dataset, force=True)
    dataset = reader(data, name=name)
    # A multi-frame image (cine, a stack) is stored whole; its first frame is read here, the
    # others on request (``read_image(..., frame=i)``).
    first = 0 if number_of_frames(dataset) > 1 else None
    image = decode_dicom(
        name, dataset, frame=first, window=None, voi_index=0, output="modality",
        max_pixels=max_pixels,
    )  # fmt: skip
    values = viewer_values(image)
    low, high = _range(values)
    # The file's VOI first, as the grayscale pipeline applies it: a VOI LUT (as the linear
    # window of its range) before WindowCenter/Width, then the viewer's own presets.
    windows = [
        {"name": label or f"VOI LUT {index + 1}", "center": center, "width": width}
        for index, (label, center, width) in enumerate(voi_lut_windows(dataset))
    ] + [
        {"name": label or f"Window {index + 1}", "center": center, "width": width}
        for index, label, center, width in stored_windows(dataset)
    ]
    return ParsedUpload("dicom", image, values, [*windows, full_range_window(low, high)], dataset)


def reading_attributes(upload: ParsedUpload, *, deidentified: bool) -> dict[str, str | None]:
    """Laterality, orientation and (without de-identification) the study and series
    descriptions of a DICOM upload, each ``None`` when absent; ``{}`` for other formats."""
    if upload.dataset is None:
        return {}
    names = SAFE_ATTRIBUTES + (() if deidentified else DESCRIPTION_ATTRIBUTES)
    found: dict[str, str | None] = {}
    for keyword in names:
        value = upload.dataset.get(keyword)
        many = isinstance(value, Sequence) and not isinstance(value, str | bytes)
        text = "\\".join(str(v) for v in value) if many else str(value or "")
        found[_snake(keyword)] = text.strip() or None
    if not found.get("laterality"):
        found["laterality"] = found.pop("image_laterality", None)
    else:
        found.pop("image_laterality", None)
    return found


def _snake(keyword: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in keyword).lstrip("_")


def viewer_values(image: LoadedImage) -> NDArray[np.float32]:
    """Pixel values for a viewer from an image read with ``output="modality"``.

    DICOM: values after the modality LUT, as stored, so that the file's WindowCenter and
    WindowWidth apply to them unchanged; a MONOCHROME1 image is inverted by the viewer when it
    displays them (the study says its ``photometric``), never in the values.
    PNG/JPEG/TIFF: the stored sample values (0-255 for 8 bits).
    """
    if image.meta.source_format != "dicom":
        top = float(2 ** max(1, min(image.meta.bits_stored, 16)) - 1)
        return np.asarray(image.pixels * np.float32(top), dtype=np.float32)
    return np.asarray(image.pixels, dtype=np.float32)


def full_range_window(low: float, high: float) -> dict[str, Any]:
    """The window that shows every value."""
    return {"name": "Full range", "center": (low + high) / 2, "width": max(high - low, 1.0)}


def _range(values: NDArray[np.float32]) -> tuple[float, float]:
    return float(values.min()), float(values.max())
