"""Worker backends: what runs inside each emulated serverless worker, chosen by image."""

from __future__ import annotations

from localpod.serverless.backends.base import WorkerBackend, WorkerSpec


def backend_kind(image: str) -> str:
    """Which emulation an image gets: ``"vllm"`` (``runpod/worker-v1-vllm:*`` and any image naming
    vLLM), ``"infinity"`` (``runpod/worker-infinity-embedding:*`` and any image naming Infinity)
    or ``"mock"`` (everything else behaves like ``runpod/mock-worker``)."""
    name = image.lower()
    if "vllm" in name:
        return "vllm"
    if "infinity" in name:
        return "infinity"
    return "mock"


def create_backend(spec: WorkerSpec) -> WorkerBackend:
    """A fresh backend for one worker of an endpoint running ``spec.image``: a real process running
    the runpod SDK for a user's handler (``spec.handler``) or when asked (``spec.sdk_process``),
    else localpod's in-process emulation of the image.

    Imports are deferred so a server that only runs mock workers never loads the embedding model
    code."""
    if spec.handler is not None or spec.sdk_process:
        from localpod.serverless.backends.process_worker import ProcessWorker, handler_command

        if spec.handler is not None:
            return ProcessWorker(spec, handler_command(spec.handler))
        return ProcessWorker(spec, handler_command("localpod.serverless.sdk_handler"))
    kind = backend_kind(spec.image)
    if kind == "vllm":
        from localpod.serverless.backends.vllm_worker import VllmWorker

        return VllmWorker(spec)
    if kind == "infinity":
        from localpod.serverless.backends.infinity_worker import InfinityWorker

        return InfinityWorker(spec)
    from localpod.serverless.backends.mock_worker import MockWorker

    return MockWorker(spec)


__all__ = ["backend_kind", "create_backend"]
