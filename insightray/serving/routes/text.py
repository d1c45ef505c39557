"""``POST /v1/text/analyze``: entities with context, and ranked diseases, for clinical text."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import AuditDep, ServicesDep, TextUser

router = APIRouter(prefix="/v1/text", tags=["text"])


class TextRequest(BaseModel):
    """A clinical note or patient message."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=100_000)
    explain: bool = Field(
        False, description="Also weigh the words behind the best disease (see explain_method)."
    )
    explain_method: Literal["integrated-gradients", "attention-rollout"] = Field(
        "integrated-gradients",
        description="How to weigh the words when explain is true: integrated gradients (signed, "
        "for the best disease) or attention rollout (the encoder's self-attention, unsigned).",
    )


@router.post("/analyze")
async def analyze_text(
    body: TextRequest,
    services: ServicesDep,
    who: TextUser,
    audit: AuditDep,
) -> dict[str, Any]:
    """``ClinicalResult.to_dict()`` plus the model versions that produced it.

    Text that reads as a radiology report (``report_score`` at least the pipeline's
    threshold) also goes to the report labeller: its CheXpert observations come under
    ``report`` (``null`` otherwise), as ``POST /v1/text/report`` gives them.
    """
    from insightray.nlp.pipeline import REPORT_THRESHOLD
    from insightray.serving.routes.reports import report_labeller

    started = time.perf_counter()
    registry, user = services.registry, who.username
    ner = (await run_in_threadpool(registry.choose, "ner", user)).served
    classifier = (await run_in_threadpool(registry.choose, "text-classification", user)).served
    runner = await run_in_threadpool(services.host.loader.text_runner, ner, classifier)
    result = await services.host.run(runner.analyze, body.text, body.explain, body.explain_method)
    seconds = time.perf_counter() - started
    for entry in (ner, classifier):
        services.metrics.observe_prediction("text", entry.name, entry.version, seconds)
    await audit.arecord(
        "text.analyze", model_name=classifier.name, model_version=classifier.version,
        input_sha256=hashlib.sha256(body.text.encode()).hexdigest(),
    )  # fmt: skip
    models = [{"name": e.name, "version": e.version} for e in (ner, classifier)]
    report = None
    if result.get("report_score", 0.0) >= REPORT_THRESHOLD:
        labeller = await run_in_threadpool(report_labeller)
        report = (await run_in_threadpool(labeller.label, body.text)).to_dict()
    return {**result, "report": report, "models": models}
