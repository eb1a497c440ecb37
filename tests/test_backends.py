"""The worker backends, driven directly (no localpod server): the stand-in text model, the vLLM
worker's OpenAI shapes and defaults, the proxy to a real OpenAI-compatible server started here, and
the mock worker (the Infinity worker has tests/test_infinity_worker.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import uvicorn
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from localpod.profiles import FAST
from localpod.serverless.backends import backend_kind, create_backend, textmodel
from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec
from localpod.serverless.backends.infinity_worker import InfinityWorker
from localpod.serverless.backends.mock_worker import MockWorker
from localpod.serverless.backends.proxy import join_route, safe_url, sse_events
from localpod.serverless.backends.vllm_server import EmulatedVllmServer, HttpError
from localpod.serverless.backends.vllm_worker import VllmWorker

INSTANT = replace(FAST, time_to_first_token_s=0.0, inter_token_s=0.0)
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
INFINITY_IMAGE = "runpod/worker-infinity-embedding:1.1.4"
VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"


def spec(
    image: str,
    env: dict[str, str] | None = None,
    *,
    profile=INSTANT,
    proxy_url: str | None = None,
    proxy_api_key: str | None = None,
) -> WorkerSpec:
    return WorkerSpec(
        endpoint_id="ep-test",
        image=image,
        env=env or {},
        profile=profile,
        proxy_url=proxy_url,
        proxy_api_key=proxy_api_key,
    )


def ctx_for(profile=INSTANT, job_id: str = "job-1") -> JobContext:
    return JobContext(job_id=job_id, profile=profile)


async def collect(backend: WorkerBackend, job_input: Any, ctx: JobContext | None = None) -> list[Any]:
    return [item async for item in backend.handle(job_input, ctx or ctx_for())]


def run_job(backend: WorkerBackend, job_input: Any) -> list[Any]:
    return asyncio.run(collect(backend, job_input))


def loaded(backend: WorkerBackend) -> WorkerBackend:
    asyncio.run(backend.load())
    return backend


@pytest.fixture
def vllm() -> VllmWorker:
    return loaded(VllmWorker(spec(VLLM_IMAGE, {"MODEL_NAME": MODEL})))  # type: ignore[return-value]


def sse_payloads(items: list[str]) -> list[dict[str, Any]]:
    """Parse SSE chunks; every chunk must be exactly one ``data: ...\\n\\n`` event."""
    assert items[-1] == "data: [DONE]\n\n"
    payloads = []
    for item in items[:-1]:
        assert item.startswith("data: ") and item.endswith("\n\n") and item.count("\n\n") == 1
        payloads.append(json.loads(item[len("data: ") :]))
    return payloads


def chat(content: str, **params: Any) -> dict[str, Any]:
    return {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"model": MODEL, "messages": [{"role": "user", "content": content}], **params},
    }


# -- image -> backend ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image,kind",
    [
        (VLLM_IMAGE, "vllm"),
        ("myorg/worker-vllm-custom:1", "vllm"),
        ("vllm/vllm-openai:latest", "vllm"),
        (INFINITY_IMAGE, "infinity"),
        ("michaelf34/infinity:0.0.76", "infinity"),
        ("runpod/mock-worker:latest", "mock"),
        ("me/my-handler:1", "mock"),
    ],
)
def test_image_selects_backend(image: str, kind: str) -> None:
    backend = create_backend(spec(image, {"MODEL_NAME": MODEL, "MODEL_NAMES": "BAAI/bge-small-en-v1.5"}))
    assert backend_kind(image) == kind
    assert isinstance(backend, {"vllm": VllmWorker, "infinity": InfinityWorker, "mock": MockWorker}[kind])


# -- stand-in text model -----------------------------------------------------------------------


def test_tokenizer_round_trips_and_folds_spaces() -> None:
    text = "Hello,  world!\nIt's 42 degrees.  "
    tokens = textmodel.tokenize(text)
    assert "".join(tokens) == text
    assert tokens[:4] == ["Hello", ",", "  world", "!"]


def test_replies_respond_and_are_deterministic() -> None:
    hello = textmodel.generate("Hello, how are you?", max_tokens=100)
    assert hello.text.startswith("Hello! I'm doing well, thank you for asking.")
    topic = textmodel.generate("What is the capital of France?", seed=7, max_tokens=500)
    assert "the capital of France" in topic.text and topic.finish_reason == "stop"
    assert textmodel.generate("What is the capital of France?", seed=7, max_tokens=500) == topic
    other_seed = textmodel.generate("What is the capital of France?", seed=8, max_tokens=500)
    assert other_seed.text != topic.text
    long = textmodel.generate("What is the capital of France?", seed=7, max_tokens=400, ignore_eos=True)
    assert len(long.tokens) == 400 and long.finish_reason == "length" and long.text.startswith(topic.text)


def test_stop_string_cuts_before_the_stop() -> None:
    full = textmodel.generate("Why is the sky blue?", max_tokens=300).text
    stop = full.split()[9]
    cut = textmodel.generate("Why is the sky blue?", max_tokens=300, stop=["zzz-never", stop])
    assert cut.finish_reason == "stop" and cut.stop_reason == stop
    assert cut.text == full[: full.index(stop)] and stop not in cut.text


# -- vLLM worker: OpenAI shapes and vLLM defaults ---------------------------------------------


def test_chat_completion_is_an_openai_chat_completion(vllm: VllmWorker) -> None:
    [output] = run_job(vllm, chat("Hello, how are you?"))
    response = ChatCompletion.model_validate(output)
    text = response.choices[0].message.content
    assert text and text.startswith("Hello! I'm doing well")
    assert response.model == MODEL and response.choices[0].finish_reason == "stop"
    assert response.system_fingerprint == textmodel.SYSTEM_FINGERPRINT
    assert response.usage.completion_tokens == textmodel.count_tokens(text)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_completions_default_to_16_tokens(vllm: VllmWorker) -> None:
    job = {"openai_route": "/v1/completions", "openai_input": {"model": MODEL, "prompt": "Tell me about the ocean."}}
    response = Completion.model_validate(run_job(vllm, job)[0])
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 16 == textmodel.count_tokens(response.choices[0].text)
    job["openai_input"]["max_tokens"] = 300
    longer = Completion.model_validate(run_job(vllm, job)[0])
    assert longer.choices[0].finish_reason == "stop" and longer.usage.completion_tokens > 16
    assert longer.choices[0].text.startswith(response.choices[0].text)


def test_chat_max_tokens_and_stop(vllm: VllmWorker) -> None:
    natural = ChatCompletion.model_validate(run_job(vllm, chat("Explain photosynthesis."))[0])
    assert natural.choices[0].finish_reason == "stop" and natural.usage.completion_tokens > 16
    short = ChatCompletion.model_validate(run_job(vllm, chat("Explain photosynthesis.", max_tokens=5))[0])
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
    stopped = run_job(vllm, chat("Explain photosynthesis.", stop=["."]))[0]
    assert stopped["choices"][0]["finish_reason"] == "stop" and stopped["choices"][0]["stop_reason"] == "."
    assert stopped["choices"][0]["message"]["content"] == natural.choices[0].message.content.split(".")[0]


def test_chat_stream_chunks_parse_as_openai_chunks(vllm: VllmWorker) -> None:
    items = run_job(
        vllm, chat("What is a neural network?", seed=3, stream=True, stream_options={"include_usage": True})
    )
    chunks = [ChatCompletionChunk.model_validate(p) for p in sse_payloads(items)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert usage_chunk.usage.completion_tokens == len(chunks) - 2  # minus role chunk and usage chunk
    [whole] = run_job(vllm, chat("What is a neural network?", seed=3))
    assert streamed == whole["choices"][0]["message"]["content"]


def test_stream_usage_chunk_follows_vllm_defaults(vllm: VllmWorker) -> None:
    """vLLM's StreamOptions.include_usage defaults to true once stream_options is given."""

    def last_payload(**params: Any) -> dict[str, Any]:
        return sse_payloads(run_job(vllm, chat("Hi", max_tokens=3, stream=True, **params)))[-1]

    assert last_payload(stream_options={})["usage"]["completion_tokens"] == 3
    assert "usage" not in last_payload() and "usage" not in last_payload(stream_options={"include_usage": False})


