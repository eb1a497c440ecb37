"""``POST /api.runpod.io/graphql``: the part of Runpod's GraphQL API the ``runpod`` SDK uses.

The SDK (``runpod.api.graphql.run_graphql_query``) posts ``{"query": "..."}`` with every value
inlined, sends ``Authorization: Bearer <key>``, raises ``AuthenticationError`` on HTTP 401 and
``QueryError`` whenever the JSON body has ``errors``. So this handler checks the key itself (401
before any GraphQL runs), then lets ariadne/graphql-core parse, validate and execute, and always
answers 200 with the standard ``{"data", "errors"}`` document: parse errors and unknown fields
carry graphql-core's own messages, refusals (duplicate template name, deleting an endpoint that
still has workers, ...) are resolver errors with ``data`` set as the GraphQL spec says.

Resources live in the shared :class:`~localpod.store.Store`, so an endpoint saved here is the
same object the REST v2 API and the serverless platform see. Mapping to the store:
``gpuIds`` <-> ``gpu_pools`` (+ ``-<type>`` exclusions), ``locations`` <-> ``data_center_ids``,
``networkVolumeId``/``networkVolumeIds`` <-> ``network_volume_ids``, ``flashBootType`` <->
``flashboot``, ``executionTimeoutMs`` <-> ``timeout_ms``, ``type`` ``QB``/``LB`` <->
``QUEUE``/``LOAD_BALANCER``. An endpoint takes image, args, disk, env, ports and registry from
its template, and follows the template when the template changes (as on Runpod, a new version).
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from typing import Any, NoReturn

from ariadne import MutationType, QueryType, graphql, make_executable_schema
from ariadne.utils import unwrap_graphql_error
from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from localpod import catalog
from localpod import limits
from localpod.context import ServerContext
from localpod.graphql_schema import ENDPOINT_TYPES, OBJECT_TYPES, TYPE_DEFS, ctx_of
from localpod.http import JSONResponse, bearer_key, json_body
from localpod.store import Account, Endpoint, Store, Template, utc_now_iso

DEFAULT_TIMEOUT_MS = 600_000
"""Runpod's default execution timeout for a new endpoint (600 s)."""
MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000
MIN_TIMEOUT_MS = 5_000
SCALER_TYPES = ("QUEUE_DELAY", "REQUEST_COUNT")
_PORT = re.compile(r"^\d{1,5}/(http|tcp|udp)$")
_CUDA = re.compile(r"^\d+\.\d+$")


def fail(message: str) -> NoReturn:
    """Refuse the current field with a GraphQL error; the SDK turns it into ``QueryError``."""
    raise GraphQLError(message)


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


# -- queries -------------------------------------------------------------------------------------

query = QueryType()


@query.field("myself")
def resolve_myself(_: Any, info: GraphQLResolveInfo) -> Account:
    return ctx_of(info).store.account


@query.field("gpuTypes")
def resolve_gpu_types(_: Any, info: GraphQLResolveInfo, input: dict | None = None) -> list[catalog.GpuType]:
    gpus = catalog.gpu_types()
    wanted: set[str] = set()
    if input and input.get("id") is not None:
        wanted.add(input["id"])
    if input and input.get("ids") is not None:
        wanted.update(i for i in input["ids"] if i is not None)
    if input and (input.get("id") is not None or input.get("ids") is not None):
        gpus = [gpu for gpu in gpus if gpu.id in wanted]
    return gpus


@query.field("serverlessGpuPools")
def resolve_pools(_: Any, info: GraphQLResolveInfo) -> list[dict]:
    return [{"id": pool, "gpuTypeIds": [gpu.id for gpu in catalog.pool_gpu_types(pool)]}
            for pool in catalog.pool_ids()]


# -- templates -----------------------------------------------------------------------------------

mutation = MutationType()


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


def _sync_endpoints_with_template(ctx: ServerContext, template: Template) -> None:
    """A template change rolls out to every endpoint built from it, as a new endpoint version."""
    for endpoint in ctx.store.endpoints.values():
        if endpoint.template_id == template.id and _apply_template(endpoint, template):
            endpoint.version += 1
            ctx.platform.endpoint_updated(endpoint)


