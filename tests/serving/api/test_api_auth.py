"""Authentication and authorisation on every route: 401 without credentials, 403 by role."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi.routing import APIRoute

from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.routes import PUBLIC_PATHS
from insightray.serving.security.audit import AuditLog
from insightray.serving.security.roles import ROLE_PERMISSIONS, Permission, can
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import Api, start_api


def _permission_of(route: APIRoute) -> Permission | None | str:
    """The permission a route requires, ``"auth"`` for authentication only, else None."""
    for dependency in route.dependant.dependencies:
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            return Permission(name.removeprefix("require_"))
        if name == "authenticate":
            return "auth"
    return None


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute of the app, also inside included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers as a unit
            yield from _api_routes(route.original_router.routes)


def _error(path: str, body: dict[str, Any], kind: str, words: str) -> bool:
    """An error of ``kind``: ``{"error": {"type", "message"}}``, or on the Open Inference
    Protocol's routes its own ``{"error": "<message>"}``."""
    if path.startswith("/v2"):
        return isinstance(body["error"], str) and words in body["error"]
    return bool(body["error"]["type"] == kind)


def test_every_route_needs_credentials_and_the_right_role(api: Api) -> None:
    app = api.client.app
    routes = list(_api_routes(app.routes))  # type: ignore[attr-defined]
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in operations
    }
    found = {(method, route.path) for route in routes for method in route.methods}
    assert documented <= found  # the walk saw every documented operation
    checked = 0
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x0", route.path)
        permission = _permission_of(route)
        if route.path in PUBLIC_PATHS:
            assert permission is None, f"{route.path} is public but asks for credentials"
            continue
        assert permission is not None, f"{route.path} has no auth dependency"
        for method in route.methods - {"HEAD", "OPTIONS"}:
            anonymous = api.client.request(method, path)
            assert anonymous.status_code == 401, (method, route.path, anonymous.text)
            assert _error(route.path, anonymous.json(), "AuthenticationError", "credentials")
            forged = api.client.request(method, path, headers={"Authorization": "Bearer x.y.z"})
            assert forged.status_code == 401, (method, route.path)
            if permission == "auth":
                continue
            assert isinstance(permission, Permission)
            lacking = [role for role in ROLE_PERMISSIONS if not can(role, permission)]
            for role in lacking:
                denied = api.client.request(method, path, headers=api.as_role(role.value))
                assert denied.status_code == 403, (method, route.path, role, denied.text)
                assert _error(route.path, denied.json(), "PermissionDeniedError", "permission")
            checked += 1
    assert checked >= 20  # every /v1 and /v2 model route was exercised


def test_token_api_key_and_denials(api: Api) -> None:
    client = api.client
    wrong = client.post("/v1/auth/token", data={"username": "clinician1", "password": "nope"})
    assert wrong.status_code == 401 and "error" in wrong.json()
    token = client.post(
        "/v1/auth/token",
        data={"username": "clinician1", "password": "correct horse battery staple"},
    ).json()
    assert token["token_type"] == "bearer" and token["role"] == "clinician"
    assert token["expires_in"] == api.services.settings.token_ttl_s
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.json() == {"username": "clinician1", "role": "clinician"}
    assert client.get("/v1/auth/me", headers=api.headers["apikey"]).json()["role"] == "clinician"
    bad_key = client.get("/v1/auth/me", headers={"X-API-Key": "irk_abc_def"})
    assert bad_key.status_code == 401
    assert client.get("/v1/studies", headers=api.as_role("auditor")).status_code == 403
    audit = AuditLog(api.services.db)
    assert audit.verify().ok
    with api.services.db.session(read_only=True) as session:
        from sqlalchemy import select

        from insightray.serving.storage.db.models import AuditRecord

        actions = {(r.actor, r.action, r.outcome) for r in session.scalars(select(AuditRecord))}
    assert ("auditor1", "denied:study_read", "denied") in actions
    assert ("clinician1", "auth.token", "denied") in actions


def test_rate_limit_answers_429_with_retry_after(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> None:
    # a burst of 5, then one request every 2 s: 8 at once must hit the limit
    for api_ in start_api(
        serve_settings, model_loader, password_hash, rate_per_s=0.5, rate_burst=5
    ):
        headers = api_.as_role("clinician")
        codes = [api_.client.get("/v1/auth/me", headers=headers) for _ in range(8)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited, [r.status_code for r in codes]
        assert int(limited[0].headers["Retry-After"]) >= 1
        assert limited[0].json()["error"]["type"] == "RateLimitedError"
        other = api_.client.get("/v1/auth/me", headers=api_.as_role("researcher"))
        assert other.status_code == 200  # buckets are per user
