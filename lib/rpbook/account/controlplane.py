"""Runpod's control plane through its REST API v2: the client and its retry policy.

Why REST v2 and not the SDK's GraphQL: see ``rpbook.core.settings``. Why a hand-written client: the
runbooks need few calls, typed answers and errors that say what to fix, and the API is small and
has an official OpenAPI spec (``openapi-v2.json``). The typed answers are in ``rpbook.account.resources``;
the rules for secrets in env maps in ``rpbook.core.secrets``.

Retries: reads (GET) are idempotent, so a 429, a 5xx or a dropped connection is retried with
exponential backoff (``Retry-After`` wins when the server sends one), at most ``max_attempts``
times. Writes are never retried on an HTTP answer: a POST that timed out or got a 502 may still
have created the resource, and creating it twice is exactly what the ``ensure_*`` plans exist to
prevent. A write is retried only when the connection could not even be opened (nothing was sent).
Every back-off is announced by :func:`announce_retry` before the wait, so a notebook cell that
waits for Runpod says so instead of looking hung.

Secrets: the API key is revealed only into the ``Authorization`` header; ``Secret`` values inside
request bodies (an HF token in a template's env) are revealed only while the body is encoded.
"""

from __future__ import annotations

import email.utils
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from rpbook import __version__
from rpbook.account.endpointscaling import ScalerSettings, WorkerSettings, scaling_body
from rpbook.account.resources import (
    DataCenter,
    Endpoint,
    GpuType,
    NetworkVolume,
    ServerlessBilling,
    Template,
    WorkerLogLine,
    WorkerSummary,
)
from rpbook.core.errors import ConfigError, ControlPlaneError
from rpbook.core.secrets import Secret, reveal_secrets, scrub
from rpbook.core.settings import Settings

DEFAULT_TIMEOUT_S = 30.0
MAX_ATTEMPTS = 4
BACKOFF_S = 0.5
"""First retry waits this long, then 2x, 4x ... (capped by ``MAX_BACKOFF_S``)."""
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0
"""A ``Retry-After`` longer than this is capped: a runbook cell should fail rather than hang."""


# -- errors -------------------------------------------------------------------------------

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


# -- retries -----------------------------------------------------------------------------------


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


