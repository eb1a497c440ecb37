"""localpod's ``runpod/worker-infinity-embedding`` emulation, driven directly (no server): real
wordllama embeddings, what each model may do (embed or rerank, decided from its config as Infinity
does), ``BATCH_SIZES``, the batcher that lets concurrent requests share model calls, and the model
process that computes them.

Outputs are passed through localpod's JSON encoder before they are checked, because that is what a
client receives (the worker keeps vectors as numpy rows until then)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
import orjson
import pytest
from openai.types import CreateEmbeddingResponse

from localpod.http import dumps
from localpod.profiles import FAST
from localpod.serverless.backends.base import JobContext, WorkerCrash, WorkerSpec
from localpod.serverless.backends.batching import EmbeddingBatcher, EmbedResult, Submit
from localpod.serverless.backends.embedding_model import load_wordllama
from localpod.serverless.backends.infinity_worker import (
    RERANK_UNSENDABLE_TAGS,
    InfinityWorker,
    RerankReturnType,
    batch_sizes,
    capability,
    rerank_unsendable,
)
from localpod.serverless.backends.model_process import decode_message, encode_error, encode_result, shared_model_process

IMAGE = "runpod/worker-infinity-embedding:1.1.4"
PATCHED_IMAGE = "example/worker-infinity-embedding:1.1.4-rerank-fix"
"""A team's own build with the rerank fix: not a known release, so localpod reranks cleanly."""
EMBED_MODEL = "BAAI/bge-small-en-v1.5"
RERANK_MODEL = "BAAI/bge-reranker-base"
DOCS = ["Paris is the capital of France.", "Bananas are rich in potassium.", "France's capital city is Paris."]


def worker(env: dict[str, str], image: str = IMAGE) -> InfinityWorker:
    backend = InfinityWorker(WorkerSpec(endpoint_id="ep-test", image=image, env=env, profile=FAST))
    asyncio.run(backend.load())
    return backend


async def _collect(backend: InfinityWorker, job_input: Any, job_id: str = "job-1") -> list[Any]:
    return [item async for item in backend.handle(job_input, JobContext(job_id=job_id, profile=FAST))]


def run_job(backend: InfinityWorker, job_input: Any) -> Any:
    """The job's one output as a client sees it (JSON round trip)."""
    [output] = asyncio.run(_collect(backend, job_input))
    return orjson.loads(dumps(output))


@pytest.fixture(scope="module")
def infinity() -> InfinityWorker:
    return worker({"MODEL_NAMES": f"{EMBED_MODEL};BAAI/bge-base-en-v1.5;{RERANK_MODEL}"})


@pytest.fixture(scope="module")
def patched() -> InfinityWorker:
    return worker({"MODEL_NAMES": f"{EMBED_MODEL};{RERANK_MODEL}"}, PATCHED_IMAGE)


def embed(backend: InfinityWorker, texts: Any, model: str = EMBED_MODEL, **extra: Any) -> dict[str, Any]:
    output = run_job(
        backend, {"openai_route": "/v1/embeddings", "openai_input": {"model": model, "input": texts, **extra}}
    )
    if isinstance(output, dict):  # the worker's error dict comes back as it is
        return output
    assert isinstance(output, list) and len(output) == 1
    return output[0]


# -- the worker -----------------------------------------------------------------------------------


def test_models_route(infinity: InfinityWorker) -> None:
    models = run_job(infinity, {"openai_route": "/v1/models"})
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [EMBED_MODEL, "BAAI/bge-base-en-v1.5", RERANK_MODEL]
    assert all(m["owned_by"] == "infinity" and m["stats"] == {} and m["backend"] == "" for m in models["data"])
    assert infinity.model_repos == [EMBED_MODEL, "BAAI/bge-base-en-v1.5", RERANK_MODEL]


def test_embeddings_are_semantic_and_normalised(infinity: InfinityWorker) -> None:
    result = embed(
        infinity,
        ["The cat sat on the mat.", "A kitten was sitting on the rug.", "Quarterly revenue grew by ten percent."],
    )
    assert result["object"] == "list" and result["model"] == EMBED_MODEL
    CreateEmbeddingResponse.model_validate(result)
    vectors = np.array([d["embedding"] for d in result["data"]])
    assert vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


