"""Follow a rolling update: after an apply that made a new release, wait until no worker runs the old one.

Why: an endpoint update that changes what workers run with (image, env, GPUs, CUDA, ...) is a new
release. Runpod does not stop running workers: they finish their jobs and are replaced, so for a
while old and new workers serve side by side. A runbook that goes on to test "the new settings"
must first know no old worker is left, and the person running it wants to know how long that took.

Source: the REST v2 spec (/work/shared/runpod/openapi-v2.json), ``ListEndpointWorkersResponse``:
``endpointVersion`` is "the endpoint's current configuration version. A worker whose ``version``
differs is running stale config"; ``Worker.isStale`` is "the authoritative flag ... (e.g. mid
rolling-update)". ``Release.diff`` names top-level (``gpuCount``, ``locations``) and template-scoped
(``template.imageName``, ``template.env``) fields, so more than image/env makes a release.
``GET /v2/serverless/{id}/releases`` has a rollout summary too, but ``/workers`` is enough to know
which workers still run an old release, and is what localpod serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rpbook.account.controlplane import RunpodClient
from rpbook.account.plan import EnsureResult
from rpbook.account.resources import Worker, WorkerSummary
from rpbook.core.errors import ConfigError, RolloutTimeoutError
from rpbook.core.pending import Skipped
from rpbook.core.settings import Settings

RELEASE_FIELDS = frozenset(
    {
        "image",
        "disk_gb",
        "gpu_pools",
        "gpu_count",
        "allowed_cuda_versions",
        "min_cuda_version",
        "execution_timeout_s",
        "flashboot",
        "network_volume",
        "data_center",
    }
)
"""Plan fields (rpbook.account.plans) that are part of what workers run with: changing one (or any ``env.*``)
is a new release. Name, scaling and worker counts are not (they apply without replacing workers)."""


@dataclass(frozen=True)
class RolloutSample:
    """One look at the workers: seconds since the follow began, old- and new-release worker counts."""

    t_s: float
    old: int
    new: int


@dataclass(frozen=True)
class RolloutReport:
    """How a rolling update went: when no worker ran an old release any more, and the counts on the way."""

    endpoint_id: str
    endpoint_version: int | None
    duration_s: float
    replaced: tuple[str, ...]
    """Ids of the workers seen on an old release (all gone at the end)."""
    samples: tuple[RolloutSample, ...] = field(repr=False)
    ok: bool = True

    @property
    def figures(self) -> dict[str, float | int | str]:
        """What a run record keeps of it."""
        return {
            "rollout_s": round(self.duration_s, 2),
            "old_workers_replaced": len(self.replaced),
            "endpoint_version": "" if self.endpoint_version is None else self.endpoint_version,
        }

    def __str__(self) -> str:
        version = "" if self.endpoint_version is None else f" (release {self.endpoint_version})"
        if not self.replaced:
            return (
                f"endpoint {self.endpoint_id}{version}: no worker ran an old release; nothing to wait for "
                f"({self.duration_s:.1f} s)"
            )
        peak_new = max(s.new for s in self.samples)
        return (
            f"endpoint {self.endpoint_id}{version}: rolling update done in {self.duration_s:.1f} s: "
            f"{len(self.replaced)} old worker(s) finished and were replaced ({', '.join(self.replaced)}); "
            f"up to {peak_new} new worker(s) meanwhile"
        )

    __repr__ = __str__


def is_old(worker: Worker, summary: WorkerSummary) -> bool:
    """True when the worker runs an older release than the endpoint's current one.

    ``isStale`` is authoritative (the spec); a worker whose ``version`` differs from
    ``endpointVersion`` counts as old too, in case a response carries only the numbers."""
    if worker.is_stale:
        return True
    return (
        worker.version is not None
        and summary.endpoint_version is not None
        and worker.version != summary.endpoint_version
    )


def _describe_old(old: tuple[Worker, ...], endpoint_version: int | None) -> str:
    return "; ".join(
        f"{w.id} ({w.status}, release {w.version if w.version is not None else '?'} of "
        f"{endpoint_version if endpoint_version is not None else '?'})"
        for w in old
    )


def follow_rollout(
    settings: Settings,
    client: RunpodClient,
    endpoint_id: str,
    *,
    timeout_s: float = 900,
    poll_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutReport:
    """Poll ``GET /v2/serverless/{id}/workers`` until no worker runs an old release.

    Old workers finish the jobs they hold before they are replaced, so ``timeout_s`` should cover
    the longest job (the endpoint's execution timeout at worst). On timeout raises
    ``RolloutTimeoutError`` naming each worker still on an old release and its state."""
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    poll = poll_s if poll_s is not None else (0.1 if settings.target == "local" else 5.0)
    if poll <= 0:
        raise ConfigError(f"poll_s must be > 0 seconds, got {poll_s!r}")
    start = clock()
    samples: list[RolloutSample] = []
    replaced: list[str] = []
    while True:
        summary = client.endpoint_workers(endpoint_id)
        now = clock() - start
        old = tuple(w for w in summary.workers if is_old(w, summary))
        replaced += [w.id for w in old if w.id not in replaced]
        samples.append(RolloutSample(round(now, 3), len(old), len(summary.workers) - len(old)))
        if not old:
            return RolloutReport(endpoint_id, summary.endpoint_version, now, tuple(replaced), tuple(samples))
        if now >= timeout_s:
            raise RolloutTimeoutError(
                f"endpoint {endpoint_id}: after {timeout_s:g} s {len(old)} worker(s) still run an old release: "
                f"{_describe_old(old, summary.endpoint_version)}. A RUNNING one is still finishing a job (old "
                f"workers are replaced only when idle): wait longer (timeout_s), or cancel its job; one that "
                f"stays IDLE or UNHEALTHY on an old release is not being recycled: check the endpoint in the "
                f"console.",
                old,
            )
        sleep(min(poll, max(0.0, timeout_s - now)))


def rolls_workers(result: EnsureResult) -> list[str]:
    """The applied endpoint changes that make a new release (empty: workers keep running as they are)."""
    plan = result.plan
    if plan.kind != "endpoint" or plan.action != "update":
        return []
    return [f for f in plan.changed_fields if f in RELEASE_FIELDS or f.startswith("env.")]


_NO_ROLLOUT: dict[str, bool | str] = {"rollout": "none"}
"""The figures of a skipped follow: recorded as no rollout, not as a skipped runbook step."""


def after_apply(
    settings: Settings,
    client: RunpodClient,
    result: EnsureResult,
    *,
    timeout_s: float = 900,
    poll_s: float | None = None,
) -> RolloutReport | Skipped:
    """After ``ensure_endpoint``: follow the rolling update when the apply made a new release.

    A one-line ``Skipped`` when there is nothing to follow: a dry run, a new endpoint (no old
    workers), or an update that left the release alone (scaling, worker counts, name)."""
    if result.plan.kind != "endpoint":
        raise ConfigError(f"after_apply takes the result of ensure_endpoint, got one for a {result.plan.kind}")
    if not result.applied:
        return Skipped(
            f"endpoint `{result.plan.name}`: not applied (apply=False): no rolling update to follow",
            figures=_NO_ROLLOUT,
        )
    if result.plan.action == "create":
        return Skipped(
            f"endpoint `{result.plan.name}` was just created: no old workers to replace", figures=_NO_ROLLOUT
        )
    changed = rolls_workers(result)
    if not changed or result.resource is None:
        return Skipped(
            f"endpoint `{result.plan.name}`: the apply made no new release (image, env, GPUs unchanged): "
            "workers keep running",
            figures=_NO_ROLLOUT,
        )
    return follow_rollout(settings, client, result.resource.id, timeout_s=timeout_s, poll_s=poll_s)
