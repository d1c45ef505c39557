"""The audit trail: append-only records chained by SHA-256, so edits and deletions show.

Each record's ``hash`` is the SHA-256 of the canonical JSON of its fields (``seq``, ``ts``,
``actor``, ``role``, ``action``, ``study_id``, ``model_name``, ``model_version``,
``input_sha256``, ``outcome``, ``latency_ms``) plus the previous record's hash; the first
record links to 64 zeros. Sequence numbers have no gaps. Appends are serialised, so
concurrent threads and processes never fork the chain: on PostgreSQL by a
transaction-level advisory lock, on SQLite by the write lock every write session takes up
front (``BEGIN IMMEDIATE``). :meth:`AuditLog.append_in` writes the record in the caller's
transaction, so it commits or rolls back together with the action it records.

A chain alone cannot reveal that its newest records were cut off. With an ``anchor`` file
(``keys/audit.anchor`` under the data directory), the seq and hash of the newest committed
record are also written there after each commit, and :meth:`AuditLog.verify` checks the
chain still reaches that record. After restoring the database from a backup, delete the
anchor file (it names records the backup lacks).

Audit text is codes and identifiers only: usernames, roles, action and outcome codes,
study ids and hashes. Never put patient names, IDs or dates in a record.

Example:
    >>> from insightray.serving.storage.db import Database, migrate  # doctest: +SKIP
    >>> log = AuditLog(Database(url))  # doctest: +SKIP
    >>> log.append("ada", "clinician", "study.read", outcome="ok", study_id=sid)  # doctest: +SKIP
    1
    >>> log.verify().ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from insightray.errors import ConfigError
from insightray.fsutil import atomic_write
from insightray.serving.storage.db import AuditRecord, Database
from insightray.serving.storage.db.session import WRITE_OPTION

__all__ = ["GENESIS_HASH", "AuditLog", "AuditVerdict", "lock_writers", "record_hash"]

GENESIS_HASH = "0" * 64
#: Arbitrary constant naming the PostgreSQL advisory lock that serialises appends.
AUDIT_LOCK = 0x1A5E_A0D1
_CODE = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
_PENDING = "insightray_audit_anchor"
_LISTENING = "insightray_audit_listening"
_log = logging.getLogger(__name__)


def lock_writers(session: Session) -> None:
    """Take the lock that serialises audit appends, for the rest of ``session``'s
    transaction (PostgreSQL: an advisory lock; SQLite: the write session's own lock).

    Raises:
        RuntimeError: ``session`` is a read-only SQLite session.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK)))
    elif not connection.get_execution_options().get(WRITE_OPTION):
        raise RuntimeError("audit appends need a write session (read_only=False)")


