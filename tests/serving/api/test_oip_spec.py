"""The service against the Open Inference Protocol's own OpenAPI document, with schemathesis.

The reference document is ``specs/open_inference_rest.yaml``, copied unchanged from
https://github.com/open-inference/open-inference-protocol/blob/dca50b7ec50db5013d04e168f6deb84134eb03df/specification/protocol/open_inference_rest.yaml
(the KServe Open Inference Protocol, formerly kserve/open-inference-protocol; Copyright
2023 The KServe Authors, Apache License 2.0, as its header says).

Every operation it defines gets a few generated requests (schema-conforming and not,
fixed seed) on random and on real model names and versions, signed in as an admin, on a
service under uvicorn (real HTTP); plus a valid inference per real model, sent as the
document describes it. An answer fails when it is a server error, when a 2xx body does not
match the document's schema, or when an error body is not the protocol's
``{"error": "<message>"}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from insightray.models import load_card
from insightray.models.catalog import bundled_models_dir
from insightray.serving.app import create_app
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.security.users import create_api_key
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import DETECTOR, DETECTOR_VERSION, FAST
from tests.serving.reliability.server import create_users, serve_in_thread

SPEC = Path(__file__).parent / "specs" / "open_inference_rest.yaml"
EXAMPLES = int(os.environ.get("INSIGHTRAY_FUZZ_EXAMPLES", "4"))
SEED = 20261207
FRACTURE = "fracture-roboflow-lite0"
FRACTURE_VERSION = load_card(bundled_models_dir() / FRACTURE / "card.json").version
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the protocol layer does not touch the database beyond the API key
    lookup, which the other API tests run on PostgreSQL too."""
    return f"sqlite:///{tmp_path / 'insightray-test.db'}"


@pytest.fixture
def service(
    serve_settings: ServeSettings, model_loader: ModelLoader
) -> Iterator[tuple[str, dict[str, str]]]:
    """A service on loopback and an admin's API key headers."""
    create_users(serve_settings.home, serve_settings.database_url, {"admin1": "admin"})
    settings_ = dataclasses.replace(serve_settings, **FAST)
    app = create_app(settings_, loader=model_loader, warm_up=False)
    with serve_in_thread(app) as base_url:
        yield base_url, {"X-API-Key": create_api_key(app.state.services.db, "admin1")}


def _problems(case: Case[Any], response: Any) -> list[str]:
    """Why an answer breaks the protocol, or nothing."""
    problems = []
    try:
        case.validate_response(response, checks=CHECKS)
    except (AssertionError, FailureGroup) as failure:
        problems.append(str(failure).splitlines()[0] if str(failure) else type(failure).__name__)
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
            problems.append(f"error body {response.content[:120]!r} is not {{'error': str}}")
    return [f"{case.method} {case.formatted_path} -> {response.status_code}: {p}" for p in problems]


def test_the_service_keeps_to_the_protocols_published_openapi_document(
    service: tuple[str, dict[str, str]],
) -> None:
    base_url, headers = service
    schema = schemathesis.openapi.from_path(SPEC)
    loaded = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in loaded), loaded
    operations = [result.ok() for result in loaded if isinstance(result, Ok)]
    # live, ready, server metadata; model ready, metadata and infer, with and without
    # /versions/{MODEL_VERSION} (schemathesis also derives the paths without it)
    assert len(operations) == 9, [op.label for op in operations]
    failures: list[str] = []
    statuses: list[int] = []
    real = {"MODEL_NAME": DETECTOR, "MODEL_VERSION": DETECTOR_VERSION}
    for operation in operations:
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )
        names = {parameter.name for parameter in operation.path_parameters}
        if names:
            fixed = {name: real[name] for name in names}
            strategy |= operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed)

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES * (2 if names else 1),
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def send(case: Case[Any]) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=120)
            statuses.append(response.status_code)
            failures.extend(_problems(case, response))

        send()
    infer = next(op for op in operations if op.path.endswith("/versions/{MODEL_VERSION}/infer"))
    pixels = np.full((96, 96), 128, np.uint8).ravel().tolist()
    for name, version in ((DETECTOR, DETECTOR_VERSION), (FRACTURE, FRACTURE_VERSION)):
        body = {
            "id": "42",
            "inputs": [{"name": "image", "shape": [96, 96], "datatype": "UINT8", "data": pixels}],
        }
        case = infer.Case(
            path_parameters={"MODEL_NAME": name, "MODEL_VERSION": version},
            body=body,
            media_type="application/json",
        )
        response = case.call(base_url=base_url, headers=headers, timeout=120)
        assert response.status_code == 200, response.text
        failures.extend(_problems(case, response))
    assert not failures, "\n".join(failures[:10])
    assert len(statuses) >= len(operations) * EXAMPLES / 2
    assert 200 in statuses and any(400 <= status < 500 for status in statuses)
