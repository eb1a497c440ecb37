"""The worker interface: what runs inside an emulated serverless worker.

A backend plays the part of a worker image's handler (``runpod.serverless.start({"handler": ...})``).
The platform owns everything around it — queue, scaling, cold starts, timeouts, billing — and
calls the backend only to load its model once per worker and to run jobs. Keeping this boundary
small is what lets a later worker kind run a real Runpod handler in a separate process over
Runpod's worker protocol (job-take and output webhooks) behind the same platform.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localpod.profiles import Profile

if TYPE_CHECKING:
    from localpod.serverless.worker_protocol import WorkerProtocolHub


class WorkerCrash(Exception):
    """The handler process died (e.g. CUDA error, missing model): the job fails and the worker
    restarts, as on Runpod."""


@dataclass
class WorkerSpec:
    """What a backend knows about the worker it runs in: the endpoint's env and image."""

    endpoint_id: str
    image: str
    env: Mapping[str, str]
    profile: Profile
    proxy_url: str | None = None
    proxy_api_key: str | None = None
    # What a worker process (localpod.serverless.backends.process_worker) needs besides the above:
    worker_id: str | None = None
    gpu_type_id: str | None = None
    base_url: str | None = None
    """Where the process reaches localpod's worker routes (``http://127.0.0.1:<port>``)."""
    protocol: WorkerProtocolHub | None = None
    handler: str | None = None
    """A user's handler file or module for this image (``localpod serve --handler IMAGE=PATH``)."""
    sdk_process: bool = False
    """Run localpod's own emulation of the image as a handler inside the real SDK loop, in a process."""
    log: Callable[[str], None] | None = None
    """Where the process's output lines go (the worker's log)."""
    on_demand: Callable[[], None] | None = None
    """Called when the process asks for jobs (the platform dispatches)."""
    live_profile: Callable[[], Profile] | None = None
    """The platform's profile now (an ``sdk_process`` worker gets it with each job)."""
    concurrency: int = 1
    """The endpoint's per-worker concurrency as localpod derives it from the image's variables."""


@dataclass
class JobContext:
    """Per-job information a handler may use; ``profile`` is read live so config changes apply."""

    job_id: str
    profile: Profile
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


class WorkerBackend(ABC):
    """One handler instance per worker."""

    generator: bool = True
    """True for generator handlers (worker-vllm): ``output`` of a finished job is the list of
    yielded items (``return_aggregate_stream``). False for plain handlers (Infinity): the one
    yielded item is the output itself."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec

    @property
    def model_repos(self) -> list[str]:
        """Hub repos this worker downloads at start (drives the cold-start download time)."""
        return []

    async def load(self) -> None:  # noqa: B027 - an optional hook: a backend with nothing to load keeps this
        """Load what the handler needs (real work only; simulated time is the platform's)."""

    @abstractmethod
    def handle(self, job_input: Any, ctx: JobContext) -> AsyncIterator[Any]:
        """Run one job: an async generator of outputs (one item for non-generator handlers)."""

    async def close(self) -> None:  # noqa: B027 - an optional hook: a backend with nothing to release keeps this
        """Release resources when the worker stops."""
