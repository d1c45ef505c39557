"""DICOM decoding with pydicom and pylibjpeg, with careful pixel semantics.

The order follows the DICOM grayscale pipeline (PS3.4 N.2.1): stored values (BitsStored and
PixelRepresentation honoured by pydicom) -> Modality LUT (RescaleSlope/Intercept or a Modality
LUT Sequence) -> VOI LUT (a VOI LUT Sequence or WindowCenter/Width, one of several views, or a
window given by the caller) -> MONOCHROME1 inversion, so bright always means dense.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut, apply_voi
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from insightray.errors import (
    CorruptFileError,
    ImageSizeError,
    InputError,
    MultiFrameError,
    NoPixelDataError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)
from insightray.imaging.types import ImageMeta, LoadedImage, Output, Source, Window
from insightray.imaging.windowing import apply_window, normalize_range

PIXEL_DATA_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: Attributes shown only on request (``insightray info --show-phi``); never put in ImageMeta.
PHI_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence pydicom's warnings while reading: they can quote tag values (patient data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def read_dataset(
    source: Source, *, force: bool = False, header_only: bool = False, name: str | None = None
) -> Dataset:
    """Parse a DICOM file, turning any parser failure into :class:`CorruptFileError`.

    Args:
        source: A path, the file's bytes or a binary file object.
        force: Read files without the preamble and ``DICM`` prefix too.
        header_only: Stop before the pixel data.
        name: How errors name the input (default: the path, or ``"data"``).
    """
    subject = source_name(source, name)
    try:
        with _quiet():
            return pydicom.dcmread(as_readable(source), force=force, stop_before_pixels=header_only)
    except Exception as err:  # pydicom raises many types on damaged input; all mean "corrupt"
        raise CorruptFileError(
            subject,
            f"the DICOM header cannot be parsed ({type(err).__name__})",
            "the file is truncated or damaged; export it again from the PACS",
        ) from None


def read_part10(source: Source, *, name: str | None = None) -> Dataset:
    """Parse a DICOM Part 10 file strictly (``DICM`` prefix required), every element converted.

    The reading de-identification needs: damage anywhere in the data set shows now. pydicom
    stops quietly at a cut inside the data set: a truncated file comes back without pixels.

    Raises:
        UnsupportedFormatError: The bytes are not DICOM.
        CorruptFileError: The DICOM file is damaged beyond reading.
    """
    subject = source_name(source, name)
    try:
        with _quiet():
            dataset = pydicom.dcmread(as_readable(source))
            dataset.walk(lambda _dataset, _element: None)  # converts every element
    except InvalidDicomError as error:
        raise UnsupportedFormatError(subject, "it is not a DICOM file", "send a .dcm") from error
    except Exception as error:  # pydicom raises many types on damaged input
        raise CorruptFileError(subject, "the DICOM file is damaged", "re-export it") from error
    return dataset


def source_name(source: Source, name: str | None = None) -> str:
    """How errors name an input: ``name`` if given, else the path, else ``"data"``."""
    if name is not None:
        return name
    return str(source) if isinstance(source, str | Path) else "data"


def as_readable(source: Source) -> Path | BinaryIO:
    """A path or binary file object the decoders open: bytes are wrapped, never written."""
    if isinstance(source, bytes):
        return BytesIO(source)
    return Path(source) if isinstance(source, str) else source


def read_phi(path: Path) -> dict[str, str]:
    """Return the patient and study identifiers of a DICOM file, for explicit display only."""
    ds = read_dataset(path, force=True, header_only=True)
    return {name: str(ds.get(name)) for name in PHI_ATTRIBUTES if name in ds}


def decode_dicom(
    subject: str | Path,
    ds: Dataset,
    *,
    frame: int | None,
    window: Window | None,
    voi_index: int,
    output: Output,
    max_pixels: int,
) -> LoadedImage:
    """Decode one 2-D image from a parsed dataset; see :func:`insightray.imaging.read_image`.

    ``subject`` names the input in errors (a path or a name such as ``"upload"``).
    """
    with _quiet():  # element values are converted lazily: warnings can come at any access
        return _decode(str(subject), ds, frame, window, voi_index, output, max_pixels)


def _decode(
    subject: str,
    ds: Dataset,
    frame: int | None,
    window: Window | None,
    voi_index: int,
    output: Output,
    max_pixels: int,
) -> LoadedImage:
    if not any(tag in ds for tag in PIXEL_DATA_TAGS):
        kind = _sop_class_name(ds)
        if _is_image_object(ds, kind):  # pydicom stops quietly where a cut file ends
            raise CorruptFileError(
                subject,
                f"this DICOM image ({kind}) ends before its pixel data: the file is "
                "truncated or damaged",
                "copy or export it again from the PACS or modality",
            )
        raise NoPixelDataError(
            subject,
            f"this DICOM object ({kind}) has no pixel data",
            "pass an image object (CR, DX, CT...) rather than a report, structure set or "
            "presentation state",
        )
    rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    frames = number_of_frames(ds)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if rows <= 0 or cols <= 0:
        raise ImageSizeError(
            subject, f"the image is {rows} x {cols} pixels", "the header is damaged; re-export it"
        )
    if rows * cols * samples > max_pixels:
        raise ImageSizeError(
            subject,
            f"the image is {rows} x {cols} x {samples} samples, over the limit of "
            f"{max_pixels:,} pixels",
            "raise --max-pixels if the image is genuine",
        )
    if frames > 1 and frame is None:
        raise MultiFrameError(subject, frames)
    if frame is not None and not 0 <= frame < frames:
        raise MultiFrameError(subject, frames)

    syntax = _transfer_syntax(ds)
    _check_decoder(subject, syntax)
    raw = _decode_pixels(subject, ds, frame if frames > 1 else None)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    values = _to_grayscale(raw, ds, photometric)
    meta_kwargs: dict[str, Any] = {}
    if photometric.startswith("MONOCHROME"):
        values = np.asarray(apply_modality_lut(values, ds), dtype=np.float32)
        if output == "display":
            values, meta_kwargs = _voi_to_display(values, ds, window, voi_index, subject)
            if photometric == "MONOCHROME1":
                values = 1.0 - values
                meta_kwargs["inverted"] = True
    elif output == "display":  # colour and palette images are already display values
        values = normalize_range(values, 0, 2 ** int(ds.get("BitsStored") or 8) - 1)
        meta_kwargs["voi"] = "range"
    if output == "modality":
        meta_kwargs = {"voi": "none"}
    spacing, spacing_source = _spacing(ds)
    meta = ImageMeta(
        source_format="dicom",
        original_size=(rows, cols),
        photometric=photometric,
        bits_stored=int(ds.get("BitsStored") or 0),
        modality=_text(ds, "Modality"),
        body_part=_text(ds, "BodyPartExamined"),
        view=_text(ds, "ViewPosition"),
        pixel_spacing=spacing,
        spacing_source=spacing_source,
        transfer_syntax=syntax.name if syntax else None,
        frames=frames,
        frame=frame if frames > 1 else None,
        **meta_kwargs,
    )
    return LoadedImage(np.ascontiguousarray(values, dtype=np.float32), meta)


def _voi_to_display(
    values: NDArray[np.float32],
    ds: Dataset,
    window: Window | None,
    voi_index: int,
    subject: str,
) -> tuple[NDArray[np.float32], dict[str, Any]]:
    """Apply the caller's window, else the file's VOI LUT or window, else its value range."""
    if window is not None:
        return apply_window(values, window), {"voi": "window", "window": window}
    lut_items = ds.get("VOILUTSequence") or []
    if lut_items:
        index = _pick(voi_index, len(lut_items), subject, "VOI LUTs")
        item = lut_items[index]
        bits = int(item.LUTDescriptor[2])
        mapped = apply_voi(values, ds, index=index)
        return normalize_range(mapped, 0, 2**bits - 1), {"voi": "voi_lut"}
    file_window = _file_window(ds, voi_index, subject)
    if file_window is not None:
        return apply_window(values, file_window), {"voi": "window", "window": file_window}
    low, high = float(values.min()), float(values.max())
    return normalize_range(values, low, high), {"voi": "min_max"}


def _file_window(ds: Dataset, voi_index: int, subject: str) -> Window | None:
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    centers = _as_list(ds.WindowCenter)
    widths = _as_list(ds.WindowWidth)
    if not centers or not widths:
        return None
    index = _pick(voi_index, min(len(centers), len(widths)), subject, "windows")
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    width = float(widths[index])
    if width <= 0 or (function == "LINEAR" and width < 1):
        return None  # an invalid stored window: fall back to the value range
    return Window(float(centers[index]), width, cast(Any, function))


def stored_windows(ds: Dataset) -> list[tuple[int, str, float, float]]:
    """The windows stored in the header as ``(index, explanation, center, width)``.

    Windows of width 0 or less are skipped (``index`` counts them); an unreadable centre or
    width list gives none. The explanation is ``""`` when the file names none.
    """
    with _quiet():
        centers = _numbers(ds.get("WindowCenter"))
        widths = _numbers(ds.get("WindowWidth"))
        names = ds.get("WindowCenterWidthExplanation")
    # A multi-valued explanation is a pydicom MultiValue (a MutableSequence, not a list):
    # str() of it would give "['WINDOW1', 'WINDOW2']" as one label.
    many = isinstance(names, Sequence) and not isinstance(names, str | bytes)
    labels = [str(name).strip() for name in (names if many else [names])]
    windows = []
    for index, (center, width) in enumerate(zip(centers, widths, strict=False)):
        if width <= 0:
            continue
        label = labels[index] if index < len(labels) and labels[index] not in ("", "None") else ""
        windows.append((index, label, center, width))
    return windows


def voi_lut_windows(ds: Dataset) -> list[tuple[str, float, float]]:
    """The linear window closest to each VOI LUT of the header, as ``(explanation, center,
    width)``: the inputs from where the LUT leaves its lowest output to where it reaches its
    highest (a viewer that windows linearly shows that range; the LUT's curve inside it is
    the server's :func:`decode_dicom`). The explanation is ``""`` when the file names none;
    an unreadable item is skipped.
    """
    found = []
    with _quiet():
        items = ds.get("VOILUTSequence") or []
        for index, item in enumerate(items):
            try:
                count, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
                inputs = np.arange(first, first + count, dtype=np.int64)
                data = np.asarray(apply_voi(inputs, ds, index=index), dtype=np.float64)
            except (AttributeError, IndexError, TypeError, ValueError):
                continue
            if data.size < 2 or data.max() <= data.min():
                continue
            low = int(np.flatnonzero(data == data.min()).max(initial=0))
            high = int(np.flatnonzero(data == data.max()).min(initial=data.size - 1))
            if high <= low:
                low, high = 0, data.size - 1
            explanation = str(item.get("LUTExplanation") or "").strip()
            found.append((explanation, first + (low + high + 1) / 2, float(high - low + 1)))
    return found


def _numbers(value: Any) -> list[float]:
    if value is None:
        return []
    try:
        return _as_list(value)
    except (TypeError, ValueError):
        return []


def _pick(index: int, count: int, subject: str, what: str) -> int:
    if not 0 <= index < count:
        raise InputError(
            subject,
            f"it has {count} {what} but number {index} was asked for",
            f"choose --voi-index between 0 and {count - 1}",
        )
    return index


def _as_list(value: Any) -> list[float]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [float(value)]
    return [float(v) for v in value]


def number_of_frames(ds: Dataset) -> int:
    """``NumberOfFrames`` of a data set: 1 when absent or unreadable."""
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(syntax)) if syntax else None


def _check_decoder(subject: str, syntax: UID | None) -> None:
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise UnsupportedTransferSyntaxError(
            subject,
            f"its pixel data use {syntax.name or syntax} ({syntax}), which no installed "
            "decoder handles",
            "convert it to an uncompressed transfer syntax, e.g. `gdcmconv --raw in.dcm out.dcm`",
        )


def _decode_pixels(subject: str, ds: Dataset, frame: int | None) -> NDArray[Any]:
    try:
        return np.asarray(pixel_array(ds, index=frame))
    except Exception as err:  # decoders raise many types; all mean the pixel data is unusable
        raise CorruptFileError(
            subject,
            f"the pixel data cannot be decoded ({_summary(err)})",
            "the file is truncated or damaged; export it again from the PACS",
        ) from None


def _to_grayscale(raw: NDArray[Any], ds: Dataset, photometric: str) -> NDArray[np.float32]:
    """Reduce colour and palette images to luminance; keep monochrome values as they are."""
    if photometric == "PALETTE COLOR":
        raw = apply_color_lut(raw, ds)
    if raw.ndim == 3:  # pydicom converts YBR to RGB by default
        rgb = raw.astype(np.float32)
        luminance = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
        return np.asarray(luminance, dtype=np.float32)
    return raw.astype(np.float32)


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(name)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return (row, col), name
    return None, None


def _is_image_object(ds: Dataset, sop_class_name: str) -> bool:
    """Whether a data set should hold pixels: an image storage class; or, with no SOP
    class at all, Image Pixel attributes (Rows is type 1 there) or nothing after the file
    meta header (a file cut there). Reports, structure sets and presentation states
    name their own class and are not images."""
    if "Image Storage" in sop_class_name:
        return True
    known = (
        ds.get("SOPClassUID")
        or ds.get("Modality")
        or "MediaStorageSOPClassUID" in getattr(ds, "file_meta", {})
    )
    return not known and ("Rows" in ds or len(ds) == 0)


def _sop_class_name(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    if uid:
        return UID(str(uid)).name or str(uid)
    return str(ds.get("Modality") or "unknown SOP class")


def _text(ds: Dataset, name: str) -> str | None:
    value = ds.get(name)
    text = str(value).strip() if value is not None else ""
    return text or None


def _summary(err: Exception) -> str:
    """One line from a decoder error; pydicom lists one reason per plugin on its own line."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    text = "; ".join(lines) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
