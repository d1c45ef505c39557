"""Fuzz the API with schemathesis against its own OpenAPI schema: no 5xx, no stack traces.

The app runs under uvicorn on loopback (real HTTP parsing) on SQLite and on PostgreSQL, with
the session's loaded models. Every operation gets schema-conforming and schema-violating
requests, signed in as an admin so they reach the handlers; operations with ids in their
path also get requests on a real study, result and model, so the fuzzed bodies reach the
code behind the lookups. Operations run in the order GET, POST, PUT, DELETE, so the real
study is deleted last. A fixed seed keeps the suite repeatable; set
``INSIGHTRAY_FUZZ_SEED`` (and ``INSIGHTRAY_FUZZ_EXAMPLES``) to explore further.

Answers that are not failures: any 4xx with the JSON error body, and 503 where the service
says by design that a model is not there (no knowledge index for the assistant in tests, and
the fracture task while no fracture classifier is installed).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from insightray.serving.app import create_app
from insightray.serving.hosting.inference import ModelLoader
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import CHEST_DICOM, Api
from tests.serving.reliability.server import bearer, create_users, serve_in_thread

EXAMPLES = int(os.environ.get("INSIGHTRAY_FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("INSIGHTRAY_FUZZ_SEED", "20261126"))
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "DELETE": 3}


def _real_ids(base_url: str, headers: dict[str, str]) -> dict[str, str]:
    """A stored study, its cxr result and the bundled detector's name and version."""
    files = {"file": (CHEST_DICOM.name, CHEST_DICOM.read_bytes())}
    study = httpx.post(f"{base_url}/v1/studies", files=files, headers=headers, timeout=60)
    assert study.status_code == 201, study.text
    study_id = study.json()["id"]
    url = f"{base_url}/v1/studies/{study_id}/analyze"
    result = httpx.post(url, json={"task": "cxr"}, headers=headers, timeout=120)
    assert result.status_code == 200, result.text
    model = result.json()["model"]
    return {
        "study_id": study_id,
        "result_id": result.json()["result_id"],
        "name": model["name"],
        "version": model["version"],
    }


def _unavailable_by_design(case: Case[Any]) -> bool:
    """The 503 answers the service gives on purpose in this setup."""
    operation = (case.method.upper(), case.operation.path)
    if operation == ("POST", "/v1/assistant/ask"):
        return True  # no knowledge index is built for the tests
    if case.operation.path.startswith("/v1/pacs/"):
        return True  # no PACS is configured here (tests/serving/api/test_api_pacs.py has one)
    if operation == ("POST", "/v1/studies/{study_id}/analyze"):  # until one is bundled:
        return isinstance(case.body, dict) and case.body.get("task") == "fracture"
    return False


def _problem(case: Case[Any], status: int, body: str, content_type: str) -> str | None:
    """Why an answer is a failure, or None when it is fine."""
    if "Traceback" in body or 'File "' in body:
        return "a stack trace in the body"
    if status == 503 and "ServiceUnavailableError" in body and _unavailable_by_design(case):
        return None
    if status >= 500:
        return f"status {status}"
    if status >= 400 and (not content_type.startswith("application/json") or '"error"' not in body):
        return f"status {status} without the JSON error body"
    return None


@pytest.mark.slow
def test_fuzzing_the_openapi_schema_finds_no_server_error(
    serve_settings: ServeSettings, model_loader: ModelLoader
) -> None:
    create_users(serve_settings.home, serve_settings.database_url, {"fuzz1": "admin"})
    settings_ = dataclasses.replace(serve_settings, rate_per_s=10_000.0, rate_burst=10_000)
    app = create_app(settings_, loader=model_loader, warm_up=False)
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    unavailable: Counter[str] = Counter()  # 503 answers by operation
    with serve_in_thread(app) as base_url:
        headers = bearer(base_url, "fuzz1")
        real = _real_ids(base_url, headers)
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        loaded = list(schema.get_all_operations())
        assert all(isinstance(result, Ok) for result in loaded), loaded
        operations = sorted(
            (result.ok() for result in loaded if isinstance(result, Ok)),
            key=lambda op: (METHOD_ORDER.get(op.method.upper(), 9), op.path),
        )
        for operation in operations:
            names = {p.name for p in operation.path_parameters}
            strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
                GenerationMode.NEGATIVE
            )
            if names:
                fixed = {name: real[name] for name in names if name in real}
                strategy |= operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed)
                strategy |= operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed)

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
                statuses[response.status_code] += 1
                if response.status_code == 503:
                    unavailable[f"{case.method.upper()} {case.operation.path}"] += 1
                content_type = (response.headers.get("content-type") or [""])[0]
                body = response.content.decode("utf-8", errors="replace")  # PNGs too
                problem = _problem(case, response.status_code, body, content_type)
                if problem is not None:
                    failures.append(f"{problem}: {case.as_curl_command()}\n  {body[:300]}")

            send()
        alive = httpx.get(f"{base_url}/healthz", timeout=60).status_code
    print(f"\nfuzzed {len(operations)} operations: status counts {dict(sorted(statuses.items()))}")
    print(f"503 by design (model not there): {dict(unavailable)}")
    assert not failures, "\n".join(failures[:10])
    assert alive == 200
    assert sum(statuses.values()) >= len(operations) * EXAMPLES / 2
    assert any(200 <= status < 300 for status in statuses)


def test_nul_characters_get_a_4xx_on_both_databases(api: Api) -> None:
    """Found by probing past the fuzzer: PostgreSQL refuses NUL in text (SQLite takes it), and
    a NUL in a card path broke ``pathlib``; each was a 500."""
    admin = api.as_role("admin")
    study = api.upload(CHEST_DICOM)["id"]
    probes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/studies/%00", {}),
        ("GET", "/v1/results/a%00b", {}),
        ("GET", "/v1/models/x%00", {}),
        ("GET", "/v2/models/x%00", {}),
        ("PUT", "/v1/models/x%00/versions/1", {"json": {"stage": "staging"}}),
        ("POST", "/v1/models/x/versions", {"json": {"card_path": "/tmp/card\x00.json"}}),
        ("POST", f"/v1/studies/{study}/analyze", {"json": {"task": "cxr", "model": "a\x00b"}}),
    ]
    for method, path, kwargs in probes:
        response = api.client.request(method, path, headers=admin, **kwargs)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        error = response.json()["error"]  # the protocol's {"error": "<message>"} on /v2
        assert error if path.startswith("/v2") else error["message"]
    login = api.client.post("/v1/auth/token", data={"username": "ad\x00min1", "password": "x"})
    assert login.status_code in (401, 422), login.text
