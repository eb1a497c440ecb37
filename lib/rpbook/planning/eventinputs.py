"""What runbook 06 gathers before it simulates: the endpoint's facts, prices, the load test, localpod's profile.

**Prices** come from where rpbook's budget guard and failure report take them
(``rpbook.account.budget``, ``rpbook.account.billing_now``): the catalog's serverless price of the endpoint's
dearest pool × GPUs per worker. Active workers are priced at the flex rate too (Runpod's active
discount is not in the catalog; "discounts available through sales inquiry", docs
serverless/pricing): an upper bound, unless ``active_discount`` is given.

The endpoint's pools, GPUs, concurrency, execution timeout and FlashBoot are read from the endpoint
when it exists, else taken from the runbook's parameters (the ones runbook 02 creates it with).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbook.account.controlplane import RunpodClient
from rpbook.account.pricing import require_pool_price
from rpbook.account.quota import PlannedMax, QuotaCheck, account_quota, check_quota
from rpbook.account.resources import Endpoint, GpuType
from rpbook.core.errors import ConfigError
from rpbook.core.secrets import Secret
from rpbook.planning.capacity import Prices


@dataclass(frozen=True)
class PriceQuote:
    """What one worker costs, and where the figure comes from."""

    prices: Prices
    pool: str
    usd_per_gpu_hour: float
    gpu_count: int
    active_discount: float

    def describe(self) -> str:
        per_hour = self.prices.flex_usd_per_s * 3600
        active = (
            "at the flex price (an upper bound: Runpod's active discount is not in the catalog)"
            if not self.active_discount
            else f"{self.active_discount:.0%} below the flex price (as given)"
        )
        return (
            f"one worker: {self.gpu_count} GPU × ${self.usd_per_gpu_hour:.2f}/h ({self.pool}, the dearest of the "
            f"endpoint's pools in the catalog) = ${per_hour:.2f}/h; active workers {active}"
        )


def prices_from_catalog(
    gpu_types: Sequence[GpuType], gpu_pools: Sequence[str], gpu_count: int = 1, *, active_discount: float = 0.0
) -> PriceQuote:
    """Prices by ``rpbook.account.pricing``'s rule, as the budget guard takes them: the dearest of the
    pools' serverless prices (``GET /v2/catalog/gpus``, ``price.serverless``) × GPUs per worker."""
    if not 0 <= active_discount < 1:
        raise ConfigError(f"active_discount must be in [0, 1), got {active_discount}")
    price = require_pool_price(gpu_types, gpu_pools, "check gpu_pools")
    flex = price.usd_per_gpu_hour * gpu_count / 3600
    return PriceQuote(
        Prices(flex_usd_per_s=flex, active_usd_per_s=flex * (1 - active_discount)),
        price.pool,
        price.usd_per_gpu_hour,
        gpu_count,
        active_discount,
    )


def client_prices(
    client: RunpodClient, gpu_pools: Sequence[str], gpu_count: int = 1, *, active_discount: float = 0.0
) -> PriceQuote:
    """:func:`prices_from_catalog` with the catalog read through ``client``."""
    return prices_from_catalog(
        client.gpu_types(serverless_availability=False), gpu_pools, gpu_count, active_discount=active_discount
    )


@dataclass(frozen=True)
class EndpointFacts:
    """What the simulation needs from the endpoint: read from it when it exists, else the
    runbook's parameters (the same ones runbook 02 creates it with)."""

    endpoint: Endpoint | None
    gpu_pools: tuple[str, ...]
    gpu_count: int
    concurrency: int
    execution_timeout_s: float
    flashboot: bool

    def describe(self) -> str:
        where = (
            f"endpoint {self.endpoint.name} ({self.endpoint.id}) as it is now"
            if self.endpoint is not None
            else "the parameters (the endpoint does not exist yet)"
        )
        return (
            f"from {where}: pools {', '.join(self.gpu_pools)}, {self.gpu_count} GPU per worker, "
            f"{self.concurrency} requests per worker at once, execution timeout {self.execution_timeout_s:g} s, "
            f"FlashBoot {'on' if self.flashboot else 'off'}"
        )


