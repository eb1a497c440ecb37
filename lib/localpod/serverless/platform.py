"""The serverless platform: one queue and a pool of workers per endpoint, scaled as Runpod does.

Scaling follows the endpoint's own settings: ``workers_min`` are kept running; with the
QUEUE_DELAY scaler a first worker starts as soon as a job waits with no worker to take it, and
another is added each time the oldest job has waited ``scaler_value`` seconds (or, with the profile's
``queue_delay_reading = "whole_queue"``, enough for the whole queue at once); with REQUEST_COUNT
the target is ``ceil((in queue + in progress) / scaler_value)``. Idle workers stop after the idle
timeout; workers of an older endpoint version finish their jobs and recycle. Jobs are handed to
the ready worker with the fewest running jobs, up to each worker's concurrency.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from localpod.config import Settings
from localpod.http import dumps
from localpod.profiles import Profile
from localpod.ratelimit import RateLimiter
from localpod.serverless import jobs as J
from localpod.serverless.journal import JobJournal, job_from_record
from localpod.serverless.worker_logs import WorkerLog, WorkerLogBook
from localpod.serverless.worker_protocol import WorkerProtocolHub
from localpod.serverless.workers import IDLE, INITIALIZING, RUNNING, STOPPED, THROTTLED, UNHEALTHY, Worker
from localpod.store import WRITE_FAILURES, Endpoint, NetworkVolume, Store, WorkerSession

log = logging.getLogger("localpod.platform")

HEARTBEAT_S = 0.25
"""How often a running localpod notes that it is alive (``Store.heartbeat``): worker sessions open
at a crash are billed up to the last note, so a ``kill -9`` bills at most this much too little and
the outage nothing. The job journal is ``fsync``-ed on the same beat, at most once a second."""
SYNC_S = 1.0


@dataclass
class WorkerInfo:
    """A worker as the control plane shows it (REST v2 ``Worker``)."""

    id: str
    status: str  # RUNNING | IDLE | INITIALIZING | THROTTLED | UNHEALTHY (REST v2 ``WorkerStatus``)
    version: int
    gpu_count: int
    image: str
    uptime_seconds: int | None
    gpu_type_id: str | None
    data_center_id: str | None
    started_at: str | None


class EndpointGone(Exception):
    """The endpoint was deleted (or never existed)."""


class EndpointRuntime:
    """Queue, jobs and workers of one endpoint; the :class:`~localpod.serverless.worker_host.WorkerHost`
    of its workers (the only way they reach the platform's settings, store and logs)."""

    def __init__(self, platform: Platform, endpoint_id: str) -> None:
        self.platform = platform
        self.endpoint_id = endpoint_id
        self.queue: collections.deque[J.Job] = collections.deque()
        self.jobs: dict[str, J.Job] = {}
        self.finished: collections.deque[J.Job] = collections.deque()
        self.workers: dict[str, Worker] = {}
        self.completed = 0
        self.failed = 0
        self.retried = 0
        self.last_scale_up = 0.0
        self.next_expiry = math.inf
        """No job expires before this (a full scan of ``jobs`` is done only then)."""
        self.flashboot_until: dict[int, float] = {}
        self.unhealthy_spell_since: float | None = None
        """``time.monotonic()`` since when the endpoint has had unhealthy workers and none ready."""

    # -- configuration -------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        endpoint = self.platform.store.endpoints.get(self.endpoint_id)
        if endpoint is None:
            raise EndpointGone(self.endpoint_id)
        return endpoint

    @property
    def profile(self) -> Profile:
        return self.platform.settings.profile

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    def volume(self) -> NetworkVolume | None:
        for volume_id in self.endpoint.network_volume_ids:
            volume = self.platform.store.volumes.get(volume_id)
            if volume is not None:
                return volume
        return None

    def allowed_data_centers(self) -> list[str]:
        volume = self.volume()
        if volume is not None:
            return [volume.data_center]
        return list(self.endpoint.data_center_ids)

    def flashboot_ready(self, version: int) -> bool:
        if self.endpoint.flashboot == "OFF":
            return False
        return self.flashboot_until.get(version, 0.0) > time.monotonic()

    def remember_flashboot(self, version: int) -> None:
        if self.endpoint.flashboot != "OFF":
            self.flashboot_until[version] = time.monotonic() + self.profile.flashboot_window_s

    # -- what workers write ------------------------------------------------------------------------

    @property
    def worker_protocol(self) -> WorkerProtocolHub:
        return self.platform.worker_protocol

    def open_log(self, worker_id: str) -> WorkerLog:
        return self.platform.worker_logs.open(self.endpoint_id, worker_id)

    def add_session(self, session: WorkerSession) -> None:
        self.platform.store.sessions.append(session)
        self.platform.store.commit_or_log()

    def commit(self) -> None:
        self.platform.store.commit_or_log()

    # -- jobs ----------------------------------------------------------------------------------

    def submit(self, job: J.Job) -> None:
        """Accept a new job: journaled (if durable) before its id can reach the client."""
        journal = self.platform.journal
        if job.durable and journal.enabled:
            job.journal = journal
            journal.submitted(job)
        endpoint = self.endpoint
        endpoint.last_request_at = time.time()
        endpoint.parked_step = 0
        self._enqueue(job)

    def _enqueue(self, job: J.Job, wake: bool = True) -> None:
        self.jobs[job.id] = job
        self.next_expiry = min(self.next_expiry, job.expires_at())
        if job.low_priority:
            self.queue.append(job)
        else:
            # Normal jobs go ahead of low-priority ones.
            index = len(self.queue)
            while index > 0 and self.queue[index - 1].low_priority:
                index -= 1
            self.queue.insert(index, job)
        if wake:
            self.dispatch()
            self.scale()

    def dispatch(self) -> None:
        """Hand queued jobs to ready workers with free slots, least busy first."""
        while self.queue:
            best: Worker | None = None
            for worker in self.workers.values():
                free = worker.free_slots
                if free > 0 and (best is None or len(worker.running) < len(best.running)):
                    best = worker
            if best is None:
                return
            best.assign(self.queue.popleft())

    def job_finished(self, job: J.Job) -> None:
        if job.status == J.COMPLETED:
            self.completed += 1
        elif job.status in (J.FAILED, J.TIMED_OUT):
            self.failed += 1
        self.finished.append(job)
        if job.webhook:
            self.platform.send_webhook(job)
        self.dispatch()

    def worker_ready(self, worker: Worker) -> None:
        self.dispatch()

    def cancel(self, job: J.Job) -> None:
        if job.is_final:
            return
        if job.status == J.IN_QUEUE:
            try:
                self.queue.remove(job)
            except ValueError:
                pass
            job.finish(J.CANCELLED)
            self.finished.append(job)
        elif job.task is not None:
            job.finish(J.CANCELLED)
            job.task.cancel()

    def retry(self, job: J.Job) -> None:
        job.status = J.IN_QUEUE
        job.retries += 1
        job.submitted_at = time.monotonic()
        job.started_at = job.finished_at = job.first_output_at = None
        job.output = job.error = job.error_item = job.worker_id = None
        job.chunks.clear()
        job.stream_cursor = 0
        job.done.clear()
        self.retried += 1
        try:
            self.finished.remove(job)
        except ValueError:
            pass
        if job.journal is not None:
            job.journal.retried(job)
        self._enqueue(job)

    def restore(self, job: J.Job) -> None:
        """Take back a job the journal kept across a restart (see :meth:`Platform.restore_jobs`)."""
        if job.is_final:
            self.jobs[job.id] = job
            self.next_expiry = min(self.next_expiry, job.expires_at())
            self.finished.append(job)
            return
        if job.status == J.IN_PROGRESS:
            # Its worker died with localpod. Runpod's workers report the jobs they hold in every
            # heartbeat (runpod-python 1.12.0 runpod/serverless/modules/rp_ping.py sends
            # ``job_id`` with each ping), and queue-based endpoints retry automatically
            # (runpod/docs serverless/load-balancing/overview.mdx, "Error handling: Automatic
            # retries"); a retry keeps the job id and input and drops the previous output
            # (operation-reference.mdx, /retry). The job is requeued as such a retry: counted in
            # ``retried``, its ttl still running from the original submission. Its handler runs
            # again (at-least-once).
            job.status = J.IN_QUEUE
            job.retries += 1
            job.started_at = job.first_output_at = None
            job.output = job.error = job.error_item = job.worker_id = None
            job.chunks.clear()
            self.retried += 1
        self._enqueue(job, wake=False)

    def purge(self) -> int:
        removed = 0
        while self.queue:
            job = self.queue.popleft()
            self.jobs.pop(job.id, None)
            job.finish(J.CANCELLED)
            if job.journal is not None:
                job.journal.dropped(job)
            removed += 1
        return removed

    def in_progress(self) -> int:
        return sum(len(w.running) + len(w.orphaned) for w in self.workers.values())

    def expire(self, now: float) -> None:
        """Delete jobs whose ``policy.ttl`` ran out, whatever their state: queued, running or done
        (runpod/docs endpoint-configurations.mdx "Job TTL": the job is removed and status checks
        return 404). A running job's handler is stopped. Called by ``tick`` only once ``next_expiry``
        is reached, so thousands of retained jobs are not scanned on every tick."""
        self.next_expiry = min((j.expires_at() for j in self.jobs.values() if now < j.expires_at()), default=math.inf)
        for job in [j for j in self.jobs.values() if now >= j.expires_at()]:
            del self.jobs[job.id]
            if job.status == J.IN_QUEUE:
                try:
                    self.queue.remove(job)
                except ValueError:
                    pass
            if not job.is_final:
                job.finish(J.CANCELLED, error=f"job expired: its ttl of {job.ttl_s:g} s ran out")
                if job.task is not None:
                    job.task.cancel()
            if job.journal is not None:
                job.journal.dropped(job)

    # -- scaling -------------------------------------------------------------------------------

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.status != STOPPED]

    def scale(self) -> None:
        """Start workers the scaler asks for (called on every submit and every tick)."""
        try:
            endpoint = self.endpoint
        except EndpointGone:
            return
        current = [w for w in self.live_workers() if not w.stale]
        count = len(current)
        target = endpoint.workers_min
        # policy.lowPriority: "When true, job won't trigger worker scaling" (runpod/docs
        # send-requests.mdx); such jobs wait for a worker that runs anyway. They queue behind the
        # others, so the oldest job that may scale is the first of the queue.
        queued = sum(1 for job in self.queue if not job.low_priority)
        if endpoint.scaler_type == "REQUEST_COUNT":
            # The docs' formula (endpoint-configurations.mdx "Request count"): ceil((in queue + in
            # progress) / value); the REST v2 spec makes requestCount an integer >= 1.
            target = max(target, math.ceil((queued + self.in_progress()) / float(endpoint.scaler_value)))
        elif queued and self.profile.queue_delay_reading == "whole_queue":
            # The second reading (localpod.profiles.QUEUE_DELAY_READINGS): once the oldest job has
            # waited the delay (or no worker lives), enough workers for every queued and running job.
            waited = time.monotonic() - self.queue[0].submitted_at
            if count == 0 or waited >= endpoint.scaler_value:
                target = max(target, math.ceil((queued + self.in_progress()) / max(1, endpoint.max_concurrency)))
        elif queued:
            capacity = sum(w.concurrency - len(w.running) for w in current if w.status not in (UNHEALTHY,))
            if count == 0 or capacity <= 0:
                waited = time.monotonic() - self.queue[0].submitted_at
                now = time.monotonic()
                if count == 0:
                    target = max(target, 1)
                elif waited >= endpoint.scaler_value and now - self.last_scale_up >= endpoint.scaler_value:
                    target = max(target, count + 1)
        target = min(target, endpoint.workers_max)
        while count < target:
            worker = Worker(self)
            self.workers[worker.id] = worker
            worker.start()
            self.last_scale_up = time.monotonic()
            count += 1

    def park_if_idle(self, endpoint: Endpoint, now: float | None = None) -> int:
        """Runpod's idle parking (docs serverless/endpoints/endpoint-configurations, "Idle endpoint
        scale-down"): no requests for 3 days -> max workers lowered to 2, for 7 days -> 0, and it
        stays so until raised. Each step applies once per idle spell, so a PATCH raising max workers
        holds; the next request starts a new spell. Returns the step now applied (0, 1 or 2)."""
        idle = (time.time() if now is None else now) - endpoint.last_request_at
        profile = self.profile
        step = 2 if idle >= profile.parking_step2_s else 1 if idle >= profile.parking_step1_s else 0
        if step <= endpoint.parked_step:
            return endpoint.parked_step
        cap = 0 if step == 2 else 2
        endpoint.workers_max = min(endpoint.workers_max, cap)
        # Max below min is refused by the API; the docs speak of max only, min follows it down.
        endpoint.workers_min = min(endpoint.workers_min, endpoint.workers_max)
        endpoint.parked_step = step
        log.info(
            "endpoint %s idle for %.0f s: parked (step %d), max workers now %d",
            endpoint.id,
            idle,
            step,
            endpoint.workers_max,
        )
        self.platform.store.commit_or_log()
        return step

    def scale_down_if_unhealthy(self, endpoint: Endpoint, now: float | None = None) -> bool:
        """Runpod's scale-down of an endpoint that keeps producing unhealthy workers
        (runpod/docs serverless/troubleshooting.mdx, "My endpoint was scaled down unexpectedly":
        Runpod "scales it down to stop billing and reduce thrashing, and sends you an email"; the
        way back is to fix the cause, then raise max workers). The docs give no threshold:
        localpod scales down (max and min workers to 0) once the endpoint has had at least one
        UNHEALTHY worker and no ready one for ``profile.unhealthy_scale_down_s`` without a break
        (its assumption, 10 minutes by default). True when it scaled the endpoint down now."""
        now = time.monotonic() if now is None else now
        live = self.live_workers()
        if any(w.is_ready for w in live) or not any(w.status == UNHEALTHY for w in live):
            self.unhealthy_spell_since = None
            return False
        if self.unhealthy_spell_since is None:
            self.unhealthy_spell_since = now
        if now - self.unhealthy_spell_since < self.profile.unhealthy_scale_down_s or endpoint.workers_max == 0:
            return False
        endpoint.workers_max = 0
        endpoint.workers_min = 0
        endpoint.unhealthy_scale_down_at = time.time()
        self.unhealthy_spell_since = None
        reasons = sorted({w.unhealthy_reason for w in live if w.unhealthy_reason})
        log.warning(
            "endpoint %s kept producing unhealthy workers for %.0f s: scaled down (max workers 0), as "
            "Runpod does (it also emails the account). Cause: %s",
            endpoint.id,
            self.profile.unhealthy_scale_down_s,
            "; ".join(reasons) or "unknown",
        )
        self.platform.store.commit()
        return True

    async def tick(self) -> None:
        """Periodic housekeeping: idle timeouts, stale recycling, retention, scaling."""
        try:
            endpoint = self.endpoint
        except EndpointGone:
            return
        self.park_if_idle(endpoint)
        self.scale_down_if_unhealthy(endpoint)
        now = time.monotonic()
        fresh = [w for w in self.live_workers() if not w.stale]
        for worker in list(self.workers.values()):
            if worker.status == STOPPED:
                del self.workers[worker.id]
                continue
            if worker.stale and not worker.running:
                await worker.stop()
                continue
            if worker.status == IDLE and not worker.running and not self.queue:
                idle_timeout = endpoint.idle_timeout * self.profile.idle_timeout_scale
                if now - worker.idle_since >= idle_timeout and len(fresh) > endpoint.workers_min:
                    fresh.remove(worker)
                    await worker.stop()
        while len(fresh) > endpoint.workers_max:
            victim = next((w for w in fresh if not w.running), None)
            if victim is None:
                break
            fresh.remove(victim)
            await victim.stop()
        if now >= self.next_expiry:
            self.expire(now)
        while (
            self.finished
            and self.finished[0].finished_at is not None
            and now - self.finished[0].finished_at > self.finished[0].retention_s()
        ):
            job = self.finished.popleft()
            self.jobs.pop(job.id, None)
        self.scale()
        self.dispatch()

    async def shutdown(self, reason: str) -> None:
        for job in list(self.jobs.values()):
            if not job.is_final:
                if job.task is not None:
                    job.task.cancel()
                job.finish(J.CANCELLED, error=reason)
        for worker in list(self.workers.values()):
            await worker.stop()
        self.workers.clear()
        self.queue.clear()

    # -- views ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        counts = collections.Counter(w.status for w in self.live_workers())
        return {
            "jobs": {
                "completed": self.completed,
                "failed": self.failed,
                "inProgress": self.in_progress(),
                "inQueue": len(self.queue),
                "retried": self.retried,
            },
            "workers": {
                "idle": counts[IDLE],
                "initializing": counts[INITIALIZING],
                "ready": counts[IDLE] + counts[RUNNING],
                "running": counts[RUNNING],
                "throttled": counts[THROTTLED],
                "unhealthy": counts[UNHEALTHY],
            },
        }


