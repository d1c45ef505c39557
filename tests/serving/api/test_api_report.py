"""``POST /v1/text/report``: CheXpert observations of a report over HTTP, audited."""

from __future__ import annotations

from sqlalchemy import select

from insightray.serving.storage.db.models import AuditRecord
from tests.serving.api.conftest import Api

REPORT = "INDICATION: Cough.\nFINDINGS: No pneumothorax. Small left pleural effusion."


def test_report_route_labels_and_audits(api: Api) -> None:
    response = api.client.post(
        "/v1/text/report", json={"text": REPORT, "id": "r1"}, headers=api.as_role("researcher")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    status = {o["label"]: o["status"] for o in body["observations"]}
    assert status["Pneumothorax"] == "negative" and status["Pleural Effusion"] == "positive"
    assert body["id"] == "r1" and [s["name"] for s in body["sections"]] == [
        "INDICATION",
        "FINDINGS",
    ]
    assert body["models"] == [{"name": "chexpert_observations", "version": "1.1.0"}]
    with api.services.db.session(read_only=True) as session:
        actions = [r.action for r in session.scalars(select(AuditRecord))]
    assert "text.report" in actions
    assert api.client.post("/v1/text/report", json={"text": REPORT}).status_code == 401
    empty = api.client.post("/v1/text/report", json={"text": ""}, headers=api.as_role("admin"))
    assert empty.status_code == 422


def test_text_analyze_routes_a_report_to_the_labeller(api: Api) -> None:
    sentence = "Chest X-ray shows no evidence of pneumothorax but a small left pleural effusion."
    headers = api.as_role("researcher")
    body = api.client.post("/v1/text/analyze", json={"text": sentence}, headers=headers).json()
    assert body["diseases"] == [] and "radiology report" in body["abstained"]
    observations = {o["label"]: o for o in body["report"]["observations"]}
    assert observations["Pneumothorax"]["status"] == "negative"
    (effusion,) = observations["Pleural Effusion"]["evidence"]
    assert effusion["status"] == "positive" and effusion["laterality"] == ["left"]
    assert effusion["severity"] == ["small"]
    note = api.client.post("/v1/text/analyze", json={"text": "Itchy red rash."}, headers=headers)
    assert note.json()["report"] is None
