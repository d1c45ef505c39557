"""User accounts and API keys.

Passwords are stored as argon2id hashes; API keys (``irk_<prefix>_<secret>``) are shown
once and stored as the SHA-256 of their 256-bit random secret, looked up by their prefix.

Example:
    >>> db = Database.open(settings)  # doctest: +SKIP
    >>> _ = create_user(db, "ada", "clinician", "a long passphrase")  # doctest: +SKIP
    >>> authenticate(db, "ada", "a long passphrase").role  # doctest: +SKIP
    'clinician'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from insightray.errors import ConfigError, ConflictError, NotFoundError, WeakPasswordError
from insightray.serving.security.passwords import hash_password, needs_rehash, verify_password
from insightray.serving.security.roles import Role
from insightray.serving.storage.db import ApiKey, Database, User, utc_now

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "authenticate",
    "authenticate_api_key",
    "create_api_key",
    "create_user",
    "get_user",
    "revoke_api_keys",
]

MIN_PASSWORD_LENGTH = 12
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY = re.compile(r"irk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so timing reveals nothing."""
    return hash_password(secrets.token_urlsafe(16))


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as error:
        choices = ", ".join(r.value for r in Role)
        raise ConfigError(f"role {role!r}", "unknown role", f"use one of {choices}") from error


def create_user(db: Database, username: str, role: str, password: str) -> User:
    """Create an account.

    Raises:
        ConfigError: The username has characters other than letters, digits and ``._-``,
            or the role is unknown.
        WeakPasswordError: The password has fewer than 12 characters.
        ConflictError: The username is taken.
    """
    if not _USERNAME.fullmatch(username):
        raise ConfigError(
            "username", "use 1-64 letters, digits, '.', '_' or '-'", "choose another username"
        )
    checked_role = _check_role(role)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            "password",
            f"it has fewer than {MIN_PASSWORD_LENGTH} characters",
            "choose a longer passphrase",
        )
    password_hash = hash_password(password)
    taken = ConflictError(f"user {username}", "already exists", "choose another username")
    try:
        with db.session() as session:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise taken
            user = User(
                username=username,
                role=checked_role.value,
                password_hash=password_hash,
                disabled=False,
                created_at=utc_now(),
            )
            session.add(user)
    except IntegrityError as error:  # a concurrent create won the race
        raise taken from error
    return user


def get_user(db: Database, username: str) -> User | None:
    """The account named ``username``, if any."""
    with db.session(read_only=True) as session:
        return session.scalar(select(User).where(User.username == username))


def authenticate(db: Database, username: str, password: str) -> User | None:
    """The enabled user whose password matches, else ``None``.

    An unknown username costs the same hash check as a wrong password. A hash made with
    weaker parameters is upgraded on a successful login.
    """
    user = get_user(db, username)
    if user is None or user.disabled:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if needs_rehash(user.password_hash):
        new_hash = hash_password(password)
        with db.session() as session:
            stored = session.get(User, user.id)
            if stored is not None:
                stored.password_hash = new_hash
        user.password_hash = new_hash
    return user


def _key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def create_api_key(db: Database, username: str) -> str:
    """Create an API key for ``username`` and return it; it cannot be shown again.

    Raises:
        NotFoundError: No such user.
    """
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with db.session() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            raise NotFoundError(f"user {username}", "does not exist", "create the user first")
        session.add(
            ApiKey(user_id=user_id, prefix=prefix, key_hash=_key_hash(secret), created_at=utc_now())
        )
    return f"irk_{prefix}_{secret}"


def authenticate_api_key(db: Database, key: str) -> User | None:
    """The enabled user owning a valid, unrevoked API key, else ``None``."""
    match = _KEY.fullmatch(key.strip())
    if match is None:
        return None
    prefix, secret = match.groups()
    with db.session(read_only=True) as session:
        row = session.execute(
            select(ApiKey, User)
            .join(User, ApiKey.user_id == User.id)
            .where(ApiKey.prefix == prefix)
        ).first()
    if row is None:
        return None
    api_key, user = row
    if not hmac.compare_digest(api_key.key_hash, _key_hash(secret)):
        return None
    if api_key.revoked_at is not None or user.disabled:
        return None
    return user


def revoke_api_keys(db: Database, username: str) -> int:
    """Revoke every active API key of ``username``; returns how many."""
    with db.session() as session:
        keys = session.scalars(
            select(ApiKey)
            .join(User, ApiKey.user_id == User.id)
            .where(User.username == username, ApiKey.revoked_at.is_(None))
        ).all()
        for api_key in keys:
            api_key.revoked_at = utc_now()
        return len(keys)
