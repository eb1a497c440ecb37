"""The subset of Runpod's GraphQL schema (``https://api.runpod.io/graphql``) that localpod serves.

Written in SDL so that graphql-core, not localpod, parses every query and reports unknown
fields, wrong argument types and syntax errors with GraphQL's own messages — exactly what a
client of the real API gets. Type, field and argument names follow Runpod's schema as the
``runpod`` SDK (1.12), ``runpodctl`` and the GraphQL docs use them; only what those clients
send or select is here. Fields Runpod has but localpod cannot know (savings-plan prices, CUDA
core counts, spot prices) are declared so queries validate, and resolve to ``null``.

Besides the SDL, this module says how stored objects *look* in GraphQL (the read side): the
ariadne bindings that turn :mod:`localpod.store` dataclasses and :mod:`localpod.catalog` GPU
types into ``Endpoint``, ``PodTemplate``, ``User``... fields. The operations that change state
are parsed in :mod:`localpod.services.graphql_api`; their rules live in :mod:`localpod.resources`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ariadne import ObjectType, ScalarType
from graphql import GraphQLResolveInfo

from localpod import catalog
from localpod.context import ServerContext
from localpod.resources import billing
from localpod.store import Endpoint, NetworkVolume, Store, Template

ENDPOINT_TYPES = {"QB": "QUEUE", "LB": "LOAD_BALANCER"}
"""GraphQL endpoint ``type`` -> the store's (REST v2) endpoint type."""


def ctx_of(info: GraphQLResolveInfo) -> ServerContext:
    """The server context the HTTP handler passes as GraphQL context value."""
    return info.context["ctx"]


