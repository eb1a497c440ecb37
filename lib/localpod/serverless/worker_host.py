"""What one emulated worker needs from the endpoint it serves: :class:`WorkerHost`.

A :class:`~localpod.serverless.workers.Worker` used to reach through its endpoint runtime into the
whole platform (``runtime.platform.store.commit()``, ``runtime.platform.settings``). This module
names the few things a worker really uses, so that the platform's
:class:`~localpod.serverless.platform.EndpointRuntime` is one implementation and a unit test can
build a worker with a small fake instead of a server, a store and a scaler:

- what the endpoint is and where it may run (``endpoint``, ``volume``, ``allowed_data_centers``),
- the timing profile and the server settings a worker's container sees (``profile``, ``settings``),
- FlashBoot memory (``flashboot_ready``, ``remember_flashboot``),
- the log sink (``open_log``), billing sessions and persistence (``add_session``, ``commit``),
- the scheduler callbacks (``dispatch``, ``worker_ready``, ``job_finished``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from localpod.profiles import Profile
    from localpod.serverless.jobs import Job
    from localpod.serverless.worker_logs import WorkerLog
    from localpod.serverless.worker_protocol import WorkerProtocolHub
    from localpod.serverless.workers import Worker
    from localpod.store import Endpoint, NetworkVolume, WorkerSession


class WorkerSettings(Protocol):
    """The server settings a worker reads, live: the control routes change some of them
    (``proxy_url``) while workers run. :class:`localpod.config.Settings` is one."""

    @property
    def hf_token(self) -> str:
        """The seed account's HF token: what the emulated Hub accepts for gated downloads."""
        ...

    @property
    def proxy_url(self) -> str | None:
        """An OpenAI-compatible server vLLM workers forward to instead of the stand-in model."""
        ...

    @property
    def proxy_api_key(self) -> str | None: ...

    def secret(self, name: str) -> str | None:
        """The value of Runpod secret ``name`` (``{{ RUNPOD_SECRET_name }}`` in a worker's env)."""
        ...

    @property
    def worker_base_url(self) -> str:
        """Where a worker process reaches localpod (its worker-protocol routes)."""
        ...

    @property
    def worker_processes(self) -> bool:
        """Whether images localpod emulates run as real SDK worker processes."""
        ...

    def handler_for(self, image: str) -> str | None:
        """The user's handler file or module that runs ``image``'s workers, if one is mapped."""
        ...


class WorkerHost(Protocol):
    """The endpoint side of a worker; :class:`~localpod.serverless.platform.EndpointRuntime`
    implements it for the platform."""

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint as it is now (read live: a PATCH makes running workers stale)."""
        ...

    @property
    def profile(self) -> Profile:
        """Timings of cold starts and decoding, read live so a profile change applies at once."""
        ...

    @property
    def settings(self) -> WorkerSettings: ...

    def volume(self) -> NetworkVolume | None:
        """The network volume attached to the endpoint, if any (its model cache)."""
        ...

    def allowed_data_centers(self) -> list[str]: ...

    def flashboot_ready(self, version: int) -> bool:
        """Whether a worker of this endpoint version may start from a FlashBoot snapshot."""
        ...

    def remember_flashboot(self, version: int) -> None: ...

    @property
    def worker_protocol(self) -> WorkerProtocolHub:
        """Where a worker process's mailbox lives (the routes it calls find it there)."""
        ...

    def open_log(self, worker_id: str) -> WorkerLog:
        """The log a new worker writes its container and system lines to."""
        ...

    def add_session(self, session: WorkerSession) -> None:
        """Record (and persist) a worker's billable lifetime as it starts."""
        ...

    def commit(self) -> None:
        """Persist state the worker changed (a session's end, models cached on the volume)."""
        ...

    def dispatch(self) -> None:
        """Hand queued jobs to workers with free slots (a slot was freed)."""
        ...

    def worker_ready(self, worker: Worker) -> None: ...

    def job_finished(self, job: Job) -> None: ...
