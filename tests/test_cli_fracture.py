"""The fracture verbs as a user runs them: classify (with Grad-CAM), evaluate, train."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from insightray.models.catalog import bundled_models, default_model
from tests.engine.fracture_helpers import make_fracture_model, make_labelled_folder
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")

EVALUATE_KEYS = {"auc", "auc_ci", "sensitivity", "specificity", "threshold", "ece", "images"}
CLASSIFY_KEYS = {
    "image",
    "probability",
    "label",
    "threshold",
    "model",
    "heatmap",
    "warnings",
    "ood_score",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    make_fracture_model(folder, "resnet50_radiograph", size=64, threshold=0.5)
    return folder


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_folder(tmp_path_factory.mktemp("labelled"), count=12)


def test_classify_json_with_gradcam(model_dir: Path, labelled: Path, tmp_path: Path) -> None:
    images = sorted((labelled / "images").glob("*.png"))[:2]
    code, stdout, stderr = cli(
        "classify", "fracture", *map(str, images), "--model", str(model_dir),
        "--cam", str(tmp_path / "cams"), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 2
    for record, image in zip(records, images, strict=True):
        assert set(record) == CLASSIFY_KEYS
        assert record["image"] == str(image)
        assert record["model"] == {"name": "resnet50_radiograph", "version": "0.0.1"}
        assert record["label"] in ("fractured", "not_fractured")
        assert (record["probability"] >= 0.5) == (record["label"] == "fractured")
        overlay = cv2.imread(record["heatmap"])
        assert overlay.shape[:2] == cv2.imread(str(image)).shape[:2]


def test_classify_a_folder_as_a_table_and_bad_files_fail_cleanly(
    model_dir: Path, labelled: Path, tmp_path: Path
) -> None:
    code, stdout, _ = cli(
        "classify", "fracture", str(labelled / "images"), "--model", str(model_dir)
    )
    assert code == 0
    assert "threshold" in stdout
    assert stdout.count("0.500") == 12  # one row per image, each at the card's threshold
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    code, stdout, stderr = cli(
        "classify", "fracture", str(broken), "--model", str(model_dir), "--json"
    )
    assert code == 1
    assert "error" in json.loads(stdout.splitlines()[0])
    assert "Traceback" not in stderr
    code, _, stderr = cli("classify", "fracture", str(broken), "--model", str(tmp_path / "none"))
    assert code == 2 and "Traceback" not in stderr


def test_evaluate_json_contract(model_dir: Path, labelled: Path, tmp_path: Path) -> None:
    code, stdout, stderr = cli(
        "evaluate", "fracture", "--data", str(labelled), "--model", str(model_dir), "--json",
        "--reliability", str(tmp_path / "rel.png"), "--resamples", "200",
    )  # fmt: skip
    assert code == 0, stderr
    record = json.loads(stdout)
    assert set(record) >= EVALUATE_KEYS
    assert record["images"] == 12 and record["threshold"] == 0.5
    assert record["auc_ci"][0] <= record["auc"] <= record["auc_ci"][1]
    tn, fp = record["confusion_matrix"][0]
    assert record["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-5)
    assert (tmp_path / "rel.png").is_file()


def test_evaluate_refuses_a_folder_without_labels(model_dir: Path, tmp_path: Path) -> None:
    code, _, stderr = cli(
        "evaluate", "fracture", "--data", str(tmp_path), "--model", str(model_dir)
    )
    assert code == 2
    assert "images.csv" in stderr and "Traceback" not in stderr


def test_train_then_classify(labelled: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, stderr = cli(
        "train", "fracture", "--data", str(labelled), "--model", "efficientnet_lite0",
        "--steps", "2", "--img", "48", "--batch", "4", "--device", "cpu", "--out", str(out),
        "--debug-images", "1",
    )  # fmt: skip
    assert code == 0, stderr
    assert "best validation AUC" in stdout
    assert len(list((out / "debug").glob("*_0_input.png"))) == 1
    code, stdout, _ = cli(
        "classify", "fracture", str(labelled / "images" / "case01.png"),
        "--model", str(out / "model"), "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["model"]["name"] == "efficientnet_lite0"


def test_default_model_evaluates_on_a_roboflow_subset(shared_data: Path, tmp_path: Path) -> None:
    if default_model("classification") not in bundled_models():
        pytest.fail(f"the default fracture model {default_model('classification')} is not bundled")
    root = shared_data / "fracture" / "bone_fracture_roboflow"
    if not (root / "images.csv").is_file():
        pytest.skip("bone_fracture_roboflow not found")
    lines = (root / "images.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    chosen = [row for row in rows if row.split(",")[2] == "1"][:5]
    chosen += [row for row in rows if row.split(",")[2] == "0"][:5]
    (tmp_path / "images").symlink_to(root / "images")
    (tmp_path / "images.csv").write_text("\n".join([header, *chosen]) + "\n")
    code, stdout, stderr = cli("evaluate", "fracture", "--data", str(tmp_path), "--json")
    assert code == 0, stderr
    record = json.loads(stdout)
    assert set(record) >= EVALUATE_KEYS and record["images"] == 10
    assert record["model"]["name"] == "efficientnet_lite0"


def test_training_verbs_without_data_say_so(model_dir: Path, tmp_path: Path) -> None:
    for verb in (["train", "fracture"], ["optimize", "fracture", "--distill-from", str(model_dir)]):
        code, _, stderr = cli(*verb, "--out", str(tmp_path / "run"))
        assert code != 0 and "no training data given" in stderr and "Traceback" not in stderr