@mutation.field("saveTemplate")
def resolve_save_template(_: Any, info: GraphQLResolveInfo, input: dict) -> Template:
    ctx = ctx_of(info)
    store = ctx.store
    template_id = input.get("id")
    existing = store.templates.get(template_id) if template_id else None
    if template_id and existing is None:
        fail(f"Template {template_id} not found")
    name = input["name"].strip()
    if not name:
        fail("Template name must not be empty")
    if any(t.name == name and t.id != template_id for t in store.templates.values()):
        fail(f'Template name "{name}" is already taken: template names must be unique')
    image = input["imageName"].strip()
    if not image:
        fail("imageName must not be empty")
    disk, volume = input["containerDiskInGb"], input["volumeInGb"]
    if disk < 1:
        fail("containerDiskInGb must be at least 1")
    if volume < 0:
        fail("volumeInGb must not be negative")
    mount_path = input.get("volumeMountPath") or "/workspace"
    template = Template(
        id=existing.id if existing else store.new_template_id(),
        name=name,
        image=image,
        args=input.get("dockerArgs") or "",
        disk=disk,
        env=_parse_env(input.get("env")),
        ports=_parse_ports(input.get("ports")),
        registry=input.get("containerRegistryAuthId") or None,
        serverless=bool(input.get("isServerless")),
        public=bool(input.get("isPublic")),
        category=input.get("category") or "NVIDIA",
        start_ssh=input.get("startSsh", True) is not False,
        start_jupyter=input.get("startJupyter", True) is not False,
        allowed_cuda_versions=list(existing.allowed_cuda_versions) if existing else [],
        mounts={"persistent": {"size": volume, "path": mount_path}} if volume else {},
        volume_in_gb=volume,
        volume_mount_path=mount_path,
        created_at=existing.created_at if existing else utc_now_iso(),
    )
    if existing:
        _copy_into(existing, template)
        template = existing
        _sync_endpoints_with_template(ctx, template)
    else:
        store.templates[template.id] = template
    store.commit()
    return template


@mutation.field("deleteTemplate")
def resolve_delete_template(_: Any, info: GraphQLResolveInfo, templateName: str) -> None:
    store = ctx_of(info).store
    named = [t for t in store.templates.values() if t.name == templateName]
    if not named:
        fail(f'Template "{templateName}" not found')
    if len(named) > 1:  # only possible through REST v2, which does not require unique names
        fail(f'{len(named)} templates are named "{templateName}"; delete them by id through the REST API')
    template = named[0]
    users = [e.id for e in store.endpoints.values() if e.template_id == template.id]
    if users:
        fail(f'Template "{templateName}" is in use by endpoint(s) {", ".join(users)}; '
             "delete them or switch their template first")
    del store.templates[template.id]
    store.commit()
    return None


# -- endpoints -----------------------------------------------------------------------------------

def _copy_into(target: Any, source: Any) -> None:
    """Update a stored object in place, so every holder of a reference (the platform) sees it."""
    for f in fields(source):
        setattr(target, f.name, getattr(source, f.name))


def _apply_template(endpoint: Endpoint, template: Template) -> bool:
    """Give the endpoint its template's container settings; True when anything changed."""
    before = endpoint.release()
    endpoint.template_id = template.id
    endpoint.image = template.image
    endpoint.args = template.args
    endpoint.disk = template.disk
    endpoint.env = dict(template.env)
    endpoint.ports = list(template.ports)
    endpoint.registry = template.registry
    return before != endpoint.release()


def _serverless_template(store: Store, template_id: str) -> Template:
    template = store.templates.get(template_id)
    if template is None:
        fail(f"Template {template_id} not found")
    if not template.serverless:
        fail(f"Template {template_id} is not a serverless template (isServerless: false)")
    return template


def _parse_gpu_ids(value: str) -> tuple[list[str], list[str]]:
    """``"AMPERE_16,-NVIDIA RTX A4000"`` -> (pools, excluded GPU type ids). Exclusions must be GPU
    types of the chosen pools, and must leave at least one card to run on."""
    pools: list[str] = []
    excluded: list[str] = []
    known_pools = list(catalog.pool_ids())
    for token in _csv(value):
        if token.startswith("-"):
            excluded.append(token[1:].strip())
        elif token not in known_pools:
            fail(f'Unknown GPU pool "{token}" in gpuIds; valid pools: {", ".join(known_pools)}')
        elif token not in pools:
            pools.append(token)
    if not pools:
        fail("gpuIds must name at least one GPU pool, e.g. AMPERE_16")
    members = [gpu.id for pool in pools for gpu in catalog.pool_gpu_types(pool)]
    for gpu in excluded:
        if gpu not in members:
            fail(f'Excluded GPU type "{gpu}" is not in the pools {", ".join(pools)}')
    if not set(members) - set(excluded):
        fail("gpuIds excludes every GPU type of its pools; leave at least one")
    return pools, list(dict.fromkeys(excluded))


