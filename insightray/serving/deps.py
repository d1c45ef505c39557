"""Request dependencies: the app's services, the caller (:class:`Principal`), permissions
and the audit trail, each with its ``Annotated`` alias defined here once for every route.

Credentials are a Bearer JWT (``Authorization: Bearer <token>`` from ``POST /v1/auth/token``)
or an API key (``X-API-Key: irk_...``). Every authenticated request is rate limited per user
(tokens) or per key; the limit answers 429 with ``Retry-After``. ``require(permission)``
gives a dependency that answers 401 without valid credentials and 403 (audited) when the
caller's role lacks the permission. The aliases (``ServicesDep``, ``StudyReader``...)
name one such dependency each; :class:`AuditTrail` (``AuditDep``) writes a route's audit
records, for the authenticated caller, with the latency counted from the request's start.

Example:
    >>> from fastapi import APIRouter
    >>> router = APIRouter()
    >>> @router.get("/v1/things")
    ... def things(who: StudyReader, audit: AuditDep) -> dict[str, str]:
    ...     audit.record("thing.list")
    ...     return {"user": who.username}
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.orm import Session

from insightray.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from insightray.serving.hosting.inference import ModelHost
from insightray.serving.hosting.metrics import ServiceMetrics
from insightray.serving.hosting.pacs import PacsGateway
from insightray.serving.hosting.rollout import ModelRegistry
from insightray.serving.security.audit import AuditLog
from insightray.serving.security.ratelimit import RateLimiter
from insightray.serving.security.roles import Permission, Role, can
from insightray.serving.security.tokens import TokenIssuer
from insightray.serving.security.users import authenticate_api_key
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.blobstore import BlobStore
from insightray.serving.storage.db.models import User
from insightray.serving.storage.db.session import Database

__all__ = [
    "Analyst",
    "AssistantUser",
    "AuditDep",
    "AuditTrail",
    "Caller",
    "LoginForm",
    "MetricsReader",
    "ModelsAdmin",
    "ModelsReader",
    "PacsAdmin",
    "Principal",
    "Services",
    "ServicesDep",
    "StudyDeleter",
    "StudyReader",
    "StudyWriter",
    "TextUser",
    "audit_trail",
    "authenticate",
    "get_services",
    "require",
]


@dataclass
class Services:
    """Everything a request may use, created by the app's lifespan (``app.state.services``)."""

    settings: ServeSettings
    db: Database
    store: BlobStore
    audit: AuditLog
    tokens: TokenIssuer
    limiter: RateLimiter
    registry: ModelRegistry
    host: ModelHost
    metrics: ServiceMetrics
    deid_salt: bytes
    pacs: PacsGateway

    def record(
        self,
        who: Principal,
        action: str,
        outcome: str,
        started: float | None = None,
        session: Session | None = None,
        **fields: Any,
    ) -> int:
        """Append an audit record for ``who`` (latency from ``started``, a perf_counter).

        With ``session`` (a write session) the record joins its transaction, so a row and
        the record of writing it commit together: a crash cannot leave the row unaudited.
        """
        latency = None if started is None else (time.perf_counter() - started) * 1000.0
        if session is not None:
            return self.audit.append_in(
                session, who.username, who.role, action, outcome=outcome, latency_ms=latency,
                **fields,
            )  # fmt: skip
        return self.audit.append(
            who.username, who.role, action, outcome=outcome, latency_ms=latency, **fields
        )


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    Attributes:
        username: The user (for an API key, the key's owner).
        role: The user's role.
        user_id: The user's database id.
        limit_key: The rate-limit bucket: ``user:<name>`` or ``key:<prefix>``.
    """

    username: str
    role: str
    user_id: int
    limit_key: str


def get_services(request: Request) -> Services:
    """The app's :class:`Services`."""
    services: Services = request.app.state.services
    return services


def authenticate(request: Request) -> Principal:
    """The caller from a Bearer token or an API key, rate limited.

    Raises:
        AuthenticationError: No credentials, or invalid, expired or revoked ones (401).
        RateLimitedError: Over the caller's rate (429).
    """
    services = get_services(request)
    api_key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if api_key:
        user = authenticate_api_key(services.db, api_key)
        if user is None:
            raise AuthenticationError("X-API-Key", "the API key is not valid", "use a current key")
        prefix = api_key.split("_")[1] if api_key.count("_") >= 2 else api_key[:8]
        principal = Principal(user.username, user.role, user.id, f"key:{prefix}")
    elif scheme.lower() == "bearer" and token.strip():
        claims = services.tokens.verify(token.strip())
        user = _active_user(services.db, claims.sub)
        principal = Principal(user.username, user.role, user.id, f"user:{user.username}")
    else:
        raise AuthenticationError(
            "request",
            "no credentials",
            "send Authorization: Bearer <token> from POST /v1/auth/token, or X-API-Key",
        )
    decision = services.limiter.check(principal.limit_key)
    if not decision.allowed:
        raise RateLimitedError(principal.username, decision.retry_after_s)
    request.state.principal = principal  # the caller of the request's audit records
    return principal


def _active_user(db: Database, username: str) -> User:
    with db.session(read_only=True) as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or user.disabled:
            raise AuthenticationError(
                "token", "the user is disabled or no longer exists", "ask an administrator"
            )
        session.expunge(user)
        return user


def require(permission: Permission) -> Callable[[Request], Principal]:
    """A dependency that returns the caller if their role has ``permission``."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not can(Role(principal.role), permission):
            services = get_services(request)
            services.record(principal, f"denied:{permission.value}", "denied")
            raise PermissionDeniedError(
                f"role {principal.role}",
                f"it lacks the {permission.value} permission",
                "ask an administrator for a role that has it",
            )
        return principal

    dependency.__name__ = f"require_{permission.value}"
    return dependency


class AuditTrail:
    """The audit records of one request (a dependency: ``audit: AuditDep``).

    Records name the authenticated caller of the request (or ``who``, for a route that
    authenticates by itself) and carry the latency since the dependency was resolved.
    """

    def __init__(self, request: Request) -> None:
        self.services = get_services(request)
        self.started = time.perf_counter()
        self._request = request

    @property
    def who(self) -> Principal:
        """The request's authenticated caller."""
        principal: Principal | None = getattr(self._request.state, "principal", None)
        if principal is None:
            raise RuntimeError("an audit record needs an authenticated caller or who=")
        return principal

    def record(
        self, action: str, outcome: str = "ok", *, who: Principal | None = None, **fields: Any
    ) -> int:
        """Append a record (blocking); ``fields`` are the audit record's optional columns."""
        return self.services.record(who or self.who, action, outcome, self.started, **fields)

    async def arecord(
        self, action: str, outcome: str = "ok", *, who: Principal | None = None, **fields: Any
    ) -> int:
        """:meth:`record` from an ``async`` route (run in a worker thread)."""
        return await run_in_threadpool(self.record, action, outcome, who=who, **fields)

    @asynccontextmanager
    async def failures(self, action: str, **fields: Any) -> AsyncIterator[None]:
        """Record ``error:<exception type>`` for ``action`` when the block raises."""
        try:
            yield
        except Exception as error:
            await self.arecord(action, f"error:{type(error).__name__.lower()}", **fields)
            raise

    def unauthenticated(self, actor: str, action: str, outcome: str) -> int:
        """A record for a caller who did not authenticate (role ``none``, no latency)."""
        return self.services.audit.append(actor, "none", action, outcome=outcome)


def audit_trail(request: Request) -> AuditTrail:
    """The request's :class:`AuditTrail` (its latency clock starts now)."""
    return AuditTrail(request)


ServicesDep = Annotated[Services, Depends(get_services)]
AuditDep = Annotated[AuditTrail, Depends(audit_trail)]
LoginForm = Annotated[OAuth2PasswordRequestForm, Depends()]
#: Any authenticated caller.
Caller = Annotated[Principal, Depends(authenticate)]
StudyReader = Annotated[Principal, Depends(require(Permission.STUDY_READ))]
StudyWriter = Annotated[Principal, Depends(require(Permission.STUDY_WRITE))]
StudyDeleter = Annotated[Principal, Depends(require(Permission.STUDY_DELETE))]
Analyst = Annotated[Principal, Depends(require(Permission.ANALYZE))]
TextUser = Annotated[Principal, Depends(require(Permission.TEXT))]
AssistantUser = Annotated[Principal, Depends(require(Permission.ASSISTANT))]
ModelsReader = Annotated[Principal, Depends(require(Permission.MODELS_READ))]
ModelsAdmin = Annotated[Principal, Depends(require(Permission.MODELS_ADMIN))]
MetricsReader = Annotated[Principal, Depends(require(Permission.METRICS_READ))]
PacsAdmin = Annotated[Principal, Depends(require(Permission.PACS_ADMIN))]
