"""The HTTP routes, one router per area; :data:`ROUTERS` is what the app includes.

Every ``/v1`` and ``/v2/models`` route needs credentials and a permission (see
:func:`insightray.serving.deps.require`); only the health routes, the Open Inference
Protocol's server metadata (``GET /v2``), ``POST /v1/auth/token`` and the viewer's static
files are open.
"""

from __future__ import annotations

from fastapi import APIRouter

from insightray.serving.routes import (
    analysis,
    assistant,
    auth,
    feedback,
    health,
    labels,
    measurements,
    models,
    oip,
    pacs,
    reports,
    studies,
    study_reports,
    study_tags,
    text,
)

__all__ = ["PUBLIC_PATHS", "ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    studies.router,
    study_tags.router,
    measurements.router,
    analysis.router,
    feedback.router,
    text.router,
    reports.router,
    study_reports.router,
    assistant.router,
    models.router,
    labels.router,
    pacs.router,
    oip.router,
    health.router,
)

#: Paths that answer without credentials (everything else answers 401 without them).
PUBLIC_PATHS = frozenset(
    {
        "/v1/auth/token",
        "/healthz",
        "/readyz",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/v2/",
        "/",
        "/static",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
