"""Measurements saved with a study: ``/v1/studies/{id}/measurements``, and as a DICOM SR."""

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
from insightray.serving.storage.studies import get_study, study_bytes

router = APIRouter(prefix="/v1/studies", tags=["measurements"])


class MeasurementRequest(BaseModel):
    """One measurement in full-resolution image pixel coordinates."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="length, angle, rectangle or ellipse", max_length=16)
    points: list[list[float]] = Field(max_length=3)
    stats: dict[str, float | int | str] = Field(
        default_factory=dict, description="a region's mean, sd, min, max, count, unit, area"
    )
    frame: int | None = Field(
        default=None, ge=0, le=65535, description="the frame of a multi-frame image (0-based)"
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


@router.get(
    "/{study_id}/measurements/sr",
    response_class=Response,
    responses={200: {"content": {"application/dicom": {}}, "description": "DICOM SR (TID 1500)"}},
)
def export_sr(study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep) -> Response:
    """The study's measurements as a DICOM SR (TID 1500 Measurement Report) referencing the
    stored, de-identified image: lengths and areas in mm (pixels without a spacing), angles
    in degrees, a region's mean, SD, min and max in its values. DICOM studies only (415
    otherwise); 422 when there is nothing measured; needs the ``[pacs]`` extra."""
    from insightray.pacs.sr_measurements import (  # the [pacs] extra: highdicom
        ReaderMeasurement,
        measurement_sr_bytes,
    )

    study = get_study(services, who, study_id)
    rows = list_measurements(services, study.id)
    measured = [ReaderMeasurement(row.kind, row.points, row.value, row.frame) for row in rows]
    document = measurement_sr_bytes(study_bytes(services, study), measured)
    audit.record("measurement.sr", study_id=study.id)
    return Response(document, media_type="application/dicom", headers={"Cache-Control": "no-store"})


@router.post("/{study_id}/measurements", status_code=201)
def save(
    study_id: str, body: MeasurementRequest, services: ServicesDep, who: StudyWriter
) -> dict[str, Any]:
    """Save a measurement; lengths and angles are recomputed from the points."""
    study = get_study(services, who, study_id)
    row = save_measurement(
        services, who, study, body.kind, body.points, dict(body.stats), body.frame
    )
    return measurement_json(row)


@router.delete("/{study_id}/measurements/{measurement_id}", status_code=204)
def delete(study_id: str, measurement_id: str, services: ServicesDep, who: StudyWriter) -> Response:
    """Remove a saved measurement."""
    study = get_study(services, who, study_id)
    delete_measurement(services, who, study.id, measurement_id)
    return Response(status_code=204)
