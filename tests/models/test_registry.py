"""Tests for the model registry and model cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from insightray.errors import ConfigError, InputNotFoundError
from insightray.models import registry
from insightray.models.card import ModelCard, load_card, save_card
from insightray.models.detection import YoloV5
from insightray.models.registry import create_model, list_models, model_task, register_model


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register models without leaking them into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def _card() -> ModelCard:
    return ModelCard(
        name="yolov5s",
        task="detection",
        version="1.2.0",
        labels=("nodule", "mass"),
        input_size=(640, 512),
        preprocessing={"letterbox": True, "scale": 255, "mean": [0.0, 0.0, 0.0]},
        thresholds={"confidence": 0.25, "iou": 0.45},
        weights_file="yolov5s_chest.pt",
        weights_sha256="ab" * 32,
        training_data="example chest X-ray set, 2,000 studies",
        data_licence="CC BY 4.0",
        metrics={"mAP50": 0.41, "mAP50-95": 0.19},
        notes="Research use only.",
    )


def test_create_model_builds_a_registered_model() -> None:
    model = create_model("yolov5n", num_classes=4, in_channels=1)
    assert isinstance(model, YoloV5)
    assert model.detect.num_classes == 4
    assert model_task("yolov5n") == "detection"


def test_unknown_name_raises_config_error_listing_known_names() -> None:
    with pytest.raises(ConfigError, match="unknown model name") as caught:
        create_model("yolov9_giant", num_classes=2)
    assert "yolov5s" in str(caught.value)
    with pytest.raises(ConfigError):
        model_task("yolov9_giant")


def test_list_models_filters_by_task() -> None:
    detection = list_models(task="detection")
    assert detection == sorted(detection)
    assert set(detection) <= set(list_models())
    assert list_models(task="no-such-task") == []


@pytest.mark.usefixtures("isolated_registry")
def test_register_model_adds_a_builder() -> None:
    @register_model("toy_identity", task="toy")
    def toy_identity() -> nn.Module:
        return nn.Identity()

    assert list_models(task="toy") == ["toy_identity"]
    assert isinstance(create_model("toy_identity"), nn.Identity)
    assert model_task("toy_identity") == "toy"


@pytest.mark.usefixtures("isolated_registry")
def test_register_model_refuses_a_second_builder_under_the_same_name() -> None:
    with pytest.raises(ConfigError, match="already registered"):

        @register_model("yolov5s", task="detection")
        def impostor() -> nn.Module:
            return nn.Identity()


def test_model_card_round_trips_through_dict_and_json(tmp_path: Path) -> None:
    card = _card()
    assert ModelCard.from_dict(card.to_dict()) == card

    path = tmp_path / "card.json"
    save_card(card, path)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["labels"] == ["nodule", "mass"]
    assert on_disk["input_size"] == [640, 512]
    assert load_card(path) == card


def test_model_card_defaults_round_trip(tmp_path: Path) -> None:
    card = ModelCard("fracture_net", "classification", "0.1.0", ("normal", "fracture"), (224, 224))
    save_card(card, tmp_path / "minimal.json")
    loaded = load_card(tmp_path / "minimal.json")
    assert loaded == card
    assert loaded.weights_file is None and loaded.metrics == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown fields colour"),
        ({"labels": None}, "wrong shape"),
        ({"input_size": [640]}, "wrong shape"),
        ({"input_size": [0, 640]}, "input_size"),
        ({"weights_sha256": "not-a-hash"}, "weights_sha256"),
    ],
)
def test_model_card_rejects_bad_fields(change: dict[str, object], message: str) -> None:
    data = _card().to_dict() | change
    with pytest.raises(ConfigError, match=message):
        ModelCard.from_dict(data)


def test_model_card_requires_core_fields() -> None:
    data = _card().to_dict()
    del data["version"]
    with pytest.raises(ConfigError, match="missing fields version"):
        ModelCard.from_dict(data)


def test_load_card_reports_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        load_card(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_card(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an object"):
        load_card(listed)
