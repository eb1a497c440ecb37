"""After a failure: what is still running on an endpoint, what bills, what Runpod does by itself, the way out.

Which workers bill follows the state table of runpod/docs ``serverless/workers/overview.mdx``
("Worker states"), as localpod emulates it (``localpod.serverless.workers``): initializing and
ready (idle or running) workers bill; throttled and unhealthy ones do not. ``serverless/pricing.mdx``
("billed from when a worker starts until it fully stops") would bill every restart of a crash loop;
where the pages disagree the state table is followed.

What Runpod does by itself: idle workers stop after the idle timeout; unhealthy workers "auto-retry
for up to 7 days" (same table); an endpoint that keeps producing unhealthy workers is scaled down,
its max workers lowered, and the account gets an email (``serverless/troubleshooting.mdx``, "My
endpoint was scaled down unexpectedly"; how soon is not documented — localpod assumes 10 minutes).
What the user must do: fix the cause (the workers' log says it), then bring the endpoint back
(runbook 02 or 04 restores ``workers.max`` on its next run) and wake it again. To stop the retries
at once, ``scale_to_zero`` sets ``workers.min`` and ``workers.max`` to 0 through REST v2 (what
Runpod requires before a delete, too).
"""

from __future__ import annotations

from dataclasses import dataclass

from rpbook.account.controlplane import RunpodClient
from rpbook.account.pricing import worker_usd_per_hour
from rpbook.account.resources import Endpoint
from rpbook.core.errors import RpbookError
from rpbook.core.secrets import Secret, reveal_api_key
from rpbook.core.settings import Settings


@dataclass(frozen=True)
class StillRunning:
    """Workers that bill now (initializing, idle, running) and their price per hour at most, and
    the unhealthy ones, which do not bill but which Runpod keeps retrying."""

    endpoint_id: str
    billing_workers: int
    usd_per_hour: float | None
    workers_max: int
    idle_timeout_s: int | None
    unhealthy_workers: int = 0

    def __str__(self) -> str:
        stop_now = (
            f"To stop them now: rerun with scale_to_zero_on_failure = True, or call "
            f"rpbook.account.billing_now.scale_to_zero(settings, api_key, {self.endpoint_id!r}) "
            f"(runbook 02 restores workers_max {self.workers_max} on its next run)."
        )
        parts = []
        if self.billing_workers:
            price = f", up to ${self.usd_per_hour:.2f}/h" if self.usd_per_hour is not None else ""
            idle = f"{self.idle_timeout_s} s" if self.idle_timeout_s else "its idle timeout"
            parts.append(
                f"still running: {self.billing_workers} worker(s) of endpoint {self.endpoint_id}{price}, billed "
                f"(initializing or ready; ready workers stop by themselves after {idle} without requests)."
            )
        else:
            parts.append(f"no worker of endpoint {self.endpoint_id} is running now: nothing bills.")
        if self.unhealthy_workers:
            parts.append(
                f"{self.unhealthy_workers} unhealthy worker(s): not billed while unhealthy (Runpod's worker "
                "states), but Runpod retries them for up to 7 days and, if the endpoint keeps producing "
                "unhealthy workers, scales it down by itself (max workers lowered, an email sent; when is not "
                "documented). You must fix the cause above, then rerun runbook 02 (it restores max workers) "
                "and wake again."
            )
        if self.billing_workers or self.unhealthy_workers:
            parts.append(stop_now)
        return " ".join(parts)


def _client(settings: Settings, api_key: Secret | str) -> RunpodClient:
    secret = api_key if isinstance(api_key, Secret) else Secret("RUNPOD_API_KEY", reveal_api_key(api_key), "argument")
    return RunpodClient(settings, secret)


def price_per_worker_hour(client: RunpodClient, endpoint: Endpoint) -> float | None:
    """USD per hour one worker of the endpoint bills at most: the catalog's serverless price of its
    dearest pool times its GPUs per worker; None when the catalog has no price for its pools."""
    return worker_usd_per_hour(client.gpu_types(serverless_availability=False), endpoint.gpu_pools, endpoint.gpu_count)


def still_running(
    settings: Settings, api_key: Secret | str, endpoint_id: str, billing_workers: int, unhealthy_workers: int = 0
) -> StillRunning:
    """What ``billing_workers`` workers of the endpoint cost per hour at most (the dearest pool),
    and how many are unhealthy (retried by Runpod, not billed)."""
    with _client(settings, api_key) as client:
        endpoint = client.get_endpoint(endpoint_id)
        price = price_per_worker_hour(client, endpoint)
    return StillRunning(
        endpoint_id=endpoint_id,
        billing_workers=billing_workers,
        usd_per_hour=price * billing_workers if price is not None else None,
        workers_max=endpoint.workers_max,
        idle_timeout_s=endpoint.idle_timeout_s,
        unhealthy_workers=unhealthy_workers,
    )


def scale_to_zero(settings: Settings, api_key: Secret | str, endpoint_id: str) -> str:
    """Set the endpoint's workers min and max to 0 so no worker runs or restarts; say what it was."""
    with _client(settings, api_key) as client:
        before = client.get_endpoint(endpoint_id)
        client.set_workers(endpoint_id, workers_min=0, workers_max=0)
    return (
        f"endpoint {endpoint_id} scaled to zero (workers were {before.workers_min}-{before.workers_max}): its "
        f"workers stop and none restarts; runbook 02 (or 04) sets them back on its next run"
    )


def describe_after_failure(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str,
    billing_workers: int,
    scale: bool,
    *,
    unhealthy_workers: int = 0,
) -> str:
    """The sentence a failed wake ends with: scaled to zero, or what still bills and what Runpod
    and the user do about the rest."""
    try:
        if scale:
            return scale_to_zero(settings, api_key, endpoint_id)
        return str(still_running(settings, api_key, endpoint_id, billing_workers, unhealthy_workers))
    except RpbookError as exc:  # the failure report must not hide the original error
        return f"could not read what still runs on endpoint {endpoint_id} ({exc}); check the Runpod console"