TYPE_DEFS = '''
"""A mutation that returns nothing (``deleteEndpoint``, ``deleteTemplate``): always ``null``."""
scalar Void

type Query {
  "The account that owns the API key."
  myself: User
  "GPU types; ``input.id`` / ``input.ids`` filter (an unknown id gives an empty list)."
  gpuTypes(input: GpuTypeFilter): [GpuType]
  "Serverless GPU pools (the ids ``saveEndpoint.gpuIds`` takes) and their GPU type ids."
  serverlessGpuPools: [ServerlessGpuPool]
}

type Mutation {
  "Create a template, or replace one when ``input.id`` is given. Names are unique per account."
  saveTemplate(input: SaveTemplateInput!): PodTemplate
  deleteTemplate(templateName: String!): Void
  "Create an endpoint, or fully replace one when ``input.id`` is given."
  saveEndpoint(input: EndpointInput!): Endpoint
  "Refused while ``workersMin`` or ``workersMax`` is above 0."
  deleteEndpoint(id: String!): Void
  updateEndpointTemplate(input: UpdateEndpointTemplateInput): Endpoint
  updateUserSettings(input: UserSettingsInput): User
}

type User {
  id: String
  email: String
  clientBalance: Float
  currentSpendPerHr: Float
  spendLimit: Float
  pubKey: String
  endpoints: [Endpoint]
  networkVolumes: [NetworkVolume]
  podTemplates: [PodTemplate]
}

input UserSettingsInput {
  pubKey: String
}

type NetworkVolume {
  id: String
  name: String
  size: Int
  dataCenterId: String
}

type EnvironmentVariable {
  key: String
  value: String
}

input EnvironmentVariableInput {
  key: String!
  value: String
}

enum FlashBootType {
  OFF
  FLASHBOOT
  PRIORITY_FLASHBOOT
}

type EndpointNetworkVolume {
  networkVolumeId: String
  dataCenterId: String
}

input NetworkVolumeIdInput {
  networkVolumeId: String!
}

"A live worker of an endpoint, as Runpod lists them under ``Endpoint.pods``."
type Pod {
  id: String
  desiredStatus: String
  gpuCount: Int
  imageName: String
  version: Int
  uptimeSeconds: Int
}

type Endpoint {
  id: String!
  name: String
  aiKey: String
  type: String
  userId: String
  version: Int
  createdAt: String
  templateId: String
  template: PodTemplate
  env: [EnvironmentVariable]
  gpuIds: String
  gpuCount: Int
  allowedCudaVersions: String
  minCudaVersion: String
  locations: String
  networkVolumeId: String
  networkVolume: NetworkVolume
  networkVolumeIds: [EndpointNetworkVolume]
  idleTimeout: Int
  scalerType: String
  scalerValue: Int
  workersMin: Int
  workersMax: Int
  workersStandby: Int
  executionTimeoutMs: Int
  flashBootType: FlashBootType
  "Cached models, e.g. ``https://huggingface.co/<org>/<model>:main`` (runpodctl ``--model-reference``)."
  modelReferences: [String]
  "CPU flavours of a CPU endpoint; localpod emulates GPU endpoints only, so always empty."
  instanceIds: [String]
  pods: [Pod]
}

input EndpointInput {
  "Present: modify that endpoint (a full replace: omitted fields take their defaults)."
  id: String
  name: String!
  templateId: String!
  "Comma-separated serverless pool ids, e.g. ``AMPERE_16,AMPERE_24``; ``-<gpu type id>`` excludes a type."
  gpuIds: String!
  gpuCount: Int
  "``QB`` (queue, the default) or ``LB`` (load balancer)."
  type: String
  workersMin: Int
  workersMax: Int
  idleTimeout: Int
  scalerType: String
  scalerValue: Int
  "Comma-separated data center ids; empty for any."
  locations: String
  "One network volume id; empty for none."
  networkVolumeId: String
  networkVolumeIds: [NetworkVolumeIdInput]
  "Milliseconds; 0 means no limit."
  executionTimeoutMs: Int
  "Comma-separated CUDA versions (``12.1,12.2``); empty for any."
  allowedCudaVersions: String
  minCudaVersion: String
  flashBootType: FlashBootType
  "Cached models (runpodctl ``--model-reference``), ``https://huggingface.co/<org>/<model>:<rev>``; omitted: none."
  modelReferences: [String]
  "CPU flavours (``cpu3g-4-16``) of a CPU endpoint; runpodctl sends null for a GPU endpoint."
  instanceIds: [String]
}

input UpdateEndpointTemplateInput {
  endpointId: String!
  templateId: String!
}

type PodTemplate {
  id: String!
  name: String
  imageName: String
  dockerArgs: String
  containerDiskInGb: Int
  volumeInGb: Int
  volumeMountPath: String
  ports: String
  env: [EnvironmentVariable]
  isServerless: Boolean
  isPublic: Boolean
  startSsh: Boolean
  startJupyter: Boolean
  containerRegistryAuthId: String
  category: String
}

input SaveTemplateInput {
  "Present: replace that template."
  id: String
  name: String!
  imageName: String!
  dockerArgs: String
  containerDiskInGb: Int!
  volumeInGb: Int!
  volumeMountPath: String
  "Comma-separated ``port/protocol`` list, e.g. ``8000/http,22/tcp``."
  ports: String
  env: [EnvironmentVariableInput]
  isServerless: Boolean
  containerRegistryAuthId: String
  startSsh: Boolean
  startJupyter: Boolean
  isPublic: Boolean
  readme: String
  category: String
}

input GpuTypeFilter {
  id: String
  ids: [String]
}

input GpuLowestPriceInput {
  gpuCount: Int
  secureCloud: Boolean
  dataCenterId: String
  countryCode: String
  minMemoryInGb: Int
  minVcpuCount: Int
  minDisk: Int
}

type LowestPrice {
  gpuName: String
  gpuTypeId: String
  minimumBidPrice: Float
  uninterruptablePrice: Float
  stockStatus: String
}

type GpuType {
  id: String
  displayName: String
  manufacturer: String
  memoryInGb: Int
  cudaCores: Int
  maxGpuCount: Int
  maxGpuCountSecureCloud: Int
  maxGpuCountCommunityCloud: Int
  secureCloud: Boolean
  communityCloud: Boolean
  securePrice: Float
  communityPrice: Float
  oneWeekPrice: Float
  oneMonthPrice: Float
  threeMonthPrice: Float
  sixMonthPrice: Float
  secureSpotPrice: Float
  communitySpotPrice: Float
  lowestPrice(input: GpuLowestPriceInput): LowestPrice
}

type ServerlessGpuPool {
  id: String
  gpuTypeIds: [String]
}
'''


