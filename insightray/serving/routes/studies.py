"""Studies: upload, list, fetch, delete, preview PNG and raw pixels for the viewer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from insightray.errors import PayloadTooLargeError
from insightray.serving import images
from insightray.serving.deps import AuditDep, ServicesDep, StudyDeleter, StudyReader, StudyWriter
from insightray.serving.hosting.analysis import result_summary
from insightray.serving.hosting.triage import study_triage
from insightray.serving.storage.db.models import Result, Study
from insightray.serving.storage.studies import (
    decode_study,
    delete_study,
    get_study,
    ingest,
    list_studies,
    prior_studies,
    study_json,
    study_results,
)

router = APIRouter(prefix="/v1/studies", tags=["studies"])

PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "PNG image"}
}


@router.post("", status_code=201)
async def upload_study(
    file: Annotated[UploadFile, File(description="A DICOM, PNG or JPEG radiograph")],
    services: ServicesDep,
    who: StudyWriter,
    audit: AuditDep,
    response: Response,
) -> dict[str, Any]:
    """Upload an image; DICOM is de-identified on ingest, then stored encrypted.

    The same image again (same de-identified content hash) answers 200 with the existing
    study and ``"duplicate": true`` instead of making a second one.
    """
    limit = services.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            "upload", f"the file is over the limit of {limit:,} bytes", "send a smaller file"
        )
    async with audit.failures("study.upload"):  # success: audited by ingest, with the row
        study, duplicate = await run_in_threadpool(ingest, services, who, data, audit.started)
    if not duplicate:
        return study_json(study, [])
    # The same image again: no second study; 200 with the existing one, flagged.
    results = await run_in_threadpool(study_results, services, study.id)
    body = _with_triage(services, study, results)
    response.status_code = 200
    return {**body, "duplicate": True}


@router.get("")
def list_all(services: ServicesDep, who: StudyReader, audit: AuditDep) -> dict[str, Any]:
    """The caller's studies (admins: everyone's), newest first."""
    items = [
        _with_triage(services, study, results) for study, results in list_studies(services, who)
    ]
    audit.record("study.list")
    return {"items": items}


@router.get("/{study_id}")
def fetch(
    study_id: str,
    services: ServicesDep,
    who: StudyReader,
    audit: AuditDep,
) -> dict[str, Any]:
    """One study with summaries of its results."""
    study = get_study(services, who, study_id)
    body = _with_triage(services, study, study_results(services, study.id))
    audit.record("study.read", study_id=study.id)
    return body


@router.get("/{study_id}/priors")
def priors(
    study_id: str,
    services: ServicesDep,
    who: StudyReader,
    audit: AuditDep,
) -> dict[str, Any]:
    """Earlier studies of the same patient (same pseudonym, earlier study date) the caller
    may see, newest first, for side-by-side comparison. Each says ``days_before``, the
    interval between the two study dates; the dates themselves are never sent or logged."""
    study = get_study(services, who, study_id)
    items = [
        {**_with_triage(services, prior, results), "days_before": days}
        for prior, results, days in prior_studies(services, who, study)
    ]
    audit.record("study.priors", study_id=study.id)
    return {"items": items}


def _with_triage(services: ServicesDep, study: Study, results: list[Result]) -> dict[str, Any]:
    """The study's API form with its results and the worklist's AI summary (``triage``)."""
    body = study_json(study, [result_summary(result) for result in results])
    body["triage"] = study_triage(services, results)
    return body


@router.delete("/{study_id}", status_code=204)
def delete(
    study_id: str,
    services: ServicesDep,
    who: StudyDeleter,
    audit: AuditDep,
) -> Response:
    """Delete a study: its encrypted image and results are erased from the store."""
    delete_study(services, who, study_id, audit.started)  # audited with the deletion
    return Response(status_code=204)


@router.get("/{study_id}/preview.png", response_class=Response, responses=PNG)
def preview(
    study_id: str,
    services: ServicesDep,
    who: StudyReader,
    audit: AuditDep,
) -> Response:
    """An 8-bit PNG at the study's default window (rendered on the server)."""
    study = get_study(services, who, study_id)
    png = images.preview_png(decode_study(services, study))
    audit.record("study.preview", study_id=study.id)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get(
    "/{study_id}/pixels",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "uint16 LE"}},
)
def pixels(
    study_id: str,
    services: ServicesDep,
    who: StudyReader,
    audit: AuditDep,
    max_side: Annotated[int, Query(ge=16, le=images.MAX_LEVEL_SIDE)] = images.OVERVIEW_SIDE,
    region: Annotated[str | None, Query(pattern=r"^\d+,\d+,\d+,\d+$")] = None,
    frame: Annotated[int | None, Query(ge=0, le=65535)] = None,
) -> Response:
    """Little-endian uint16 pixels, row-major; ``value = min + p * (max - min) / 65535``.

    A level of the image no longer than ``max_side`` on either side (the whole image by
    default, downsampled by area averaging when larger), or of ``region`` (``x,y,w,h`` in
    full-resolution pixels) for a tile at full detail. ``X-Full-Width/Height`` give the
    image's size, ``X-Region`` the part sent; min and max are the whole image's, so every
    level and tile shares one value scale. ``frame`` picks a frame of a multi-frame study
    (default the first; ``X-Frame`` and ``X-Frames`` say which and how many); each frame has
    its own min and max.
    """
    study = get_study(services, who, study_id)
    image = decode_study(services, study, "modality", frame)
    box = None if region is None else tuple(int(part) for part in region.split(","))
    payload = images.pixel_level(image, max_side, box)  # type: ignore[arg-type]
    audit.record("study.pixels", study_id=study.id)
    headers = {
        "X-Image-Width": str(payload.width),
        "X-Image-Height": str(payload.height),
        "X-Full-Width": str(payload.full_width),
        "X-Full-Height": str(payload.full_height),
        "X-Region": ",".join(str(v) for v in payload.region),
        "X-Value-Min": repr(payload.value_min),
        "X-Value-Max": repr(payload.value_max),
        "X-Frame": str(image.meta.frame or 0),
        "X-Frames": str(image.meta.frames),
        "Cache-Control": "no-store",
    }
    return Response(payload.data, media_type="application/octet-stream", headers=headers)
