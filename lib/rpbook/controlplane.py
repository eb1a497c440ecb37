"""Runpod's control plane through its REST API v2: endpoints, templates, network volumes, catalog, billing.

Why REST v2 and not the SDK's GraphQL: see ``rpbook.settings``. Why a hand-written client: the
runbooks need few calls, typed answers and errors that say what to fix, and the API is small and
has an official OpenAPI spec (``openapi-v2.json``) that these dataclasses follow field by field.

Retries: reads (GET) are idempotent, so a 429, a 5xx or a dropped connection is retried with
exponential backoff (``Retry-After`` wins when the server sends one), at most ``max_attempts``
times. Writes are never retried on an HTTP answer: a POST that timed out or got a 502 may still
have created the resource, and creating it twice is exactly what the ``ensure_*`` plans exist to
prevent. A write is retried only when the connection could not even be opened (nothing was sent).

Secrets: the API key is revealed only into the ``Authorization`` header; ``Secret`` values inside
request bodies (an HF token in a template's env) are revealed only while the body is encoded. Env
values read back that look secret are registered with ``rpbook.secrets`` so that ``scrub`` masks
them from then on, and every repr and ``.raw`` of these dataclasses shows them masked.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from rpbook import __version__
from rpbook.errors import ConfigError, ControlPlaneError
from rpbook.secrets import Secret, mask, scrub
from rpbook.settings import Settings

DEFAULT_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 4
BACKOFF_S = 0.5
"""First retry waits this long, then 2x, 4x ... (capped by ``MAX_BACKOFF_S``)."""
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0
"""A ``Retry-After`` longer than this is capped: a runbook cell should fail rather than hang."""

_SECRET_KEY = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL)",
                         re.IGNORECASE)
_SECRET_REFERENCE = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z_][A-Za-z0-9_.\-/]*\s*\}\}$")


# -- secrets in env maps -----------------------------------------------------------------------


def is_secret_env_key(key: str) -> bool:
    """Whether an env var's value should be treated as a secret (``HF_TOKEN``, ``*_API_KEY``, ...)."""
    return bool(_SECRET_KEY.search(key))


def is_secret_reference(value: str) -> bool:
    """``{{ RUNPOD_SECRET_name }}``: Runpod substitutes the secret at boot; the string itself is safe."""
    return bool(_SECRET_REFERENCE.match(value.strip()))


def display_env_value(key: str, value: Any) -> str:
    """How an env value may be shown: secrets masked, references and ordinary values as they are."""
    if isinstance(value, Secret):
        return value.masked
    text = "" if value is None else str(value)
    if text and is_secret_env_key(key) and not is_secret_reference(text):
        return mask(text)
    return scrub(text)


def redact_env(env: Mapping[str, Any]) -> dict[str, str]:
    """A copy of an env map that is safe to print."""
    return {key: display_env_value(key, value) for key, value in env.items()}


def _register_env_secrets(env: Mapping[str, str], source: str) -> None:
    """Make ``scrub`` mask secret-looking env values read from the API (e.g. a literal HF token)."""
    for key, value in env.items():
        if isinstance(value, str) and value and is_secret_env_key(key) and not is_secret_reference(value):
            Secret(key, value, source)


def _redact_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The API's JSON with env values masked, for display."""
    out = dict(raw)
    env = out.get("env")
    if isinstance(env, Mapping):
        out["env"] = redact_env(env)
    return out