def _parse_volumes(store: Store, input: dict, locations: list[str]) -> tuple[list[str], list[str]]:
    """``networkVolumeId`` + ``networkVolumeIds`` -> (volume ids, data center ids). A worker can only
    mount a volume in its own data center, so at most one volume per data center, each inside the
    requested locations, and the volumes pin the endpoint's locations (as the REST API does)."""
    ids = [input.get("networkVolumeId") or ""]
    ids += [item["networkVolumeId"] for item in input.get("networkVolumeIds") or [] if item]
    volumes: list[str] = []
    by_dc: dict[str, str] = {}
    for volume_id in (i.strip() for i in ids):
        if not volume_id or volume_id in volumes:
            continue
        volume = store.volumes.get(volume_id)
        if volume is None:
            fail(f"Network volume {volume_id} not found")
        if locations and volume.data_center not in locations:
            fail(f"Network volume {volume_id} is in {volume.data_center}, which is not among the endpoint's "
                 f"locations ({','.join(locations)})")
        if volume.data_center in by_dc:
            fail(f"At most one network volume per data center: {by_dc[volume.data_center]} and {volume_id} "
                 f"are both in {volume.data_center}")
        by_dc[volume.data_center] = volume_id
        volumes.append(volume_id)
    return volumes, (list(by_dc) if volumes else locations)


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


def _endpoint_from_input(store: Store, input: dict, existing: Endpoint | None) -> Endpoint:
    """Validate a ``saveEndpoint`` input into a new Endpoint (a full replace of ``existing``)."""
    name = input["name"].strip()
    if not name:
        fail("Endpoint name must not be empty")
    template = _serverless_template(store, input["templateId"])
    pools, excluded = _parse_gpu_ids(input["gpuIds"])
    gpu_count = _default(input, "gpuCount", 1)
    if gpu_count < 1:
        fail("gpuCount must be at least 1")
    workers_min, workers_max = _default(input, "workersMin", 0), _default(input, "workersMax", 3)
    if workers_min < 0 or workers_max < 0:
        fail("workersMin and workersMax must not be negative")
    if workers_min > workers_max:
        fail(f"workersMin ({workers_min}) must not exceed workersMax ({workers_max})")
    idle_timeout = _default(input, "idleTimeout", 5)
    if not 1 <= idle_timeout <= 3600:
        fail("idleTimeout must be between 1 and 3600 seconds")
    kind = (_default(input, "type", "QB") or "QB").upper()
    if kind not in ENDPOINT_TYPES:
        fail(f'Invalid endpoint type "{kind}": expected QB or LB')
    if kind == "LB":
        fail("Load-balancer (LB) endpoints are not emulated by localpod; use QB")
    scaler_type = _default(input, "scalerType", "QUEUE_DELAY")
    if scaler_type not in SCALER_TYPES:
        fail(f'Invalid scalerType "{scaler_type}": expected QUEUE_DELAY or REQUEST_COUNT')
    scaler_value = _default(input, "scalerValue", 4)
    if scaler_value < 1:
        fail("scalerValue must be at least 1")
    timeout_ms = _default(input, "executionTimeoutMs", DEFAULT_TIMEOUT_MS)
    if timeout_ms != 0 and not MIN_TIMEOUT_MS <= timeout_ms <= MAX_TIMEOUT_MS:
        fail("executionTimeoutMs must be 0 (no limit) or between 5000 (5 s) and 604800000 (7 days)")
    cuda = _parse_cuda(_csv(input.get("allowedCudaVersions")), "allowedCudaVersions")
    min_cuda = (input.get("minCudaVersion") or "").strip() or None
    if min_cuda:
        _parse_cuda([min_cuda], "minCudaVersion")
        if cuda:
            fail("minCudaVersion and a non-empty allowedCudaVersions are mutually exclusive")
    elif not cuda:
        cuda = list(template.allowed_cuda_versions)  # the template seeds the CUDA set
    volumes, locations = _parse_volumes(store, input, _parse_locations(input.get("locations")))
    endpoint = Endpoint(
        id=existing.id if existing else store.new_endpoint_id(),
        name=name,
        image=template.image,
        type=ENDPOINT_TYPES[kind],
        gpu_pools=pools,
        gpu_excluded_types=excluded,
        gpu_count=gpu_count,
        allowed_cuda_versions=cuda,
        min_cuda_version=min_cuda,
        workers_min=workers_min,
        workers_max=workers_max,
        idle_timeout=idle_timeout,
        scaler_type=scaler_type,
        scaler_value=scaler_value,
        data_center_ids=locations,
        network_volume_ids=volumes,
        timeout_ms=timeout_ms,
        flashboot=input.get("flashBootType") or "OFF",
        version=existing.version if existing else 1,
        created_at=existing.created_at if existing else utc_now_iso(),
    )
    _apply_template(endpoint, template)
    return endpoint


