"""Built-in GPU and data-center catalog, and deterministic worker placement.

Runpod's control plane answers "which GPUs exist, what do they cost, where are they in stock"
(REST v2 ``/v2/catalog/*``, GraphQL ``gpuTypes``) and the serverless scheduler places each
worker on the first pool / GPU type / data center with capacity. localpod needs both so that a
runbook meets the same constraints it will meet on Runpod, in particular that a network volume
pins an endpoint to the volume's data center, and that data center must stock the endpoint's GPU
pool or the workers stay THROTTLED.

The numbers are a **snapshot of public list prices and plausible stock, not live data**:

- serverless prices ($/s per GPU, per pool) are Runpod's published serverless pricing table
  (``docs.runpod.io`` ``serverless-gpu-pricing-table``) except ``ADA_32_PRO``, for which no
  figure was published; 0.00044 is a plausible value between ``ADA_24`` and ``ADA_48_PRO``;
- hourly pod prices (secure / community cloud) are rounded list prices of the same period;
- GPU type ids and data-center ids are Runpod's real ids, pool membership follows
  ``docs.runpod.io/references/gpu-types``;
- per-data-center stock is invented but deliberately uneven: ``US-CA-2`` has no ``AMPERE_16``
  card, ``HOPPER_141`` (H200) is only in three data centers, ``BLACKWELL_180`` (B200) in two,
  and ``OC-AU-1`` offers no network-volume storage at all;
- the CUDA versions hosts report (their driver's CUDA version, what ``gpu.allowedCudaVersions``
  matches exactly and ``cudaVersions`` in ``/v2/catalog/gpus?include=AVAILABILITY`` lists) are
  invented too, per data center and GPU type, and also deliberately uneven: not every data center
  has upgraded every fleet to 13.0 drivers. ``EU-SE-1``, ``US-IL-1``, ``AP-JP-1`` and ``OC-AU-1``
  have no 13.0 host at all, ``US-TX-3``'s ``AMPERE_24`` hosts and ``EU-RO-1``'s A100 SXM hosts stop
  at 12.8, ``CA-MTL-1`` has 13.0 only on its L40S / RTX 6000 Ada hosts. A card never reports more
  than its type supports (``GpuType.cuda_versions``: Volta stops at 12.4, Blackwell starts at 12.8).
  Hosts move on, too: ``US-KS-2`` also runs 13.1 and 13.2 drivers, and ``EU-CZ-1`` (a newly built
  data center) has *only* 13.1 and 13.2 hosts, so an endpoint whose exact set is ``["13.0"]`` (the
  spec: ``allowedCudaVersions`` "Matching is exact") gets no worker there, while a floor
  (``minCudaVersion`` 13.0, what Runpod's docs advise: "your required version plus all newer
  versions", ``serverless/endpoints/endpoint-configurations.mdx``) does.
  So a ``runpod/worker-v1-vllm`` image that needs 13.0 (its ``.runpod/hub.json``) meets the same
  question it meets on Runpod: which pools, in which data center, offer it.

Order matters: placement walks GPU types and data centers in the order they are listed here, so
results are reproducible run to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class GpuType:
    """One GPU model as the catalog shows it; ``pool`` is its serverless pool id (or None)."""

    id: str
    name: str
    pool: str | None
    manufacturer: str
    memory_gb: int
    secure: bool
    community: bool
    price_secure_hr: float
    price_community_hr: float
    max_count_secure: int
    max_count_community: int
    cuda_versions: tuple[str, ...]


@dataclass(frozen=True)
class DataCenter:
    """One data center; ``gpu_stock`` maps GPU type id to LOW/MEDIUM/HIGH (absent = not offered).

    ``cuda_fleet`` is the CUDA versions its hosts report, oldest first; ``cuda_by_gpu`` overrides
    it for GPU types whose hosts run other drivers. Read it through :func:`host_cuda_versions`."""

    id: str
    name: str
    region: str
    volume_types: tuple[str, ...]
    compliance: tuple[str, ...]
    global_network: bool
    gpu_stock: Mapping[str, str]
    cuda_fleet: tuple[str, ...] = ()
    cuda_by_gpu: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Placement:
    """Where the scheduler put a worker and what it costs per GPU-second."""

    gpu_type_id: str
    data_center_id: str
    price_per_gpu_s: float
    cuda_version: str | None = None
    """The CUDA version the chosen host reports (None: the card reports none, e.g. AMD)."""


# -- serverless pools ------------------------------------------------------------------------

_POOLS: dict[str, tuple[int, float]] = {
    # pool id: (VRAM GB, serverless $/s per GPU)
    "AMPERE_16": (16, 0.00016),
    "AMPERE_24": (24, 0.00019),
    "ADA_24": (24, 0.00031),
    "ADA_32_PRO": (32, 0.00044),  # not published; plausible value between ADA_24 and ADA_48_PRO
    "AMPERE_48": (48, 0.00034),
    "ADA_48_PRO": (48, 0.00053),
    "AMPERE_80": (80, 0.00076),
    "ADA_80_PRO": (80, 0.00116),
    "BLACKWELL_96": (96, 0.00111),
    "HOPPER_141": (141, 0.00155),
    "BLACKWELL_180": (180, 0.00240),
}

# -- GPU types -----------------------------------------------------------------------------

_CUDA_AMPERE = ("11.8", "12.0", "12.1", "12.2", "12.4", "12.6", "12.8", "12.9", "13.0", "13.1", "13.2")
_CUDA_ADA = ("11.8", "12.0", "12.1", "12.2", "12.4", "12.6", "12.8", "12.9", "13.0", "13.1", "13.2")
_CUDA_HOPPER = ("12.0", "12.1", "12.2", "12.4", "12.6", "12.8", "12.9", "13.0", "13.1", "13.2")
_CUDA_BLACKWELL = ("12.8", "12.9", "13.0", "13.1", "13.2")
_CUDA_VOLTA = ("11.8", "12.0", "12.1", "12.2", "12.4")


def _gpu(
    id: str,
    name: str,
    pool: str | None,
    memory_gb: int,
    secure_hr: float,
    community_hr: float,
    max_secure: int,
    max_community: int,
    cuda: tuple[str, ...],
    manufacturer: str = "NVIDIA",
) -> GpuType:
    return GpuType(
        id=id,
        name=name,
        pool=pool,
        manufacturer=manufacturer,
        memory_gb=memory_gb,
        secure=max_secure > 0,
        community=max_community > 0,
        price_secure_hr=secure_hr,
        price_community_hr=community_hr,
        max_count_secure=max_secure,
        max_count_community=max_community,
        cuda_versions=cuda,
    )


_GPU_TYPES: tuple[GpuType, ...] = (
    _gpu("NVIDIA RTX A4000", "RTX A4000", "AMPERE_16", 16, 0.25, 0.17, 8, 8, _CUDA_AMPERE),
    _gpu("NVIDIA RTX A4500", "RTX A4500", "AMPERE_16", 20, 0.25, 0.19, 8, 4, _CUDA_AMPERE),
    _gpu("NVIDIA RTX 4000 Ada Generation", "RTX 4000 Ada", "AMPERE_16", 20, 0.26, 0.20, 8, 8, _CUDA_ADA),
    _gpu("NVIDIA RTX 2000 Ada Generation", "RTX 2000 Ada", "AMPERE_16", 16, 0.23, 0.14, 8, 4, _CUDA_ADA),
    _gpu("NVIDIA RTX A5000", "RTX A5000", "AMPERE_24", 24, 0.27, 0.16, 8, 8, _CUDA_AMPERE),
    _gpu("NVIDIA L4", "L4", "AMPERE_24", 24, 0.43, 0.0, 8, 0, _CUDA_ADA),
    _gpu("NVIDIA GeForce RTX 3090", "RTX 3090", "AMPERE_24", 24, 0.46, 0.22, 8, 4, _CUDA_AMPERE),
    _gpu("NVIDIA GeForce RTX 4090", "RTX 4090", "ADA_24", 24, 0.69, 0.34, 8, 4, _CUDA_ADA),
    _gpu("NVIDIA GeForce RTX 5090", "RTX 5090", "ADA_32_PRO", 32, 0.94, 0.69, 8, 4, _CUDA_BLACKWELL),
    _gpu("NVIDIA A40", "A40", "AMPERE_48", 48, 0.40, 0.0, 8, 0, _CUDA_AMPERE),
    _gpu("NVIDIA RTX A6000", "RTX A6000", "AMPERE_48", 48, 0.49, 0.33, 8, 8, _CUDA_AMPERE),
    _gpu("NVIDIA L40S", "L40S", "ADA_48_PRO", 48, 0.86, 0.79, 8, 4, _CUDA_ADA),
    _gpu("NVIDIA L40", "L40", "ADA_48_PRO", 48, 0.99, 0.0, 8, 0, _CUDA_ADA),
    _gpu("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", "ADA_48_PRO", 48, 0.77, 0.74, 8, 8, _CUDA_ADA),
    _gpu("NVIDIA A100 80GB PCIe", "A100 PCIe", "AMPERE_80", 80, 1.64, 1.19, 8, 8, _CUDA_AMPERE),
    _gpu("NVIDIA A100-SXM4-80GB", "A100 SXM", "AMPERE_80", 80, 1.74, 1.39, 8, 8, _CUDA_AMPERE),
    _gpu("NVIDIA H100 PCIe", "H100 PCIe", "ADA_80_PRO", 80, 2.39, 1.99, 8, 2, _CUDA_HOPPER),
    _gpu("NVIDIA H100 80GB HBM3", "H100 SXM", "ADA_80_PRO", 80, 2.69, 2.69, 8, 8, _CUDA_HOPPER),
    _gpu("NVIDIA H100 NVL", "H100 NVL", "ADA_80_PRO", 94, 2.79, 2.59, 8, 2, _CUDA_HOPPER),
    _gpu(
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "RTX PRO 6000",
        "BLACKWELL_96",
        96,
        1.84,
        0.0,
        8,
        0,
        _CUDA_BLACKWELL,
    ),
    _gpu("NVIDIA H200", "H200 SXM", "HOPPER_141", 141, 3.59, 0.0, 8, 0, _CUDA_HOPPER),
    _gpu("NVIDIA B200", "B200", "BLACKWELL_180", 180, 5.99, 0.0, 8, 0, _CUDA_BLACKWELL),
    _gpu("AMD Instinct MI300X OAM", "MI300X", None, 192, 2.49, 0.0, 8, 0, (), manufacturer="AMD"),
    _gpu("Tesla V100-SXM2-32GB", "V100 SXM2 32GB", None, 32, 0.0, 0.29, 0, 8, _CUDA_VOLTA),
)

# Short names keep the stock tables below readable; they are not Runpod ids.
_A4000, _A4500, _ADA4000, _ADA2000 = (
    "NVIDIA RTX A4000",
    "NVIDIA RTX A4500",
    "NVIDIA RTX 4000 Ada Generation",
    "NVIDIA RTX 2000 Ada Generation",
)
_A5000, _L4, _3090, _4090, _5090 = (
    "NVIDIA RTX A5000",
    "NVIDIA L4",
    "NVIDIA GeForce RTX 3090",
    "NVIDIA GeForce RTX 4090",
    "NVIDIA GeForce RTX 5090",
)
_A40, _A6000, _L40S, _L40, _ADA6000 = (
    "NVIDIA A40",
    "NVIDIA RTX A6000",
    "NVIDIA L40S",
    "NVIDIA L40",
    "NVIDIA RTX 6000 Ada Generation",
)
_A100P, _A100S, _H100P, _H100S, _H100N = (
    "NVIDIA A100 80GB PCIe",
    "NVIDIA A100-SXM4-80GB",
    "NVIDIA H100 PCIe",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 NVL",
)
_PRO6000, _H200, _B200, _MI300X, _V100 = (
    "NVIDIA RTX PRO 6000 Blackwell Server Edition",
    "NVIDIA H200",
    "NVIDIA B200",
    "AMD Instinct MI300X OAM",
    "Tesla V100-SXM2-32GB",
)


def _stock(high: Sequence[str] = (), medium: Sequence[str] = (), low: Sequence[str] = ()) -> Mapping[str, str]:
    stock = dict.fromkeys(high, "HIGH") | dict.fromkeys(medium, "MEDIUM") | dict.fromkeys(low, "LOW")
    return MappingProxyType(stock)


_STD, _HPS = "STANDARD", "HIGH_PERFORMANCE"

# CUDA versions hosts report, oldest first (stand-in data, see the module docstring).
_FLEET_13_2_ONLY = ("13.1", "13.2")
_FLEET_13_2 = ("12.6", "12.8", "12.9", "13.0", "13.1", "13.2")
_FLEET_13_0 = ("12.4", "12.6", "12.8", "12.9", "13.0")
_FLEET_12_9 = ("12.2", "12.4", "12.6", "12.8", "12.9")
_FLEET_12_8 = ("12.0", "12.2", "12.4", "12.6", "12.8")
_FLEET_OLD = ("11.8", "12.0", "12.1", "12.2", "12.4")

_DATA_CENTERS: tuple[DataCenter, ...] = (
    DataCenter(
        "EU-RO-1",
        "EU Romania 1",
        "EUROPE",
        (_STD, _HPS),
        ("GDPR", "ISO_IEC_27001", "SOC_2_TYPE_2"),
        True,
        _stock(
            high=[_4090, _A4000, _A4500, _ADA4000, _A5000],
            medium=[_A40, _A6000, _L40S, _ADA6000, _A100S, _H100S, _5090],
            low=[_H200, _ADA2000, _MI300X],
        ),
        cuda_fleet=_FLEET_13_0,
        cuda_by_gpu=MappingProxyType({_A100S: _FLEET_12_8}),
    ),
    DataCenter(
        "EU-SE-1",
        "EU Sweden 1",
        "EUROPE",
        (_STD,),
        ("GDPR", "ISO_IEC_27001", "RENEWABLE"),
        False,
        _stock(high=[_A40, _A6000], medium=[_A100P, _A5000, _ADA4000], low=[_L40, _H100P]),
        cuda_fleet=_FLEET_12_9,
    ),
    DataCenter(
        "EU-CZ-1",
        "EU Czechia 1",
        "EUROPE",
        (_STD,),
        ("GDPR", "ISO_IEC_27001"),
        True,
        _stock(high=[_4090, _5090], medium=[_A4000, _A5000, _3090, _L40S], low=[_H100N, _PRO6000]),
        cuda_fleet=_FLEET_13_2_ONLY,
    ),
    DataCenter(
        "EUR-IS-1",
        "EUR Iceland 1",
        "EUROPE",
        (_STD, _HPS),
        ("GDPR", "ISO_IEC_27001", "SOC_2_TYPE_2", "RENEWABLE"),
        True,
        _stock(high=[_A4500, _ADA2000], medium=[_A4000, _A5000, _A6000, _L40S, _ADA6000, _4090, _H100S], low=[_A100S]),
        cuda_fleet=_FLEET_13_0,
    ),
    DataCenter(
        "US-TX-3",
        "US Texas 3",
        "NORTH_AMERICA",
        (_STD, _HPS),
        ("SOC_2_TYPE_2", "ISO_IEC_27001", "HIPAA"),
        True,
        _stock(
            high=[_4090, _A5000, _L4, _A4000],
            medium=[_A40, _A100S, _A100P, _H100S, _H100P, _L40S, _5090],
            low=[_H200, _PRO6000, _3090],
        ),
        cuda_fleet=_FLEET_13_0,
        cuda_by_gpu=MappingProxyType({_A5000: _FLEET_12_8, _L4: _FLEET_12_8, _3090: _FLEET_12_8}),
    ),
    DataCenter(
        "US-KS-2",
        "US Kansas 2",
        "NORTH_AMERICA",
        (_STD, _HPS),
        ("SOC_2_TYPE_2", "ISO_IEC_27001"),
        True,
        _stock(high=[_4090, _H100S], medium=[_A6000, _L40S, _A100S, _PRO6000, _H100N, _A4000], low=[_B200, _L40]),
        cuda_fleet=_FLEET_13_2,
    ),
    DataCenter(
        "US-GA-2",
        "US Georgia 2",
        "NORTH_AMERICA",
        (_STD,),
        ("SOC_2_TYPE_2", "PCI_DSS", "HIPAA"),
        True,
        _stock(high=[_H100S], medium=[_H200, _B200, _H100N, _A100S], low=[_PRO6000, _L40S, _MI300X]),
        cuda_fleet=_FLEET_13_0,
    ),
    DataCenter(
        "US-IL-1",
        "US Illinois 1",
        "NORTH_AMERICA",
        (_STD,),
        ("SOC_2_TYPE_2",),
        False,
        _stock(high=[_A4000, _A5000, _3090], medium=[_A6000, _L4, _ADA4000, _ADA2000], low=[_A40, _V100]),
        cuda_fleet=_FLEET_12_8,
        cuda_by_gpu=MappingProxyType({_V100: _FLEET_OLD}),
    ),
    DataCenter(
        "CA-MTL-1",
        "CA Montreal 1",
        "NORTH_AMERICA",
        (_STD,),
        ("SOC_2_TYPE_2", "RENEWABLE"),
        True,
        _stock(high=[_A4500, _A5000, _A40], medium=[_A4000, _A6000, _ADA4000, _L40S, _ADA6000], low=[_A100P, _H100P]),
        cuda_fleet=_FLEET_12_9,
        cuda_by_gpu=MappingProxyType({_L40S: _FLEET_13_0, _ADA6000: _FLEET_13_0}),
    ),
    DataCenter(
        "US-CA-2",
        "US California 2",
        "NORTH_AMERICA",
        (_STD, _HPS),
        ("SOC_2_TYPE_2", "ISO_IEC_27001"),
        True,
        _stock(high=[_4090, _5090], medium=[_H100S, _L40S, _A100S, _A5000, _L4], low=[_H100N, _PRO6000]),
        cuda_fleet=_FLEET_13_0,
    ),
    DataCenter(
        "AP-JP-1",
        "AP Japan 1",
        "ASIA",
        (_STD,),
        ("ISO_IEC_27001",),
        False,
        _stock(medium=[_4090, _A6000], low=[_L40S, _H100S, _A5000]),
        cuda_fleet=_FLEET_12_8,
    ),
    DataCenter(
        "OC-AU-1",
        "OC Australia 1",
        "OCEANIA",
        (),
        (),
        False,
        _stock(medium=[_4090], low=[_A4000, _A6000, _3090]),
        cuda_fleet=_FLEET_12_8,
    ),
)

_GPU_BY_ID = {gpu.id: gpu for gpu in _GPU_TYPES}
_DC_BY_ID = {dc.id: dc for dc in _DATA_CENTERS}


# -- lookups -------------------------------------------------------------------------------


def gpu_types() -> list[GpuType]:
    """Every GPU type, in catalog (placement) order."""
    return list(_GPU_TYPES)


def gpu_type(gpu_type_id: str) -> GpuType | None:
    return _GPU_BY_ID.get(gpu_type_id)


def data_centers() -> list[DataCenter]:
    """Every data center, in catalog (placement) order."""
    return list(_DATA_CENTERS)


def data_center(dc_id: str) -> DataCenter | None:
    return _DC_BY_ID.get(dc_id)


def country_code(dc_id: str) -> str:
    """ISO 3166-1 alpha-2 country of a data center, read from its id (``EU-RO-1`` -> ``RO``,
    ``US-TX-3`` -> ``US``), which is how Runpod names them; used by the ``countryCodes`` filter."""
    parts = dc_id.split("-")
    return parts[0] if parts[0] in ("US", "CA") else parts[1]


def pool_ids() -> list[str]:
    return list(_POOLS)


def pool_memory_gb(pool_id: str) -> int:
    """VRAM per GPU of a serverless pool. ``KeyError`` for an unknown pool."""
    return _POOLS[pool_id][0]


def pool_price_per_gpu_s(pool_id: str) -> float:
    """Serverless list price in $/s per GPU of a pool. ``KeyError`` for an unknown pool."""
    return _POOLS[pool_id][1]


def pool_gpu_types(pool_id: str) -> list[GpuType]:
    """The GPU types of a pool, in catalog order (empty for an unknown pool)."""
    return [gpu for gpu in _GPU_TYPES if gpu.pool == pool_id]


def serverless_price_per_gpu_s(gpu_type_id: str) -> float | None:
    """Serverless $/s per GPU for a GPU type, from its pool; None when it is in no pool."""
    gpu = _GPU_BY_ID.get(gpu_type_id)
    if gpu is None or gpu.pool is None:
        return None
    return pool_price_per_gpu_s(gpu.pool)


def data_centers_offering_pool(pool_id: str) -> list[str]:
    """Ids of the data centers stocking at least one GPU type of the pool, in catalog order."""
    members = {gpu.id for gpu in pool_gpu_types(pool_id)}
    return [dc.id for dc in _DATA_CENTERS if members & set(dc.gpu_stock)]


def cuda_version_key(version: str) -> tuple[int, ...]:
    """``12.11`` above ``12.2``: CUDA versions compare numerically, part by part (as the spec says)."""
    return tuple(int(part) for part in version.split("."))


def host_cuda_versions(dc: DataCenter, gpu_type_id: str) -> tuple[str, ...]:
    """CUDA versions the hosts of a GPU type report in a data center, oldest first (empty when the
    data center does not stock the type, or the card reports none, e.g. AMD)."""
    gpu = _GPU_BY_ID.get(gpu_type_id)
    if gpu is None or gpu_type_id not in dc.gpu_stock:
        return ()
    fleet = dc.cuda_by_gpu.get(gpu_type_id, dc.cuda_fleet)
    return tuple(sorted((v for v in fleet if v in gpu.cuda_versions), key=cuda_version_key))


def cuda_filter(versions: Sequence[str], allowed: Sequence[str] = (), minimum: str | None = None) -> list[str]:
    """The versions an endpoint's CUDA constraint accepts: ``allowed`` matches exactly, ``minimum``
    numerically (a bare major, as the catalog filter takes, means any release of it); neither: all."""
    out = list(versions)
    if allowed:
        out = [v for v in out if v in allowed]
    if minimum:
        floor = cuda_version_key(minimum)
        out = [v for v in out if cuda_version_key(v)[: len(floor)] >= floor]
    return out


def place_worker(
    pools: Sequence[str],
    excluded_types: Sequence[str],
    data_center_ids: Sequence[str],
    allowed_cuda: Sequence[str] = (),
    min_cuda: str | None = None,
) -> Placement | None:
    """Pick a GPU for a new worker the way the serverless scheduler does, deterministically.

    Pools are tried in the given order, GPU types of a pool in catalog order (skipping
    ``excluded_types``), and for each type the allowed data centers (all when
    ``data_center_ids`` is empty) in catalog order; the first data center with a host of that type
    whose CUDA version passes the endpoint's filter (``allowed_cuda`` exact, ``min_cuda`` floor;
    none: any host) wins, on its newest such host. Unknown pools are skipped. None means no
    capacity anywhere: the platform then shows the worker as THROTTLED, as Runpod does when no
    machine matches (the spec: a CUDA version no machine reports "yields a capacity error").
    """
    excluded = {t.strip() for t in excluded_types}
    allowed = set(data_center_ids)
    constrained = bool(allowed_cuda) or bool(min_cuda)
    centers = [dc for dc in _DATA_CENTERS if not allowed or dc.id in allowed]
    for pool in pools:
        if pool not in _POOLS:
            continue
        for gpu in pool_gpu_types(pool):
            if gpu.id in excluded:
                continue
            for dc in centers:
                if gpu.id not in dc.gpu_stock:
                    continue
                hosts = cuda_filter(host_cuda_versions(dc, gpu.id), allowed_cuda, min_cuda)
                if constrained and not hosts:
                    continue
                return Placement(
                    gpu_type_id=gpu.id,
                    data_center_id=dc.id,
                    price_per_gpu_s=pool_price_per_gpu_s(pool),
                    cuda_version=hosts[-1] if hosts else None,
                )
    return None
