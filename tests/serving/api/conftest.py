"""Fixtures of the API tests: real models loaded once per session, an app per database.

``api`` is a running app (lifespan entered) on the ``serve_settings`` of
``tests/serving/conftest.py`` (so on SQLite and on PostgreSQL), with one user per role and
their bearer headers; ``start_api(settings, loader, **overrides)`` starts one with other
settings. ``model_loader`` keeps real models loaded for the whole session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from insightray.config import data_root
from insightray.models import load_card
from insightray.models.catalog import bundled_models_dir
from insightray.serving.app import create_app
from insightray.serving.deps import Services
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.security.passwords import hash_password
from insightray.serving.security.roles import Role
from insightray.serving.security.users import create_api_key
from insightray.serving.settings import ServeSettings
from insightray.serving.storage.db.models import User

DICOM_DIR = data_root() / "dicom"
CHEST_DICOM = DICOM_DIR / "cr_chest_pa_jpeg_baseline.dcm"
PASSWORD = "correct horse battery staple"
#: The bundled default detector and its version (whatever model ships now).
DETECTOR = "cxr-tbx11k-yolov5s"
DETECTOR_VERSION = load_card(bundled_models_dir() / DETECTOR / "card.json").version
#: Generous limits: the tests send many requests per second as one user.
FAST = {"rate_per_s": 10_000.0, "rate_burst": 10_000}


@dataclass
class Api:
    """A running app, its services and one signed-in user per role."""

    client: TestClient
    services: Services
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_role(self, role: str) -> dict[str, str]:
        """Bearer headers of the user ``<role>1`` (created for every role)."""
        return self.headers[role]

    def upload(self, path: Path, role: str = "clinician") -> dict[str, Any]:
        """Upload a file and return the study JSON (asserting 201)."""
        with path.open("rb") as handle:
            response = self.client.post(
                "/v1/studies", files={"file": (path.name, handle)}, headers=self.as_role(role)
            )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="session")
def model_loader(tmp_path_factory: pytest.TempPathFactory) -> ModelLoader:
    """Real models, loaded on first use and kept for the whole session (no index)."""
    return ModelLoader(index_dir=tmp_path_factory.mktemp("no-index") / "index")


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One argon2id hash of :data:`PASSWORD` for every test user (hashing is slow on purpose)."""
    return hash_password(PASSWORD)


def start_api(
    settings: ServeSettings, loader: ModelLoader, password_hash: str, **overrides: Any
) -> Iterator[Api]:
    """Run an app on ``settings`` (with ``overrides``) with a user ``<role>1`` per role.

    Their tokens come from the app's issuer (``POST /v1/auth/token`` has its own tests).
    """
    settings = dataclasses.replace(settings, **{**FAST, **overrides})
    app = create_app(settings, loader=loader, warm_up=False)
    with TestClient(app) as client:
        services: Services = app.state.services
        api = Api(client, services)
        with services.db.session() as session:
            for role in Role:
                name = f"{role.value}1"
                user = User(username=name, password_hash=password_hash, role=role.value)
                session.add(user)
        for role in Role:
            token = services.tokens.issue(f"{role.value}1", role.value)
            api.headers[role.value] = {"Authorization": f"Bearer {token}"}
        api.headers["apikey"] = {"X-API-Key": create_api_key(services.db, "clinician1")}
        yield api


@pytest.fixture
def api(
    serve_settings: ServeSettings, model_loader: ModelLoader, password_hash: str
) -> Iterator[Api]:
    """A running app on SQLite and on PostgreSQL, sharing the session's loaded models."""
    yield from start_api(serve_settings, model_loader, password_hash)
