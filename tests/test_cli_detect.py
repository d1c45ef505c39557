"""The detection verbs as a user runs them: train, evaluate, detect (torch and ONNX), export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pytest

from insightray.cli import main
from insightray.engine.export import EXPORT_RECIPE
from insightray.models import load_card

DETECTION_KEYS = {"class_id", "class_name", "score", "box", "box_mm"}
RESULT_KEYS = {
    "image",
    "model",
    "original_size",
    "pixel_spacing_mm",
    "detections",
    "warnings",
    "ood_score",
}
#: The JSON rounds coordinates to 3 decimals, so values closer than 1e-3 px print at most
#: 1e-3 apart.
BOX_ATOL_PX = 1e-3 + 1e-9

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(*args: str) -> tuple[int, str, str]:
    """Run the real entry point in-process (no interpreter start-up) and capture its output."""
    with (
        mock.patch.object(sys, "argv", ["insightray", *args]),
        mock.patch("sys.stdout", new_callable=_Text) as stdout,
        mock.patch("sys.stderr", new_callable=_Text) as stderr,
    ):
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    return code, stdout.getvalue(), stderr.getvalue()


class _Text:
    """A minimal text stream (rich and print write to whatever sys.stdout is at call time)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train detect`` on 8 images at 64 px: a few quick epochs so scores spread apart."""
    run = tmp_path_factory.mktemp("cli_run") / "run"
    config = run.parent / "train.yaml"
    config.write_text(
        "lr0: 0.1\nwarmup_epochs: 0\nnominal_batch: 8\nval_interval: 6\nworkers: 0\n"
        "augment: {mosaic: 0.0, affine: 0.0, flip: 0.0, intensity: 0.0}\n"
    )
    code, stdout, stderr = cli(
        "train",
        "detect",
        "--data",
        str(tiny_data),
        "--config",
        str(config),
        "--model",
        "yolov5n",
        "--epochs",
        "6",
        "--img",
        "64",
        "--batch",
        "8",
        "--device",
        "cpu",
        "--out",
        str(run),
    )
    assert code == 0, stderr
    assert "card.json" in stdout
    for name in ("last.pt", "best.pt", "metrics.csv", "loss.png", "map.png", "model/card.json"):
        assert (run / name).is_file(), name
    return run / "model"


@pytest.fixture(scope="module")
def png_image(shared_data: Path) -> Path:
    images = sorted((shared_data / "cxr" / "vinbigdata_sample" / "images").glob("*.png"))
    if not images:
        pytest.skip("no PNG sample found")
    return images[0]


@pytest.fixture(scope="module")
def dicom_image(shared_data: Path) -> Path:
    path = shared_data / "dicom" / "cr_chest_pa_jpeg_baseline.dcm"
    if not path.is_file():
        pytest.skip("DICOM sample not found")
    return path


def test_evaluate_detect_prints_one_json_object(trained: Path, tiny_data: Path) -> None:
    code, stdout, stderr = cli(
        "evaluate", "detect", "--data", str(tiny_data), "--model", str(trained), "--json"
    )
    assert code == 0, stderr
    record = json.loads(stdout)
    for key in ("map40", "map50", "map50_95", "precision", "recall", "per_class", "images"):
        assert key in record
    assert record["images"] == 4 and len(record["per_class"]) == 2
    for key in ("map40", "map50", "map50_95", "recall"):
        assert 0.0 <= record[key] <= 1.0


def test_detect_json_on_dicom_and_png(trained: Path, dicom_image: Path, png_image: Path) -> None:
    code, stdout, stderr = cli(
        "detect",
        str(dicom_image),
        str(png_image),
        "--model",
        str(trained),
        "--json",
        "--conf",
        "0.001",
    )
    assert code == 0, stderr
    dicom, png = (json.loads(line) for line in stdout.splitlines())
    for result in (dicom, png):
        assert set(result) == RESULT_KEYS
        assert result["model"] == {"name": "yolov5n", "version": "0.1.0"}
        assert result["detections"] and set(result["detections"][0]) == DETECTION_KEYS
    assert dicom["pixel_spacing_mm"] is not None
    assert all(d["box_mm"] is not None for d in dicom["detections"])
    assert png["image"] == str(png_image)


def test_onnx_backend_gives_the_torch_boxes(
    trained: Path, dicom_image: Path, png_image: Path, tmp_path: Path
) -> None:
    args = ("detect", str(dicom_image), str(png_image), "--model", str(trained), "--json")
    results = {}
    for backend in ("torch", "onnx"):
        code, stdout, stderr = cli(*args, "--conf", "0.2", "--backend", backend)
        assert code == 0, stderr
        results[backend] = [json.loads(line) for line in stdout.splitlines()]
    export = (trained / str(load_card(trained / "card.json").weights_file)).with_suffix(".onnx")
    assert export.is_file() and export.with_name(export.name + ".sha256").is_file()
    for torch_result, onnx_result in zip(results["torch"], results["onnx"], strict=True):
        ours = sorted((d["class_id"], d["box"]) for d in torch_result["detections"])
        theirs = sorted((d["class_id"], d["box"]) for d in onnx_result["detections"])
        assert ours and len(ours) == len(theirs)
        for (class_a, box_a), (class_b, box_b) in zip(ours, theirs, strict=True):
            assert class_a == class_b
            assert np.abs(np.subtract(box_a, box_b)).max() <= BOX_ATOL_PX
    code, _, stderr = cli(*args, "--backend", "onnx", "--out", str(tmp_path / "overlays"))
    assert code == 0, stderr  # the cached export is reused
    assert {p.suffix for p in (tmp_path / "overlays").iterdir()} == {".png", ".json"}
    stamp = export.with_name(export.name + ".sha256")
    assert stamp.read_text().split()[-1] == EXPORT_RECIPE
    stamp.write_text(" ".join(stamp.read_text().split()[:-1]) + " an-older-recipe\n")
    code, _, stderr = cli(*args, "--backend", "onnx")
    assert code == 0, stderr  # an export made by another recipe is made again
    assert stamp.read_text().split()[-1] == EXPORT_RECIPE


def test_detect_cam_writes_eigencam_overlays(
    trained: Path, png_image: Path, tmp_path: Path
) -> None:
    cams = tmp_path / "cams"
    args = ("detect", str(png_image), "--model", str(trained), "--json", "--cam", str(cams))
    code, stdout, stderr = cli(*args)  # backend auto: the PyTorch model, which can be explained
    assert code == 0, stderr
    heatmap = Path(json.loads(stdout)["heatmap"])
    assert heatmap.parent == cams and heatmap.name == f"{png_image.stem}_eigencam.png"
    assert cv2.imread(str(heatmap)).shape[:2] == cv2.imread(str(png_image)).shape[:2]
    code, _, stderr = cli(*args, "--backend", "onnx")
    assert code != 0 and "only a single PyTorch YOLO detector" in stderr


def test_export_detect_writes_onnx_and_card(trained: Path, png_image: Path, tmp_path: Path) -> None:
    target = tmp_path / "export" / "tb.onnx"
    code, stdout, stderr = cli("export", "detect", "--model", str(trained), "--out", str(target))
    assert code == 0, stderr
    assert target.is_file() and (target.parent / "tb.card.json").is_file()
    code, stdout, stderr = cli(
        "detect", str(png_image), "--model", str(target), "--backend", "onnx", "--json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["model"]["name"] == "yolov5n"


def test_detect_without_a_bundled_default_fails_clearly(
    png_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from insightray.models import catalog

    monkeypatch.setattr(catalog, "bundled_models_dir", lambda: tmp_path / "weights")
    code, stdout, stderr = cli("detect", str(png_image))
    assert code != 0 and stdout == ""
    assert "no model of this name is bundled yet" in stderr
    assert "insightray train --help" in stderr and "--model" in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_unknown_model_name_is_a_one_line_error(png_image: Path) -> None:
    code, _, stderr = cli("detect", str(png_image), "--model", "no-such-model")
    assert code != 0 and "no-such-model" in stderr and "Traceback" not in stderr


def test_train_detect_with_vinbigdata_flags(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "cxr" / "vinbigdata_sample"
    if not (root / "train_subset_12.csv").is_file():
        pytest.skip("VinBigData sample not found")
    code, stdout, stderr = cli(
        "train",
        "detect",
        "--vinbigdata-csv",
        str(root / "train_subset_12.csv"),
        "--images",
        str(root / "images"),
        "--orig-dims",
        str(root / "orig_dims.csv"),
        "--model",
        "yolov5n",
        "--epochs",
        "1",
        "--img",
        "64",
        "--batch",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "vbd"),
    )
    assert code == 0, stderr
    assert "card.json" in stdout
    card = json.loads((tmp_path / "vbd" / "model" / "card.json").read_text())
    assert len(card["labels"]) == 14
