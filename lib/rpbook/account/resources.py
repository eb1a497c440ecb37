"""What Runpod's REST API v2 returns, as typed values: endpoints, templates, network volumes,
workers and their logs, the GPU and data-center catalog, serverless billing.

Each dataclass follows its schema in the official spec (``openapi-v2.json``) field by field and is
built by ``from_api`` from the API's JSON. Kept apart from the client (``rpbook.account.controlplane``)
so that code which only reads these values (plans, budgets, readiness) does not depend on HTTP.

Secrets: env values read back that look secret are registered with ``rpbook.core.secrets`` (so
``scrub`` masks them from then on), and every repr and ``.raw`` shows them masked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rpbook.core.errors import PlanConflictError
from rpbook.core.secrets import redact_env, register_env_secrets


def _env_repr(env: Mapping[str, Any]) -> str:
    return repr(redact_env(env))


def _redact_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The API's JSON with env values masked, for display."""
    out = dict(raw)
    env = out.get("env")
    if isinstance(env, Mapping):
        out["env"] = redact_env(env)
    return out


@dataclass(frozen=True, repr=False)
class Endpoint:
    """A serverless endpoint (``Endpoint`` in the spec). REST v2 does not say which template it was
    created from: the template's container settings (image, env, disk) were copied into it."""

    id: str
    name: str
    image: str
    env: Mapping[str, str]
    gpu_pools: tuple[str, ...]
    gpu_count: int
    workers_min: int
    workers_max: int
    idle_timeout_s: int | None
    """None for a queue endpoint scaling on REQUEST_COUNT (the API omits it then)."""
    scaler_type: str
    scaler_value: float
    data_center_ids: tuple[str, ...]
    network_volume_ids: tuple[str, ...]
    timeout_ms: int
    flashboot: str
    """``OFF``, ``FLASHBOOT`` or ``PRIORITY_FLASHBOOT``."""
    request_urls: Mapping[str, str]
    type: str = "QUEUE"
    disk_gb: int | None = None
    gpu_excluded_types: tuple[str, ...] = ()
    created_at: str | None = None
    allowed_cuda_versions: tuple[str, ...] = ()
    """Host CUDA versions workers may be placed on (``gpu.allowedCudaVersions``); empty: any."""
    min_cuda_version: str | None = None
    """Lowest host CUDA version for workers (``gpu.minCudaVersion``); None: no floor."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The API's JSON for display, with secret env values masked."""

    @property
    def flashboot_enabled(self) -> bool:
        return self.flashboot in ("FLASHBOOT", "PRIORITY_FLASHBOOT")

    @property
    def execution_timeout_s(self) -> float:
        return self.timeout_ms / 1000

    def __repr__(self) -> str:
        return (
            f"Endpoint(id={self.id!r}, name={self.name!r}, image={self.image!r}, env={_env_repr(self.env)}, "
            f"gpu_pools={self.gpu_pools!r}, gpu_count={self.gpu_count}, workers={self.workers_min}-"
            f"{self.workers_max}, idle_timeout_s={self.idle_timeout_s}, scaler_type={self.scaler_type}:"
            f"{self.scaler_value:g}, data_center_ids={self.data_center_ids!r}, "
            f"network_volume_ids={self.network_volume_ids!r}, timeout_ms={self.timeout_ms}, "
            f"flashboot={self.flashboot!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Endpoint:
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        register_env_secrets(env)
        gpu = data.get("gpu") or {}
        workers = data.get("workers") or {}
        scaling = data.get("scaling") or {}
        scaler_type = scaling.get("type", "QUEUE_DELAY")
        value = scaling.get("requestCount") if scaler_type == "REQUEST_COUNT" else scaling.get("queueDelay")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            image=str(data.get("image") or ""),
            env=env,
            gpu_pools=tuple(gpu.get("pools") or ()),
            gpu_count=int(gpu.get("count") or 1),
            workers_min=int(workers.get("min") or 0),
            workers_max=int(workers.get("max") or 0),
            idle_timeout_s=workers.get("idleTimeout"),
            scaler_type=str(scaler_type),
            scaler_value=float(value) if value is not None else 0.0,
            data_center_ids=tuple(data.get("dataCenterIds") or ()),
            network_volume_ids=tuple(data.get("networkVolumes") or ()),
            timeout_ms=int(data.get("timeout") or 0),
            flashboot=str(data.get("flashboot") or "OFF"),
            request_urls=dict(data.get("requestUrls") or {}),
            type=str(data.get("type") or "QUEUE"),
            disk_gb=data.get("disk"),
            gpu_excluded_types=tuple(gpu.get("excludedTypes") or ()),
            created_at=data.get("createdAt"),
            allowed_cuda_versions=tuple(gpu.get("allowedCudaVersions") or ()),
            min_cuda_version=gpu.get("minCudaVersion") or None,
            raw=_redact_raw(data),
        )


