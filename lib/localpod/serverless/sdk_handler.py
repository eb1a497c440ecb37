"""localpod's worker emulations as handlers inside the real runpod SDK loop.

Run as ``python -m localpod.serverless.sdk_handler``.

With ``localpod serve --worker-processes`` a worker of an image localpod emulates (worker-vllm,
worker-infinity-embedding, mock-worker) is a process that runs this module: it builds the same
backend localpod runs in its own process (:func:`localpod.serverless.backends.create_backend`) and
hands it to ``runpod.serverless.start`` as the images do:

- worker-vllm v2.25.2 ``src/handler.py``: an async generator handler,
  ``return_aggregate_stream=True``, ``concurrency_modifier`` = its ``MAX_CONCURRENCY``;
- worker-infinity-embedding 1.1.4 ``src/handler.py``: an async handler returning one value,
  ``concurrency_modifier`` = its ``RUNPOD_MAX_CONCURRENCY``;
- runpod/mock-worker: a plain handler (concurrency 1); ``mock_crash`` exits the process.

localpod passes the endpoint's per-worker concurrency (``LOCALPOD_CONCURRENCY``, what it derives from
those variables) and its timing profile, live, in each job (``localpod_profile``, so a profile change
reaches running workers as in the in-process path). What becomes of the handler's results — an
``{"error": ...}`` item, an exception, a rerank result the SDK cannot serialise — is then decided by
the SDK's own code.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

from localpod.profiles import Profile
from localpod.serverless.backends import create_backend
from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec

PROFILE_KEY = "localpod_profile"


def profile_from(data: dict[str, Any]) -> Profile:
    names = {f.name for f in fields(Profile)}
    return Profile(**{k: v for k, v in data.items() if k in names})


class _Loaded:
    """The backend, loaded once inside the SDK's event loop (its async resources belong to that loop)."""

    def __init__(self, backend: WorkerBackend) -> None:
        self.backend = backend
        self._lock: asyncio.Lock | None = None
        self._loaded = False

    async def get(self) -> WorkerBackend:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._loaded:
                await self.backend.load()
                self._loaded = True
        return self.backend


def _context(job: dict[str, Any], fallback: Profile) -> JobContext:
    data = job.get(PROFILE_KEY)
    return JobContext(job_id=job["id"], profile=profile_from(data) if isinstance(data, dict) else fallback)


def as_sent(value: Any) -> Any:
    """The output as the real image hands it to the SDK: localpod's Infinity emulation keeps numpy
    rows (its in-process path serialises them with orjson), worker-infinity-embedding converts them
    with ``tolist()`` (``utils.list_embeddings_to_response``). Anything else, such as the rerank
    objects the released images return, is left for the SDK to refuse."""
    if isinstance(value, dict):
        return {key: as_sent(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_sent(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return value


def _die(exc: WorkerCrash) -> None:
    """The emulated image's process dies (mock_crash, a CUDA error): print why, exit 1 at once."""
    print(f"worker process exiting: {exc}", flush=True)
    os._exit(1)


def main() -> None:
    import runpod  # the SDK reads its RUNPOD_WEBHOOK_* variables at import

    env = dict(os.environ)
    profile = profile_from(json.loads(env.pop("LOCALPOD_PROFILE", "{}")) or {"name": "fast"})
    spec = WorkerSpec(
        endpoint_id=env.get("RUNPOD_ENDPOINT_ID", ""),
        image=env.pop("LOCALPOD_IMAGE", ""),
        env=env,
        profile=profile,
        proxy_url=env.pop("LOCALPOD_PROXY_URL", None),
        proxy_api_key=env.pop("LOCALPOD_PROXY_API_KEY", None),
    )
    concurrency = max(1, int(env.pop("LOCALPOD_CONCURRENCY", "1")))
    loaded = _Loaded(create_backend(spec))

    async def generator_handler(job: dict[str, Any]) -> AsyncIterator[Any]:
        backend = await loaded.get()
        try:
            async for item in backend.handle(job["input"], _context(job, profile)):
                yield as_sent(item)
        except WorkerCrash as exc:
            _die(exc)

    async def plain_handler(job: dict[str, Any]) -> Any:
        backend = await loaded.get()
        try:
            items = [item async for item in backend.handle(job["input"], _context(job, profile))]
        except WorkerCrash as exc:
            _die(exc)
        return as_sent(items[0]) if items else None

    config: dict[str, Any] = {"concurrency_modifier": lambda _current: concurrency}
    if loaded.backend.generator:
        config.update(handler=generator_handler, return_aggregate_stream=True)
    else:
        config.update(handler=plain_handler)
    runpod.serverless.start(config)


if __name__ == "__main__":
    main()