def endpoint_facts(
    client: RunpodClient,
    endpoint_name: str,
    *,
    gpu_pools: Sequence[str],
    gpu_count: int,
    max_concurrency: int,
    execution_timeout_s: float,
    flashboot: bool,
) -> EndpointFacts:
    """The endpoint's pools, GPUs, concurrency (``MAX_CONCURRENCY`` / ``RUNPOD_MAX_CONCURRENCY`` in
    its env), execution timeout and FlashBoot; the given values when it does not exist."""
    named = [e for e in client.list_endpoints() if e.name == endpoint_name]
    if len(named) > 1:
        raise ConfigError(
            f"{len(named)} endpoints are named {endpoint_name!r}; rename all but one (runbook 99 lists them)"
        )
    if not named:
        return EndpointFacts(None, tuple(gpu_pools), gpu_count, max_concurrency, float(execution_timeout_s), flashboot)
    endpoint = client.get_endpoint(named[0].id)
    env = endpoint.env or {}
    raw = env.get("RUNPOD_MAX_CONCURRENCY") or env.get("MAX_CONCURRENCY")
    try:
        concurrency = int(str(raw)) if raw else max_concurrency
    except ValueError:
        concurrency = max_concurrency
    return EndpointFacts(
        endpoint,
        tuple(endpoint.gpu_pools) or tuple(gpu_pools),
        endpoint.gpu_count or gpu_count,
        concurrency,
        endpoint.timeout_ms / 1000 if endpoint.timeout_ms else float(execution_timeout_s),
        endpoint.flashboot_enabled,
    )


def find_loadtest(path: str = "", run_dir: str | Path | None = None) -> Path | None:
    """Runbook 05's load-test result: ``path`` when given (it must exist), else
    ``05_loadtest.json`` in this run's folder (``rpbook.records.figures.figures_dir``), else None."""
    from rpbook.records.figures import figures_dir

    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(
                f"loadtest_json {file} does not exist; give runbook 05's 05_loadtest.json or leave it "
                "empty to use this run's or the priors"
            )
        return file
    candidate = figures_dir(run_dir) / "05_loadtest.json"
    return candidate if candidate.is_file() else None


def local_profile(settings: Any, api_key: Any) -> dict[str, float] | None:
    """localpod's timing profile (``GET /_localpod/config``) on the local target, so that the plan
    uses the cold starts localpod will really play; None on Runpod."""
    if getattr(settings, "target", "") != "local" or not getattr(settings, "localpod_url", None):
        return None
    import httpx

    from rpbook.core.secrets import Secret, reveal_api_key

    key = api_key.reveal() if isinstance(api_key, Secret) else reveal_api_key(api_key)
    try:
        response = httpx.get(
            f"{settings.localpod_url}/_localpod/config", timeout=10, headers={"Authorization": f"Bearer {key}"}
        )
        response.raise_for_status()
        profile = response.json()["profile"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"could not read localpod's profile at {settings.localpod_url}: {type(exc).__name__}"
        ) from None
    return {k: float(v) for k, v in profile.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def quota_checker(
    client: RunpodClient, api_key: Secret, endpoint_name: str, account_max_workers: int | None = None
) -> Callable[[int], QuotaCheck]:
    """A check of one grid max against the account's worker quota, for ``eventchoice.plan(quota=...)``:
    the quota in force (``account_max_workers``, else the balance: ``rpbook.account.quota``) and the
    account's endpoints are read once; each candidate max is then the planned change of
    ``endpoint_name`` (its parameter: ``grid_workers_max``)."""
    quota = account_quota(client.settings, api_key, account_max_workers)
    endpoints = client.list_endpoints()
    return lambda workers_max: check_quota(
        quota, endpoints, [PlannedMax(endpoint_name, workers_max, "grid_workers_max")]
    )
