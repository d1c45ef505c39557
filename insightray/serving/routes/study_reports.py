"""A study's report against its AI findings: ``/v1/studies/{id}/report`` and the AI draft.

``POST`` stores the report text with the study (encrypted, audited), labels it with CheXpert's
14 observations and compares them with the study's newest chest X-ray analysis (detector class
-> observation mapping in ``nlp/resources/detector_observations.json``): discrepancies both
ways, and the observations the detector cannot see. ``GET`` answers the same for the report in
force. ``GET .../report/draft`` writes a structured draft from the AI findings, marked as
AI-generated, for the radiologist to edit and save. ``GET .../report/sr`` answers the report's
observations as a DICOM SR of the study's image, for the PACS.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.errors import NotFoundError
from insightray.nlp.reports.compare import DetectorMapping, compare
from insightray.nlp.reports.draft import draft_report
from insightray.serving.deps import (
    AuditDep,
    Principal,
    Services,
    ServicesDep,
    StudyReader,
    StudyWriter,
)
from insightray.serving.hosting.analysis import load_result
from insightray.serving.routes.reports import report_labeller
from insightray.serving.storage.db.models import Study
from insightray.serving.storage.db.study_reports import StudyReport
from insightray.serving.storage.studies import get_study, study_bytes, study_results
from insightray.serving.storage.study_reports import latest_report, report_text, save_report

router = APIRouter(prefix="/v1/studies", tags=["reports"])

#: The analysis task whose findings a chest X-ray report is compared with.
CXR_TASK = "cxr"


class StudyReportRequest(BaseModel):
    """The report's text (replaces the study's report in force; earlier versions are kept)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=100_000)


@lru_cache(maxsize=1)
def detector_mapping() -> DetectorMapping:
    """The process's detector-to-observation mapping."""
    return DetectorMapping()


@router.post("/{study_id}/report")
async def save(
    study_id: str, body: StudyReportRequest, services: ServicesDep, who: StudyWriter
) -> dict[str, Any]:
    """Save the study's report; answer its observations and the discrepancies with the AI."""
    started = time.perf_counter()
    study = await run_in_threadpool(get_study, services, who, study_id)
    labeller = await run_in_threadpool(report_labeller)
    labels = await run_in_threadpool(labeller.label, body.text)  # 422 before anything is kept
    row = await run_in_threadpool(save_report, services, who, study, body.text, started)
    answer = await run_in_threadpool(_answer, services, who, study, body.text, labels.to_dict())
    return {**answer, "saved_at": row.created_at.isoformat(), "saved_by": row.username}


@router.get("/{study_id}/report")
async def fetch(
    study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """The report in force, its observations and the discrepancies with the newest analysis."""
    study = await run_in_threadpool(get_study, services, who, study_id)
    row, text = await run_in_threadpool(_report_in_force, services, study)
    labeller = await run_in_threadpool(report_labeller)
    labels = await run_in_threadpool(labeller.label, text)
    answer = await run_in_threadpool(_answer, services, who, study, text, labels.to_dict())
    await audit.arecord("study.report.read", study_id=study.id)
    return {**answer, "saved_at": row.created_at.isoformat(), "saved_by": row.username}


@router.get(
    "/{study_id}/report/sr",
    response_class=Response,
    responses={200: {"content": {"application/dicom": {}}, "description": "DICOM SR (TID 1500)"}},
)
def export_sr(study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep) -> Response:
    """The report in force as a DICOM SR (TID 1500) of the stored, de-identified image: one
    image-level finding per observation the report mentions, evaluated Present, Absent or
    Uncertain, by the rules named as the algorithm. DICOM studies only (415 otherwise); 404
    without a report; needs the ``[pacs]`` extra."""
    from insightray.pacs.sr_report import report_sr_bytes  # the [pacs] extra: highdicom

    study = get_study(services, who, study_id)
    _, text = _report_in_force(services, study)
    labels = report_labeller().label(text)
    document = report_sr_bytes(study_bytes(services, study), labels)
    audit.record("study.report.sr", study_id=study.id)
    return Response(document, media_type="application/dicom", headers={"Cache-Control": "no-store"})


@router.get("/{study_id}/report/draft")
def draft(
    study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """A structured draft report from the study's newest chest X-ray analysis, marked
    AI-generated (``ai_generated: true`` and a banner first in ``text``)."""
    study = get_study(services, who, study_id)
    analysis = _newest_cxr(services, who, study)
    if analysis is None:
        raise NotFoundError(
            f"study {study_id}", "no chest X-ray analysis to draft from",
            'analyse it first: POST /v1/studies/{id}/analyze {"task": "cxr"}',
        )  # fmt: skip
    model = analysis["model"]
    size = (study.width, study.height) if study.width and study.height else None
    result = draft_report(
        analysis.get("findings") or [], model["name"], model["version"], detector_mapping(),
        image_size=size, view=study.meta.get("view"),
    )  # fmt: skip
    audit.record(
        "study.report.draft", study_id=study.id, model_name=model["name"],
        model_version=model["version"],
    )  # fmt: skip
    return {**result, "study_id": study.id, "result_id": analysis["result_id"]}


def _report_in_force(services: Services, study: Study) -> tuple[StudyReport, str]:
    """The study's newest saved report and its text.

    Raises:
        NotFoundError: No report was saved for the study.
    """
    row = latest_report(services, study.id)
    if row is None:
        raise NotFoundError(
            f"report of study {study.id}", "no report saved", "POST the report's text first"
        )
    return row, report_text(services, row)


def _answer(
    services: Services, who: Principal, study: Study, text: str, labels: dict[str, Any]
) -> dict[str, Any]:
    """The labelled report and its comparison with the newest chest X-ray analysis."""
    analysis = _newest_cxr(services, who, study)
    comparison = None
    if analysis is not None:
        statuses = {o["label"]: o["status"] for o in labels["observations"]}
        comparison = compare(
            analysis.get("findings") or [], statuses, analysis["model"]["name"],
            detector_mapping(),
        )  # fmt: skip
        comparison["result_id"] = analysis["result_id"]
        comparison["model_version"] = analysis["model"]["version"]
    name, _, version = report_labeller().rules_name.partition("@")
    return {
        "study_id": study.id,
        "text": text,
        "sections": labels["sections"],
        "observations": labels["observations"],
        "comparison": comparison,
        "models": [{"name": name, "version": version}],
    }


def _newest_cxr(services: Services, who: Principal, study: Study) -> dict[str, Any] | None:
    """The response of the study's newest chest X-ray analysis, or ``None``."""
    rows = [r for r in study_results(services, study.id) if r.task == CXR_TASK]
    if not rows:
        return None
    response: dict[str, Any] = load_result(services, who, rows[-1].id)[1]["response"]
    return response
