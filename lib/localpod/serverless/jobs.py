"""Serverless jobs: Runpod's job states, timing fields and the shapes the queue API returns."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"

FINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})

RUN_RETENTION_S = 30 * 60
"""Results of ``/run`` jobs stay readable for 30 minutes after they finish."""
RUNSYNC_RETENTION_S = 60
"""Results of ``/runsync`` jobs stay readable for 1 minute."""
DEFAULT_TTL_S = 24 * 3600.0
"""``policy.ttl`` default: a job's whole lifespan, from submission (runpod/docs
serverless/endpoints/send-requests.mdx, "ttl": 86400000 ms, min 10 s, max 7 days)."""


def new_job_id(sync: bool) -> str:
    """Runpod-shaped job id: a UUID with a region suffix; sync jobs carry a ``sync-`` prefix."""
    base = f"{uuid.uuid4()}-u1"
    return f"sync-{base}" if sync else base


@dataclass(eq=False)
class Job:
    id: str
    endpoint_id: str
    input: Any
    sync: bool
    execution_timeout_s: float
    webhook: str | None = None
    low_priority: bool = False
    ttl_s: float = DEFAULT_TTL_S
    """Total lifespan from submission; when it ends the job is deleted whatever its state."""
    status: str = IN_QUEUE
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None
    first_output_at: float | None = None
    output: Any = None
    error: str | None = None
    error_item: Any = None
    """The worker's own error value (e.g. worker-vllm's ``{"message", "type", "code"}``) before
    the worker SDK turned it into the ``error`` string; the OpenAI routes answer from it."""
    worker_id: str | None = None
    progress: Any = None
    """The last ``runpod.serverless.progress_update`` value, shown as ``output`` while IN_PROGRESS."""
    retries: int = 0
    stream_cursor: int = 0
    chunks: list[Any] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever a chunk is added or the job finishes; waiters clear it after reading."""
    task: asyncio.Task[None] | None = None
    durable: bool = True
    """Kept across a crash: every job whose id a client gets. OpenAI-route jobs are not (their id
    never leaves the server, and their HTTP request dies with the process)."""
    journal: Any = None
    """The :class:`~localpod.serverless.journal.JobJournal` recording this job's changes, once submitted."""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    def expires_at(self) -> float:
        """When the ``ttl`` policy deletes this job (retries restart the clock with a new submit)."""
        return self.submitted_at + self.ttl_s

    def retention_s(self) -> float:
        return RUNSYNC_RETENTION_S if self.sync else RUN_RETENTION_S

    def delay_ms(self) -> int:
        end = self.started_at if self.started_at is not None else time.monotonic()
        return int((end - self.submitted_at) * 1000)

    def execution_ms(self) -> int:
        if self.started_at is None:
            return 0
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return int((end - self.started_at) * 1000)

    def add_chunk(self, chunk: Any) -> None:
        if self.first_output_at is None:
            self.first_output_at = time.monotonic()
        self.chunks.append(chunk)
        self.changed.set()

    def set_progress(self, progress: Any) -> None:
        if not self.is_final:
            self.progress = progress
            self.changed.set()

    def start(self, worker_id: str) -> None:
        """A worker took the job (journaled before anyone can see it IN_PROGRESS)."""
        self.status = IN_PROGRESS
        self.started_at = time.monotonic()
        self.worker_id = worker_id
        if self.journal is not None:
            self.journal.started(self)

    def finish(self, status: str, *, output: Any = None, error: str | None = None) -> None:
        self.status = status
        self.finished_at = time.monotonic()
        if output is not None:
            self.output = output
        if error is not None:
            self.error = error
        if self.journal is not None:
            # Written before the waiters wake, so no client sees a result the journal lacks.
            self.journal.finished(self)
        self.done.set()
        self.changed.set()

    def view(self) -> dict[str, Any]:
        """The ``/status`` (and finished ``/runsync``) body."""
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started_at is not None or self.is_final:
            body["delayTime"] = self.delay_ms()
        if self.started_at is not None:
            body["executionTime"] = self.execution_ms()
        if self.worker_id is not None:
            body["workerId"] = self.worker_id
        if self.status == COMPLETED:
            body["output"] = self.output
        elif self.status == IN_PROGRESS and self.progress is not None:
            body["output"] = self.progress
        elif self.error is not None:
            body["error"] = self.error
        return body

    def take_stream(self) -> list[dict[str, Any]]:
        """Chunks produced since the last ``/stream`` call, each as ``{"output": chunk}``."""
        fresh = self.chunks[self.stream_cursor :]
        self.stream_cursor = len(self.chunks)
        return [{"output": chunk} for chunk in fresh]
