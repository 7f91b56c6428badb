"""Kustomize renders kept by the digest of exactly the files a build can read."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from bot.core.types import RenderResult


class RenderCache:
    """LRU of successful renders, bounded in bytes, safe to share between threads.

    Sound because a build sees only its materialised closure: equal fingerprints (overlay,
    every file's path and content, the graph's verdicts) and equal build settings give
    byte-equal output. Failures are not kept: a timeout or a memory limit may pass next time."""

    def __init__(
        self,
        max_bytes: int = 256 * 1024 * 1024,
        listener: Callable[[bool], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.listener = listener  # called with True on a hit, False on a miss (metrics)
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._entries: OrderedDict[str, RenderResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> RenderResult | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                self.misses += 1
        if self.listener is not None:
            self.listener(found is not None)
        return found

    def put(self, key: str, result: RenderResult) -> None:
        size = len(result.output)
        if not result.ok or size > self.max_bytes // 4:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.output)
            self._entries[key] = result
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _key, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.output)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
