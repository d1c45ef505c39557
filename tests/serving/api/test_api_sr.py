"""The service keeps each DICOM study's result as a DICOM SR beside its JSON, and serves it."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
import pytest

from tests.pacs.helpers import assert_same_boxes, dciodvfy_errors
from tests.serving.api.conftest import CHEST_DICOM, Api

pytest.importorskip("highdicom")


def test_a_dicom_study_s_result_is_served_as_an_sr(api: Api, tmp_path: Path) -> None:
    from insightray.pacs.readback import read_sr

    headers = api.as_role("clinician")
    study = api.upload(CHEST_DICOM)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    assert body["sr_url"] == f"/v1/results/{body['result_id']}/sr"
    answer = api.client.get(body["sr_url"], headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/dicom"
    (tmp_path / "sr.dcm").write_bytes(answer.content)
    assert dciodvfy_errors(tmp_path / "sr.dcm") == []
    sr = pydicom.dcmread(BytesIO(answer.content))
    report = read_sr(sr)
    assert_same_boxes([f["box"] for f in body["findings"]], [r.box_px for r in report.regions])
    original = pydicom.dcmread(CHEST_DICOM, stop_before_pixels=True)
    assert sr.PatientName != original.PatientName  # the SR is of the de-identified study
    assert sr.StudyInstanceUID != original.StudyInstanceUID
    on_disk = b"".join(
        path.read_bytes() for path in api.services.store.root.rglob("*") if path.is_file()
    )
    assert b"1.2.840.10008.5.1.4.1.1.88.34" not in on_disk  # encrypted at rest


def test_a_png_study_has_no_sr(api: Api) -> None:
    from tests.serving.api.test_api_analysis import TB_IMAGE

    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    body = api.client.post(
        f"/v1/studies/{study['id']}/analyze", json={"task": "cxr"}, headers=headers
    ).json()
    assert body["sr_url"] is None
    missing = api.client.get(f"/v1/results/{body['result_id']}/sr", headers=headers)
    assert missing.status_code == 404
