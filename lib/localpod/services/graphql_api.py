"""``POST /api.runpod.io/graphql``: the part of Runpod's GraphQL API the ``runpod`` SDK uses.

The SDK (``runpod.api.graphql.run_graphql_query``) posts ``{"query": "..."}`` with every value
inlined, sends ``Authorization: Bearer <key>``, raises ``AuthenticationError`` on HTTP 401 and
``QueryError`` whenever the JSON body has ``errors``. So this handler checks the key itself (401
before any GraphQL runs), then lets ariadne/graphql-core parse, validate and execute, and always
answers 200 with the standard ``{"data", "errors"}`` document: parse errors and unknown fields
carry graphql-core's own messages, refusals (duplicate template name, deleting an endpoint that
still has workers, ...) are resolver errors with ``data`` set as the GraphQL spec says.

The resolvers here only parse GraphQL's input shapes into store field values and hand them to the
resource backends (:mod:`localpod.resources`, shared with REST v2), which own every rule and raise
:class:`~localpod.resources.errors.ResourceError`; a refusal becomes a GraphQL error with the
backend's message. Mapping to the store: ``gpuIds`` <-> ``gpu_pools`` (+ ``-<type>`` exclusions),
``locations`` <-> ``data_center_ids``, ``networkVolumeId``/``networkVolumeIds`` <->
``network_volume_ids``, ``flashBootType`` <-> ``flashboot``, ``executionTimeoutMs`` <->
``timeout_ms``, ``type`` ``QB``/``LB`` <-> ``QUEUE``/``LOAD_BALANCER``, ``modelReferences`` <->
``model_references`` (cached models; their rule is the endpoints backend's). An endpoint takes image,
args, disk, env, ports and registry from its template, and follows the template when the template
changes (as on Runpod, a new version).

Root fields are closures over the server context, like every route handler in
:mod:`localpod.services`: :func:`routes` builds them and passes them as GraphQL's root value, whose
default resolver calls them, so the schema (slow to build) is built once per process and shared.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, NoReturn

from ariadne import graphql, make_executable_schema
from ariadne.utils import unwrap_graphql_error
from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from localpod import catalog, limits
from localpod.context import ServerContext
from localpod.graphql_schema import ENDPOINT_TYPES, OBJECT_TYPES, TYPE_DEFS
from localpod.http import JSONResponse, bearer_key, json_body
from localpod.resources import backends
from localpod.resources.errors import ResourceError
from localpod.store import Account, Endpoint, Template

DEFAULT_TIMEOUT_MS = 600_000
"""Runpod's default execution timeout for a new endpoint (600 s)."""
SCALER_TYPES = ("QUEUE_DELAY", "REQUEST_COUNT")
_PORT = re.compile(r"^\d{1,5}/(http|tcp|udp)$")
_CUDA = re.compile(r"^\d+\.\d+$")


def fail(message: str) -> NoReturn:
    """Refuse the current field with a GraphQL error; the SDK turns it into ``QueryError``."""
    raise GraphQLError(message)


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _default(input: dict, key: str, default: Any) -> Any:
    value = input.get(key)
    return default if value is None else value


# -- parsing GraphQL inputs into store fields ----------------------------------------------------


