"""The ASGI application: one port, each real host mounted under its own path prefix."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from localpod.bodylimit import BodySizeLimit
from localpod.config import Settings
from localpod.context import ServerContext
from localpod.guard import HostOriginGuard
from localpod.http import problem
from localpod.serverless.platform import Platform
from localpod.services import control, graphql_api, hub, queue, rest, worker_api
from localpod.store import StateWriteError, Store

log = logging.getLogger("localpod.requests")


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration. Never headers or bodies, so no
    key or token can reach the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, (time.perf_counter() - start) * 1000)


async def _state_write_failed(request: Request, exc: Exception) -> Response:
    """A change the state file refused was not made (``Store.change``): say so, and that it can be retried."""
    return problem(503, str(exc.strerror if isinstance(exc, OSError) else exc), headers={"Retry-After": "60"})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    store = Store(settings.state_file)
    platform = Platform(settings, store)
    ctx = ServerContext(settings=settings, store=store, platform=platform)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.loop = asyncio.get_running_loop()
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()

    routes = [
        rest.any_character(Mount("/api.runpod.io", routes=rest.routes(ctx) + graphql_api.routes(ctx))),
        Mount("/api.runpod.ai", routes=queue.routes(ctx) + worker_api.routes(ctx)),
        Mount("/huggingface.co", routes=hub.routes(ctx)),
        Mount("/_localpod", routes=control.routes(ctx)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={StateWriteError: _state_write_failed})
    app.state.ctx = ctx
    app.add_middleware(BodySizeLimit)  # inside the guard: a foreign page's body is never read
    app.add_middleware(HostOriginGuard, settings=settings)  # every route, before any handler runs
    if settings.log_requests:
        app.add_middleware(RequestLogMiddleware)
    return app
