"""The built-in GPU / data-center catalog and the scheduler's placement rule."""

from __future__ import annotations

import pytest

from localpod import catalog

# Runpod's published serverless price table ($/s per GPU); ADA_32_PRO is localpod's own estimate.
PUBLISHED_POOL_PRICES = {
    "AMPERE_16": 0.00016, "AMPERE_24": 0.00019, "ADA_24": 0.00031, "AMPERE_48": 0.00034, "ADA_48_PRO": 0.00053,
    "AMPERE_80": 0.00076, "ADA_80_PRO": 0.00116, "BLACKWELL_96": 0.00111, "HOPPER_141": 0.00155,
    "BLACKWELL_180": 0.00240,
}
REGIONS = {"NORTH_AMERICA", "SOUTH_AMERICA", "EUROPE", "ASIA", "MIDDLE_EAST", "AFRICA", "OCEANIA", "ANTARCTICA",
           "UNKNOWN"}


def first_stocked(gpu_ids: list[str], allowed_dcs: set[str] | None = None) -> tuple[str, str] | None:
    """Reference reading of the placement rule: first type (in the given order), first DC with stock."""
    for gpu_id in gpu_ids:
        for dc in catalog.data_centers():
            if (not allowed_dcs or dc.id in allowed_dcs) and gpu_id in dc.gpu_stock:
                return gpu_id, dc.id
    return None


def test_catalog_shape_is_consistent() -> None:
    gpus = catalog.gpu_types()
    assert len(gpus) >= 20
    assert len({g.id for g in gpus}) == len(gpus)
    for gpu in gpus:
        assert gpu.pool is None or gpu.pool in catalog.pool_ids()
        assert catalog.gpu_type(gpu.id) is gpu
        assert gpu.secure or gpu.community
        assert gpu.manufacturer in {"NVIDIA", "AMD"}
        if gpu.pool is not None:
            assert gpu.memory_gb >= catalog.pool_memory_gb(gpu.pool)
    for pool in catalog.pool_ids():
        assert catalog.pool_gpu_types(pool), f"pool {pool} has no GPU type"
    centers = catalog.data_centers()
    assert len(centers) >= 12
    stocked = {gpu_id for dc in centers for gpu_id in dc.gpu_stock}
    assert stocked <= {g.id for g in gpus}
    for dc in centers:
        assert catalog.data_center(dc.id) is dc
        assert dc.region in REGIONS
        assert set(dc.volume_types) <= {"STANDARD", "HIGH_PERFORMANCE"}
        assert set(dc.gpu_stock.values()) <= {"LOW", "MEDIUM", "HIGH"}
    assert catalog.gpu_type("NVIDIA GeForce RTX 9999") is None
    assert catalog.data_center("MARS-1") is None


@pytest.mark.parametrize("pool,price", sorted(PUBLISHED_POOL_PRICES.items()))
def test_pool_prices_match_published_table(pool: str, price: float) -> None:
    assert catalog.pool_price_per_gpu_s(pool) == price
    for gpu in catalog.pool_gpu_types(pool):
        assert catalog.serverless_price_per_gpu_s(gpu.id) == price


def test_pool_lookups_refuse_unknown_pools() -> None:
    assert catalog.pool_memory_gb("ADA_24") == 24
    assert catalog.pool_memory_gb("HOPPER_141") == 141
    assert catalog.pool_price_per_gpu_s("AMPERE_16") < catalog.pool_price_per_gpu_s("ADA_32_PRO") \
        < catalog.pool_price_per_gpu_s("ADA_48_PRO")
    with pytest.raises(KeyError):
        catalog.pool_memory_gb("AMPERE_12")
    with pytest.raises(KeyError):
        catalog.pool_price_per_gpu_s("AMPERE_12")
    assert catalog.serverless_price_per_gpu_s("AMD Instinct MI300X OAM") is None  # in no pool
    assert catalog.serverless_price_per_gpu_s("no such gpu") is None