@dataclass(frozen=True, repr=False)
class Template:
    """A template (``Template`` in the spec): container settings an endpoint copies when created."""

    id: str
    name: str
    image: str
    env: Mapping[str, str]
    disk_gb: int
    serverless: bool
    args: str = ""
    ports: tuple[str, ...] = ()
    category: str = "NVIDIA"
    allowed_cuda_versions: tuple[str, ...] = ()
    """Host CUDA versions for containers from this template; empty: any."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return (
            f"Template(id={self.id!r}, name={self.name!r}, image={self.image!r}, env={_env_repr(self.env)}, "
            f"disk_gb={self.disk_gb}, serverless={self.serverless})"
        )

    __str__ = __repr__

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Template:
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        register_env_secrets(env)
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            image=str(data.get("image") or ""),
            env=env,
            disk_gb=int(data.get("disk") or 0),
            serverless=bool(data.get("serverless")),
            args=str(data.get("args") or ""),
            ports=tuple(data.get("ports") or ()),
            category=str(data.get("category") or "NVIDIA"),
            allowed_cuda_versions=tuple(data.get("allowedCudaVersions") or ()),
            raw=_redact_raw(data),
        )


@dataclass(frozen=True)
class NetworkVolume:
    """A network volume (``NetworkVolume`` in the spec); its data center and tier are immutable."""

    id: str
    name: str
    size_gb: int
    data_center: str
    type: str = "STANDARD"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> NetworkVolume:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            size_gb=int(data.get("size") or 0),
            data_center=str(data.get("dataCenter") or ""),
            type=str(data.get("type") or "STANDARD"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Availability:
    """Stock of one thing (a GPU type in a data center, or a data center for a GPU type)."""

    id: str
    name: str
    availability: str
    """``NONE``, ``LOW``, ``MEDIUM`` or ``HIGH``."""


AVAILABILITY_LEVELS = ("NONE", "LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True)
class GpuType:
    """A GPU type of the catalog; ``pool`` is the serverless pool id endpoints take (None: not serverless)."""

    id: str
    name: str
    pool: str | None
    memory_gb: int
    serverless_price_hr: float | None
    """USD per GPU per hour on serverless (the pool's list price); None when not in a serverless pool."""
    availability: str | None = None
    """Overall serverless stock, when asked for (``serverless_availability=True``)."""
    data_centers: tuple[Availability, ...] = ()
    """Data centers stocking this type for serverless, when asked for (with a CUDA filter: only
    those with hosts on a matching CUDA version)."""
    cuda_versions: tuple[str, ...] = ()
    """CUDA versions hosts of this type report (``cudaVersions``), when availability was asked for."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def serverless_price_per_s(self) -> float | None:
        return None if self.serverless_price_hr is None else self.serverless_price_hr / 3600

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> GpuType:
        price = (data.get("price") or {}).get("serverless")
        centers = tuple(
            Availability(str(dc["id"]), str(dc.get("name", "")), str(dc.get("availability", "NONE")))
            for dc in data.get("dataCenters") or ()
        )
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            pool=data.get("pool"),
            memory_gb=int(data.get("memory") or 0),
            serverless_price_hr=float(price) if price is not None else None,
            availability=data.get("availability"),
            data_centers=centers,
            cuda_versions=tuple(str(c["version"]) for c in data.get("cudaVersions") or ()),
            raw=dict(data),
        )


@dataclass(frozen=True)
class DataCenter:
    """A data center of the catalog: where it is, which volume tiers and GPU types it offers."""

    id: str
    name: str
    region: str
    volume_types: tuple[str, ...]
    gpu_availability: tuple[Availability, ...] = ()
    """GPU types this data center offers, when asked for (``gpu_availability=True``)."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def offers_standard_volumes(self) -> bool:
        return "STANDARD" in self.volume_types

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DataCenter:
        stock = tuple(
            Availability(str(g["id"]), str(g.get("name", "")), str(g.get("availability", "NONE")))
            for g in data.get("gpuAvailability") or ()
        )
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            region=str(data.get("region", "UNKNOWN")),
            volume_types=tuple(data.get("networkVolumeTypes") or ()),
            gpu_availability=stock,
            raw=dict(data),
        )


