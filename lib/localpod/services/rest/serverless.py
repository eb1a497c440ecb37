"""``/v2/serverless``: serverless endpoints (create, list, get, patch, delete, workers).

This module parses REST v2 request bodies into ``Endpoint`` field values, and serialises endpoints
exactly as the spec's ``Endpoint`` schema has them. Every rule (GPU pools and exclusions, volumes and
data centers, CUDA, timeout bounds, template linking, versions, deletion) is the endpoints
backend's, :mod:`localpod.resources.endpoints`, shared with GraphQL. Only request *shape* is checked
here: ``gpu`` or ``cpu`` (CPU endpoints are refused with a 422 saying they are not emulated).
``templateId`` is remembered in ``Endpoint.template_id`` (GraphQL shows it, REST v2 does not return
it); a PATCH with ``templateId`` re-points that link.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.services.rest.common import bad_request, parse_body, resource, rest_backends, unprocessable
from localpod.services.rest.models import (
    CreateEndpointRequest,
    EndpointWorkers,
    QueueDelayScaling,
    UpdateEndpointRequest,
)
from localpod.store import Endpoint

DEFAULT_DISK_GB = 20
"""Container disk when neither body nor template sets one (the value in the spec's examples)."""

CREATE_DEFAULTS = {
    "image": "",
    "args": "",
    "disk": DEFAULT_DISK_GB,
    "env": {},
    "ports": [],
    "registry": None,
    "workers_min": 0,
    "workers_max": 3,
    "idle_timeout": 10,
}
"""What a REST v2 create leaves out; a template's container settings come before these."""

_QUEUE_PATHS = {
    "run": "run",
    "runSync": "runsync",
    "status": "status/{job_id}",
    "stream": "stream/{job_id}",
    "cancel": "cancel/{job_id}",
    "retry": "retry/{job_id}",
    "purgeQueue": "purge-queue",
    "health": "health",
}


def request_urls(endpoint_id: str, request: Request) -> dict[str, str]:
    """The queue URLs of an endpoint on localpod's ``api.runpod.ai`` mount, built from the incoming
    request so they work whatever host and port the client used."""
    base = f"{request.url.scheme}://{request.url.netloc}/api.runpod.ai/v2/{endpoint_id}"
    return {key: f"{base}/{path}" for key, path in _QUEUE_PATHS.items()}


def endpoint_json(endpoint: Endpoint, request: Request) -> dict[str, Any]:
    """An ``Endpoint`` exactly as the spec's schema has it (no ``templateId``, no ``version``)."""
    gpu: dict[str, Any] = {"pools": list(endpoint.gpu_pools)}
    if endpoint.gpu_excluded_types:
        gpu["excludedTypes"] = list(endpoint.gpu_excluded_types)
    gpu.update(
        count=endpoint.gpu_count,
        allowedCudaVersions=list(endpoint.allowed_cuda_versions),
        minCudaVersion=endpoint.min_cuda_version,
    )
    workers: dict[str, Any] = {"min": endpoint.workers_min, "max": endpoint.workers_max}
    if endpoint.scaler_type == "REQUEST_COUNT":
        scaling: dict[str, Any] = {"type": "REQUEST_COUNT", "requestCount": int(endpoint.scaler_value)}
    else:
        scaling = {"type": "QUEUE_DELAY", "queueDelay": endpoint.scaler_value}
        workers["idleTimeout"] = endpoint.idle_timeout  # omitted for queue + REQUEST_COUNT, per the spec
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "type": endpoint.type,
        "requestUrls": request_urls(endpoint.id, request),
        "image": endpoint.image,
        "args": endpoint.args,
        "disk": endpoint.disk,
        "ports": list(endpoint.ports),
        "env": dict(endpoint.env),
        "registry": endpoint.registry,
        "gpu": gpu,
        "workers": workers,
        "scaling": scaling,
        "dataCenterIds": list(endpoint.data_center_ids),
        "networkVolumes": list(endpoint.network_volume_ids),
        "timeout": endpoint.timeout_ms,
        "flashboot": endpoint.flashboot,
        "createdAt": endpoint.created_at,
    }


def _refuse_cpu(body: CreateEndpointRequest | UpdateEndpointRequest) -> None:
    if body.given("cpu"):
        if body.given("gpu"):
            raise bad_request(["gpu, cpu: send exactly one of gpu or cpu, not both"])
        if isinstance(body, UpdateEndpointRequest):
            raise bad_request(["cpu: this is a GPU endpoint and the compute family is immutable"])
        raise unprocessable(["cpu: CPU endpoints are not emulated by localpod; send gpu"])


def _scaling_fields(scaling: Any) -> dict[str, Any]:
    if isinstance(scaling, QueueDelayScaling):
        return {"scaler_type": "QUEUE_DELAY", "scaler_value": scaling.queue_delay}
    return {"scaler_type": "REQUEST_COUNT", "scaler_value": scaling.request_count}


def _worker_fields(workers: EndpointWorkers | None) -> dict[str, Any]:
    if workers is None:
        return {}
    names = {"min": "workers_min", "max": "workers_max", "idle_timeout": "idle_timeout"}
    return {target: getattr(workers, source) for source, target in names.items() if workers.given(source)}


def _container_fields(body: CreateEndpointRequest | UpdateEndpointRequest) -> dict[str, Any]:
    """The container settings the body sends (the backend puts them over the template's)."""
    fields = {name: getattr(body, name) for name in ("image", "args", "disk", "ports", "registry") if body.given(name)}
    if body.given("env"):
        fields["env"] = dict(body.env or {})
    return fields


