"""Fracture inference from a model card: preparation, probabilities, the operating point."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from insightray.engine import load_predictor
from insightray.engine.classification import FracturePredictor
from insightray.engine.preprocessing import prepare_pixels, to_unit_gray
from insightray.errors import ConfigError, CorruptFileError, InputError, InputNotFoundError
from insightray.imaging import write_png
from insightray.imaging.enhance import RadiographEnhancement
from insightray.models import load_card
from insightray.models.catalog import bundled_models, default_model
from tests.engine.fracture_helpers import make_fracture_model, synthetic_radiograph

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def card_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fracture_model(tmp_path_factory.mktemp("lite0"), threshold=0.5)


def test_to_unit_gray_accepts_common_arrays() -> None:
    assert to_unit_gray(np.full((2, 3), 255, np.uint8)).max() == 1.0
    assert to_unit_gray(np.full((2, 3), 65535, np.uint16)).min() == 1.0
    rgb = np.zeros((2, 3, 3), np.float32)
    rgb[..., 0] = 0.9
    np.testing.assert_allclose(to_unit_gray(rgb), 0.3, rtol=1e-6)
    assert to_unit_gray(np.array([[np.nan, 2.0]])).tolist() == [[0.0, 1.0]]
    with pytest.raises(InputError):
        to_unit_gray(np.zeros(5))


def test_prepare_pixels_letterboxes_and_normalises() -> None:
    image = np.zeros((100, 50), np.float32)
    prepared = prepare_pixels(image, RadiographEnhancement(), 64, channels=1, mean=0.5, std=0.25)
    assert prepared.tensor.shape == (1, 64, 64)
    assert prepared.tensor.min() == pytest.approx(-2.0)
    assert prepared.letterbox.pad == (16, 0)
    assert prepared.crop == (0, 0, 100, 50)


def test_predictions_match_the_model_and_the_threshold(card_path: Path) -> None:
    predictor = load_predictor(str(card_path), task="classification")
    rng = np.random.default_rng(0)
    images = [synthetic_radiograph(rng, bool(k % 2)) for k in range(3)]
    results = predictor.predict_arrays(images, batch_size=2)
    batch = torch.from_numpy(np.stack([predictor.prepare(image).tensor for image in images]))
    with torch.no_grad():
        expected = torch.sigmoid(predictor.model(batch)[:, 0]).numpy()
    np.testing.assert_allclose([r.probability for r in results], expected, rtol=1e-5)
    for result in results:
        assert result.threshold == 0.5
        assert result.label == ("fractured" if result.probability >= 0.5 else "not_fractured")
        assert set(result.to_dict()) == {
            "probability",
            "label",
            "threshold",
            "warnings",
            "ood_score",
        }
    low = FracturePredictor(
        predictor.model,
        dataclasses.replace(predictor.card, thresholds={"operating_point": 0.0}),
    )
    assert {r.label for r in low.predict_arrays(images)} == {"fractured"}


def test_predict_paths_reads_files(card_path: Path, tmp_path: Path) -> None:
    predictor = load_predictor(str(card_path), task="classification")
    image = synthetic_radiograph(np.random.default_rng(1), True)
    path = write_png(image, tmp_path / "x.png")
    from_path = predictor.predict_paths([path])[0]
    from_array = predictor.predict_arrays([image])[0]
    assert from_path.probability == pytest.approx(from_array.probability, abs=5e-3)


def test_cards_without_operating_point_or_of_another_task_are_refused(card_path: Path) -> None:
    predictor = load_predictor(str(card_path), task="classification")
    with pytest.raises(ConfigError, match="operating_point"):
        FracturePredictor(predictor.model, dataclasses.replace(predictor.card, thresholds={}))
    with pytest.raises(ConfigError, match="not a classifier"):
        FracturePredictor(predictor.model, dataclasses.replace(predictor.card, task="detection"))
    with pytest.raises(InputNotFoundError):
        load_predictor("no-such-model", task="classification")


def test_tampered_weights_are_refused(card_path: Path, tmp_path: Path) -> None:
    card = load_card(card_path)
    folder = tmp_path / "copy"
    folder.mkdir()
    weights = (card_path.parent / str(card.weights_file)).read_bytes()
    (folder / str(card.weights_file)).write_bytes(weights[:-1] + bytes([weights[-1] ^ 1]))
    (folder / "card.json").write_text(json.dumps(card.to_dict()))
    with pytest.raises(CorruptFileError):
        load_predictor(str(folder), task="classification")


def test_bundled_default_model_loads_and_classifies() -> None:
    if default_model("classification") not in bundled_models():
        pytest.fail(f"the default fracture model {default_model('classification')} is not bundled")
    predictor = load_predictor(task="classification")
    card = predictor.card
    assert card.data_licence.startswith("CC BY 4.0")
    assert 0 < card.thresholds.operating_point < 1
    assert card.metrics["val_auc"] > 0.5 and "test_auc" in card.metrics
    result = predictor.predict_arrays([synthetic_radiograph(np.random.default_rng(2), True)])[0]
    assert 0 <= result.probability <= 1
