"""``/v2/serverless``: serverless endpoints (create, list, get, patch, delete, workers).

Rules localpod enforces because Runpod does (and a runbook must learn them locally):

- ``gpu.pools`` are pool ids (``ADA_24``), ``gpu.excludedTypes`` GPU type ids inside those pools,
  and a selection that excludes every card is refused;
- a network volume must exist and, when ``dataCenterIds`` is given, lie in one of them; at most one
  volume per data center; attaching volumes pins the endpoint to the volumes' data centers (the
  response's ``dataCenterIds`` shows the pin). Whether those data centers stock the endpoint's GPU
  pool is *not* checked at create time, as upstream: the workers simply stay THROTTLED;
- ``gpu.allowedCudaVersions`` (exact ``major.minor`` set) and ``gpu.minCudaVersion`` (floor) are
  mutually exclusive when both are non-empty; when neither is sent on create, a template's
  ``allowedCudaVersions`` is inherited. A version no host reports is accepted, as upstream (the spec:
  "yields a capacity error rather than a fallback"): the workers stay THROTTLED. Without either, a
  worker may land on a host too old for its image and crash-loop (:mod:`localpod.serverless.imagecuda`);
- ``templateId`` must name a serverless template; its container settings are copied (``env`` merged
  per key, the body wins) and the link is remembered in ``Endpoint.template_id`` (GraphQL shows it,
  REST v2 does not return it). A PATCH with ``templateId`` re-points that link;
- ``endpoint.version`` is the configuration release workers run: it is bumped when something a
  worker runs with changes (container, GPU selection, timeout, FlashBoot, volumes, data centers),
  not for name, scaling or worker-count changes, so ``/workers`` can flag stale workers.

``LOAD_BALANCER`` endpoints and CPU endpoints are refused with a 422 saying they are not emulated.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod import catalog
from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.services.rest.common import bad_request, not_found, parse_body, resource, unprocessable
from localpod.services.rest.models import (CreateEndpointRequest, EndpointWorkers, QueueDelayScaling,
                                           UpdateEndpointRequest)
from localpod.store import Endpoint, Store, Template

DEFAULT_DISK_GB = 20
"""Container disk when neither body nor template sets one (the value in the spec's examples)."""

MIN_TIMEOUT_MS = 5_000
MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000
"""Execution timeout bounds from Runpod's endpoint settings docs (5 s to 7 days)."""

_QUEUE_PATHS = {"run": "run", "runSync": "runsync", "status": "status/{job_id}", "stream": "stream/{job_id}",
                "cancel": "cancel/{job_id}", "retry": "retry/{job_id}", "purgeQueue": "purge-queue",
                "health": "health"}


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
    gpu.update(count=endpoint.gpu_count, allowedCudaVersions=list(endpoint.allowed_cuda_versions),
               minCudaVersion=endpoint.min_cuda_version)
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


def _serverless_template(store: Store, template_id: str) -> Template:
    template = store.templates.get(template_id)
    if template is None:
        raise not_found("template", template_id)
    if not template.serverless:
        raise unprocessable([f"templateId: template {template_id!r} is a pod template; an endpoint needs a "
                             "serverless template (serverless: true)"])
    return template


def _refuse_unemulated(body: CreateEndpointRequest | UpdateEndpointRequest) -> None:
    if isinstance(body, CreateEndpointRequest) and body.type == "LOAD_BALANCER":
        raise unprocessable(["type: LOAD_BALANCER endpoints are not emulated by localpod; use QUEUE"])
    if body.given("cpu"):
        if body.given("gpu"):
            raise bad_request(["gpu, cpu: send exactly one of gpu or cpu, not both"])
        if isinstance(body, UpdateEndpointRequest):
            raise bad_request(["cpu: this is a GPU endpoint and the compute family is immutable"])
        raise unprocessable(["cpu: CPU endpoints are not emulated by localpod; send gpu"])


def _rule_errors(candidate: Endpoint, store: Store, idle_timeout_sent: bool) -> list[str]:
    """Everything the schema cannot express, checked on the endpoint as it would be stored."""
    errors: list[str] = []
    if candidate.workers_max < candidate.workers_min:
        errors.append("workers.max: must be >= workers.min")
    if idle_timeout_sent and candidate.type == "QUEUE" and candidate.scaler_type == "REQUEST_COUNT":
        errors.append("workers.idleTimeout: not applicable to a queue endpoint scaling on REQUEST_COUNT")
    if candidate.allowed_cuda_versions and candidate.min_cuda_version:
        errors.append("gpu.minCudaVersion: mutually exclusive with a non-empty gpu.allowedCudaVersions")
    if not MIN_TIMEOUT_MS <= candidate.timeout_ms <= MAX_TIMEOUT_MS:
        errors.append(f"timeout: must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS} ms")
    valid_pools = catalog.pool_ids()
    for i, pool in enumerate(candidate.gpu_pools):
        if pool not in valid_pools:
            errors.append(f"gpu.pools[{i}]: unknown GPU pool {pool!r}; valid pools: {', '.join(valid_pools)}")
    pool_types = {gpu.id for pool in candidate.gpu_pools for gpu in catalog.pool_gpu_types(pool)}
    for i, excluded in enumerate(candidate.gpu_excluded_types):
        if excluded not in pool_types:
            errors.append(f"gpu.excludedTypes[{i}]: {excluded!r} is not a GPU type in gpu.pools")
    if pool_types and pool_types <= set(candidate.gpu_excluded_types):
        errors.append("gpu.excludedTypes: excludes every GPU type of gpu.pools; keep at least one")
    valid_dcs = [dc.id for dc in catalog.data_centers()]
    for i, dc_id in enumerate(candidate.data_center_ids):
        if dc_id not in valid_dcs:
            errors.append(f"dataCenterIds[{i}]: unknown data center {dc_id!r}; valid: {', '.join(valid_dcs)}")
    volume_dcs: dict[str, str] = {}
    for i, volume_id in enumerate(candidate.network_volume_ids):
        volume = store.volumes.get(volume_id)
        if volume is None:
            errors.append(f"networkVolumes[{i}]: network volume {volume_id!r} does not exist")
            continue
        if candidate.data_center_ids and volume.data_center not in candidate.data_center_ids:
            errors.append(f"networkVolumes[{i}]: volume {volume_id!r} is in {volume.data_center}, which is not "
                          f"in dataCenterIds ({', '.join(candidate.data_center_ids)})")
        if volume.data_center in volume_dcs:
            errors.append(f"networkVolumes[{i}]: at most one volume per data center; {volume_id!r} and "
                          f"{volume_dcs[volume.data_center]!r} are both in {volume.data_center}")
        volume_dcs.setdefault(volume.data_center, volume_id)
    return errors


def _pin_to_volumes(candidate: Endpoint, store: Store) -> None:
    """Workers can only mount a volume in its own data center, so volumes decide the locations."""
    if candidate.network_volume_ids:
        pinned = [store.volumes[v].data_center for v in candidate.network_volume_ids]
        candidate.data_center_ids = list(dict.fromkeys(pinned))


def _scaling_fields(scaling: Any) -> dict[str, Any]:
    if isinstance(scaling, QueueDelayScaling):
        return {"scaler_type": "QUEUE_DELAY", "scaler_value": scaling.queue_delay}
    return {"scaler_type": "REQUEST_COUNT", "scaler_value": scaling.request_count}


def _worker_fields(workers: EndpointWorkers | None) -> dict[str, Any]:
    if workers is None:
        return {}
    names = {"min": "workers_min", "max": "workers_max", "idle_timeout": "idle_timeout"}
    return {target: getattr(workers, source) for source, target in names.items() if workers.given(source)}


def _container_fields(body: CreateEndpointRequest | UpdateEndpointRequest,
                      template: Template | None) -> dict[str, Any]:
    """Container settings from a template with the body's fields on top (``env`` merged per key)."""
    fields: dict[str, Any] = {}
    if template is not None:
        fields = {"image": template.image, "args": template.args, "disk": template.disk,
                  "ports": list(template.ports), "registry": template.registry, "env": dict(template.env)}
    for name in ("image", "args", "disk", "ports", "registry"):
        if body.given(name):
            fields[name] = getattr(body, name)
    if body.given("env"):
        fields["env"] = {**fields.get("env", {}), **(body.env or {})}
    return fields


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    def get_endpoint(request: Request) -> Endpoint:
        endpoint_id = request.path_params["id"]
        endpoint = store.endpoints.get(endpoint_id)
        if endpoint is None:
            raise not_found("serverless endpoint", endpoint_id)
        return endpoint

    async def list_endpoints(request: Request) -> Response:
        return JSONResponse({"endpoints": [endpoint_json(e, request) for e in store.endpoints.values()]})

    async def create_endpoint(request: Request) -> Response:
        body = await parse_body(request, CreateEndpointRequest)
        _refuse_unemulated(body)
        if body.gpu is None:
            raise bad_request(["gpu: required (send exactly one of gpu or cpu)"])
        template = _serverless_template(store, body.template_id) if body.template_id is not None else None
        gpu = body.gpu
        allowed_cuda = gpu.allowed_cuda_versions
        if allowed_cuda is None and gpu.min_cuda_version is None and template is not None:
            allowed_cuda = list(template.allowed_cuda_versions)  # the template seeds the CUDA set
        fields: dict[str, Any] = {
            "image": "", "args": "", "disk": DEFAULT_DISK_GB, "env": {}, "ports": [], "registry": None,
            "workers_min": 0, "workers_max": 3, "idle_timeout": 10,
        }
        fields.update(_container_fields(body, template))
        fields.update(_worker_fields(body.workers))
        fields.update(_scaling_fields(body.scaling))
        candidate = Endpoint(
            id=store.new_endpoint_id(), name=body.name, type=body.type,
            template_id=template.id if template is not None else None,
            gpu_pools=list(gpu.pools), gpu_excluded_types=[t.strip() for t in gpu.excluded_types or []],
            gpu_count=gpu.count, allowed_cuda_versions=list(allowed_cuda or []),
            min_cuda_version=gpu.min_cuda_version, data_center_ids=list(body.data_center_ids or []),
            network_volume_ids=list(body.network_volumes or []), timeout_ms=body.timeout,
            flashboot=body.flashboot, **fields)
        errors = _rule_errors(candidate, store, body.workers is not None and body.workers.given("idle_timeout"))
        if errors:
            raise bad_request(errors)
        _pin_to_volumes(candidate, store)
        store.endpoints[candidate.id] = candidate
        store.commit()
        ctx.platform.endpoint_created(candidate)
        return JSONResponse(endpoint_json(candidate, request), status_code=201)

    async def get_one(request: Request) -> Response:
        return JSONResponse(endpoint_json(get_endpoint(request), request))

    async def update_endpoint(request: Request) -> Response:
        body = await parse_body(request, UpdateEndpointRequest)
        endpoint = get_endpoint(request)
        _refuse_unemulated(body)
        template = None
        if body.template_id is not None:
            template = _serverless_template(store, body.template_id)
        changes: dict[str, Any] = _container_fields(body, template)
        if template is not None:
            changes["template_id"] = template.id
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
        candidate = dataclasses.replace(endpoint, **changes)
        errors = _rule_errors(candidate, store, body.workers is not None and body.workers.given("idle_timeout"))
        if errors:
            raise bad_request(errors)
        _pin_to_volumes(candidate, store)
        if candidate.release() != endpoint.release():
            candidate.version = endpoint.version + 1
        for field in dataclasses.fields(Endpoint):
            # Update in place: the platform holds this very object.
            setattr(endpoint, field.name, getattr(candidate, field.name))
        store.commit()
        ctx.platform.endpoint_updated(endpoint)
        return JSONResponse(endpoint_json(endpoint, request))

    async def delete_endpoint(request: Request) -> Response:
        endpoint = get_endpoint(request)
        ctx.platform.endpoint_deleted(endpoint.id)
        store.endpoints.pop(endpoint.id, None)
        store.commit()
        return Response(status_code=204)

    async def list_workers(request: Request) -> Response:
        endpoint = get_endpoint(request)
        workers = ctx.platform.list_workers(endpoint.id)
        summary = {status: 0 for status in ("running", "idle", "initializing", "throttled", "unhealthy")}
        items = []
        for worker in workers:
            key = worker.status.lower()
            if key in summary:
                summary[key] += 1
            items.append({
                "id": worker.id, "status": worker.status, "isStale": worker.version != endpoint.version,
                "version": worker.version, "gpuCount": worker.gpu_count, "image": worker.image,
                "uptimeSeconds": worker.uptime_seconds, "gpuTypeId": worker.gpu_type_id,
                "dataCenterId": worker.data_center_id, "startedAt": worker.started_at,
            })
        summary["total"] = len(items)
        return JSONResponse({"endpointVersion": endpoint.version, "summary": summary, "workers": items})

    return [
        resource(ctx, "/v2/serverless", {"GET": list_endpoints, "POST": create_endpoint}),
        resource(ctx, "/v2/serverless/{id}", {"GET": get_one, "PATCH": update_endpoint, "DELETE": delete_endpoint}),
        resource(ctx, "/v2/serverless/{id}/workers", {"GET": list_workers}),
    ]