def _idle_timeout_sent(body: CreateEndpointRequest | UpdateEndpointRequest) -> bool:
    return body.workers is not None and body.workers.given("idle_timeout")


def create_fields(body: CreateEndpointRequest) -> dict[str, Any]:
    """A create body as ``Endpoint`` fields (``gpu`` is present: the handler checked)."""
    assert body.gpu is not None
    gpu = body.gpu
    return {
        "name": body.name,
        "type": body.type,
        "gpu_pools": list(gpu.pools),
        "gpu_excluded_types": [t.strip() for t in gpu.excluded_types or []],
        "gpu_count": gpu.count,
        "allowed_cuda_versions": None if gpu.allowed_cuda_versions is None else list(gpu.allowed_cuda_versions),
        "min_cuda_version": gpu.min_cuda_version,
        "data_center_ids": list(body.data_center_ids or []),
        "network_volume_ids": list(body.network_volumes or []),
        "timeout_ms": body.timeout,
        "flashboot": body.flashboot,
        **_container_fields(body),
        **_worker_fields(body.workers),
        **_scaling_fields(body.scaling),
    }


def update_fields(body: UpdateEndpointRequest) -> dict[str, Any]:
    """The fields a PATCH body changes, as ``Endpoint`` fields."""
    changes: dict[str, Any] = _container_fields(body)
    if body.name is not None:
        changes["name"] = body.name
    if body.gpu is not None:
        gpu = body.gpu
        if gpu.pools is not None:  # pools and exclusions are one selection: pools replaces both
            changes["gpu_pools"] = list(gpu.pools)
            changes["gpu_excluded_types"] = [t.strip() for t in gpu.excluded_types or []]
        if gpu.count is not None:
            changes["gpu_count"] = gpu.count
        if gpu.allowed_cuda_versions is not None:
            changes["allowed_cuda_versions"] = list(gpu.allowed_cuda_versions)
        if gpu.min_cuda_version is not None:
            changes["min_cuda_version"] = gpu.min_cuda_version or None  # "" clears the floor
    changes.update(_worker_fields(body.workers))
    if body.scaling is not None:
        changes.update(_scaling_fields(body.scaling))
    if body.data_center_ids is not None:
        changes["data_center_ids"] = list(body.data_center_ids)
    if body.network_volumes is not None:
        changes["network_volume_ids"] = list(body.network_volumes)
    if body.timeout is not None:
        changes["timeout_ms"] = body.timeout
    if body.flashboot is not None:
        changes["flashboot"] = body.flashboot
    return changes


def routes(ctx: ServerContext) -> list[BaseRoute]:
    endpoints = rest_backends(ctx).endpoints

    async def list_endpoints(request: Request) -> Response:
        return JSONResponse({"endpoints": [endpoint_json(e, request) for e in endpoints.all()]})

    async def create_endpoint(request: Request) -> Response:
        body = await parse_body(request, CreateEndpointRequest)
        endpoints.check_type(body.type)
        _refuse_cpu(body)
        if body.gpu is None:
            raise bad_request(["gpu: required (send exactly one of gpu or cpu)"])
        created = endpoints.create(
            create_fields(body),
            template_id=body.template_id,
            defaults=CREATE_DEFAULTS,
            idle_timeout_sent=_idle_timeout_sent(body),
        )
        return JSONResponse(endpoint_json(created, request), status_code=201)

    async def get_one(request: Request) -> Response:
        return JSONResponse(endpoint_json(endpoints.get(request.path_params["id"]), request))

    async def update_endpoint(request: Request) -> Response:
        body = await parse_body(request, UpdateEndpointRequest)
        endpoint = endpoints.get(request.path_params["id"])
        _refuse_cpu(body)
        updated = endpoints.update(
            endpoint.id, update_fields(body), template_id=body.template_id, idle_timeout_sent=_idle_timeout_sent(body)
        )
        return JSONResponse(endpoint_json(updated, request))

    async def delete_endpoint(request: Request) -> Response:
        endpoints.delete(request.path_params["id"])
        return Response(status_code=204)

    async def list_workers(request: Request) -> Response:
        endpoint = endpoints.get(request.path_params["id"])
        workers = ctx.platform.list_workers(endpoint.id)
        summary = dict.fromkeys(("running", "idle", "initializing", "throttled", "unhealthy"), 0)
        items = []
        for worker in workers:
            key = worker.status.lower()
            if key in summary:
                summary[key] += 1
            items.append(
                {
                    "id": worker.id,
                    "status": worker.status,
                    "isStale": worker.version != endpoint.version,
                    "version": worker.version,
                    "gpuCount": worker.gpu_count,
                    "image": worker.image,
                    "uptimeSeconds": worker.uptime_seconds,
                    "gpuTypeId": worker.gpu_type_id,
                    "dataCenterId": worker.data_center_id,
                    "startedAt": worker.started_at,
                }
            )
        summary["total"] = len(items)
        return JSONResponse({"endpointVersion": endpoint.version, "summary": summary, "workers": items})

    return [
        resource(ctx, "/v2/serverless", {"GET": list_endpoints, "POST": create_endpoint}),
        resource(ctx, "/v2/serverless/{id}", {"GET": get_one, "PATCH": update_endpoint, "DELETE": delete_endpoint}),
        resource(ctx, "/v2/serverless/{id}/workers", {"GET": list_workers}),
    ]
