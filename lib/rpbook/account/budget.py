"""The budget guard: the most an endpoint (and its volume) can cost, before anything is created.

Serverless bills a worker per second from start to stop. The worst case is every worker running
at once: ``workers_max × gpu_count × price``, per hour; a month of it is 730 hours. Active workers
(``workers_min``) bill all the time, so they are the floor even with no traffic. Prices come from
the catalog (REST v2 ``/v2/catalog/gpus``, ``price.serverless``: the pool's flex list price per GPU
per hour); an endpoint may run on any of its pools, so the dearest one counts. Runpod bills active
workers at a discount of up to 30 % (docs: serverless pricing), which the catalog does not give:
rpbook counts them at the flex price, an upper bound. A network volume bills storage per GB-month
(``rpbook.account.plans.volume_monthly_cost_usd``) whether or not a worker runs.

``max_hourly_usd`` is the team's own ceiling per endpoint (Runpod's guard is account-wide: $80/h
by default): a worst case above it is refused before the first write, naming the figure and the
setting that drives it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rpbook.account.pricing import require_pool_price
from rpbook.account.resources import GpuType
from rpbook.account.specs import EndpointSpec
from rpbook.core.errors import ConfigError

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class WorstCase:
    """What one endpoint can cost: per hour at full scale, and its floor (active workers, volume)."""

    endpoint: str
    workers_max: int
    workers_min: int
    gpu_count: int
    pool: str
    """The dearest of the endpoint's pools, whose price is used."""
    usd_per_gpu_hour: float
    volume_usd_per_month: float = 0.0

    @property
    def per_worker_hour(self) -> float:
        return self.gpu_count * self.usd_per_gpu_hour

    @property
    def usd_per_hour(self) -> float:
        """Every worker busy at once, plus the volume's storage by the hour."""
        return self.workers_max * self.per_worker_hour + self.volume_usd_per_month / HOURS_PER_MONTH

    @property
    def usd_per_month(self) -> float:
        return self.usd_per_hour * HOURS_PER_MONTH

    @property
    def floor_usd_per_month(self) -> float:
        """Billed with no traffic at all: active workers around the clock, and the volume."""
        return self.workers_min * self.per_worker_hour * HOURS_PER_MONTH + self.volume_usd_per_month

    def describe(self) -> str:
        volume = f" + volume ${self.volume_usd_per_month:,.2f}/month" if self.volume_usd_per_month else ""
        return (
            f"{self.workers_max} workers × {self.gpu_count} GPU × ${self.usd_per_gpu_hour:.2f}/h ({self.pool})"
            f"{volume} = ${self.usd_per_hour:,.2f}/h, ${self.usd_per_month:,.0f}/month at most; "
            f"with no traffic ${self.floor_usd_per_month:,.2f}/month ({self.workers_min} active)"
        )

    def within(
        self, max_hourly_usd: float, *, ceiling: str = "max_hourly_usd", or_else: str = "or raise max_hourly_usd"
    ) -> str | None:
        """None when the worst case fits ``max_hourly_usd``; else what to change, with the figure.
        ``ceiling`` names the limit in the message and ``or_else`` the other way out."""
        if self.usd_per_hour <= max_hourly_usd:
            return None
        storage = self.volume_usd_per_month / HOURS_PER_MONTH
        fit = math.floor((max_hourly_usd - storage) / self.per_worker_hour) if self.per_worker_hour else 0
        fix = (
            f"lower workers_max to {fit}"
            if fit >= 1
            else f"choose a cheaper GPU pool or fewer GPUs per worker (one worker alone costs "
            f"${self.per_worker_hour:.2f}/h)"
        )
        return (
            f"the worst case ${self.usd_per_hour:,.2f}/h ({self.workers_max} workers × {self.gpu_count} GPU × "
            f"${self.usd_per_gpu_hour:.2f}/h on {self.pool}) is above {ceiling} ${max_hourly_usd:,.2f}: "
            f"{fix}, {or_else}"
        )


def worst_case(spec: EndpointSpec, gpu_types: Sequence[GpuType], volume_usd_per_month: float = 0.0) -> WorstCase:
    """The endpoint's worst case from the catalog's prices for its pools."""
    price = require_pool_price(gpu_types, spec.gpu_pools, "cannot bound the cost (check gpu_pools)")
    return WorstCase(
        endpoint=spec.name,
        workers_max=spec.workers_max,
        workers_min=spec.workers_min,
        gpu_count=spec.gpu_count,
        pool=price.pool,
        usd_per_gpu_hour=price.usd_per_gpu_hour,
        volume_usd_per_month=volume_usd_per_month,
    )


def check_max_hourly(value: float) -> float:
    """``max_hourly_usd`` as a positive finite number of dollars per hour."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"max_hourly_usd must be a positive number of US dollars per hour, got {value!r}")
    return float(value)
