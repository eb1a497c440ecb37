"""The emulated ``vllm serve``: the OpenAI-compatible server inside worker-vllm's container.

worker-vllm (v2.25.2, ``src/handler.py``) turns each job into an HTTP request to this server and
yields its answer (:mod:`.vllm_worker`). :class:`EmulatedVllmServer` answers OpenAI routes as vLLM
would: response shapes, defaults such as the 16-token ``max_tokens`` of ``/v1/completions``, error
bodies (``ErrorResponse``, whose ``code`` is the HTTP status), and the FastAPI layer's own 404/405
(:class:`HttpError`). The text comes from the deterministic stand-in model of :mod:`.textmodel`,
paced by the profile's time to first token and inter-token time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson

from localpod.serverless.backends import textmodel
from localpod.serverless.backends.base import JobContext

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""vLLM's ``CompletionRequest.max_tokens`` default: the reason worker-vllm users get 16 tokens."""

DEFAULT_MAX_N_SEQUENCES = 16384
"""vLLM's ``envs.VLLM_MAX_N_SEQUENCES`` default: the largest ``n`` (choices per request) it accepts."""


@dataclass(frozen=True)
class HttpError:
    """An answer of the server's HTTP layer rather than of vLLM's OpenAI handlers (an unknown route
    or method): FastAPI's status and body, which carries no status of its own (``{"detail": "Not
    Found"}``). The worker wraps it as it wraps any HTTP error (:func:`.vllm_worker.as_worker_item`)."""

    status: int
    body: dict[str, Any]


def openai_error(
    message: str, err_type: str = "BadRequestError", status: int = HTTPStatus.BAD_REQUEST, param: str | None = None
) -> dict[str, Any]:
    """vLLM 0.2x's ``ErrorResponse``: ``{"error": {message, type, param, code}}``, ``code`` = HTTP status."""
    return {"error": {"message": message, "type": err_type, "param": param, "code": int(status)}}


class _RequestError(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        status: int = HTTPStatus.BAD_REQUEST,
        err_type: str = "BadRequestError",
    ) -> None:
        super().__init__(message)
        self.body = openai_error(message, err_type, status, param)


def sse(payload: Mapping[str, Any]) -> str:
    """One server-sent event as vLLM writes it."""
    return f"data: {orjson.dumps(payload).decode()}\n\n"


SSE_DONE = "data: [DONE]\n\n"


