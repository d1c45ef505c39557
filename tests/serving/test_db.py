"""Migrations and sessions on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from insightray.errors import ConfigError
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import Base, Database, Study, User, migrate


def _head() -> str:
    """The one head revision of the migration scripts (several heads would be a bug)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from insightray.serving.storage.db.session import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return str(head)


def test_migrations_build_exactly_the_models(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # a second run is a no-op
    db = Database(database_url)
    with db.engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) == set(Base.metadata.tables) | {
            "alembic_version"
        }
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            _head()
        )
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    db.close()


def test_concurrent_migrations_do_not_collide(database_url: str) -> None:
    """Three processes (replicas starting at once) migrate the same empty database."""
    code = "import sys; from insightray.serving.storage.db import migrate; migrate(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
    threads = [threading.Thread(target=migrate, args=(database_url,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    db = Database(database_url)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    db.close()


def test_open_creates_home_and_schema(serve_settings: ServeSettings) -> None:
    db = Database.open(serve_settings)
    assert serve_settings.keys_dir.is_dir() and db.ping()
    assert db.dialect in {"sqlite", "postgresql"}
    db.close()


def test_session_commits_or_rolls_back_and_keeps_utc(database_url: str) -> None:
    migrate(database_url)
    db = Database(database_url)
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(User(username="ghost", password_hash="x", role="admin"))
        session.flush()
        raise RuntimeError("abort")
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    with db.session() as session:
        session.add(User(username="ada", password_hash="x", role="clinician", created_at=created))
    with db.session(read_only=True) as session:
        users = session.scalars(select(User)).all()
    assert [user.username for user in users] == ["ada"]
    assert users[0].created_at == created and users[0].created_at.tzinfo == UTC
    db.close()


def test_foreign_keys_are_enforced(database_url: str) -> None:
    migrate(database_url)
    db = Database(database_url)
    with pytest.raises(Exception, match=r"(?i)foreign key"), db.session() as session:
        session.add(Study(owner_id=999, content_type="image/png", sha256="0" * 64, size_bytes=1))
    db.close()


def test_sqlite_runs_in_wal_with_full_sync(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.close()


def test_unreachable_database_pings_false_and_bad_urls_are_config_errors() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    assert db.ping() is False
    with pytest.raises(ConfigError):
        Database("not a url")
    with pytest.raises(ConfigError, match="unsupported"):
        Database("mysql://user@host/db")
