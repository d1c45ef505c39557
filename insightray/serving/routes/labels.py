"""The labelling loop: the queue of studies worth labelling, and saving a person's label.

- ``GET /v1/labels/queue?strategy=entropy&n=20``: the caller's unlabelled studies ranked by
  the served fracture model's uncertainty (:func:`insightray.active.rank_for_labelling`),
  most informative first: ``{"strategy", "model", "items": [{"study_id", "score"}]}``.
- ``POST /v1/labels/{study_id}``: save ``{"task": "fracture", "fractured": true}`` or
  ``{"task": "detection", "boxes": [{"label": "...", "box": [x1, y1, x2, y2]}]}``; every save
  is a new row with the user and time, audited as ``label.save``.
- ``GET /v1/labels/{study_id}``: the study's label history, oldest first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from insightray.active import CLASSIFIER_STRATEGIES, rank_for_labelling
from insightray.errors import ConfigError
from insightray.serving.deps import (
    Analyst,
    AuditDep,
    Principal,
    Services,
    ServicesDep,
    StudyReader,
    StudyWriter,
)
from insightray.serving.hosting.inference import FractureRunner
from insightray.serving.storage.db.labels import ImageLabel
from insightray.serving.storage.labels import label_json, labels_in_force, save_label
from insightray.serving.storage.studies import decode_study, get_study, list_studies

router = APIRouter(prefix="/v1/labels", tags=["labels"])


class BoxLabel(BaseModel):
    """One box in image pixels."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=64)
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2")


class LabelRequest(BaseModel):
    """A person's label of one study."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["fracture", "detection"]
    fractured: bool | None = None
    boxes: list[BoxLabel] | None = Field(default=None, max_length=200)


def _rank(
    services: Services, who: Principal, runner: FractureRunner, strategy: str, n: int
) -> dict[str, Any]:
    studies = {study.id: study for study, _ in list_studies(services, who)}
    done = labels_in_force(services.db, "fracture", list(studies))
    pool = [study_id for study_id in studies if study_id not in done]
    if not pool:
        return {"strategy": strategy, "model": runner.entry.name, "items": []}

    def reader(study_id: str) -> Any:
        return decode_study(services, studies[study_id]).pixels

    queue = rank_for_labelling(
        runner.predictor, pool, strategy, n, labelled=list(done), reader=reader
    )
    items = [{"study_id": item.path, "score": round(item.score, 6)} for item in queue.items]
    return {"strategy": strategy, "model": queue.model, "items": items}


@router.get("/queue")
async def queue(
    services: ServicesDep,
    who: Analyst,
    audit: AuditDep,
    strategy: Annotated[str, Query(description=f"one of {CLASSIFIER_STRATEGIES}")] = "entropy",
    n: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """The caller's unlabelled studies, most informative for the fracture model first."""
    if strategy not in CLASSIFIER_STRATEGIES:
        raise ConfigError(f"strategy {strategy!r}", "unknown", f"use {CLASSIFIER_STRATEGIES}")
    selection = await run_in_threadpool(services.registry.choose, "fracture", who.username)
    runner = await services.host.image_runner(selection.served)
    if not isinstance(runner, FractureRunner):
        raise ConfigError("fracture model", "the served model is not a classifier", "fix it")
    async with audit.failures("label.queue"):
        result = await services.host.run(_rank, services, who, runner, strategy, n)
    await audit.arecord("label.queue", model_name=runner.entry.name)
    return result


@router.post("/{study_id}", status_code=201)
def save(
    study_id: str, body: LabelRequest, services: ServicesDep, who: StudyWriter, audit: AuditDep
) -> dict[str, Any]:
    """Save the caller's label of a study (a new row; the newest is the label in force)."""
    study = get_study(services, who, study_id)
    value = body.model_dump(exclude={"task"}, exclude_none=True)
    row = save_label(services, who, study, body.task, value, audit.started)
    return label_json(row)


@router.get("/{study_id}")
def history(
    study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """Every label of a study, oldest first, with who gave it and when."""
    study = get_study(services, who, study_id)
    query = (
        select(ImageLabel)
        .where(ImageLabel.study_id == study.id)
        .order_by(ImageLabel.created_at, ImageLabel.id)
    )
    with services.db.session(read_only=True) as session:
        items = [label_json(row) for row in session.scalars(query)]
    audit.record("label.read", study_id=study.id)
    return {"items": items}
