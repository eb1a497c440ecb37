"""``/v2/catalog/cpus``: CPU flavors, their prices and (asked for) where they are in stock.

Parameters as the spec (openapi-v2.json, ``listCpuTypes`` / ``getCpuType``) declares them:
``include=AVAILABILITY`` (at most one value) adds ``availability`` and ``dataCenters``; it "requires
``product``" (``POD``, ``SERVERLESS``), and ``product`` is "valid only with it (400 either way)";
``vcpuCount`` is "valid only with include=AVAILABILITY" and "Must be a power of two" (minimum 2).
A flavor whose vCPU range cannot give ``vcpuCount`` is unavailable (``NONE``); ``dataCenters`` is
"omitted entirely when the flavor is unavailable everywhere". Malformed or unknown values are a
422, like the GPU catalog's. The flavors are :mod:`localpod.cpu_catalog`'s (invented stock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod import catalog
from localpod.context import ServerContext
from localpod.cpu_catalog import CpuFlavor, cpu_flavor, cpu_flavors
from localpod.http import JSONResponse
from localpod.services.rest.common import bad_request, not_found, query_list, resource, unprocessable

LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")
PRODUCTS = ("POD", "SERVERLESS")


@dataclass(frozen=True)
class CpuAvailabilityQuery:
    products: tuple[str, ...]
    vcpu_count: int | None


def parse_cpu_availability(request: Request) -> CpuAvailabilityQuery | None:
    """The availability query, None when ``include`` does not ask for it; raises 400/422."""
    errors: list[str] = []
    include = query_list(request, "include")
    errors += [f"include: {v!r} is not one of AVAILABILITY" for v in include if v != "AVAILABILITY"]
    if len(include) > 1:
        errors.append("include: at most one value")
    products = query_list(request, "product")
    errors += [f"product: {v!r} is not one of {', '.join(PRODUCTS)}" for v in products if v not in PRODUCTS]
    raw = request.query_params.get("vcpuCount")
    vcpu_count = None
    if raw is not None:
        if not re.fullmatch(r"\d+", raw) or int(raw) < 2:
            errors.append("vcpuCount: must be an integer >= 2")
        else:
            vcpu_count = int(raw)
    if errors:
        raise unprocessable(errors)
    wanted = bool(include)
    if wanted and not products:
        raise bad_request(["product: required with include=AVAILABILITY (stock differs per product)"])
    sent = [name for name in ("product", "vcpuCount") if name in request.query_params]
    if not wanted and sent:
        raise bad_request([f"{name}: valid only with include=AVAILABILITY" for name in sent])
    if vcpu_count is not None and vcpu_count & (vcpu_count - 1):
        raise bad_request([f"vcpuCount: {vcpu_count} is not a power of two"])
    return CpuAvailabilityQuery(tuple(products), vcpu_count) if wanted else None


def cpu_json(flavor: CpuFlavor, query: CpuAvailabilityQuery | None) -> dict[str, Any]:
    """A ``CpuType`` exactly as the spec's schema has it (prices in USD per vCPU per hour)."""
    body: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "group": flavor.group,
        "vcpu": {"min": flavor.vcpu_min, "max": flavor.vcpu_max},
        "ramGbPerVcpu": flavor.ram_gb_per_vcpu,
        "price": {
            "securePerVcpu": flavor.price_secure_per_vcpu,
            "serverlessPerVcpu": flavor.price_serverless_per_vcpu,
        },
    }
    if query is None:
        return body
    fits = query.vcpu_count is None or flavor.vcpu_min <= query.vcpu_count <= flavor.vcpu_max
    levels: dict[str, str] = {}
    if fits:
        for product in query.products:
            for dc_id, level in flavor.stock(product).items():
                if LEVELS.index(level) > LEVELS.index(levels.get(dc_id, "NONE")):
                    levels[dc_id] = level
    body["availability"] = max(levels.values(), key=LEVELS.index) if levels else "NONE"
    if levels:
        body["dataCenters"] = [
            {"id": dc.id, "name": dc.name, "availability": levels[dc.id]}
            for dc in catalog.data_centers()
            if dc.id in levels
        ]
    return body


def routes(ctx: ServerContext) -> list[BaseRoute]:
    async def list_cpus(request: Request) -> Response:
        query = parse_cpu_availability(request)
        return JSONResponse({"cpus": [cpu_json(flavor, query) for flavor in cpu_flavors()]})

    async def get_cpu(request: Request) -> Response:
        query = parse_cpu_availability(request)
        flavor = cpu_flavor(request.path_params["id"].strip())
        if flavor is None:
            raise not_found("CPU type", request.path_params["id"])
        return JSONResponse(cpu_json(flavor, query))

    return [
        resource(ctx, "/v2/catalog/cpus", {"GET": list_cpus}),
        resource(ctx, "/v2/catalog/cpus/{id}", {"GET": get_cpu}),
    ]
