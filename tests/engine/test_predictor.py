"""The inference layer: every bundled model loads through load_predictor, cards old and new."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from insightray.engine import Predictor, Result, list_backends, load_predictor
from insightray.errors import ConfigError
from insightray.models import CARD_VERSION, ModelCard, load_card
from insightray.models.catalog import TASKS, bundled_models, bundled_models_dir, find_task

pytestmark = pytest.mark.usefixtures("one_thread")

#: One input per task, of the kind its predictor takes.
_INPUTS: dict[str, Any] = {
    "detection": np.full((96, 80), 0.5, np.float32),
    "classification": np.full((96, 80), 0.5, np.float32),
    "ner": "No fever, but a small left pleural effusion; started metformin.",
    "text-classification": "I have had a cough with phlegm and a high fever for three days.",
    "intent": "What are the side effects of metformin?",
}


def test_the_catalog_names_a_bundled_default_for_every_task() -> None:
    assert {task.name for task in TASKS} == set(_INPUTS)
    for task in TASKS:
        assert task.default_model in bundled_models()
        assert find_task(task.service_name) == task == find_task(task.name)
    with pytest.raises(ConfigError, match="unknown task"):
        find_task("segmentation")


@pytest.mark.slow
@pytest.mark.parametrize("name", bundled_models())
def test_every_bundled_model_loads_and_predicts_through_load_predictor(name: str) -> None:
    predictor = load_predictor(name)
    assert isinstance(predictor, Predictor)
    task = predictor.card.task
    assert find_task(task).name == task
    predictor.warm_up()
    results = predictor.predict([_INPUTS[task]])
    assert len(results) == 1 and isinstance(results[0], Result)
    document = results[0].to_dict()
    assert json.loads(json.dumps(document)) == document  # plain JSON, stable through a round trip


@pytest.mark.parametrize("task", [task.name for task in TASKS])
def test_a_model_of_another_task_is_refused_with_a_clear_error(task: str) -> None:
    other = next(t for t in TASKS if t.name != task)
    with pytest.raises(ConfigError, match=f"not a {task} model"):
        load_predictor(other.default_model, task=task)


def test_neither_model_nor_task_and_unknown_backends_are_errors() -> None:
    with pytest.raises(ConfigError, match="neither"):
        load_predictor()
    assert {"torch", "onnx"} <= set(list_backends())
    with pytest.raises(ConfigError, match="unknown backend"):
        load_predictor(task="detection", backend="tensorrt-9")


def test_a_version_1_card_file_loads_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    shutil.copytree(bundled_models_dir() / "fracture-roboflow-lite0", folder)
    data = json.loads((folder / "card.json").read_text())
    # written back in the version 1 layout (as the bundled card is, whatever it becomes): no
    # card_version, the Grad-CAM layer inside preprocessing, no typed sections
    for name in ("card_version", "explain", "lineage", "calibration"):
        data.pop(name, None)
    data["preprocessing"]["gradcam_layer"] = "_conv_head"
    (folder / "card.json").write_text(json.dumps(data))
    card = load_card(folder / "card.json")
    assert card.card_version == CARD_VERSION and card.explain.cam_layer == "_conv_head"
    assert "gradcam_layer" not in card.preprocessing.extra
    assert card.thresholds.operating_point == data["thresholds"]["operating_point"]
    assert ModelCard.from_dict(card.to_dict()) == card
    predictor = load_predictor(folder, task="classification")
    assert predictor.gradcam_layer == "_conv_head"


def test_a_version_1_detector_card_reads_conf_as_the_confidence_threshold() -> None:
    card = load_card(bundled_models_dir() / "cxr-tbx11k-yolov5s" / "card.json")
    assert card.thresholds.confidence == 0.25 and card.thresholds.iou == 0.45
    assert card.preprocessing.channels == 3 and card.preprocessing.pad_value == 0.447
    assert card.lineage.method == "trained"