def _default(input: dict, key: str, default: Any) -> Any:
    value = input.get(key)
    return default if value is None else value


def _find_endpoint(store: Store, endpoint_id: str) -> Endpoint:
    endpoint = store.endpoints.get(endpoint_id)
    if endpoint is None:
        fail(f"Endpoint {endpoint_id} not found")
    return endpoint


@mutation.field("saveEndpoint")
def resolve_save_endpoint(_: Any, info: GraphQLResolveInfo, input: dict) -> Endpoint:
    ctx = ctx_of(info)
    store = ctx.store
    existing = _find_endpoint(store, input["id"]) if input.get("id") else None
    endpoint = _endpoint_from_input(store, input, existing)
    if existing is None:
        store.endpoints[endpoint.id] = endpoint
        ctx.platform.endpoint_created(endpoint)
    else:
        changed = existing.release() != endpoint.release()
        if changed:
            endpoint.version = existing.version + 1
        _copy_into(existing, endpoint)
        endpoint = existing
        ctx.platform.endpoint_updated(endpoint)
    store.commit()
    return endpoint


@mutation.field("deleteEndpoint")
def resolve_delete_endpoint(_: Any, info: GraphQLResolveInfo, id: str) -> None:
    ctx = ctx_of(info)
    endpoint = _find_endpoint(ctx.store, id)
    if endpoint.workers_min > 0 or endpoint.workers_max > 0:
        fail(f"Endpoint {id} still has workers (workersMin {endpoint.workers_min}, workersMax "
             f"{endpoint.workers_max}): scale it to 0 (workersMin 0, workersMax 0) before deleting it")
    ctx.platform.endpoint_deleted(id)
    del ctx.store.endpoints[id]
    ctx.store.commit()
    return None


@mutation.field("updateEndpointTemplate")
def resolve_update_endpoint_template(_: Any, info: GraphQLResolveInfo, input: dict | None = None) -> Endpoint:
    ctx = ctx_of(info)
    if not input:
        fail("input (endpointId, templateId) is required")
    endpoint = _find_endpoint(ctx.store, input["endpointId"])
    template = _serverless_template(ctx.store, input["templateId"])
    if _apply_template(endpoint, template):
        endpoint.version += 1
    ctx.platform.endpoint_updated(endpoint)
    ctx.store.commit()
    return endpoint


@mutation.field("updateUserSettings")
def resolve_update_user_settings(_: Any, info: GraphQLResolveInfo, input: dict | None = None) -> Account:
    store = ctx_of(info).store
    if input and input.get("pubKey") is not None:
        store.account.pub_key = input["pubKey"]
        store.commit()
    return store.account


_schema: GraphQLSchema | None = None


def schema() -> GraphQLSchema:
    """The executable schema, built once (SDL parsing is the expensive part)."""
    global _schema
    if _schema is None:
        _schema = make_executable_schema(TYPE_DEFS, query, mutation, *OBJECT_TYPES)
    return _schema


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

    async def handle(request: Request) -> Response:
        if not ctx.is_valid_api_key(bearer_key(request)):
            return _errors(401, "Unauthorized: missing or invalid API key")
        try:
            body = await json_body(request)
        except ValueError as exc:
            return _errors(400, str(exc))
        # ariadne validates the body shape (object, string "query", dict "variables") itself.
        _, result = await graphql(executable, body, context_value={"ctx": ctx, "request": request},
                                  logger=_error_log)
        return JSONResponse(result)

    return [Route("/graphql", handle, methods=["POST"])]
