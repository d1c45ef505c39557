"""Group-aware cross-validation of the fracture classifier, and ensembles built from it."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from insightray.engine import load_predictor
from insightray.engine.classification_ensemble import ClassifierEnsemble
from insightray.errors import ConfigError, CorruptFileError
from insightray.training.fracture.dataset import FractureItem
from insightray.training.fracture.folds import group_folds, mean_interval
from insightray.training.metrics.temperature import scaled_probabilities
from tests.engine.fracture_helpers import make_labelled_folder
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_group_folds_keep_each_group_in_one_fold_and_cover_every_image() -> None:
    rng = np.random.default_rng(0)
    items = [
        FractureItem(Path(f"{g}_{k}.png"), int(g % 3 == 0), str(g))
        for g in range(40)
        for k in range(int(rng.integers(1, 6)))
    ]
    folds = group_folds(items, 5, seed=0)
    assert sorted(i for fold in folds for i in fold) == list(range(len(items)))
    owners: dict[str, set[int]] = {}
    for number, fold in enumerate(folds):
        for i in fold:
            owners.setdefault(items[i].group, set()).add(number)
    assert all(len(found) == 1 for found in owners.values())
    shares = [np.mean([items[i].label for i in fold]) for fold in folds]
    assert max(shares) - min(shares) < 0.25  # stratified
    assert group_folds(items, 5, seed=0) == folds
    with pytest.raises(ConfigError):
        group_folds(items[:3], 5)
    interval = mean_interval([0.8, 0.9, 1.0])
    assert interval["mean"] == pytest.approx(0.9)
    assert interval["ci_low"] < 0.9 < interval["ci_high"]


def test_train_folds_then_ensembles_through_the_cli(tmp_path: Path) -> None:
    data = make_labelled_folder(tmp_path / "data", count=24)
    run = tmp_path / "cv-lite0"
    code, stdout, stderr = cli(
        "train", "fracture", "--data", str(data), "--model", "efficientnet_lite0",
        "--steps", "1", "--img", "48", "--batch", "4", "--device", "cpu", "--out", str(run),
        "--folds", "2",
    )  # fmt: skip
    assert code == 0, stderr
    assert "auc: mean" in stdout and "ece_calibrated: mean" in stdout
    with (run / "oof.csv").open() as handle:
        oof = list(csv.DictReader(handle))
    split = json.loads((run / "fold0" / "split.json").read_text())
    test_names = set(split["test"])
    assert not test_names  # folds keep no test part of their own
    groups_by_fold: dict[str, set[str]] = {}
    for row in oof:
        groups_by_fold.setdefault(row["group"], set()).add(row["fold"])
    assert all(len(folds) == 1 for folds in groups_by_fold.values())
    assert len({row["path"] for row in oof}) == len(oof) >= 12  # each pool image once
    summary = json.loads((run / "folds.json").read_text())
    assert len(summary["per_fold"]) == 2

    twin = tmp_path / "cv-twin"
    shutil.copytree(run, twin)
    out = tmp_path / "ensemble-mean"
    code, stdout, stderr = cli(
        "train", "fracture-ensemble", "--run", str(run), "--run", str(twin),
        "--out", str(out), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    built = json.loads(stdout)
    assert built["weights"] == [0.5, 0.5]
    ensemble = load_predictor(str(out), task="classification")
    assert isinstance(ensemble, ClassifierEnsemble)
    folds = [load_predictor(str(run / f"fold{k}" / "model"), task="classification") for k in (0, 1)]
    images = [np.asarray(p, np.float32) for p in np.random.default_rng(1).random((3, 50, 40))]
    mean_logit = np.mean([fold.predict_logits(images) for fold in folds], axis=0)
    expected = scaled_probabilities(mean_logit, built["temperature"])
    got = [result.probability for result in ensemble.predict_arrays(images)]
    assert got == pytest.approx(expected, abs=1e-6)

    stacked = tmp_path / "ensemble-stacking"
    code, stdout, stderr = cli(
        "train", "fracture-ensemble", "--run", str(run), "--run", str(twin),
        "--out", str(stacked), "--method", "stacking", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    for model in (out, stacked):
        code, stdout, stderr = cli(
            "evaluate", "fracture", "--data", str(data), "--model", str(model), "--json",
            "--resamples", "100",
        )  # fmt: skip
        assert code == 0, stderr
        assert json.loads(stdout)["model"]["name"] == "classifier_ensemble"
        code, stdout, stderr = cli(
            "classify", "fracture", str(data / "images" / "case01.png"), "--model", str(model),
            "--json",
        )  # fmt: skip
        assert code == 0, stderr
    code, _, stderr = cli(
        "classify", "fracture", str(data / "images" / "case01.png"), "--model", str(out),
        "--cam", str(tmp_path / "cams"),
    )  # fmt: skip
    assert code != 0 and "member" in stderr and "Traceback" not in stderr
    member_card = json.loads((out / "members" / "cv-lite0" / "fold0" / "card.json").read_text())
    member = out / "members" / "cv-lite0" / "fold0" / member_card["weights_file"]
    member.write_bytes(member.read_bytes()[:-1] + b"\0")
    with pytest.raises((CorruptFileError, ConfigError)):
        load_predictor(str(out), task="classification")
