"""The budget guard's arithmetic against catalog prices (rpbook.account.budget)."""

from __future__ import annotations

import pytest

from rpbook.account.budget import HOURS_PER_MONTH, check_max_hourly, worst_case
from rpbook.account.resources import GpuType
from rpbook.account.specs import EndpointSpec
from rpbook.core.errors import ConfigError

GPUS = [
    GpuType(id="a5000", name="A5000", pool="AMPERE_24", memory_gb=24, serverless_price_hr=0.68),
    GpuType(id="4090", name="4090", pool="ADA_24", memory_gb=24, serverless_price_hr=1.12),
    GpuType(id="a40", name="A40", pool="AMPERE_48", memory_gb=48, serverless_price_hr=None),
]


def spec(**overrides: object) -> EndpointSpec:
    return EndpointSpec(**({"name": "e", "template_name": "t", "gpu_pools": ["AMPERE_24", "ADA_24"]} | overrides))


def test_the_dearest_pool_and_every_worker_count() -> None:
    worst = worst_case(spec(workers_max=5, gpu_count=2), GPUS)
    assert worst.pool == "ADA_24" and worst.usd_per_hour == pytest.approx(5 * 2 * 1.12)
    assert worst.usd_per_month == pytest.approx(5 * 2 * 1.12 * HOURS_PER_MONTH)
    assert worst.floor_usd_per_month == 0  # no active worker, no volume: nothing bills without traffic


def test_active_workers_and_the_volume_are_the_floor() -> None:
    worst = worst_case(spec(workers_min=1, workers_max=3), GPUS, volume_usd_per_month=3.15)
    assert worst.floor_usd_per_month == pytest.approx(1.12 * HOURS_PER_MONTH + 3.15)
    assert worst.usd_per_hour == pytest.approx(3 * 1.12 + 3.15 / HOURS_PER_MONTH)
    assert "1 active" in worst.describe() and "volume $3.15/month" in worst.describe()


def test_within_names_the_setting_and_the_figure() -> None:
    worst = worst_case(spec(workers_max=5), GPUS)
    assert worst.within(10) is None
    assert "lower workers_max to 2" in (worst.within(3) or "")
    assert "choose a cheaper GPU pool" in (worst.within(1) or "")


def test_unpriced_pools_and_bad_ceilings_are_refused() -> None:
    with pytest.raises(ConfigError, match="no serverless price"):
        worst_case(spec(gpu_pools=["AMPERE_48"]), GPUS)
    for bad in (0, -1, float("nan"), float("inf"), True, "10"):
        with pytest.raises(ConfigError, match="max_hourly_usd"):
            check_max_hourly(bad)  # type: ignore[arg-type]
