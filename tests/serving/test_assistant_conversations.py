"""The assistant's conversations in the service database: sealed, per user, expiring and
deleting with audit records, and continued by a second ``insightray serve`` process."""

from __future__ import annotations

import base64
import csv
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from insightray.assistant.intents import Intent
from insightray.assistant.state import DialogueState, Turn
from insightray.serving.security.audit import AuditLog
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.conversations import DatabaseConversations
from insightray.serving.storage.crypto import KeyRing
from insightray.serving.storage.db import Database
from insightray.serving.storage.db.models import AssistantConversation, AuditRecord
from tests.serving.reliability.server import ServiceProcess, bearer, create_users

GOUT = (
    "Gout is a form of arthritis caused by uric acid crystals building up in a joint. "
    "Gout is treated with medicines that lower uric acid and ease the pain of attacks."
)


@pytest.fixture
def db(serve_settings: ServeSettings) -> Iterator[Database]:
    database = Database.open(serve_settings)
    yield database
    database.close()


def _store(
    db: Database, settings: ServeSettings, owner: str, ttl_s: int = 60
) -> DatabaseConversations:
    keyring = KeyRing.from_settings(settings)
    return DatabaseConversations(db, keyring, AuditLog(db), owner, "clinician", ttl_s=ttl_s)


def _actions(db: Database) -> list[str]:
    with db.session(read_only=True) as session:
        return list(session.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)))


def _state(conversation_id: str) -> DialogueState:
    state = DialogueState(conversation_id, focus="Gout")
    intent = Intent("Question", "Treatment_Options", "treatment", 0.9, (("cause", 0.05),))
    state.update(Turn("What is gout?", "What is gout?", intent, "Gout", 0.8, "extractive"))
    return state


def test_states_round_trip_sealed_and_per_user(db: Database, serve_settings: ServeSettings) -> None:
    alice = _store(db, serve_settings, "alice")
    conversation = alice.new_id()
    alice.save(_state(conversation))
    again = alice.get(conversation)
    assert again.to_dict() == _state(conversation).to_dict()
    with db.session(read_only=True) as session:
        row = session.get(AssistantConversation, conversation)
        assert row is not None and b"gout" not in row.state.lower()  # sealed at rest
    bob = _store(db, serve_settings, "bob").get(conversation)
    assert bob.conversation_id != conversation and bob.focus is None
    assert not _store(db, serve_settings, "bob").delete(conversation)
    assert alice.delete(conversation) and conversation not in alice
    actions = _actions(db)
    assert actions.count("assistant.conversation.create") == 1
    assert actions.count("assistant.conversation.delete") == 2  # bob's refused, alice's done


def test_idle_conversations_expire_with_an_audit_record(
    db: Database, serve_settings: ServeSettings
) -> None:
    store = _store(db, serve_settings, "alice", ttl_s=1)
    conversation = store.new_id()
    store.save(_state(conversation))
    time.sleep(1.2)
    assert store.get(conversation).focus is None
    assert conversation not in store
    assert _actions(db).count("assistant.conversation.expire") == 1


def _index(folder: Path) -> Path:
    from insightray.assistant.index import build_index

    source = folder / "knowledge.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["focus", "question", "answer", "url"])
        writer.writerow(["Gout", "What is gout?", GOUT, "https://example.org/gout"])
        writer.writerow(
            ["Asthma", "What is asthma?", "Asthma narrows the airways.", "https://example.org/a"]
        )
    build_index([source], folder / "index", progress=False)
    return folder / "index"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_conversation_started_on_one_replica_continues_on_another(
    tmp_path: Path, database_url: str
) -> None:
    index = _index(tmp_path)
    key = base64.b64encode(os.urandom(32)).decode()
    replicas = [
        ServiceProcess(
            tmp_path / name, database_url, settings={"data_key": key, "rate_per_s": "100"}
        )
        for name in ("a", "b")
    ]
    create_users(replicas[0].home, database_url, {"carol": "clinician"})
    for replica in replicas:
        shutil.copytree(index, replica.home / "index")
    with replicas[0] as first, replicas[1] as second:
        for replica in (first, second):
            replica.start()
            replica.wait_ready("/healthz", timeout_s=400)
        a = httpx.Client(base_url=first.base_url, headers=bearer(first.base_url, "carol"),
                         timeout=400)  # fmt: skip
        b = httpx.Client(base_url=second.base_url, headers=bearer(second.base_url, "carol"),
                         timeout=400)  # fmt: skip
        with a, b:
            started = a.post("/v1/assistant/ask", json={"question": "What is gout?"})
            assert started.status_code == 200, started.text
            conversation = started.json()["conversation_id"]
            assert started.json()["focus"] == "Gout"
            follow = b.post(
                "/v1/assistant/ask",
                json={"question": "How is it treated?", "conversation_id": conversation},
            )
            assert follow.status_code == 200, follow.text
            assert follow.json()["conversation_id"] == conversation
            assert follow.json()["resolved_question"] == "How is Gout treated?"
            assert "triage" in follow.json()
            assert b.delete(f"/v1/assistant/conversations/{conversation}").status_code == 200
            assert a.delete(f"/v1/assistant/conversations/{conversation}").status_code == 404
            fresh = a.post(
                "/v1/assistant/ask",
                json={"question": "How is it treated?", "conversation_id": conversation},
            )
            assert fresh.json()["resolved_question"] == "How is it treated?"  # forgotten
