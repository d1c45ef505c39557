"""Detector training: schedule, accumulation, EMA, evaluation, a real tiny run and resume."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from torch import nn

from insightray.engine import DetectionPredictor, load_model
from insightray.errors import ConfigError, InputNotFoundError
from insightray.imaging.transforms import letterbox
from insightray.models import ModelCard, Thresholds, load_card
from insightray.monitoring.profile import load_profile
from insightray.training.augment import AugmentConfig
from insightray.training.detection import (
    DetectionTrainData,
    EpochSampler,
    ModelEma,
    TrainConfig,
    accumulation_steps,
    build_optimizer,
    config_from_dict,
    config_to_dict,
    evaluate_detector,
    load_data_split,
    load_train_config,
    lr_factor,
    step_settings_for,
    train_detector,
)
from insightray.training.detection.datasets import DetectionDataset
from insightray.training.detection.trainer import _epochs_within_limit

#: Every augmentation stage off: the overfitting run must see the same images every step.
NO_AUGMENT = AugmentConfig(mosaic=0.0, affine=0.0, flip=0.0, intensity=0.0)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_config(data: Path | str | dict[str, object], out: Path, **changes: object) -> TrainConfig:
    values: dict[str, object] = {
        "data": data if isinstance(data, dict) else str(data),
        "model": "yolov5n",
        "image_size": 64,
        "epochs": 1,
        "batch_size": 4,
        "workers": 0,
        "device": "cpu",
        "out": str(out),
    }
    values.update(changes)
    return TrainConfig(**values)  # type: ignore[arg-type]


def _losses(metrics_csv: Path) -> list[float]:
    with metrics_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    return [sum(float(row[k]) for k in ("box_loss", "obj_loss", "cls_loss")) for row in rows]


# --- schedule, accumulation, EMA ------------------------------------------------------------


def test_warmup_then_cosine_and_linear_follow_the_formula() -> None:
    config = TrainConfig(
        epochs=10, lr0=0.01, lrf=0.02, schedule="cosine", warmup_epochs=2, batch_size=16
    )
    per_epoch = 50  # warm-up lasts 100 iterations
    start = step_settings_for(config, 0, 0, per_epoch)
    assert start.lr == {"bias": 0.1, "decay": 0.0, "no_decay": 0.0}
    assert start.momentum == pytest.approx(0.8) and start.accumulate == 1
    middle = step_settings_for(config, 75, 1, per_epoch)
    target = 0.01 * ((1 - math.cos(math.pi * 1 / 10)) / 2 * (0.02 - 1) + 1)
    assert middle.lr["bias"] == pytest.approx(0.1 + 0.75 * (target - 0.1))
    assert middle.lr["decay"] == pytest.approx(0.75 * target)
    assert middle.momentum == pytest.approx(0.8 + 0.75 * (0.937 - 0.8))
    assert middle.accumulate == round(1 + 0.75 * 3)
    after = step_settings_for(config, 260, 5, per_epoch)
    cosine = 0.01 * ((1 - math.cos(math.pi * 5 / 10)) / 2 * (0.02 - 1) + 1)
    assert after.lr == dict.fromkeys(("bias", "decay", "no_decay"), pytest.approx(cosine))
    assert after.momentum == 0.937
    linear = TrainConfig(epochs=10, lr0=0.01, lrf=0.02, schedule="linear", warmup_epochs=0)
    assert step_settings_for(linear, 0, 4, per_epoch).lr["decay"] == pytest.approx(
        0.01 * ((1 - 4 / 10) * (1 - 0.02) + 0.02)
    )
    assert lr_factor(10, 10, 0.02, "cosine") == pytest.approx(0.02)


def test_accumulation_reaches_the_nominal_batch() -> None:
    config = TrainConfig(batch_size=16, nominal_batch=64, warmup_epochs=0)
    assert step_settings_for(config, 5, 0, 10).accumulate == 64 // 16 == 4
    assert accumulation_steps(64, 8) == 8 and accumulation_steps(64, 100) == 1


def test_optimizer_groups_leave_batch_norm_and_biases_undecayed() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    optimizer = build_optimizer(model, 0.01, 0.9, 5e-4, nominal_batch=64, batch_size=16)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert len(groups["bias"]["params"]) == 3 and groups["bias"]["weight_decay"] == 0
    assert len(groups["no_decay"]["params"]) == 1 and groups["no_decay"]["weight_decay"] == 0
    assert len(groups["decay"]["params"]) == 2 and groups["decay"]["weight_decay"] == 5e-4
    assert optimizer.defaults["nesterov"] is True


def test_ema_follows_the_model_with_the_ramped_decay() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = ModelEma(model, decay=0.9999, tau=2000)
    before = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.updates == 1
    assert torch.allclose(ema.module.weight, d * before + (1 - d) * model.weight)
    assert not torch.equal(ema.module.weight, model.weight)
    assert not any(p.requires_grad for p in ema.module.parameters())


# --- config -------------------------------------------------------------------------------


def test_config_yaml_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    config = TrainConfig(data="d.yaml", image_size=128, augment=AugmentConfig(mosaic=0.5))
    assert config.augment.output_size == 128 and config.loss.img_size == 128
    assert config_from_dict(config_to_dict(config)) == config
    path = tmp_path / "train.yaml"
    path.write_text("model: yolov5n\nepochs: 3\ndata: data.yaml\naugment: {mixup: 0.1}\n")
    loaded = load_train_config(path, epochs=5, batch_size=None)
    assert (loaded.epochs, loaded.augment.mixup) == (5, 0.1)
    assert loaded.data == str(tmp_path / "data.yaml")
    path.write_text("model: yolov5n\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_train_config(path)
    path.write_text("augment: {mosiac: 0.5}\n")
    with pytest.raises(ConfigError, match="mosiac"):
        load_train_config(path)
    with pytest.raises(ConfigError, match="image_size"):
        TrainConfig(image_size=100)


# --- evaluation -----------------------------------------------------------------------------


class GroundTruthBackend:
    """Returns each image's ground truth as confident predictions, plus faint noise boxes."""

    input_channels = 3
    input_size = None

    def __init__(self, dataset: DetectionDataset, side: int) -> None:
        self.records = iter(dataset.records)
        self.side = side
        self.num_classes = len(dataset.class_names)

    def __call__(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        outputs = []
        for _ in range(len(batch)):
            record = next(self.records)
            assert record.image_size is not None
            _, info = letterbox(np.zeros(record.image_size, np.float32), self.side)
            boxes = info.to_letterbox(record.boxes)
            rows = np.zeros((20, 5 + self.num_classes), np.float32)
            rows[:, :4] = (5.0, 5.0, 4.0, 4.0)  # tiny boxes that match nothing
            rows[:, 4], rows[:, 5] = 0.01, 1.0
            for k, (box, label) in enumerate(zip(boxes, record.labels, strict=True)):
                rows[k, :4] = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, *(box[2:] - box[:2]))
                rows[k, 4], rows[k, 5:] = 0.95, 0.0
                rows[k, 5 + label] = 1.0
            outputs.append(rows)
        return np.stack(outputs)


