"""The built-in GPU / data-center catalog and the scheduler's placement rule."""

from __future__ import annotations

import pytest

from localpod import catalog

# Runpod's published serverless price table ($/s per GPU); ADA_32_PRO is localpod's own estimate.
PUBLISHED_POOL_PRICES = {
    "AMPERE_16": 0.00016,
    "AMPERE_24": 0.00019,
    "ADA_24": 0.00031,
    "AMPERE_48": 0.00034,
    "ADA_48_PRO": 0.00053,
    "AMPERE_80": 0.00076,
    "ADA_80_PRO": 0.00116,
    "BLACKWELL_96": 0.00111,
    "HOPPER_141": 0.00155,
    "BLACKWELL_180": 0.00240,
}
REGIONS = {
    "NORTH_AMERICA",
    "SOUTH_AMERICA",
    "EUROPE",
    "ASIA",
    "MIDDLE_EAST",
    "AFRICA",
    "OCEANIA",
    "ANTARCTICA",
    "UNKNOWN",
}


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
    assert (
        catalog.pool_price_per_gpu_s("AMPERE_16")
        < catalog.pool_price_per_gpu_s("ADA_32_PRO")
        < catalog.pool_price_per_gpu_s("ADA_48_PRO")
    )
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
    assert (placed.gpu_type_id, placed.data_center_id) == first_stocked(
        [g.id for g in catalog.pool_gpu_types("AMPERE_48")], allowed
    )


def test_placement_without_capacity_or_with_unknown_pools_is_none() -> None:
    assert catalog.place_worker([], [], []) is None
    assert catalog.place_worker(["NOT_A_POOL"], [], []) is None
    assert catalog.place_worker(["BLACKWELL_180"], [], ["EU-RO-1", "AP-JP-1"]) is None


# -- CUDA versions hosts report (stand-in data: deliberately not 13.0 everywhere) ---------------


def hosts_with(pool: str, version: str) -> list[str]:
    """Data centers with a host of the pool reporting exactly ``version``."""
    return [
        dc.id
        for dc in catalog.data_centers()
        if any(version in catalog.host_cuda_versions(dc, g.id) for g in catalog.pool_gpu_types(pool))
    ]


def test_host_cuda_versions_stay_within_what_the_card_supports() -> None:
    for dc in catalog.data_centers():
        for gpu in catalog.gpu_types():
            versions = catalog.host_cuda_versions(dc, gpu.id)
            if gpu.id not in dc.gpu_stock:
                assert versions == ()
                continue
            assert set(versions) <= set(gpu.cuda_versions)
            assert list(versions) == sorted(versions, key=catalog.cuda_version_key)
    assert catalog.host_cuda_versions(catalog.data_center("EU-RO-1"), "AMD Instinct MI300X OAM") == ()
    assert "13.0" not in catalog.host_cuda_versions(catalog.data_center("US-IL-1"), "Tesla V100-SXM2-32GB")


def test_cuda_13_is_not_offered_everywhere() -> None:
    without = [
        dc.id
        for dc in catalog.data_centers()
        if not any("13.0" in catalog.host_cuda_versions(dc, gpu) for gpu in dc.gpu_stock)
    ]
    # EU-CZ-1 has no 13.0 host either: all its hosts already run 13.1 or 13.2.
    assert set(without) == {"EU-SE-1", "US-IL-1", "AP-JP-1", "OC-AU-1", "EU-CZ-1"}
    # US-TX-3 stocks AMPERE_24 and ADA_24, but only its ADA_24 hosts run 13.0 drivers.
    assert "US-TX-3" in catalog.data_centers_offering_pool("AMPERE_24")
    assert "US-TX-3" not in hosts_with("AMPERE_24", "13.0") and "US-TX-3" in hosts_with("ADA_24", "13.0")
    for pool in ("AMPERE_16", "AMPERE_24", "ADA_24", "AMPERE_80", "ADA_80_PRO"):
        assert hosts_with(pool, "13.0"), f"no data center offers CUDA 13.0 for {pool}"