def test_stock_is_uneven_so_data_center_choice_matters() -> None:
    assert "US-CA-2" not in catalog.data_centers_offering_pool("AMPERE_16")
    hopper = catalog.data_centers_offering_pool("HOPPER_141")
    assert 0 < len(hopper) <= 3
    for pool in catalog.pool_ids():
        offering = catalog.data_centers_offering_pool(pool)
        members = {g.id for g in catalog.pool_gpu_types(pool)}
        assert offering == [dc.id for dc in catalog.data_centers() if members & set(dc.gpu_stock)]
    assert any(not dc.volume_types for dc in catalog.data_centers()), "some DC should lack network storage"


def test_country_codes_come_from_ids() -> None:
    assert catalog.country_code("EU-RO-1") == "RO"
    assert catalog.country_code("EUR-IS-1") == "IS"
    assert catalog.country_code("US-TX-3") == "US"
    assert catalog.country_code("CA-MTL-1") == "CA"
    assert catalog.country_code("AP-JP-1") == "JP"


def test_placement_is_deterministic_and_follows_catalog_order() -> None:
    first = catalog.place_worker(["AMPERE_16"], [], [])
    assert first is not None
    assert first == catalog.place_worker(["AMPERE_16"], [], [])
    pool_types = [g.id for g in catalog.pool_gpu_types("AMPERE_16")]
    assert (first.gpu_type_id, first.data_center_id) == first_stocked(pool_types)
    assert first.price_per_gpu_s == catalog.pool_price_per_gpu_s("AMPERE_16")
    assert catalog.gpu_type(first.gpu_type_id).pool == "AMPERE_16"


def test_placement_tries_pools_in_the_given_order() -> None:
    hopper_first = catalog.place_worker(["HOPPER_141", "AMPERE_16"], [], [])
    assert hopper_first is not None and hopper_first.gpu_type_id == "NVIDIA H200"
    assert hopper_first.price_per_gpu_s == catalog.pool_price_per_gpu_s("HOPPER_141")
    ampere_first = catalog.place_worker(["AMPERE_16", "HOPPER_141"], [], [])
    assert ampere_first is not None and catalog.gpu_type(ampere_first.gpu_type_id).pool == "AMPERE_16"


def test_placement_skips_excluded_types() -> None:
    pool_types = [g.id for g in catalog.pool_gpu_types("ADA_48_PRO")]
    first = catalog.place_worker(["ADA_48_PRO"], [], [])
    assert first is not None
    second = catalog.place_worker(["ADA_48_PRO"], [first.gpu_type_id], [])
    assert second is not None and second.gpu_type_id != first.gpu_type_id
    remaining = [t for t in pool_types if t != first.gpu_type_id]
    assert (second.gpu_type_id, second.data_center_id) == first_stocked(remaining)
    assert catalog.place_worker(["ADA_48_PRO"], pool_types, []) is None


def test_placement_respects_allowed_data_centers() -> None:
    # US-CA-2 stocks no AMPERE_16 card: a worker pinned there cannot be placed (THROTTLED).
    assert catalog.place_worker(["AMPERE_16"], [], ["US-CA-2"]) is None
    fallback = catalog.place_worker(["AMPERE_16", "ADA_24"], [], ["US-CA-2"])
    assert fallback is not None
    assert (fallback.gpu_type_id, fallback.data_center_id) == ("NVIDIA GeForce RTX 4090", "US-CA-2")
    assert fallback.price_per_gpu_s == catalog.pool_price_per_gpu_s("ADA_24")
    allowed = {"EU-SE-1", "CA-MTL-1"}
    placed = catalog.place_worker(["AMPERE_48"], [], sorted(allowed))
    assert placed is not None and placed.data_center_id in allowed
    assert (placed.gpu_type_id, placed.data_center_id) == \
        first_stocked([g.id for g in catalog.pool_gpu_types("AMPERE_48")], allowed)


def test_placement_without_capacity_or_with_unknown_pools_is_none() -> None:
    assert catalog.place_worker([], [], []) is None
    assert catalog.place_worker(["NOT_A_POOL"], [], []) is None
    assert catalog.place_worker(["BLACKWELL_180"], [], ["EU-RO-1", "AP-JP-1"]) is None
