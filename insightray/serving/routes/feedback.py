"""Readers' feedback on a result's findings: ``/v1/results/{id}/feedback``.

A reader accepts, rejects or corrects each box of a detector result (``finding``: its index
in the result's ``findings``, then ``candidates``) and accepts or rejects a fracture result's
label (``finding`` 0). Live precision and agreement per model version, and the retraining
trigger, are on ``/metrics`` (see :mod:`insightray.serving.hosting.feedback`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import AuditDep, ServicesDep, StudyReader, StudyWriter
from insightray.serving.hosting.feedback import feedback_json, list_feedback, save_feedback

router = APIRouter(prefix="/v1/results", tags=["feedback"])


class FeedbackRequest(BaseModel):
    """A reader's verdict on one finding."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["accept", "reject", "correct"] = Field(
        description="accept (the model is right), reject (it is wrong) or correct (a box in "
        "the right place with the wrong class; give label)"
    )
    label: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[\w .,()/+-]+$",
        description="the right class of a corrected box (a model label, not a note)",
    )  # fmt: skip


@router.put("/{result_id}/feedback/{finding}")
def judge(
    result_id: str,
    body: FeedbackRequest,
    services: ServicesDep,
    who: StudyWriter,
    finding: int = Path(ge=0, le=10_000, description="the finding's index (0 for a label)"),
) -> dict[str, Any]:
    """Accept, reject or correct one finding of a result (audited ``feedback.save``); the
    caller's earlier verdict on it is replaced."""
    row = save_feedback(services, who, result_id, finding, body.verdict, body.label)
    return feedback_json(row)


@router.get("/{result_id}/feedback")
def judged(
    result_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """The caller's verdicts on a result's findings."""
    result, rows = list_feedback(services, who, result_id)
    audit.record(
        "feedback.list", study_id=result.study_id,
        model_name=result.model_name, model_version=result.model_version,
    )  # fmt: skip
    return {"items": [feedback_json(row) for row in rows]}
