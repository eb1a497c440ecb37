"""The serverless queue API (``api.runpod.ai/v2/{endpoint_id}/...``) and its OpenAI routes.

Queue operations: ``run``, ``runsync`` (``?wait=`` ms, 1000-300000, default 90 s), ``status``,
``stream``, ``cancel``, ``retry``, ``purge-queue``, ``health``. OpenAI routes under
``/openai/v1`` become jobs ``{"openai_route": ..., "openai_input": ...}`` on the same queue and
workers, as Runpod does, so cold starts and queueing apply to them too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from localpod import limits
from localpod.context import ServerContext
from localpod.http import JSONResponse, bearer_key, json_body
from localpod.serverless import jobs as J
from localpod.serverless.journal import JournalError
from localpod.serverless.platform import EndpointGone, EndpointRuntime

RUN_MAX_BYTES = 10 * 1024 * 1024
RUNSYNC_MAX_BYTES = 20 * 1024 * 1024
RUNSYNC_DEFAULT_WAIT_MS = 90_000
OPENAI_WAIT_S = 3600.0


class QueueError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def routes(ctx: ServerContext) -> list[BaseRoute]:
    platform = ctx.platform
    limiter = platform.rate_limiter

    def runtime_for(request: Request, operation: str) -> EndpointRuntime:
        if not ctx.is_valid_api_key(bearer_key(request)):
            raise QueueError(401, "Unauthorized: missing or invalid API key")
        endpoint_id = request.path_params["endpoint_id"]
        try:
            runtime = platform.runtime(endpoint_id)
        except EndpointGone:
            raise QueueError(404, f"endpoint {endpoint_id} not found") from None
        if ctx.settings.rate_limits and not limiter.allow(endpoint_id, operation):
            raise QueueError(429, f"rate limit exceeded for /{operation} on this endpoint; retry later")
        return runtime

    def find_job(runtime: EndpointRuntime, request: Request) -> J.Job:
        job = runtime.jobs.get(request.path_params["job_id"])
        if job is None:
            raise QueueError(404, "job not found (unknown id, or its result has expired)")
        return job

    def handler(operation: str, fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                runtime = runtime_for(request, operation)
                return await fn(request, runtime)
            except QueueError as exc:
                return _error(exc.status, exc.message)

        return endpoint

    async def new_job(request: Request, runtime: EndpointRuntime, sync: bool) -> J.Job:
        raw = await request.body()
        limit = RUNSYNC_MAX_BYTES if sync else RUN_MAX_BYTES
        if len(raw) > limit:
            raise QueueError(
                413,
                f"payload is {len(raw)} bytes; the limit for /{'runsync' if sync else 'run'} "
                f"is {limit // (1024 * 1024)} MB",
            )
        try:
            body = await json_body(request)
        except ValueError as exc:
            raise QueueError(400, str(exc)) from None
        if not isinstance(body, dict) or "input" not in body:
            raise QueueError(400, 'request body must be a JSON object with an "input" field')
        try:  # bounds and types of policy and webhook: localpod.limits
            timeout_ms, low_priority, ttl_ms = limits.job_policy(
                body.get("policy"), runtime.endpoint.timeout_ms, int(J.DEFAULT_TTL_S * 1000)
            )
        except ValueError as exc:
            raise QueueError(400, str(exc)) from None
        webhook_problem = limits.webhook_error(body["webhook"]) if body.get("webhook") is not None else None
        if webhook_problem is not None:
            raise QueueError(400, webhook_problem)
        job = J.Job(
            id=J.new_job_id(sync),
            endpoint_id=runtime.endpoint_id,
            input=body["input"],
            sync=sync,
            execution_timeout_s=timeout_ms / 1000,
            webhook=body.get("webhook"),
            low_priority=low_priority,
            ttl_s=ttl_ms / 1000,
        )
        try:
            runtime.submit(job)
        except JournalError as exc:
            raise QueueError(503, f"job not accepted: {exc}") from None
        return job

    async def run(request: Request, runtime: EndpointRuntime) -> Response:
        job = await new_job(request, runtime, sync=False)
        # Runpod acknowledges with the state the job entered, even if a worker took it at once.
        return JSONResponse({"id": job.id, "status": J.IN_QUEUE})

    async def runsync(request: Request, runtime: EndpointRuntime) -> Response:
        wait_ms = RUNSYNC_DEFAULT_WAIT_MS
        if "wait" in request.query_params:
            try:
                wait_ms = min(300_000, max(1000, int(request.query_params["wait"])))
            except ValueError:
                raise QueueError(400, "wait must be a number of milliseconds between 1000 and 300000") from None
        job = await new_job(request, runtime, sync=True)
        try:
            await asyncio.wait_for(job.done.wait(), timeout=wait_ms / 1000)
        except TimeoutError:
            return JSONResponse({"id": job.id, "status": job.status})
        return JSONResponse(job.view())

    async def status(request: Request, runtime: EndpointRuntime) -> Response:
        return JSONResponse(find_job(runtime, request).view())

    async def stream(request: Request, runtime: EndpointRuntime) -> Response:
        job = find_job(runtime, request)
        if job.stream_cursor >= len(job.chunks) and not job.is_final:
            job.changed.clear()
            try:
                await asyncio.wait_for(job.changed.wait(), timeout=0.5)
            except TimeoutError:
                pass
        body: dict[str, Any] = {"id": job.id, "status": job.status, "stream": job.take_stream()}
        if job.error is not None and job.is_final:
            body["error"] = job.error
        return JSONResponse(body)

    async def cancel(request: Request, runtime: EndpointRuntime) -> Response:
        job = find_job(runtime, request)
        runtime.cancel(job)
        return JSONResponse({"id": job.id, "status": job.status})

    async def retry(request: Request, runtime: EndpointRuntime) -> Response:
        job = find_job(runtime, request)
        if job.status not in (J.FAILED, J.TIMED_OUT):
            raise QueueError(400, f"only FAILED or TIMED_OUT jobs can be retried; this job is {job.status}")
        runtime.retry(job)
        return JSONResponse({"id": job.id, "status": J.IN_QUEUE})

    async def purge(request: Request, runtime: EndpointRuntime) -> Response:
        return JSONResponse({"removed": runtime.purge(), "status": "completed"})

    async def health(request: Request, runtime: EndpointRuntime) -> Response:
        return JSONResponse(runtime.health())

    # -- OpenAI routes -------------------------------------------------------------------------

    async def openai(request: Request, runtime: EndpointRuntime) -> Response:
        route = "/v1/" + request.path_params["route"]
        if request.method == "GET":
            job_input: dict[str, Any] = {"openai_route": route}
            body: Any = None
        else:
            try:
                body = await json_body(request)
            except ValueError as exc:
                return _openai_error(400, str(exc))
            if not isinstance(body, dict):
                return _openai_error(400, "request body must be a JSON object")
            job_input = {"openai_route": route, "openai_input": body}
        # Not journaled (durable=False): its id never reaches the client and its HTTP request dies
        # with the process, so there is nobody to hand it back to after a crash.
        job = J.Job(
            id=J.new_job_id(sync=True),
            endpoint_id=runtime.endpoint_id,
            input=job_input,
            sync=True,
            execution_timeout_s=runtime.endpoint.timeout_ms / 1000,
            durable=False,
        )
        runtime.submit(job)
        if isinstance(body, dict) and body.get("stream"):
            return await _stream_openai(job, request)
        try:
            await asyncio.wait_for(job.done.wait(), timeout=OPENAI_WAIT_S)
        except TimeoutError:
            runtime.cancel(job)
            return _openai_error(504, "the endpoint did not answer in time")
        response = _openai_result(job)
        # Nobody can ask for this job again (its id never reaches the client), so its output need
        # not be kept for the retention window; under load those outputs were most of the memory.
        job.output = None
        job.chunks.clear()
        runtime.jobs.pop(job.id, None)
        return response

    async def _stream_openai(job: J.Job, request: Request) -> Response:
        # Wait for the first chunk (or the end) before sending headers, so that an error
        # output (wrong model, bad request) gets its own status code as on Runpod.
        while not job.chunks and not job.is_final:
            job.changed.clear()
            if job.chunks or job.is_final:
                break
            await job.changed.wait()
        first = job.chunks[0] if job.chunks else None
        if job.status == J.COMPLETED and not _is_sse(first):
            return _openai_result(job)
        if job.is_final and job.status != J.COMPLETED:
            return _openai_result(job)

        async def body() -> AsyncIterator[bytes]:
            cursor = 0
            while True:
                while cursor < len(job.chunks):
                    chunk = job.chunks[cursor]
                    cursor += 1
                    if isinstance(chunk, str):
                        yield chunk.encode()
                if job.is_final:
                    return
                job.changed.clear()
                if cursor < len(job.chunks) or job.is_final:
                    continue
                await job.changed.wait()

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )

    routes_: list[BaseRoute] = [
        Route("/v2/{endpoint_id}/run", handler("run", run), methods=["POST"]),
        Route("/v2/{endpoint_id}/runsync", handler("runsync", runsync), methods=["POST"]),
        Route("/v2/{endpoint_id}/status/{job_id}", handler("status", status), methods=["GET", "POST"]),
        Route("/v2/{endpoint_id}/stream/{job_id}", handler("stream", stream), methods=["GET", "POST"]),
        Route("/v2/{endpoint_id}/cancel/{job_id}", handler("cancel", cancel), methods=["POST"]),
        Route("/v2/{endpoint_id}/retry/{job_id}", handler("retry", retry), methods=["POST"]),
        Route("/v2/{endpoint_id}/purge-queue", handler("purge-queue", purge), methods=["POST"]),
        Route("/v2/{endpoint_id}/health", handler("health", health), methods=["GET"]),
        Route("/v2/{endpoint_id}/openai/v1/{route:path}", handler("openai", openai), methods=["GET", "POST"]),
    ]
    return routes_


def _is_sse(chunk: Any) -> bool:
    return isinstance(chunk, str) and chunk.startswith("data:")


def _openai_error(status: int, message: str, kind: str = "BadRequestError") -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": status}}, status_code=status
    )


def _openai_result(job: J.Job) -> Response:
    """Serve a finished OpenAI job: the first output item, with the worker's error status if any."""
    if job.status == J.CANCELLED:
        return _openai_error(499, "request cancelled")
    if job.status == J.TIMED_OUT:
        return _openai_error(504, job.error or "execution timeout", "TimeoutError")
    if job.status == J.FAILED:
        return _failed_openai(job)
    output = job.output
    item = output[0] if isinstance(output, list) and output else output
    status = 200
    if isinstance(item, dict):
        err = item.get("error") if "error" in item else (item if item.get("object") == "error" else None)
        if err is not None:
            code = err.get("code") if isinstance(err, dict) else None
            if code is None and isinstance(item.get("code"), int):
                code = item["code"]
            status = code if isinstance(code, int) and 400 <= code < 600 else 400
    return JSONResponse(item, status_code=status)


