"""Small HTTP helpers shared by every service: fast JSON responses, RFC 9457 problems, auth."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
"""Job outputs may hold numpy arrays (the Infinity worker's vectors); on Runpod a worker's output
is JSON by the time anyone sees it, so every path that sends an output encodes it with these."""


def dumps(content: Any) -> bytes:
    """JSON bytes for a response or webhook body (numpy arrays become JSON lists)."""
    return orjson.dumps(content, option=JSON_OPTIONS)


class JSONResponse(Response):
    """JSON via orjson: the queue's hot path serialises every job through this."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem document, the error shape of Runpod's REST API v2."""
    body: dict[str, Any] = {"title": title or _TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json", headers=headers)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def strict_bearer_key(request: Request) -> str | None:
    """The API key of ``Authorization: Bearer <key>`` and nothing else: REST v2's only scheme
    (openapi-v2.json ``securitySchemes.bearerAuth``: "send it in the ``Authorization`` header as
    ``Bearer <api_key>``"). A bare key or ``?api_key=`` is no key there (401)."""
    scheme, _, rest = request.headers.get("authorization", "").partition(" ")
    return (rest.strip() or None) if scheme.lower() == "bearer" else None


def bearer_key(request: Request) -> str | None:
    """The API key a request carries to the queue or GraphQL: ``Authorization: Bearer <key>``, a
    bare key (as in Runpod's curl examples), or ``?api_key=`` (GraphQL docs examples,
    ``sdks/graphql/manage-endpoints.mdx``). REST v2 takes only the first: :func:`strict_bearer_key`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, rest = header.partition(" ")
        if rest and scheme.lower() == "bearer":
            return rest.strip()
        return header.strip()
    return request.query_params.get("api_key")


async def json_body(request: Request) -> Any:
    """Parse a JSON body; raises ``ValueError`` with a readable message when it is not JSON."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"request body is not valid JSON: {exc}") from None
