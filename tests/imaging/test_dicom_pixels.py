"""DICOM pixel semantics checked against pydicom's own LUT functions on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence

from insightray.imaging import Window, read_image
from tests.imaging.helpers import PYDICOM_FILES, pydicom_file, write_dicom

KNOWN_UNDECODABLE = {  # compressed streams that defeat both pylibjpeg and Pillow
    "JPEG-lossy.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
}
DAMAGED = {"MR_truncated.dcm", "badVR.dcm"}  # deliberately broken test files


def _monochrome_files() -> list[Path]:
    files = []
    for path in sorted(PYDICOM_FILES.rglob("*.dcm")):
        if path.name in KNOWN_UNDECODABLE | DAMAGED:
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            continue
        mono = str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")
        if mono and int(ds.get("NumberOfFrames") or 1) == 1:
            files.append(path)
    return files


def _pydicom_output_range(ds: Dataset) -> tuple[float, float]:
    """The output range pydicom's apply_windowing maps a window onto (PS3.3 C.11.2.1.2)."""
    if ds.get("ModalityLUTSequence"):
        low, high = 0.0, 2.0 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        low, high = 0.0, 2.0**ds.BitsStored - 1
    else:
        low, high = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        low, high = low * slope + intercept, high * slope + intercept
    return low, high


def pydicom_display(ds: Dataset) -> np.ndarray:
    """The display image the obvious pydicom way, scaled to [0, 1], MONOCHROME1 inverted."""
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if ds.get("VOILUTSequence"):
        bits = ds.VOILUTSequence[0].LUTDescriptor[2]
        out = apply_voi_lut(values, ds) / (2.0**bits - 1)
    elif "WindowCenter" in ds:
        low, high = _pydicom_output_range(ds)
        out = (apply_voi_lut(values, ds) - low) / (high - low)
    else:
        out = (values - values.min()) / (values.max() - values.min())
    return 1.0 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


@pytest.mark.parametrize("path", _monochrome_files(), ids=lambda p: p.name)
def test_modality_values_match_pydicom(path: Path) -> None:
    ds = pydicom.dcmread(path)
    expected = apply_modality_lut(ds.pixel_array, ds)
    image = read_image(path, output="modality")
    assert image.pixels.dtype == np.float32
    np.testing.assert_allclose(image.pixels, expected, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("path", _monochrome_files(), ids=lambda p: p.name)
def test_display_values_match_pydicom_voi(path: Path) -> None:
    ds = pydicom.dcmread(path)
    image = read_image(path)
    assert image.pixels.min() >= 0.0 and image.pixels.max() <= 1.0
    np.testing.assert_allclose(image.pixels, pydicom_display(ds), atol=1e-5)


def test_real_cr_chest_monochrome1_inverted_with_file_window(shared_data: Path) -> None:
    path = shared_data / "dicom" / "cr_chest_RG1_UNCI.dcm"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = read_image(path)
    assert image.meta.inverted and image.meta.voi == "window"
    np.testing.assert_allclose(image.pixels, pydicom_display(ds), atol=1e-5)
    # Inversion: the densest stored value (lowest in MONOCHROME1) shows brightest.
    stored = ds.pixel_array
    assert image.pixels[stored == stored.min()].mean() > image.pixels[stored == stored.max()].mean()


def test_monochrome1_built_file_is_inverted(tmp_path: Path) -> None:
    pixels = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    mono2 = read_image(write_dicom(tmp_path / "m2.dcm", pixels, bits_stored=12))
    mono1 = read_image(
        write_dicom(tmp_path / "m1.dcm", pixels, bits_stored=12, photometric="MONOCHROME1")
    )
    np.testing.assert_allclose(mono1.pixels, 1.0 - mono2.pixels, atol=1e-6)
    assert mono1.pixels[0, 0] == pytest.approx(1.0)


def test_rescale_slope_intercept_gives_hounsfield_units(tmp_path: Path) -> None:
    stored = np.array([[0, 1024], [2048, 4095]], dtype=np.uint16)
    path = write_dicom(
        tmp_path / "ct.dcm", stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024
    )
    hu = read_image(path, output="modality").pixels
    np.testing.assert_array_equal(hu, stored.astype(np.float32) - 1024)


def test_bits_stored_masks_unused_high_bits(tmp_path: Path) -> None:
    stored = np.array([[5, 4095]], dtype=np.uint16)
    noisy = stored | np.uint16(0xF000)  # garbage above BitsStored (12) must be ignored
    image = read_image(write_dicom(tmp_path / "b.dcm", noisy, bits_stored=12), output="modality")
    np.testing.assert_array_equal(image.pixels, stored.astype(np.float32))


def test_signed_pixel_representation(tmp_path: Path) -> None:
    stored = np.array([[-2000, -1], [0, 2047]], dtype=np.int16)
    image = read_image(
        write_dicom(tmp_path / "s.dcm", stored, bits_stored=12, signed=True), output="modality"
    )
    np.testing.assert_array_equal(image.pixels, stored.astype(np.float32))


def test_multiple_windows_choose_by_index_and_override(tmp_path: Path) -> None:
    stored = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    path = write_dicom(
        tmp_path / "w.dcm",
        stored,
        bits_stored=12,
        WindowCenter=[1000, 3000],
        WindowWidth=[500, 1000],
    )
    ds = pydicom.dcmread(path)
    low, high = _pydicom_output_range(ds)
    for index in (0, 1):
        expected = (apply_voi_lut(stored.astype(float), ds, index=index) - low) / (high - low)
        ours = read_image(path, voi_index=index)
        assert ours.meta.window == Window([1000, 3000][index], [500, 1000][index])
        np.testing.assert_allclose(ours.pixels, expected, atol=1e-5)
    override = read_image(path, window=Window(2048, 4096))
    assert override.meta.window == Window(2048, 4096)
    # DICOM LINEAR: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped to [0, 1].
    expected = np.clip((stored - 2047.5) / 4095 + 0.5, 0, 1)
    np.testing.assert_allclose(override.pixels, expected, atol=1e-6)


def test_voi_lut_sequence_preferred_over_window(tmp_path: Path) -> None:
    stored = np.arange(0, 256, dtype=np.uint16).reshape(16, 16)
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new(0x00283006, "US", [255 - v for v in range(256)])  # LUT Data: a reversal
    path = write_dicom(
        tmp_path / "lut.dcm",
        stored,
        bits_stored=8,
        WindowCenter=128,
        WindowWidth=256,
        VOILUTSequence=Sequence([item]),
    )
    ds = pydicom.dcmread(path)
    image = read_image(path)
    assert image.meta.voi == "voi_lut"
    np.testing.assert_allclose(image.pixels, pydicom_display(ds), atol=1e-6)
    assert image.pixels[0, 0] == pytest.approx(1.0) and image.pixels[-1, -1] == pytest.approx(0.0)


def test_spacing_from_pixel_spacing_and_imager_pixel_spacing(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4), dtype=np.uint16)
    imager = read_image(write_dicom(tmp_path / "i.dcm", pixels, ImagerPixelSpacing=[0.2, 0.15]))
    assert imager.meta.pixel_spacing == (0.2, 0.15)
    assert imager.meta.spacing_source == "ImagerPixelSpacing"
    both = read_image(
        write_dicom(
            tmp_path / "b.dcm", pixels, PixelSpacing=[0.1, 0.1], ImagerPixelSpacing=[0.2, 0.2]
        )
    )
    assert both.meta.pixel_spacing == (0.1, 0.1) and both.meta.spacing_source == "PixelSpacing"


