"""Measurements saved with a study: ``/v1/studies/{id}/measurements``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import AuditDep, ServicesDep, StudyReader, StudyWriter
from insightray.serving.storage.measurements import (
    delete_measurement,
    list_measurements,
    measurement_json,
    save_measurement,
)
from insightray.serving.storage.studies import get_study

router = APIRouter(prefix="/v1/studies", tags=["measurements"])


class MeasurementRequest(BaseModel):
    """One measurement in full-resolution image pixel coordinates."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="length, angle, rectangle or ellipse", max_length=16)
    points: list[list[float]] = Field(max_length=3)
    stats: dict[str, float | int | str] = Field(
        default_factory=dict, description="a region's mean, sd, min, max, count, unit, area"
    )


@router.get("/{study_id}/measurements")
def list_all(
    study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """The study's saved measurements, oldest first."""
    study = get_study(services, who, study_id)
    items = [measurement_json(row) for row in list_measurements(services, study.id)]
    audit.record("measurement.list", study_id=study.id)
    return {"items": items}


@router.post("/{study_id}/measurements", status_code=201)
def save(
    study_id: str, body: MeasurementRequest, services: ServicesDep, who: StudyWriter
) -> dict[str, Any]:
    """Save a measurement; lengths and angles are recomputed from the points."""
    study = get_study(services, who, study_id)
    row = save_measurement(services, who, study, body.kind, body.points, dict(body.stats))
    return measurement_json(row)


@router.delete("/{study_id}/measurements/{measurement_id}", status_code=204)
def delete(study_id: str, measurement_id: str, services: ServicesDep, who: StudyWriter) -> Response:
    """Remove a saved measurement."""
    study = get_study(services, who, study_id)
    delete_measurement(services, who, study.id, measurement_id)
    return Response(status_code=204)