def _parse_env(items: list[dict] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items or []:
        key = (item.get("key") or "").strip()
        if not key:
            fail("Environment variable keys must not be empty")
        env[key] = item.get("value") or ""
    errors = limits.env_errors(env)
    if errors:
        fail("; ".join(errors))
    return env


def _parse_ports(value: str | None) -> list[str]:
    ports = _csv(value)
    for port in ports:
        if not _PORT.match(port):
            fail(f'Invalid port "{port}": expected <port>/<http|tcp|udp>, e.g. 8000/http')
    return ports


def template_fields(input: dict) -> dict[str, Any]:
    """A ``saveTemplate`` input as ``Template`` fields (all of them: saving is a full replace)."""
    name = input["name"].strip()
    if not name:
        fail("Template name must not be empty")
    image = input["imageName"].strip()
    if not image:
        fail("imageName must not be empty")
    disk, volume = input["containerDiskInGb"], input["volumeInGb"]
    if disk < 1:
        fail("containerDiskInGb must be at least 1")
    if volume < 0:
        fail("volumeInGb must not be negative")
    mount_path = input.get("volumeMountPath") or "/workspace"
    return {
        "name": name,
        "image": image,
        "args": input.get("dockerArgs") or "",
        "disk": disk,
        "env": _parse_env(input.get("env")),
        "ports": _parse_ports(input.get("ports")),
        "registry": input.get("containerRegistryAuthId") or None,
        "serverless": bool(input.get("isServerless")),
        "public": bool(input.get("isPublic")),
        "category": input.get("category") or "NVIDIA",
        "start_ssh": input.get("startSsh", True) is not False,
        "start_jupyter": input.get("startJupyter", True) is not False,
        "mounts": {"persistent": {"size": volume, "path": mount_path}} if volume else {},
        "volume_in_gb": volume,
        "volume_mount_path": mount_path,
    }


def _parse_gpu_ids(value: str) -> tuple[list[str], list[str]]:
    """``"AMPERE_16,-NVIDIA RTX A4000"`` -> (pools, excluded GPU type ids), each without repeats.
    Whether they name real pools and types is the endpoints backend's rule."""
    pools: list[str] = []
    excluded: list[str] = []
    for token in _csv(value):
        if token.startswith("-"):
            excluded.append(token[1:].strip())
        elif token not in pools:
            pools.append(token)
    if not pools:
        fail("gpuIds must name at least one GPU pool, e.g. AMPERE_16")
    return pools, list(dict.fromkeys(excluded))


def _parse_volumes(input: dict) -> list[str]:
    """``networkVolumeId`` + ``networkVolumeIds`` -> volume ids, each once, in order."""
    ids = [input.get("networkVolumeId") or ""]
    ids += [item["networkVolumeId"] for item in input.get("networkVolumeIds") or [] if item]
    return list(dict.fromkeys(i.strip() for i in ids if i.strip()))


def _parse_locations(value: str | None) -> list[str]:
    """Data center ids, as runpodctl sends them; a country code (``US``, as in the GraphQL docs'
    examples) stands for every data center in that country."""
    centers = [dc.id for dc in catalog.data_centers()]
    chosen: list[str] = []
    for token in _csv(value):
        matches = [token] if token in centers else [dc for dc in centers if catalog.country_code(dc) == token]
        if not matches:
            fail(f'Unknown location "{token}": expected data center ids such as {centers[0]} or country codes')
        chosen += [dc for dc in matches if dc not in chosen]
    return chosen


def _parse_cuda(values: list[str], field: str) -> list[str]:
    for version in values:
        if not _CUDA.match(version):
            fail(f'Invalid CUDA version "{version}" in {field}: expected major.minor, e.g. 12.1')
    return values


def endpoint_fields(input: dict) -> dict[str, Any]:
    """A ``saveEndpoint`` input as ``Endpoint`` fields, with GraphQL's defaults for what it leaves
    out (saving is a full replace). Container settings come from the template, in the backend."""
    name = input["name"].strip()
    if not name:
        fail("Endpoint name must not be empty")
    pools, excluded = _parse_gpu_ids(input["gpuIds"])
    gpu_count = _default(input, "gpuCount", 1)
    if gpu_count < 1:
        fail("gpuCount must be at least 1")
    workers_min, workers_max = _default(input, "workersMin", 0), _default(input, "workersMax", 3)
    if workers_min < 0 or workers_max < 0:
        fail("workersMin and workersMax must not be negative")
    idle_timeout = _default(input, "idleTimeout", 5)
    if not 1 <= idle_timeout <= 3600:
        fail("idleTimeout must be between 1 and 3600 seconds")
    kind = (_default(input, "type", "QB") or "QB").upper()
    if kind not in ENDPOINT_TYPES:
        fail(f'Invalid endpoint type "{kind}": expected QB or LB')
    scaler_type = _default(input, "scalerType", "QUEUE_DELAY")
    if scaler_type not in SCALER_TYPES:
        fail(f'Invalid scalerType "{scaler_type}": expected QUEUE_DELAY or REQUEST_COUNT')
    scaler_value = _default(input, "scalerValue", 4)
    if scaler_value < 1:
        fail("scalerValue must be at least 1")
    if input.get("instanceIds"):
        fail("instanceIds (CPU endpoints) are not emulated by localpod; use gpuIds")
    cuda = _parse_cuda(_csv(input.get("allowedCudaVersions")), "allowedCudaVersions")
    min_cuda = (input.get("minCudaVersion") or "").strip() or None
    if min_cuda:
        _parse_cuda([min_cuda], "minCudaVersion")
    return {
        "name": name,
        "type": ENDPOINT_TYPES[kind],
        "gpu_pools": pools,
        "gpu_excluded_types": excluded,
        "gpu_count": gpu_count,
        "allowed_cuda_versions": cuda or None,
        "min_cuda_version": min_cuda,
        "workers_min": workers_min,
        "workers_max": workers_max,
        "idle_timeout": idle_timeout,
        "scaler_type": scaler_type,
        "scaler_value": scaler_value,
        "data_center_ids": _parse_locations(input.get("locations")),
        "network_volume_ids": _parse_volumes(input),
        "timeout_ms": _default(input, "executionTimeoutMs", DEFAULT_TIMEOUT_MS),
        "flashboot": input.get("flashBootType") or "OFF",
        # a full replace: omitted means none (runpodctl re-sends them to keep them)
        "model_references": [str(ref).strip() for ref in input.get("modelReferences") or [] if ref is not None],
    }


# -- schema and root fields ------------------------------------------------------------------------

_schema: GraphQLSchema | None = None


def schema() -> GraphQLSchema:
    """The executable schema, built once (SDL parsing is the expensive part). Root fields are not
    bound here: :func:`routes` passes them per server as the root value."""
    global _schema
    if _schema is None:
        _schema = make_executable_schema(TYPE_DEFS, *OBJECT_TYPES)
    return _schema


def _answering(resolve: Callable[..., Any]) -> Callable[..., Any]:
    """``resolve`` with a backend's refusal turned into a GraphQL error carrying its message."""

    @functools.wraps(resolve)
    def field(info: GraphQLResolveInfo, **args: Any) -> Any:
        try:
            return resolve(info, **args)
        except ResourceError as exc:
            raise GraphQLError(exc.message) from None

    return field


def root_fields(ctx: ServerContext) -> dict[str, Callable[..., Any]]:
    """Every ``Query`` and ``Mutation`` field, by name, as closures over ``ctx``."""
    store = ctx.store
    resources = backends(store, ctx.platform, "graphql")
    endpoints, templates = resources.endpoints, resources.templates

    def myself(info: GraphQLResolveInfo) -> Account:
        return store.account

    def gpu_types(info: GraphQLResolveInfo, input: dict | None = None) -> list[catalog.GpuType]:
        gpus = catalog.gpu_types()
        wanted: set[str] = set()
        if input and input.get("id") is not None:
            wanted.add(input["id"])
        if input and input.get("ids") is not None:
            wanted.update(i for i in input["ids"] if i is not None)
        if input and (input.get("id") is not None or input.get("ids") is not None):
            gpus = [gpu for gpu in gpus if gpu.id in wanted]
        return gpus

    def serverless_gpu_pools(info: GraphQLResolveInfo) -> list[dict]:
        return [
            {"id": pool, "gpuTypeIds": [gpu.id for gpu in catalog.pool_gpu_types(pool)]} for pool in catalog.pool_ids()
        ]

    def save_template(info: GraphQLResolveInfo, input: dict) -> Template:
        template_id = input.get("id")
        if template_id:
            templates.get(template_id)  # an unknown id is refused before the input's other problems
        fields = template_fields(input)
        if template_id:
            return templates.update(template_id, fields)
        return templates.create(fields)

    def delete_template(info: GraphQLResolveInfo, templateName: str) -> None:
        templates.delete(templates.by_name(templateName).id)
        return None

    def save_endpoint(info: GraphQLResolveInfo, input: dict) -> Endpoint:
        endpoint_id = input.get("id")
        if endpoint_id:
            endpoints.get(endpoint_id)  # an unknown id is refused before the input's other problems
        fields = endpoint_fields(input)
        if endpoint_id:
            return endpoints.replace(endpoint_id, fields, template_id=input["templateId"])
        return endpoints.create(fields, template_id=input["templateId"])

    def delete_endpoint(info: GraphQLResolveInfo, id: str) -> None:
        endpoints.delete(id)
        return None

    def update_endpoint_template(info: GraphQLResolveInfo, input: dict | None = None) -> Endpoint:
        if not input:
            fail("input (endpointId, templateId) is required")
        return endpoints.link_template(input["endpointId"], input["templateId"])

    def update_user_settings(info: GraphQLResolveInfo, input: dict | None = None) -> Account:
        if input and input.get("pubKey") is not None:
            with store.change():
                store.account.pub_key = input["pubKey"]
        return store.account

    fields: dict[str, Callable[..., Any]] = {
        "myself": myself,
        "gpuTypes": gpu_types,
        "serverlessGpuPools": serverless_gpu_pools,
        "saveTemplate": save_template,
        "deleteTemplate": delete_template,
        "saveEndpoint": save_endpoint,
        "deleteEndpoint": delete_endpoint,
        "updateEndpointTemplate": update_endpoint_template,
        "updateUserSettings": update_user_settings,
    }
    return {name: _answering(resolve) for name, resolve in fields.items()}


# -- HTTP ------------------------------------------------------------------------------------------


class _ErrorLog(logging.LoggerAdapter):
    """Where ariadne reports errors. Its default logs ``str(error)``, which quotes the query, and
    queries carry template env values (``HF_TOKEN``...), so: client errors (syntax, validation,
    refusals) are only answered, never logged; an unexpected exception (a localpod bug) is logged
    with its traceback but without the query."""

    def error(self, msg: object, *args: object, exc_info: object = None, **kwargs: object) -> None:
        original = unwrap_graphql_error(exc_info) if isinstance(exc_info, Exception) else None
        if original is None or isinstance(original, GraphQLError):
            return
        self.logger.error("GraphQL resolver failed with %s", type(original).__name__, exc_info=original)


_error_log = _ErrorLog(logging.getLogger("localpod.graphql"), {})


def _errors(status: int, message: str) -> Response:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    executable = schema()
    root = root_fields(ctx)

    async def handle(request: Request) -> Response:
        if not ctx.is_valid_api_key(bearer_key(request)):
            return _errors(401, "Unauthorized: missing or invalid API key")
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _errors(400, str(exc))
        # ariadne validates the body shape (object, string "query", dict "variables") itself.
        _, result = await graphql(
            executable, body, context_value={"ctx": ctx, "request": request}, root_value=root, logger=_error_log
        )
        return JSONResponse(result)

    return [Route("/graphql", handle, methods=["POST"])]
