"""Token buckets in memory and in the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from insightray.errors import ServiceUnavailableError
from insightray.serving.security.ratelimit import (
    MemoryRateLimiter,
    RedisRateLimiter,
    make_rate_limiter,
)
from insightray.serving.settings import ServeSettings

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix on the local Redis, removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at 127.0.0.1:6379 ({error})", pytrace=False)
    prefix = f"insightray-test:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def _limiters(kind: str, prefix: str, rate: float, burst: int) -> list[object]:
    if kind == "memory":
        return [MemoryRateLimiter(rate, burst)]
    return [RedisRateLimiter(REDIS_URL, rate, burst, prefix=prefix) for _ in range(2)]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_burst_then_refusal_with_retry_after(kind: str, redis_prefix: str) -> None:
    limiter = _limiters(kind, redis_prefix, rate=2.0, burst=3)[0]
    decisions = [limiter.check("ada") for _ in range(4)]  # type: ignore[attr-defined]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 0.3 < decisions[-1].retry_after_s <= 0.5  # one token every 0.5 s
    assert limiter.check("bob").allowed  # type: ignore[attr-defined]  # buckets are per key
    time.sleep(decisions[-1].retry_after_s + 0.05)
    assert limiter.check("ada").allowed  # type: ignore[attr-defined]


def test_redis_buckets_are_shared_between_replicas(redis_prefix: str) -> None:
    first, second = _limiters("redis", redis_prefix, rate=0.5, burst=4)
    allowed = [
        limiter.check("key:abc").allowed  # type: ignore[attr-defined]
        for limiter in (first, second, first, second, first, second)
    ]
    assert allowed == [True, True, True, True, False, False]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_concurrent_checks_never_exceed_the_burst(kind: str, redis_prefix: str) -> None:
    limiters = _limiters(kind, redis_prefix, rate=0.001, burst=25)
    granted: list[bool] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        limiter = limiters[index % len(limiters)]
        for _ in range(20):
            allowed = limiter.check("shared").allowed  # type: ignore[attr-defined]
            with lock:
                granted.append(allowed)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 120 and sum(granted) == 25


def test_unreachable_redis_is_a_typed_error() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 1.0, 1)
    with pytest.raises(ServiceUnavailableError, match="Redis"):
        limiter.check("ada")


def test_settings_choose_the_limiter(tmp_path: Path) -> None:
    memory = make_rate_limiter(ServeSettings(home=tmp_path, rate_per_s=3.0, rate_burst=7))
    assert isinstance(memory, MemoryRateLimiter) and memory.burst == 7
    shared = make_rate_limiter(ServeSettings(home=tmp_path, redis_url=REDIS_URL))
    assert isinstance(shared, RedisRateLimiter)
    shared.close()
