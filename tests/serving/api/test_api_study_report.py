"""``/v1/studies/{id}/report``: a study's report stored encrypted, its observations compared
with the real detector's findings both ways, and the AI draft."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
from sqlalchemy import select

from insightray.nlp.reports import ReportLabeller
from insightray.serving.storage.db import AuditRecord, StudyReport
from tests.serving.api.conftest import CHEST_DICOM, DETECTOR, Api
from tests.serving.api.test_api_analysis import TB_IMAGE

CLEAR = "FINDINGS: Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax."
AGREEING = (
    "FINDINGS: Right upper lobe consolidation with a cavitary lesion, concerning for "
    "tuberculosis. Small right pleural effusion."
)


def _analysed_study(api: Api, study_id: str | None = None) -> tuple[str, dict[str, object]]:
    study = {"id": study_id} if study_id else api.upload(TB_IMAGE)
    analysis = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"},
        headers=api.as_role("clinician"),
    ).json()  # fmt: skip
    assert analysis["findings"], "the TBX11K image has tuberculosis boxes"
    return study["id"], analysis


def test_report_saying_clear_flags_every_ai_finding(api: Api) -> None:
    headers = api.as_role("clinician")
    study_id, analysis = _analysed_study(api)
    response = api.client.post(
        f"/v1/studies/{study_id}/report", json={"text": CLEAR}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    status = {o["label"]: o["status"] for o in body["observations"]}
    assert status["Lung Opacity"] == "negative" and status["No Finding"] == "positive"
    comparison = body["comparison"]
    assert comparison["model"] == DETECTOR and comparison["result_id"] == analysis["result_id"]
    flagged = [d for d in comparison["discrepancies"] if d["kind"] == "model_only"]
    assert [d["finding"] for d in flagged] == list(range(len(analysis["findings"])))  # type: ignore[arg-type]
    assert {d["report_status"] for d in flagged} == {"negative"}
    assert "says the lungs are clear" in flagged[0]["message"]
    assert comparison["agreements"] == []
    assert "Pleural Effusion" in comparison["cannot_see"] and "Lung Opacity" in comparison["sees"]


def test_report_naming_findings_agrees_and_says_what_the_model_cannot_see(api: Api) -> None:
    headers = api.as_role("clinician")
    study_id, _ = _analysed_study(api)
    body = api.client.post(
        f"/v1/studies/{study_id}/report", json={"text": AGREEING}, headers=headers
    ).json()
    comparison = body["comparison"]
    kinds = {(d["kind"], d.get("observation")) for d in comparison["discrepancies"]}
    assert ("not_visible", "Pleural Effusion") in kinds
    assert not any(kind == "model_only" for kind, _ in kinds)
    agreed = {a["observation"] for a in comparison["agreements"]}
    assert agreed & {"Consolidation", "Lung Lesion"}
    # GET answers the report in force, and the text is never stored in the clear
    again = api.client.get(f"/v1/studies/{study_id}/report", headers=headers).json()
    assert again["text"] == AGREEING and again["comparison"] == comparison
    with api.services.db.session(read_only=True) as session:
        rows = list(session.scalars(select(StudyReport).where(StudyReport.study_id == study_id)))
        actions = [r.action for r in session.scalars(select(AuditRecord))]
    assert len(rows) == 1 and "study.report.save" in actions and "study.report.read" in actions
    on_disk = api.services.store.path(rows[0].text_key).read_bytes()
    assert b"consolidation" not in on_disk.lower()
    assert json.loads(api.services.store.get(rows[0].text_key))["text"] == AGREEING


def test_before_any_analysis_there_is_nothing_to_compare(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    url = f"/v1/studies/{study['id']}/report"
    text = "IMPRESSION: Left lower lobe pneumonia."
    body = api.client.post(url, json={"text": text}, headers=headers).json()
    assert body["comparison"] is None
    assert {o["label"]: o["status"] for o in body["observations"]}["Pneumonia"] == "positive"


def test_draft_is_marked_ai_generated_and_reads_back_as_the_findings(api: Api) -> None:
    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    missing = api.client.get(f"/v1/studies/{study['id']}/report/draft", headers=headers)
    assert missing.status_code == 404 and "Analyse it first" in missing.text
    study_id, analysis = _analysed_study(api, study["id"])
    draft = api.client.get(f"/v1/studies/{study_id}/report/draft", headers=headers).json()
    assert draft["ai_generated"] is True and draft["result_id"] == analysis["result_id"]
    assert draft["text"].startswith("AI-GENERATED DRAFT") and DETECTOR in draft["banner"]
    assert [s["name"] for s in draft["sections"]][-2:] == ["FINDINGS", "IMPRESSION"]
    positive = ReportLabeller().label(draft["text"]).positive()
    assert positive == ["Lung Opacity"]  # the unedited draft says only what the model found
    saved = api.client.post(f"/v1/studies/{study_id}/report", json={"text": draft["text"]},
                            headers=headers).json()  # fmt: skip
    assert not [d for d in saved["comparison"]["discrepancies"] if d["kind"] == "model_only"]


def test_study_report_permissions_and_deletion(api: Api) -> None:
    study_id, _ = _analysed_study(api)
    url = f"/v1/studies/{study_id}/report"
    assert api.client.post(url, json={"text": CLEAR}).status_code == 401
    assert (
        api.client.post(url, json={"text": CLEAR}, headers=api.as_role("auditor")).status_code
        == 403
    )
    other = api.client.post(url, json={"text": CLEAR}, headers=api.as_role("researcher"))
    assert other.status_code == 404  # someone else's study
    assert (
        api.client.post(url, json={"text": ""}, headers=api.as_role("clinician")).status_code == 422
    )
    assert api.client.get(url, headers=api.as_role("clinician")).status_code == 404  # none yet
    api.client.post(url, json={"text": CLEAR}, headers=api.as_role("clinician"))
    with api.services.db.session(read_only=True) as session:
        (row,) = session.scalars(select(StudyReport).where(StudyReport.study_id == study_id))
    assert api.services.store.exists(row.text_key)
    deleted = api.client.delete(f"/v1/studies/{study_id}", headers=api.as_role("clinician"))
    assert deleted.status_code == 204
    assert not api.services.store.exists(row.text_key)
    with api.services.db.session(read_only=True) as session:
        assert not list(session.scalars(select(StudyReport)))


def test_the_report_in_force_exports_as_a_dicom_sr_of_the_study(api: Api, tmp_path: Path) -> None:
    from insightray.pacs.readback import read_sr
    from tests.pacs.helpers import dciodvfy_errors

    headers = api.as_role("clinician")
    study = api.upload(CHEST_DICOM)
    url = f"/v1/studies/{study['id']}/report"
    assert api.client.get(f"{url}/sr", headers=headers).status_code == 404  # no report yet
    assert api.client.post(url, json={"text": CLEAR}, headers=headers).status_code == 200
    answer = api.client.get(f"{url}/sr", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/dicom"
    written = tmp_path / "report.sr.dcm"
    written.write_bytes(answer.content)
    assert dciodvfy_errors(written) == []
    stored = pydicom.dcmread(io.BytesIO(api.services.store.get(study["sha256"])))
    back = read_sr(written)
    assert back.referenced_sop_instance_uids == (stored.SOPInstanceUID,)  # the de-identified one
    evaluations = {f.label: f.evaluation for f in back.findings}
    assert evaluations["Pleural Effusion"] == evaluations["Pneumothorax"] == "Absent"
    assert evaluations["No Finding"] == "Present"
    with api.services.db.session(read_only=True) as session:
        actions = [r.action for r in session.scalars(select(AuditRecord))]
    assert "study.report.sr" in actions
    png = api.upload(TB_IMAGE)
    png_url = f"/v1/studies/{png['id']}/report"
    assert api.client.post(png_url, json={"text": CLEAR}, headers=headers).status_code == 200
    assert api.client.get(f"{png_url}/sr", headers=headers).status_code == 415
