"""A result cache keyed by the input's SHA-256 and the model version that produced it.

The same image analysed again by the same model version gives the same answer, so the
answer is kept (least recently used entries leave first). A new version is a new key: a
model update never serves stale results.

Example:
    >>> cache: ResultCache[dict[str, list[int]]] = ResultCache(max_entries=2)
    >>> key = CacheKey("ab12", "cxr", "cxr-tbx11k-yolov5s", "0.1.0")
    >>> cache.get(key) is None
    True
    >>> cache.put(key, {"findings": []})
    >>> cache.get(key)
    {'findings': []}
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CacheKey", "ResultCache"]

ValueT = TypeVar("ValueT")


@dataclass(frozen=True)
class CacheKey:
    """What identifies a result: input bytes, task and model version."""

    input_sha256: str
    task: str
    model_name: str
    model_version: str


class ResultCache(Generic[ValueT]):
    """Thread-safe LRU cache of model outputs; ``max_entries=0`` turns it off.

    Values are shared, not copied: store immutable ones (frozen dataclasses).
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max(0, max_entries)
        self._entries: OrderedDict[CacheKey, ValueT] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> ValueT | None:
        """The cached value, or ``None``."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: CacheKey, value: ValueT) -> None:
        """Remember ``value`` under ``key``."""
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
