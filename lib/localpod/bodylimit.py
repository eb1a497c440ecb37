"""A bound on every request body, enforced before a handler reads it.

Runpod documents payload limits for the queue: ``/run`` 10 MB and ``/runsync`` 20 MB (docs,
``serverless/endpoints/send-requests``, summarised in /work/shared/reference/runpod-api.md); the
OpenAI-compatible routes go through the same queue as a ``/runsync`` job, so they take the larger
bound. The control plane (REST v2, GraphQL) documents none; its bodies are a few kilobytes, so
localpod takes 2 MiB there (a template of 50 env variables of 40 KiB each still fits): eight 50 MiB
names sent at once then peak at 1.2x localpod's idle memory (``benchmarks/localpod_abuse.py``).
Without a bound they were read, parsed and stored: 1.7 GB of memory and a 419 MB state file
(issue 20).

A body over its bound is refused with a 413 problem: at once when ``Content-Length`` says so, else
as soon as the streamed bytes pass it; at most the bound is ever held in memory.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from localpod.http import problem

MB = 1000 * 1000
RUN_BODY_BYTES = 10 * MB
RUNSYNC_BODY_BYTES = 20 * MB
CONTROL_BODY_BYTES = 2 * 1024 * 1024

_RUN = re.compile(r"^/api\.runpod\.ai/v2/[^/]+/run$")
_RUNSYNC = re.compile(r"^/api\.runpod\.ai/v2/[^/]+/(runsync|openai/.*)$")
_WORKER_RESULT = re.compile(r"^/api\.runpod\.ai/v2/[^/]+/job-(done|stream)/")
"""A worker's result or stream chunk (localpod.services.worker_api): as large as a /runsync answer."""


def body_limit(path: str) -> int:
    """The largest body ``path`` accepts, in bytes."""
    if _RUN.match(path):
        return RUN_BODY_BYTES
    if _RUNSYNC.match(path) or _WORKER_RESULT.match(path):
        return RUNSYNC_BODY_BYTES
    return CONTROL_BODY_BYTES


def _too_large(limit: int, path: str) -> Any:
    return problem(
        413,
        f"request body is larger than {limit} bytes, the most {path} accepts (Runpod: /run 10 MB, /runsync 20 MB); "
        "send less, or put large inputs in storage and send their URL",
    )


class BodySizeLimit:
    """ASGI middleware: 413 for a body over :func:`body_limit`, before any handler reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = body_limit(path)
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _too_large(limit, path)(scope, receive, send)
                    return
                if declared >= 0:  # the server stops at Content-Length; streamed bytes are counted below anyway
                    break
        chunks: list[bytes] = []
        size = 0
        while True:  # read the body here, at most ``limit`` bytes, then replay it to the app
            message = await receive()
            if message["type"] != "http.request":
                chunks = []
                await self.app(scope, _replay_disconnect(message, receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _too_large(limit, path)(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _replay_disconnect(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
