"""The service database: typed ORM models, sessions and Alembic migrations.

Example:
    >>> from insightray.serving.storage.db import Database, User
    >>> Database("sqlite://").dialect
    'sqlite'
"""

from __future__ import annotations

from insightray.serving.storage.db.feedback import FindingFeedback, RetrainingTrigger
from insightray.serving.storage.db.labels import ImageLabel
from insightray.serving.storage.db.models import (
    ApiKey,
    AuditRecord,
    Base,
    Measurement,
    ModelVersion,
    PseudonymMap,
    Result,
    Study,
    User,
    new_id,
    utc_now,
)
from insightray.serving.storage.db.session import Database, migrate
from insightray.serving.storage.db.study_reports import StudyReport

__all__ = [
    "ApiKey",
    "AuditRecord",
    "Base",
    "Database",
    "FindingFeedback",
    "ImageLabel",
    "Measurement",
    "ModelVersion",
    "PseudonymMap",
    "Result",
    "RetrainingTrigger",
    "Study",
    "StudyReport",
    "User",
    "migrate",
    "new_id",
    "utc_now",
]
