"""Preprocessing transforms keep float32 precision and map boxes back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from insightray.errors import ConfigError
from insightray.imaging import Window
from insightray.imaging.transforms import (
    Clahe,
    Compose,
    GaussianDenoise,
    NormalizeIntensity,
    ToChannels,
    Windowing,
    letterbox,
)
from insightray.imaging.windowing import apply_window


def _ramp(rows: int = 128, cols: int = 96) -> np.ndarray:
    # A smooth 16-bit-like ramp: more distinct levels than 8 bits can hold.
    return np.linspace(0.2, 0.3, rows * cols, dtype=np.float32).reshape(rows, cols)


def test_clahe_keeps_16_bit_depth_and_parameters_matter() -> None:
    # A 12-bit image with a peaked histogram (so the clip limit bites) and a narrow range.
    rng = np.random.default_rng(0)
    noise = GaussianDenoise(sigma=3.0)(rng.standard_normal((512, 384)).astype(np.float32))
    image = (np.round((0.25 + 0.05 * noise) * 4095) / 4095).astype(np.float32)
    out = Clahe(clip_limit=2.0, tile_grid=(4, 4))(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert len(np.unique(out)) > 1000  # an 8-bit path would leave at most 256 levels
    assert out.std() > image.std()  # the narrow range is stretched
    assert not np.allclose(out, Clahe(clip_limit=8.0, tile_grid=(4, 4))(image))
    assert not np.allclose(out, Clahe(clip_limit=2.0, tile_grid=(2, 8))(image))
    with pytest.raises(ConfigError):
        Clahe(clip_limit=0)


def test_clahe_matches_classic_8_bit_clahe_in_effect() -> None:
    import cv2

    rng = np.random.default_rng(1)
    noise = GaussianDenoise(sigma=8.0)(rng.standard_normal((512, 512)).astype(np.float32))
    image = np.clip(0.5 + 2.0 * noise, 0, 1).astype(np.float32)
    classic = cv2.createCLAHE(2.0, (8, 8)).apply(np.rint(image * 255).astype(np.uint8)) / 255
    ours = Clahe(2.0, (8, 8))(image)
    assert np.corrcoef(classic.ravel(), ours.ravel())[0, 1] > 0.98
    assert len(np.unique(ours)) > 16 * len(np.unique(classic))


def test_gaussian_denoise_reduces_noise() -> None:
    rng = np.random.default_rng(0)
    noisy = (0.5 + 0.1 * rng.standard_normal((128, 128))).astype(np.float32)
    smooth = GaussianDenoise(sigma=1.0)(noisy)
    assert smooth.dtype == np.float32
    assert smooth.std() < 0.5 * noisy.std()
    assert smooth.mean() == pytest.approx(noisy.mean(), abs=1e-3)


def test_windowing_and_normalisation() -> None:
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32)
    out = Windowing(40, 400)(hu)
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1], atol=1e-6)
    np.testing.assert_allclose(Windowing(40, 400, invert=True)(hu), 1 - out, atol=1e-6)
    np.testing.assert_allclose(apply_window(hu, Window(40, 400, "SIGMOID"))[2], 0.5, atol=1e-6)
    spread = NormalizeIntensity(1, 99)(np.arange(101, dtype=np.float32))
    assert spread[0] == 0.0 and spread[-1] == 1.0 and spread[50] == pytest.approx(0.5)


def test_to_channels_and_compose_order() -> None:
    image = _ramp(8, 8)
    chw = ToChannels(3)(image)
    assert chw.shape == (3, 8, 8) and np.array_equal(chw[2], image)
    pipeline = Compose([Windowing(0.25, 0.1), ToChannels(1)])
    assert pipeline(image).shape == (1, 8, 8)


@pytest.mark.parametrize("shape, size", [((1955, 1841), 640), ((300, 1000), 512), ((64, 64), 96)])
def test_letterbox_boxes_map_back_exactly(shape: tuple[int, int], size: int) -> None:
    image = np.zeros(shape, dtype=np.float32)
    boxed, info = letterbox(image, size)
    assert boxed.shape == (size, size) and info.original_size == shape
    rows, cols = shape
    boxes = np.array(
        [[cols * 0.1, rows * 0.2, cols * 0.7 + 0.5, rows * 0.33 + 0.25], [0, 0, cols, rows]],
        dtype=np.float32,
    )
    forward = info.to_letterbox(boxes)
    np.testing.assert_allclose(info.to_original(forward), boxes, atol=1e-3)
    # The full-image box lands exactly on the resized content, inside the padding.
    left, top = info.pad
    assert forward[1, 0] == pytest.approx(left) and forward[1, 1] == pytest.approx(top)


def test_letterbox_content_is_centred_and_padded() -> None:
    image = np.ones((100, 200), dtype=np.float32)
    boxed, info = letterbox(image, 64, pad_value=0.0)
    assert info.pad == (0, 16)
    assert boxed[:16].max() == 0 and boxed[16:48].min() == pytest.approx(1.0)
