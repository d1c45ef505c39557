"""Accounts and API keys on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from insightray.errors import ConfigError, ConflictError, NotFoundError, WeakPasswordError
from insightray.serving.security.users import (
    authenticate,
    authenticate_api_key,
    create_api_key,
    create_user,
    get_user,
    revoke_api_keys,
)
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db import ApiKey, Database, User

PASSWORD = "correct horse battery"


@pytest.fixture
def db(serve_settings: ServeSettings) -> Iterator[Database]:
    database = Database.open(serve_settings)
    yield database
    database.close()


def test_create_and_authenticate(db: Database) -> None:
    user = create_user(db, "ada", "clinician", PASSWORD)
    assert user.id and user.role == "clinician" and not user.disabled
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    found = authenticate(db, "ada", PASSWORD)
    assert found is not None and found.username == "ada"
    assert authenticate(db, "ada", PASSWORD + "x") is None
    assert authenticate(db, "nobody", PASSWORD) is None


def test_create_rejects_weak_passwords_duplicates_and_bad_names(db: Database) -> None:
    with pytest.raises(WeakPasswordError, match="12 characters"):
        create_user(db, "ada", "clinician", "short")
    create_user(db, "ada", "clinician", PASSWORD)
    with pytest.raises(ConflictError, match="already exists"):
        create_user(db, "ada", "admin", PASSWORD)
    with pytest.raises(ConfigError, match="unknown role"):
        create_user(db, "bob", "overlord", PASSWORD)
    with pytest.raises(ConfigError, match="username"):
        create_user(db, "bob smith; drop table", "clinician", PASSWORD)


def test_disabled_users_cannot_log_in(db: Database) -> None:
    create_user(db, "ada", "clinician", PASSWORD)
    key = create_api_key(db, "ada")
    with db.session() as session:
        session.scalars(select(User)).one().disabled = True
    assert authenticate(db, "ada", PASSWORD) is None
    assert authenticate_api_key(db, key) is None


def test_weak_hashes_are_upgraded_on_login(db: Database) -> None:
    create_user(db, "ada", "clinician", PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with db.session() as session:
        session.scalars(select(User)).one().password_hash = weak
    assert authenticate(db, "ada", PASSWORD) is not None
    stored = get_user(db, "ada")
    assert stored is not None and stored.password_hash != weak
    assert authenticate(db, "ada", PASSWORD) is not None


def test_api_keys_are_shown_once_and_stored_hashed(db: Database) -> None:
    create_user(db, "pacs", "researcher", PASSWORD)
    key = create_api_key(db, "pacs")
    assert key.startswith("irk_")
    with db.session(read_only=True) as session:
        stored = session.scalars(select(ApiKey)).one()
    assert key.split("_", 2)[2] not in stored.key_hash and stored.prefix in key
    user = authenticate_api_key(db, key)
    assert user is not None and user.username == "pacs" and user.role == "researcher"
    wrong_secret = key[:-3] + ("aaa" if not key.endswith("aaa") else "bbb")
    assert authenticate_api_key(db, wrong_secret) is None
    assert authenticate_api_key(db, "irk_nothing") is None
    assert authenticate_api_key(db, "") is None
    other = create_api_key(db, "pacs")
    assert revoke_api_keys(db, "pacs") == 2
    assert authenticate_api_key(db, key) is None and authenticate_api_key(db, other) is None


def test_api_key_for_unknown_user(db: Database) -> None:
    with pytest.raises(NotFoundError):
        create_api_key(db, "ghost")
