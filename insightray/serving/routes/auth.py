"""``POST /v1/auth/token`` (OAuth2 password flow) and ``GET /v1/auth/me``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from insightray.errors import AuthenticationError, RateLimitedError
from insightray.serving.deps import AuditDep, Caller, LoginForm, Principal, ServicesDep
from insightray.serving.security.users import authenticate as check_password

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/token")
def issue_token(
    form: LoginForm, services: ServicesDep, audit: AuditDep, request: Request
) -> dict[str, Any]:
    """Exchange a username and password for a signed, expiring JWT."""
    client = request.client.host if request.client else "unknown"
    decision = services.limiter.check(f"login:{client}")
    if not decision.allowed:
        raise RateLimitedError("login", decision.retry_after_s)
    username = form.username[:64]
    user = check_password(services.db, username, form.password)
    if user is None or user.disabled:
        audit.unauthenticated(username, "auth.token", "denied")
        raise AuthenticationError("login", "wrong username or password", "check them and retry")
    token = services.tokens.issue(user.username, user.role)
    who = Principal(user.username, user.role, user.id, f"user:{user.username}")
    audit.record("auth.token", who=who)
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": services.settings.token_ttl_s,
        "role": user.role,
    }


@router.get("/me")
def me(who: Caller) -> dict[str, str]:
    """Who the credentials belong to."""
    return {"username": who.username, "role": who.role}
