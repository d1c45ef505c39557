"""Studies: upload, list, fetch, delete, preview PNG and raw pixels for the viewer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from insightray.errors import PayloadTooLargeError
from insightray.imaging.upload import viewer_values
from insightray.serving import images
from insightray.serving.deps import AuditDep, ServicesDep, StudyDeleter, StudyReader, StudyWriter
from insightray.serving.hosting.analysis import result_summary
from insightray.serving.storage.studies import (
    decode_study,
    delete_study,
    get_study,
    ingest,
    list_studies,
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
) -> dict[str, Any]:
    """Upload an image; DICOM is de-identified on ingest, then stored encrypted."""
    limit = services.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            "upload", f"the file is over the limit of {limit:,} bytes", "send a smaller file"
        )
    async with audit.failures("study.upload"):  # success: audited by ingest, with the row
        study = await run_in_threadpool(ingest, services, who, data, audit.started)
    return study_json(study, [])


@router.get("")
def list_all(services: ServicesDep, who: StudyReader, audit: AuditDep) -> dict[str, Any]:
    """The caller's studies (admins: everyone's), newest first."""
    items = [
        study_json(study, [result_summary(result) for result in results])
        for study, results in list_studies(services, who)
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
    results = [result_summary(result) for result in study_results(services, study.id)]
    audit.record("study.read", study_id=study.id)
    return study_json(study, results)


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
) -> Response:
    """Little-endian uint16 pixels, row-major; ``value = min + p * (max - min) / 65535``."""
    study = get_study(services, who, study_id)
    image = decode_study(services, study, "modality")
    payload = images.pixel_payload(viewer_values(image))
    audit.record("study.pixels", study_id=study.id)
    headers = {
        "X-Image-Width": str(payload.width),
        "X-Image-Height": str(payload.height),
        "X-Value-Min": repr(payload.value_min),
        "X-Value-Max": repr(payload.value_max),
        "Cache-Control": "no-store",
    }
    return Response(payload.data, media_type="application/octet-stream", headers=headers)
