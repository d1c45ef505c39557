"""Fixtures of the service tests: every storage test runs on SQLite and on PostgreSQL.

``database_url`` is parametrised over ``sqlite`` (a file in ``tmp_path``) and
``postgresql`` (a fresh database on 127.0.0.1:5432, user ``postgres``, dropped afterwards).
When PostgreSQL cannot be reached the PostgreSQL cases fail with a message saying so;
``INSIGHTRAY_SKIP_POSTGRES=1`` skips them instead. ``serve_settings`` is a
:class:`ServeSettings` on that database with its own data directory.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from insightray.serving.settings import ServeSettings

POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/{name}"


def _admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    if os.environ.get("INSIGHTRAY_SKIP_POSTGRES") == "1":
        pytest.skip("PostgreSQL tests skipped (INSIGHTRAY_SKIP_POSTGRES=1)")
    try:
        return psycopg.connect(POSTGRES_ADMIN, autocommit=True)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres ({error}). "
            "Start it, or set INSIGHTRAY_SKIP_POSTGRES=1 to skip these cases.",
            pytrace=False,
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database, on SQLite or on the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'insightray-test.db'}"
        return
    name = f"insightray_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield POSTGRES_URL.format(name=name)
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def serve_settings(tmp_path: Path, database_url: str) -> ServeSettings:
    """Settings with a fresh data directory on the parametrised database."""
    return ServeSettings(home=tmp_path / "home", database_url=database_url)
