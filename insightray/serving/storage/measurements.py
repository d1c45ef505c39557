"""Measurements saved with a study: validated, recomputed where the service can, listed.

Lengths and angles are recomputed here from the saved points and the study's spacing, so a
saved value never depends on the browser's arithmetic. A region's statistics (mean, SD in
modality units) come from the viewer, which holds the pixels; the service keeps them as sent,
with the region's geometry.

Example:
    >>> points = [[0, 0], [300, 0]]
    >>> row = save_measurement(services, who, study, "length", points, {})  # doctest: +SKIP
    >>> measurement_json(row)["value"]["unit"]  # doctest: +SKIP
    'mm'
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select

from insightray.errors import InputError, NotFoundError
from insightray.imaging.measure import angle, length
from insightray.serving.deps import Principal, Services
from insightray.serving.storage.db.models import Measurement, Study
from insightray.serving.storage.studies import study_frames

__all__ = [
    "KINDS",
    "delete_measurement",
    "list_measurements",
    "measurement_json",
    "save_measurement",
]

#: Each kind of measurement and how many points it takes.
KINDS = {"length": 2, "angle": 3, "rectangle": 2, "ellipse": 2}
#: Region statistics kept from the viewer.
REGION_FIELDS = ("mean", "sd", "min", "max", "count", "unit", "area", "area_unit")


def save_measurement(
    services: Services,
    who: Principal,
    study: Study,
    kind: str,
    points: list[list[float]],
    stats: dict[str, Any],
    frame: int | None = None,
) -> Measurement:
    """Validate and store one measurement on ``study`` (already checked visible), on
    ``frame`` of a multi-frame study (kept only for those: one frame has no number).

    Raises:
        InputError: An unknown kind, the wrong number of points, points off the image, or a
            frame the study does not have.
    """
    subject = f"measurement on study {study.id}"
    if kind not in KINDS:
        raise InputError(subject, f"unknown kind {kind!r}", f"use one of {', '.join(KINDS)}")
    if len(points) != KINDS[kind] or any(len(p) != 2 for p in points):
        raise InputError(
            subject, f"a {kind} takes {KINDS[kind]} (x, y) points", "send them as [[x, y], ...]"
        )
    width, height = study.width or 0, study.height or 0
    for x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)) or not (
            -1 <= x <= width + 1 and -1 <= y <= height + 1
        ):
            raise InputError(subject, "a point lies off the image", "measure inside the image")
    frames = study_frames(study)
    if frame is not None and not 0 <= frame < frames:
        raise InputError(
            subject, f"the study has {frames} frame(s), not a frame {frame}",
            f"give a frame from 0 to {frames - 1}",
        )  # fmt: skip
    row = Measurement(
        study_id=study.id,
        frame=frame if frames > 1 else None,
        owner_id=who.user_id,
        kind=kind,
        points=[[float(x), float(y)] for x, y in points],
        value=_value(study, kind, points, stats),
    )
    with services.db.session() as session:
        session.add(row)
        session.flush()
        services.record(who, "measurement.save", "ok", None, session, study_id=study.id)
        session.expunge(row)
    return row


def _value(
    study: Study, kind: str, points: list[list[float]], stats: dict[str, Any]
) -> dict[str, Any]:
    spacing = study.pixel_spacing
    source = study.meta.get("spacing_source", "PixelSpacing") if spacing else None
    if kind == "length":
        return length(points, spacing, source)
    if kind == "angle":
        return {"value": round(angle(points), 2), "unit": "deg", "warning": None}
    kept = {key: stats[key] for key in REGION_FIELDS if key in stats}
    for key in ("mean", "sd", "min", "max", "area"):
        if key in kept and not isinstance(kept[key], int | float):
            raise InputError(
                f"measurement on study {study.id}", f"{key} is not a number", "send numbers"
            )
    return kept


def list_measurements(services: Services, study_id: str) -> list[Measurement]:
    """A study's measurements, oldest first."""
    query = (
        select(Measurement).where(Measurement.study_id == study_id).order_by(Measurement.created_at)
    )
    with services.db.session(read_only=True) as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    return rows


def delete_measurement(
    services: Services, who: Principal, study_id: str, measurement_id: str
) -> None:
    """Remove one measurement of a study.

    Raises:
        NotFoundError: No such measurement on this study.
    """
    with services.db.session() as session:
        row = session.get(Measurement, measurement_id)
        if row is None or row.study_id != study_id:
            raise NotFoundError(
                f"measurement {measurement_id}",
                "no such measurement",
                "list the study's measurements",
            )
        session.delete(row)
        services.record(who, "measurement.delete", "ok", None, session, study_id=study_id)


def measurement_json(row: Measurement) -> dict[str, Any]:
    """The API form of a measurement."""
    return {
        "id": row.id,
        "study_id": row.study_id,
        "kind": row.kind,
        "points": row.points,
        "value": row.value,
        "frame": row.frame,
        "created_at": row.created_at.isoformat(),
    }
