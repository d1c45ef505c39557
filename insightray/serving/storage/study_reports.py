"""A study's radiology report: saved encrypted, one row per version, erased with the study.

The text goes into the encrypted blob store as ``{"study_id": ..., "text": ...}`` (so a blob
belongs to one study and is erased with it, even when two studies have the same wording); the
``study_reports`` row keeps the blob's key, a hash of the text for the audit trail, who saved
it and when. The newest row is the report in force.

Example:
    >>> row = save_report(services, who, study, "FINDINGS: Lungs are clear.")  # doctest: +SKIP
    >>> report_text(services, row)  # doctest: +SKIP
    'FINDINGS: Lungs are clear.'
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import delete, select

from insightray.serving.deps import Principal, Services
from insightray.serving.storage.db.models import Study
from insightray.serving.storage.db.study_reports import StudyReport

__all__ = ["delete_reports", "latest_report", "report_text", "save_report"]


def save_report(
    services: Services, who: Principal, study: Study, text: str, started: float | None = None
) -> StudyReport:
    """Store ``text`` as the study's report in force, audited (``study.report.save``) in the
    transaction that adds its row."""
    payload = json.dumps({"study_id": study.id, "text": text}, ensure_ascii=False).encode()
    digest = hashlib.sha256(text.encode()).hexdigest()
    row = StudyReport(
        study_id=study.id,
        text_key=services.store.put(payload),
        text_sha256=digest,
        username=who.username,
        role=who.role,
    )
    with services.db.session() as session:
        session.add(row)
        session.flush()
        services.record(
            who, "study.report.save", "ok", started, session, study_id=study.id,
            input_sha256=digest,
        )  # fmt: skip
        session.expunge(row)
    return row


def latest_report(services: Services, study_id: str) -> StudyReport | None:
    """The study's report in force (its newest saved version), or ``None``."""
    query = (
        select(StudyReport)
        .where(StudyReport.study_id == study_id)
        .order_by(StudyReport.created_at.desc(), StudyReport.id.desc())
    )
    with services.db.session(read_only=True) as session:
        row = session.scalars(query).first()
        if row is not None:
            session.expunge(row)
    return row


def report_text(services: Services, row: StudyReport) -> str:
    """The decrypted text of a saved report."""
    document = json.loads(services.store.get(row.text_key))
    return str(document["text"])


def delete_reports(services: Services, study_id: str) -> int:
    """Erase every saved version of a study's report (rows and blobs); how many rows."""
    with services.db.session() as session:
        keys = set(
            session.scalars(select(StudyReport.text_key).where(StudyReport.study_id == study_id))
        )
        gone = session.execute(delete(StudyReport).where(StudyReport.study_id == study_id))
    for key in keys:  # each blob names its study: no other study shares it
        services.store.delete(key)
    return int(getattr(gone, "rowcount", 0) or 0)
