"""Connections: :class:`Database` (engine + sessions) and :func:`migrate` (Alembic).

SQLite is the embedded default and runs in WAL mode with ``foreign_keys=ON``, a 30 s
``busy_timeout`` and ``synchronous=FULL`` (every commit is on disk before it returns, so an
acknowledged upload survives a crash or power loss, matching the fsync'd blob store).
Write sessions begin with ``BEGIN IMMEDIATE`` on SQLite, so a transaction that reads and
then writes never fails half-way on a stale snapshot; read-only sessions use a plain
``BEGIN``. PostgreSQL URLs (``postgresql://...``) use psycopg 3.

Example:
    >>> db = Database("sqlite://")
    >>> db.ping()
    True
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from insightray.errors import ConfigError

if TYPE_CHECKING:
    from insightray.serving.settings import ServeSettings

__all__ = ["MIGRATIONS_DIR", "WRITE_OPTION", "Database", "make_engine", "migrate", "normalise_url"]

#: The Alembic scripts shipped inside the package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATE_LOCK = threading.Lock()
#: Execution option marking a connection whose transactions take the write lock up front.
WRITE_OPTION = "insightray_write"


def normalise_url(url: str) -> str:
    """Route ``postgresql://`` and ``postgres://`` URLs to the psycopg 3 driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine with the pragmas and locking described in the module docstring.

    Raises:
        ConfigError: The URL is malformed or names an unsupported database.
    """
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as error:
        raise ConfigError(
            "database URL", "cannot parse it", "use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from error
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(parsed.get_backend_name(), "unsupported database", "use SQLite or PostgreSQL")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see below)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _journal_to_wal(cursor)
    for pragma in ("foreign_keys=ON", "synchronous=FULL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _journal_to_wal(cursor: Any) -> None:
    """Switch the file to WAL. A brand-new file switched by several processes at once (replicas
    or CLI commands starting together) can answer "database is locked" at once, without the
    busy handler, while another one holds the lock the switch needs: try again for a while."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An engine and a unit-of-work session factory.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///home/insightray.db`` or
            ``postgresql://postgres@127.0.0.1:5432/insightray``.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)

    @classmethod
    def open(cls, settings: ServeSettings) -> Database:
        """Create the data directory, bring the schema to the newest revision, connect."""
        settings.ensure_dirs()
        migrate(settings.database_url)
        return cls(settings.database_url)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back on an exception.

        Args:
            read_only: Skip taking SQLite's write lock up front (pure reads only). Any
                session that writes should leave this ``False``.
        """
        with self.engine.connect() as connection:
            if not read_only:
                connection.execution_options(**{WRITE_OPTION: True})
            with Session(bind=connection, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def migrate(url: str) -> None:
    """Run Alembic ``upgrade head`` on ``url`` (safe to call from several processes at once;
    within one process calls take turns, as Alembic's context is process-global).

    Raises:
        ConfigError: The URL is malformed or unsupported.
    """
    from alembic import command
    from alembic.config import Config

    engine = make_engine(url)
    try:
        with _MIGRATE_LOCK, engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS_DIR))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
    finally:
        engine.dispose()
