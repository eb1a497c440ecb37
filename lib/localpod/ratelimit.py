"""Runpod's per-endpoint request limits on the queue API (fixed 10-second windows).

From Runpod's "send requests" documentation: ``/runsync`` 2000 requests per 10 s, ``/run`` 1000,
``/status`` and ``/stream`` 2000, ``/cancel`` 100, ``/purge-queue`` 2, ``/openai/*`` 2000. Past a
limit the API answers 429. Benchmarks that push harder than Runpod allows switch the limits off
through ``/_localpod/config``.
"""

from __future__ import annotations

import time

WINDOW_S = 10.0

LIMITS: dict[str, int] = {
    "runsync": 2000,
    "run": 1000,
    "status": 2000,
    "stream": 2000,
    "cancel": 100,
    "retry": 100,
    "purge-queue": 2,
    "health": 2000,
    "openai": 2000,
}


class RateLimiter:
    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}

    def allow(self, endpoint_id: str, operation: str) -> bool:
        limit = LIMITS.get(operation)
        if limit is None:
            return True
        key = (endpoint_id, operation)
        now = time.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= WINDOW_S:
            start, count = now, 0
        if count >= limit:
            self._windows[key] = (start, count)
            return False
        self._windows[key] = (start, count + 1)
        return True

    def clear(self) -> None:
        self._windows.clear()
