"""The service under load: dynamic batching against one request at a time, and what auth,
audit and encryption cost per request.

1. Batching. ``insightray serve`` runs twice per repeat on the same machine, once with the
   default dynamic batcher (``batch_max_size`` 8, ``batch_max_delay_ms`` 10) and once with
   ``batch_max_size`` 1, in ABBA order so a drifting background load hits both alike. The
   result cache is off, so every request runs the detector. ``--clients`` closed-loop
   clients send ``POST /v1/studies/{id}/analyze`` (cxr) on real TBX11K radiographs for
   ``--seconds``; requests/s, p50 and p95 are measured at the client, batch sizes from the
   service's own metrics.
2. Layers. On the last dynamic-batching service, one client at a time: ``GET /healthz`` (no
   layers), ``GET /v1/auth/me`` (authentication: JWT check, user lookup, rate limit),
   ``POST /v1/studies`` and ``POST .../analyze`` (the references). In this process, on the
   same data directory: one audit append (hash chain, a durable commit) and AES-256-GCM
   sealing/opening of blobs the size of what an upload and an analysis store.

``--torch-threads`` sets ``INSIGHTRAY_TORCH_THREADS`` (default: the service's own choice, all
cores for its one inference worker). On cores that other work keeps busy, two intra-op threads
spend most of a batch-of-one forward pass waiting for each other, which batching hides; one
thread shows what batching itself buys on a CPU.

Usage:
    .venv/bin/python benchmarks/bench_service.py [--clients 16] [--seconds 30] [--repeats 1]
        [--torch-threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the service launcher and load generator live with the tests

from insightray.config import data_root  # noqa: E402
from insightray.serving.security.audit import AuditLog  # noqa: E402
from insightray.serving.settings import ServeSettings  # noqa: E402
from insightray.serving.storage.blobstore import BlobStore  # noqa: E402
from insightray.serving.storage.crypto import KeyRing  # noqa: E402
from insightray.serving.storage.db import Database, Result  # noqa: E402
from tests.serving.reliability.load import Call, latency_stats, run_clients  # noqa: E402
from tests.serving.reliability.server import ServiceProcess, bearer, create_users  # noqa: E402

LIMITS = {"rate_per_s": "100000", "rate_burst": "100000", "cache_entries": "0"}
CONFIGS = {
    "dynamic": {"batch_max_size": "8", "batch_max_delay_ms": "10"},
    "one-at-a-time": {"batch_max_size": "1", "batch_max_delay_ms": "0"},
}


def batch_counts(base_url: str, headers: dict[str, str]) -> tuple[float, float]:
    """Batches run and images in them so far, from ``/metrics``."""
    text = httpx.get(f"{base_url}/metrics", headers=headers, timeout=60).text
    batches = images = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "insightray_batch_size_count":
                batches += sample.value
            elif sample.name == "insightray_batch_size_sum":
                images += sample.value
    return batches, images


def upload(base_url: str, headers: dict[str, str], path: Path) -> tuple[str, float]:
    """Upload one file; returns the study id and the request's seconds."""
    started = time.perf_counter()
    files = {"file": (path.name, path.read_bytes())}
    response = httpx.post(f"{base_url}/v1/studies", files=files, headers=headers, timeout=120)
    response.raise_for_status()
    return response.json()["id"], time.perf_counter() - started


def analyze(base_url: str, headers: dict[str, str], study: str) -> float:
    """Analyse one study (cxr); returns the request's seconds."""
    started = time.perf_counter()
    url = f"{base_url}/v1/studies/{study}/analyze"
    response = httpx.post(url, json={"task": "cxr"}, headers=headers, timeout=300)
    response.raise_for_status()
    return time.perf_counter() - started


