"""``GET /v2/serverless/{id}/workers/{workerId}/logs``: a worker's log as Server-Sent Events.

As the REST v2 spec (``getWorkerLogs``) defines it: ``source`` (``container`` | ``system``, both
when omitted), ``tail`` (backfill, default 100, 0 to 5000), ``since`` (RFC 3339, replaces
``tail``) and the ``Last-Event-ID`` header (replaces both); each event is ``id: <ts>/<seq>`` and
``data: {"ts", "source", "line"}``; the headers ``Cache-Control: no-cache``, ``Connection:
keep-alive``, ``X-Accel-Buffering: no``. After the backfill the stream follows the worker's new
lines. localpod ends the stream when the worker has stopped (nothing more can come); for a live
worker it stays open until the client leaves. Unknown endpoints and workers are 404 problems;
the worker id may be one no longer listed by ``/workers`` while its log is kept
(:mod:`localpod.serverless.worker_logs`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import dumps
from localpod.serverless.worker_logs import SOURCES, LogLine, WorkerLog, parse_cursor
from localpod.services.rest.common import ApiError, resource, rest_backends

MAX_TAIL = 5000
DEFAULT_TAIL = 100
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


def _event(line: LogLine) -> bytes:
    return b"id: " + line.event_id.encode() + b"\ndata: " + dumps(line.payload()) + b"\n\n"


def _tail(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_TAIL
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"tail: {raw!r} is not an integer (0 to {MAX_TAIL})") from None
    if not 0 <= value <= MAX_TAIL:
        raise ApiError(400, f"tail: {value} is out of range; use 0 to {MAX_TAIL}")
    return value


def _cursor(name: str, raw: str | None) -> tuple[float, int | None] | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        return parse_cursor(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}") from None


async def follow(log: WorkerLog, backfill: list[LogLine], source: str | None, seen: int) -> AsyncIterator[bytes]:
    """The backfill, then each line after ``seen`` (the log's last line when the backfill was
    taken) until the worker's log closes."""
    for line in backfill:
        yield _event(line)
    while not log.closed:
        await log.wait(seen)
        fresh = log.after(seen, source)
        if log.lines:
            seen = max(seen, log.lines[-1].seq)
        for line in fresh:
            yield _event(line)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    endpoints = rest_backends(ctx).endpoints

    async def worker_logs(request: Request) -> Response:
        endpoint_id = request.path_params["id"]
        worker_id = request.path_params["workerId"]
        endpoints.get(endpoint_id)  # 404 for an unknown endpoint
        log = ctx.platform.worker_logs.get(endpoint_id, worker_id)
        if log is None:
            raise ApiError(
                404,
                f"worker {worker_id!r} not found on serverless endpoint {endpoint_id!r} (ids come "
                f"from GET /v2/serverless/{endpoint_id}/workers; logs of stopped workers are kept "
                "for the endpoint's most recent workers only)",
            )
        source = request.query_params.get("source") or None
        if source is not None and source not in SOURCES:
            raise ApiError(400, f"source: {source!r} is not one of {', '.join(SOURCES)} (omit it for both)")
        tail = _tail(request.query_params.get("tail"))
        since = _cursor("since", request.query_params.get("since"))
        after = _cursor("Last-Event-ID", request.headers.get("last-event-id"))
        backfill = log.select(source=source, tail=tail, since=since[0] if since else None, after=after)
        seen = log.lines[-1].seq if log.lines else 0
        return StreamingResponse(
            follow(log, backfill, source, seen), media_type="text/event-stream", headers=SSE_HEADERS
        )

    return [resource(ctx, "/v2/serverless/{id}/workers/{workerId}/logs", {"GET": worker_logs})]