class _CurrentStdout(logging.Handler):
    """Writes to whatever ``sys.stdout`` is when a record is emitted (a notebook cell's output,
    a captured test stream), not the stream of the moment the handler was made."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stdout, flush=True)
        except Exception:  # noqa: BLE001  # logging must never break the call it reports on
            self.handleError(record)


retry_log = logging.getLogger("rpbook.retry")
"""Where every back-off is reported, at INFO, to stdout: in a notebook the line appears in the
cell that waits. Its own handler (``propagate`` off) so that a root logger some library set up
(the runpod SDK calls ``logging.basicConfig``) neither repeats it on stderr nor hides it;
``retry_log.setLevel(logging.WARNING)`` silences it."""
if not retry_log.handlers:
    retry_log.addHandler(_CurrentStdout())
    retry_log.setLevel(logging.INFO)
    retry_log.propagate = False


def announce_retry(action: str, reason: str, wait_s: float, attempt: int, max_attempts: int) -> None:
    """The one place a retry is reported, before its back-off (as huggingface_hub's
    ``http_backoff`` logs "Retrying in Ns [Retry k/n]" in ``utils/_http.py``): ``attempt`` is the
    attempt that just failed, ``reason`` why (an HTTP status, a connection error)."""
    retry_log.info(
        scrub(f"{action}: retrying in {round(wait_s, 2):g} s after {reason} (attempt {attempt} of {max_attempts})")
    )


def _retry_reason(exc: BaseException | None) -> str:
    if isinstance(exc, _RetryableStatus):
        response = exc.response
        return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    if exc is None:
        return "no answer"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- the client --------------------------------------------------------------------------------


class RunpodClient:
    """Runpod's REST API v2 at ``settings.rest_url`` (real Runpod or localpod), as typed calls.

    Use it as a context manager (``with RunpodClient(settings, settings.runpod_api_key()) as rp``)
    so its connections are closed. ``transport`` and ``sleep`` exist for tests.
    """

    def __init__(
        self,
        settings: Settings,
        api_key: Secret,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(api_key, Secret):
            raise TypeError("api_key must be a rpbook Secret (settings.runpod_api_key()), never a plain string")
        self.settings = settings
        self._local = settings.target == "local"
        self.base_url = settings.rest_url.rstrip("/")
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key.reveal()}",
                "Accept": "application/json",
                "User-Agent": f"rpbook/{__version__}",
            },
        )

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

    def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        action = f"{method} {path}"
        is_read = method == "GET"
        attempts = 0

        def attempt() -> httpx.Response:
            nonlocal attempts
            attempts += 1
            response = self._http.request(
                method, path, params=params, json=reveal_secrets(body) if body is not None else None
            )
            if is_read and (response.status_code == 429 or response.status_code >= 500):
                raise _RetryableStatus(response)
            return response

        def retryable(exc: BaseException) -> bool:
            if is_read:
                return isinstance(exc, (_RetryableStatus, httpx.TransportError))
            # A write is repeated only when the connection never opened: nothing reached the server.
            return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            announce_retry(action, _retry_reason(exc), state.upcoming_sleep, state.attempt_number, self.max_attempts)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except _RetryableStatus as exc:
            raise error_from_response(exc.response, action, local=self._local) from None
        except httpx.TransportError as exc:
            sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            if not is_read and sent:
                # The request left: Runpod may have done it even though no answer came back.
                raise ControlPlaneError(
                    scrub(
                        f"Runpod REST API: {action} got no answer ({type(exc).__name__}: {exc}) after the request was "
                        f"sent, so it may have been done on Runpod. Run the cell again: plans adopt resources by name "
                        f"and never create a second one, so a re-run finds what was created and changes only what "
                        f"still differs."
                    )
                ) from None
            raise ControlPlaneError(
                scrub(
                    f"Runpod REST API: {action} at {self.base_url} failed after {attempts} attempt(s): "
                    f"{type(exc).__name__}: {exc}. Check the network, and for the local target that localpod is "
                    f"running ({self.settings.localpod_url or 'LOCALPOD_URL'})."
                )
            ) from None
        if response.status_code >= 400:
            raise error_from_response(response, action, local=self._local)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            raise ControlPlaneError(
                f"Runpod REST API: {method} {path} answered {response.status_code} with a body "
                "that is not JSON; is settings.rest_url the REST API?",
                response.status_code,
            ) from None
        if not isinstance(data, dict):
            raise ControlPlaneError(
                f"Runpod REST API: {method} {path} answered a JSON {type(data).__name__}, not an object",
                response.status_code,
            )
        return data

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Runpod's GraphQL API at ``{rest_url}/graphql`` (same key, ``Authorization: Bearer``, as
        runpodctl's ``internal/api`` client sends it), for what REST v2 cannot do (cached models,
        :mod:`rpbook.account.cachedmodels`). Values travel as ``variables``, never inlined into the
        query. Returns ``data``; a GraphQL error (HTTP 200 with ``errors``) raises ``ControlPlaneError``
        with Runpod's message. Like every write here, a mutation is repeated only when the connection
        never opened."""
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = dict(variables)
        result = self._json("POST", "/graphql", body=body)
        errors = result.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            message = first.get("message") if isinstance(first, dict) else first
            operation = query.strip().split("(", 1)[0].split("{", 1)[0].strip() or "query"
            raise ControlPlaneError(scrub(f"Runpod GraphQL: {operation} was refused: {message}"))
        data = result.get("data")
        if not isinstance(data, dict):
            raise ControlPlaneError("Runpod GraphQL answered without data; is settings.rest_url Runpod's API?")
        return data

    @staticmethod
    def _path_id(resource_id: str) -> str:
        if not isinstance(resource_id, str) or not resource_id.strip() or "/" in resource_id:
            raise ConfigError(
                f"{resource_id!r} is not a Runpod resource id (like 'abc123xyz0'); pass the id "
                "from a list_*/ensure_* result, not a name"
            )
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
        """``UpdateEndpointRequest``: only the fields sent change. Its ``workers`` and ``scaling``
        members come from ``rpbook.account.endpointscaling.scaling_body`` (as ``rpbook.account.plans``
        builds them); to change only those, use :meth:`set_workers` or :meth:`set_scaling`."""
        return Endpoint.from_api(self._json("PATCH", f"/v2/serverless/{self._path_id(endpoint_id)}", body=body))

    def set_scaling(
        self, endpoint_id: str, *, workers: WorkerSettings | None = None, scaler: ScalerSettings | None = None
    ) -> Endpoint:
        """PATCH the endpoint's workers and/or scaler, checked against the REST v2 spec's bounds
        (``rpbook.account.endpointscaling``) before anything is sent."""
        body = scaling_body(workers, scaler)
        if not body:
            raise ConfigError("set_scaling: nothing to change; give workers and/or a scaler")
        return self.update_endpoint(endpoint_id, body)

    def set_workers(
        self,
        endpoint_id: str,
        *,
        workers_min: int | None = None,
        workers_max: int | None = None,
        idle_timeout_s: int | None = None,
    ) -> Endpoint:
        """PATCH only the given worker fields (min, max, idle timeout), within the spec's bounds."""
        return self.set_scaling(endpoint_id, workers=WorkerSettings(workers_min, workers_max, idle_timeout_s))

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._send("DELETE", f"/v2/serverless/{self._path_id(endpoint_id)}")

    def endpoint_workers(self, endpoint_id: str) -> WorkerSummary:
        return WorkerSummary.from_api(self._json("GET", f"/v2/serverless/{self._path_id(endpoint_id)}/workers"))

    def worker_logs(
        self,
        endpoint_id: str,
        worker_id: str | None = None,
        *,
        tail: int = 100,
        source: str | None = None,
        idle_s: float = 1.0,
        max_s: float = 30.0,
    ) -> list[WorkerLogLine]:
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
        ids = (
            [self._path_id(worker_id)]
            if worker_id is not None
            else [w.id for w in self.endpoint_workers(endpoint_id).workers]
        )
        lines: list[WorkerLogLine] = []
        for wid in ids:
            lines += self._read_log(endpoint_id, wid, tail, source, idle_s, max_s)
        return sorted(lines, key=lambda line: line.ts) if worker_id is None else lines

    def _read_log(
        self, endpoint_id: str, worker_id: str, tail: int, source: str | None, idle_s: float, max_s: float
    ) -> list[WorkerLogLine]:
        path = f"/v2/serverless/{endpoint_id}/workers/{worker_id}/logs"
        params: dict[str, Any] = {"tail": tail}
        if source is not None:
            params["source"] = source
        lines: list[WorkerLogLine] = []
        deadline = time.monotonic() + max_s
        timeout = httpx.Timeout(self._http.timeout.connect or DEFAULT_TIMEOUT_S, read=max(idle_s, 0.05))
        answered = False
        try:
            with self._http.stream(
                "GET", path, params=params, timeout=timeout, headers={"Accept": "text/event-stream"}
            ) as response:
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
                            raise ControlPlaneError(
                                f"Runpod REST API: GET {path} sent a log event that is not "
                                "JSON; is settings.rest_url the REST API?"
                            ) from None
                        lines.append(
                            WorkerLogLine(
                                worker_id,
                                str(data.get("ts", "")),
                                str(data.get("source", "")),
                                scrub(str(data.get("line", ""))),
                                event_id,
                            )
                        )
                    if time.monotonic() > deadline:
                        break
        except httpx.ReadTimeout:
            if not answered:
                raise ControlPlaneError(
                    f"Runpod REST API: GET {path} did not answer within {idle_s:g} s; try a larger idle_s"
                ) from None
            # quiet for idle_s: the backfill is over
        except httpx.TransportError as exc:
            raise ControlPlaneError(
                scrub(
                    f"Runpod REST API: GET {path} failed: {type(exc).__name__}: {exc}. "
                    "Check the network, and for the local target that localpod is "
                    "running."
                )
            ) from None
        return lines

    # -- account ------------------------------------------------------------------------------

    def account_secret_names(self, name: str | None = None) -> list[str]:
        """Names of the account's Runpod secrets (never their values): ``GET /v2/account/secrets``,
        with ``name`` keeping the one of that name, compared case-insensitively (docs.runpod.io
        ``api-reference-v2/account/list-secrets``, runpod/docs 6bedc9af; the REST v2 spec of 2026-08
        predates the route). A key without access to it gets a ``ControlPlaneError`` with status 403."""
        params = {"name": name} if name else None
        secrets = self._json("GET", "/v2/account/secrets", params=params).get("secrets") or []
        return [str(s["name"]) for s in secrets if isinstance(s, Mapping) and isinstance(s.get("name"), str)]

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
        return NetworkVolume.from_api(self._json("PATCH", f"/v2/network-volumes/{self._path_id(volume_id)}", body=body))

    def delete_network_volume(self, volume_id: str) -> None:
        self._send("DELETE", f"/v2/network-volumes/{self._path_id(volume_id)}")

    # -- catalog and billing ------------------------------------------------------------------

    def gpu_types(
        self, serverless_availability: bool = True, *, cuda: Mapping[str, str] | None = None
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

    def serverless_billing(
        self,
        endpoint_id: str | None = None,
        *,
        bucket_size: str = "day",
        last_n: int | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> ServerlessBilling:
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