def reveal_secrets(value: Any) -> Any:
    """A JSON-ready copy of a request body with every ``Secret`` revealed (the HTTP boundary only)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Mapping):
        return {key: reveal_secrets(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [reveal_secrets(item) for item in value]
    return value


# -- typed resources ---------------------------------------------------------------------------


def _env_repr(env: Mapping[str, Any]) -> str:
    return repr(redact_env(env))


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
        return (f"Endpoint(id={self.id!r}, name={self.name!r}, image={self.image!r}, env={_env_repr(self.env)}, "
                f"gpu_pools={self.gpu_pools!r}, gpu_count={self.gpu_count}, workers={self.workers_min}-"
                f"{self.workers_max}, idle_timeout_s={self.idle_timeout_s}, scaler={self.scaler_type}:"
                f"{self.scaler_value:g}, data_center_ids={self.data_center_ids!r}, "
                f"network_volume_ids={self.network_volume_ids!r}, timeout_ms={self.timeout_ms}, "
                f"flashboot={self.flashboot!r})")

    __str__ = __repr__

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Endpoint:
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        _register_env_secrets(env, f"endpoint {data.get('id')}")
        gpu = data.get("gpu") or {}
        workers = data.get("workers") or {}
        scaling = data.get("scaling") or {}
        scaler_type = scaling.get("type", "QUEUE_DELAY")
        value = scaling.get("requestCount") if scaler_type == "REQUEST_COUNT" else scaling.get("queueDelay")
        return cls(
            id=str(data["id"]), name=str(data.get("name", "")), image=str(data.get("image") or ""), env=env,
            gpu_pools=tuple(gpu.get("pools") or ()), gpu_count=int(gpu.get("count") or 1),
            workers_min=int(workers.get("min") or 0), workers_max=int(workers.get("max") or 0),
            idle_timeout_s=workers.get("idleTimeout"), scaler_type=str(scaler_type),
            scaler_value=float(value) if value is not None else 0.0,
            data_center_ids=tuple(data.get("dataCenterIds") or ()),
            network_volume_ids=tuple(data.get("networkVolumes") or ()),
            timeout_ms=int(data.get("timeout") or 0), flashboot=str(data.get("flashboot") or "OFF"),
            request_urls=dict(data.get("requestUrls") or {}), type=str(data.get("type") or "QUEUE"),
            disk_gb=data.get("disk"), gpu_excluded_types=tuple(gpu.get("excludedTypes") or ()),
            created_at=data.get("createdAt"), allowed_cuda_versions=tuple(gpu.get("allowedCudaVersions") or ()),
            min_cuda_version=gpu.get("minCudaVersion") or None, raw=_redact_raw(data))


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
        return (f"Template(id={self.id!r}, name={self.name!r}, image={self.image!r}, env={_env_repr(self.env)}, "
                f"disk_gb={self.disk_gb}, serverless={self.serverless})")

    __str__ = __repr__

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Template:
        env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
        _register_env_secrets(env, f"template {data.get('id')}")
        return cls(id=str(data["id"]), name=str(data.get("name", "")), image=str(data.get("image") or ""),
                   env=env, disk_gb=int(data.get("disk") or 0), serverless=bool(data.get("serverless")),
                   args=str(data.get("args") or ""), ports=tuple(data.get("ports") or ()),
                   category=str(data.get("category") or "NVIDIA"),
                   allowed_cuda_versions=tuple(data.get("allowedCudaVersions") or ()), raw=_redact_raw(data))


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
        return cls(id=str(data["id"]), name=str(data.get("name", "")), size_gb=int(data.get("size") or 0),
                   data_center=str(data.get("dataCenter") or ""), type=str(data.get("type") or "STANDARD"),
                   raw=dict(data))


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
        centers = tuple(Availability(str(dc["id"]), str(dc.get("name", "")), str(dc.get("availability", "NONE")))
                        for dc in data.get("dataCenters") or ())
        return cls(id=str(data["id"]), name=str(data.get("name", "")), pool=data.get("pool"),
                   memory_gb=int(data.get("memory") or 0),
                   serverless_price_hr=float(price) if price is not None else None,
                   availability=data.get("availability"), data_centers=centers,
                   cuda_versions=tuple(str(c["version"]) for c in data.get("cudaVersions") or ()), raw=dict(data))


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
        stock = tuple(Availability(str(g["id"]), str(g.get("name", "")), str(g.get("availability", "NONE")))
                      for g in data.get("gpuAvailability") or ())
        return cls(id=str(data["id"]), name=str(data.get("name", "")), region=str(data.get("region", "UNKNOWN")),
                   volume_types=tuple(data.get("networkVolumeTypes") or ()), gpu_availability=stock,
                   raw=dict(data))


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
        return cls(id=str(data["id"]), status=str(data.get("status", "")), is_stale=bool(data.get("isStale")),
                   gpu_count=int(data.get("gpuCount") or 0), version=data.get("version"), image=data.get("image"),
                   uptime_seconds=data.get("uptimeSeconds"), gpu_type_id=data.get("gpuTypeId"),
                   data_center_id=data.get("dataCenterId"), started_at=data.get("startedAt"))


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
        return cls(running=int(summary.get("running", 0)), idle=int(summary.get("idle", 0)),
                   initializing=int(summary.get("initializing", 0)), throttled=int(summary.get("throttled", 0)),
                   unhealthy=int(summary.get("unhealthy", 0)), total=int(summary.get("total", 0)),
                   endpoint_version=data.get("endpointVersion"),
                   workers=tuple(Worker.from_api(w) for w in data.get("workers") or ()), raw=dict(data))


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
        records = tuple(BillingRecord(start=str(r.get("startTime")), end=str(r.get("endTime")),
                                      endpoint_id=str(r.get("serverlessId")),
                                      total_usd=float(r.get("totalAmount") or 0.0),
                                      gpu_usd=float(r.get("gpuAmount") or 0.0))
                        for r in data.get("records") or ())
        return cls(records=records, total_usd=float(totals.get("totalAmount") or 0.0),
                   gpu_usd=float(totals.get("gpuAmount") or 0.0), start=query.get("startTime"),
                   end=query.get("endTime"), bucket_size=query.get("bucketSize"), raw=dict(data))


# -- errors and retries ------------------------------------------------------------------------

_HINTS = {
    401: "Check RUNPOD_API_KEY (environment or env file): it is missing, mistyped, revoked or for another "
         "account. Create one at https://console.runpod.io/user/settings (API Keys).",
    403: "The API key is valid but may not do this: use a key with read/write access to serverless, "
         "templates and network volumes.",
    404: "It does not exist (any more): it may have been deleted in the console; run the plan again.",
    409: "It conflicts with the current state of the resource; read it again and re-plan.",
    429: "Runpod is rate limiting this API key: wait a minute and run the cell again.",
}
_LOCAL_HINTS = {
    401: "localpod refuses this key: it accepts only the key it was started with (LOCALPOD_API_KEY; the local "
         "default is rpa_LOCALPOD_DEV_KEY). Unset RUNPOD_API_KEY (environment and env file) to use the default, "
         "or stop localpod (`make stop`) so that the next runbook starts it with your key.",
}
"""Local mode's own advice: a Runpod console key means nothing to localpod."""
_SERVER_HINT = "Runpod had a server-side problem: run the cell again in a minute (see https://uptime.runpod.io)."


