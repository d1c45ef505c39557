"""Liveness, readiness and Prometheus metrics.

``/healthz`` and ``/v2/health/live`` answer 200 while the process serves HTTP;
``/readyz`` and ``/v2/health/ready`` answer 200 once the database answers and the model
warm-up has finished (each model's state is listed), 503 before. ``/metrics`` needs the
``metrics_read`` permission (admins, auditors; give Prometheus an API key); its feedback and
retraining series are read from the database at each scrape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from insightray.serving.deps import MetricsReader, ServicesDep, get_services
from insightray.serving.hosting.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: database reachable and models loaded."""
    ready, body = await _readiness(request)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/v2/health/live")
def live() -> dict[str, bool]:
    """Open Inference Protocol liveness."""
    return {"live": True}


@router.get("/v2/health/ready")
async def ready(request: Request) -> JSONResponse:
    """Open Inference Protocol readiness."""
    is_ready, _ = await _readiness(request)
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


async def _readiness(request: Request) -> tuple[bool, dict[str, Any]]:
    services = get_services(request)
    database = await run_in_threadpool(services.db.ping)
    warmed = services.host.warm_up_done.is_set()
    ready = database and warmed
    body = {
        "status": "ready" if ready else ("starting" if database else "unavailable"),
        "database": database,
        "models": dict(services.host.loader.states),
    }
    return ready, body


@router.get("/metrics", response_class=Response)
def metrics(services: ServicesDep, who: MetricsReader) -> Response:
    """Prometheus text format."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