class EmulatedVllmServer:
    """Answers OpenAI routes like ``vllm serve`` 0.2x, generating text with the stand-in model."""

    def __init__(
        self, model_path: str, served_name: str, max_model_len: int, max_n: int = DEFAULT_MAX_N_SEQUENCES
    ) -> None:
        self.model_path = model_path
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.max_n = max_n
        self.created = int(time.time())

    async def handle(self, method: str, route: str, body: Any, ctx: JobContext) -> AsyncIterator[Any]:
        """Yield the server's answer to one request: one JSON object (an ``ErrorResponse`` for a
        refused request, an :class:`HttpError` for an unknown route), or SSE text chunks."""
        path = route.split("?", 1)[0].rstrip("/") or "/"
        if path == "/v1/models" and method == "GET":
            yield self.models()
            return
        if path in ("/v1/chat/completions", "/v1/completions") and method == "POST":
            if not isinstance(body, dict):
                yield openai_error("Expected a JSON object as the request body")
                return
            try:
                generator = self._chat(body, ctx) if path == "/v1/chat/completions" else self._completions(body, ctx)
                async for item in generator:
                    yield item
            except _RequestError as exc:
                yield exc.body
            return
        known = {"/v1/models": "GET", "/v1/chat/completions": "POST", "/v1/completions": "POST"}
        if path in known:
            yield HttpError(HTTPStatus.METHOD_NOT_ALLOWED, {"detail": "Method Not Allowed"})
        else:
            yield HttpError(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

    # -- /v1/models

    def models(self) -> dict[str, Any]:
        """vLLM's ``ModelList``; ``owned_by`` stays ``vllm`` as the real server says, the extra
        ``localpod`` field tells a reader the text comes from the stand-in model."""
        return {
            "object": "list",
            "data": [
                {
                    "id": self.served_name,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "vllm",
                    "root": self.model_path,
                    "parent": None,
                    "max_model_len": self.max_model_len,
                    "permission": [
                        {
                            "id": f"modelperm-{uuid.uuid4().hex[:16]}",
                            "object": "model_permission",
                            "created": self.created,
                            "allow_create_engine": False,
                            "allow_sampling": True,
                            "allow_logprobs": True,
                            "allow_search_indices": False,
                            "allow_view": True,
                            "allow_fine_tuning": False,
                            "organization": "*",
                            "group": None,
                            "is_blocking": False,
                        }
                    ],
                    "localpod": textmodel.MODEL_NOTE,
                }
            ],
        }

    # -- shared request checks

    def _check_model(self, body: Mapping[str, Any]) -> None:
        model = body.get("model")
        if model and model != self.served_name:
            raise _RequestError(f"The model `{model}` does not exist.", "model", HTTPStatus.NOT_FOUND, "NotFoundError")

    def _sampling(self, body: Mapping[str, Any], prompt_tokens: int, default_max: int | None) -> dict[str, Any]:
        """Validate sampling parameters and resolve ``max_tokens`` the way vLLM does."""
        if prompt_tokens >= self.max_model_len:
            raise _RequestError(
                f"This model's maximum context length is {self.max_model_len} tokens. However, your "
                f"request has {prompt_tokens} input tokens. Please reduce the length of the input."
            )
        requested = body.get("max_completion_tokens")
        if requested is None:
            requested = body.get("max_tokens")
        if requested is None:
            requested = default_max
        room = self.max_model_len - prompt_tokens
        if requested is None:
            max_tokens = room
        else:
            if not isinstance(requested, int) or isinstance(requested, bool) or requested < 1:
                raise _RequestError(f"max_tokens must be at least 1, got {requested}.", "max_tokens")
            if requested > room:
                raise _RequestError(
                    f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's maximum "
                    f"context length is {self.max_model_len} tokens and your request has {prompt_tokens} input "
                    f"tokens ({requested} > {self.max_model_len} - {prompt_tokens}).",
                    "max_tokens",
                )
            max_tokens = requested
        n = body.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _RequestError(f"n must be at least 1, got {n}.", "n")
        if n > self.max_n:  # vllm/sampling_params.py SamplingParams._verify_args, same text
            raise _RequestError(
                f"n must be at most {self.max_n}, got {n}. To increase this limit, set the "
                "VLLM_MAX_N_SEQUENCES environment variable.",
                "n",
            )
        temperature = body.get("temperature")
        if temperature is not None and (not isinstance(temperature, (int, float)) or temperature < 0):
            raise _RequestError(f"temperature must be non-negative, got {temperature}.", "temperature")
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise _RequestError("seed must be an integer", "seed")
        stop = body.get("stop")
        if stop is None:
            stops: list[str] = []
        elif isinstance(stop, str):
            stops = [stop]
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            stops = list(stop)
        else:
            raise _RequestError(f"{stop!r} is not valid under any of the given schemas - 'stop'", "stop")
        min_tokens = body.get("min_tokens") or 0
        if not isinstance(min_tokens, int) or min_tokens < 0 or min_tokens > max_tokens:
            raise _RequestError(
                f"min_tokens must be between 0 and max_tokens={max_tokens}, got {min_tokens}.", "min_tokens"
            )
        stream = body.get("stream") is True
        if body.get("stream_options") is not None and not stream:
            raise _RequestError("Stream options can only be defined when `stream=True`.", "stream_options")
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise _RequestError("stream_options must be an object", "stream_options")
        # vLLM's StreamOptions.include_usage defaults to true: `stream_options: {}` asks for usage.
        include_usage = options is not None and options.get("include_usage", True) is not False
        return {
            "max_tokens": max_tokens,
            "n": n,
            "seed": seed or 0,
            "stop": stops,
            "min_tokens": min_tokens,
            "ignore_eos": bool(body.get("ignore_eos")),
            "stream": stream,
            "include_usage": include_usage,
        }

    def _stream_chunk(
        self,
        request_id: str,
        obj: str,
        created: int,
        choices: list[dict[str, Any]],
        usage: dict[str, Any] | None,
    ) -> str:
        """One SSE chunk of a streamed chat or completion: the same envelope, only ``object`` differs."""
        payload: dict[str, Any] = {
            "id": request_id,
            "object": obj,
            "created": created,
            "model": self.served_name,
            "system_fingerprint": textmodel.SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if usage is not None:
            payload["usage"] = usage
        return sse(payload)

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": None,
        }

    @staticmethod
    def _generate(user_text: str, params: Mapping[str, Any], choice: int, prefix: str = "") -> textmodel.Generation:
        return textmodel.generate(
            user_text,
            seed=params["seed"] + choice,
            max_tokens=params["max_tokens"],
            stop=params["stop"],
            min_tokens=params["min_tokens"],
            ignore_eos=params["ignore_eos"],
            prefix=prefix,
        )

    # -- /v1/chat/completions

    async def _generate_all(
        self, prompts: list[tuple[str, int, str]], params: Mapping[str, Any]
    ) -> list[textmodel.Generation]:
        """Every choice, giving the event loop a turn every 32 of them: a large ``n`` (vLLM allows
        16384) must not stall every other request localpod serves meanwhile."""
        outputs: list[textmodel.Generation] = []
        for index, (text, choice, prefix) in enumerate(prompts):
            outputs.append(self._generate(text, params, choice, prefix=prefix))
            if index % 32 == 31:
                await asyncio.sleep(0)
        return outputs

    async def _chat(self, body: dict[str, Any], ctx: JobContext) -> AsyncIterator[Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _RequestError("Field required: 'messages' must be a non-empty list of message objects", "messages")
        for message in messages:
            if message.get("role") not in ("system", "developer", "user", "assistant", "tool", "function"):
                raise _RequestError(f"Invalid message role: {message.get('role')!r}", "messages")
        self._check_model(body)
        prompt_tokens = textmodel.chat_prompt_tokens(messages)
        params = self._sampling(body, prompt_tokens, default_max=None)
        user_text = textmodel.last_user_text(messages)
        outputs = await self._generate_all([(user_text, i, "") for i in range(params["n"])], params)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        completion_tokens = sum(len(o.tokens) for o in outputs)
        if not params["stream"]:
            await textmodel.decode_time(ctx, max(len(o.tokens) for o in outputs))
            yield {
                "id": request_id,
                "object": "chat.completion",
                "created": created,
                "model": self.served_name,
                "choices": [
                    {
                        "index": i,
                        "message": {
                            "role": "assistant",
                            "content": o.text,
                            "refusal": None,
                            "annotations": None,
                            "audio": None,
                            "function_call": None,
                            "tool_calls": [],
                            "reasoning": None,
                        },
                        "logprobs": None,
                        "finish_reason": o.finish_reason,
                        "stop_reason": o.stop_reason,
                        "token_ids": None,
                    }
                    for i, o in enumerate(outputs)
                ],
                "service_tier": None,
                "system_fingerprint": textmodel.SYSTEM_FINGERPRINT,
                "usage": self._usage(prompt_tokens, completion_tokens),
                "prompt_logprobs": None,
                "prompt_token_ids": None,
                "kv_transfer_params": None,
            }
            return

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
            return self._stream_chunk(request_id, "chat.completion.chunk", created, choices, usage)

        first = True
        async for i, delta, final in textmodel.paced(ctx, _steps(outputs)):
            if first:
                # vLLM sends each choice's role chunk on the first output of the engine, i.e. with
                # the first token, not before the prefill (vllm/entrypoints/openai/serving_chat.py,
                # later chat_completion/serving.py: ``if first_iteration:`` inside ``async for res
                # in result_generator``).
                first = False
                for index in range(len(outputs)):
                    yield chunk(
                        [
                            {
                                "index": index,
                                "delta": {"role": "assistant", "content": ""},
                                "logprobs": None,
                                "finish_reason": None,
                            }
                        ]
                    )
            choice: dict[str, Any] = {"index": i, "delta": {"content": delta}, "logprobs": None, "finish_reason": None}
            if final:
                choice["finish_reason"] = outputs[i].finish_reason
                choice["stop_reason"] = outputs[i].stop_reason
            yield chunk([choice])
        if ctx.cancelled.is_set():
            return
        if params["include_usage"]:
            yield chunk([], self._usage(prompt_tokens, completion_tokens))
        yield SSE_DONE

    # -- /v1/completions

    async def _completions(self, body: dict[str, Any], ctx: JobContext) -> AsyncIterator[Any]:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            prompts = [" ".join(str(t) for t in prompt)]
        else:
            raise _RequestError("Field required: 'prompt' must be a string or a list of strings", "prompt")
        if body.get("echo"):
            raise _RequestError("localpod's stand-in model does not support `echo`", "echo")
        self._check_model(body)
        prompt_counts = [textmodel.count_tokens(p) + 1 for p in prompts]  # + BOS
        params = self._sampling(body, max(prompt_counts), default_max=COMPLETIONS_DEFAULT_MAX_TOKENS)
        outputs = await self._generate_all([(p, i, " ") for p in prompts for i in range(params["n"])], params)
        prompt_tokens = sum(prompt_counts)
        completion_tokens = sum(len(o.tokens) for o in outputs)
        request_id = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not params["stream"]:
            await textmodel.decode_time(ctx, max(len(o.tokens) for o in outputs))
            yield {
                "id": request_id,
                "object": "text_completion",
                "created": created,
                "model": self.served_name,
                "choices": [
                    {
                        "index": i,
                        "text": o.text,
                        "logprobs": None,
                        "finish_reason": o.finish_reason,
                        "stop_reason": o.stop_reason,
                        "token_ids": None,
                        "prompt_logprobs": None,
                        "prompt_token_ids": None,
                    }
                    for i, o in enumerate(outputs)
                ],
                "service_tier": None,
                "system_fingerprint": textmodel.SYSTEM_FINGERPRINT,
                "usage": self._usage(prompt_tokens, completion_tokens),
                "kv_transfer_params": None,
            }
            return

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
            return self._stream_chunk(request_id, "text_completion", created, choices, usage)

        async for i, delta, final in textmodel.paced(ctx, _steps(outputs)):
            choice: dict[str, Any] = {
                "index": i,
                "text": delta,
                "logprobs": None,
                "finish_reason": None,
                "stop_reason": None,
            }
            if final:
                choice["finish_reason"] = outputs[i].finish_reason
                choice["stop_reason"] = outputs[i].stop_reason
            yield chunk([choice])
        if ctx.cancelled.is_set():
            return
        if params["include_usage"]:
            yield chunk([], self._usage(prompt_tokens, completion_tokens))
        yield SSE_DONE


def _steps(outputs: list[textmodel.Generation]) -> list[tuple[int, str, bool]]:
    """Streaming order: one token of each choice in turn, as vLLM interleaves parallel sequences.
    Every choice gets at least one (possibly empty) delta so its finish_reason is sent."""
    steps: list[tuple[int, str, bool]] = []
    longest = max((max(len(o.tokens), 1) for o in outputs), default=0)
    for position in range(longest):
        for index, output in enumerate(outputs):
            tokens = output.tokens or [""]
            if position < len(tokens):
                steps.append((index, tokens[position], position == len(tokens) - 1))
    return steps
