"""Password hashing, signed tokens and the role table."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher

from insightray.errors import AuthenticationError
from insightray.serving.security.passwords import hash_password, needs_rehash, verify_password
from insightray.serving.security.roles import ROLE_PERMISSIONS, Permission, Role, can
from insightray.serving.security.tokens import TokenIssuer


def test_argon2id_hashes_verify_and_are_salted() -> None:
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("$argon2id$") and first != second
    assert verify_password(first, "correct horse battery")
    assert not verify_password(first, "correct horse batter")
    assert not verify_password("not a hash", "anything")
    assert not needs_rehash(first)
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    assert needs_rehash(weak) and verify_password(weak, "pw")


def test_tokens_round_trip_and_carry_role_and_expiry() -> None:
    issuer = TokenIssuer(b"k" * 32, ttl_s=60)
    claims = issuer.verify(issuer.issue("ada", "clinician"))
    assert (claims.sub, claims.role) == ("ada", "clinician")
    assert 55 <= claims.exp - time.time() <= 60 and len(claims.jti) == 32


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        lambda token: TokenIssuer(b"x" * 32, 60).issue("ada", "admin"),
        lambda token: jwt.encode({"sub": "ada", "role": "admin"}, b"k" * 32, algorithm="HS256"),
        lambda token: jwt.encode(
            {"sub": "ada", "role": "admin", "iss": "insightray"}, "", algorithm="none"
        ),
        lambda token: "garbage",
    ],
    ids=["bad-signature", "other-secret", "missing-claims", "alg-none", "garbage"],
)
def test_forged_tokens_are_rejected(forge: object) -> None:
    issuer = TokenIssuer(b"k" * 32, ttl_s=60)
    token = forge(issuer.issue("ada", "clinician"))  # type: ignore[operator]
    with pytest.raises(AuthenticationError, match="not valid"):
        issuer.verify(token)


def test_expired_tokens_are_rejected() -> None:
    issuer = TokenIssuer(b"k" * 32, ttl_s=-1)
    with pytest.raises(AuthenticationError, match="expired"):
        issuer.verify(issuer.issue("ada", "clinician"))


def test_token_secret_file_is_created_once_and_private(tmp_path: Path) -> None:
    first = TokenIssuer.from_keys_dir(tmp_path / "keys", ttl_s=60)
    second = TokenIssuer.from_keys_dir(tmp_path / "keys", ttl_s=60)
    assert second.verify(first.issue("ada", "admin")).sub == "ada"
    assert stat.S_IMODE((tmp_path / "keys" / "jwt.key").stat().st_mode) == 0o600
    with pytest.raises(ValueError):
        TokenIssuer(b"short", ttl_s=60)


def test_role_table() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert can("clinician", Permission.STUDY_DELETE)
    assert not can(Role.RESEARCHER, Permission.STUDY_DELETE)
    assert can(Role.RESEARCHER, Permission.ANALYZE)
    assert not can(Role.AUDITOR, Permission.STUDY_READ)
    assert can(Role.AUDITOR, Permission.AUDIT_READ)
    assert not can(Role.CLINICIAN, Permission.AUDIT_READ)
    assert not can(Role.CLINICIAN, Permission.USERS_ADMIN)
    assert not can("superuser", Permission.STUDY_READ)
