"""An INT8 fracture classifier served by the API as its parent's next version."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from insightray.config import data_root
from insightray.engine.quantize import quantize_classifier
from tests.serving.api.conftest import CHEST_DICOM, Api

FRACTURE = "fracture-roboflow-lite0"
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
    admin = api.as_role("admin")
    registered = api.client.post(
        f"/v1/models/{FRACTURE}/versions", json={"card_path": str(int8_card)}, headers=admin
    )
    assert registered.status_code == 201, registered.text
    version = registered.json()["version"]
    assert version.endswith("+int8")
    promoted = api.client.put(
        f"/v1/models/{FRACTURE}/versions/{version}", json={"stage": "production"}, headers=admin
    )
    assert promoted.status_code == 200, promoted.text
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
