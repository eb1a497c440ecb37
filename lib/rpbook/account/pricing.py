"""What a serverless worker costs: the one place rpbook turns catalog prices into dollars.

Sources: Runpod's docs (``serverless/pricing.mdx``) bill a serverless worker per second, from start
until it is fully stopped, at its GPU's serverless price times the GPUs it holds; the REST v2
catalog (``GET /v2/catalog/gpus``, ``price.serverless``) gives that price per GPU per hour, and
``GET /v2/serverless/{id}/workers`` gives each running worker's ``gpuTypeId`` and ``gpuCount``.

Two rules, used by the budget guard, the event planner, "what still runs" after a failure and the
cost receipt:

- **before a worker exists** (a worst case, a plan, an hourly figure): an endpoint may place a worker
  on any GPU of any of its pools, so the **dearest pool's price × GPUs per worker** counts;
- **for a worker that ran** (a run's own cost): the price of the GPU type it got × its GPUs, and the
  dearest-pool rule when the catalog does not price its type.

Per-second rounding: Runpod rounds each worker's billed life up to a whole second
(``billed_seconds``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rpbook.account.resources import GpuType
from rpbook.core.errors import ConfigError


@dataclass(frozen=True)
class PoolPrice:
    """The dearest pool of an endpoint's pools and its serverless price per GPU per hour."""

    pool: str
    usd_per_gpu_hour: float


def dearest_pool_price(gpu_types: Sequence[GpuType], gpu_pools: Sequence[str]) -> PoolPrice | None:
    """The dearest serverless price among ``gpu_pools`` in the catalog; None when none is priced."""
    priced = [
        (float(g.serverless_price_hr), str(g.pool))
        for g in gpu_types
        if g.pool in gpu_pools and g.serverless_price_hr is not None
    ]
    if not priced:
        return None
    price, pool = max(priced)
    return PoolPrice(pool, price)


def require_pool_price(gpu_types: Sequence[GpuType], gpu_pools: Sequence[str], why: str) -> PoolPrice:
    """:func:`dearest_pool_price`, or a ``ConfigError`` naming the pools and what could not be done."""
    found = dearest_pool_price(gpu_types, gpu_pools)
    if found is None:
        raise ConfigError(f"the catalog gives no serverless price for {', '.join(gpu_pools)}; {why}")
    return found


def worker_usd_per_hour(gpu_types: Sequence[GpuType], gpu_pools: Sequence[str], gpu_count: int) -> float | None:
    """The most one worker of an endpoint bills per hour: dearest pool price × GPUs per worker."""
    found = dearest_pool_price(gpu_types, gpu_pools)
    return None if found is None else found.usd_per_gpu_hour * gpu_count


def ran_worker_usd_per_hour(
    gpu_types: Sequence[GpuType], gpu_type_id: str | None, gpu_count: int, gpu_pools: Sequence[str]
) -> float | None:
    """What a worker that ran bills per hour: its GPU type's price × its GPUs, else the dearest pool's."""
    for gpu in gpu_types:
        if gpu_type_id and gpu.id == gpu_type_id and gpu.serverless_price_hr is not None:
            return float(gpu.serverless_price_hr) * max(1, gpu_count)
    return worker_usd_per_hour(gpu_types, gpu_pools, max(1, gpu_count))


def billed_seconds(seconds: float) -> int:
    """A worker's billed life in whole seconds, rounded up as Runpod bills (float noise absorbed)."""
    return math.ceil(round(max(0.0, seconds), 6))
