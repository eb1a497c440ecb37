"""What every REST v2 resource module shares: auth, method dispatch, body validation, errors.

Runpod's REST API v2 answers every failure with an RFC 9457 problem document, checks the API key
before anything else (401; only ``Authorization: Bearer <key>``, the spec's one security scheme,
while the queue and GraphQL also take a bare key or ``?api_key=``), and separates three kinds of bad
request: a body that is not JSON (400), a body that breaks the schema (422, one ``errors`` entry per
field) and a body that is well-formed but breaks a rule the schema cannot express, such as
``workers.max`` below ``workers.min`` (400). Handlers here raise :class:`ApiError`, the resource
backends (:mod:`localpod.resources`) raise :class:`~localpod.resources.errors.ResourceError`, and
:func:`resource` turns either into that problem document (:func:`from_resource_error`), so handlers
only parse and serialise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from localpod.context import ServerContext
from localpod.http import json_body, problem, strict_bearer_key
from localpod.resources import Backends, backends
from localpod.resources.errors import ResourceError

Handler = Callable[[Request], Awaitable[Response]]
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """A request the API refuses: becomes a problem document with ``status``."""

    def __init__(self, status: int, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def not_found(kind: str, resource_id: str) -> ApiError:
    return ApiError(404, f"{kind} {resource_id!r} not found")


def bad_request(errors: list[str]) -> ApiError:
    """A rule violation (400), listing every problem so a caller can fix them in one go."""
    return ApiError(400, "; ".join(errors), errors)


def unprocessable(errors: list[str], detail: str = "Request validation failed.") -> ApiError:
    return ApiError(422, detail, errors)


def rest_backends(ctx: ServerContext) -> Backends:
    """The resource backends as REST v2 words its refusals and applies its rules."""
    return backends(ctx.store, ctx.platform, "rest")


def from_resource_error(exc: ResourceError) -> ApiError:
    """A backend's refusal as REST v2 answers it: a missing resource is a 404 and a state conflict
    a 400, each one sentence; broken rules are a 400 listing ``field: message`` for every problem;
    what localpod or the resource cannot take at all is a 422, listed the same way."""
    if exc.kind == "not_found":
        return ApiError(404, exc.message)
    if exc.kind == "conflict":
        return ApiError(400, exc.message)
    lines = [str(error) for error in exc.all]
    return unprocessable(lines) if exc.kind == "unsupported" else bad_request(lines)


def resource(ctx: ServerContext, path: str, handlers: Mapping[str, Handler]) -> Route:
    """One route for a path: API-key check first, then the method's handler, else a 405 problem.

    Registering every method on one route (instead of Starlette's per-method routes) is what lets
    a wrong method get a problem document with ``Allow`` like the real API, not a plain-text 405.
    """
    allow = ", ".join(sorted(handlers))

    async def endpoint(request: Request) -> Response:
        key = strict_bearer_key(request)
        if not key:
            return problem(
                401,
                "missing bearer token: send the API key as Authorization: Bearer <key> (REST v2 takes no other form)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not ctx.is_valid_api_key(key):
            return problem(401, "invalid or expired API key", headers={"WWW-Authenticate": "Bearer"})
        handler = handlers.get(request.method)
        if handler is None:
            return problem(405, "The requested method is not allowed for this path.", headers={"Allow": allow})
        try:
            return await handler(request)
        except ResourceError as refusal:
            exc = from_resource_error(refusal)
        except ApiError as error:
            exc = error
        return problem(exc.status, exc.detail, errors=exc.errors)

    return Route(path, endpoint, methods=list(ALL_METHODS))


def format_validation_errors(exc: ValidationError, hints: Mapping[str, str] | None = None) -> list[str]:
    """Pydantic errors as ``"gpu.pools[0]: message"`` strings, the field paths in the spec's
    camelCase. ``hints`` replaces the message for a path (e.g. why ``dataCenter`` is refused)."""
    messages: list[str] = []
    for error in exc.errors():
        path = ""
        previous: object = None
        for part in error["loc"]:
            if previous == "scaling" and part in ("QUEUE_DELAY", "REQUEST_COUNT"):
                previous = part
                continue  # pydantic puts the discriminator's tag in the path; the spec's field has none
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += f".{part}" if path else str(part)
            previous = part
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (not in the request schema)"
        elif error["type"] == "missing":
            message = "required"
        if hints and path in hints:
            message = hints[path]
        messages.append(f"{path or 'body'}: {message}")
    return messages


class RequestBody(BaseModel):
    """Base for request bodies: ``schema_errors`` holds the schema rules pydantic cannot express
    declaratively (``if``/``then``, ``dependentRequired``, ``uniqueItems``, ``minProperties``)."""

    def schema_errors(self) -> list[str]:
        return []

    def rule_errors(self) -> list[str]:
        """Bounds the schema does not state but Runpod (or the container runtime) enforces: 400."""
        return []

    def given(self, field: str) -> bool:
        """Whether the client sent this field (PATCH: only sent fields change)."""
        return field in self.model_fields_set


async def parse_body(request: Request, model: type[M], hints: Mapping[str, str] | None = None) -> M:
    """Read and validate a JSON request body against ``model``: 400 when it is not JSON or absent,
    422 with one entry per field problem when it breaks the schema."""
    try:
        data = await json_body(request)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    if data is None:
        raise ApiError(400, "request body is required")
    if not isinstance(data, dict):
        raise unprocessable(["body: must be a JSON object"])
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise unprocessable(format_validation_errors(exc, hints)) from None
    errors = body.schema_errors() if isinstance(body, RequestBody) else []
    if errors:
        raise unprocessable(errors)
    rules = body.rule_errors() if isinstance(body, RequestBody) else []
    if rules:
        raise bad_request(rules)
    return body


def query_list(request: Request, name: str) -> list[str]:
    """A comma-separated (``style: form, explode: false``) query parameter as a list; repeated
    parameters are accepted too."""
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values
