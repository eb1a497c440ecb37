"""The server side of Runpod's worker protocol: what a worker process running the ``runpod`` SDK talks to.

On Runpod a serverless worker is a container whose handler calls ``runpod.serverless.start``. The
SDK's worker loop (runpod-python 1.12.0, ``serverless/worker.py``, ``modules/rp_scale.py``,
``rp_job.py``, ``rp_http.py``, ``rp_ping.py``, ``worker_state.py``) talks to the queue over plain HTTP,
authenticated with ``Authorization: <RUNPOD_AI_API_KEY>`` (no ``Bearer``) as ``RUNPOD_POD_ID``:

- ``GET  RUNPOD_WEBHOOK_GET_JOB`` (``$ID`` replaced by the worker id) plus ``&job_in_progress=0|1``:
  a long poll for one job, answered ``{"id", "input", ...}`` or 204 when none came;
  ``/job-take-batch/`` with ``&batch_size=N`` when the SDK wants several (its concurrency minus
  the jobs it holds), answered with a list;
- ``POST RUNPOD_WEBHOOK_POST_OUTPUT`` (``$RUNPOD_POD_ID`` -> worker id, ``$ID`` -> job id) plus
  ``&isStream=true|false``: the job's result, a JSON document sent as
  ``application/x-www-form-urlencoded`` (``{"output": ...}``, ``{"error": "..."}``, ``"stopPod": true``
  for ``refresh_worker``);
- ``POST RUNPOD_WEBHOOK_POST_STREAM``: one ``{"output": item}`` per item a generator handler yields;
- ``GET  RUNPOD_WEBHOOK_PING`` every ``RUNPOD_PING_INTERVAL`` ms (``?job_id=a,b&runpod_version=``),
  and once with ``status=unhealthy&check=&reason=`` when a fitness check fails before ``os._exit(1)``;
- ``GET  .../job-stop/<worker>`` (derived from the job-take URL): a long poll answered
  ``{"jobsToStop": [...]}``; the SDK cancels just those jobs' tasks.

The URL shapes are the SDK's own local simulator's (runpod-python
``tests/test_serverless/local_sim/.env_example``: ``/v2/<endpoint>/job-take/$RUNPOD_POD_ID?gpu=...``),
with the job id in the path of job-done and job-stream as the SDK's ``$ID`` substitution implies.

This module owns the state of that conversation (moto's pattern: the routes in
:mod:`localpod.services.worker_api` only parse and serialise): one :class:`WorkerMailbox` per worker
process. The platform keeps owning the queue, dispatch, timeouts and billing; a worker process pulls,
which the platform sees as demand: :attr:`WorkerMailbox.demand` is how many jobs the SDK asked for
in the job-take it holds open, and only that many are handed to it. So the SDK's own concurrency
(``concurrency_modifier``), its slot bookkeeping and its habit of asking again after sending a result
decide how many jobs a worker runs, as on Runpod.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TAKE_WAIT_S = 5.0
"""How long localpod holds a job-take open before answering 204. Runpod's value is not documented;
the SDK waits up to 90 s (``jobs_fetcher_timeout``) and asks again at once after a 204."""
STOP_WAIT_S = 5.0
"""How long a job-stop poll is held open before answering 204 (the SDK bounds it at 90 s)."""


@dataclass
class _Pending:
    """A job handed to the worker process, waiting for its result."""

    job_id: str
    body: dict[str, Any]
    on_chunk: Callable[[Any], None]
    on_progress: Callable[[Any], None]
    result: asyncio.Future[dict[str, Any]]
    taken: bool = False


@dataclass
class PingReport:
    """The last heartbeat: when, which jobs the worker said it holds, and an unhealthy report if any."""

    at: float
    job_ids: list[str] = field(default_factory=list)
    unhealthy: str | None = None


class WorkerMailbox:
    """One worker process's side of the protocol: jobs offered to it, results it posts, stop signals."""

    def __init__(self, endpoint_id: str, worker_id: str) -> None:
        self.endpoint_id = endpoint_id
        self.worker_id = worker_id
        self.key = "rpw_" + secrets.token_urlsafe(24)
        """``RUNPOD_AI_API_KEY`` of this worker: a worker can speak for itself only."""
        self.demand = 0
        """Jobs the SDK asked for in the job-take it holds open (0 when none is open)."""
        self.first_take = asyncio.Event()
        """Set at the first job-take: the SDK's loop is running, the handler module loaded."""
        self.last_ping: PingReport | None = None
        self.on_demand: Callable[[], None] = lambda: None
        """Called when the worker asks for jobs (the platform dispatches then)."""
        self._offered: list[_Pending] = []
        self._pending: dict[str, _Pending] = {}
        self._offer_event = asyncio.Event()
        self._stops: list[str] = []
        self._stop_event = asyncio.Event()
        self.closed = False

    # -- the platform's side ---------------------------------------------------------------------

    async def run(
        self,
        job_id: str,
        body: dict[str, Any],
        on_chunk: Callable[[Any], None],
        on_progress: Callable[[Any], None],
    ) -> dict[str, Any]:
        """Hand a job to the worker process and wait for the result it posts: ``{"body": <the
        job-done body>, "is_stream": <generator handler>}``.

        Cancelled (a ``/cancel``, the execution timeout), it asks the worker to stop the job through
        the job-stop channel, as Runpod signals a cancelled or timed-out request."""
        pending = _Pending(job_id, body, on_chunk, on_progress, asyncio.get_running_loop().create_future())
        self._pending[job_id] = pending
        self._offered.append(pending)
        self._offer_event.set()
        try:
            return await pending.result
        except asyncio.CancelledError:
            if pending.taken:
                self.stop(job_id)
            raise
        finally:
            self._pending.pop(job_id, None)
            if pending in self._offered:
                self._offered.remove(pending)

    def reserve(self) -> None:
        """The platform assigned one job to this worker (synchronously, before :meth:`run` offers
        it): one less job to hand out against the open job-take."""
        self.demand = max(0, self.demand - 1)

    def stop(self, job_id: str) -> None:
        self._stops.append(job_id)
        self._stop_event.set()

    def close(self) -> None:
        """The worker is gone: wake every poll so it returns, fail every job still waiting."""
        self.closed = True
        self.demand = 0
        self._offer_event.set()
        self._stop_event.set()
        for pending in list(self._pending.values()):
            if not pending.result.done():
                pending.result.set_exception(ConnectionResetError("the worker process is gone"))

    def held_job_ids(self) -> list[str]:
        return [p.job_id for p in self._pending.values() if p.taken]

    # -- the worker process's side (called by the routes) -----------------------------------------

    async def take(self, wanted: int, wait_s: float = TAKE_WAIT_S) -> list[dict[str, Any]]:
        """A job-take: up to ``wanted`` jobs, waiting up to ``wait_s`` for the first one."""
        self.first_take.set()
        deadline = time.monotonic() + wait_s
        self.demand = max(1, wanted)
        try:
            self.on_demand()
            while not self._offered and not self.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._offer_event.clear()
                try:
                    await asyncio.wait_for(self._offer_event.wait(), timeout=remaining)
                except TimeoutError:
                    return []
            handed = self._offered[: max(1, wanted)]
            del self._offered[: len(handed)]
            for pending in handed:
                pending.taken = True
            return [pending.body for pending in handed]
        finally:
            self.demand = 0

    def done(self, job_id: str, payload: Any, *, is_stream: bool = False) -> bool:
        """A job-done post; False when no job of this worker has that id (late, or foreign).

        :meth:`run` then returns ``{"body": <what the SDK sent>, "is_stream": <the handler was a
        generator, whose items already came as job-stream posts>}``; a progress update
        (``"status": "IN_PROGRESS"``) is passed on and the job keeps waiting."""
        pending = self._pending.get(job_id)
        if pending is None or pending.result.done():
            return False
        body = payload if isinstance(payload, dict) else {"output": payload}
        if body.get("status") == "IN_PROGRESS":
            # runpod.serverless.progress_update posts {"status": "IN_PROGRESS", "output": ...} to
            # job-done (rp_progress.py); Runpod shows it on /status while the job runs (docs:
            # serverless/handlers/handler-additional-controls, "Update progress").
            pending.on_progress(body.get("output"))
            return True
        pending.result.set_result({"body": body, "is_stream": is_stream})
        return True

    def stream(self, job_id: str, payload: Any) -> bool:
        """A job-stream post: one yielded item, ``{"output": item}``."""
        pending = self._pending.get(job_id)
        if pending is None or pending.result.done():
            return False
        item = payload.get("output") if isinstance(payload, dict) else payload
        pending.on_chunk(item)
        return True

    def ping(self, job_ids: list[str], unhealthy: str | None = None) -> None:
        self.last_ping = PingReport(time.monotonic(), job_ids, unhealthy)

    async def stops(self, wait_s: float = STOP_WAIT_S) -> list[str]:
        """A job-stop poll: the ids of jobs to stop, waiting up to ``wait_s`` for one."""
        if not self._stops and not self.closed:
            self._stop_event.clear()
            try:
                await asyncio.wait_for(self._stop_event.wait(), timeout=wait_s)
            except TimeoutError:
                return []
        out, self._stops = self._stops, []
        return out


class WorkerProtocolHub:
    """Every live worker process's mailbox, by worker id (a server has one hub)."""

    def __init__(self) -> None:
        self._mailboxes: dict[str, WorkerMailbox] = {}

    def open(self, endpoint_id: str, worker_id: str) -> WorkerMailbox:
        mailbox = WorkerMailbox(endpoint_id, worker_id)
        self._mailboxes[worker_id] = mailbox
        return mailbox

    def close(self, worker_id: str) -> None:
        mailbox = self._mailboxes.pop(worker_id, None)
        if mailbox is not None:
            mailbox.close()

    def find(self, endpoint_id: str, worker_id: str, key: str | None) -> WorkerMailbox | None:
        """The mailbox of ``worker_id`` on ``endpoint_id`` if ``key`` is that worker's key."""
        mailbox = self._mailboxes.get(worker_id)
        if mailbox is None or mailbox.endpoint_id != endpoint_id or not key:
            return None
        return mailbox if secrets.compare_digest(mailbox.key, key) else None
