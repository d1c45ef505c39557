"""K-fold cross-validation of the detector: folds partition the images, stratified by the
rare class; a tiny real run scores every fold and keeps the out-of-fold boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from insightray.cli import app
from insightray.errors import ConfigError
from insightray.training.detection.datasets import DetectionRecord
from insightray.training.detection.folds import assign_folds, mean_interval, prepare_folds


def _records(labels: list[list[int]]) -> list[DetectionRecord]:
    return [DetectionRecord(Path(f"{i}.png"), np.tile([0, 0, 5, 5], (len(c), 1)), c)
            for i, c in enumerate(labels)]  # fmt: skip


def test_folds_partition_the_images_and_spread_the_rare_class() -> None:
    rng = np.random.default_rng(1)
    labels = [[0] * int(rng.integers(1, 4)) + ([1] if i % 6 == 0 else []) for i in range(60)]
    labels[5] = []  # an image without boxes
    folds = assign_folds(_records(labels), 5, seed=3)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    assert [folds.count(k) for k in range(5)] == [12] * 5
    rare = [folds[i] for i, c in enumerate(labels) if 1 in c]
    assert sorted(rare.count(k) for k in range(5)) == [2, 2, 2, 2, 2]
    assert folds == assign_folds(_records(labels), 5, seed=3)  # reproducible
    with pytest.raises(ConfigError):
        assign_folds(_records(labels[:3]), 4)


def test_prepared_folds_never_share_an_image(tiny_data: Path, tmp_path: Path) -> None:
    folds = prepare_folds(tiny_data, 3, tmp_path)
    held_out = [set(fold.val) for fold in folds]
    every = set().union(*held_out)
    assert len(every) == 12 == sum(len(v) for v in held_out)  # each image in one fold only
    for fold in folds:
        assert not set(fold.train) & set(fold.val)
        assert set(fold.train) | set(fold.val) == every
        listed = (fold.folder / "val.txt").read_text().split()
        assert sorted(listed) == sorted(str(p) for p in fold.val)
    assert json.loads((tmp_path / "folds.json").read_text())["images"] == 12


def test_mean_interval_is_a_t_interval() -> None:
    summary = mean_interval([0.30, 0.35, 0.40, 0.45, 0.50])
    assert summary["mean"] == pytest.approx(0.40)
    assert summary["ci95"] == pytest.approx([0.3018, 0.4982], abs=1e-3)  # t(4) = 2.776
    assert mean_interval([0.3])["ci95"] is None


@pytest.mark.slow
def test_train_detect_folds_end_to_end(tiny_data: Path, tmp_path: Path, one_thread: None) -> None:
    out = tmp_path / "cv"
    args = ["train", "detect", "--data", str(tiny_data), "--model", "yolov5n", "--img", "64",
            "--epochs", "1", "--batch", "4", "--workers", "0", "--device", "cpu",
            "--out", str(out), "--folds", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "cv_summary.json").read_text())
    assert [row["fold"] for row in summary["per_fold"]] == [0, 1]
    assert summary["mean"]["map50"]["folds"] == 2
    assert summary["out_of_fold"]["images"] == 12
    oof = [
        row["image"] for k in (0, 1) for row in json.loads((out / f"fold{k}/oof.json").read_text())
    ]
    assert len(oof) == len(set(oof)) == 12  # every image predicted once, by the fold without it
    assert (out / "ensemble" / "card.json").is_file()
