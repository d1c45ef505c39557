"""``/v1/pacs``: the PACS verbs for admins: search, open in the viewer, pull (analyse, SR back),
dead letters, status.

Admins only (``pacs_admin``), every call audited (``pacs.search``, ``pacs.pull``...; never the
search terms or UIDs, which identify patients). The service talks to the PACS its settings
name (``INSIGHTRAY_PACS_DICOMWEB_URL``) with the routing file ``INSIGHTRAY_PACS_ROUTING``;
a PACS that cannot be reached answers 503, one that refuses 502, a study it does not have 404.
See :mod:`insightray.serving.hosting.pacs`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.serving.deps import AuditDep, PacsAdmin, ServicesDep
from insightray.serving.hosting.pacs import open_study

router = APIRouter(tags=["pacs"])

#: A DICOM UID: digits and dots, at most 64 characters.
UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"


class PullRequest(BaseModel):
    """The study to retrieve from the configured PACS."""

    model_config = ConfigDict(extra="forbid")

    study_uid: str = Field(max_length=64, pattern=UID_PATTERN, description="Study Instance UID")


class SearchRequest(BaseModel):
    """QIDO-RS study search terms (DICOM matching); all optional."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str | None = Field(default=None, max_length=64)
    patient_name: str | None = Field(default=None, max_length=64)
    study_date: str | None = Field(default=None, max_length=17, pattern=r"^[0-9-]+$")
    accession: str | None = Field(default=None, max_length=16)
    modality: str | None = Field(default=None, max_length=16, pattern=r"^[A-Z0-9*]+$")
    study_uid: str | None = Field(default=None, max_length=64, pattern=UID_PATTERN)
    limit: int = Field(default=50, ge=1, le=200)


class RetryRequest(BaseModel):
    """The dead letter to handle again (its ``sop`` from ``GET /v1/pacs/dead-letters``)."""

    model_config = ConfigDict(extra="forbid")

    dead_letter: str = Field(pattern=r"^[0-9a-f]{16}$")


@router.post("/v1/pacs/studies/search")
async def search_studies(
    body: SearchRequest, services: ServicesDep, who: PacsAdmin, audit: AuditDep
) -> dict[str, Any]:
    """QIDO-RS search of the configured PACS (``*`` wildcards, ``YYYYMMDD-YYYYMMDD`` ranges).
    The answer holds patient names and IDs, for the admin choosing a study to pull. A POST,
    so that search terms (patient data) never appear in URLs, access logs or proxies."""
    filters = body.model_dump(exclude={"limit"}, exclude_none=True)
    async with audit.failures("pacs.search"):
        studies = await run_in_threadpool(services.pacs.search, filters, body.limit)
    await audit.arecord("pacs.search")
    return {"items": studies}


@router.post("/v1/pacs/pull")
async def pull_study(
    body: PullRequest, services: ServicesDep, who: PacsAdmin, audit: AuditDep
) -> dict[str, Any]:
    """Retrieve a study by WADO-RS, de-identify and seal it, analyse it by the routing rules
    and store the SRs back into the PACS (original identifiers restored on the way out)."""
    async with audit.failures("pacs.pull"):
        outcomes = await run_in_threadpool(services.pacs.pull, body.study_uid)
    await audit.arecord("pacs.pull")
    return {"items": [_outcome(outcome) for outcome in outcomes]}


@router.post("/v1/pacs/open")
async def open_pacs_study(
    body: PullRequest, services: ServicesDep, who: PacsAdmin, audit: AuditDep
) -> dict[str, Any]:
    """Bring a study into the viewer's worklist: each image becomes a study (de-identified and
    encrypted as an upload is), with the boxes of the newest SR filed beside it in the PACS
    as ``sr_findings``. Nothing is analysed or sent back (that is ``/v1/pacs/pull``)."""
    async with audit.failures("pacs.open"):
        studies = await run_in_threadpool(open_study, services, who, body.study_uid)
    await audit.arecord("pacs.open")
    return {"items": studies}


@router.get("/v1/pacs/dead-letters")
async def list_dead_letters(
    services: ServicesDep, who: PacsAdmin, audit: AuditDep
) -> dict[str, Any]:
    """What could not be analysed or sent (still sealed), oldest first, with the reason."""
    async with audit.failures("pacs.dead_letters"):
        found = await run_in_threadpool(services.pacs.dead_letters)
    await audit.arecord("pacs.dead_letters")
    return {"items": [_outcome(outcome) for outcome in found]}


@router.post("/v1/pacs/dead-letters/retry")
async def retry_dead_letter(
    body: RetryRequest, services: ServicesDep, who: PacsAdmin, audit: AuditDep
) -> dict[str, Any]:
    """Handle a dead letter again: analysed and sent back; a new failure dead-letters it anew."""
    async with audit.failures("pacs.retry"):
        outcome = await run_in_threadpool(services.pacs.retry, body.dead_letter)
    await audit.arecord("pacs.retry")
    return _outcome(outcome)


@router.get("/v1/pacs/status")
async def pacs_status(services: ServicesDep, who: PacsAdmin, audit: AuditDep) -> dict[str, Any]:
    """The configured PACS and routing file, whether the PACS answers, the dead-letter count."""
    status = await run_in_threadpool(services.pacs.status)
    await audit.arecord("pacs.status")
    return status


def _outcome(outcome: Any) -> dict[str, Any]:
    """An outcome without its file path (a server detail)."""
    fields: dict[str, Any] = asdict(outcome)
    fields.pop("sr_path", None)
    return fields
