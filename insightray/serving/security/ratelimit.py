"""Per-user and per-key rate limits: token buckets in memory, or in Redis for replicas.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; each request takes
one. When the bucket is empty the request is refused with the seconds until a token is
back (the HTTP ``Retry-After``). The Redis limiter runs the same arithmetic in one Lua
script on the Redis clock, so every replica shares one bucket per key.

Example:
    >>> limiter = MemoryRateLimiter(rate_per_s=1.0, burst=2)
    >>> [limiter.check("ada").allowed for _ in range(3)]
    [True, True, False]
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis

from insightray.errors import ConfigError, ServiceUnavailableError

if TYPE_CHECKING:
    from insightray.serving.settings import ServeSettings

__all__ = [
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "make_rate_limiter",
]


@dataclass(frozen=True)
class RateDecision:
    """Whether a request may go ahead, and if not, how long to wait."""

    allowed: bool
    retry_after_s: float = 0.0


class RateLimiter(Protocol):
    """Anything that decides per key whether one more request is allowed now."""

    def check(self, key: str) -> RateDecision:
        """Take one token from ``key``'s bucket if there is one."""
        ...


def _check_parameters(rate_per_s: float, burst: int) -> None:
    if rate_per_s <= 0 or burst < 1:
        raise ConfigError("rate limit", "rate must be > 0 and burst >= 1", "fix the settings")


class MemoryRateLimiter:
    """Token buckets in this process (thread-safe).

    Args:
        rate_per_s: Tokens added per second.
        burst: Bucket size.
    """

    _PRUNE_EVERY = 4096

    def __init__(self, rate_per_s: float, burst: int) -> None:
        _check_parameters(rate_per_s, burst)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._checks = 0

    def check(self, key: str) -> RateDecision:
        """Take one token from ``key``'s bucket if there is one."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
            if tokens >= 1.0:
                decision = RateDecision(True)
                tokens -= 1.0
            else:
                decision = RateDecision(False, (1.0 - tokens) / self.rate_per_s)
            self._buckets[key] = (tokens, now)
            self._checks += 1
            if self._checks % self._PRUNE_EVERY == 0:
                self._prune(now)
        return decision

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (they equal a fresh bucket)."""
        full_after = self.burst / self.rate_per_s
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


# KEYS[1] bucket; ARGV rate, burst. Returns {allowed 0/1, retry_after_s as a string}.
_TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every replica that uses the same Redis.

    Args:
        url: ``redis://host:6379/0``.
        rate_per_s: Tokens added per second.
        burst: Bucket size.
        prefix: Key prefix in Redis.
    """

    def __init__(
        self, url: str, rate_per_s: float, burst: int, *, prefix: str = "insightray:rate:"
    ) -> None:
        _check_parameters(rate_per_s, burst)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.prefix = prefix
        try:
            self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        except ValueError as error:
            raise ConfigError(
                "INSIGHTRAY_REDIS_URL", "cannot parse it", "use redis://HOST:PORT/DB"
            ) from error
        self._script = self._client.register_script(_TOKEN_BUCKET_LUA)

    def check(self, key: str) -> RateDecision:
        """Take one token from ``key``'s bucket if there is one.

        Raises:
            ServiceUnavailableError: Redis cannot be reached.
        """
        try:
            allowed, retry = self._script(
                keys=[self.prefix + key], args=[self.rate_per_s, self.burst]
            )
        except redis.RedisError as error:
            raise ServiceUnavailableError(
                "rate limiter", "Redis cannot be reached", "check INSIGHTRAY_REDIS_URL and Redis"
            ) from error
        retry_s = float(retry)
        return RateDecision(bool(int(allowed)), 0.0 if math.isnan(retry_s) else retry_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def make_rate_limiter(settings: ServeSettings) -> MemoryRateLimiter | RedisRateLimiter:
    """Redis when ``settings.redis_url`` is set, in-process buckets otherwise."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, settings.rate_per_s, settings.rate_burst)
    return MemoryRateLimiter(settings.rate_per_s, settings.rate_burst)
