"""``/v2/catalog/gpus`` and ``/v2/catalog/datacenters``: what can be deployed where, at what price.

A runbook reads these before creating an endpoint: ``pool`` gives the id ``gpu.pools`` takes, and
``include=AVAILABILITY&product=SERVERLESS`` (GPUs) or ``include=GPU_AVAILABILITY`` (data centers)
shows where the stock is, which is how it learns that its network volume's data center has to stock
the endpoint's pool. ``cudaVersions`` / ``minCudaVersion`` scope that availability to hosts
reporting a matching CUDA version (``dataCenters`` then lists only data centers with such a host),
so "does US-IL-1 have CUDA 13.0 hosts for AMPERE_24?" is one read. The data is
:mod:`localpod.catalog`'s snapshot. Availability follows the spec's parameter rules: ``product`` is
required with ``include=AVAILABILITY`` and the availability filters are only valid with it (400
otherwise); malformed or unknown enum values are a 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod import catalog
from localpod.catalog import DataCenter, GpuType
from localpod.context import ServerContext
from localpod.cpu_catalog import cpu_flavors
from localpod.http import JSONResponse
from localpod.services.rest.common import bad_request, not_found, query_list, resource, unprocessable

LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")
PRODUCTS = ("POD", "CLUSTER", "SERVERLESS")
CLOUDS = ("SECURE", "COMMUNITY")
REGIONS = (
    "NORTH_AMERICA",
    "SOUTH_AMERICA",
    "EUROPE",
    "ASIA",
    "MIDDLE_EAST",
    "AFRICA",
    "OCEANIA",
    "ANTARCTICA",
    "UNKNOWN",
)
VOLUME_TYPES = ("STANDARD", "HIGH_PERFORMANCE")
COMPLIANCE = (
    "GDPR",
    "ISO_IEC_27001",
    "ISO_14001",
    "PCI_DSS",
    "HITRUST",
    "SOC_1_TYPE_2",
    "SOC_2_TYPE_2",
    "SOC_3_TYPE_2",
    "ITAR",
    "FISMA_HIGH",
    "HIPAA",
    "RENEWABLE",
)
DC_INCLUDES = ("GPU_AVAILABILITY", "CPU_AVAILABILITY")

_AVAILABILITY_FILTERS = ("product", "count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion")


@dataclass(frozen=True)
class AvailabilityQuery:
    """The validated availability parameters of a GPU catalog request."""

    products: tuple[str, ...]
    count: int
    cloud: str
    countries: tuple[str, ...]
    cuda_exact: tuple[str, ...]
    cuda_min: str | None


def _enum_values(request: Request, name: str, allowed: tuple[str, ...], errors: list[str]) -> list[str]:
    values = query_list(request, name)
    for value in values:
        if value not in allowed:
            errors.append(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return values


def parse_availability(request: Request) -> AvailabilityQuery | None:
    """The availability query, None when ``include`` does not ask for it; raises 400/422."""
    errors: list[str] = []
    include = _enum_values(request, "include", ("AVAILABILITY",), errors)
    if len(include) > 1:
        errors.append("include: at most one value")
    products = _enum_values(request, "product", PRODUCTS, errors)
    count_raw = request.query_params.get("count")
    count = 1
    if count_raw is not None:
        if not re.fullmatch(r"\d+", count_raw) or int(count_raw) < 1:
            errors.append("count: must be an integer >= 1")
        else:
            count = int(count_raw)
    cloud = request.query_params.get("cloud", "SECURE")
    if cloud not in CLOUDS:
        errors.append(f"cloud: {cloud!r} is not one of {', '.join(CLOUDS)}")
    countries = query_list(request, "countryCodes")
    errors += [
        f"countryCodes: {c!r} is not an ISO 3166-1 alpha-2 code" for c in countries if not re.fullmatch(r"[A-Z]{2}", c)
    ]
    cuda_exact = query_list(request, "cudaVersions")
    errors += [f"cudaVersions: {v!r} is not major.minor" for v in cuda_exact if not re.fullmatch(r"\d+\.\d+", v)]
    cuda_min = request.query_params.get("minCudaVersion")
    if cuda_min is not None and not re.fullmatch(r"\d+(\.\d+)?", cuda_min):
        errors.append(f"minCudaVersion: {cuda_min!r} is not major or major.minor")
    if errors:
        raise unprocessable(errors)
    wanted = bool(include)
    if wanted and not products:
        raise bad_request(["product: required with include=AVAILABILITY (stock differs per product)"])
    sent = [name for name in _AVAILABILITY_FILTERS if name in request.query_params]
    if not wanted and sent:
        raise bad_request([f"{name}: valid only with include=AVAILABILITY" for name in sent])
    if cuda_exact and cuda_min is not None:
        raise bad_request(["cudaVersions, minCudaVersion: mutually exclusive; send one or the other"])
    if not wanted:
        return None
    return AvailabilityQuery(
        products=tuple(products),
        count=count,
        cloud=cloud,
        countries=tuple(countries),
        cuda_exact=tuple(cuda_exact),
        cuda_min=cuda_min,
    )


def _cuda_filtered(query: AvailabilityQuery) -> bool:
    return bool(query.cuda_exact) or query.cuda_min is not None


def _host_versions(gpu: GpuType, dc: DataCenter, query: AvailabilityQuery) -> list[str]:
    """The CUDA versions this GPU type's hosts in ``dc`` report, narrowed by the query's CUDA filter."""
    return catalog.cuda_filter(catalog.host_cuda_versions(dc, gpu.id), query.cuda_exact, query.cuda_min)


def _offered(gpu: GpuType, query: AvailabilityQuery) -> bool:
    """Whether the GPU can be had at all in one of the requested product contexts."""
    for product in query.products:
        if product == "SERVERLESS":
            if gpu.pool is not None and query.count <= max(gpu.max_count_secure, gpu.max_count_community):
                return True
        else:
            limit = gpu.max_count_secure if query.cloud == "SECURE" else gpu.max_count_community
            if query.count <= limit:
                return True
    return False


def _centers(gpu: GpuType, query: AvailabilityQuery) -> list[DataCenter]:
    """Data centers stocking the type, in the requested countries (any product, any CUDA)."""
    return [
        dc
        for dc in catalog.data_centers()
        if gpu.id in dc.gpu_stock and (not query.countries or catalog.country_code(dc.id) in query.countries)
    ]


def _stocking_centers(gpu: GpuType, query: AvailabilityQuery) -> list[DataCenter]:
    """Where the type can be had in the requested configuration: with a CUDA filter, only data
    centers with a host reporting a matching version (the spec scopes availability by it)."""
    if not _offered(gpu, query):
        return []
    centers = _centers(gpu, query)
    if _cuda_filtered(query):
        centers = [dc for dc in centers if _host_versions(gpu, dc, query)]
    return centers


def _cuda_versions(gpu: GpuType, query: AvailabilityQuery, stocking: list[DataCenter]) -> list[dict[str, Any]]:
    """``cudaVersions``: every version the type's hosts report in the scoped data centers, oldest
    first; ``available`` when a data center stocking it for the product has such a host."""
    offered: set[str] = set()
    for dc in _centers(gpu, query):
        offered.update(_host_versions(gpu, dc, query))
    in_stock = {v for dc in stocking for v in _host_versions(gpu, dc, query)}
    return [{"version": v, "available": v in in_stock} for v in sorted(offered, key=catalog.cuda_version_key)]


def gpu_json(gpu: GpuType, query: AvailabilityQuery | None) -> dict[str, Any]:
    """A ``GpuType`` exactly as the spec's schema has it; prices are USD per GPU per hour."""
    price: dict[str, Any] = {"secure": gpu.price_secure_hr, "community": gpu.price_community_hr}
    if gpu.pool is not None:
        price["serverless"] = round(catalog.pool_price_per_gpu_s(gpu.pool) * 3600, 4)
    body: dict[str, Any] = {
        "id": gpu.id,
        "name": gpu.name,
        "pool": gpu.pool,
        "manufacturer": gpu.manufacturer,
        "memory": gpu.memory_gb,
        "secure": gpu.secure,
        "community": gpu.community,
        "price": price,
        "maxCount": {"secure": gpu.max_count_secure, "community": gpu.max_count_community},
    }
    if query is None:
        return body
    centers = _stocking_centers(gpu, query)
    levels = [dc.gpu_stock[gpu.id] for dc in centers]
    overall = max(levels, key=LEVELS.index) if levels else "NONE"
    body["availability"] = overall
    if centers:
        body["dataCenters"] = [{"id": dc.id, "name": dc.name, "availability": dc.gpu_stock[gpu.id]} for dc in centers]
    versions = _cuda_versions(gpu, query, centers)
    if versions:
        body["cudaVersions"] = versions  # absent, not empty, for a type with none (the spec's rule)
    return body


