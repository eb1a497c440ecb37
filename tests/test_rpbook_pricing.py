"""rpbook's one pricing module (``rpbook.account.pricing``, issue 21 item 2 "money"): the dearest-pool
rule, the price of a worker that ran, per-second rounding, and a guard that no other module prices a
worker from the catalog by itself.

Sources: Runpod docs ``serverless/pricing.mdx`` (per second, start to full stop, rounded up) and the
REST v2 spec (``/v2/catalog/gpus`` ``price.serverless`` per GPU-hour; ``/v2/serverless/{id}/workers``
``gpuTypeId``/``gpuCount``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rpbook.account import pricing
from rpbook.account.resources import GpuType
from rpbook.core.errors import ConfigError

GPUS = [
    GpuType(id="a5000", name="A5000", pool="AMPERE_24", memory_gb=24, serverless_price_hr=0.68),
    GpuType(id="4090", name="4090", pool="ADA_24", memory_gb=24, serverless_price_hr=1.12),
    GpuType(id="a40", name="A40", pool="AMPERE_48", memory_gb=48, serverless_price_hr=None),
]
RPBOOK = Path(__file__).resolve().parent.parent / "lib" / "rpbook"


def test_dearest_pool_times_gpus_before_a_worker_exists():
    assert pricing.dearest_pool_price(GPUS, ["AMPERE_24", "ADA_24"]) == pricing.PoolPrice("ADA_24", 1.12)
    assert pricing.worker_usd_per_hour(GPUS, ["AMPERE_24", "ADA_24"], 2) == pytest.approx(2.24)
    assert pricing.worker_usd_per_hour(GPUS, ["AMPERE_48"], 1) is None
    with pytest.raises(ConfigError, match="no serverless price for AMPERE_48; check gpu_pools"):
        pricing.require_pool_price(GPUS, ["AMPERE_48"], "check gpu_pools")


def test_a_worker_that_ran_costs_its_own_gpu_else_the_dearest_pool():
    assert pricing.ran_worker_usd_per_hour(GPUS, "a5000", 2, ["AMPERE_24", "ADA_24"]) == pytest.approx(1.36)
    assert pricing.ran_worker_usd_per_hour(GPUS, "unknown", 1, ["AMPERE_24", "ADA_24"]) == pytest.approx(1.12)
    assert pricing.ran_worker_usd_per_hour(GPUS, None, 0, ["AMPERE_24"]) == pytest.approx(0.68)


def test_billed_seconds_round_up_per_worker():
    assert [pricing.billed_seconds(s) for s in (0.0, 0.2, 1.0, 1.0000000001, 59.01, -3)] == [0, 1, 1, 1, 60, 0]


def test_budget_planner_and_billing_now_share_the_rule():
    from rpbook.account.budget import worst_case
    from rpbook.account.specs import EndpointSpec
    from rpbook.planning.eventinputs import prices_from_catalog

    spec = EndpointSpec(name="e", template_name="t", gpu_pools=["AMPERE_24", "ADA_24"], gpu_count=2)
    rule = pricing.worker_usd_per_hour(GPUS, spec.gpu_pools, spec.gpu_count)
    assert worst_case(spec, GPUS).per_worker_hour == pytest.approx(rule)
    assert prices_from_catalog(GPUS, spec.gpu_pools, 2).prices.flex_usd_per_s * 3600 == pytest.approx(rule)


def test_no_other_module_prices_a_worker_from_the_catalog():
    """A grep: only pricing.py reads ``serverless_price_hr`` (resources.py defines it)."""
    readers = sorted(
        str(path.relative_to(RPBOOK))
        for path in RPBOOK.rglob("*.py")
        if re.search(r"\bserverless_price_hr\b", path.read_text(encoding="utf-8"))
    )
    assert readers == ["account/pricing.py", "account/resources.py"]