def record_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the canonical JSON of ``fields`` plus ``prev_hash``."""
    canonical = json.dumps(
        {**fields, "prev_hash": prev_hash}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _fields(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "ts": record.ts,
        "actor": record.actor,
        "role": record.role,
        "action": record.action,
        "study_id": record.study_id,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "input_sha256": record.input_sha256,
        "outcome": record.outcome,
        "latency_ms": record.latency_ms,
    }


@dataclass(frozen=True)
class AuditVerdict:
    """The result of checking the chain: ``ok``, records checked, and where it broke."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    """Appends to and verifies the hash-chained audit trail.

    Args:
        db: The service database.
        anchor: Optional file remembering the newest committed record (see module doc).
    """

    def __init__(self, db: Database, anchor: Path | None = None) -> None:
        self.db = db
        self.anchor = anchor

    def append(
        self,
        actor: str,
        role: str,
        action: str,
        *,
        outcome: str,
        study_id: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        input_sha256: str | None = None,
        latency_ms: float | None = None,
    ) -> int:
        """Append one record in its own transaction and return its sequence number."""
        with self.db.session() as session:
            return self.append_in(
                session,
                actor,
                role,
                action,
                outcome=outcome,
                study_id=study_id,
                model_name=model_name,
                model_version=model_version,
                input_sha256=input_sha256,
                latency_ms=latency_ms,
            )

    def append_in(
        self,
        session: Session,
        actor: str,
        role: str,
        action: str,
        *,
        outcome: str,
        study_id: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        input_sha256: str | None = None,
        latency_ms: float | None = None,
    ) -> int:
        """Append one record inside ``session``'s transaction (a write session of
        :meth:`Database.session`); it becomes durable when that transaction commits.

        Raises:
            ConfigError: ``action`` or ``outcome`` is not a lowercase code such as
                ``study.read`` / ``ok`` (free text could carry patient data).
        """
        for name, value in (("action", action), ("outcome", outcome)):
            if not _CODE.fullmatch(value):
                raise ConfigError(
                    f"audit {name}", "must be a short lowercase code", "use e.g. study.read or ok"
                )
        lock_writers(session)
        last = session.execute(
            select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
        ).first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        fields = {
            "seq": seq,
            "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": actor[:64],
            "role": role[:32],
            "action": action,
            "study_id": study_id,
            "model_name": model_name,
            "model_version": model_version,
            "input_sha256": input_sha256,
            "outcome": outcome,
            "latency_ms": None if latency_ms is None else round(float(latency_ms), 3),
        }
        digest = record_hash(fields, prev_hash)
        session.add(AuditRecord(**fields, prev_hash=prev_hash, hash=digest))
        session.flush()
        if self.anchor is not None:
            self._anchor_after_commit(session, seq, digest)
        return seq

    def verify(self) -> AuditVerdict:
        """Walk the chain from the first record; stop at the first broken one."""
        prev_hash, checked = GENESIS_HASH, 0
        anchor = self._read_anchor()
        anchored_hash: str | None = None
        with self.db.session(read_only=True) as session:
            records = session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
            for record in records.yield_per(1000):
                expected = checked + 1
                if record.seq != expected:
                    return AuditVerdict(False, checked, expected, f"record {expected} is missing")
                if record.prev_hash != prev_hash:
                    return AuditVerdict(
                        False, checked, record.seq, "it does not link to the previous record"
                    )
                if record_hash(_fields(record), record.prev_hash) != record.hash:
                    return AuditVerdict(False, checked, record.seq, "its content was altered")
                if anchor is not None and record.seq == anchor[0]:
                    anchored_hash = record.hash
                prev_hash, checked = record.hash, expected
        if anchor is not None:
            seq, digest = anchor
            if seq > checked:
                return AuditVerdict(
                    False, checked, checked + 1, f"records {checked + 1} to {seq} were deleted"
                )
            if anchored_hash != digest:
                return AuditVerdict(False, checked, seq, "the chain was rewritten")
        return AuditVerdict(True, checked)

    def _anchor_after_commit(self, session: Session, seq: int, digest: str) -> None:
        """Write the anchor once ``session`` commits; forget it if it rolls back."""
        if not session.info.get(_LISTENING):
            event.listen(session, "after_commit", self._write_pending)
            event.listen(session, "after_rollback", lambda s: s.info.pop(_PENDING, None))
            session.info[_LISTENING] = True
        session.info[_PENDING] = (seq, digest)

    def _write_pending(self, session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        if pending is None or self.anchor is None:
            return
        try:
            atomic_write(self.anchor, f"{pending[0]} {pending[1]}\n".encode("ascii"))
        except OSError as error:  # the record is committed; only the extra check is lost
            _log.warning("cannot write the audit anchor: %s", error.strerror)

    def _read_anchor(self) -> tuple[int, str] | None:
        if self.anchor is None or not self.anchor.is_file():
            return None
        try:
            seq, digest = self.anchor.read_text(encoding="ascii").split()
            return int(seq), digest
        except (ValueError, UnicodeDecodeError) as error:
            raise ConfigError(
                str(self.anchor), "the audit anchor is damaged", "delete it and verify again"
            ) from error