def test_completion_stream_chunks_parse_as_completions(vllm: VllmWorker) -> None:
    job = {"prompt": "Once upon a time", "sampling_params": {"max_tokens": 8}, "stream": True}
    payloads = sse_payloads(run_job(vllm, job))
    # Mid-stream chunks carry finish_reason null, as vLLM's do; the openai client builds them without
    # validating that field, so validate everything else.
    assert [p["choices"][0]["finish_reason"] for p in payloads] == [None] * 7 + ["length"]
    for p in payloads:
        p["choices"][0]["finish_reason"] = p["choices"][0]["finish_reason"] or "length"
    chunks = [Completion.model_validate(p) for p in payloads]
    assert len(chunks) == 8 and all(c.object == "text_completion" for c in chunks)
    assert (
        "".join(c.choices[0].text for c in chunks)
        == textmodel.generate("Once upon a time", max_tokens=8, prefix=" ").text
    )


def vllm_body(item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and vLLM body inside worker-vllm v2.25.2's error item (src/handler.py:
    ``_error(f"vLLM returned HTTP {resp.status}: {detail}")``, type ``worker_error``, code None)."""
    error = item["error"]
    assert error["type"] == "worker_error" and error["code"] is None, item
    head, _, detail = error["message"].partition(": ")
    assert head.startswith("vLLM returned HTTP "), item
    return int(head.removeprefix("vLLM returned HTTP ")), json.loads(detail)


def test_wrong_model_gives_vllm_404_body(vllm: VllmWorker) -> None:
    job = chat("hi")
    job["openai_input"]["model"] = "gpt-4o"
    for stream in (False, True):
        job["openai_input"]["stream"] = stream
        [item] = run_job(vllm, job)
        assert vllm_body(item) == (
            404,
            {
                "error": {
                    "message": "The model `gpt-4o` does not exist.",
                    "type": "NotFoundError",
                    "param": "model",
                    "code": 404,
                }
            },
        )


def test_invalid_requests_give_400_bodies(vllm: VllmWorker) -> None:
    cases = [
        chat("hi", stream_options={"include_usage": True}),
        chat("hi", max_tokens=0),
        chat("hi", max_tokens=10**6),
        {"openai_route": "/v1/chat/completions", "openai_input": {"model": MODEL}},
    ]
    for job in cases:
        [output] = run_job(vllm, job)
        status, body = vllm_body(output)
        assert status == 400 and body["error"]["type"] == "BadRequestError", job


def test_served_name_override_and_models() -> None:
    env = {"MODEL_NAME": MODEL, "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "smol", "MAX_MODEL_LEN": "2048"}
    worker = loaded(VllmWorker(spec(VLLM_IMAGE, env)))
    assert worker.model_repos == [MODEL]
    [models] = run_job(worker, {"openai_route": "/v1/models"})
    card = Model.model_validate(models["data"][0])
    assert card.id == "smol" and models["data"][0]["root"] == MODEL and models["data"][0]["max_model_len"] == 2048
    assert vllm_body(run_job(worker, chat("hi"))[0])[0] == 404  # MODEL_NAME is no longer served
    no_model = {"messages": [{"role": "user", "content": "hi"}], "sampling_params": {"max_tokens": 3}}
    assert ChatCompletion.model_validate(run_job(worker, no_model)[0]).model == "smol"


def test_job_input_shapes_and_worker_errors(vllm: VllmWorker) -> None:
    routed = run_job(vllm, {"route": "/v1/completions", "body": {"prompt": "hi", "max_tokens": 4}})[0]
    assert routed["object"] == "text_completion" and routed["usage"]["completion_tokens"] == 4
    assert run_job(vllm, {"route": "/v1/models"})[0]["data"][0]["id"] == MODEL
    for bad, message in [
        ({"foo": 1}, "must contain"),
        ({"route": "v1/models"}, "absolute HTTP path"),
        ({"openai_route": "/v1/embeddings", "openai_input": {"input": "x"}}, "HTTP 404"),
    ]:
        [output] = run_job(vllm, bad)
        assert output["error"]["type"] == "worker_error" and output["error"]["code"] is None
        assert message in output["error"]["message"]


def test_unknown_routes_and_methods_are_the_http_layers_404_and_405(vllm: VllmWorker) -> None:
    """vLLM's FastAPI app answers an unknown route 404 and a known route with the wrong method 405,
    bodies ``{"detail": ...}``; the server gives them as :class:`HttpError` and the worker wraps them
    as every HTTP error (worker-vllm v2.25.2 src/handler.py, ``vLLM returned HTTP <status>``)."""
    server = EmulatedVllmServer(MODEL, MODEL, 2048)

    async def answer(method: str, route: str) -> list[Any]:
        return [item async for item in server.handle(method, route, None, ctx_for())]

    assert asyncio.run(answer("GET", "/v1/embeddings")) == [HttpError(404, {"detail": "Not Found"})]
    assert asyncio.run(answer("GET", "/v1/chat/completions")) == [HttpError(405, {"detail": "Method Not Allowed"})]
    assert vllm_body(run_job(vllm, {"openai_route": "/v1/embeddings"})[0]) == (404, {"detail": "Not Found"})
    wrong_method = run_job(vllm, {"openai_route": "/v1/chat/completions"})[0]
    assert vllm_body(wrong_method) == (405, {"detail": "Method Not Allowed"})


def test_missing_model_name_crashes_the_worker() -> None:
    with pytest.raises(WorkerCrash, match="MODEL_NAME"):
        loaded(VllmWorker(spec(VLLM_IMAGE, {})))


def test_streaming_follows_the_profile_timing_and_cancellation() -> None:
    profile = replace(FAST, time_to_first_token_s=0.05, inter_token_s=0.01)
    worker = loaded(VllmWorker(spec(VLLM_IMAGE, {"MODEL_NAME": MODEL}, profile=profile)))

    async def timed() -> tuple[list[float], int]:
        ctx = ctx_for(profile)
        start = time.monotonic()
        stamps, count = [], 0
        async for _ in worker.handle(chat("Tell me about rivers.", max_tokens=6, stream=True), ctx):
            stamps.append(time.monotonic() - start)
        cancel_ctx = ctx_for(profile)
        async for _ in worker.handle(chat("Tell me about rivers.", max_tokens=50, stream=True), cancel_ctx):
            count += 1
            if count == 3:
                cancel_ctx.cancelled.set()
        return stamps, count

    stamps, count = asyncio.run(timed())
    assert stamps[0] >= 0.05  # the role chunk comes with the first token (see the next test)
    assert stamps[1] >= 0.05 and stamps[-1] >= 0.05 + 5 * 0.01
    assert count == 3  # stopped at cancellation, no [DONE]


def test_the_role_chunk_comes_with_the_first_token_not_before_prefill() -> None:
    """vLLM's ``chat_completion_stream_generator`` sends the role chunks inside ``async for res in
    result_generator`` on its first iteration (vllm/entrypoints/openai/serving_chat.py, later
    chat_completion/serving.py), so they arrive with the first token and right before its content;
    a job cancelled during the prefill sends nothing."""
    profile = replace(FAST, time_to_first_token_s=0.05, inter_token_s=1.0)
    worker = loaded(VllmWorker(spec(VLLM_IMAGE, {"MODEL_NAME": MODEL}, profile=profile)))

    async def timed() -> tuple[list[tuple[float, str]], list[Any]]:
        start = time.monotonic()
        stamped = [
            (time.monotonic() - start, item)
            async for item in worker.handle(
                chat("Tell me about rivers.", max_tokens=2, n=2, stream=True), ctx_for(profile)
            )
        ]
        cancelled = ctx_for(profile)
        cancelled.cancelled.set()
        during_prefill = [item async for item in worker.handle(chat("Hi", stream=True), cancelled)]
        return stamped, during_prefill

    stamped, during_prefill = asyncio.run(timed())
    deltas = [
        payload["choices"][0]["delta"] if payload["choices"] else None
        for payload in sse_payloads([item for _, item in stamped])
    ]
    assert deltas[:2] == [{"role": "assistant", "content": ""}] * 2  # one per choice ...
    assert all(stamp >= 0.05 for stamp, _ in stamped[:3])  # ... after the prefill,
    assert stamped[2][0] < 0.05 + 1.0  # right before the first token's content, not an inter-token later
    assert "role" not in deltas[2] and deltas[2]["content"]
    assert during_prefill == []


# -- proxy to a real OpenAI-compatible server ----------------------------------------------------

UPSTREAM_KEY = "upstream-secret-key"


def _upstream_app() -> Starlette:
    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"

    async def models(request: Request) -> Response:
        if not authorised(request):
            return JSONResponse({"error": {"message": "bad key", "type": "AuthenticationError", "code": None}}, 401)
        return JSONResponse(
            {"object": "list", "data": [{"id": "real-model", "object": "model", "created": 1, "owned_by": "upstream"}]}
        )

    async def completions(request: Request) -> Response:
        body = await request.json()
        if body.get("model") != "real-model":
            return JSONResponse(
                {
                    "error": {
                        "message": f"The model `{body.get('model')}` does not exist.",
                        "type": "NotFoundError",
                        "param": "model",
                        "code": 404,
                    }
                },
                404,
            )
        words = ["Real", " upstream", " words", "."]
        base = {"id": "chatcmpl-up", "created": 1, "model": "real-model"}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(words)},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )

        async def events() -> AsyncIterator[bytes]:
            payloads = [
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [
                        {"index": 0, "delta": {"content": w}, "finish_reason": "stop" if i == len(words) - 1 else None}
                    ],
                }
                for i, w in enumerate(words)
            ]
            raw = "".join(f"data: {json.dumps(p)}\n\n" for p in payloads) + "data: [DONE]\n\n"
            for start in range(0, len(raw), 37):  # split events across writes on purpose
                yield raw[start : start + 37].encode()
                await asyncio.sleep(0)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def broken(request: Request) -> Response:
        return Response("kaput", status_code=500, media_type="text/plain")

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/v1/broken", broken),
        ]
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(_upstream_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "upstream test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def test_proxy_passes_requests_and_sse_through(upstream: str) -> None:
    async def scenario() -> tuple[list[Any], ...]:
        worker = VllmWorker(spec(VLLM_IMAGE, {"MODEL_NAME": MODEL}, proxy_url=upstream, proxy_api_key=UPSTREAM_KEY))
        await worker.load()
        try:
            body = {"model": "real-model", "messages": [{"role": "user", "content": "hi"}]}
            models = await collect(worker, {"openai_route": "/v1/models"})
            plain = await collect(worker, {"openai_route": "/v1/chat/completions", "openai_input": body})
            streamed = await collect(
                worker, {"openai_route": "/v1/chat/completions", "openai_input": {**body, "stream": True}}
            )
            wrong = await collect(
                worker, {"openai_route": "/v1/chat/completions", "openai_input": {**body, "model": "gpt-4o"}}
            )
            broken = await collect(worker, {"route": "/v1/broken"})
            return models, plain, streamed, wrong, broken
        finally:
            await worker.close()
            assert worker.proxy is None

    models, plain, streamed, wrong, broken = asyncio.run(scenario())
    assert models[0]["data"][0]["id"] == "real-model"  # the key reached the upstream
    assert ChatCompletion.model_validate(plain[0]).choices[0].message.content == "Real upstream words."
    chunks = [ChatCompletionChunk.model_validate(p) for p in sse_payloads(streamed)]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Real upstream words."
    assert [vllm_body(item) for item in wrong] == [
        (
            404,
            {
                "error": {
                    "message": "The model `gpt-4o` does not exist.",
                    "type": "NotFoundError",
                    "param": "model",
                    "code": 404,
                }
            },
        )
    ]
    status, body = vllm_body(broken[0])
    assert status == 500 and "kaput" in body["error"]["message"]


def test_proxy_connection_refused_is_a_worker_crash() -> None:
    url = f"http://user:pw@127.0.0.1:{_free_port()}/v1"

    async def scenario() -> None:
        worker = VllmWorker(spec(VLLM_IMAGE, {"MODEL_NAME": MODEL}, proxy_url=url, proxy_api_key="sk-hidden"))
        await worker.load()
        try:
            await collect(worker, chat("hi"))
        finally:
            await worker.close()

    with pytest.raises(WorkerCrash) as info:
        asyncio.run(scenario())
    message = str(info.value)
    assert "cannot reach" in message and "127.0.0.1" in message
    assert "sk-hidden" not in message and "pw" not in message


def test_proxy_helpers() -> None:
    assert join_route("http://h:1/v1", "/v1/models") == "http://h:1/v1/models"
    assert join_route("http://h:1/", "/v1/models") == "http://h:1/v1/models"
    assert safe_url("http://u:secret@h:8000/v1?k=1") == "http://h:8000/v1"

    async def frames() -> list[str]:
        async def chunks() -> AsyncIterator[bytes]:
            for part in (b'data: {"a"', b": 1}\n", b"\ndata: [DO", b"NE]\n\n"):
                yield part

        return [event async for event in sse_events(chunks())]

    assert asyncio.run(frames()) == ['data: {"a": 1}\n\n', "data: [DONE]\n\n"]


# -- mock worker -----------------------------------------------------------------------------------


def test_mock_worker_behaviours() -> None:
    custom = MockWorker(spec("me/my-handler:1"))
    real = MockWorker(spec("runpod/mock-worker:latest"))
    assert not custom.generator and not real.generator
    assert run_job(custom, {"prompt": "x"}) == [{"prompt": "x"}]
    assert run_job(real, {"prompt": "x"}) == ["Hello World!"]
    assert run_job(custom, {"mock_return": [1, 2]}) == [[1, 2]]
    start = time.monotonic()
    assert run_job(custom, {"mock_return": "late", "mock_delay": 0.1}) == ["late"]
    assert time.monotonic() - start >= 0.1
    with pytest.raises(Exception, match="Mock error") as info:
        run_job(custom, {"mock_error": True})
    assert type(info.value) is Exception
    with pytest.raises(WorkerCrash):
        run_job(custom, {"mock_crash": True})
