"""The web application: ``create_app(settings)`` builds a FastAPI app with no global state.

The lifespan opens the database (migrating it), the key ring, the encrypted store, the audit
trail, the rate limiter and the token issuer, registers the bundled models on first start
and starts loading the production models in the background (``/readyz`` answers 503 until
that is done). Everything lives on ``app.state.services``
(:class:`~insightray.serving.deps.Services`).

Example:
    >>> from insightray.serving.settings import ServeSettings
    >>> app = create_app(ServeSettings.from_env())  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from insightray.errors import PayloadTooLargeError
from insightray.models.catalog import find_task
from insightray.serving.deps import Services
from insightray.serving.handlers import error_response, install_error_handlers
from insightray.serving.hosting.cache import ResultCache
from insightray.serving.hosting.drift import DriftMonitor
from insightray.serving.hosting.feedback import feedback_figures, record_drift
from insightray.serving.hosting.index_preparation import IndexPreparation
from insightray.serving.hosting.inference import ModelHost, ModelLoader, configure_torch_threads
from insightray.serving.hosting.metrics import ServiceMetrics
from insightray.serving.hosting.pacs import PacsGateway
from insightray.serving.hosting.rollout import ModelRegistry
from insightray.serving.routes import ROUTERS
from insightray.serving.security.audit import AuditLog
from insightray.serving.security.ratelimit import make_rate_limiter
from insightray.serving.security.tokens import TokenIssuer
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.blobstore import BlobStore
from insightray.serving.storage.crypto import KeyRing
from insightray.serving.storage.db.session import Database
from insightray.serving.storage.pseudonyms import site_salt

__all__ = ["WEB_DIR", "create_app"]

log = logging.getLogger("insightray.serving")

#: The browser viewer's files, served at ``/`` and ``/static/`` when present.
WEB_DIR = Path(__file__).resolve().parent / "web"
#: Room for the multipart envelope around an upload of ``max_upload_bytes``.
_FORM_OVERHEAD = 64 * 1024


def create_app(
    settings: ServeSettings, *, loader: ModelLoader | None = None, warm_up: bool = True
) -> FastAPI:
    """Build the service.

    Args:
        settings: Where the data lives and how the service behaves.
        loader: Loaded models to share (tests load real models once per session); a new
            one by default.
        warm_up: Load the production models in the background at start-up.

    Example:
        >>> app = create_app(ServeSettings.from_env(home=Path("/tmp/ir")))  # doctest: +SKIP
    """
    body_limit = settings.max_upload_bytes + _FORM_OVERHEAD

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = _open_services(settings, loader)
        app.state.services = services
        if settings.index_on_start:
            _prepare_index(services)
        if warm_up:
            services.host.warm_up(_warm_up_steps(services))
        else:
            services.host.warm_up_done.set()
        log.info("insightray service ready to take requests (%s)", services.db.dialect)
        try:
            yield
        finally:
            await services.host.close()
            services.db.close()

    app = FastAPI(
        title="Insight Ray",
        version="1",
        summary="Medical imaging and clinical language AI: secure clinical service.",
        description=(
            "Authenticate with `POST /v1/auth/token` (OAuth2 password flow) and send "
            "`Authorization: Bearer <token>`, or send an API key as `X-API-Key`. "
            'Errors are JSON `{"error": {"type", "message"}}`; on the Open Inference '
            'Protocol routes (`/v2`), the protocol\'s `{"error": "message"}`.'
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    _mount_web(app)
    app.add_middleware(_RequestMetrics)
    app.add_middleware(_BodySizeLimit, max_bytes=body_limit)
    return app


def _open_services(settings: ServeSettings, loader: ModelLoader | None) -> Services:
    settings.ensure_dirs()
    # Uploads are decoded in memory now; this clears the scratch files older versions wrote.
    shutil.rmtree(settings.home / "tmp", ignore_errors=True)
    configure_torch_threads(settings.torch_threads)
    db = Database.open(settings)
    keyring = KeyRing.from_settings(settings)
    metrics = ServiceMetrics()
    metrics.watch_feedback(lambda: feedback_figures(db, settings.retrain_window))
    audit = AuditLog(db, anchor=settings.keys_dir / "audit.anchor")
    on_drift = partial(record_drift, db, audit) if settings.retrain_on_drift else None
    drift = DriftMonitor(settings, on_change=on_drift)
    metrics.watch_drift(drift.figures)
    host = ModelHost(
        loader or ModelLoader(index_dir=settings.home / "index"),
        metrics,
        ResultCache(settings.cache_entries),
        threads=settings.inference_threads,
        batch_max_size=settings.batch_max_size,
        batch_max_delay_ms=settings.batch_max_delay_ms,
        drift=drift,
    )
    registry = ModelRegistry(db)
    registry.register_bundled()
    salt = site_salt(settings.keys_dir)
    return Services(
        settings=settings,
        db=db,
        store=BlobStore(settings.store_dir, keyring),
        audit=audit,
        tokens=TokenIssuer.from_keys_dir(settings.keys_dir, settings.token_ttl_s),
        limiter=make_rate_limiter(settings),
        registry=registry,
        host=host,
        metrics=metrics,
        deid_salt=salt,
        pacs=PacsGateway(settings, keyring, salt),
    )


def _prepare_index(services: Services) -> None:
    """Build the knowledge index in the background when there is none yet."""
    loader = services.host.loader
    if loader.preparation is None:
        loader.preparation = IndexPreparation(loader.index_dir)
    if loader.preparation.start():
        log.info("no knowledge index yet: building it in the background")


def _warm_up_steps(services: Services) -> list[Callable[[], Any]]:
    """Load every production version, and the text pipeline and assistant on top."""
    loader = services.host.loader
    steps: list[Callable[[], Any]] = []
    production = [e for e in services.registry.versions() if e.stage == "production"]
    by_task = {entry.task: entry for entry in production}
    for entry in production:
        task = find_task(entry.task)
        if task.image:
            steps.append(partial(loader.image_runner, entry))
        elif task.name == "intent":
            steps.append(partial(loader.assistant_runner, entry))
    if "ner" in by_task and "text-classification" in by_task:
        ner, classifier = by_task["ner"], by_task["text-classification"]
        steps.append(partial(loader.text_runner, ner, classifier))
    return steps


#: The viewer loads and talks to this origin only; the browser enforces it.
_VIEWER_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _mount_web(app: FastAPI) -> None:
    """Serve the viewer when its files are installed; the API works without them."""
    index = WEB_DIR / "index.html"
    if not index.is_file():
        return
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def viewer() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=_VIEWER_HEADERS)


class _RequestMetrics:
    """Count requests and their latency per route template (raw paths hold ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            services: Services | None = getattr(scope["app"].state, "services", None)
            if services is not None:
                seconds = time.perf_counter() - started
                services.metrics.observe_request(scope["method"], route, status, seconds)


class _BodySizeLimit:
    """Answer 413 JSON when a body is over the limit, without reading more of it.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is
    counted as it arrives and refused with :class:`PayloadTooLargeError` when it passes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            error = self._error(int(declared))
            kind, path = type(error).__name__, scope["path"]
            await error_response(path, kind, str(error), 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._error(received)
            return message

        await self.app(scope, counted, send)

    def _error(self, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            "request",
            f"the body is over {size:,} bytes, above the limit of {self.max_bytes:,} bytes",
            "send a smaller file",
        )
