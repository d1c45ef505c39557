"""Load test on loopback: 32 clients for 30 s against a real ``insightray serve`` process.

Every client alternates ``POST /v1/studies/{id}/analyze`` (cxr detection on four real
radiographs) with a health route. The service runs with its default settings, result cache
included, and each study is analysed once before the clients start: the detector's output is
then reused, but every request still does all the rest an analysis does (authenticate,
decrypt and decode the study, draw, encrypt and store the overlay, write the result row and
the audit record), so the database, the store and the audit chain take the concurrent load.
(32 cold detector runs at once would take most of the 30 s on two cores; the detector under
concurrency is measured by ``benchmarks/bench_service.py``.) Rate limits are raised for the
test, so any answer other than 200 is a failure: no 5xx, no 429, no dropped connection.
p50/p95/p99 and requests/s go to ``runs/reliability/load_test.json``
(``INSIGHTRAY_LOAD_REPORT`` overrides the path) and to stdout. The figures are recorded, not
asserted: they depend on the machine's load.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from insightray.config import data_root
from tests.serving.reliability.load import Call, run_clients, summarise
from tests.serving.reliability.server import ServiceProcess, bearer, create_users

CLIENTS = 32
DURATION_S = 30.0
HEALTH_ROUTES = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")
REPORT = Path(__file__).resolve().parents[3] / "runs" / "reliability" / "load_test.json"
#: The default service except for the rate limits: one user sends everything here.
LOAD_SETTINGS = {"rate_per_s": "100000", "rate_burst": "100000"}


def _radiographs() -> list[Path]:
    images = sorted((data_root() / "cxr" / "tbx11k" / "images").glob("*.jpg"))[:3]
    chest = data_root() / "dicom" / "cr_chest_pa_jpeg_baseline.dcm"
    if len(images) < 3 or not chest.is_file():
        pytest.skip("the shared chest X-ray data is not found")
    return [chest, *images]


def _inference_counts(metrics_text: str) -> dict[str, float]:
    """Batches, images in them and cache lookups, from the service's own metrics."""
    totals = {"batches": 0.0, "images": 0.0, "cache_hit": 0.0, "cache_miss": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "insightray_batch_size_count":
                totals["batches"] += sample.value
            elif sample.name == "insightray_batch_size_sum":
                totals["images"] += sample.value
            elif sample.name == "insightray_cache_total":
                totals[f"cache_{sample.labels['outcome']}"] += sample.value
    return totals


@pytest.mark.slow
def test_32_clients_for_30_seconds_get_no_errors(tmp_path: Path) -> None:
    radiographs = _radiographs()
    home = tmp_path / "home"
    create_users(home, None, {"load1": "clinician", "ops1": "admin"})
    with ServiceProcess(home, settings=LOAD_SETTINGS) as server:
        server.start()
        server.wait_ready()
        headers = bearer(server.base_url, "load1")
        study_ids = []
        for path in radiographs:
            files = {"file": (path.name, path.read_bytes())}
            upload = httpx.post(
                f"{server.base_url}/v1/studies", files=files, headers=headers, timeout=60
            )
            assert upload.status_code == 201, upload.text
            study_ids.append(upload.json()["id"])
            url = f"{server.base_url}/v1/studies/{study_ids[-1]}/analyze"
            first = httpx.post(url, json={"task": "cxr"}, headers=headers, timeout=120)
            assert first.status_code == 200, first.text

        def next_call(client: int, turn: int) -> Call:
            if turn % 2 == 0:
                study = study_ids[(client + turn // 2) % len(study_ids)]
                path = f"/v1/studies/{study}/analyze"
                return Call("analyze", "POST", path, {"json": {"task": "cxr"}, "headers": headers})
            return Call("health", "GET", HEALTH_ROUTES[(client + turn // 2) % len(HEALTH_ROUTES)])

        samples, elapsed = asyncio.run(
            run_clients(server.base_url, next_call, clients=CLIENTS, duration_s=DURATION_S)
        )
        admin = bearer(server.base_url, "ops1")
        metrics = httpx.get(f"{server.base_url}/metrics", headers=admin, timeout=60).text
        alive = httpx.get(f"{server.base_url}/healthz", timeout=60).status_code
    report: dict[str, Any] = {
        "clients": CLIENTS,
        "duration_s": DURATION_S,
        "studies": len(study_ids),
        "settings": LOAD_SETTINGS,
        "cpu_count": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        **summarise(samples, elapsed),
        "inference": _inference_counts(metrics),
    }
    target = Path(os.environ.get("INSIGHTRAY_LOAD_REPORT", REPORT))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nload test report ({target}):\n{json.dumps(report, indent=2)}")

    assert report["status_counts"] == {"200": len(samples)}, report["first_errors"] or report
    assert {"analyze", "health"} <= set(report["routes"])
    assert elapsed >= DURATION_S
    inference, analyses = report["inference"], report["routes"]["analyze"]["count"]
    assert inference["cache_hit"] + inference["cache_miss"] == analyses + len(study_ids)
    assert inference["images"] == inference["cache_miss"] >= len(study_ids)
    assert alive == 200
