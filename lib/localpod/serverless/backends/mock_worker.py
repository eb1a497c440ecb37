"""Emulation of ``runpod/mock-worker``, the worker for every image localpod cannot emulate.

Runpod's mock worker lets users exercise the queue (delays, failures, crashes) without a model.
Its inputs are ``mock_return`` (the output), ``mock_delay`` (seconds before finishing),
``mock_error`` (the handler raises, so the job FAILS) and ``mock_crash`` (the worker process dies).
The real image returns ``"Hello World!"`` when ``mock_return`` is absent; for any other, unknown
image localpod echoes the input instead, which is the most useful stand-in for a custom handler.
The ``MOCK_*`` environment variables give defaults, as in the real image.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec

REAL_MOCK_DEFAULT = "Hello World!"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class MockWorker(WorkerBackend):
    """A plain (non-generator) handler: the one yielded item is the job's output."""

    generator = False

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        self.is_real_mock = "mock-worker" in spec.image.lower()

    def _default(self, key: str, fallback: Any) -> Any:
        return self.spec.env.get(key, fallback)

    async def handle(self, job_input: Any, ctx: JobContext) -> AsyncIterator[Any]:
        options: Mapping[str, Any] = job_input if isinstance(job_input, Mapping) else {}
        delay = options.get("mock_delay", self._default("MOCK_DELAY", 0))
        try:
            seconds = float(delay or 0)
        except (TypeError, ValueError):
            raise ValueError(f"mock_delay must be a number of seconds, got {delay!r}") from None
        if seconds > 0:
            await asyncio.sleep(seconds)
        if _truthy(options.get("mock_crash", self._default("MOCK_CRASH", False))):
            raise WorkerCrash("mock_crash: the worker process exited with code 1")
        if _truthy(options.get("mock_error", self._default("MOCK_ERROR", False))):
            # A bare Exception, as the real image raises: the job's error_type reads "<class 'Exception'>".
            raise Exception("Mock error")  # noqa: TRY002
        if "mock_return" in options:
            yield options["mock_return"]
        elif self.is_real_mock:
            yield REAL_MOCK_DEFAULT
        else:
            yield job_input
