"""Ensemble cards as first-class models: load_predictor, detect, evaluate detect, the registry
and the service's detection runner all open them like a single model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insightray.cli import app
from insightray.engine import load_predictor
from insightray.engine.ensemble import ensemble_digest, write_ensemble_card
from insightray.errors import ConfigError, CorruptFileError
from insightray.imaging import read_image
from insightray.models import load_card, save_card
from insightray.models.catalog import bundled_models_dir
from insightray.serving.hosting.inference import DetectionRunner
from insightray.serving.hosting.rollout import ModelRegistry
from insightray.serving.storage.db import Database, migrate

BUNDLED = bundled_models_dir() / "cxr-tbx11k-yolov5s"


@pytest.fixture(scope="module")
def twin_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two copies of the bundled detector as an ensemble (each member its own folder)."""
    root = tmp_path_factory.mktemp("ensemble")
    for name in ("a", "b"):
        shutil.copytree(BUNDLED, root / "members" / name)
    write_ensemble_card([root / "members" / "a", root / "members" / "b"], root / "twins")
    return root / "twins"


@pytest.fixture(scope="module")
def chest(shared_data: Path) -> Path:
    path = shared_data / "cxr" / "tbx11k" / "images" / "tb0020.jpg"
    if not path.is_file():
        pytest.skip("TBX11K sample not found")
    return path


def test_the_card_lists_members_by_relative_path_and_sha256(twin_ensemble: Path) -> None:
    card = load_card(twin_ensemble / "card.json")
    assert card.ensemble is not None and card.weights_file is None
    sha = load_card(BUNDLED / "card.json").weights_sha256
    assert [m.model for m in card.ensemble.members] == ["../members/a/card.json",
                                                         "../members/b/card.json"]  # fmt: skip
    assert {m.sha256 for m in card.ensemble.members} == {sha}
    assert card.ensemble.fusion.method == "wbf"


def test_identical_members_fuse_to_the_single_models_boxes(
    twin_ensemble: Path, chest: Path, one_thread: None
) -> None:
    """WBF of two identical answers is that answer: a known output for a real ensemble."""
    pixels = read_image(chest).pixels
    single = load_predictor(task="detection").find_boxes([pixels], 0.05, 0.45, 300)[0]
    ensemble = load_predictor(twin_ensemble, task="detection")
    assert len(ensemble.members) == 2 and ensemble.fused
    fused = ensemble.find_boxes([pixels], 0.05, 0.45, 300)[0]
    assert len(single[0]) > 0
    assert fused[0] == pytest.approx(single[0], abs=0.05)
    assert fused[1] == pytest.approx(single[1], abs=1e-4)
    assert fused[2].tolist() == single[2].tolist()


def test_detect_and_evaluate_detect_take_an_ensemble(
    twin_ensemble: Path, chest: Path, tiny_data: Path, one_thread: None
) -> None:
    runner = CliRunner()
    found = runner.invoke(app, ["detect", str(chest), "--model", str(twin_ensemble), "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output.splitlines()[-1])["model"]["name"] == "ensemble"
    args = ["evaluate", "detect", "--data", str(tiny_data), "--model", str(twin_ensemble),
            "--json", "--bootstrap", "50"]  # fmt: skip
    scored = runner.invoke(app, args)
    assert scored.exit_code == 0, scored.output
    record = json.loads(scored.output.splitlines()[-1])
    assert record["members"] == 2 and record["images"] == 4
    low, high = record["ci95"]["map50"]
    assert low <= record["map50"] <= high


def test_registry_and_service_runner_take_an_ensemble(
    twin_ensemble: Path, chest: Path, tmp_path: Path, one_thread: None
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    registry = ModelRegistry(Database(url))
    card = load_card(twin_ensemble / "card.json")
    entry = registry.register("cxr-folds", twin_ensemble / "card.json", traffic_percent=0)
    assert entry.weights_sha256 == ensemble_digest(card)
    runner = DetectionRunner(entry)
    assert len(runner.predictor.members) == 2
    result = runner.predict([read_image(chest)])[0]
    findings, _ = runner.operating(result)
    assert findings.detections and findings.model_name == "ensemble"


def test_a_member_with_other_weights_is_refused(twin_ensemble: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(twin_ensemble.parent, copy)
    card = load_card(copy / "twins" / "card.json")
    assert card.ensemble is not None
    with (copy / "members" / "b" / "card.safetensors").open("r+b") as handle:
        handle.seek(-8, 2)
        handle.write(b"\0" * 8)
    with pytest.raises(CorruptFileError):
        load_predictor(copy / "twins", task="detection")
    member_card = load_card(copy / "members" / "a" / "card.json")
    save_card(member_card.__class__.from_dict(member_card.to_dict() | {"weights_sha256": "0" * 64}),
              copy / "members" / "a" / "card.json")  # fmt: skip
    with pytest.raises(ConfigError, match="SHA-256 differs"):
        load_predictor(copy / "twins", task="detection")
