"""PNG (8/16 bit), JPEG and TIFF reading, and PNG writing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from insightray.imaging import read_image, write_png


def test_png_8_and_16_bit_values(tmp_path: Path) -> None:
    values16 = np.array([[0, 1, 4095], [30000, 65534, 65535]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), values16)
    image = read_image(tmp_path / "a.png")
    assert image.meta.bits_stored == 16 and image.meta.source_format == "png"
    np.testing.assert_allclose(image.pixels, values16 / 65535.0, atol=1e-7)
    values8 = np.array([[0, 1], [128, 255]], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "b.png"), values8)
    np.testing.assert_allclose(read_image(tmp_path / "b.png").pixels, values8 / 255.0, atol=1e-7)


def test_tiff_16_bit_and_colour_jpeg(tmp_path: Path) -> None:
    values16 = np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16)
    cv2.imwrite(str(tmp_path / "a.tif"), values16)
    tiff = read_image(tmp_path / "a.tif")
    assert tiff.meta.source_format == "tiff"
    np.testing.assert_allclose(tiff.pixels, values16 / 65535.0, atol=1e-7)
    colour = np.zeros((32, 32, 3), dtype=np.uint8)
    colour[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "c.jpg"), colour, [cv2.IMWRITE_JPEG_QUALITY, 100])
    jpeg = read_image(tmp_path / "c.jpg")
    assert jpeg.pixels.ndim == 2 and jpeg.meta.source_format == "jpeg"
    assert jpeg.pixels.mean() == pytest.approx(0.299 * 200 / 255, abs=0.02)


def test_real_tbx11k_jpeg(shared_data: Path) -> None:
    image = read_image(shared_data / "cxr" / "tbx11k" / "images" / "tb0005.jpg")
    assert image.pixels.shape == (512, 512) and image.meta.original_size == (512, 512)


@pytest.mark.parametrize("bits", [8, 16])
def test_write_png_round_trip(tmp_path: Path, bits: int) -> None:
    pixels = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = write_png(pixels, tmp_path / f"out{bits}.png", bits=bits)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_allclose(read_image(path).pixels, pixels, atol=0.5 / (2**bits - 1) + 1e-7)
