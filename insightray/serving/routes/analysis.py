"""``POST /v1/studies/{id}/analyze`` and the results: JSON, overlay and heat map PNGs."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import Principal, Services, get_services, require
from insightray.serving.hosting.analysis import analyze, load_result, result_blob
from insightray.serving.security.roles import Permission
from insightray.serving.storage.studies import get_study, study_results

router = APIRouter(tags=["analysis"])

ServicesDep = Annotated[Services, Depends(get_services)]
Reader = Annotated[Principal, Depends(require(Permission.STUDY_READ))]
PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "PNG image"}
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
    who: Annotated[Principal, Depends(require(Permission.ANALYZE))],
) -> dict[str, Any]:
    """Run chest X-ray detection (``cxr``) or fracture classification on a study."""
    started = time.perf_counter()
    study = await run_in_threadpool(get_study, services, who, study_id)
    try:
        return await analyze(services, who, study, body.task, body.model, background)
    except Exception as error:
        outcome = f"error:{type(error).__name__.lower()}"
        await run_in_threadpool(
            services.record, who, "study.analyze", outcome, started, study_id=study.id
        )
        raise


@router.get("/v1/studies/{study_id}/results")
def list_results(study_id: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    """Every result of a study, oldest first."""
    started = time.perf_counter()
    study = get_study(services, who, study_id)
    items = [
        load_result(services, who, r.id)[1]["response"] for r in study_results(services, study.id)
    ]
    services.record(who, "result.list", "ok", started, study_id=study.id)
    return {"items": items}


@router.get("/v1/results/{result_id}")
def fetch_result(result_id: str, services: ServicesDep, who: Reader) -> dict[str, Any]:
    """One result (the JSON the analysis returned)."""
    started = time.perf_counter()
    result, document = load_result(services, who, result_id)
    services.record(
        who, "result.read", "ok", started, study_id=result.study_id,
        model_name=result.model_name, model_version=result.model_version,
    )  # fmt: skip
    response: dict[str, Any] = document["response"]
    return response


@router.get("/v1/results/{result_id}/image", response_class=Response, responses=PNG)
def result_image(result_id: str, services: ServicesDep, who: Reader) -> Response:
    """The overlay: boxes (cxr) or the heat map blended on the image (fracture)."""
    return _png(services, who, result_id, "image")


@router.get("/v1/results/{result_id}/heatmap", response_class=Response, responses=PNG)
def result_heatmap(result_id: str, services: ServicesDep, who: Reader) -> Response:
    """RGBA heat map the size of the study image (alpha = heat); fracture results only."""
    return _png(services, who, result_id, "heatmap")


def _png(services: Services, who: Principal, result_id: str, kind: str) -> Response:
    started = time.perf_counter()
    data = result_blob(services, who, result_id, kind)
    services.record(who, f"result.{kind}", "ok", started)
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})