class _RetryableStatus(Exception):
    """A GET answered 429 or 5xx: worth another attempt."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retry_after_s(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(response: httpx.Response, action: str, *, local: bool = False) -> ControlPlaneError:
    """A ``ControlPlaneError`` from an RFC 9457 problem document (or whatever body came back)."""
    status = response.status_code
    title, detail, errors = response.reason_phrase or "Error", "", []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        title = str(body.get("title") or title)
        detail = str(body.get("detail") or "")
        errors = [scrub(str(e)) for e in body.get("errors") or [] if e is not None]
    elif response.text:
        detail = response.text.strip()[:500]
    message = f"Runpod REST API: {action} failed with {status} {title}"
    if detail:
        message += f": {detail}"
    extra = [e for e in errors if e not in detail]
    if extra:
        message += "\n" + "\n".join(f"  - {e}" for e in extra)
    hint = (local and _LOCAL_HINTS.get(status)) or _HINTS.get(status) or (_SERVER_HINT if status >= 500 else "")
    if hint:
        message += f"\n{hint}"
    return ControlPlaneError(scrub(message), status, errors)


# -- the client --------------------------------------------------------------------------------


class RunpodClient:
    """Runpod's REST API v2 at ``settings.rest_url`` (real Runpod or localpod), as typed calls.

    Use it as a context manager (``with RunpodClient(settings, settings.runpod_api_key()) as rp``)
    so its connections are closed. ``transport`` and ``sleep`` exist for tests.
    """

    def __init__(self, settings: Settings, api_key: Secret, *, timeout: float = DEFAULT_TIMEOUT_S,
                 max_attempts: int = MAX_ATTEMPTS, backoff_s: float = BACKOFF_S,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not isinstance(api_key, Secret):
            raise TypeError("api_key must be a rpbook Secret (settings.runpod_api_key()), never a plain string")
        self.settings = settings
        self._local = settings.target == "local"
        self.base_url = settings.rest_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {api_key.reveal()}", "Accept": "application/json",
                     "User-Agent": f"rpbook/{__version__}"})

    def __enter__(self) -> RunpodClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"RunpodClient({self.base_url})"

    # -- transport ----------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _RetryableStatus):
            after = _retry_after_s(exc.response)
            if after is not None:
                return min(after, MAX_RETRY_AFTER_S)
        return min(self.backoff_s * (2 ** (state.attempt_number - 1)), MAX_BACKOFF_S)

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              body: Mapping[str, Any] | None = None) -> httpx.Response:
        action = f"{method} {path}"
        is_read = method == "GET"
        attempts = 0

        def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            response = self._http.request(method, path, params=params,
                                          json=reveal_secrets(body) if body is not None else None)
            if is_read and (response.status_code == 429 or response.status_code >= 500):
                raise _RetryableStatus(response)
            return response

        def retryable(exc: BaseException) -> bool:
            if is_read:
                return isinstance(exc, (_RetryableStatus, httpx.TransportError))
            # A write is repeated only when the connection never opened: nothing reached the server.
            return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))

        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait,
                            retry=retry_if_exception(retryable), sleep=self._sleep, reraise=True)
        try:
            response = retrying(attempt)
        except _RetryableStatus as exc:
            raise error_from_response(exc.response, action, local=self._local) from None
        except httpx.TransportError as exc:
            sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            if not is_read and sent:
                # The request left: Runpod may have done it even though no answer came back.
                raise ControlPlaneError(scrub(
                    f"Runpod REST API: {action} got no answer ({type(exc).__name__}: {exc}) after the request was "
                    f"sent, so it may have been done on Runpod. Run the cell again: plans adopt resources by name "
                    f"and never create a second one, so a re-run finds what was created and changes only what "
                    f"still differs.")) from None
            raise ControlPlaneError(scrub(
                f"Runpod REST API: {action} at {self.base_url} failed after {attempts} attempt(s): "
                f"{type(exc).__name__}: {exc}. Check the network, and for the local target that localpod is "
                f"running ({self.settings.localpod_url or 'LOCALPOD_URL'}).")) from None
        if response.status_code >= 400:
            raise error_from_response(response, action, local=self._local)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            raise ControlPlaneError(f"Runpod REST API: {method} {path} answered {response.status_code} with a body "
                                    "that is not JSON; is settings.rest_url the REST API?",
                                    response.status_code) from None
        if not isinstance(data, dict):
            raise ControlPlaneError(f"Runpod REST API: {method} {path} answered a JSON {type(data).__name__}, "
                                    "not an object", response.status_code)
        return data

    @staticmethod
    def _path_id(resource_id: str) -> str:
        if not isinstance(resource_id, str) or not resource_id.strip() or "/" in resource_id:
            raise ConfigError(f"{resource_id!r} is not a Runpod resource id (like 'abc123xyz0'); pass the id "
                              "from a list_*/ensure_* result, not a name")
        return resource_id

    # -- serverless endpoints -----------------------------------------------------------------

    def list_endpoints(self) -> list[Endpoint]:
        return [Endpoint.from_api(e) for e in self._json("GET", "/v2/serverless").get("endpoints", [])]

    def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return Endpoint.from_api(self._json("GET", f"/v2/serverless/{self._path_id(endpoint_id)}"))

    def create_endpoint(self, body: Mapping[str, Any]) -> Endpoint:
        """``CreateEndpointRequest`` as in the spec (``name``, ``type``, ``scaling``, ``gpu``, ...)."""
        return Endpoint.from_api(self._json("POST", "/v2/serverless", body=body))

    def update_endpoint(self, endpoint_id: str, body: Mapping[str, Any]) -> Endpoint:
        """``UpdateEndpointRequest``: only the fields sent change."""
        return Endpoint.from_api(self._json("PATCH", f"/v2/serverless/{self._path_id(endpoint_id)}", body=body))

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._send("DELETE", f"/v2/serverless/{self._path_id(endpoint_id)}")

    def endpoint_workers(self, endpoint_id: str) -> WorkerSummary:
        return WorkerSummary.from_api(self._json("GET", f"/v2/serverless/{self._path_id(endpoint_id)}/workers"))

    def worker_logs(self, endpoint_id: str, worker_id: str | None = None, *, tail: int = 100,
                    source: str | None = None, idle_s: float = 1.0, max_s: float = 30.0) -> list[WorkerLogLine]:
        """Recent log lines of one worker, or of every worker ``/workers`` lists now (``worker_id``
        None), oldest first: the first thing to read when a worker is UNHEALTHY.

        The API streams logs as Server-Sent Events and keeps the stream open for new lines, so this
        reads the backfill (``tail`` lines, at most 5000; ``source`` ``container`` or ``system``,
        both when None) and stops when the stream is quiet for ``idle_s`` or after ``max_s``.
        """
        if isinstance(tail, bool) or not isinstance(tail, int) or not 0 <= tail <= 5000:
            raise ConfigError(f"tail must be a number of lines from 0 to 5000, got {tail!r}")
        if source not in (None, "container", "system"):
            raise ConfigError(f"source must be 'container', 'system' or None (both), got {source!r}")
        endpoint_id = self._path_id(endpoint_id)
        ids = [self._path_id(worker_id)] if worker_id is not None else \
            [w.id for w in self.endpoint_workers(endpoint_id).workers]
        lines: list[WorkerLogLine] = []
        for wid in ids:
            lines += self._read_log(endpoint_id, wid, tail, source, idle_s, max_s)
        return sorted(lines, key=lambda line: line.ts) if worker_id is None else lines

    def _read_log(self, endpoint_id: str, worker_id: str, tail: int, source: str | None, idle_s: float,
                  max_s: float) -> list[WorkerLogLine]:
        path = f"/v2/serverless/{endpoint_id}/workers/{worker_id}/logs"
        params: dict[str, Any] = {"tail": tail}
        if source is not None:
            params["source"] = source
        lines: list[WorkerLogLine] = []
        deadline = time.monotonic() + max_s
        timeout = httpx.Timeout(self._http.timeout.connect or DEFAULT_TIMEOUT_S, read=max(idle_s, 0.05))
        answered = False
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout,
                                   headers={"Accept": "text/event-stream"}) as response:
                answered = True
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response, f"GET {path}")
                event_id = ""
                for raw in response.iter_lines():
                    if raw.startswith("id:"):
                        event_id = raw[3:].strip()
                    elif raw.startswith("data:"):
                        try:
                            data = json.loads(raw[5:].strip())
                        except ValueError:
                            raise ControlPlaneError(f"Runpod REST API: GET {path} sent a log event that is not "
                                                    "JSON; is settings.rest_url the REST API?") from None
                        lines.append(WorkerLogLine(worker_id, str(data.get("ts", "")), str(data.get("source", "")),
                                                   scrub(str(data.get("line", ""))), event_id))
                    if time.monotonic() > deadline:
                        break
        except httpx.ReadTimeout:
            if not answered:
                raise ControlPlaneError(f"Runpod REST API: GET {path} did not answer within {idle_s:g} s; "
                                        "try a larger idle_s") from None
            # quiet for idle_s: the backfill is over
        except httpx.TransportError as exc:
            raise ControlPlaneError(scrub(f"Runpod REST API: GET {path} failed: {type(exc).__name__}: {exc}. "
                                          "Check the network, and for the local target that localpod is "
                                          "running.")) from None
        return lines

    # -- templates ----------------------------------------------------------------------------

    def list_templates(self) -> list[Template]:
        return [Template.from_api(t) for t in self._json("GET", "/v2/templates").get("templates", [])]

    def get_template(self, template_id: str) -> Template:
        return Template.from_api(self._json("GET", f"/v2/templates/{self._path_id(template_id)}"))

    def create_template(self, body: Mapping[str, Any]) -> Template:
        return Template.from_api(self._json("POST", "/v2/templates", body=body))

    def update_template(self, template_id: str, body: Mapping[str, Any]) -> Template:
        return Template.from_api(self._json("PATCH", f"/v2/templates/{self._path_id(template_id)}", body=body))

    def delete_template(self, template_id: str) -> None:
        self._send("DELETE", f"/v2/templates/{self._path_id(template_id)}")

    # -- network volumes ----------------------------------------------------------------------

    def list_network_volumes(self) -> list[NetworkVolume]:
        data = self._json("GET", "/v2/network-volumes")
        return [NetworkVolume.from_api(v) for v in data.get("networkVolumes", [])]

    def get_network_volume(self, volume_id: str) -> NetworkVolume:
        return NetworkVolume.from_api(self._json("GET", f"/v2/network-volumes/{self._path_id(volume_id)}"))

    def create_network_volume(self, body: Mapping[str, Any]) -> NetworkVolume:
        return NetworkVolume.from_api(self._json("POST", "/v2/network-volumes", body=body))

    def update_network_volume(self, volume_id: str, body: Mapping[str, Any]) -> NetworkVolume:
        return NetworkVolume.from_api(self._json("PATCH", f"/v2/network-volumes/{self._path_id(volume_id)}",
                                                 body=body))

    def delete_network_volume(self, volume_id: str) -> None:
        self._send("DELETE", f"/v2/network-volumes/{self._path_id(volume_id)}")

    # -- catalog and billing ------------------------------------------------------------------

    def gpu_types(self, serverless_availability: bool = True, *, cuda: Mapping[str, str] | None = None
                  ) -> list[GpuType]:
        """The GPU catalog; with ``serverless_availability`` each type lists the data centers that
        stock it for serverless (``include=AVAILABILITY&product=SERVERLESS``). ``cuda`` is a CUDA
        filter (``CudaRequirement.catalog_params()``: ``cudaVersions`` or ``minCudaVersion``) that
        scopes that availability to hosts on a matching CUDA version."""
        params: dict[str, str] | None = None
        if serverless_availability:
            params = {"include": "AVAILABILITY", "product": "SERVERLESS", **(cuda or {})}
        return [GpuType.from_api(g) for g in self._json("GET", "/v2/catalog/gpus", params=params).get("gpus", [])]

    def data_centers(self, gpu_availability: bool = True) -> list[DataCenter]:
        params = {"include": "GPU_AVAILABILITY"} if gpu_availability else None
        data = self._json("GET", "/v2/catalog/datacenters", params=params)
        return [DataCenter.from_api(dc) for dc in data.get("dataCenters", [])]

    def serverless_billing(self, endpoint_id: str | None = None, *, bucket_size: str = "day",
                           last_n: int | None = None, start: str | None = None,
                           end: str | None = None) -> ServerlessBilling:
        """Serverless spend, per endpoint and time bucket. ``last_n`` buckets, or an RFC 3339
        ``start``/``end`` window (the API refuses both at once); default: the last 30 days."""
        params: dict[str, Any] = {"bucketSize": bucket_size}
        if endpoint_id is not None:
            params["serverlessId"] = endpoint_id
        if last_n is not None:
            params["lastN"] = last_n
        if start is not None:
            params["startTime"] = start
        if end is not None:
            params["endTime"] = end
        return ServerlessBilling.from_api(self._json("GET", "/v2/billing/serverless", params=params))


def by_name(resources: Iterable[Any], name: str) -> list[Any]:
    """Resources whose ``name`` is exactly ``name`` (Runpod names need not be unique)."""
    return [r for r in resources if getattr(r, "name", None) == name]
