"""The radiology report written for a study (pasted in the viewer or sent to the API).

Kept in its own module beside :mod:`~insightray.serving.storage.db.models` (same declarative
base). The text itself is free text that may name the patient: it lives only in the encrypted
blob store (``text_key``), never in the database. Rows are never updated: every save is a new
row, so the history says who wrote which version when; the newest row is the report in force.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from insightray.serving.storage.db.models import Base, UtcDateTime, new_id, utc_now

__all__ = ["StudyReport"]


class StudyReport(Base):
    """One saved version of a study's report."""

    __tablename__ = "study_reports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    text_key: Mapped[str] = mapped_column(String(64))
    text_sha256: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
