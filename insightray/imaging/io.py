"""One entry point for every image Insight Ray reads: :func:`read_image`.

The format is recognised from the file's bytes, not its name: DICOM (with or without the
128-byte preamble), PNG, JPEG or TIFF. Anything else is refused with a clear error. The
readers take a path, the encoded bytes (e.g. an upload, decrypted in memory) or a binary
file object: nothing is written to disk to read bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from insightray.errors import (
    ConfigError,
    EmptyFileError,
    InputError,
    InputNotFoundError,
    UnsupportedFormatError,
)
from insightray.imaging.dicom import as_readable, decode_dicom, read_dataset, source_name
from insightray.imaging.raster import decode_raster
from insightray.imaging.types import DEFAULT_MAX_PIXELS, LoadedImage, Output, Source, Window

_RASTER_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
# A DICOM file written without preamble starts with a group 0002 or 0008 tag (LE or BE).
_PREAMBLE_LESS_DICOM = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


def detect_format(source: Source, *, name: str | None = None) -> str:
    """Return ``"dicom"``, ``"png"``, ``"jpeg"`` or ``"tiff"`` from the first bytes.

    Args:
        source: A path, the encoded bytes or a binary file object (left where it was).
        name: How errors name the input (default: the path, or ``"data"``).

    Raises:
        InputNotFoundError: The path does not exist or is not a readable file.
        EmptyFileError: There are no bytes.
        UnsupportedFormatError: The bytes belong to none of the supported formats.
    """
    subject = source_name(source, name)
    head = _head(source, subject)
    if not head:
        raise EmptyFileError(subject, "the file is empty (0 bytes)", "copy or export it again")
    if head[128:132] == b"DICM":
        return "dicom"
    for signature, name in _RASTER_SIGNATURES:
        if head.startswith(signature):
            return name
    if len(head) >= 8 and head[:2] in _PREAMBLE_LESS_DICOM:
        return "dicom"
    raise UnsupportedFormatError(
        subject,
        "this is not a DICOM, PNG, JPEG or TIFF file",
        "give a radiograph in one of those formats",
    )


def _head(source: Source, subject: str) -> bytes:
    """The first 132 bytes (room for the preamble and the ``DICM`` prefix)."""
    if isinstance(source, bytes):
        return source[:132]
    if not isinstance(source, str | Path):
        position = source.tell()
        head = source.read(132)
        source.seek(position)
        return head
    path = Path(source)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise InputNotFoundError(subject, f"the path {what}", "give the path of an image file")
    try:
        with path.open("rb") as handle:
            return handle.read(132)
    except OSError as err:
        raise InputNotFoundError(
            subject, f"the file cannot be read ({err.strerror})", "check its permissions"
        ) from None


def read_image(
    source: Source,
    *,
    frame: int | None = None,
    window: Window | None = None,
    voi_index: int = 0,
    output: Output = "display",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> LoadedImage:
    """Read one 2-D image as float32 pixels plus patient-free metadata.

    Args:
        source: A DICOM, PNG, JPEG or TIFF file: its path, its bytes or a binary file object.
        frame: Which frame to read from a multi-frame file (required for those).
        window: A window in modality units that overrides the file's own VOI (DICOM only).
        voi_index: Which of several windows or VOI LUTs stored in the file to use.
        output: ``"display"`` for ``[0, 1]`` values with the VOI applied and MONOCHROME1
            inverted; ``"modality"`` for modality values (e.g. Hounsfield units).
        max_pixels: Refuse images larger than this (a guard against decompression bombs).
        name: How errors name the input (default: the path, or ``"data"`` for bytes).

    Returns:
        The pixels and an :class:`~insightray.imaging.types.ImageMeta`.

    Raises:
        InputError: A subclass saying what is wrong with the file and what to do.

    Example:
        >>> image = read_image("chest.dcm")  # doctest: +SKIP
        >>> image.pixels.dtype, image.meta.pixel_spacing  # doctest: +SKIP
        (dtype('float32'), (0.168, 0.168))
    """
    subject = source_name(source, name)
    source_format = detect_format(source, name=subject)
    readable = as_readable(source)
    if source_format != "dicom":
        return decode_raster(
            readable, source_format, frame=frame, max_pixels=max_pixels, name=subject
        )
    ds = read_dataset(readable, force=True, name=subject)
    return decode_dicom(
        subject,
        ds,
        frame=frame,
        window=window,
        voi_index=voi_index,
        output=output,
        max_pixels=max_pixels,
    )


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted, hidden files skipped) into a list of files.

    Files given explicitly are kept as given, so that a bad one is reported, not skipped.

    Raises:
        InputNotFoundError: A path does not exist.
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.exists():
            files.append(path)
        else:
            raise InputNotFoundError(str(path), "the path does not exist", "check the spelling")
    return files


#: Files an image folder is searched for (and DICOM files without a suffix).
IMAGE_SUFFIXES = frozenset({".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ""})


def image_paths(source: str | Path) -> list[Path]:
    """The images of a folder (recursive), or of a ``.txt`` list (paths relative to the list).

    Raises:
        InputNotFoundError: The folder or list does not exist.
        InputError: It holds no images.
    """
    path = Path(source)
    if path.suffix == ".txt" and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        files = [path.parent / line.strip() for line in lines if line.strip()]
    else:
        found = expand_inputs([path])
        files = [file for file in found if file.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(str(path), "no images found", "give a folder of images or a .txt list")
    for file in files:
        if not file.is_file():
            raise InputNotFoundError(str(file), "listed but missing", "fix the list")
    return files


def write_png(pixels: NDArray[np.float32], path: str | Path, bits: int = 8) -> Path:
    """Write ``[0, 1]`` float pixels as an 8- or 16-bit grayscale PNG and return the path."""
    if bits not in (8, 16):
        raise ConfigError("bits", f"{bits}-bit PNG is not supported", "use 8 or 16")
    top = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    return save_png(np.rint(np.clip(pixels, 0.0, 1.0) * top).astype(dtype), path)


def save_png(array: NDArray[np.integer[Any]], path: str | Path) -> Path:
    """Write a uint8 or uint16 array (grayscale, or BGR for colour) as PNG; make its folder."""
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ConfigError(str(path), "the PNG could not be encoded", "check the image shape")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(encoded.tobytes())
    return target
