"""Federated detection: the site split, the trainer's local epochs, and one real round.

The one-round test runs the real deployment engine (a SuperLink and two SuperNodes on
loopback) on a dozen TBX11K images at 64 px, then loads the model folder it wrote, checks
the card's federated lineage survives a save and load, and scores the folder with
``insightray evaluate detect``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from insightray.errors import ConfigError
from insightray.federated.settings import FederatedSettings
from insightray.federated.sites import SUMMARY_FILE, TEST_FOLDER, site_folders
from insightray.federated.tasks import get_task
from insightray.federated.tasks.detect import NO_AUGMENT, _config
from insightray.models import ModelCard, load_card
from insightray.models.detection.yolo import YoloV5
from insightray.training.detection import load_data_split
from insightray.training.detection.steps import train_local_epochs
from tests.test_cli import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _names(folder: Path) -> set[str]:
    return {path.name for path in (folder / "images").iterdir()}


def test_split_deals_every_training_image_to_one_site_and_holds_val_out(
    tiny_data: Path, tmp_path: Path
) -> None:
    task = get_task("detect")
    out = tmp_path / "sites"
    task.split(tiny_data, 2, out, label_skew=0.0, size_skew=1.0, seed=0)
    sites = [_names(folder) for folder in site_folders(out)]
    train = {r.image_path.name for r in load_data_split(tiny_data, "train").records}
    val = {r.image_path.name for r in load_data_split(tiny_data, "val").records}
    assert len(sites) == 2 and not sites[0] & sites[1]
    assert sites[0] | sites[1] == train and len(sites[0]) > len(sites[1])
    assert _names(out / TEST_FOLDER) == val
    for folder in site_folders(out):  # each site reads as YOLO data, labels and all
        records = load_data_split(folder / "data.yaml", "train").records
        assert sum(len(r) for r in records) > 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert [s["images"] for s in summary["sites"]] == [len(s) for s in sites]
    with pytest.raises(ConfigError):
        task.split(tiny_data, 2, out, label_skew=0.0, size_skew=1.0, seed=0)


def test_local_epochs_train_from_given_weights_and_fedprox_holds_them_closer(
    tiny_data: Path,
) -> None:
    task = get_task("detect")
    settings = FederatedSettings(task="detect", image_size=64, batch_size=4, rounds=2)
    spec = task.model_spec(
        FederatedSettings(task="detect", eval_data=str(tiny_data), image_size=64)
    )
    data = load_data_split(tiny_data, "train")
    config = dataclasses.replace(_config(settings), augment=NO_AUGMENT)
    drift = {}
    for mu in (0.0, 1.0):
        torch.manual_seed(0)
        model = task.build_model(settings, spec, initial=True)
        assert isinstance(model, YoloV5)
        start = [p.detach().clone() for p in model.parameters()]
        fit = train_local_epochs(model, config, data, first_epoch=1, epochs=1, proximal_mu=mu)
        assert (fit.steps, fit.images) == (2, 8) and fit.loss > 0
        with torch.no_grad():
            drift[mu] = float(
                sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), start, strict=True))
            )
    assert drift[0.0] > 0 and drift[1.0] < drift[0.0]


def test_detect_refuses_differential_privacy() -> None:
    with pytest.raises(ConfigError, match="detect"):
        FederatedSettings(task="detect", dp_clip=1.0, dp_noise=0.5)


@pytest.mark.slow
def test_one_federated_round_writes_a_detector_evaluate_detect_scores(
    tiny_data: Path, tmp_path: Path
) -> None:
    from insightray.federated.simulation import simulate

    settings = FederatedSettings(task="detect", rounds=1, image_size=64, batch_size=4)
    result = simulate(
        tiny_data, settings, sites=2, out=tmp_path / "run", label_skew=0.0, log=lambda _: None
    )
    assert [r["replies"] for r in result.rounds["rounds"]] == [2]
    assert result.rounds["metric"] == "map50"
    assert 0.0 <= result.rounds["rounds"][0]["eval_map50"] <= 1.0
    card = load_card(result.card_path)
    assert card.task == "detection" and card.lineage.method == "federated"
    lineage = card.lineage.settings
    assert lineage["task"] == "detect" and lineage["sites"] == 2
    assert lineage["batch_norm"] == "averaged" and lineage["strategy"] == "fedavg"
    assert card.training_data == f"2 sites split from {tiny_data.parent.name}"
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again.lineage == card.lineage
    assert result.test is not None and "test_map50" in card.metrics
    done = run_cli(
        "evaluate",
        "detect",
        "--model",
        str(result.card_path.parent),
        "--data",
        str(tmp_path / "run" / "sites" / TEST_FOLDER / "data.yaml"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["map50"] == pytest.approx(result.test["map50"], abs=1e-3)
