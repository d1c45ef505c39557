"""``POST /v1/studies/{id}/analyze`` and the results: JSON, overlay and heat map PNGs, SR."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import Analyst, AuditDep, AuditTrail, ServicesDep, StudyReader
from insightray.serving.hosting.analysis import analyze, load_result, result_blob
from insightray.serving.storage.studies import get_study, study_results

router = APIRouter(tags=["analysis"])

PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "PNG image"}
}
DICOM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/dicom": {}}, "description": "DICOM SR (TID 1500)"}
}


class AnalyzeRequest(BaseModel):
    """What to run on a study."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    task: Literal["cxr", "fracture"]
    model: str | None = Field(default=None, max_length=128, description="A registered name")


@router.post("/v1/studies/{study_id}/analyze")
async def analyze_study(
    study_id: str,
    body: AnalyzeRequest,
    background: BackgroundTasks,
    services: ServicesDep,
    who: Analyst,
    audit: AuditDep,
) -> dict[str, Any]:
    """Run chest X-ray detection (``cxr``) or fracture classification on a study."""
    study = await run_in_threadpool(get_study, services, who, study_id)
    async with audit.failures("study.analyze", study_id=study.id):  # success: in analyze
        return await analyze(services, who, study, body.task, body.model, background)


@router.get("/v1/studies/{study_id}/results")
def list_results(
    study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """Every result of a study, oldest first."""
    study = get_study(services, who, study_id)
    items = [
        load_result(services, who, r.id)[1]["response"] for r in study_results(services, study.id)
    ]
    audit.record("result.list", study_id=study.id)
    return {"items": items}


@router.get("/v1/results/{result_id}")
def fetch_result(
    result_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """One result (the JSON the analysis returned)."""
    result, document = load_result(services, who, result_id)
    audit.record(
        "result.read", study_id=result.study_id,
        model_name=result.model_name, model_version=result.model_version,
    )  # fmt: skip
    response: dict[str, Any] = document["response"]
    return response


@router.get("/v1/results/{result_id}/image", response_class=Response, responses=PNG)
def result_image(result_id: str, who: StudyReader, audit: AuditDep) -> Response:
    """The overlay: boxes (cxr) or the heat map blended on the image (fracture)."""
    return _blob(audit, result_id, "image", "image/png")


@router.get("/v1/results/{result_id}/heatmap", response_class=Response, responses=PNG)
def result_heatmap(result_id: str, who: StudyReader, audit: AuditDep) -> Response:
    """RGBA heat map the size of the study image (alpha = heat): EigenCAM for ``cxr``
    results, Grad-CAM for ``fracture`` ones (the result's ``heatmap_method``); 404 for a
    result without one (a detector that cannot be explained: ONNX weights, an ensemble)."""
    return _blob(audit, result_id, "heatmap", "image/png")


@router.get("/v1/results/{result_id}/sr", response_class=Response, responses=DICOM)
def result_sr(result_id: str, who: StudyReader, audit: AuditDep) -> Response:
    """The result as a DICOM Structured Report (TID 1500) of the de-identified study; DICOM
    studies analysed with the ``[pacs]`` extra installed only."""
    return _blob(audit, result_id, "sr", "application/dicom")


def _blob(audit: AuditTrail, result_id: str, kind: str, media_type: str) -> Response:
    data = result_blob(audit.services, audit.who, result_id, kind)
    audit.record(f"result.{kind}")
    return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})
