"""Every kind of bad input gives one typed error with a one-line message, built here for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from insightray.errors import (
    CorruptFileError,
    EmptyFileError,
    ImageSizeError,
    InputError,
    InputNotFoundError,
    MultiFrameError,
    NoPixelDataError,
    UnsupportedFormatError,
    UnsupportedTransferSyntaxError,
)
from insightray.imaging import read_image
from tests.imaging.helpers import pydicom_file, write_dicom


def _raises(kind: type[InputError], path: Path, **kwargs: object) -> InputError:
    with pytest.raises(kind) as caught:
        read_image(path, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and len(message) < 400
    return caught.value


def test_missing_path_and_folder(tmp_path: Path) -> None:
    _raises(InputNotFoundError, tmp_path / "nope.dcm")
    _raises(InputNotFoundError, tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    _raises(EmptyFileError, empty)


@pytest.mark.parametrize(
    "content", [b"hello, this is a report\n" * 10, bytes(range(256)) * 4, b"%PDF-1.7\n..."]
)
def test_junk_is_not_an_image(tmp_path: Path, content: bytes) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(content)
    _raises(UnsupportedFormatError, junk)


@pytest.mark.parametrize(
    "name", ["reportsi.dcm", "test-SR.dcm", "rtstruct.dcm", "rtplan.dcm", "waveform_ecg.dcm"]
)
def test_dicom_without_pixel_data_names_its_kind(name: str) -> None:
    error = _raises(NoPixelDataError, pydicom_file(name))
    assert "no pixel data" in str(error)


def test_presentation_state_without_pixels(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    del ds.PixelData
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State
    path = tmp_path / "pr.dcm"
    ds.save_as(path)
    assert "Presentation State" in str(_raises(NoPixelDataError, path))


@pytest.mark.parametrize("keep", [0.005, 0.025, 0.3, 0.6, 0.95])
def test_truncated_dicom(tmp_path: Path, keep: float) -> None:
    # 0.005 cuts the file meta header, 0.025 the data set before its pixels (which pydicom
    # reads quietly as an image without pixels), the others the pixel data
    data = pydicom_file("CT_small.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert "truncated" in str(_raises(CorruptFileError, cut))


def test_flipped_bytes_in_compressed_pixel_data(tmp_path: Path) -> None:
    # Flipping entropy-coded bytes can decode to wrong pixels unnoticed (nothing can tell);
    # flipping the codestream's header must be caught.
    data = bytearray(pydicom_file("MR_small_jpeg_ls_lossless.dcm").read_bytes())
    start = data.index(b"\xff\xd8\xff") + 2
    data[start : start + 40] = bytes(b ^ 0xFF for b in data[start : start + 40])
    damaged = tmp_path / "flipped.dcm"
    damaged.write_bytes(bytes(data))
    _raises(CorruptFileError, damaged)


def test_unsupported_transfer_syntax(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("MR_small_jpeg_ls_lossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no decoder
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path)
    error = _raises(UnsupportedTransferSyntaxError, path)
    assert "MPEG2" in str(error) and "convert" in str(error).lower()


def test_multiframe_asks_for_a_frame_then_reads_it() -> None:
    path = pydicom_file("rtdose.dcm")
    error = _raises(MultiFrameError, path)
    assert "--frame" in str(error) and "15 frames" in str(error)
    image = read_image(path, frame=3)
    reference = pydicom.dcmread(path).pixel_array[3]
    assert image.pixels.shape == reference.shape and image.meta.frame == 3
    _raises(MultiFrameError, path, frame=15)


@pytest.mark.parametrize("rows, cols", [(0, 16), (16, 0)])
def test_zero_dimensions(tmp_path: Path, rows: int, cols: int) -> None:
    path = write_dicom(tmp_path / "z.dcm", np.zeros((4, 4), dtype=np.uint16))
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = rows, cols
    ds.save_as(path)
    _raises(ImageSizeError, path)


def test_absurd_dimensions_refused_before_decoding(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "bomb.dcm", np.zeros((4, 4), dtype=np.uint16))
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 60000, 60000  # 3.6 gigapixels declared over 32 bytes of data
    ds.save_as(path)
    assert "limit" in str(_raises(ImageSizeError, path))


def test_pixel_limit_is_configurable_for_raster_images(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((100, 120), dtype=np.uint8))
    _raises(ImageSizeError, path, max_pixels=100 * 119)
    assert read_image(path, max_pixels=100 * 120).pixels.shape == (100, 120)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_raster_images(tmp_path: Path, suffix: str) -> None:
    image = (np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)
    ok, encoded = cv2.imencode(suffix, image)
    assert ok
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(encoded.tobytes()[: len(encoded) // 2])
    _raises(CorruptFileError, path)


def test_extension_does_not_fool_detection(tmp_path: Path) -> None:
    png_named_dcm = tmp_path / "really_a_png.dcm"
    cv2.imwrite(str(tmp_path / "x.png"), np.full((8, 8), 128, dtype=np.uint8))
    shutil.copy(tmp_path / "x.png", png_named_dcm)
    assert read_image(png_named_dcm).meta.source_format == "png"