@dataclass(frozen=True)
class Worker:
    """One worker of an endpoint (``Worker`` in the spec)."""

    id: str
    status: str
    is_stale: bool
    gpu_count: int
    version: int | None = None
    image: str | None = None
    uptime_seconds: int | None = None
    gpu_type_id: str | None = None
    data_center_id: str | None = None
    started_at: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Worker:
        return cls(
            id=str(data["id"]),
            status=str(data.get("status", "")),
            is_stale=bool(data.get("isStale")),
            gpu_count=int(data.get("gpuCount") or 0),
            version=data.get("version"),
            image=data.get("image"),
            uptime_seconds=data.get("uptimeSeconds"),
            gpu_type_id=data.get("gpuTypeId"),
            data_center_id=data.get("dataCenterId"),
            started_at=data.get("startedAt"),
        )


@dataclass(frozen=True)
class WorkerLogLine:
    """One line of a worker's log (an event of ``GET /v2/serverless/{id}/workers/{workerId}/logs``).

    ``line`` passed through ``scrub``: a secret rpbook knows (an HF token it read) shows masked
    even when a worker printed it."""

    worker_id: str
    ts: str
    source: str
    line: str
    event_id: str = ""

    def __str__(self) -> str:
        return f"{self.ts} {self.worker_id} [{self.source}] {self.line}"


@dataclass(frozen=True)
class WorkerSummary:
    """``GET /v2/serverless/{id}/workers``: counts by state, and the workers themselves."""

    running: int
    idle: int
    initializing: int
    throttled: int
    unhealthy: int
    total: int
    endpoint_version: int | None = None
    workers: tuple[Worker, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> WorkerSummary:
        summary = data.get("summary") or {}
        return cls(
            running=int(summary.get("running", 0)),
            idle=int(summary.get("idle", 0)),
            initializing=int(summary.get("initializing", 0)),
            throttled=int(summary.get("throttled", 0)),
            unhealthy=int(summary.get("unhealthy", 0)),
            total=int(summary.get("total", 0)),
            endpoint_version=data.get("endpointVersion"),
            workers=tuple(Worker.from_api(w) for w in data.get("workers") or ()),
            raw=dict(data),
        )


@dataclass(frozen=True)
class BillingRecord:
    """Serverless spend of one endpoint in one time bucket (USD)."""

    start: str
    end: str
    endpoint_id: str
    total_usd: float
    gpu_usd: float


@dataclass(frozen=True)
class ServerlessBilling:
    """``GET /v2/billing/serverless``: bucketed records and the window's totals (USD)."""

    records: tuple[BillingRecord, ...]
    total_usd: float
    gpu_usd: float
    start: str | None
    end: str | None
    bucket_size: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ServerlessBilling:
        meta = data.get("metadata") or {}
        totals = meta.get("totals") or {}
        query = meta.get("query") or {}
        records = tuple(
            BillingRecord(
                start=str(r.get("startTime")),
                end=str(r.get("endTime")),
                endpoint_id=str(r.get("serverlessId")),
                total_usd=float(r.get("totalAmount") or 0.0),
                gpu_usd=float(r.get("gpuAmount") or 0.0),
            )
            for r in data.get("records") or ()
        )
        return cls(
            records=records,
            total_usd=float(totals.get("totalAmount") or 0.0),
            gpu_usd=float(totals.get("gpuAmount") or 0.0),
            start=query.get("startTime"),
            end=query.get("endTime"),
            bucket_size=query.get("bucketSize"),
            raw=dict(data),
        )


def by_name(resources: Iterable[Any], name: str) -> list[Any]:
    """Resources whose ``name`` is exactly ``name`` (Runpod names need not be unique)."""
    return [r for r in resources if getattr(r, "name", None) == name]


def one_by_name(resources: Iterable[Any], name: str, label: str) -> Any | None:
    """The one resource named ``name`` (None when there is none). rpbook adopts resources by name,
    so two or more with that name are a ``PlanConflictError`` listing their ids: it never guesses
    which one was meant, nor creates another. ``label`` names the kind (``network volume``)."""
    matches = by_name(resources, name)
    if len(matches) > 1:
        ids = ", ".join(m.id for m in matches)
        raise PlanConflictError(
            f"{len(matches)} {label}s are named {name!r} ({ids}); rpbook adopts resources by name "
            "and will not guess which one you mean, nor create another. Delete or rename all but one in the "
            "Runpod console, or choose another name."
        )
    return matches[0] if matches else None