class Platform:
    """All endpoint runtimes plus the background loop that drives their scaling."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.runtimes: dict[str, EndpointRuntime] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.rate_limiter = RateLimiter()
        self.worker_protocol = WorkerProtocolHub()
        """The mailboxes of worker processes that speak Runpod's worker protocol (job-take, job-done)."""
        self.worker_logs = WorkerLogBook()
        """Recent workers' logs (memory only), for ``GET /v2/serverless/{id}/workers/{workerId}/logs``."""
        self.journal = JobJournal.beside(store.path)
        """Durable jobs' changes, next to the ``--state`` file (nothing is kept without one)."""
        self._last_beat = 0.0
        self._last_sync = 0.0
        self._syncing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Import the worker kinds now: a first import during a worker's boot (httpx, numpy) would
        # stall the event loop for a tenth of a second and show up in cold-start timings.
        from localpod.serverless.backends import infinity_worker, mock_worker, vllm_worker  # noqa: F401

        for endpoint in self.store.endpoints.values():
            self.runtime(endpoint.id)
        self.restore_jobs()
        self.store.heartbeat()
        self._loop_task = asyncio.get_running_loop().create_task(self._scaler_loop(), name="localpod-scaler")

    def restore_jobs(self) -> int:
        """Take back the jobs the journal kept: finished ones within their retention and ttl (their
        results readable as before), queued ones queued again in their order, in-progress ones
        requeued (:meth:`EndpointRuntime.restore`); then compact the journal to them. Jobs of
        deleted endpoints, past their ttl or past their retention are dropped."""
        now = time.time()
        restored = 0
        records = sorted(self.journal.load(), key=lambda r: float(r.get("sub") or 0.0))
        finals: list[J.Job] = []
        for record in records:
            runtime = self.runtimes.get(record.get("ep", ""))
            if runtime is None:
                continue
            if now >= float(record.get("sub") or 0.0) + float(record.get("ttl", J.DEFAULT_TTL_S)):
                continue
            job = job_from_record(record)
            if job.is_final:
                if job.finished_at is None or time.monotonic() - job.finished_at > job.retention_s():
                    continue
                finals.append(job)
                continue
            runtime.restore(job)
            restored += 1
        for job in sorted(finals, key=lambda j: j.finished_at or 0.0):  # retention pops the oldest first
            self.runtimes[job.endpoint_id].restore(job)
            restored += 1
        self.journal.open(self.durable_jobs())
        if self.journal.enabled:
            for job in self.durable_jobs():
                job.journal = self.journal
        for runtime in self.runtimes.values():
            runtime.scale()
            runtime.dispatch()
        if restored:
            log.info("restored %d job(s) from %s", restored, self.journal.path)
        return restored

    def durable_jobs(self) -> list[J.Job]:
        return [job for runtime in self.runtimes.values() for job in runtime.jobs.values() if job.durable]

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        # Stop journaling first: what is still queued or running is not cancelled for the next
        # start, which takes it back as after a crash.
        self.journal.close()
        for runtime in list(self.runtimes.values()):
            await runtime.shutdown("localpod stopped")
        self.store.commit_or_log()

    async def _scaler_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self.settings.profile.scaler_tick_s, 0.005))
            for runtime in list(self.runtimes.values()):
                try:
                    await runtime.tick()
                except Exception:  # pragma: no cover - keep scaling the other endpoints
                    log.exception("scaler tick failed for %s", runtime.endpoint_id)
            try:
                self.beat()
            except OSError as exc:  # a full or read-only disk must not stop the queue: one line a minute
                WRITE_FAILURES.warning("heartbeat or journal upkeep failed: %s", exc.strerror or exc)
            except Exception:  # pragma: no cover - a bug: keep the queue going, show the traceback
                log.exception("heartbeat or journal upkeep failed")

    def beat(self) -> None:
        """Note that localpod is alive; ``fsync`` and compact the journal when due."""
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = now
        self.store.heartbeat()
        if self.journal.needs_compaction():
            self.journal.compact(self.durable_jobs())
        elif (
            now - self._last_sync >= SYNC_S and self.journal.enabled and (self._syncing is None or self._syncing.done())
        ):
            self._last_sync = now
            self._syncing = asyncio.get_running_loop().create_task(asyncio.to_thread(self.journal.sync))

    def runtime(self, endpoint_id: str) -> EndpointRuntime:
        """The runtime of an existing endpoint; raises ``EndpointGone`` for an unknown id."""
        runtime = self.runtimes.get(endpoint_id)
        if runtime is None:
            if endpoint_id not in self.store.endpoints:
                raise EndpointGone(endpoint_id)
            runtime = self.runtimes[endpoint_id] = EndpointRuntime(self, endpoint_id)
        return runtime

    # -- control-plane hooks -------------------------------------------------------------------

    def endpoint_created(self, endpoint: Endpoint) -> None:
        self.runtime(endpoint.id).scale()

    def endpoint_updated(self, endpoint: Endpoint) -> None:
        # Stale workers recycle and min/max changes apply on the next tick.
        self.runtime(endpoint.id)

    def endpoint_deleted(self, endpoint_id: str) -> None:
        runtime = self.runtimes.pop(endpoint_id, None)
        if runtime is not None:
            self._spawn(runtime.shutdown("endpoint deleted"))
        self.worker_logs.drop_endpoint(endpoint_id)

    def list_workers(self, endpoint_id: str) -> list[WorkerInfo]:
        runtime = self.runtimes.get(endpoint_id)
        if runtime is None:
            return []
        return [
            WorkerInfo(
                id=w.id,
                status=w.status,
                version=w.version,
                gpu_count=w.gpu_count,
                image=w.image,
                uptime_seconds=w.uptime_s(),
                gpu_type_id=w.gpu_type_id,
                data_center_id=w.data_center_id,
                started_at=w.started_iso(),
            )
            for w in runtime.live_workers()
        ]

    async def reset(self) -> None:
        for runtime in list(self.runtimes.values()):
            await runtime.shutdown("localpod reset")
        self.runtimes.clear()
        if self.journal.enabled:
            self.journal.compact([])
        self.rate_limiter.clear()
        self.worker_logs.clear()

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for endpoint_id, runtime in self.runtimes.items():
            out[endpoint_id] = {
                "health": runtime.health(),
                "workers": [
                    {
                        "id": w.id,
                        "status": w.status,
                        "version": w.version,
                        "stale": w.stale,
                        "gpuTypeId": w.gpu_type_id,
                        "dataCenterId": w.data_center_id,
                        "hostCudaVersion": w.host_cuda,
                        "coldStart": w.plan.describe() if w.plan else None,
                        "unhealthyReason": w.unhealthy_reason,
                        "billing": w.billing,
                        "events": [[round(t, 4), s] for t, s in w.events],
                    }
                    for w in runtime.live_workers()
                ],
                # When each job still retained reached the queue (CLOCK_MONOTONIC, the same clock in
                # every process here): a test can replay the arrivals localpod really saw.
                "jobs": [{"id": job.id, "submittedAt": round(job.submitted_at, 6)} for job in runtime.jobs.values()],
            }
        return out

    # -- webhooks ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def send_webhook(self, job: J.Job) -> None:
        """POST the finished job to its webhook; retried twice, 10 s apart, as Runpod does."""
        self._spawn(self._post_webhook(job))

    async def _post_webhook(self, job: J.Job) -> None:
        import httpx

        from localpod import limits

        body = job.view()
        async with httpx.AsyncClient(timeout=10, trust_env=False, follow_redirects=False) as client:
            for attempt in range(3):
                try:  # checked again now, names resolved: the POST goes to the very address checked
                    target = await limits.resolve_webhook(job.webhook or "")
                except ValueError as refused:
                    log.warning("webhook of job %s not sent: %s", job.id, refused)
                    return
                extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
                try:
                    response = await client.post(
                        target.url,
                        content=dumps(body),
                        headers={"Content-Type": "application/json", "Host": target.host_header},
                        extensions=extensions,
                    )
                    if response.status_code < 400:
                        return
                except httpx.HTTPError:
                    pass
                if attempt < 2:
                    await asyncio.sleep(10)