def data_center_json(dc: DataCenter, include: list[str]) -> dict[str, Any]:
    """A ``DataCenter`` exactly as the spec's schema has it."""
    body: dict[str, Any] = {
        "id": dc.id,
        "name": dc.name,
        "region": dc.region,
        "globalNetwork": dc.global_network,
        "networkVolumeTypes": list(dc.volume_types),
        "compliance": list(dc.compliance),
    }
    if "GPU_AVAILABILITY" in include:
        stock = [
            {"id": gpu.id, "name": gpu.name, "availability": dc.gpu_stock[gpu.id]}
            for gpu in catalog.gpu_types()
            if gpu.id in dc.gpu_stock
        ]
        if stock:
            body["gpuAvailability"] = stock
    if "CPU_AVAILABILITY" in include:
        cpus = []
        for flavor in cpu_flavors():
            levels = [flavor.stock(product).get(dc.id) for product in ("POD", "SERVERLESS")]
            found = [level for level in levels if level is not None]
            if found:
                cpus.append({"id": flavor.id, "name": flavor.name, "availability": max(found, key=LEVELS.index)})
        if cpus:  # omitted, not empty, where no CPU flavor is offered (the spec)
            body["cpuAvailability"] = cpus
    return body


def _dc_includes(request: Request) -> list[str]:
    errors: list[str] = []
    include = _enum_values(request, "include", DC_INCLUDES, errors)
    if errors:
        raise unprocessable(errors)
    return include


