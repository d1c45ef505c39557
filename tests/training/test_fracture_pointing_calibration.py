"""The Grad-CAM pointing game and temperature scaling of the fracture classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insightray.engine import load_predictor
from insightray.errors import ConfigError, InputError
from insightray.models import load_card
from insightray.training.fracture import evaluate_folder
from insightray.training.fracture.pointing import (
    box_class_id,
    box_mask,
    peak_in_boxes,
    read_yolo_boxes,
    summarise_pointing,
)
from insightray.training.metrics.calibration import expected_calibration_error
from insightray.training.metrics.temperature import (
    binary_nll,
    fit_temperature,
    scaled_probabilities,
)
from tests.engine.fracture_helpers import make_fracture_model, make_labelled_folder
from tests.test_cli_detect import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def test_peak_inside_and_outside_a_box() -> None:
    heat = np.zeros((20, 40), np.float32)
    heat[5, 30] = 1.0  # row 5 of 20, column 30 of 40: (x 0.76, y 0.26)
    inside = (0.75, 0.25, 0.1, 0.2)
    assert peak_in_boxes(heat, [inside]) == (True, pytest.approx(0.1 * 0.2, abs=0.02))
    assert peak_in_boxes(heat, [(0.25, 0.75, 0.1, 0.2)])[0] is False
    assert peak_in_boxes(np.zeros((20, 40), np.float32), [inside])[0] is False  # no peak
    assert box_mask((10, 10), [(0.5, 0.5, 2.0, 2.0)]).all()  # clipped to the image


def test_summary_counts_chance_and_a_group_interval() -> None:
    summary = summarise_pointing(
        [True, True, False, False, True], [0.1, 0.2, 0.3, 0.1, 0.3], groups=list("aabbc"),
        resamples=500,
    )  # fmt: skip
    assert (summary.hits, summary.images, summary.rate) == (3, 5, 0.6)
    assert summary.chance == pytest.approx(0.2)
    low, high = summary.rate_ci
    assert 0.0 <= low < summary.rate < high <= 1.0
    with pytest.raises(ConfigError):
        summarise_pointing([], [])


def test_yolo_boxes_by_class_name(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.5 0.5 1 1\n1 0.2 0.2 0.1 0.1\n")
    assert box_class_id(labels) is None  # no data.yaml: every box counts
    assert len(read_yolo_boxes(labels / "a.txt", None)) == 2
    (tmp_path / "data.yaml").write_text("names: ['angle', 'fracture']\n")
    assert box_class_id(labels) == 1
    assert read_yolo_boxes(labels / "a.txt", 1) == [(0.2, 0.2, 0.1, 0.1)]
    assert read_yolo_boxes(labels / "missing.txt", 1) == []
    with pytest.raises(ConfigError, match="names no class"):
        box_class_id(labels, "tumour")
    (labels / "b.txt").write_text("1 0.2 zero\n")
    with pytest.raises(InputError):
        read_yolo_boxes(labels / "b.txt", 1)


def _with_boxes(folder: Path, fracture_box: str) -> Path:
    """Write labels/: an 'angle' box over every image and the given 'fracture' box on the
    fractured ones (odd cases in make_labelled_folder)."""
    (folder / "labels").mkdir()
    (folder / "data.yaml").write_text("names: ['angle', 'fracture']\n")
    for index in range(12):
        lines = ["0 0.5 0.5 1.0 1.0"] + ([f"1 {fracture_box}"] if index % 2 else [])
        (folder / "labels" / f"case{index:02d}.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_evaluate_reports_the_pointing_game(tmp_path: Path) -> None:
    data = _with_boxes(make_labelled_folder(tmp_path / "data", count=12), "0.5 0.5 1.0 1.0")
    card = make_fracture_model(tmp_path / "model", "efficientnet_lite0", size=48)
    code, stdout, stderr = cli(
        "evaluate", "fracture", "--data", str(data), "--model", str(card.parent),
        "--boxes", str(data / "labels"), "--resamples", "200", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    pointing = json.loads(stdout)["pointing"]
    assert pointing["images"] == 6 and pointing["chance"] == 1.0
    # a box over the whole image holds every peak unless the heatmap is all zero
    predictor = load_predictor(str(card), task="classification")
    scores = evaluate_folder(predictor, data, boxes=data / "labels", resamples=200)
    assert scores.pointing is not None and scores.pointing.hits == pointing["hits"]
    code, stdout, _ = cli(
        "evaluate", "fracture", "--data", str(data), "--model", str(card.parent),
        "--boxes", str(data / "labels"), "--resamples", "200",
    )  # fmt: skip
    assert code == 0 and "pointing" in stdout and "chance 1.0000" in stdout
    small = _with_boxes(make_labelled_folder(tmp_path / "small", count=12), "0.1 0.1 0.1 0.1")
    tiny = evaluate_folder(predictor, small, boxes=small / "labels", resamples=200).pointing
    assert tiny is not None and tiny.chance == pytest.approx(0.01, abs=0.01)


def _overconfident(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Labels and logits of a model 80 % right but always sure of itself (|logit| 6)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    right = rng.random(n) < 0.8
    sign = np.where(labels == 1, 1.0, -1.0) * np.where(right, 1.0, -1.0)
    return labels, sign * rng.uniform(5.0, 7.0, n)


def test_temperature_scaling_lowers_nll_and_ece_of_an_overconfident_model() -> None:
    labels, logits = _overconfident(0)
    temperature = fit_temperature(labels, logits)
    assert temperature > 2.0
    raw, scaled = scaled_probabilities(logits, 1.0), scaled_probabilities(logits, temperature)
    assert binary_nll(labels, scaled) < 0.6 * binary_nll(labels, raw)
    assert (
        expected_calibration_error(labels, scaled) < 0.05 < expected_calibration_error(labels, raw)
    )
    # fitted on one sample, it also helps on a fresh one
    fresh_labels, fresh_logits = _overconfident(1)
    assert binary_nll(fresh_labels, scaled_probabilities(fresh_logits, temperature)) < binary_nll(
        fresh_labels, scaled_probabilities(fresh_logits, 1.0)
    )
    # a calibrated model keeps T near 1
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, 4000)
    assert fit_temperature(rng.random(4000) < scaled_probabilities(z, 1.0), z) == pytest.approx(
        1.0, abs=0.15
    )
    with pytest.raises(ConfigError):
        fit_temperature([1, 1, 1], [1.0, 2.0, 3.0])


def test_calibrate_verb_writes_a_temperature_scaled_copy_with_the_same_decisions(
    tmp_path: Path,
) -> None:
    data = make_labelled_folder(tmp_path / "data", count=12)
    card_path = make_fracture_model(
        tmp_path / "model", "efficientnet_lite0", size=48, threshold=0.3
    )
    out = tmp_path / "calibrated"
    code, stdout, stderr = cli(
        "calibrate", "fracture", "--model", str(card_path.parent), "--data", str(data),
        "--out", str(out), "--fitted-on", "synthetic validation", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    result = json.loads(stdout)
    source, calibrated = load_card(card_path), load_card(out / "card.json")
    temperature = calibrated.calibration.temperature
    assert temperature == pytest.approx(result["temperature"], abs=1e-5)
    assert calibrated.calibration.fitted_on == "synthetic validation (12 images)"
    assert calibrated.weights_sha256 == source.weights_sha256
    assert calibrated.version == "0.0.1+calibrated"
    assert result["fit_nll_after"] <= result["fit_nll_before"] + 1e-9
    expected = float(scaled_probabilities(np.log([0.3 / 0.7]), temperature)[0])
    assert calibrated.thresholds.operating_point == pytest.approx(expected)
    before = load_predictor(str(card_path), task="classification")
    after = load_predictor(str(out), task="classification")
    images = [np.asarray(p, np.float32) for p in np.random.default_rng(0).random((6, 50, 40))]
    assert [r.label for r in before.predict_arrays(images)] == [
        r.label for r in after.predict_arrays(images)
    ]
    code, stdout, stderr = cli(
        "evaluate", "fracture", "--data", str(data), "--model", str(out), "--json",
        "--reliability", str(tmp_path / "rel.png"), "--resamples", "100",
    )  # fmt: skip
    assert code == 0, stderr
    report = json.loads(stdout)["calibration"]
    assert report["temperature"] == pytest.approx(temperature, abs=1e-5)
    assert report["nll_after"] == pytest.approx(result["fit_nll_after"], abs=1e-4)
    assert (tmp_path / "rel.png").is_file() and (tmp_path / "rel_uncalibrated.png").is_file()
    code, _, stderr = cli(
        "calibrate", "fracture", "--model", str(out), "--data", str(data), "--out", str(out)
    )
    assert code == 2 and "own folder" in stderr
