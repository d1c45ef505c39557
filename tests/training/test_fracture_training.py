"""Fracture training parts: losses, augmentation, enhancement, config, and a tiny real run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from insightray.engine import load_predictor
from insightray.errors import ConfigError, InputNotFoundError
from insightray.imaging import write_png
from insightray.imaging.enhance import BoneEdgeEnhance, OtsuRoiCrop, RadiographEnhancement
from insightray.training.fracture import (
    AugmentSettings,
    FractureAugmentation,
    FractureTrainConfig,
    build_loss,
    config_from_dict,
    evaluate_folder,
    load_fracture_config,
    train_fracture,
    write_debug_images,
)
from tests.engine.fracture_helpers import make_labelled_folder, synthetic_radiograph

pytestmark = pytest.mark.usefixtures("one_thread")

LOGITS = torch.tensor([2.0, -1.0, 0.5, -3.0])
TARGETS = torch.tensor([1.0, 0.0, 0.0, 1.0])


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_focal_loss_matches_the_formula_with_inverse_frequency_alpha() -> None:
    loss = build_loss("focal", negatives=300, positives=100, focal_gamma=2.0)
    alpha = 300 / 400
    expected = []
    for logit, target in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True):
        p = 1 / (1 + math.exp(-logit))
        p_t = p if target else 1 - p
        weight = alpha if target else 1 - alpha
        expected.append(weight * (1 - p_t) ** 2 * _bce(logit, target))
    assert float(loss(LOGITS, TARGETS)) == pytest.approx(sum(expected) / 4, rel=1e-5)


def test_weighted_bce_and_label_smoothing_match_the_formulas() -> None:
    weighted = build_loss("weighted_bce", negatives=300, positives=100)
    expected = [
        (3.0 if t else 1.0) * _bce(x, t)
        for x, t in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True)
    ]
    assert float(weighted(LOGITS, TARGETS)) == pytest.approx(sum(expected) / 4, rel=1e-5)
    smooth = build_loss("smooth_bce", negatives=1, positives=1, label_smoothing=0.1)
    soft = [
        0.95 * _bce(x, 1) + 0.05 * _bce(x, 0) if t else 0.05 * _bce(x, 1) + 0.95 * _bce(x, 0)
        for x, t in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True)
    ]
    assert float(smooth(LOGITS, TARGETS)) == pytest.approx(sum(soft) / 4, rel=1e-5)
    plain = build_loss("bce", negatives=1, positives=1)
    assert float(plain(LOGITS, TARGETS)) == pytest.approx(
        sum(_bce(x, t) for x, t in zip(LOGITS.tolist(), TARGETS.tolist(), strict=True)) / 4
    )
    with pytest.raises(ConfigError):
        build_loss("dice", negatives=1, positives=1)
    with pytest.raises(ConfigError):
        build_loss("bce", negatives=0, positives=5)


def test_augmentation_is_seeded_and_stays_in_range() -> None:
    augment = FractureAugmentation(AugmentSettings(elastic=1.0))
    image = synthetic_radiograph(np.random.default_rng(0), True, (64, 64))
    first = augment(image, np.random.default_rng(5))
    assert np.array_equal(first, augment(image, np.random.default_rng(5)))
    assert not np.array_equal(first, augment(image, np.random.default_rng(6)))
    assert first.dtype == np.float32 and first.min() >= 0 and first.max() <= 1
    off = FractureAugmentation(AugmentSettings(enabled=False))
    assert off(image, np.random.default_rng(0)) is image


def test_flip_only_augmentation_flips_half_the_time() -> None:
    settings = AugmentSettings(
        rotation=0, translation=0, scale=(1, 1), elastic=0, brightness=0, gamma=(1, 1), noise=0
    )
    augment = FractureAugmentation(settings)
    image = np.zeros((8, 8), np.float32)
    image[:, :2] = 1.0
    rng = np.random.default_rng(0)
    flips = sum(augment(image, rng)[:, -1].mean() > 0.5 for _ in range(400))
    assert 160 < flips < 240
    with pytest.raises(ConfigError):
        AugmentSettings(flip=1.5)


def test_enhancement_steps_and_debug_images(tmp_path: Path) -> None:
    image = np.zeros((100, 80), np.float32)
    image[20:80, 30:50] = 0.8
    image[45:48, 30:50] = 0.2  # a "fracture" gap
    box = OtsuRoiCrop(margin=0.0).box(image)
    np.testing.assert_allclose(box, (20, 30, 80, 50), atol=1)
    assert OtsuRoiCrop(margin=0.1).box(image) == (box[0] - 6, box[1] - 2, box[2] + 6, box[3] + 2)
    assert OtsuRoiCrop()(np.zeros((10, 10), np.float32)).shape == (10, 10)
    edges = BoneEdgeEnhance(15)(image)
    assert edges.shape == image.shape and edges.min() >= 0 and edges.max() <= 1
    enhancement = RadiographEnhancement(gaussian=True, roi_crop=True, clahe=True, morphology=True)
    assert [name for name, _ in enhancement.steps()] == [
        "gaussian",
        "roi_crop",
        "clahe",
        "morphology",
    ]
    out, box = enhancement.apply(image)
    assert out.shape[0] < 100 and box[0] > 0
    source = write_png(image, tmp_path / "hand.png")
    written = write_debug_images(source, enhancement, tmp_path / "debug")
    assert [p.name for p in written] == [
        "hand_0_input.png",
        "hand_1_gaussian.png",
        "hand_2_roi_crop.png",
        "hand_3_clahe.png",
        "hand_4_morphology.png",
    ]
    with pytest.raises(ConfigError):
        RadiographEnhancement.from_dict({"sharpen": True})


def test_config_yaml_round_trip_and_errors(tmp_path: Path) -> None:
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        "model: resnet50_radiograph\nmodel_kwargs: {cbam_stages: [3]}\nloss: focal\n"
        "data: data\npreprocessing: {clahe: true}\naugment: {rotation: 10}\n"
    )
    config = load_fracture_config(config_file, epochs=2)
    assert config.data == str((tmp_path / "data").resolve())
    assert (config.epochs, config.loss, config.preprocessing.clahe) == (2, "focal", True)
    assert config.augment.rotation == 10.0
    for bad in ({"nope": 1}, {"loss": "dice"}, {"epochs": "many"}, {"augment": {"x": 1}}):
        with pytest.raises(ConfigError):
            config_from_dict(bad)
    with pytest.raises(InputNotFoundError):
        load_fracture_config(tmp_path / "missing.yaml")


def test_a_tiny_training_run_writes_a_usable_model(tmp_path: Path) -> None:
    data = make_labelled_folder(tmp_path / "data", count=24)
    config = FractureTrainConfig(
        data=str(data),
        model="efficientnet_lite0",
        image_size=48,
        max_steps=3,
        batch_size=4,
        eval_every=1,
        val_fraction=0.25,
        test_fraction=0.25,
        sampler="balanced",
        loss="focal",
        device="cpu",
        out=str(tmp_path / "run"),
        data_licence="synthetic",
    )
    lines: list[str] = []
    result = train_fracture(config, log=lines.append)
    assert result.steps == 3 and 1 <= result.best_step <= 3
    assert result.test is not None and result.test.images == 6
    card = json.loads(result.card_path.read_text())
    assert card["thresholds"]["operating_point"] == pytest.approx(result.val.threshold)
    assert card["explain"]["cam_layer"] == "_conv_head"
    assert {"val_auc", "val_auc_ci_low", "test_auc", "test_ece"} <= set(card["metrics"])
    run = tmp_path / "run"
    for name in ("metrics.csv", "summary.json", "split.json", "reliability_val.png"):
        assert (run / name).is_file()
    assert len((run / "metrics.csv").read_text().splitlines()) == 4
    split = json.loads((run / "split.json").read_text())
    assert not set(split["train"]) & set(split["val"] + split["test"])
    predictor = load_predictor(str(result.card_path), task="classification")
    scores = evaluate_folder(predictor, data, resamples=100)
    assert scores.evaluation.images == 24
    assert scores.evaluation.threshold == pytest.approx(predictor.threshold)
