"""A handler with every behaviour the worker-protocol tests need, run by the real runpod SDK.

Chosen per job by ``input.mode``; the template env picks the handler kind at start:
``CRASH_ON_IMPORT=1`` raises while the module loads, ``GENERATOR=1`` starts an async generator
handler (``AGGREGATE=1`` adds ``return_aggregate_stream``), ``CONCURRENCY=N`` sets the SDK's
``concurrency_modifier``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import runpod

if os.environ.get("CRASH_ON_IMPORT") == "1":
    raise RuntimeError("boom at import: the model file is missing")

if os.environ.get("FAIL_FITNESS") == "1":

    @runpod.serverless.register_fitness_check
    def weights_present() -> None:
        raise RuntimeError("weights not found in /models")


async def handler(job: dict[str, Any]) -> Any:
    job_input = job["input"]
    mode = job_input.get("mode", "echo")
    if mode == "echo":
        return {"echo": job_input.get("value"), "worker": os.environ["RUNPOD_POD_ID"]}
    if mode == "error":
        return {"error": job_input.get("message", "bad input")}
    if mode == "raise":
        raise ValueError("the handler raised")
    if mode == "unserialisable":
        return {"value": {1, 2, 3}}  # json.dumps refuses a set: the SDK logs it and sends nothing
    if mode == "exit":
        os._exit(3)
    if mode == "sleep":
        await asyncio.sleep(float(job_input["seconds"]))
        return {"slept": job_input["seconds"]}
    if mode == "refresh":
        return {"done": True, "refresh_worker": True}
    if mode == "progress":
        runpod.serverless.progress_update(job, "half way")
        return {"done": True}
    raise ValueError(f"unknown mode {mode!r}")


async def generator(job: dict[str, Any]) -> AsyncIterator[Any]:
    job_input = job["input"]
    for i in range(int(job_input.get("count", 3))):
        if job_input.get("error_at") == i:
            yield {"error": f"stopped at item {i}"}
        yield {"item": i}


if __name__ == "__main__":
    concurrency = int(os.environ.get("CONCURRENCY", "1"))
    config: dict[str, Any] = {"concurrency_modifier": lambda _current: concurrency}
    if os.environ.get("GENERATOR") == "1":
        config.update(handler=generator, return_aggregate_stream=os.environ.get("AGGREGATE") == "1")
    else:
        config["handler"] = handler
    runpod.serverless.start(config)
