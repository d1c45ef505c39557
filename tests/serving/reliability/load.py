"""A closed-loop HTTP load generator: N clients, each sending its next request as soon as
the previous one answered, for a fixed time; and the latency summary of what they saw.

Used by the load test and by ``benchmarks/bench_service.py``.

Example:
    >>> def calls(client: int, turn: int) -> Call:
    ...     return Call("health", "GET", "/healthz")
    >>> samples, seconds = asyncio.run(
    ...     run_clients("http://127.0.0.1:8000", calls, clients=32, duration_s=30)
    ... )  # doctest: +SKIP
    >>> summarise(samples, seconds)["routes"]["health"]["p99_ms"]  # doctest: +SKIP
    12.5
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

__all__ = ["Call", "Sample", "latency_stats", "run_clients", "summarise"]


@dataclass(frozen=True)
class Call:
    """One request: a label to group it by, the method, the path and httpx arguments."""

    label: str
    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """What one request got: HTTP status (0 when the transport failed) and its time."""

    label: str
    status: int
    seconds: float
    error: str = ""


async def run_clients(
    base_url: str,
    next_call: Callable[[int, int], Call],
    *,
    clients: int,
    duration_s: float,
    timeout_s: float = 120.0,
) -> tuple[list[Sample], float]:
    """Run ``clients`` concurrent clients for ``duration_s`` seconds.

    Each client ``c`` sends ``next_call(c, turn)`` for ``turn = 0, 1, ...`` until the time is
    up; requests in flight then finish. Returns every sample and the seconds from the first
    request to the last answer (the denominator of requests per second).
    """
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s) as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration_s

        async def one_client(index: int) -> None:
            turn = 0
            while loop.time() < deadline:
                call = next_call(index, turn)
                turn += 1
                started = time.perf_counter()
                try:
                    response = await client.request(call.method, call.path, **call.kwargs)
                    status, error = response.status_code, ""
                    if status >= 400:
                        error = response.text[:200]
                except httpx.HTTPError as failure:
                    status, error = 0, f"{type(failure).__name__}: {failure}"[:200]
                samples.append(Sample(call.label, status, time.perf_counter() - started, error))

        started = time.perf_counter()
        await asyncio.gather(*(one_client(index) for index in range(clients)))
        elapsed = time.perf_counter() - started
    return samples, elapsed


def latency_stats(seconds: Sequence[float], elapsed_s: float) -> dict[str, float]:
    """Count, requests per second over ``elapsed_s``, mean and p50/p95/p99 in milliseconds."""
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    if values.size == 0:
        return {"count": 0, "requests_per_s": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "count": int(values.size),
        "requests_per_s": round(values.size / elapsed_s, 2),
        "mean_ms": round(float(values.mean()), 1),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
    }


def summarise(samples: Sequence[Sample], elapsed_s: float) -> dict[str, Any]:
    """Statistics over all samples and per label, status counts, and the first errors."""
    labels = sorted({sample.label for sample in samples})
    routes = {
        label: latency_stats([s.seconds for s in samples if s.label == label], elapsed_s)
        for label in labels
    }
    statuses = Counter(str(sample.status) for sample in samples)
    errors = [f"{s.label} {s.status} {s.error}" for s in samples if s.status not in range(1, 500)]
    return {
        "elapsed_s": round(elapsed_s, 2),
        "all": latency_stats([sample.seconds for sample in samples], elapsed_s),
        "routes": routes,
        "status_counts": dict(sorted(statuses.items())),
        "first_errors": errors[:10],
    }
