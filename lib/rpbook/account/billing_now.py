"""After a failure: what is still running on an endpoint, what it costs per hour, and the way out.

A wake-up that gives up (timeout, unhealthy workers) leaves workers behind: initializing ones go
on loading, crash-looping ones restart and bill until someone scales the endpoint to zero
(worker-vllm#29). The error must say so, with the figure, and offer the fix: ``scale_to_zero``
sets ``workers.min`` and ``workers.max`` to 0 through REST v2 (what Runpod requires before a
delete, too), and runbook 02 sets them back on its next run.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpbook.account.controlplane import RunpodClient
from rpbook.account.resources import Endpoint
from rpbook.core.errors import RpbookError
from rpbook.core.secrets import Secret, reveal_api_key
from rpbook.core.settings import Settings


@dataclass(frozen=True)
class StillRunning:
    """Workers that bill now (every state but throttled) and their price per hour at most."""

    endpoint_id: str
    billing_workers: int
    usd_per_hour: float | None
    workers_max: int
    idle_timeout_s: int | None

    def __str__(self) -> str:
        if self.billing_workers == 0:
            return f"no worker of endpoint {self.endpoint_id} is running now: nothing bills"
        price = f", up to ${self.usd_per_hour:.2f}/h" if self.usd_per_hour is not None else ""
        idle = f"{self.idle_timeout_s} s" if self.idle_timeout_s else "its idle timeout"
        return (
            f"still running: {self.billing_workers} worker(s) of endpoint {self.endpoint_id}{price}. Idle "
            f"workers stop after {idle}, but workers that crash while starting restart and bill until the "
            f"endpoint is scaled to zero: rerun with scale_to_zero_on_failure = True, or call "
            f"rpbook.account.billing_now.scale_to_zero(settings, api_key, {self.endpoint_id!r}) "
            f"(runbook 02 restores workers_max {self.workers_max} on its next run)"
        )


def _client(settings: Settings, api_key: Secret | str) -> RunpodClient:
    secret = api_key if isinstance(api_key, Secret) else Secret("RUNPOD_API_KEY", reveal_api_key(api_key), "argument")
    return RunpodClient(settings, secret)


def price_per_worker_hour(client: RunpodClient, endpoint: Endpoint) -> float | None:
    """USD per hour one worker of the endpoint bills at most: the catalog's serverless price of its
    dearest pool times its GPUs per worker; None when the catalog has no price for its pools."""
    prices = [
        g.serverless_price_hr
        for g in client.gpu_types(serverless_availability=False)
        if g.pool in endpoint.gpu_pools and g.serverless_price_hr is not None
    ]
    return max(prices) * endpoint.gpu_count if prices else None


def still_running(settings: Settings, api_key: Secret | str, endpoint_id: str, billing_workers: int) -> StillRunning:
    """What ``billing_workers`` workers of the endpoint cost per hour at most (the dearest pool)."""
    with _client(settings, api_key) as client:
        endpoint = client.get_endpoint(endpoint_id)
        price = price_per_worker_hour(client, endpoint)
    return StillRunning(
        endpoint_id=endpoint_id,
        billing_workers=billing_workers,
        usd_per_hour=price * billing_workers if price is not None else None,
        workers_max=endpoint.workers_max,
        idle_timeout_s=endpoint.idle_timeout_s,
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
    settings: Settings, api_key: Secret | str, endpoint_id: str, billing_workers: int, scale: bool
) -> str:
    """The sentence a failed wake ends with: scaled to zero, or what still runs and costs."""
    try:
        if scale:
            return scale_to_zero(settings, api_key, endpoint_id)
        return str(still_running(settings, api_key, endpoint_id, billing_workers))
    except RpbookError as exc:  # the failure report must not hide the original error
        return f"could not read what still runs on endpoint {endpoint_id} ({exc}); check the Runpod console"
