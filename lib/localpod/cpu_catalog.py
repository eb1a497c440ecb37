"""Built-in CPU flavors and where they are stocked, for ``/v2/catalog/cpus``.

The spec (openapi-v2.json, ``CpuType``) describes a CPU flavor as an id (``cpu5c``, "use in cpu.id
for pod creation"), a name (``Compute-Optimized``), a generation group (``Gen 5``), a vCPU range,
RAM per vCPU and a price per vCPU for secure pods and for serverless. Its examples give
``cpu3c`` "Compute-Optimized", "Gen 3", 2-32 vCPUs, 2.5 GB per vCPU, $0.04 / $0.03 per vCPU.

localpod does not emulate CPU endpoints or pods (REST v2 refuses them with a 422 saying so); the
catalog is served so that a client reading it sees what the spec says it will see. The flavors'
ids follow Runpod's naming (``cpu<generation><c|g|m>``: compute, general, memory) and the first row
is the spec's example; the other figures and all per-data-center stock are **invented**, plausible
values, like the GPU catalog's stock (:mod:`localpod.catalog`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class CpuFlavor:
    """One CPU flavor; ``stock`` maps data-center id to LOW/MEDIUM/HIGH per product (absent: none)."""

    id: str
    name: str
    group: str
    vcpu_min: int
    vcpu_max: int
    ram_gb_per_vcpu: float
    price_secure_per_vcpu: float
    price_serverless_per_vcpu: float
    pod_stock: Mapping[str, str]
    serverless_stock: Mapping[str, str]

    def stock(self, product: str) -> Mapping[str, str]:
        return self.serverless_stock if product == "SERVERLESS" else self.pod_stock


def _stock(**levels: str) -> Mapping[str, str]:
    return MappingProxyType({dc.replace("_", "-"): level for dc, level in levels.items()})


_FLAVORS: tuple[CpuFlavor, ...] = (
    CpuFlavor(
        "cpu3c",
        "Compute-Optimized",
        "Gen 3",
        2,
        32,
        2.5,
        0.04,
        0.03,
        _stock(US_KS_2="MEDIUM", EU_RO_1="HIGH", US_TX_3="LOW"),
        _stock(US_KS_2="MEDIUM", EU_RO_1="MEDIUM"),
    ),
    CpuFlavor(
        "cpu3g",
        "General Purpose",
        "Gen 3",
        2,
        32,
        4.0,
        0.05,
        0.04,
        _stock(US_KS_2="HIGH", EU_RO_1="MEDIUM", US_GA_2="MEDIUM"),
        _stock(US_KS_2="HIGH", EU_RO_1="LOW"),
    ),
    CpuFlavor(
        "cpu3m",
        "Memory-Optimized",
        "Gen 3",
        2,
        16,
        8.0,
        0.07,
        0.06,
        _stock(US_KS_2="LOW", EU_RO_1="LOW"),
        MappingProxyType({}),
    ),
    CpuFlavor(
        "cpu5c",
        "Compute-Optimized",
        "Gen 5",
        2,
        64,
        2.0,
        0.06,
        0.05,
        _stock(US_TX_3="HIGH", EU_CZ_1="MEDIUM", US_CA_2="MEDIUM"),
        _stock(US_TX_3="HIGH", EU_CZ_1="LOW"),
    ),
    CpuFlavor(
        "cpu5g",
        "General Purpose",
        "Gen 5",
        2,
        64,
        4.0,
        0.07,
        0.06,
        _stock(US_TX_3="MEDIUM", US_CA_2="LOW"),
        _stock(US_TX_3="MEDIUM"),
    ),
)

_BY_ID = {flavor.id: flavor for flavor in _FLAVORS}


def cpu_flavors() -> list[CpuFlavor]:
    """Every CPU flavor, in catalog order."""
    return list(_FLAVORS)


def cpu_flavor(flavor_id: str) -> CpuFlavor | None:
    return _BY_ID.get(flavor_id)
