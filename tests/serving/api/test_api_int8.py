"""Optimised copies served by the API as their parent's next version: an INT8 fracture
classifier, an INT8 disease classifier, and a bfloat16 chest detector (on processors with
bf16)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from insightray.config import data_root
from insightray.engine.backends import require_bf16
from insightray.engine.bf16 import bf16_detector
from insightray.engine.quantize import quantize_classifier
from insightray.engine.textcls_int8 import quantize_text_classifier
from insightray.errors import ConfigError
from tests.serving.api.conftest import CHEST_DICOM, Api

FRACTURE = "fracture-roboflow-lite0"
DETECTOR = "cxr-tbx11k-yolov5s"
TEXT_CLASSIFIER = "textcls-symptom2disease-minilm"
ROBOFLOW = data_root() / "fracture" / "bone_fracture_roboflow"


@pytest.fixture(scope="module")
def int8_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROBOFLOW / "images.csv").is_file():
        pytest.skip(f"the fracture data is not at {ROBOFLOW}")
    with (ROBOFLOW / "images.csv").open() as handle:
        train = [ROBOFLOW / row["image"] for row in csv.DictReader(handle)][:4]
    folder = tmp_path_factory.mktemp("fracture-int8")
    quantize_classifier(FRACTURE, train, folder)
    return folder / "card.json"


def test_int8_classifier_serves_after_promotion_without_a_heatmap(
    api: Api, int8_card: Path
) -> None:
    version = _promote(api, FRACTURE, int8_card)
    assert version.endswith("+int8")
    study = api.upload(CHEST_DICOM)
    response = api.client.post(
        f"/v1/studies/{study['id']}/analyze",
        json={"task": "fracture"},
        headers=api.as_role("clinician"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == version
    assert 0.0 <= body["fracture"]["probability"] <= 1.0
    assert body["heatmap_method"] is None and body["heatmap_url"] is None


def test_int8_text_classifier_serves_and_refuses_explanations_with_a_4xx(
    api: Api, tmp_path: Path
) -> None:
    quantize_text_classifier(TEXT_CLASSIFIER, tmp_path / "int8")
    version = _promote(api, TEXT_CLASSIFIER, tmp_path / "int8" / "card.json")
    headers = api.as_role("researcher")
    text = {"text": "My skin is red, itchy and covered in dry scaly patches."}
    response = api.client.post("/v1/text/analyze", json=text, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["diseases"] and 0.0 <= body["diseases"][0]["score"] <= 1.0
    assert version.endswith("+int8") and version in response.text
    explained = api.client.post("/v1/text/analyze", json=text | {"explain": True}, headers=headers)
    error = explained.json()["error"]
    assert 400 <= explained.status_code < 500 and "float parent" in error["message"], error


def _promote(api: Api, name: str, card: Path) -> str:
    admin = api.as_role("admin")
    registered = api.client.post(
        f"/v1/models/{name}/versions", json={"card_path": str(card)}, headers=admin
    )
    assert registered.status_code == 201, registered.text
    version = str(registered.json()["version"])
    promoted = api.client.put(
        f"/v1/models/{name}/versions/{version}", json={"stage": "production"}, headers=admin
    )
    assert promoted.status_code == 200, promoted.text
    return version


def test_bf16_detector_serves_after_promotion(api: Api, tmp_path: Path) -> None:
    try:
        require_bf16()
    except ConfigError:
        pytest.skip("this processor has no native bf16")
    bf16_detector(DETECTOR, tmp_path / "bf16")
    version = _promote(api, DETECTOR, tmp_path / "bf16" / "card.json")
    assert version.endswith("+bf16")
    study = api.upload(CHEST_DICOM)
    response = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=api.as_role("clinician")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == version
    assert all(0.0 <= f["score"] <= 1.0 for f in body["findings"])
