"""``/_localpod/*``: the emulator's own control routes for tests and benchmarks.

- ``GET /_localpod/health``: liveness, version, profile.
- ``GET /_localpod/state``: every durable resource plus live workers and queue counts.
- ``POST /_localpod/reset``: forget all resources, jobs and workers.
- ``POST /_localpod/echo``: parses a JSON body and returns it; the bare-route baseline that the
  overhead benchmark compares the queue against (same server, same HTTP and JSON work).
- ``GET|PATCH /_localpod/config``: the timing profile (switch ``profile`` or override single
  durations), ``proxy_url`` and ``rate_limits``.

They carry no authentication: localpod binds loopback by default.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from localpod import __version__
from localpod.context import ServerContext
from localpod.http import JSONResponse, json_body, problem
from localpod.profiles import get_profile


def routes(ctx: ServerContext) -> list[BaseRoute]:
    settings = ctx.settings

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "profile": settings.profile.name})

    async def state(request: Request) -> Response:
        body = ctx.store.to_dict()
        body["live"] = ctx.platform.snapshot()
        return JSONResponse(body)

    async def reset(request: Request) -> Response:
        await ctx.platform.reset()
        ctx.store.reset()
        return JSONResponse({"status": "reset"})

    async def echo(request: Request) -> Response:
        try:
            return JSONResponse(await json_body(request))
        except ValueError as exc:
            return problem(400, str(exc))

    def config_body() -> dict:
        return {"profile": settings.profile.to_dict(), "proxy_url": settings.proxy_url,
                "rate_limits": settings.rate_limits}

    async def config(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(config_body())
        try:
            body = await json_body(request) or {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            profile = settings.profile
            if "profile" in body:
                profile = get_profile(str(body["profile"]))
            if "overrides" in body:
                profile = profile.with_overrides(dict(body["overrides"]))
            unknown = set(body) - {"profile", "overrides", "proxy_url", "rate_limits"}
            if unknown:
                raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        except ValueError as exc:
            return problem(400, str(exc))
        settings.profile = profile
        if "proxy_url" in body:
            settings.proxy_url = body["proxy_url"] or None
        if "rate_limits" in body:
            settings.rate_limits = bool(body["rate_limits"])
        return JSONResponse(config_body())

    return [
        Route("/health", health, methods=["GET"]),
        Route("/state", state, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/config", config, methods=["GET", "PATCH"]),
        Route("/echo", echo, methods=["POST"]),
    ]
