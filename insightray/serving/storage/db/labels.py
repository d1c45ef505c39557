"""The labels a person gives a study: fracture / no fracture, or boxes.

Kept in its own module beside :mod:`~insightray.serving.storage.db.models` (same declarative
base). Rows are never updated: every save is a new row with the user and time, so the label
history is the audit of who labelled what when; the newest row per study and task is the
label in force.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from insightray.serving.storage.db.models import Base, UtcDateTime, new_id, utc_now

__all__ = ["LABEL_TASKS", "ImageLabel"]

#: ``fracture``: ``{"fractured": bool}``; ``detection``: ``{"boxes": [{"label", "box"}]}``.
LABEL_TASKS = ("fracture", "detection")


class ImageLabel(Base):
    """One label of one study, by one user at one time."""

    __tablename__ = "image_labels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    task: Mapped[str] = mapped_column(String(16))
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
