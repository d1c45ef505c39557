"""Alembic environment: runs on the connection :func:`insightray.serving.storage.db.migrate` passes.

On PostgreSQL a transaction-level advisory lock serialises concurrent migrations (several
replicas starting at once); on SQLite the transaction begins with ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from insightray.serving.storage.db.models import Base

#: Arbitrary constant naming the migration advisory lock.
MIGRATION_LOCK = 0x1A5E_0001


def run_migrations() -> None:
    """Upgrade on the shared connection (offline SQL generation is not supported)."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("call insightray.serving.storage.db.migrate(url) to run migrations")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


# Alembic sets ``context.config`` before it runs this file; a plain import (pytest's doctest
# collection, mypy) only defines the function.
if hasattr(context, "config"):
    run_migrations()
