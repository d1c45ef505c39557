"""A reader's verdict on what a model said, and the retraining trigger's state per model.

Kept in its own module beside :mod:`~insightray.serving.storage.db.models` (same declarative
base). One :class:`FindingFeedback` row per reader and finding of a result: a detector box
(``kind`` ``box``, ``finding`` its index in the result's findings then candidates) or the
fracture label (``kind`` ``label``, ``finding`` 0). Judging again updates the row, so the
newest verdict counts; the audit trail keeps every change. The model's name and version are
copied from the result so that live performance is one grouped query. No free text: the
corrected label is a model label, never a note.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from insightray.serving.storage.db.models import Base, UtcDateTime, new_id, utc_now

__all__ = ["FEEDBACK_KINDS", "VERDICTS", "FindingFeedback", "RetrainingTrigger"]

#: ``box``: one detector box; ``label``: the fracture classifier's label.
FEEDBACK_KINDS = ("box", "label")
#: ``accept``: the model was right; ``reject``: it was wrong; ``correct``: the box is right
#: but its label is not (``label`` holds the reader's).
VERDICTS = ("accept", "reject", "correct")


class FindingFeedback(Base):
    """One reader's verdict on one finding of one result."""

    __tablename__ = "finding_feedback"
    __table_args__ = (
        UniqueConstraint("result_id", "finding", "username", name="uq_finding_feedback_reader"),
        Index("ix_finding_feedback_model", "model_name", "model_version", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    result_id: Mapped[str] = mapped_column(ForeignKey("results.id"), index=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    finding: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    #: What the model said: the box's class or the fracture label.
    model_label: Mapped[str] = mapped_column(String(128))
    #: Whether the box was at or above the model's operating point (a finding, not a
    #: weaker candidate); always true for a label.
    operating: Mapped[bool] = mapped_column(Boolean)
    verdict: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128), default=None)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class RetrainingTrigger(Base):
    """Whether a model version's recent agreement is below the threshold (``below``) or its
    drift window has drifted (``drifted``), and how often the trigger fired for either;
    shared by every replica so a crossing fires once."""

    __tablename__ = "retraining_triggers"
    __table_args__ = (
        UniqueConstraint("model_name", "model_version", name="uq_retraining_triggers_model"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    below: Mapped[bool] = mapped_column(Boolean, default=False)
    crossings: Mapped[int] = mapped_column(Integer, default=0)
    agreement: Mapped[float | None] = mapped_column(Float, default=None)
    drifted: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
