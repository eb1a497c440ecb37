"""Forward a worker's OpenAI requests to a real OpenAI-compatible server.

When localpod is configured with a proxy URL (a ``vllm serve``, Ollama or llama.cpp server the
user runs locally), the emulated vLLM worker stops writing stand-in text and relays each job to
that server, keeping Runpod's queue, scaling and timing around real model output. The relay keeps
what worker-vllm does with ``vllm serve``'s answers: one parsed JSON object for a plain request,
one complete SSE event per yielded item for a stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from localpod.serverless.backends.base import WorkerCrash

_ERROR_BODY_LIMIT = 2000


def safe_url(url: str) -> str:
    """``url`` without user-info, so a password in the proxy URL never reaches an error message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def join_route(base_url: str, route: str) -> str:
    """The upstream URL for an OpenAI ``route``: a base that already ends in ``/v1`` (the usual way
    to write an OpenAI base URL) does not get a second ``/v1``."""
    base = base_url.rstrip("/")
    if base.endswith("/v1") and (route == "/v1" or route.startswith("/v1/")):
        return base + route[3:]
    return base + route


def _error_output(status: int, content: bytes) -> dict[str, Any]:
    """An upstream error as an output item carrying the HTTP status in ``error.code``.

    An OpenAI-shaped error body is kept (with ``code`` set to the status when it has none, as
    OpenAI's own API uses string codes); any other body is wrapped."""
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = dict(parsed["error"])
        if not isinstance(error.get("code"), int):
            error["code"] = status
        return {**parsed, "error": error}
    if isinstance(parsed, dict) and parsed.get("object") == "error":
        return {**parsed, "code": parsed["code"] if isinstance(parsed.get("code"), int) else status}
    text = content.decode("utf-8", "replace")[:_ERROR_BODY_LIMIT]
    return {
        "error": {
            "message": f"upstream server returned HTTP {status}: {text}",
            "type": "upstream_error",
            "param": None,
            "code": status,
        }
    }


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Re-frame a byte stream into complete SSE events (``...\\n\\n``), however TCP split them, so
    each yielded item is one event as the worker's clients expect."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while True:
            cut = [(i, n) for i, n in ((buffer.find(b"\n\n"), 2), (buffer.find(b"\r\n\r\n"), 4)) if i >= 0]
            if not cut:
                break
            index, size = min(cut)
            event, buffer = buffer[: index + size], buffer[index + size :]
            yield event.decode("utf-8", "replace")
    if buffer.strip():
        yield buffer.decode("utf-8", "replace")


class OpenAIProxy:
    """One HTTP client per worker, pointed at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``)."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 3600.0) -> None:
        self.base_url = base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0))

    def _unreachable(self, exc: Exception) -> WorkerCrash:
        return WorkerCrash(
            f"cannot reach the upstream OpenAI-compatible server at {safe_url(self.base_url)} "
            f"({type(exc).__name__}): is it running?"
        )

    async def request(self, method: str, route: str, body: Any) -> AsyncIterator[Any]:
        """Send one request and yield the output items: SSE event strings when ``body["stream"]``
        is true and the server streams, else one JSON value (or an error item)."""
        url = join_route(self.base_url, route)
        wants_stream = isinstance(body, dict) and body.get("stream") is True
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        try:
            async with self.client.stream(method, url, **kwargs) as response:
                if response.status_code >= 400:
                    yield _error_output(response.status_code, await response.aread())
                    return
                content_type = response.headers.get("content-type", "")
                if wants_stream and "text/event-stream" in content_type:
                    async for event in sse_events(response.aiter_bytes()):
                        yield event
                    return
                content = await response.aread()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._unreachable(exc) from None
        except httpx.TransportError as exc:
            yield {
                "error": {
                    "message": f"request to the upstream server failed: {type(exc).__name__}",
                    "type": "upstream_error",
                    "param": None,
                    "code": 502,
                }
            }
            return
        try:
            yield orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            yield {
                "error": {
                    "message": "the upstream server returned a non-JSON response",
                    "type": "upstream_error",
                    "param": None,
                    "code": 502,
                }
            }

    async def close(self) -> None:
        await self.client.aclose()
