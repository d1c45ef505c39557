"""Signed, expiring access tokens: JWT HS256 via PyJWT.

The signing secret is ``keys_dir/jwt.key`` (32 random bytes, mode 0600, created on first
use), shared by every worker process of one data directory.

Example:
    >>> issuer = TokenIssuer(b"0" * 32, ttl_s=60)
    >>> claims = issuer.verify(issuer.issue("ada", "clinician"))
    >>> claims.sub, claims.role
    ('ada', 'clinician')
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from insightray.errors import AuthenticationError
from insightray.serving.storage.crypto import read_or_create_secret

__all__ = ["Claims", "TokenIssuer"]

_ALGORITHM = "HS256"
_ISSUER = "insightray"


@dataclass(frozen=True)
class Claims:
    """What a verified token says: subject (username), role, expiry (epoch s), token id."""

    sub: str
    role: str
    exp: int
    jti: str


class TokenIssuer:
    """Issues and verifies access tokens.

    Args:
        secret: The HMAC key (at least 32 bytes).
        ttl_s: Token lifetime in seconds.
    """

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret needs at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s

    @classmethod
    def from_keys_dir(cls, keys_dir: Path, ttl_s: int) -> TokenIssuer:
        """An issuer keyed by ``keys_dir/jwt.key`` (created on first use)."""
        return cls(read_or_create_secret(keys_dir / "jwt.key"), ttl_s)

    def issue(self, username: str, role: str) -> str:
        """A signed token for ``username`` with ``role``, valid for ``ttl_s`` seconds."""
        now = int(time.time())
        payload = {
            "sub": username,
            "role": role,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "iss": _ISSUER,
        }
        return jwt.encode(payload, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Claims:
        """The claims of a valid token.

        Raises:
            AuthenticationError: The token is expired, forged, malformed or incomplete.
        """
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["sub", "role", "exp", "jti", "iss"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise AuthenticationError("token", "it has expired", "log in again") from error
        except jwt.InvalidTokenError as error:
            raise AuthenticationError("token", "it is not valid", "log in again") from error
        return Claims(
            sub=str(payload["sub"]),
            role=str(payload["role"]),
            exp=int(payload["exp"]),
            jti=str(payload["jti"]),
        )