def timed(function: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Median and p95 milliseconds of ``function`` over ``repeats`` calls (after one warm-up)."""
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000.0)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))], 3),
    }


def run_config(
    name: str, home: Path, images: list[Path], clients: int, seconds: float, extra: dict[str, str]
) -> tuple[dict[str, Any], ServiceProcess, dict[str, str], list[str]]:
    """One service with one batching configuration under ``clients`` clients."""
    create_users(home, None, {"bench1": "clinician", "ops1": "admin"})
    server = ServiceProcess(home, settings={**LIMITS, **CONFIGS[name], **extra})
    server.start()
    server.wait_ready()
    headers, admin = bearer(server.base_url, "bench1"), bearer(server.base_url, "ops1")
    studies = [upload(server.base_url, headers, path)[0] for path in images]
    for study in studies[:2]:  # the first inferences are slow (allocations, lazy init)
        analyze(server.base_url, headers, study)
    before = batch_counts(server.base_url, admin)

    def next_call(client: int, turn: int) -> Call:
        study = studies[(client * 7 + turn) % len(studies)]
        path = f"/v1/studies/{study}/analyze"
        return Call("analyze", "POST", path, {"json": {"task": "cxr"}, "headers": headers})

    load_before = os.getloadavg()[0]
    samples, elapsed = asyncio.run(
        run_clients(server.base_url, next_call, clients=clients, duration_s=seconds, timeout_s=600)
    )
    after = batch_counts(server.base_url, admin)
    failed = [s for s in samples if s.status != 200]
    if failed:
        raise RuntimeError(f"{len(failed)} failed requests, e.g. {failed[0]}")
    batches, batched_images = after[0] - before[0], after[1] - before[1]
    row = {
        "config": name,
        **CONFIGS[name],
        **latency_stats([s.seconds for s in samples], elapsed),
        "mean_batch": round(batched_images / max(batches, 1.0), 2),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(row), flush=True)
    return row, server, headers, studies


def layer_costs(
    server: ServiceProcess, headers: dict[str, str], studies: list[str], image: Path, n: int
) -> dict[str, Any]:
    """Per-request cost of authentication, audit and encryption, and the references."""
    base = server.base_url
    with httpx.Client(base_url=base, timeout=300) as client:
        http = {
            "healthz (no layers)": timed(lambda: client.get("/healthz"), n),
            "auth/me (auth only)": timed(lambda: client.get("/v1/auth/me", headers=headers), n),
        }
    http["upload (reference)"] = timed(lambda: upload(base, headers, image), max(10, n // 10))
    http["analyze (reference)"] = timed(lambda: analyze(base, headers, studies[0]), 10)
    server.stop()

    settings = ServeSettings(home=server.home)
    db = Database(settings.database_url)
    keyring = KeyRing.from_settings(settings)
    store = BlobStore(settings.store_dir, keyring)
    with db.session(read_only=True) as session:
        result = session.scalars(select(Result).limit(1)).one()
    sizes = {
        "upload": len(image.read_bytes()),
        "analysis output": len(store.get(result.output_sha256)),
        "analysis overlay": len(store.get(result.image_sha256 or "")),
    }
    audit = AuditLog(db, anchor=settings.audit_anchor)  # as the service runs it
    unanchored = AuditLog(db)  # the database commit alone, without the anchor file
    local = {
        "audit append": timed(
            lambda: audit.append("bench1", "clinician", "study.read", outcome="ok"), n
        ),
        "audit append without anchor file": timed(
            lambda: unanchored.append("bench1", "clinician", "study.read", outcome="ok"), n
        ),
    }
    for what, size in sizes.items():
        payload = os.urandom(size)

        def seal_and_open(payload: bytes = payload) -> bytes:
            return keyring.decrypt(keyring.encrypt(payload, b"name"), b"name")

        local[f"seal+open {what} ({size // 1024} KiB)"] = timed(seal_and_open, n)
    db.close()
    return {"http": http, "in_process": local, "blob_bytes": sizes, "database": "sqlite"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=1, help="ABBA blocks of the two configs")
    parser.add_argument("--studies", type=int, default=24, help="distinct radiographs")
    parser.add_argument("--layer-requests", type=int, default=200)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=REPO / "runs" / "bench_service.json")
    args = parser.parse_args()
    images = sorted((data_root() / "cxr" / "tbx11k" / "images").glob("*.jpg"))[: args.studies]
    order = ["dynamic", "one-at-a-time", "one-at-a-time", "dynamic"] * args.repeats
    extra = {} if args.torch_threads is None else {"torch_threads": str(args.torch_threads)}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-service-") as folder:
        for index, name in enumerate(order):
            home = Path(folder) / f"home{index}"
            row, server, headers, studies = run_config(
                name, home, images, args.clients, args.seconds, extra
            )
            rows.append(row)
            if index < len(order) - 1:
                server.stop()
        layers = layer_costs(server, headers, studies, images[-1], args.layer_requests)

    def mean(name: str, key: str) -> float:
        return statistics.fmean(row[key] for row in rows if row["config"] == name)

    summary = {
        name: {key: round(mean(name, key), 2) for key in ("requests_per_s", "p50_ms", "p95_ms")}
        for name in CONFIGS
    }
    ratio = summary["dynamic"]["requests_per_s"] / summary["one-at-a-time"]["requests_per_s"]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "clients": args.clients,
        "seconds": args.seconds,
        "torch_threads": args.torch_threads or "service default",
        "runs": rows,
        "summary": summary,
        "batching_speedup": round(ratio, 2),
        "layers": layers,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
