"""The job queue of one endpoint (Runpod's serverless queue) through the ``runpod`` SDK: health and jobs.

Waking an endpoint and following it to its first token is ``rpbook.account.wakeup``.

The SDK's ``Endpoint`` reads the module global ``runpod.endpoint_url_base`` when it is built; we set
it from ``settings.queue_url`` only for that moment (under a lock) and restore it, and pass the API
key per call, so nothing else in the process depends on rpbook's choice of target.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from rpbook.account.workererrors import worker_error_text
from rpbook.core.errors import ConfigError, EndpointNotFound, EndpointNotReadyError, JobTimeoutError, RpbookError
from rpbook.core.secrets import Secret, scrub
from rpbook.core.settings import Settings

if TYPE_CHECKING:
    import runpod

FINAL_STATES = ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED")

_SDK_LOCK = threading.Lock()


# -- health ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """``GET /{endpoint_id}/health``: job counts and worker counts by state."""

    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0
    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Health:
        """Parse the queue's answer; unknown keys are ignored and missing ones count 0, because
        Runpod's documented example carries fewer worker keys than live responses."""
        jobs = body.get("jobs") or {}
        workers = body.get("workers") or {}

        def num(section: Mapping[str, Any], key: str) -> int:
            value = section.get(key, 0)
            return int(value) if isinstance(value, (int, float)) else 0

        idle, running = num(workers, "idle"), num(workers, "running")
        ready = num(workers, "ready") if "ready" in workers else idle + running
        return cls(
            completed=num(jobs, "completed"),
            failed=num(jobs, "failed"),
            in_progress=num(jobs, "inProgress"),
            in_queue=num(jobs, "inQueue"),
            retried=num(jobs, "retried"),
            idle=idle,
            initializing=num(workers, "initializing"),
            ready=ready,
            running=running,
            throttled=num(workers, "throttled"),
            unhealthy=num(workers, "unhealthy"),
        )

    @property
    def has_ready_worker(self) -> bool:
        return self.ready > 0 or self.idle > 0 or self.running > 0

    @property
    def workers_total(self) -> int:
        return self.initializing + max(self.ready, self.idle + self.running) + self.throttled + self.unhealthy

    @property
    def billing_workers(self) -> int:
        """Workers that bill now: initializing and ready (idle or running) ones. Throttled and
        unhealthy workers do not bill (runpod/docs serverless/workers/overview.mdx, "Worker states":
        billing "No" for both; a ready worker waiting out its idle timeout bills, pricing.mdx)."""
        return self.initializing + max(self.ready, self.idle + self.running)

    @property
    def stage(self) -> str:
        """One word for where the endpoint is: ready, initializing, unhealthy, throttled or cold."""
        if self.has_ready_worker:
            return "ready"
        if self.initializing:
            return "initializing"
        if self.unhealthy:
            return "unhealthy"
        if self.throttled:
            return "throttled"
        return "cold"

    def summary(self) -> str:
        """``workers: 1 initializing, 0 ready …; jobs: 1 in queue …`` for messages and progress bars."""
        workers = (
            f"workers: {self.ready} ready ({self.idle} idle, {self.running} running), "
            f"{self.initializing} initializing, {self.throttled} throttled, {self.unhealthy} unhealthy"
        )
        jobs = (
            f"jobs: {self.in_queue} in queue, {self.in_progress} in progress, {self.completed} completed, "
            f"{self.failed} failed, {self.retried} retried"
        )
        return f"{workers}; {jobs}"

    def as_dict(self) -> dict[str, int]:
        return {
            "jobs_completed": self.completed,
            "jobs_failed": self.failed,
            "jobs_in_progress": self.in_progress,
            "jobs_in_queue": self.in_queue,
            "jobs_retried": self.retried,
            "workers_idle": self.idle,
            "workers_initializing": self.initializing,
            "workers_ready": self.ready,
            "workers_running": self.running,
            "workers_throttled": self.throttled,
            "workers_unhealthy": self.unhealthy,
        }

    def __str__(self) -> str:
        return self.summary()


# -- SDK plumbing ---------------------------------------------------------------------------------


def _as_secret(api_key: Secret | str) -> Secret:
    """Accept a plain string too, but register it so ``scrub`` hides it from every message."""
    if isinstance(api_key, Secret):
        return api_key
    return Secret("RUNPOD_API_KEY", str(api_key), "argument")


def sdk_endpoint(settings: Settings, api_key: Secret | str, endpoint_id: str) -> runpod.Endpoint:
    """A ``runpod.Endpoint`` bound to ``settings.queue_url`` with the key given per call.

    The SDK copies ``runpod.endpoint_url_base`` into the client when it is constructed, so the global
    is set only for that instant and put back; the key is never written to ``runpod.api_key``."""
    if not endpoint_id or "/" in endpoint_id:
        raise ConfigError(
            f"endpoint id {endpoint_id!r} is not valid: use the id runbooks 02 and 04 print, or find it "
            "by name (rpbook.account.plans.find_endpoint_id, as runbooks 03 and 05 do)"
        )
    # Imported here, not with this module: importing the runpod SDK runs logging.basicConfig(level=INFO)
    # (runpod/serverless/utils/rp_upload.py), and importing rpbook must leave logging as it was
    # (rpbook.runbook.session.start quiets the HTTP client's per-request lines for the runbooks).
    import runpod

    secret = _as_secret(api_key)
    with _SDK_LOCK:
        saved = runpod.endpoint_url_base
        runpod.endpoint_url_base = settings.queue_url
        try:
            endpoint = runpod.Endpoint(endpoint_id, api_key=secret.reveal())
        finally:
            runpod.endpoint_url_base = saved
    endpoint.rp_client.rp_session.hooks["response"].append(_unauthorized_as_http_error)
    return endpoint