def test_some_hosts_run_newer_cuda_and_one_data_center_only_newer() -> None:
    """Hosts move past 13.0 (the data is invented, see the catalog's docstring): an exact set
    ``["13.0"]`` finds no host in EU-CZ-1, a floor of 13.0 finds its 13.2 hosts."""
    czech = catalog.data_center("EU-CZ-1")
    assert czech is not None
    assert {v for gpu in czech.gpu_stock for v in catalog.host_cuda_versions(czech, gpu)} == {"13.1", "13.2"}
    assert "13.2" in catalog.host_cuda_versions(catalog.data_center("US-KS-2"), "NVIDIA GeForce RTX 4090")
    assert catalog.place_worker(["ADA_24"], [], ["EU-CZ-1"], ["13.0"]) is None
    newer = catalog.place_worker(["ADA_24"], [], ["EU-CZ-1"], min_cuda="13.0")
    assert newer is not None and (newer.data_center_id, newer.cuda_version) == ("EU-CZ-1", "13.2")


def test_cuda_filter_is_exact_or_a_numeric_floor() -> None:
    versions = ["12.2", "12.4", "12.8", "12.11", "13.0"]
    assert catalog.cuda_filter(versions) == versions
    assert catalog.cuda_filter(versions, ["13.0", "12.4"]) == ["12.4", "13.0"]
    assert catalog.cuda_filter(versions, minimum="12.8") == ["12.8", "12.11", "13.0"]  # 12.11 > 12.8
    assert catalog.cuda_filter(versions, minimum="13") == ["13.0"]


def test_placement_honours_the_cuda_filter() -> None:
    pools = ["AMPERE_24", "ADA_24"]
    # No filter: the first data center stocking the first type, on its newest host.
    plain = catalog.place_worker(pools, [], ["US-TX-3"])
    assert plain is not None and (plain.gpu_type_id, plain.cuda_version) == ("NVIDIA RTX A5000", "12.8")
    # allowedCudaVersions ["13.0"]: AMPERE_24 in US-TX-3 has no such host, so ADA_24 is used.
    cuda13 = catalog.place_worker(pools, [], ["US-TX-3"], ["13.0"])
    assert cuda13 is not None and (cuda13.gpu_type_id, cuda13.data_center_id, cuda13.cuda_version) == (
        "NVIDIA GeForce RTX 4090",
        "US-TX-3",
        "13.0",
    )
    assert catalog.place_worker(pools, [], ["US-IL-1"], ["13.0"]) is None  # nothing matches: THROTTLED
    assert catalog.place_worker(pools, [], ["US-IL-1"], min_cuda="13.0") is None
    floor = catalog.place_worker(pools, [], ["US-IL-1"], min_cuda="12.4")
    assert floor is not None and floor.cuda_version == "12.8"
    exact = catalog.place_worker(pools, [], ["US-IL-1"], ["12.4"])
    assert exact is not None and exact.cuda_version == "12.4"


def test_image_cuda_table() -> None:
    from localpod.serverless.imagecuda import image_min_cuda

    vllm = image_min_cuda("runpod/worker-v1-vllm:v2.25.2")
    assert vllm is not None and vllm.min_cuda == "13.0" and "hub.json" in vllm.source
    assert image_min_cuda("runpod/worker-v1-vllm:v2.19.0").min_cuda == "13.0"
    assert image_min_cuda("runpod/worker-v1-vllm:v2.18.1").min_cuda == "12.8"
    assert image_min_cuda("runpod/worker-infinity-embedding:1.1.4").min_cuda == "12.4"
    for unknown in (
        "runpod/worker-v1-vllm:v2.99.0",
        "runpod/worker-v1-vllm:latest",
        "runpod/mock-worker:latest",
        "worker-v1-vllm:v2.25.2",
        "v2.25.2",
    ):
        assert image_min_cuda(unknown) is None, unknown