# -- store <-> GraphQL shapes --------------------------------------------------------------------


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in env.items()]


def _template_volume(template: Template) -> tuple[int, str]:
    """Pod volume size and path: the REST ``mounts.persistent`` when set, else the flat fields."""
    persistent = (template.mounts or {}).get("persistent") or {}
    if persistent:
        return int(persistent.get("size", 0)), str(persistent.get("path", template.volume_mount_path))
    return template.volume_in_gb, template.volume_mount_path


def _gpu_ids(endpoint: Endpoint) -> str:
    return ",".join(list(endpoint.gpu_pools) + [f"-{gpu}" for gpu in endpoint.gpu_excluded_types])


def _endpoint_type(endpoint: Endpoint) -> str:
    return next((short for short, long in ENDPOINT_TYPES.items() if long == endpoint.type), endpoint.type)


def _first_volume_id(endpoint: Endpoint) -> str | None:
    """GraphQL's single ``networkVolumeId`` is the first of the endpoint's volumes."""
    return endpoint.network_volume_ids[0] if endpoint.network_volume_ids else None


def _volume_of(store: Store, volume_id: str | None) -> NetworkVolume | None:
    return store.volumes.get(volume_id) if volume_id else None


def _bind(type_name: str, resolvers: dict[str, Callable[..., Any]]) -> ObjectType:
    """An ariadne object type whose fields are ``lambda obj, info: ...`` over a store object."""
    bindable = ObjectType(type_name)
    for name, resolver in resolvers.items():
        bindable.set_field(name, resolver)
    return bindable


template_type = _bind(
    "PodTemplate",
    {
        "imageName": lambda t, info: t.image,
        "dockerArgs": lambda t, info: t.args,
        "containerDiskInGb": lambda t, info: t.disk,
        "volumeInGb": lambda t, info: _template_volume(t)[0],
        "volumeMountPath": lambda t, info: _template_volume(t)[1],
        "ports": lambda t, info: ",".join(t.ports),
        "env": lambda t, info: _env_list(t.env),
        "isServerless": lambda t, info: t.serverless,
        "isPublic": lambda t, info: t.public,
        "startSsh": lambda t, info: t.start_ssh,
        "startJupyter": lambda t, info: t.start_jupyter,
        "containerRegistryAuthId": lambda t, info: t.registry,
    },
)

volume_type = _bind("NetworkVolume", {"dataCenterId": lambda v, info: v.data_center})

endpoint_type = _bind(
    "Endpoint",
    {
        "aiKey": lambda e, info: None,
        "type": lambda e, info: _endpoint_type(e),
        "userId": lambda e, info: ctx_of(info).store.account.id,
        "createdAt": lambda e, info: e.created_at,
        "templateId": lambda e, info: e.template_id,
        "template": lambda e, info: ctx_of(info).store.templates.get(e.template_id or ""),
        "env": lambda e, info: _env_list(e.env),
        "gpuIds": lambda e, info: _gpu_ids(e),
        "gpuCount": lambda e, info: e.gpu_count,
        "allowedCudaVersions": lambda e, info: ",".join(e.allowed_cuda_versions),
        "minCudaVersion": lambda e, info: e.min_cuda_version,
        "locations": lambda e, info: ",".join(e.data_center_ids),
        "networkVolumeId": lambda e, info: _first_volume_id(e),
        "networkVolume": lambda e, info: _volume_of(ctx_of(info).store, _first_volume_id(e)),
        "networkVolumeIds": lambda e, info: [
            {"networkVolumeId": vid, "dataCenterId": getattr(_volume_of(ctx_of(info).store, vid), "data_center", None)}
            for vid in e.network_volume_ids
        ],
        "idleTimeout": lambda e, info: e.idle_timeout,
        "scalerType": lambda e, info: e.scaler_type,
        # Runpod's scalerValue is an Int; REST accepts a fractional queue delay (>= 0.5 s).
        "scalerValue": lambda e, info: math.ceil(e.scaler_value),
        "workersMin": lambda e, info: e.workers_min,
        "workersMax": lambda e, info: e.workers_max,
        # Runpod's standby (extra) worker count is not modelled by localpod.
        "workersStandby": lambda e, info: None,
        "executionTimeoutMs": lambda e, info: e.timeout_ms,
        "flashBootType": lambda e, info: e.flashboot,
        "modelReferences": lambda e, info: list(e.model_references),
        "instanceIds": lambda e, info: [],
        "pods": lambda e, info: [
            {
                "id": w.id,
                "desiredStatus": "RUNNING",
                "gpuCount": w.gpu_count,
                "imageName": w.image,
                "version": w.version,
                "uptimeSeconds": w.uptime_seconds,
            }
            for w in ctx_of(info).platform.list_workers(e.id)
        ],
    },
)


