"""``POST /v1/text/report``: a radiology report's sections and CheXpert's 14 observations."""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import AuditDep, ServicesDep, TextUser

if TYPE_CHECKING:
    from insightray.nlp.reports import ReportLabeller

router = APIRouter(prefix="/v1/text", tags=["text"])


class ReportRequest(BaseModel):
    """One radiology report, with an optional identifier carried into the answer."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=100_000)
    id: str | None = Field(default=None, max_length=200)


@lru_cache(maxsize=1)
def report_labeller() -> ReportLabeller:
    """The process's labeller (rules and medspaCy load once)."""
    from insightray.nlp.reports import ReportLabeller

    return ReportLabeller()


@router.post("/report")
async def label_report(
    body: ReportRequest, services: ServicesDep, who: TextUser, audit: AuditDep
) -> dict[str, Any]:
    """``ReportLabels.to_dict()`` plus the rules version that produced it.

    The labeller is rule-based (no registry model): ``models`` names its rules file and version.
    """
    started = time.perf_counter()
    labeller = await run_in_threadpool(report_labeller)
    result = await run_in_threadpool(labeller.label, body.text, body.id)
    name, _, version = labeller.rules_name.partition("@")
    services.metrics.observe_prediction("text", name, version, time.perf_counter() - started)
    await audit.arecord(
        "text.report", model_name=name, model_version=version,
        input_sha256=hashlib.sha256(body.text.encode()).hexdigest(),
    )  # fmt: skip
    return {**result.to_dict(), "models": [{"name": name, "version": version}]}