def _unauthorized_as_http_error(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """A 401 as the ``requests.HTTPError`` it is, status code and all.

    runpod 1.12's ``RunPodClient._request`` (runpod/endpoint/runner.py) turns a 401 into a bare
    ``RuntimeError`` with only a message, before its own ``raise_for_status``; this session hook
    runs first, so ``_call`` tells a rejected key apart by the status code, not by message text."""
    if response.status_code == 401:
        response.raise_for_status()
    return response


def call_sdk(what: str, endpoint_id: str, fn: Callable[[], Any]) -> Any:
    """Run one SDK request and turn its errors into rpbook's, scrubbed, by status code."""
    try:
        return fn()
    except RpbookError:
        raise
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        body = scrub(exc.response.text[:300]) if exc.response is not None else ""
        if status == 401:
            raise ConfigError(
                f"{what}: the queue API rejected RUNPOD_API_KEY (401 Unauthorized). Check the "
                "key in the environment or the env file; for target 'runpod' it needs access "
                "to Serverless (read/write key)."
            ) from None
        if status == 404:
            raise EndpointNotFound(
                f"{what}: endpoint {endpoint_id} not found (404): deleted since, or on the other "
                "target (local or runpod). Check endpoint_name and target; runbook 02 or 04 creates "
                f"it. Answer: {body}"
            ) from None
        raise EndpointNotReadyError(f"{what}: the queue API answered HTTP {status}: {body}") from None
    except requests.RequestException as exc:
        raise EndpointNotReadyError(
            f"{what}: cannot reach the queue API ({type(exc).__name__}: "
            f"{scrub(str(exc))[:300]}). Is the target right, and for 'local' is "
            "localpod running?"
        ) from None
    except RuntimeError as exc:  # any other SDK failure (a 401 arrives as HTTPError, see above)
        raise EndpointNotReadyError(f"{what}: {scrub(str(exc))}") from None


def health(settings: Settings, api_key: Secret | str, endpoint_id: str) -> Health:
    """The endpoint's worker and job counts right now."""
    endpoint = sdk_endpoint(settings, api_key, endpoint_id)
    return endpoint_health(endpoint, endpoint_id)


def endpoint_health(endpoint: runpod.Endpoint, endpoint_id: str) -> Health:
    return Health.from_json(call_sdk("health check", endpoint_id, lambda: endpoint.health(timeout=10)))


def job_status(endpoint: runpod.Endpoint, endpoint_id: str, job_id: str) -> dict[str, Any]:
    """The full ``/status`` body (the SDK's ``Job.status()`` keeps only the state, not the error)."""
    return call_sdk("job status", endpoint_id, lambda: endpoint.rp_client.get(f"{endpoint_id}/status/{job_id}"))


def cancel_job(endpoint: runpod.Endpoint, endpoint_id: str, job_id: str) -> None:
    """Cancel a job we gave up on, so it does not start a worker (and a bill) later. Best effort."""
    try:
        endpoint.rp_client.post(f"{endpoint_id}/cancel/{job_id}", data=None, timeout=5)
    except Exception:  # noqa: BLE001 - the error we are about to raise matters more
        pass


def job_error_text(body: Mapping[str, Any]) -> str:
    """A failed job's ``error`` as one line: the worker SDK's JSON, a generator's traceback text or
    worker-vllm's error dict (see ``rpbook.account.workererrors``), scrubbed."""
    raw = body.get("error")
    if raw is None:
        raw = body.get("output")
    return scrub(worker_error_text(raw))[:800]


# -- single jobs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobResult:
    """A finished queue job."""

    job_id: str
    status: str
    output: Any
    delay_time_ms: int | None
    """Time the job waited in the queue (includes a cold start)."""
    execution_time_ms: int | None


# runpod.Endpoint.run(x) sends x itself as the request body when x has a truthy "input" key
# (meant for callers adding "webhook"/"policy"), so a job input such as {"model", "input"} would
# reach the worker as just its "input" value. Wrapping every input as {"input": ...} avoids that.


def run_job(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str,
    job_input: Mapping[str, Any],
    *,
    timeout_s: float = 600,
    poll_s: float = 0.5,
) -> JobResult:
    """Submit one job with ``/run`` and poll ``/status`` until it is final.

    ``/run`` + polling rather than ``/runsync`` because runsync answers after 90 s with a non-final
    state on a cold start, and the timeout here should be ours. Raises ``EndpointNotReadyError`` on
    timeout (``JobTimeoutError``; the job is cancelled, so it starts no worker later and no worker
    keeps billing for it) or when the job FAILED / TIMED_OUT / was CANCELLED."""
    endpoint = sdk_endpoint(settings, api_key, endpoint_id)
    job = call_sdk("submit job", endpoint_id, lambda: endpoint.run({"input": dict(job_input)}))
    deadline = time.monotonic() + timeout_s
    while True:
        body = job_status(endpoint, endpoint_id, job.job_id)
        status = body.get("status", "")
        if status in FINAL_STATES:
            break
        if time.monotonic() >= deadline:
            cancel_job(endpoint, endpoint_id, job.job_id)
            raise JobTimeoutError(
                f"job {job.job_id} was still {status} after {timeout_s:g} s (cancelled). "
                "Wake the endpoint first (rpbook.account.wakeup.wake) to see why.",
                job.job_id,
                status,
            )
        time.sleep(poll_s)
    if status != "COMPLETED":
        raise EndpointNotReadyError(f"job {job.job_id} ended {status}: {job_error_text(body)}")
    return JobResult(
        job_id=job.job_id,
        status=status,
        output=body.get("output"),
        delay_time_ms=body.get("delayTime"),
        execution_time_ms=body.get("executionTime"),
    )
