"""The monitoring verbs as a user runs them: profile a model, detect with its guard, drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insightray.engine import write_model
from insightray.models import ModelCard, Preprocessing, Thresholds, create_model
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def _list(tmp_path: Path, name: str, paths: list[Path]) -> Path:
    target = tmp_path / name
    target.write_text("".join(f"{path}\n" for path in paths))
    return target


@pytest.fixture
def tbx(shared_data: Path) -> list[Path]:
    root = shared_data / "cxr" / "tbx11k"
    return [root / line for line in (root / "val_list.txt").read_text().split()]


@pytest.fixture
def bones(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "fracture" / "bone_fracture_roboflow" / "images").glob("*.jpg"))


def test_profile_then_detect_names_an_out_of_distribution_image(
    tmp_path: Path, tbx: list[Path], shared_data: Path
) -> None:
    card = ModelCard(
        "yolov5n", "detection", "0.0.1", ("nodule",), (64, 64),
        preprocessing=Preprocessing(channels=1), thresholds=Thresholds(confidence=0.5),
    )  # fmt: skip
    folder = tmp_path / "model"
    write_model(folder, create_model("yolov5n", num_classes=1, in_channels=1), card)
    ct = shared_data / "dicom" / "ct_brain_slice.dcm"
    code, _, stderr = cli("monitor", "drift", "--reference", str(folder), "--current", str(ct))
    assert code != 0 and "no reference profile" in stderr
    data = _list(tmp_path, "train.txt", tbx[:20])
    code, stdout, stderr = cli(
        "monitor", "profile", "--model", str(folder), "--data", str(data), "--body-part", "chest"
    )
    assert code == 0, stderr
    profile = json.loads((folder / "profile.json").read_text())
    assert profile["images"] == 20 and profile["accepted"]["body_parts"] == ["CHEST"]
    with np.load(folder / "profile.npz", allow_pickle=False) as stored:
        assert stored["embedding"].shape[0] == 20 and stored["embedding"].shape[1] > 0
    code, stdout, stderr = cli("detect", "--model", str(folder), "--json", str(ct), str(tbx[30]))
    assert code == 0, stderr
    first, second = (json.loads(line) for line in stdout.splitlines())
    assert any(w.startswith("modality CT") for w in first["warnings"])
    assert first["ood_score"] is not None and second["ood_score"] is not None


def test_drift_bone_x_rays_against_the_detector_profile(
    tmp_path: Path, bones: list[Path], tbx: list[Path]
) -> None:
    current = _list(tmp_path, "bones.txt", bones[::120])
    args = ("--reference", "cxr-tbx11k-yolov5s", "--permutations", "100", "--json")
    page = tmp_path / "report" / "drift.html"
    code, stdout, stderr = cli(
        "monitor", "drift", "--current", str(current), *args, "--html", str(page)
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["drift"] is True and report["current_images"] == len(bones[::120])
    assert "embedding" in report["drifted_features"]
    text = page.read_text()
    assert 'class="drift">drift</span>' in text and 'alt="embedding"' in text
    assert text.count("data:image/png;base64,") == len(report["features"])
    features = {item["feature"]: item for item in report["features"]}
    assert features["photometric"]["test"] == "chi2" and features["mean"]["test"] == "ks"
    same = _list(tmp_path, "val.txt", tbx[:16])
    code, stdout, stderr = cli("monitor", "drift", "--current", str(same), *args)
    assert code == 0, stderr
    assert json.loads(stdout)["drift"] is False
