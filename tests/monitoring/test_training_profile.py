"""``insightray train fracture`` leaves a reference profile beside the model it trained (from
its training split), usable by the out-of-distribution guard; ``--no-profile`` leaves none.
A tiny run on 32 real bone X-rays (the detector's, under torchrun, is in
``tests/training/test_detection_trainer.py``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insightray.cli import app
from insightray.config import data_root
from insightray.engine import load_predictor
from insightray.imaging import read_image
from insightray.monitoring.guard import OodGuard
from insightray.monitoring.profile import load_profile

pytestmark = pytest.mark.usefixtures("one_thread")

FRACTURE = data_root() / "fracture" / "bone_fracture_roboflow"


def _real_subset(folder: Path, per_class: int = 16) -> Path:
    """A CSV of the first ``per_class`` images of each class (absolute paths)."""
    with (FRACTURE / "images.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    chosen = [r for r in rows if r["fractured"] == "0"][:per_class]
    chosen += [r for r in rows if r["fractured"] == "1"][:per_class]
    folder.mkdir(parents=True)
    target = folder / "subset.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "group", "fractured"])
        writer.writeheader()
        for row in chosen:
            path = str(FRACTURE / row["image"])
            writer.writerow({"path": path, "group": row["group"], "fractured": row["fractured"]})
    return target


def _train(data: Path, out: Path, *extra: str) -> str:
    args = ["train", "fracture", "--data", str(data), "--model", "efficientnet_lite0",
            "--scratch", "--img", "48", "--steps", "2", "--batch", "4", "--device", "cpu",
            "--out", str(out), *extra]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_fracture_writes_a_profile_of_its_training_split(tmp_path: Path) -> None:
    data = _real_subset(tmp_path / "data")
    output = _train(data, tmp_path / "run")
    card = tmp_path / "run" / "model" / "card.json"
    profile = load_profile(card)
    assert profile is not None and "reference profile of" in output
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(profile.table) == len(split["train"]) >= 10
    assert "train split" in profile.data and profile.layer == "_conv_head"
    assert profile.model["weights_sha256"] == json.loads(card.read_text())["weights_sha256"]
    assert {"output_probability", "mean"} <= set(profile.table.continuous)

    predictor = load_predictor(card, task="classification")
    guard = OodGuard.for_predictor(predictor, card)
    assert guard is not None and guard.shares_model
    chest = read_image(data_root() / "cxr" / "tbx11k" / "images" / "tb0020.jpg")
    (verdict,) = guard.check([chest])
    assert verdict.ood_score > 0


def test_no_profile_leaves_the_model_folder_without_one(tmp_path: Path) -> None:
    _train(_real_subset(tmp_path / "data"), tmp_path / "run", "--no-profile")
    assert (tmp_path / "run" / "model" / "card.json").is_file()
    assert not (tmp_path / "run" / "model" / "profile.json").exists()