def test_vectors_and_usage_match_wordllama_itself(infinity: InfinityWorker) -> None:
    """The worker's single-tokenisation path computes what ``WordLlama.embed(norm=True)`` does."""
    texts = ["hello world", "A much longer sentence about the quarterly figures of the support team."]
    result = embed(infinity, texts)
    model = load_wordllama()
    expected = model.embed(texts, norm=True)
    assert np.allclose([d["embedding"] for d in result["data"]], expected, atol=1e-6)
    tokens = sum(len(model.tokenizer.encode(text, add_special_tokens=False).ids) for text in texts)
    assert result["usage"] == {"prompt_tokens": tokens + 2 * len(texts), "total_tokens": tokens + 2 * len(texts)}


def test_batch_of_100_keeps_input_order(infinity: InfinityWorker) -> None:
    texts = [f"document number {i} about {'cats' if i % 2 else 'finance'} and topic {i * 7}" for i in range(100)]
    batch = embed(infinity, texts)  # 100 texts with BATCH_SIZES 32: four model calls
    assert [d["index"] for d in batch["data"]] == list(range(100))
    for i in (0, 37, 99):
        single = embed(infinity, texts[i])["data"][0]["embedding"]
        assert np.allclose(batch["data"][i]["embedding"], single, atol=1e-6)


def test_encoding_format_is_ignored_as_by_worker_1_1_4(infinity: InfinityWorker) -> None:
    floats = embed(infinity, ["hello world", "good night"])["data"]
    asked_base64 = embed(infinity, ["hello world", "good night"], encoding_format="base64")["data"]
    assert [d["embedding"] for d in asked_base64] == [d["embedding"] for d in floats]
    assert all(isinstance(d["embedding"], list) for d in asked_base64)


