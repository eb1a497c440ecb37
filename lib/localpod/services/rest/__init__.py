"""Runpod REST API v2 (``https://api.runpod.io/v2``), one module per resource.

Mounted under ``/api.runpod.io``, so clients use ``http://127.0.0.1:PORT/api.runpod.io`` where they
would use ``https://api.runpod.io``. Each resource module only parses requests, calls the resource
backends (:mod:`localpod.resources`) and serialises their answers; responses carry exactly the
fields of the official OpenAPI schemas (the tests validate every one). :func:`routes` puts the
modules' routes together and answers any other ``/v2/...`` path with a 404 problem document, as the
real API does, instead of Starlette's plain text.
"""

from __future__ import annotations

import re
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.services.rest import (
    billing,
    catalog_api,
    catalog_cpus,
    secrets_api,
    serverless,
    templates,
    volumes,
    worker_logs_api,
)
from localpod.services.rest.common import ALL_METHODS, ApiError, resource

RouteT = TypeVar("RouteT", bound=BaseRoute)


def any_character(route: RouteT) -> RouteT:
    """``route`` with its path pattern matching every character, newlines included, and only
    whole paths.

    Starlette's ``path`` convertor is ``.*``, which stops at a newline, so a path such as
    ``/v2/serverless/abc%0A`` (a pasted id with its line end) matched nothing and got Starlette's
    ``text/plain`` 404; the real API answers any unknown path with a problem document. And its
    patterns end in ``$``, which also matches before a final newline: ``/v2/templates%0A`` listed
    the templates."""
    pattern = getattr(route, "path_regex", None)
    if isinstance(pattern, re.Pattern):
        text = pattern.pattern[:-1] + r"\Z" if pattern.pattern.endswith("$") else pattern.pattern
        route.path_regex = re.compile(text, pattern.flags | re.DOTALL)  # type: ignore[attr-defined]
    return route


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Every REST v2 route, relative to the ``/api.runpod.io`` mount."""

    async def unknown(request: Request) -> Response:
        raise ApiError(404, f"no REST v2 route for {request.method} /v2/{request.path_params['rest']}")

    routes_ = [
        *serverless.routes(ctx),
        *worker_logs_api.routes(ctx),
        *templates.routes(ctx),
        *volumes.routes(ctx),
        *catalog_api.routes(ctx),
        *catalog_cpus.routes(ctx),
        *billing.routes(ctx),
        *secrets_api.routes(ctx),
        resource(ctx, "/v2/{rest:path}", dict.fromkeys(ALL_METHODS, unknown)),
    ]
    return [any_character(route) for route in routes_]
