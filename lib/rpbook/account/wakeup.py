"""Wake an endpoint and show how it got ready: one small job, followed to its first token.

Why a wake-up step: a queue endpoint with ``workers.min = 0`` scales to zero, and the first request
after that waits for a cold start (GPU placement, container start, weights download or volume read,
engine init), minutes for a 7B vLLM model. A chat client that hits a cold endpoint just
hangs with no hint why. ``wake`` sends a one-token job and follows ``/health`` and the job's status,
so a person sees which stage the endpoint is in, how long each took, and, when it cannot get
ready (unhealthy workers, no GPU capacity, no worker allowed), an error that says what to fix.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpbook.account.billing_now import describe_after_failure
from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import (
    FINAL_STATES,
    Health,
    _as_secret,
    call_sdk,
    cancel_job,
    endpoint_health,
    job_error_text,
    job_status,
    sdk_endpoint,
)
from rpbook.account.workererrors import unhealthy_cause
from rpbook.core.display import html_table, progress_bar, rich_output
from rpbook.core.errors import EndpointNotReadyError, RpbookError
from rpbook.core.pending import NotCreated, Skipped, skip
from rpbook.core.plots import timeline_html
from rpbook.core.secrets import Secret, scrub
from rpbook.core.settings import Settings

DEFAULT_VLLM_PING: dict[str, Any] = {"prompt": "ping", "sampling_params": {"max_tokens": 1}}
"""The smallest job a vLLM worker answers: one token of completion."""

STAGES = ("queued", "throttled", "initializing", "ready", "in progress", "first token")
"""Timeline stages in the order they happen; ``throttled`` and ``in progress`` are recorded only
when seen. ``first token`` is when the job finished (the ping asks for one token, not a stream)."""

UNHEALTHY_HINT = (
    "the usual causes are: the template references a Runpod secret the account does not have "
    "({{ RUNPOD_SECRET_name }}: create it under Secrets in the Runpod console or fix hf_token_ref in runbook 02), "
    "the model's licence is not accepted on huggingface.co by the account of "
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
    at_submit = endpoint_health(endpoint, endpoint_id)
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
        job = call_sdk("submit wake-up job", endpoint_id, lambda: endpoint.run({"input": payload}))
        job_id = job.job_id
        if not cold:
            timeline["ready"] = 0.0  # a worker was ready when the job went in
        mark("queued")
        show("queued" if cold else "queued (a worker is ready)")
        deadline = started + timeout_s
        unhealthy_since: float | None = None
        current = at_submit
        while True:
            body = job_status(endpoint, endpoint_id, job_id)
            status = body.get("status", "")
            if status == "IN_PROGRESS":
                mark("ready")
                mark("in progress")
            if status in FINAL_STATES:
                break
            current = endpoint_health(endpoint, endpoint_id)
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
                    cancel_job(endpoint, endpoint_id, job_id)
                    cause = _cause_from_worker_logs(settings, api_key, endpoint_id)
                    raise EndpointNotReadyError(
                        f"endpoint {endpoint_id} cannot start: its workers are unhealthy (the model server "
                        f"crashes while starting) for {now - unhealthy_since:.1f} s; {cause} "
                        f"[{current.summary()}] (wake-up job cancelled)"
                    )
            show(_describe(status, current))
            if now >= deadline:
                cancel_job(endpoint, endpoint_id, job_id)
                raise EndpointNotReadyError(_timeout_message(endpoint_id, timeout_s, status, current))
            time.sleep(max(0.0, min(poll_s, deadline - now)))
        if status != "COMPLETED":
            raise EndpointNotReadyError(
                f"the wake-up job on endpoint {endpoint_id} ended {status}: {job_error_text(body)}. The worker "
                "started but its handler failed: check MODEL_NAME and the other env vars of the template, "
                "and the job input (default: a one-token vLLM completion)."
            )
        mark("ready")
        mark("first token")
        show("first token (awake)")
        bar.n = 4
        bar.refresh()
    except EndpointNotReadyError as exc:
        now_health = endpoint_health(endpoint, endpoint_id)
        after = describe_after_failure(
            settings,
            api_key,
            endpoint_id,
            now_health.billing_workers,
            scale_to_zero_on_failure,
            unhealthy_workers=now_health.unhealthy,
        )
        raise EndpointNotReadyError(f"{exc}\n{after}") from None
    except BaseException:
        # A cell timeout or Ctrl-C interrupts the wait: the wake-up job must not stay queued.
        if job_id and status not in FINAL_STATES:
            try:
                cancel_job(endpoint, endpoint_id, job_id)
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
        health_at_end=endpoint_health(endpoint, endpoint_id),
        delay_time_ms=body.get("delayTime"),
        execution_time_ms=body.get("executionTime"),
        output_preview=scrub(json.dumps(body.get("output"), default=str))[:300],
    )


def _cause_from_worker_logs(settings: Settings, api_key: Secret | str, endpoint_id: str) -> str:
    """Why the workers are unhealthy: what their logs say (``rpbook.account.workererrors.unhealthy_cause``),
    with the usual causes unless the log names the whole story (a missing Runpod secret). Reading
    the logs is best effort: when they cannot be read, the usual causes alone."""
    try:
        with RunpodClient(settings, _as_secret(api_key)) as client:
            lines = client.worker_logs(endpoint_id, tail=200, idle_s=0.3, max_s=1.5)  # a crash loop never goes quiet
    except RpbookError:
        return UNHEALTHY_HINT
    found = unhealthy_cause([line.line for line in lines])
    if found is None:
        return UNHEALTHY_HINT
    cause, whole = found
    return cause if whole else f"{cause}; {UNHEALTHY_HINT}"


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
