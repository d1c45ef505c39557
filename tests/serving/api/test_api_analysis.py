"""Analysing studies over HTTP: the CLI's boxes, the model version, encrypted results, audit."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
from sqlalchemy import select

from insightray.config import data_root
from insightray.engine import load_predictor
from insightray.engine.export import export_onnx
from insightray.imaging import read_image
from insightray.models import ModelCard, Preprocessing, create_model, save_card
from insightray.models.catalog import bundled_models
from insightray.serving.security.audit import AuditLog
from insightray.serving.storage.db.models import AuditRecord, Result
from tests.serving.api.conftest import CHEST_DICOM, DETECTOR, DETECTOR_VERSION, Api

TB_IMAGE = data_root() / "cxr" / "tbx11k" / "images" / "tb0020.jpg"


def _cli_boxes(path: str) -> list[dict[str, object]]:
    """What `insightray detect --json` reports for the file (the default detector)."""
    result = load_predictor(task="detection").predict_paths([path])[0].to_dict()
    return [
        {"label": d["class_name"], "score": d["score"], "box": d["box"], "box_mm": d["box_mm"]}
        for d in result["detections"]
    ]


def _findings(body: dict[str, object]) -> list[dict[str, object]]:
    keys = ("label", "score", "box", "box_mm")
    return [{k: item[k] for k in keys} for item in body["findings"]]  # type: ignore[attr-defined]


def test_analyze_cxr_returns_the_cli_boxes_and_the_model_version(api: Api) -> None:
    headers = api.as_role("clinician")
    for path in (CHEST_DICOM, TB_IMAGE):
        study = api.upload(path)
        response = api.client.post(
            f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == {"name": DETECTOR, "version": DETECTOR_VERSION}
        assert body["task"] == "cxr" and body["fracture"] is None
        assert _findings(body) == _cli_boxes(str(path))
        overlay = api.client.get(body["image_url"], headers=headers)
        assert overlay.status_code == 200 and overlay.content[:4] == b"\x89PNG"
        again = api.client.get(f"/v1/results/{body['result_id']}", headers=headers).json()
        assert again["findings"] == body["findings"]
        listed = api.client.get(f"/v1/studies/{study['id']}/results", headers=headers).json()
        assert [r["result_id"] for r in listed["items"]] == [body["result_id"]]
    assert body["findings"], "the TBX11K image has tuberculosis boxes"
    assert all(len(f["box"]) == 4 and 0 < f["score"] <= 1 for f in body["findings"])


def test_results_are_encrypted_at_rest(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    with api.services.db.session(read_only=True) as session:
        row = session.get(Result, body["result_id"])
        assert row is not None
    plain = api.services.store.get(row.output_sha256)
    assert json.loads(plain)["response"]["result_id"] == body["result_id"]
    on_disk = api.services.store.path(row.output_sha256).read_bytes()
    assert b"findings" not in on_disk and b"ActiveTuberculosis" not in on_disk
    assert b"PNG" not in api.services.store.path(row.image_sha256 or "").read_bytes()[:16]


def test_fracture_task_answers_or_says_the_model_is_missing(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(CHEST_DICOM)
    response = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "fracture"}, headers=headers
    )
    engine = importlib.util.find_spec("insightray.engine.classification") is not None
    installed = engine and any(name.startswith("fracture") for name in bundled_models())
    if not installed:
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "ServiceUnavailableError"
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0.0 <= body["fracture"]["probability"] <= 1.0 and body["findings"] is None
    assert body["heatmap_method"] == "gradcam"
    heatmap = api.client.get(body["heatmap_url"], headers=headers)
    assert heatmap.status_code == 200 and heatmap.content[:4] == b"\x89PNG"


def test_cxr_results_serve_the_detector_eigencam_at_the_image_size(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    assert body["heatmap_method"] == "eigencam"
    assert body["heatmap_url"] == f"/v1/results/{body['result_id']}/heatmap"
    response = api.client.get(body["heatmap_url"], headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    rgba = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (*read_image(TB_IMAGE).pixels.shape[:2], 4)
    assert 0 < (rgba[..., 3] > 0).mean() <= 0.2, "the hottest fifth at most is coloured"
    # The overlay stays the boxes the CLI draws; the heat map is the viewer's to toggle.
    overlay = api.client.get(body["image_url"], headers=headers).content
    assert overlay != response.content
    with api.services.db.session(read_only=True) as session:
        kinds = [
            r.action for r in session.scalars(select(AuditRecord)) if r.action == "result.heatmap"
        ]
    assert kinds == ["result.heatmap"]


def _onnx_detector(folder: Path) -> Path:
    """A small detector stored as an ONNX export: it answers, but has no EigenCAM."""
    card = ModelCard(
        DETECTOR, "detection", "9.0.0", ("ActiveTuberculosis",), (64, 64),
        preprocessing=Preprocessing(channels=1),
    )  # fmt: skip
    model = create_model("yolov5n", num_classes=1, in_channels=1)
    weights = export_onnx(model, folder / "model.onnx", 64, channels=1)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    card = dataclasses.replace(card, weights_file=weights.name, weights_sha256=digest)
    save_card(card, folder / "card.json")
    return folder / "card.json"


def test_a_result_without_a_heat_map_answers_404(api: Api, tmp_path: Path) -> None:
    registered = api.client.post(
        f"/v1/models/{DETECTOR}/versions",
        json={"card_path": str(_onnx_detector(tmp_path)), "stage": "production"},
        headers=api.as_role("admin"),
    )
    assert registered.status_code == 201, registered.text
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    assert body["model"]["version"] == "9.0.0"
    assert body["heatmap_url"] is None and body["heatmap_method"] is None
    response = api.client.get(f"/v1/results/{body['result_id']}/heatmap", headers=headers)
    assert response.status_code == 404
    assert "no heatmap" in response.json()["error"]["message"]
    other = api.client.get(f"/v1/results/{body['result_id']}/image", headers=headers)
    assert other.status_code == 200


def test_audit_chain_verifies_after_a_series_of_requests(api: Api) -> None:
    headers = api.as_role("clinician")
    name = str(pydicom.dcmread(CHEST_DICOM).PatientName)
    study = api.upload(CHEST_DICOM)
    sid = study["id"]
    api.client.post(f"/v1/studies/{sid}/analyze", json={"task": "cxr"}, headers=headers)
    api.client.get(f"/v1/studies/{sid}", headers=headers)
    api.client.get(f"/v1/studies/{sid}/preview.png", headers=headers)
    api.client.get("/v1/studies", headers=api.as_role("auditor"))  # denied, audited
    api.client.post(f"/v1/studies/{sid}/analyze", json={"task": "cxr"}, headers=headers)
    api.client.delete(f"/v1/studies/{sid}", headers=headers)
    verdict = AuditLog(api.services.db).verify()
    assert verdict.ok, verdict
    with api.services.db.session(read_only=True) as session:
        records = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
    actions = [(r.action, r.outcome) for r in records if r.study_id == sid]
    assert actions == [
        ("study.upload", "ok"),
        ("study.analyze", "ok"),
        ("study.read", "ok"),
        ("study.preview", "ok"),
        ("study.analyze", "ok"),
        ("study.delete", "ok"),
    ]
    analyses = [r for r in records if r.action == "study.analyze"]
    assert {(r.model_name, r.model_version) for r in analyses} == {(DETECTOR, DETECTOR_VERSION)}
    assert all(r.input_sha256 == study["sha256"] and r.latency_ms for r in analyses)
    assert name not in " ".join(str(vars(r)) for r in records)
    assert read_image(CHEST_DICOM).pixels.shape == (1024, 1024)