user_type = _bind(
    "User",
    {
        "id": lambda a, info: a.id,
        "email": lambda a, info: a.email,
        "clientBalance": lambda a, info: billing.client_balance(ctx_of(info).store, time.time()),
        "currentSpendPerHr": lambda a, info: billing.current_spend_per_hr(
            ctx_of(info).store.sessions, ctx_of(info).store.endpoints
        ),
        "spendLimit": lambda a, info: a.spend_limit,
        "pubKey": lambda a, info: a.pub_key,
        "endpoints": lambda a, info: list(ctx_of(info).store.endpoints.values()),
        "networkVolumes": lambda a, info: list(ctx_of(info).store.volumes.values()),
        "podTemplates": lambda a, info: list(ctx_of(info).store.templates.values()),
    },
)


def _lowest_price(gpu: catalog.GpuType, info: GraphQLResolveInfo, input: dict | None = None) -> dict:
    """Cheapest on-demand price per GPU for ``gpuCount`` GPUs (null when no cloud has that many).
    localpod has no spot market, so ``minimumBidPrice`` is null."""
    options = input or {}
    count = options.get("gpuCount") or 1
    clouds = [(gpu.secure, gpu.price_secure_hr, gpu.max_count_secure)]
    if not options.get("secureCloud"):
        clouds.append((gpu.community, gpu.price_community_hr, gpu.max_count_community))
    prices = [price for offered, price, most in clouds if offered and price is not None and (most or 0) >= count]
    return {
        "gpuName": gpu.name,
        "gpuTypeId": gpu.id,
        "minimumBidPrice": None,
        "uninterruptablePrice": min(prices) if prices else None,
    }


gpu_type_type = _bind(
    "GpuType",
    {
        "displayName": lambda g, info: g.name,
        "memoryInGb": lambda g, info: g.memory_gb,
        "maxGpuCount": lambda g, info: max(g.max_count_secure or 0, g.max_count_community or 0),
        "maxGpuCountSecureCloud": lambda g, info: g.max_count_secure,
        "maxGpuCountCommunityCloud": lambda g, info: g.max_count_community,
        "secureCloud": lambda g, info: g.secure,
        "communityCloud": lambda g, info: g.community,
        "securePrice": lambda g, info: g.price_secure_hr,
        "communityPrice": lambda g, info: g.price_community_hr,
        # Not in localpod's catalog: savings plans, spot prices, CUDA core counts.
        **{
            name: (lambda g, info: None)
            for name in (
                "cudaCores",
                "oneWeekPrice",
                "oneMonthPrice",
                "threeMonthPrice",
                "sixMonthPrice",
                "secureSpotPrice",
                "communitySpotPrice",
            )
        },
        "lowestPrice": _lowest_price,
    },
)

void_type = ScalarType("Void", serializer=lambda value: None)

OBJECT_TYPES = [void_type, user_type, endpoint_type, template_type, volume_type, gpu_type_type]
"""How store and catalog objects are shown: bind these next to the Query/Mutation resolvers."""
