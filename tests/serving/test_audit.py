"""The hash-chained audit trail on both databases: tamper detection and concurrency."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from insightray.errors import ConfigError
from insightray.serving.security.audit import GENESIS_HASH, AuditLog
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import AuditRecord, Database, User


@pytest.fixture
def db(serve_settings: ServeSettings) -> Iterator[Database]:
    database = Database.open(serve_settings)
    yield database
    database.close()


@pytest.fixture
def log(db: Database, serve_settings: ServeSettings) -> AuditLog:
    audit = AuditLog(db, serve_settings.audit_anchor)
    for i in range(6):
        audit.append(
            "ada",
            "clinician",
            "study.analyze",
            outcome="ok",
            study_id=f"{i:032x}",
            model_name="cxr-detector",
            model_version="1.0.0",
            input_sha256="ab" * 32,
            latency_ms=12.3456 + i,
        )
    return audit


def _records(db: Database) -> list[AuditRecord]:
    with db.session(read_only=True) as session:
        return list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))


def test_append_builds_an_intact_chain(log: AuditLog, db: Database) -> None:
    records = _records(db)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in pairwise(records))
    assert records[2].latency_ms == pytest.approx(14.346) and records[2].ts.endswith("Z")
    verdict = log.verify()
    assert verdict.ok and verdict.checked == 6 and verdict.first_bad_seq is None


def test_empty_chain_verifies(db: Database) -> None:
    assert AuditLog(db).verify().ok


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        (update(AuditRecord).where(AuditRecord.seq == 3).values(actor="mallory"), 3),
        (update(AuditRecord).where(AuditRecord.seq == 4).values(outcome="denied"), 4),
        (update(AuditRecord).where(AuditRecord.seq == 2).values(latency_ms=1.0), 2),
        (delete(AuditRecord).where(AuditRecord.seq == 3), 3),
        (delete(AuditRecord).where(AuditRecord.seq == 1), 1),
        (delete(AuditRecord).where(AuditRecord.seq == 6), 6),  # the tail: caught by the anchor
        (delete(AuditRecord).where(AuditRecord.seq >= 4), 4),
    ],
    ids=[
        "edit-actor",
        "edit-outcome",
        "edit-latency",
        "delete-middle",
        "delete-first",
        "delete-last",
        "truncate",
    ],
)
def test_edits_and_deletions_are_detected(
    log: AuditLog, db: Database, tamper: object, bad_seq: int
) -> None:
    with db.session() as session:
        session.execute(tamper)  # type: ignore[call-overload]
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == bad_seq, verdict
    assert verdict.reason


def test_reordering_is_detected(log: AuditLog, db: Database) -> None:
    with db.session() as session:  # swap the contents of records 2 and 5, keeping seq
        session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(seq=-2))
        session.execute(update(AuditRecord).where(AuditRecord.seq == 5).values(seq=2))
        session.execute(update(AuditRecord).where(AuditRecord.seq == -2).values(seq=5))
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 2


def test_a_recomputed_chain_is_caught_by_the_anchor(log: AuditLog, db: Database) -> None:
    """An attacker who rewrites record 6 and recomputes its hash still breaks the anchor."""
    from insightray.serving.security.audit import _fields, record_hash

    with db.session() as session:
        record = session.get(AuditRecord, 6)
        assert record is not None
        record.actor = "mallory"
        record.hash = record_hash(_fields(record), record.prev_hash)
    assert AuditLog(db).verify().ok  # without the anchor the forgery is consistent
    verdict = log.verify()
    assert not verdict.ok and verdict.first_bad_seq == 6 and "rewritten" in verdict.reason


def test_append_in_is_atomic_with_the_action(log: AuditLog, db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(User(username="eve", password_hash="x", role="admin"))
        log.append_in(session, "root", "admin", "user.create", outcome="ok")
        raise RuntimeError("the action failed after the audit append")
    assert len(_records(db)) == 6 and log.verify().ok
    with db.session() as session:
        session.add(User(username="eve", password_hash="x", role="admin"))
        assert log.append_in(session, "root", "admin", "user.create", outcome="ok") == 7
    assert log.verify().ok and log.verify().checked == 7


def test_free_text_and_read_only_sessions_are_refused(log: AuditLog, db: Database) -> None:
    with pytest.raises(ConfigError):
        log.append("ada", "clinician", "Viewed study of John Smith", outcome="ok")
    with pytest.raises(ConfigError):
        log.append("ada", "clinician", "study.read", outcome="OK because DOB 1970-01-01")
    if db.dialect == "sqlite":
        with (
            pytest.raises(RuntimeError, match="write session"),
            db.session(read_only=True) as session,
        ):
            log.append_in(session, "ada", "clinician", "study.read", outcome="ok")


def test_concurrent_threads_never_fork_the_chain(log: AuditLog, db: Database) -> None:
    def work(worker: int) -> None:
        for _ in range(15):
            log.append(f"user{worker}", "clinician", "study.read", outcome="ok")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verdict = log.verify()
    assert verdict.ok and verdict.checked == 6 + 60


_WORKER = """
import sys, time
from pathlib import Path
from insightray.serving.security.audit import AuditLog
from insightray.serving.storage.db import Database
log = AuditLog(Database(sys.argv[1]), Path(sys.argv[2]))
print("ready", flush=True)
def wait_for(path):
    while not path.exists():
        time.sleep(0.005)
count, n, go = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if go:  # start together when told
    wait_for(Path(go))
for i in range(count):
    if go and i == count // 2:  # a half-way barrier: the two writers must interleave
        (Path(go).parent / f"half{n}").touch()
        wait_for(Path(go).parent / f"half{1 - n}")
    log.append(f"proc{n}", "clinician", "study.analyze", outcome="ok")
"""


def test_two_processes_never_fork_the_chain(
    log: AuditLog, db: Database, serve_settings: ServeSettings
) -> None:
    anchor, go = str(serve_settings.audit_anchor), serve_settings.home / "go"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                serve_settings.database_url,
                anchor,
                "40",
                str(n),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(2)
    ]
    for process in processes:  # both imported and connected, however slow the machine
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    go.touch()
    for process in processes:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr.decode()
    verdict = log.verify()
    assert verdict.ok and verdict.checked == 6 + 80, verdict
    with db.session(read_only=True) as session:
        actors = list(session.scalars(select(AuditRecord.actor).order_by(AuditRecord.seq)))
    assert Counter(actors) == {"ada": 6, "proc0": 40, "proc1": 40}
    switches = sum(a != b for a, b in pairwise(actors[6:]))
    assert switches >= 2  # the barrier makes the two writers interleave at least once each way


def test_damaged_anchor_is_a_clear_error(log: AuditLog, serve_settings: ServeSettings) -> None:
    Path(serve_settings.audit_anchor).write_text("garbage")
    with pytest.raises(ConfigError, match="anchor"):
        log.verify()


def test_sigkill_during_appends_leaves_a_verifiable_chain(
    log: AuditLog, serve_settings: ServeSettings
) -> None:
    anchor = str(serve_settings.audit_anchor)
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER, serve_settings.database_url, anchor, "100000", "9", ""],
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while log.verify().checked < 6 + 20 and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    verdict = log.verify()
    assert verdict.ok and verdict.checked >= 26, verdict
    log.append("ada", "clinician", "study.read", outcome="ok")  # the chain goes on
    assert log.verify().ok