def test_reranker_ranks_and_embedding_model_refuses(infinity: InfinityWorker, patched: InfinityWorker) -> None:
    query = "What is the capital of France?"
    ranked = run_job(patched, {"model": RERANK_MODEL, "query": query, "docs": DOCS, "return_docs": True})
    order = [r["index"] for r in ranked["results"]]
    assert order[-1] == 1 and sorted(order) == [0, 1, 2]
    scores = [r["relevance_score"] for r in ranked["results"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    assert scores[0] > 0.5 > scores[-1]
    assert all(r["document"] == DOCS[r["index"]] for r in ranked["results"])
    assert ranked["usage"]["prompt_tokens"] > 3 * len(DOCS)
    without_docs = run_job(patched, {"model": RERANK_MODEL, "query": "q", "docs": DOCS})
    assert "document" not in without_docs["results"][0]

    refused = run_job(infinity, {"model": EMBED_MODEL, "query": query, "docs": DOCS})
    assert refused["object"] == "error" and refused["code"] == 400
    assert refused["message"] == "the loaded moded cannot fullyfill `rerank`. Options are {'embed'}."
    no_vectors = embed(infinity, "hello", model=RERANK_MODEL)
    assert no_vectors["message"] == "the loaded moded cannot fullyfill `embed`. Options are {'rerank'}."


def test_released_workers_build_a_rerank_answer_nobody_can_send(infinity: InfinityWorker) -> None:
    """worker-infinity-embedding 1.0.0-1.1.4 (infinity-emb 0.0.76): ``to_rerank_response`` puts
    Infinity's ``RerankReturnType`` objects in ``relevance_score`` and the runpod SDK's
    ``json.dumps`` refuses them (issues #29, #37); the platform side of this is in test_queue."""
    assert all(rerank_unsendable(f"runpod/worker-infinity-embedding:{tag}") for tag in RERANK_UNSENDABLE_TAGS)
    assert not rerank_unsendable(PATCHED_IMAGE) and not rerank_unsendable("runpod/worker-infinity-embedding")
    assert not rerank_unsendable("runpod/worker-infinity-embedding@sha256:" + "0" * 64)
    assert infinity.rerank_unsendable
    [output] = asyncio.run(
        _collect(infinity, {"model": RERANK_MODEL, "query": "capital of France?", "docs": DOCS, "return_docs": True})
    )
    assert [r["index"] for r in output["results"]] == [0, 1, 2]  # numbered in Infinity's sorted order
    assert all(isinstance(r["relevance_score"], RerankReturnType) for r in output["results"])
    with pytest.raises(TypeError, match="Object of type RerankReturnType is not JSON serializable"):
        json.dumps(output)
    refused = run_job(infinity, {"model": EMBED_MODEL, "query": "q", "docs": DOCS})  # fails before the answer
    assert refused["object"] == "error"


def test_capability_comes_from_the_model_config() -> None:
    assert capability(RERANK_MODEL) == "rerank"  # XLMRobertaForSequenceClassification
    assert capability(EMBED_MODEL) == "embed"  # BertModel
    assert capability("someone/not-on-the-hub") == "embed"


def test_plain_input_and_errors(infinity: InfinityWorker) -> None:
    plain = run_job(infinity, {"model": EMBED_MODEL, "input": "unwrapped"})
    assert isinstance(plain, dict) and len(plain["data"][0]["embedding"]) == 256
    wrong = run_job(infinity, {"openai_route": "/v1/embeddings", "openai_input": {"model": "nope", "input": "x"}})
    assert wrong["object"] == "error" and wrong["code"] == 400 and wrong["type"] == "BadRequestError"
    assert "nope" in wrong["message"] and wrong["param"] is None
    bad_route = run_job(infinity, {"openai_route": "/v1/rerank"})
    assert bad_route["message"] == "Invalid OpenAI Route: /v1/rerank"
    not_text = embed(infinity, [1, 2])
    assert not_text["object"] == "error" and "list of strings" in not_text["message"]


def test_start_up_refusals() -> None:
    with pytest.raises(WorkerCrash, match="MODEL_NAMES"):
        worker({})
    with pytest.raises(WorkerCrash, match="BATCH_SIZES must have the same number of elements as MODEL_NAMES"):
        worker({"MODEL_NAMES": f"{EMBED_MODEL};{RERANK_MODEL}", "BATCH_SIZES": "32"})
    assert batch_sizes({}, 2) == [32, 32]
    assert batch_sizes({"BATCH_SIZES": "64;8"}, 2) == [64, 8]
    for bad in ("x", "0"):
        with pytest.raises(WorkerCrash, match="BATCH_SIZES"):
            batch_sizes({"BATCH_SIZES": bad}, 1)


def test_concurrent_jobs_share_model_calls() -> None:
    """Twelve concurrent 5-text jobs on a worker with BATCH_SIZES 16: the model sees batches of at
    most 16 texts drawn from several jobs, and every job gets exactly its own vectors back."""
    backend = worker({"MODEL_NAMES": EMBED_MODEL, "BATCH_SIZES": "16"})
    batcher = backend.batchers[EMBED_MODEL]
    calls: list[int] = []
    real_submit = batcher.submit

    def counting(texts: list[str]) -> Any:
        calls.append(len(texts))
        return real_submit(texts)

    batcher.submit = counting
    jobs = [[f"job {j} sentence {k} about {'rivers' if (j + k) % 2 else 'taxes'}" for k in range(5)] for j in range(12)]

    async def scenario() -> list[list[Any]]:
        return await asyncio.gather(
            *(_collect(backend, {"model": EMBED_MODEL, "input": texts}, f"job-{j}") for j, texts in enumerate(jobs))
        )

    outputs = [orjson.loads(dumps(out[0])) for out in asyncio.run(scenario())]
    assert sum(calls) == 60 and max(calls) <= 16 and len(calls) < 12
    model = load_wordllama()
    for texts, output in zip(jobs, outputs, strict=True):
        assert np.allclose([d["embedding"] for d in output["data"]], model.embed(texts, norm=True), atol=1e-6)
    asyncio.run(backend.close())


# -- the batcher on its own -----------------------------------------------------------------------


def inline(embed: Callable[[list[str]], EmbedResult]) -> Submit:
    """A model run in the batcher's own thread (no model process): a finished future per batch."""

    def submit(texts: list[str]) -> Future[EmbedResult]:
        future: Future[EmbedResult] = Future()
        try:
            future.set_result(embed(texts))
        except Exception as exc:  # noqa: BLE001 - delivered to the batch's requests
            future.set_exception(exc)
        return future

    return submit


def _fake_embed(log: list[list[str]], fail_on: str | None = None):
    def embed(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if fail_on in texts:
            raise ValueError(f"cannot embed {fail_on!r}")
        log.append(list(texts))
        vectors = np.array([[float(len(t)), float(sum(map(ord, t)) % 97)] for t in texts], dtype=np.float32)
        return vectors, np.array([len(t.split()) for t in texts], dtype=np.int64)

    return embed


def test_batcher_splits_large_requests_and_keeps_order() -> None:
    log: list[list[str]] = []
    batcher = EmbeddingBatcher(inline(_fake_embed(log)), batch_size=4, dimension=2)
    texts = [f"text {'x' * (i + 1)}" for i in range(10)]
    vectors, tokens = asyncio.run(batcher.embed_texts(texts))
    assert [len(call) for call in log] == [4, 4, 2]
    assert vectors[:, 0].tolist() == [len(t) for t in texts] and tokens.tolist() == [2] * 10
    empty_vectors, empty_tokens = asyncio.run(batcher.embed_texts([]))
    assert empty_vectors.shape == (0, 2) and empty_tokens.shape == (0,)
    batcher.close()


def test_batcher_errors_reach_only_the_requests_in_that_batch() -> None:
    log: list[list[str]] = []
    batcher = EmbeddingBatcher(inline(_fake_embed(log, fail_on="poison")), batch_size=2, dimension=2)

    async def scenario() -> list[Any]:
        return await asyncio.gather(
            batcher.embed_texts(["a", "poison"]), batcher.embed_texts(["b", "c"]), return_exceptions=True
        )

    bad, good = asyncio.run(scenario())
    assert isinstance(bad, ValueError) and "poison" in str(bad)
    assert isinstance(good, tuple) and good[0].shape == (2, 2)
    batcher.close()


def test_batcher_skips_cancelled_requests_and_uses_one_model_thread() -> None:
    threads: set[str] = set()
    log: list[list[str]] = []
    inner = _fake_embed(log)
    gate = threading.Event()

    def embed(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        threads.add(threading.current_thread().name)
        gate.wait(timeout=10)  # hold the first batch until the test has cancelled the second request
        return inner(texts)

    batcher = EmbeddingBatcher(inline(embed), batch_size=2, dimension=2)

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        first = asyncio.ensure_future(batcher.embed_texts(["one", "two"]))
        cancelled = asyncio.ensure_future(batcher.embed_texts(["never", "embedded"]))
        last = asyncio.ensure_future(batcher.embed_texts(["three"]))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        await asyncio.sleep(0)
        gate.set()
        await first
        return await last

    vectors, _ = asyncio.run(scenario())
    assert vectors.shape == (1, 2)
    assert log == [["one", "two"], ["three"]] and len(threads) == 1
    assert next(iter(threads)).startswith("localpod-embeddings")
    batcher.close()
    with pytest.raises(RuntimeError, match="shut down"):
        asyncio.run(batcher.embed_texts(["late"]))
    with pytest.raises(ValueError, match="batch size must be at least 1, got 0"):
        EmbeddingBatcher(inline(embed), batch_size=0, dimension=2)


def test_batcher_close_cancels_waiting_requests() -> None:
    gate = threading.Event()

    def slow(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        gate.wait(timeout=10)
        return np.zeros((len(texts), 2), dtype=np.float32), np.ones(len(texts), dtype=np.int64)

    batcher = EmbeddingBatcher(inline(slow), batch_size=1, dimension=2, max_in_flight=1)

    async def scenario() -> list[Any]:
        running = asyncio.ensure_future(batcher.embed_texts(["in flight"]))
        waiting = asyncio.ensure_future(batcher.embed_texts(["queued"]))
        await asyncio.sleep(0.05)
        batcher.close()
        gate.set()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    running, waiting = asyncio.run(scenario())
    assert isinstance(running, tuple)  # the batch in flight finishes
    assert isinstance(waiting, asyncio.CancelledError)


# -- the model process ----------------------------------------------------------------------------


def test_model_process_messages_round_trip() -> None:
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    tokens = np.array([4, 7], dtype=np.int64)
    batch_id, result, error = decode_message(encode_result(12, vectors, tokens), 3)
    assert batch_id == 12 and error is None and result is not None
    assert np.array_equal(result[0], vectors) and result[1].tolist() == [4, 7]
    assert decode_message(encode_error(5, "ValueError: bad"), 3) == (5, None, "ValueError: bad")


def test_a_killed_model_process_fails_its_batches_and_restarts(infinity: InfinityWorker) -> None:
    model = shared_model_process()
    assert "error" not in embed(infinity, "before the crash")
    first_pid = model.pid
    assert first_pid is not None and first_pid != os.getpid()
    os.kill(first_pid, signal.SIGKILL)
    answers = []
    for _ in range(20):  # a batch sent before the server noticed fails; then a new process serves
        answer = embed(infinity, "after the crash")
        answers.append(answer)
        if answer.get("object") == "list":
            break
    assert answers[-1]["object"] == "list" and len(answers[-1]["data"][0]["embedding"]) == 256
    assert all("embedding model process" in a["message"] for a in answers[:-1])
    assert model.pid not in (None, first_pid)


def test_the_model_process_needs_only_the_model_not_the_worker() -> None:
    """The child process loads :mod:`embedding_model`; importing the worker (the handler) there
    would tie the model's process to the request handling it serves."""
    import ast
    import inspect

    from localpod.serverless.backends import model_process

    tree = ast.parse(inspect.getsource(model_process))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "localpod.serverless.backends.embedding_model" in imported
    assert not {name for name in imported if name and name.endswith("infinity_worker")}