def test_perfect_predictions_score_map_one(tiny_data: Path) -> None:
    val = load_data_split(tiny_data, "val")
    metrics = evaluate_detector(GroundTruthBackend(val, 64), val, 64, batch_size=3)
    assert metrics.images == len(val) == 4
    assert metrics.map40 == metrics.map50 == pytest.approx(1.0)
    assert metrics.map50_95 == pytest.approx(1.0)
    card = ModelCard("yolov5n", "detection", "0", tuple(val.class_names), (64, 64))
    predictor = DetectionPredictor(GroundTruthBackend(val, 64), card, conf_threshold=0.5)
    assert evaluate_detector(predictor, val).map50 == pytest.approx(1.0)


# --- real runs ----------------------------------------------------------------------------


def test_tiny_run_writes_everything_and_resumes(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 8 images in batches of 2 with a nominal batch of 4: 4 iterations, 2 optimiser steps.
    config = _tiny_config(tiny_data, out, batch_size=2, nominal_batch=4, warmup_epochs=0)
    first = train_detector(config)
    for name in ("last.pt", "best.pt", "metrics.csv", "loss.png", "map.png", "pr_curves.png"):
        assert (out / name).is_file(), name
    assert (out / "anchors.json").is_file()
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["epoch"] == 0 and saved["ema_updates"] == 2
    model_weights, ema_weights = saved["model"], saved["ema"]
    assert any(not torch.equal(model_weights[k], ema_weights[k]) for k in model_weights)
    card = load_card(first.card_path)
    assert card.labels == ("ActiveTuberculosis", "ObsoletePulmonaryTuberculosis")
    assert card.thresholds == Thresholds(confidence=0.25, iou=0.45) and "map50" in card.metrics
    detector = load_model(card, first.card_path.parent / str(card.weights_file))
    assert isinstance(detector, nn.Module)
    with pytest.raises(ConfigError, match="already exists"):
        train_detector(config)

    resumed = train_detector(
        _tiny_config(tiny_data, out, batch_size=2, nominal_batch=4, warmup_epochs=0, epochs=2),
        resume=True,
    )
    assert resumed.epochs_completed == 2
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["ema_updates"] == 4
    with (out / "metrics.csv").open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    with pytest.raises(InputNotFoundError):
        train_detector(_tiny_config(tiny_data, tmp_path / "none"), resume=True)


def test_time_limit_cuts_the_epochs_and_the_schedule(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "limited"
    # 0.001 min (60 ms) is spent before the first epoch ends: the run stops after it.
    result = train_detector(_tiny_config(tiny_data, out, epochs=50, time_limit_min=0.001))
    assert result.epochs_completed == 1 and (out / "model" / "card.json").is_file()
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["epoch"] == 0 and saved["config"]["epochs"] == 1
    with pytest.raises(ConfigError, match="time_limit_min"):
        TrainConfig(time_limit_min=-1)


def test_time_limit_replans_at_the_recent_pace() -> None:
    config = TrainConfig(epochs=150, time_limit_min=10)
    began = time.monotonic() - 100  # 500 s left
    # The slow first epoch (autotuning) is left out; then the last five epochs set the pace.
    assert _epochs_within_limit(config, 150, 1, [60.0], began) == 150
    assert _epochs_within_limit(config, 150, 3, [60.0, 10.0, 10.0], began) == 3 + 49
    assert _epochs_within_limit(config, 150, 7, [60.0] + [10.0] + [2.0] * 5, began) == 150
    assert _epochs_within_limit(config, 150, 2, [60.0], time.monotonic() - 700) == 2


def test_epoch_sampler_drives_the_augmentation_seed(tiny_data: Path) -> None:
    data = DetectionTrainData(load_data_split(tiny_data, "train"), 64, augment=AugmentConfig())
    same = [data[(3, 1)][0] for _ in range(2)]
    assert torch.equal(same[0], same[1]) and torch.equal(data[1][0], data[(0, 1)][0])
    assert not torch.equal(data[(3, 1)][0], data[(4, 1)][0])
    cached = DetectionTrainData(
        load_data_split(tiny_data, "train"), 64, augment=AugmentConfig(), cache=True
    )
    assert torch.equal(cached[(3, 1)][0], same[0])  # the in-memory copy changes nothing
    sampler = EpochSampler(lambda epoch: [epoch, epoch + 1])
    sampler.set_epoch(5)
    assert list(sampler) == [(5, 5), (5, 6)] and len(sampler) == 2


def test_torchrun_trains_with_two_processes(tiny_data: Path, tmp_path: Path) -> None:
    """DDP as users launch it: torchrun, two CPU processes (gloo); rank 0 alone writes, the
    reference profile included (12 training images: the profile needs at least 10)."""
    data = _more_training_images(tiny_data, tmp_path / "data", 12)
    out = tmp_path / "ddp"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "insightray.cli", "train", "detect", "--data", str(data)),
        *("--model", "yolov5n", "--img", "64", "--epochs", "2", "--batch", "4", "--workers", "0"),
        *("--device", "cpu", "--out", str(out)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = torch.load(out / "last.pt", weights_only=True)
    # 12 images, 2 per process per step: 3 steps per epoch in each of the two processes
    assert saved["epoch"] == 1 and (out / "model" / "card.json").is_file()
    assert _losses(out / "metrics.csv") and done.stdout.count("best epoch") == 1
    assert done.stdout.count("reference profile of 12 training images") == 1
    profile = load_profile(out / "model" / "card.json")
    assert profile is not None and len(profile.table) == 12
    assert "output_boxes" in profile.table.continuous


def _more_training_images(tiny_data: Path, folder: Path, count: int) -> Path:
    """``tiny_data`` with ``count`` TBX11K training images instead of 8."""
    root = tiny_data.parent
    listed = (root / "train.txt").read_text().split()
    tbx11k = Path(listed[0]).parents[1]
    entries = (tbx11k / "train_list.txt").read_text().split()[:count]
    folder.mkdir()
    (folder / "train.txt").write_text("".join(f"{tbx11k / e}\n" for e in entries))
    (folder / "val.txt").write_text((root / "val.txt").read_text())
    (folder / "data.yaml").write_text((tiny_data).read_text())
    return folder / "data.yaml"


def test_overfitting_a_tiny_set_lowers_the_loss(tiny_data: Path, tmp_path: Path) -> None:
    config = _tiny_config(
        tiny_data,
        tmp_path / "overfit",
        epochs=20,
        batch_size=8,
        nominal_batch=8,
        lr0=0.1,
        warmup_epochs=0,
        ema=False,
        autoanchor=False,
        val_interval=20,
        augment=NO_AUGMENT,
    )
    train_detector(config)
    losses = _losses(tmp_path / "overfit" / "metrics.csv")  # one optimiser step per epoch
    assert len(losses) == 20
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.85 * first, losses


def test_vinbigdata_trains_one_epoch_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "cxr" / "vinbigdata_sample"
    if not (root / "train_subset_12.csv").is_file():
        pytest.skip("VinBigData sample not found")
    spec = tmp_path / "vinbigdata.yaml"
    spec.write_text(
        f"format: vinbigdata\ncsv: {root / 'train_subset_12.csv'}\nimages: {root / 'images'}\n"
        f"orig_dims: {root / 'orig_dims.csv'}\nval_fraction: 0.25\n"
    )
    result = train_detector(_tiny_config(spec, tmp_path / "vbd", data_licence="VinDr-CXR"))
    card = load_card(result.card_path)
    assert len(card.labels) == 14 and card.data_licence == "VinDr-CXR"
    with (tmp_path / "vbd" / "metrics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 1
