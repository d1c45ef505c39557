"""The out-of-distribution guard through the service: flagged by default, refused on request."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import DICOM_DIR, Api, start_api

CT = DICOM_DIR / "ct_brain_slice.dcm"


@pytest.fixture
def refusing_api(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    yield from start_api(serve_settings, model_loader, password_hash, ood_action="refuse")


def test_a_ct_slice_sent_to_the_chest_detector_is_flagged_and_counted(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(CT)
    url = f"/v1/studies/{study['id']}/analyze"
    body = api.client.post(url, json={"task": "cxr"}, headers=headers).json()
    assert any(w.startswith("modality CT") for w in body["warnings"])
    assert body["ood_score"] > 1
    stored = api.client.get(f"/v1/results/{body['result_id']}", headers=headers).json()
    assert stored["warnings"] == body["warnings"]
    metrics = api.client.get("/metrics", headers=api.as_role("auditor")).text
    assert 'insightray_ood_images_total{model="cxr-tbx11k-yolov5s"' in metrics
    assert 'outcome="flagged"' in metrics and "insightray_ood_score_bucket" in metrics
    pixels = np.zeros((64, 64), np.uint8)  # blank, through the Open Inference Protocol
    tensor = {"name": "image", "shape": [64, 64], "datatype": "UINT8",
              "data": pixels.ravel().tolist()}  # fmt: skip
    oip = api.client.post(
        "/v2/models/cxr-tbx11k-yolov5s/infer", json={"inputs": [tensor]}, headers=headers
    ).json()
    assert oip["parameters"]["warnings"][0].startswith("blank image")


def test_refuse_mode_answers_422_and_stays_up(refusing_api: Api) -> None:
    headers = refusing_api.as_role("clinician")
    study = refusing_api.upload(CT)
    url = f"/v1/studies/{study['id']}/analyze"
    response = refusing_api.client.post(url, json={"task": "cxr"}, headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "OutOfDistributionError" and "modality CT" in error["message"]
    assert refusing_api.client.get("/healthz").status_code == 200


def test_ood_action_is_validated(serve_settings: ServeSettings) -> None:
    from insightray.errors import ConfigError

    with pytest.raises(ConfigError):
        ServeSettings(home=serve_settings.home, ood_action="ignore")
