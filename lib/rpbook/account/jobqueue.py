"""The job queue of one endpoint (Runpod's serverless queue) through the ``runpod`` SDK: health, wake-up, jobs.

Why a wake-up step: a queue endpoint with ``workers.min = 0`` scales to zero, and the first request
after that waits for a cold start (GPU placement, container start, weights download or volume read,
engine init), minutes for a 7B vLLM model. A chat client that hits a cold endpoint just
hangs with no hint why. ``wake`` sends a one-token job and follows ``/health`` and the job's status,
so a person sees which stage the endpoint is in, how long each took, and, when it cannot get
ready (unhealthy workers, no GPU capacity, no worker allowed), an error that says what to fix.

The SDK's ``Endpoint`` reads the module global ``runpod.endpoint_url_base`` when it is built; we set
it from ``settings.queue_url`` only for that moment (under a lock) and restore it, and pass the API
key per call, so nothing else in the process depends on rpbook's choice of target.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from rpbook.account.billing_now import describe_after_failure
from rpbook.account.workererrors import worker_error_text
from rpbook.core.display import html_table, progress_bar, rich_output
from rpbook.core.errors import ConfigError, EndpointNotFound, EndpointNotReadyError, JobTimeoutError, RpbookError
from rpbook.core.pending import NotCreated, Skipped, skip
from rpbook.core.plots import timeline_html
from rpbook.core.secrets import Secret, scrub
from rpbook.core.settings import Settings

if TYPE_CHECKING:
    import runpod

DEFAULT_VLLM_PING: dict[str, Any] = {"prompt": "ping", "sampling_params": {"max_tokens": 1}}
"""The smallest job a vLLM worker answers: one token of completion."""

FINAL_STATES = ("COMPLETED", "FAILED", "TIMED_OUT", "CANCELLED")

STAGES = ("queued", "throttled", "initializing", "ready", "in progress", "first token")
"""Timeline stages in the order they happen; ``throttled`` and ``in progress`` are recorded only
when seen. ``first token`` is when the job finished (the ping asks for one token, not a stream)."""

UNHEALTHY_HINT = (
    "the usual causes are: the model's licence is not accepted on huggingface.co by the account of "
    "HF_TOKEN (gated models such as Mistral or Llama), the token is missing or invalid in the endpoint's "
    "env (HUGGING_FACE_HUB_TOKEN for vLLM workers, else HF_TOKEN; or a fine-grained token lacks 'Read access "
    "to contents of all public gated repos'), or MODEL_NAME has a typo (the repo does not exist). Check the "
    "workers' logs (RunpodClient.worker_logs or the Runpod console), fix the template env, and wake again."
)
THROTTLED_HINT = (
    "no GPU is free in the endpoint's GPU pools and data centers (a network volume pins the endpoint to "
    "its data center). Add GPU pools, allow more data centers or use a volume in a data center with "
    "capacity, or wait and wake again."
)
NO_WORKER_HINT = (
    "no worker is running or starting, so no worker can start: check that the endpoint's max workers "
    "(workers.max) is above 0 (Runpod lowers it on endpoints idle for days) and that the account has "
    "balance left."
)

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
        """Workers that bill now: every state but throttled (no GPU yet)."""
        return self.workers_total - self.throttled

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


def _call(what: str, endpoint_id: str, fn: Callable[[], Any]) -> Any:
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
    return _health(endpoint, endpoint_id)


def _health(endpoint: runpod.Endpoint, endpoint_id: str) -> Health:
    return Health.from_json(_call("health check", endpoint_id, lambda: endpoint.health(timeout=10)))


def _status(endpoint: runpod.Endpoint, endpoint_id: str, job_id: str) -> dict[str, Any]:
    """The full ``/status`` body (the SDK's ``Job.status()`` keeps only the state, not the error)."""
    return _call("job status", endpoint_id, lambda: endpoint.rp_client.get(f"{endpoint_id}/status/{job_id}"))


def _cancel(endpoint: runpod.Endpoint, endpoint_id: str, job_id: str) -> None:
    """Cancel a job we gave up on, so it does not start a worker (and a bill) later. Best effort."""
    try:
        endpoint.rp_client.post(f"{endpoint_id}/cancel/{job_id}", data=None, timeout=5)
    except Exception:  # noqa: BLE001 - the error we are about to raise matters more
        pass


def _error_text(body: Mapping[str, Any]) -> str:
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
    job = _call("submit job", endpoint_id, lambda: endpoint.run({"input": dict(job_input)}))
    deadline = time.monotonic() + timeout_s
    while True:
        body = _status(endpoint, endpoint_id, job.job_id)
        status = body.get("status", "")
        if status in FINAL_STATES:
            break
        if time.monotonic() >= deadline:
            _cancel(endpoint, endpoint_id, job.job_id)
            raise JobTimeoutError(
                f"job {job.job_id} was still {status} after {timeout_s:g} s (cancelled). "
                "Wake the endpoint first (rpbook.account.jobqueue.wake) to see why.",
                job.job_id,
                status,
            )
        time.sleep(poll_s)
    if status != "COMPLETED":
        raise EndpointNotReadyError(f"job {job.job_id} ended {status}: {_error_text(body)}")
    return JobResult(
        job_id=job.job_id,
        status=status,
        output=body.get("output"),
        delay_time_ms=body.get("delayTime"),
        execution_time_ms=body.get("executionTime"),
    )


# -- wake-up --------------------------------------------------------------------------------------


@rich_output
@dataclass(frozen=True)
class WakeReport:
    """What a wake-up saw: was it cold, and when each stage was reached (seconds since submit)."""

    endpoint_id: str
    job_id: str
    cold: bool
    """No ready worker when the job was submitted."""
    timeline: dict[str, float] = field(hash=False)
    """Stage -> seconds since submit, in the order of ``STAGES``."""
    total_s: float
    health_at_submit: Health
    health_at_end: Health
    delay_time_ms: int | None = None
    execution_time_ms: int | None = None
    output_preview: str = ""

    @property
    def figures(self) -> dict[str, float | int | bool]:
        """Numbers for ``rpbook.records.figures.record_figures``."""
        out: dict[str, float | int | bool] = {"cold": self.cold, "wake_total_s": round(self.total_s, 3)}
        for stage, seconds in self.timeline.items():
            out[f"{stage.replace(' ', '_')}_s"] = round(seconds, 3)
        if self.delay_time_ms is not None:
            out["delay_time_ms"] = self.delay_time_ms
        if self.execution_time_ms is not None:
            out["execution_time_ms"] = self.execution_time_ms
        return out

    def __str__(self) -> str:
        kind = "cold start" if self.cold else "warm (a worker was ready)"
        lines = [f"endpoint {self.endpoint_id}: {kind}, answered in {self.total_s:.2f} s"]
        lines += [f"  {stage:<13} {seconds:8.2f} s" for stage, seconds in self.timeline.items()]
        lines.append(f"  now: {self.health_at_end.summary()}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        kind = "cold start" if self.cold else "warm (a worker was ready)"
        table = html_table(
            ["stage", "since submit"],
            [(stage, f"{seconds:.2f} s") for stage, seconds in self.timeline.items()],
            right={1},
        )
        plot = timeline_html(self.timeline, self.total_s, f"wake-up of {self.endpoint_id} ({kind})")
        return (
            f"<div><b>endpoint {html.escape(self.endpoint_id)}</b>: {kind}, answered in "
            f"{self.total_s:.2f} s{table}{plot}<small>{html.escape(self.health_at_end.summary())}</small></div>"
        )


def _default_grace(settings: Settings) -> float:
    # localpod's unhealthy workers are deterministic (a denied download); on Runpod a worker can
    # flap unhealthy for a moment during a release, so give it longer before giving up.
    return 3.0 if settings.target == "local" else 30.0


def wake(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str | NotCreated,
    *,
    timeout_s: float = 600,
    poll_s: float = 0.5,
    progress: bool = True,
    job_input: Mapping[str, Any] | None = None,
    unhealthy_grace_s: float | None = None,
    scale_to_zero_on_failure: bool = False,
) -> WakeReport | Skipped:
    """Send a tiny job and follow the endpoint until it answers; return the timeline.

    ``job_input`` defaults to a one-token vLLM completion; pass another for other workers (e.g.
    Infinity: ``rpbook.endpoint.embeddings.embeddings_ping(model)``). Raises ``EndpointNotReadyError`` when workers
    stay unhealthy for ``unhealthy_grace_s`` (3 s local, 30 s on Runpod), on timeout (with what the
    health looked like), or when the job fails; the job is cancelled in those cases, and in any
    interruption (a cell timeout, Ctrl-C). A failure's message ends with what still runs and
    costs per hour, or, with ``scale_to_zero_on_failure``, scales the endpoint to zero
    (``rpbook.account.billing_now``). A dry run's ``NotCreated`` gives one ``Skipped`` line."""
    if isinstance(endpoint_id, NotCreated):
        return skip("wake", endpoint_id)
    endpoint = sdk_endpoint(settings, api_key, endpoint_id)
    grace = _default_grace(settings) if unhealthy_grace_s is None else unhealthy_grace_s
    payload = dict(job_input) if job_input is not None else json.loads(json.dumps(DEFAULT_VLLM_PING))
    at_submit = _health(endpoint, endpoint_id)
    cold = not at_submit.has_ready_worker
    timeline: dict[str, float] = {}
    bar = progress_bar(4, "submitting", bar_format="{desc:<44} {bar} {n}/{total} [{elapsed}]", enabled=progress)

    started = time.monotonic()

    def mark(stage: str) -> None:
        if stage not in timeline:
            timeline[stage] = round(time.monotonic() - started, 4)
            bar.n = min(4, sum(1 for s in ("queued", "initializing", "ready", "first token") if s in timeline))

    def show(text: str) -> None:
        bar.set_description_str(text, refresh=False)
        bar.refresh()

    job_id = ""
    status = ""
    try:
        job = _call("submit wake-up job", endpoint_id, lambda: endpoint.run({"input": payload}))
        job_id = job.job_id
        if not cold:
            timeline["ready"] = 0.0  # a worker was ready when the job went in
        mark("queued")
        show("queued" if cold else "queued (a worker is ready)")
        deadline = started + timeout_s
        unhealthy_since: float | None = None
        current = at_submit
        while True:
            body = _status(endpoint, endpoint_id, job_id)
            status = body.get("status", "")
            if status == "IN_PROGRESS":
                mark("ready")
                mark("in progress")
            if status in FINAL_STATES:
                break
            current = _health(endpoint, endpoint_id)
            now = time.monotonic()
            if current.throttled and not current.has_ready_worker:
                mark("throttled")
            if current.initializing:
                mark("initializing")
            if current.has_ready_worker:
                mark("ready")
                unhealthy_since = None
            elif current.unhealthy:
                unhealthy_since = unhealthy_since if unhealthy_since is not None else now
                if now - unhealthy_since >= grace:
                    _cancel(endpoint, endpoint_id, job_id)
                    raise EndpointNotReadyError(
                        f"endpoint {endpoint_id} cannot start: its workers are unhealthy (the model server "
                        f"crashes while starting) for {now - unhealthy_since:.1f} s; {UNHEALTHY_HINT} "
                        f"[{current.summary()}] (wake-up job cancelled)"
                    )
            show(_describe(status, current))
            if now >= deadline:
                _cancel(endpoint, endpoint_id, job_id)
                raise EndpointNotReadyError(_timeout_message(endpoint_id, timeout_s, status, current))
            time.sleep(max(0.0, min(poll_s, deadline - now)))
        if status != "COMPLETED":
            raise EndpointNotReadyError(
                f"the wake-up job on endpoint {endpoint_id} ended {status}: {_error_text(body)}. The worker "
                "started but its handler failed: check MODEL_NAME and the other env vars of the template, "
                "and the job input (default: a one-token vLLM completion)."
            )
        mark("ready")
        mark("first token")
        show("first token (awake)")
        bar.n = 4
        bar.refresh()
    except EndpointNotReadyError as exc:
        after = describe_after_failure(
            settings, api_key, endpoint_id, _health(endpoint, endpoint_id).billing_workers, scale_to_zero_on_failure
        )
        raise EndpointNotReadyError(f"{exc}\n{after}") from None
    except BaseException:
        # A cell timeout or Ctrl-C interrupts the wait: the wake-up job must not stay queued.
        if job_id and status not in FINAL_STATES:
            try:
                _cancel(endpoint, endpoint_id, job_id)
            except RpbookError:
                pass
        raise
    finally:
        bar.close()
    total = time.monotonic() - started
    ordered = {stage: timeline[stage] for stage in STAGES if stage in timeline}
    return WakeReport(
        endpoint_id=endpoint_id,
        job_id=job_id,
        cold=cold,
        timeline=ordered,
        total_s=total,
        health_at_submit=at_submit,
        health_at_end=_health(endpoint, endpoint_id),
        delay_time_ms=body.get("delayTime"),
        execution_time_ms=body.get("executionTime"),
        output_preview=scrub(json.dumps(body.get("output"), default=str))[:300],
    )


def _describe(status: str, health_now: Health) -> str:
    if status == "IN_PROGRESS":
        return "in progress (a worker runs the job)"
    stage = health_now.stage
    return {
        "ready": "ready (the job is being handed over)",
        "initializing": "initializing (container start, weights, engine)",
        "unhealthy": "unhealthy workers (retrying)",
        "throttled": "throttled (waiting for a free GPU)",
        "cold": "queued (waiting for a worker to start)",
    }[stage]


def _timeout_message(endpoint_id: str, timeout_s: float, status: str, h: Health) -> str:
    if h.has_ready_worker:
        why = (
            "a worker is ready but the job was not answered: the worker may be busy with other jobs, "
            "or the execution timeout is too short"
        )
    elif h.initializing:
        why = (
            "workers are still initializing: a first start downloads the weights (minutes for a 7B model); "
            "a network volume with the weights cached makes later starts faster. Wake again with a longer "
            "timeout_s"
        )
    elif h.unhealthy:
        why = f"workers are unhealthy; {UNHEALTHY_HINT}"
    elif h.throttled:
        why = f"workers are throttled: {THROTTLED_HINT}"
    else:
        why = NO_WORKER_HINT
    return (
        f"endpoint {endpoint_id} did not answer the wake-up job within {timeout_s:g} s (job {status or 'unknown'}, "
        f"cancelled): {why}. Health: {h.summary()}"
    )
