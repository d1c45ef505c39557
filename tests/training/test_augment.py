"""Tests for box-aware detection augmentation (insightray.training.augment)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from insightray.errors import ConfigError
from insightray.training.augment import (
    AugmentConfig,
    BoxFilter,
    Compose,
    HorizontalFlip,
    IntensityJitter,
    MixUp,
    Mosaic,
    RandomAffine,
    Sample,
    affine_matrix,
    apply_affine,
    build_augmentations,
    crop,
    inverse_frequency_image_weights,
    letterbox,
    warp_image,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _marked(shape: tuple[int, int], box: tuple[int, int, int, int], label: int = 1) -> Sample:
    """A black image with the pixels of ``box`` set to 1, and that box."""
    image = np.zeros(shape, np.float32)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 1.0
    return Sample(image, np.array([box], np.float32), np.array([label]))


def _sixteen_bit(height: int = 96, width: int = 96) -> Sample:
    """A smooth gradient whose values are distinct multiples of 1/65535 (a 16-bit source)."""
    levels = np.arange(height * width, dtype=np.int64).reshape(height, width) * 3 + 1000
    image = (levels / 65535.0).astype(np.float32)
    return Sample(image, np.array([[10, 10, 60, 70]], np.float32), np.array([0]))


def _off_byte_grid(image: NDArray[np.float32]) -> float:
    """Fraction of pixels that are not a multiple of 1/255 (0 for an 8-bit-quantised image)."""
    scaled = image.astype(np.float64) * 255.0
    return float(np.mean(np.abs(scaled - np.round(scaled)) > 1e-3))


# --- Sample ------------------------------------------------------------------------------------


def test_sample_coerces_boxes_and_labels_and_rejects_bad_input() -> None:
    s = Sample(np.zeros((5, 6), np.float32), [[0, 0, 1, 1]], [2])
    assert s.boxes.dtype == np.float32 and s.boxes.shape == (1, 4)
    assert s.labels.dtype == np.int64
    assert Sample(np.zeros((5, 6), np.float32), [], []).boxes.shape == (0, 4)
    with pytest.raises(ValueError):
        Sample(np.zeros((5, 6), np.uint16), [], [])
    with pytest.raises(ValueError):
        Sample(np.zeros((5, 6), np.float32), [[0, 0, 1, 1]], [1, 2])
    with pytest.raises(ValueError):
        Sample(np.zeros((5, 6), np.float32), [[0, 0, 1, 1, 1]], [1])


# --- flip ----------------------------------------------------------------------------------------


def test_flip_moves_boxes_exactly_with_the_pixels() -> None:
    s = _marked((40, 50), (3, 5, 17, 30))
    out = HorizontalFlip(p=1.0)(s, _rng())
    np.testing.assert_array_equal(out.boxes, [[50 - 17, 5, 50 - 3, 30]])
    np.testing.assert_array_equal(out.image, s.image[:, ::-1])
    x1, y1, x2, y2 = out.boxes[0].astype(int)
    assert out.image[y1:y2, x1:x2].min() == 1.0 and out.image.sum() == (x2 - x1) * (y2 - y1)
    back = HorizontalFlip(p=1.0)(out, _rng())
    np.testing.assert_array_equal(back.boxes, s.boxes)


def test_flip_probability_zero_is_a_no_op() -> None:
    s = _marked((10, 10), (1, 1, 4, 4))
    assert HorizontalFlip(p=0.0)(s, _rng()) is s


# --- affine --------------------------------------------------------------------------------------


def test_translation_matrix_shifts_boxes_and_pixels_by_the_translation() -> None:
    s = _marked((64, 64), (10, 12, 30, 40))
    matrix = affine_matrix((64, 64), (64, 64), translation=(7.0, -3.0))
    out = apply_affine(s, matrix, (64, 64))
    np.testing.assert_allclose(out.boxes, [[17, 9, 37, 37]], atol=1e-5)
    np.testing.assert_allclose(out.image[9:37, 17:37], 1.0, atol=1e-6)
    assert out.image.sum() == pytest.approx(20 * 28, abs=1e-3)


def test_random_affine_translation_only_shifts_all_boxes_by_one_vector() -> None:
    image = np.zeros((80, 80), np.float32)
    image[20:30, 20:30] = 1.0
    boxes = np.array([[20, 20, 30, 30], [40, 35, 60, 55]], np.float32)
    s = Sample(image, boxes, np.array([0, 1]))
    affine = RandomAffine(degrees=0, translate=0.1, scale=0, shear=0)
    for seed in range(5):
        out = affine(s, _rng(seed))
        assert len(out) == 2
        shift = out.boxes - boxes
        np.testing.assert_allclose(shift[:, 0], shift[:, 2], atol=1e-4)
        np.testing.assert_allclose(shift[:, 1], shift[:, 3], atol=1e-4)
        np.testing.assert_allclose(shift[0], shift[1], atol=1e-4)
        assert np.abs(shift).max() <= 8.0 + 1e-4
        # The marked square's centre of mass moves by the same vector as its box.
        rows, cols = np.indices(out.image.shape)
        mass = out.image.sum()
        centre = np.array([(cols * out.image).sum() / mass, (rows * out.image).sum() / mass])
        np.testing.assert_allclose(centre + 0.5, [25 + shift[0, 0], 25 + shift[0, 1]], atol=0.02)


def test_rotation_by_90_degrees_maps_box_to_expected_box() -> None:
    s = _marked((100, 100), (10, 20, 30, 60))
    matrix = affine_matrix((100, 100), (100, 100), angle=90.0)
    out = apply_affine(s, matrix, (100, 100))
    # Counter-clockwise on screen about (50, 50): (x, y) -> (y, 100 - x).
    np.testing.assert_allclose(out.boxes, [[20, 70, 60, 90]], atol=1e-4)
    expected = np.zeros((100, 100), np.float32)
    expected[70:90, 20:60] = 1.0
    np.testing.assert_allclose(out.image, expected, atol=1e-4)


def test_affine_drops_boxes_pushed_mostly_outside() -> None:
    boxes = np.array([[2, 10, 12, 20], [40, 40, 60, 60]], np.float32)
    s = Sample(np.zeros((64, 64), np.float32), boxes, np.array([3, 4]))
    matrix = affine_matrix((64, 64), (64, 64), translation=(-11.5, 0.0))
    out = apply_affine(s, matrix, (64, 64))
    assert out.labels.tolist() == [4]  # the first box kept only 0.5 px of width
    np.testing.assert_allclose(out.boxes, [[28.5, 40, 48.5, 60]], atol=1e-4)


def test_box_filter_rules() -> None:
    before = np.array([[0, 0, 100, 100]] * 4, np.float32)
    after = np.array([[0, 0, 100, 100], [0, 0, 5, 5], [0, 0, 1.5, 100], [0, 0, 100, 4]], np.float32)
    # kept; 0.25 % of the area; narrower than 2 px; aspect ratio 25.
    assert BoxFilter()(before, after).tolist() == [True, False, False, False]
    assert BoxFilter(min_area_ratio=0.0, min_size=0.0, max_aspect_ratio=100.0)(before, after).all()


def test_warp_keeps_channel_layouts() -> None:
    matrix = affine_matrix((16, 16), (8, 12), angle=10.0)
    for channels in ((), (1,), (3,), (6,)):
        image = np.random.default_rng(0).random((16, 16, *channels), dtype=np.float32)
        out = warp_image(image, matrix, (8, 12))
        assert out.shape == (8, 12, *channels) and out.dtype == np.float32
    six = np.random.default_rng(1).random((16, 16, 6), dtype=np.float32)
    np.testing.assert_array_equal(
        warp_image(six, matrix, (8, 12))[..., 5], warp_image(six[..., 5], matrix, (8, 12))
    )


# --- intensity -----------------------------------------------------------------------------------


def test_intensity_jitter_stays_in_unit_range_and_keeps_boxes() -> None:
    s = _sixteen_bit()
    jitter = IntensityJitter(brightness=0.5, contrast=0.8, gamma=1.0, p=1.0)
    for seed in range(10):
        out = jitter(s, _rng(seed))
        assert out.image.dtype == np.float32
        assert out.image.min() >= 0.0 and out.image.max() <= 1.0
        np.testing.assert_array_equal(out.boxes, s.boxes)
    assert IntensityJitter(p=0.0)(s, _rng()) is s


# --- 16-bit precision ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        HorizontalFlip(p=1.0),
        RandomAffine(degrees=10, translate=0.1, scale=0.3, shear=5),
        IntensityJitter(brightness=0.05, contrast=0.1, gamma=0.2, p=1.0),
    ],
    ids=["flip", "affine", "intensity"],
)
def test_sixteen_bit_values_are_not_quantised_to_256_levels(transform: object) -> None:
    s = _sixteen_bit()
    out = Compose([transform])(s, _rng(3))  # type: ignore[list-item]
    assert out.image.dtype == np.float32
    assert np.unique(out.image).size > 4000  # far more than 256 levels survive
    assert _off_byte_grid(out.image) > 0.9


def test_flip_preserves_sixteen_bit_values_exactly() -> None:
    s = _sixteen_bit()
    out = HorizontalFlip(p=1.0)(s, _rng())
    np.testing.assert_array_equal(np.sort(out.image, axis=None), np.sort(s.image, axis=None))


# --- mosaic --------------------------------------------------------------------------------------


def _tiles(size: int = 64) -> list[Sample]:
    """Four constant tiles of different shapes and values; tile k has one full box, label k + 10."""
    shapes = [(size, size), (size // 2, size), (size, size // 2), (3 * size // 4, size)]
    tiles = []
    for k, (h, w) in enumerate(shapes):
        image = np.full((h, w), (k + 1) / 5.0, np.float32)
        tiles.append(Sample(image, np.array([[0, 0, w, h]], np.float32), np.array([k + 10])))
    return tiles


def test_mosaic_output_size_bounds_and_labels() -> None:
    tiles = _tiles()
    mosaic = Mosaic(output_size=64, scale_range=(0.7, 1.3), affine=RandomAffine(degrees=5))
    for seed in range(8):
        out = mosaic(tiles, _rng(seed))
        assert out.image.shape == (64, 64) and out.image.dtype == np.float32
        assert len(out) >= 1
        assert set(out.labels.tolist()) <= {10, 11, 12, 13}
        assert (out.boxes >= 0).all() and (out.boxes[:, [0, 2]] <= 64).all()
        assert (out.boxes[:, [1, 3]] <= 64).all()
        assert (out.boxes[:, 2] > out.boxes[:, 0]).all() and (
            out.boxes[:, 3] > out.boxes[:, 1]
        ).all()


def test_mosaic_boxes_cover_the_pixels_of_their_own_tile() -> None:
    tiles = _tiles()
    mosaic = Mosaic(output_size=64, scale_range=(0.8, 1.2), affine=None)
    seen: set[int] = set()
    for seed in range(12):
        out = mosaic(tiles, _rng(seed))
        assert out.image.shape == (64, 64)
        for box, label in zip(out.boxes, out.labels, strict=True):
            x1, y1, x2, y2 = np.round(box).astype(int)
            np.testing.assert_allclose(box, [x1, y1, x2, y2], atol=1e-3)  # integer placement
            np.testing.assert_allclose(out.image[y1:y2, x1:x2], (label - 10 + 1) / 5.0, atol=1e-6)
            seen.add(int(label))
    assert seen == {10, 11, 12, 13}


def test_mosaic_keeps_channels_and_rejects_wrong_input() -> None:
    rgb = [Sample(np.full((32, 40, 3), 0.5, np.float32), [[1, 1, 30, 30]], [0])] * 4
    assert Mosaic(output_size=32)(rgb, _rng()).image.shape == (32, 32, 3)
    with pytest.raises(ValueError):
        Mosaic(output_size=32)(rgb[:3], _rng())
    gray = Sample(np.zeros((32, 40), np.float32), [], [])
    with pytest.raises(ValueError):
        Mosaic(output_size=32)([*rgb[:3], gray], _rng())


# --- mixup ---------------------------------------------------------------------------------------


def test_mixup_blends_with_beta_lambda_and_unions_boxes() -> None:
    a = Sample(np.full((16, 16), 0.2, np.float32), [[0, 0, 4, 4]], [1])
    b = Sample(np.full((16, 16), 0.8, np.float32), [[5, 5, 9, 9], [1, 2, 3, 4]], [2, 3])
    out = MixUp(alpha=32.0)(a, b, _rng(42))
    lam = np.float32(_rng(42).beta(32.0, 32.0))
    np.testing.assert_allclose(out.image, lam * 0.2 + (1 - lam) * 0.8, rtol=1e-6)
    np.testing.assert_array_equal(out.boxes, np.concatenate([a.boxes, b.boxes]))
    assert out.labels.tolist() == [1, 2, 3]
    assert out.image.dtype == np.float32
    with pytest.raises(ValueError):
        MixUp()(a, Sample(np.zeros((8, 8), np.float32), [], []), _rng())


# --- resize helpers ------------------------------------------------------------------------------


def test_letterbox_and_crop_move_boxes_with_pixels() -> None:
    s = _marked((40, 80), (8, 4, 24, 20))
    boxed = letterbox(s, 160)
    assert boxed.image.shape == (160, 160)
    np.testing.assert_allclose(boxed.boxes, [[16, 48, 48, 80]])
    np.testing.assert_allclose(boxed.image[49:79, 17:47], 1.0, atol=1e-6)  # interior: 2x upsample
    assert boxed.image[:46].max() == 0.0 and boxed.image[82:].max() == 0.0
    cut = crop(s, (-4, 2, 20, 20))
    np.testing.assert_array_equal(cut.boxes, [[12, 2, 20, 18]])
    assert cut.image[2:18, 12:20].min() == 1.0


# --- pipeline ------------------------------------------------------------------------------------


def _dataset(n: int = 6) -> list[Sample]:
    gen = _rng(123)
    data = []
    for k in range(n):
        h, w = int(gen.integers(48, 96)), int(gen.integers(48, 96))
        image = gen.random((h, w), dtype=np.float32)
        data.append(
            Sample(image, [[5, 5, w // 2, h // 2], [w // 3, h // 3, w - 2, h - 2]], [k % 3, 2])
        )
    return data


def test_pipeline_same_seed_same_output_and_valid_result() -> None:
    data = _dataset()
    augment = build_augmentations(AugmentConfig(output_size=64, mixup=0.5, degrees=10, shear=2))
    first = [augment(data, i, _rng(i)) for i in range(4)]
    second = [augment(data, i, _rng(i)) for i in range(4)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.image.shape == (64, 64) and a.image.min() >= 0.0 and a.image.max() <= 1.0
        assert (a.boxes >= 0).all() and (a.boxes <= 64).all()
        assert set(a.labels.tolist()) <= {0, 1, 2}
    other = augment(data, 0, _rng(1000))
    assert not np.array_equal(other.image, first[0].image)


def test_pipeline_without_mosaic_letterboxes_and_can_be_switched_off() -> None:
    data = _dataset()
    off = AugmentConfig(output_size=96, mosaic=0.0, affine=0.0, flip=0.0, intensity=0.0)
    out = build_augmentations(off)(data, 2, _rng())
    expected = letterbox(data[2], 96, off.border_value)
    np.testing.assert_array_equal(out.image, expected.image)
    np.testing.assert_array_equal(out.boxes, expected.boxes)


def test_config_rejects_out_of_range_values() -> None:
    with pytest.raises(ConfigError):
        AugmentConfig(mosaic=1.5)
    with pytest.raises(ConfigError):
        build_augmentations(AugmentConfig(scale=1.0))
    with pytest.raises(ConfigError):
        HorizontalFlip(p=-0.1)


# --- sampler weights -----------------------------------------------------------------------------


def test_sampler_weights_favour_images_with_rare_classes() -> None:
    labels = [[0], [0, 0], [0], [0], [1], [0, 1], [], []]
    weights = inverse_frequency_image_weights(labels, num_classes=2)
    assert weights.shape == (8,) and (weights > 0).all()
    assert weights[4] > weights[5] > weights[0]
    assert weights[0] == pytest.approx(weights[1])  # box multiplicity does not count
    assert np.mean(weights[:6]) == pytest.approx(1.0)
    assert weights[6] == weights[7] > 0
    zero_empty = inverse_frequency_image_weights(labels, 2, empty_weight=0.0)
    assert zero_empty[6] == 0.0
    summed = inverse_frequency_image_weights(labels, 2, reduction="sum")
    assert summed[5] > summed[4]
    assert inverse_frequency_image_weights([[], []], 3).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        inverse_frequency_image_weights([[3]], num_classes=2)
