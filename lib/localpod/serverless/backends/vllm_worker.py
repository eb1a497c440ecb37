"""Emulation of ``runpod/worker-v1-vllm`` ≥ v2.24: a Runpod handler in front of ``vllm serve``.

The real worker turns each job into an HTTP request to the vLLM OpenAI server running in the same
container and yields vLLM's answer: the parsed JSON once, or each SSE event of a stream. This
module is the handler: :func:`normalize_job_input` is the worker's job -> request mapping and
:func:`as_worker_item` what it makes of vLLM's HTTP errors. The server it talks to is
:class:`~localpod.serverless.backends.vllm_server.EmulatedVllmServer`, or, with
``spec.proxy_url`` set, a real OpenAI-compatible server (:mod:`.proxy`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from http import HTTPStatus
from typing import Any

import orjson

from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec
from localpod.serverless.backends.proxy import OpenAIProxy
from localpod.serverless.backends.vllm_server import DEFAULT_MAX_N_SEQUENCES, EmulatedVllmServer, HttpError

DEFAULT_CHAT_ROUTE = "/v1/chat/completions"
DEFAULT_MAX_MODEL_LEN = 32768


# -- job input -> HTTP request (the worker's own logic) --------------------------------------------


def normalize_job_input(job_input: Any) -> tuple[str, str, dict[str, Any] | None]:
    """Map a job's ``input`` to ``(route, method, body)`` as worker-vllm ≥ v2.24 does.

    ``openai_input`` (non-empty) is POSTed to ``openai_route`` (default chat); a bare
    ``openai_route`` is a GET; ``route``/``body``/``method`` is a generic request; ``prompt`` or
    ``messages`` with ``sampling_params`` and ``stream`` map to ``/v1/completions`` or
    ``/v1/chat/completions``. Raises ``ValueError`` for anything else.
    """
    if not isinstance(job_input, Mapping):
        raise ValueError("Job input must be a JSON object")
    if job_input.get("openai_input"):
        if not isinstance(job_input["openai_input"], Mapping):
            raise ValueError("openai_input must be a JSON object")
        return job_input.get("openai_route") or DEFAULT_CHAT_ROUTE, "POST", dict(job_input["openai_input"])
    if "openai_route" in job_input:
        return job_input["openai_route"], "GET", None
    if "route" in job_input:
        body = job_input.get("body")
        method = str(job_input.get("method") or ("POST" if body is not None else "GET")).upper()
        return job_input["route"], method, body
    messages, prompt = job_input.get("messages"), job_input.get("prompt")
    if messages is None and prompt is None:
        raise ValueError(
            "Job input must contain one of: openai_input (+openai_route), route (+body), or prompt/messages."
        )
    body = dict(job_input.get("sampling_params") or {})
    body["stream"] = bool(job_input.get("stream", False))
    if messages is not None:
        body["messages"] = messages
        return DEFAULT_CHAT_ROUTE, "POST", body
    body["prompt"] = prompt
    return "/v1/completions", "POST", body


def worker_error(message: str) -> dict[str, Any]:
    """The error item worker-vllm ≥ v2.24 yields for problems of its own (not vLLM's)."""
    return {"error": {"message": message, "type": "worker_error", "code": None}}


def as_worker_item(item: Any) -> Any:
    """What worker-vllm v2.25.2 yields for one answer of ``vllm serve``: an HTTP error (status >= 400)
    becomes ``worker_error("vLLM returned HTTP <status>: <vLLM's body>")`` (src/handler.py), which the
    runpod SDK then turns into a FAILED job; anything else passes through unchanged."""
    if isinstance(item, HttpError):
        return worker_error(f"vLLM returned HTTP {int(item.status)}: {orjson.dumps(item.body).decode()}")
    if not isinstance(item, dict):
        return item
    error = item.get("error")
    if isinstance(error, dict) and error.get("type") != "worker_error":
        status = error.get("code")
    elif item.get("object") == "error":
        status = item.get("code")
    else:
        return item
    status = status if isinstance(status, int) and status >= 400 else HTTPStatus.INTERNAL_SERVER_ERROR
    return worker_error(f"vLLM returned HTTP {int(status)}: {orjson.dumps(item).decode()}")


# -- the backend ----------------------------------------------------------------------------------


class VllmWorker(WorkerBackend):
    """``runpod/worker-v1-vllm``: a generator handler whose output is the list of yielded items."""

    generator = True

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        self.model_name = (spec.env.get("MODEL_NAME") or "").strip()
        self.served_name = (spec.env.get("OPENAI_SERVED_MODEL_NAME_OVERRIDE") or "").strip() or self.model_name
        self.server: EmulatedVllmServer | None = None
        self.proxy: OpenAIProxy | None = None

    @property
    def model_repos(self) -> list[str]:
        return [self.model_name] if self.model_name else []

    async def load(self) -> None:
        """Start the request target: the upstream proxy, or the emulated vLLM server. Without
        ``MODEL_NAME`` ``vllm serve`` has no model and exits, which crash-loops the worker."""
        if self.spec.proxy_url:
            self.proxy = OpenAIProxy(
                self.spec.proxy_url,
                self.spec.proxy_api_key,
                timeout_s=float(self.spec.env.get("REQUEST_TIMEOUT") or 3600),
            )
            return
        if not self.model_name:
            raise WorkerCrash("MODEL_NAME is not set: `vllm serve` exited during startup (no --model argument)")
        raw_len = (self.spec.env.get("MAX_MODEL_LEN") or "").strip()
        try:
            max_model_len = int(raw_len) if raw_len else DEFAULT_MAX_MODEL_LEN
        except ValueError:
            raise WorkerCrash(f"vllm serve: invalid --max-model-len {raw_len!r}") from None
        if max_model_len < 1:
            raise WorkerCrash(f"vllm serve: invalid --max-model-len {raw_len!r}")
        try:
            max_n = int(self.spec.env.get("VLLM_MAX_N_SEQUENCES") or DEFAULT_MAX_N_SEQUENCES)
        except ValueError:
            raise WorkerCrash("vllm serve: VLLM_MAX_N_SEQUENCES must be an integer") from None
        self.server = EmulatedVllmServer(self.model_name, self.served_name, max_model_len, max_n)

    async def handle(self, job_input: Any, ctx: JobContext) -> AsyncIterator[Any]:
        try:
            route, method, body = normalize_job_input(job_input)
        except ValueError as exc:
            yield worker_error(str(exc))
            return
        if not isinstance(route, str) or not route.startswith("/"):
            yield worker_error("Proxy route must be an absolute HTTP path")
            return
        if self.proxy is not None:
            async for item in self.proxy.request(method, route, body):
                yield as_worker_item(item)
            return
        if self.server is None:
            raise WorkerCrash("vLLM server process is not running")
        async for item in self.server.handle(method, route, body, ctx):
            yield as_worker_item(item)

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
            self.proxy = None
