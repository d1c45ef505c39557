"""Health, readiness, Prometheus metrics and the Open Inference Protocol v2 routes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insightray.engine import load_predictor
from insightray.imaging import read_image
from tests.serving.api.conftest import DETECTOR_VERSION, Api

TB_IMAGE_NAME = "tb0020.jpg"


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
    assert api.client.get("/v2/health/live").json() == {"live": True}
    assert api.client.get("/v2/health/ready").json() == {"ready": True}


def test_metrics_need_permission_and_count_routes(api: Api) -> None:
    api.client.get("/healthz")
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers=api.as_role("clinician")).status_code == 403
    text = api.client.get("/metrics", headers=api.as_role("auditor")).text
    assert 'insightray_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "insightray_request_latency_seconds_bucket" in text


def test_oip_metadata_and_infer_match_the_engine(api: Api, shared_data: Path) -> None:
    headers = api.as_role("clinician")
    meta = api.client.get("/v2/models/cxr-tbx11k-yolov5s", headers=headers).json()
    assert meta["versions"] == [DETECTOR_VERSION] and meta["outputs"][0]["name"] == "boxes"
    path = shared_data / "cxr" / "tbx11k" / "images" / TB_IMAGE_NAME
    pixels = np.rint(read_image(path).pixels * 255).astype(np.uint8)
    tensor = {
        "name": "image",
        "shape": list(pixels.shape),
        "datatype": "UINT8",
        "data": pixels.ravel().tolist(),
    }
    url = "/v2/models/cxr-tbx11k-yolov5s/infer"
    response = api.client.post(url, json={"id": "r1", "inputs": [tensor]}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_version"], body["id"]) == (DETECTOR_VERSION, "r1")
    outputs = {o["name"]: o for o in body["outputs"]}
    expected = load_predictor(task="detection").predict_arrays([pixels])[0].detections
    assert outputs["boxes"]["shape"] == [len(expected), 4] and len(expected) > 0
    assert np.allclose(outputs["scores"]["data"], [d.score for d in expected], atol=1e-5)
    wrong = {**tensor, "shape": [3, 5]}
    bad = api.client.post(url, json={"inputs": [wrong]}, headers=headers)
    assert bad.status_code == 400 and "do not fill shape" in bad.json()["error"]
    missing = api.client.get("/v2/models/nope", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"].startswith("model nope")