def routes(ctx: ServerContext) -> list[BaseRoute]:

    async def list_gpus(request: Request) -> Response:
        query = parse_availability(request)
        gpus = [gpu_json(gpu, query) for gpu in catalog.gpu_types()]
        if query is not None and query.countries:
            gpus = [g for g in gpus if "dataCenters" in g]  # types with no data center there drop out
        return JSONResponse({"gpus": gpus})

    async def get_gpu(request: Request) -> Response:
        query = parse_availability(request)
        gpu = catalog.gpu_type(request.path_params["id"].strip())
        if gpu is None:
            raise not_found("GPU type", request.path_params["id"])
        return JSONResponse(gpu_json(gpu, query))

    async def list_data_centers(request: Request) -> Response:
        include = _dc_includes(request)
        errors: list[str] = []
        regions = _enum_values(request, "regions", REGIONS, errors)
        volume_types = _enum_values(request, "networkVolumeTypes", VOLUME_TYPES, errors)
        compliance = _enum_values(request, "compliance", COMPLIANCE, errors)
        global_raw = request.query_params.get("globalNetwork")
        if global_raw is not None and global_raw not in ("true", "false"):
            errors.append("globalNetwork: must be true or false")
        if errors:
            raise unprocessable(errors)
        selected = []
        for dc in catalog.data_centers():
            if regions and dc.region not in regions:  # OR within the family
                continue
            if not set(volume_types) <= set(dc.volume_types):  # AND within the family
                continue
            if not set(compliance) <= set(dc.compliance):
                continue
            if global_raw is not None and dc.global_network != (global_raw == "true"):
                continue
            selected.append(data_center_json(dc, include))
        return JSONResponse({"dataCenters": selected})

    async def get_data_center(request: Request) -> Response:
        include = _dc_includes(request)
        dc = catalog.data_center(request.path_params["id"])
        if dc is None:
            raise not_found("data center", request.path_params["id"])
        return JSONResponse(data_center_json(dc, include))

    return [
        resource(ctx, "/v2/catalog/gpus", {"GET": list_gpus}),
        resource(ctx, "/v2/catalog/gpus/{id}", {"GET": get_gpu}),
        resource(ctx, "/v2/catalog/datacenters", {"GET": list_data_centers}),
        resource(ctx, "/v2/catalog/datacenters/{id}", {"GET": get_data_center}),
    ]
