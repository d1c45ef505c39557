"""``GET /v1/studies/{id}/tags``: the stored DICOM header for the viewer's tag browser.

Identifying values (names, IDs, dates, private elements: see :mod:`insightray.imaging.tags`)
are sent only to roles with :attr:`~insightray.serving.security.roles.Permission.PHI_READ`;
other roles get the row with its value withheld. The stored file is the de-identified one when
the service de-identifies on ingest, so even PHI_READ sees its pseudonyms and cleaned dates.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from insightray.errors import InputError
from insightray.imaging.tags import header_rows
from insightray.serving.deps import AuditDep, ServicesDep, StudyReader
from insightray.serving.security.roles import Permission, can
from insightray.serving.storage.studies import get_study, study_bytes

router = APIRouter(prefix="/v1/studies", tags=["studies"])

#: What a role without PHI_READ sees in place of an identifying value.
WITHHELD = "(withheld: identifying)"


@router.get("/{study_id}/tags")
async def tags(
    study_id: str, services: ServicesDep, who: StudyReader, audit: AuditDep
) -> dict[str, Any]:
    """Every header element of a DICOM study; identifying values only for PHI_READ."""
    study = get_study(services, who, study_id)
    if "dicom" not in study.content_type:
        raise InputError(
            f"study {study.id}", "it is not a DICOM file and has no tags", "open a DICOM study"
        )
    data = await run_in_threadpool(study_bytes, services, study)
    rows = await run_in_threadpool(header_rows, data)
    phi = can(who.role, Permission.PHI_READ)
    items = [
        {**row.to_dict(), "value": row.value if phi or not row.phi else WITHHELD} for row in rows
    ]
    audit.record("study.tags", study_id=study.id)
    return {
        "items": items,
        "phi_visible": phi,
        "deidentified": bool(study.meta.get("deidentified")),
    }