def test_real_files_metadata(shared_data: Path) -> None:
    jpeg = read_image(shared_data / "dicom" / "cr_chest_pa_jpeg_baseline.dcm")
    assert jpeg.meta.pixel_spacing == (0.168, 0.168)
    assert jpeg.meta.transfer_syntax == "JPEG Baseline (Process 1)"
    assert jpeg.meta.original_size == (1024, 1024) == jpeg.pixels.shape
    assert (jpeg.meta.modality, jpeg.meta.body_part, jpeg.meta.view) == ("CR", "CHEST", "PA")
    chest = read_image(shared_data / "dicom" / "cr_chest_RG1_UNCI.dcm")
    assert chest.pixels.shape == (1955, 1841)
    tibia = read_image(shared_data / "dicom" / "cr_tibia_RG3_UNCI.dcm")
    assert tibia.meta.original_size == (1760, 1760)


@pytest.mark.parametrize(
    "name, syntax",
    [
        ("SC_rgb_jpeg_dcmtk.dcm", "JPEG Baseline (Process 1)"),
        ("JPGExtended.dcm", "JPEG Extended (Process 2 and 4)"),
        ("SC_rgb_jpeg_gdcm.dcm", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"),
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),
        ("JPEGLSNearLossless_16.dcm", "JPEG-LS Lossy (Near-Lossless) Image Compression"),
        ("MR_small_jp2klossless.dcm", "JPEG 2000 Image Compression (Lossless Only)"),
        ("693_J2KI.dcm", "JPEG 2000 Image Compression"),
        ("MR_small_RLE.dcm", "RLE Lossless"),
        ("image_dfl.dcm", "Deflated Explicit VR Little Endian"),
        ("MR_small_bigendian.dcm", "Explicit VR Big Endian"),
        ("MR_small_implicit.dcm", "Implicit VR Little Endian"),
    ],
)
def test_every_transfer_syntax_decodes_like_pydicom(name: str, syntax: str) -> None:
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    image = read_image(path)
    assert image.meta.transfer_syntax is not None
    assert image.meta.transfer_syntax.startswith(syntax)
    reference = ds.pixel_array.astype(np.float64)
    if reference.ndim == 3:  # colour: our grayscale is the ITU-R 601 luminance
        reference = reference @ np.array([0.299, 0.587, 0.114])
        expected = reference / (2.0**ds.BitsStored - 1)
        np.testing.assert_allclose(image.pixels, expected, atol=1e-4)
    else:
        np.testing.assert_allclose(image.pixels, pydicom_display(ds), atol=1e-5)


def test_all_bundled_pydicom_files_decode_or_fail_cleanly() -> None:
    from insightray.errors import InsightRayError

    decoded = 0
    for path in sorted(PYDICOM_FILES.rglob("*.dcm")):
        try:
            image = read_image(path)
        except InsightRayError as error:
            assert "\n" not in str(error)
            continue
        decoded += 1
        assert image.pixels.ndim == 2 and np.isfinite(image.pixels).all()
    assert decoded >= 50