_HTTP_STATUS_IN_TEXT = re.compile(r"\bHTTP (\d{3})\b")


def _failed_openai(job: J.Job) -> Response:
    """A FAILED job on an OpenAI route: the worker's error as an OpenAI error body.

    worker-vllm v2.25.2 (src/handler.py) yields ``{"error": {"message": "vLLM returned HTTP 404:
    <vLLM's body>", "type": "worker_error", "code": null}}`` and the runpod SDK turns it into a
    FAILED job. How Runpod's OpenAI route answers such a job is not documented; localpod answers with
    the HTTP status the worker reports (an int ``code``, else the ``HTTP nnn`` in its message, else
    500) and the worker's message, so OpenAI clients raise the matching error class."""
    item = job.error_item
    message = item.get("message") if isinstance(item, dict) else None
    if not isinstance(message, str):
        message = _sdk_error_message(job.error) or job.error or "the worker failed to handle the request"
    code = item.get("code") if isinstance(item, dict) else None
    if not (isinstance(code, int) and 400 <= code < 600):
        found = _HTTP_STATUS_IN_TEXT.search(message)
        code = int(found.group(1)) if found and 400 <= int(found.group(1)) < 600 else 500
    kind = item.get("type") if isinstance(item, dict) and isinstance(item.get("type"), str) else "worker_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}}, status_code=code)


def _sdk_error_message(error: str | None) -> str | None:
    """``error_type: error_message`` from the runpod SDK's JSON error of a handler that raised
    (``rp_job.run_job``), without its traceback; None for any other text."""
    try:
        parsed = json.loads(error or "")
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("error_message"), str):
        return f"{parsed.get('error_type', 'error')}: {parsed['error_message']}"
    return None
