"""Emulation of ``runpod/worker-infinity-embedding`` 1.1.4 with real embeddings.

The real worker serves Hugging Face models through Infinity. Here every model name in
``MODEL_NAMES`` is served by WordLlama (:mod:`.embedding_model`), a small static-embedding model
whose weights ship inside the ``wordllama`` wheel: it loads offline in well under a second and
gives genuine semantic vectors (similar texts score higher than unrelated ones), which is what
retrieval code built on the endpoint needs to behave sensibly. What a model can do follows its
config as in Infinity: an embedding model (bge-small) embeds and refuses to rerank, a cross-encoder
(bge-reranker-base) reranks (a sigmoid of the stand-in similarity) and refuses to embed. Concurrent
requests share model calls of at most ``BATCH_SIZES`` texts (:mod:`.batching`), as Infinity's batch
handler does, computed in a model process of their own (:mod:`.model_process`). Request routing,
response shapes and error dicts follow the worker's
``handler.py``/``embedding_service.py``/``utils.py``, including that worker 1.1.4 never reads
``encoding_format``: vectors are floats even when a caller asks for base64 (the openai client
passes float lists through when it chose base64 itself, so its default path works).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from localpod import hubdata
from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec
from localpod.serverless.backends.batching import EmbeddingBatcher
from localpod.serverless.backends.model_process import ModelProcessError, shared_model_process

DEFAULT_BATCH_SIZE = 32
"""The worker's ``BATCH_SIZES`` default, per model."""
SPECIAL_TOKENS_PER_TEXT = 2
"""``[CLS]``/``[SEP]``: BERT-style models such as bge count them in ``usage``."""
RERANK_LOGIT_SCALE, RERANK_LOGIT_SHIFT = 10.0, 0.5
"""A reranker's score is the sigmoid of a logit (Infinity's default ``raw_scores=False``); the
stand-in logit is ``scale * (cosine - shift)``, so related pairs land near 1 and unrelated near 0."""

RERANK_UNSENDABLE_TAGS = frozenset({"1.0.0", "1.1.0", "1.1.1", "1.1.2", "1.1.3", "1.1.4"})
"""Releases of ``runpod/worker-infinity-embedding`` whose rerank answer never reaches the caller.

Every release tag of the repository (1.0.0 to 1.1.4, the newest) pins ``infinity-emb==0.0.76``
and ``runpod~=1.7.0`` with the same ``infinity_rerank``: Infinity 0.0.76's ``engine.rerank``
returns ``RerankReturnType`` dataclasses (infinity_emb/primitives.py), ``to_rerank_response``
(src/utils.py) puts each one in ``relevance_score``, and runpod-python 1.7's
``rp_http._handle_result`` cannot ``json.dumps`` it: it logs "Error while returning job result. |
Object of type RerankReturnType is not JSON serializable" and sends nothing, so the job stays
IN_PROGRESS until the execution timeout (worker-infinity-embedding issues #29 and #37, open). No
release fixes it; other tags and images (a patched build) rerank cleanly here."""


@dataclass(kw_only=True)
class RerankReturnType:
    """Stand-in for Infinity 0.0.76's ``infinity_emb.primitives.RerankReturnType`` (a plain
    dataclass, so ``json.dumps`` refuses it)."""

    relevance_score: float
    document: str | None
    index: int


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``repo/name:tag``), None for a digest or no tag."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last or ":" not in last:
        return None
    return last.split(":", 1)[1]


def rerank_unsendable(image: str) -> bool:
    """True for the worker releases whose rerank results cannot be sent (see ``RERANK_UNSENDABLE_TAGS``)."""
    return "worker-infinity-embedding" in image.lower() and image_tag(image) in RERANK_UNSENDABLE_TAGS


def error_response(message: str) -> dict[str, Any]:
    """The worker's ``create_error_response(...).model_dump()``."""
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}


def batch_sizes(env: Mapping[str, str], model_count: int) -> list[int]:
    """``BATCH_SIZES`` as the worker reads it: ``;``-separated, one per model, default 32 each; a
    count that differs from ``MODEL_NAMES`` stops the worker at start."""
    raw = env.get("BATCH_SIZES")
    parts = [part for part in (raw if raw is not None else f"{DEFAULT_BATCH_SIZE};" * model_count).split(";") if part]
    if len(parts) != model_count:
        raise WorkerCrash("BATCH_SIZES must have the same number of elements as MODEL_NAMES")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        raise WorkerCrash(f"BATCH_SIZES must be whole numbers separated by ';', got {raw!r}") from None
    if any(size < 1 for size in sizes):
        raise WorkerCrash(f"BATCH_SIZES must be at least 1, got {raw!r}")
    return sizes


def capability(repo_id: str) -> str:
    """What Infinity does with a model, decided from its config as Infinity does: a
    ``*ForSequenceClassification`` architecture is a reranker (cross-encoder); anything else is
    loaded as an embedding model."""
    if any(arch.endswith("ForSequenceClassification") for arch in hubdata.architectures(repo_id)):
        return "rerank"
    return "embed"


def refusal(wanted: str, has: str) -> str:
    """Infinity's ``ModelNotDeployedError`` text when a model lacks a capability."""
    return f"the loaded moded cannot fullyfill `{wanted}`. Options are {{'{has}'}}."


class InfinityWorker(WorkerBackend):
    """``runpod/worker-infinity-embedding``: a plain handler returning one output per job."""

    generator = False

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        raw = spec.env.get("MODEL_NAMES") or ""
        self.model_names = [name.strip() for name in raw.split(";") if name.strip()]
        self.batchers: dict[str, EmbeddingBatcher] = {}
        self.capabilities: dict[str, str] = {}
        self.created = int(time.time())
        self.rerank_unsendable = rerank_unsendable(spec.image)

    @property
    def model_repos(self) -> list[str]:
        return list(self.model_names)

    async def load(self) -> None:
        """Load the shared model and one batcher per served model; the real worker exits at start
        without ``MODEL_NAMES`` or with a ``BATCH_SIZES`` count that does not match it."""
        if not self.model_names:
            raise WorkerCrash(
                "MODEL_NAMES is not set: worker-infinity-embedding needs at least one model "
                "(';'-separated Hugging Face ids)"
            )
        sizes = batch_sizes(self.spec.env, len(self.model_names))
        model = shared_model_process()
        try:
            dimension = await asyncio.to_thread(model.start)
        except ModelProcessError as exc:
            raise WorkerCrash(str(exc)) from None
        self.batchers = {
            name: EmbeddingBatcher(model.submit, size, dimension)
            for name, size in zip(self.model_names, sizes, strict=True)
        }
        self.capabilities = {name: capability(name) for name in self.model_names}
        self.created = int(time.time())

    async def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
        self.batchers = {}

    async def handle(self, job_input: Any, ctx: JobContext) -> AsyncIterator[Any]:
        yield await self._dispatch(job_input, ctx)

    async def _dispatch(self, job_input: Any, ctx: JobContext) -> Any:
        if not isinstance(job_input, Mapping):
            return error_response(f"Invalid input: {{'id': '{ctx.job_id}', 'input': {job_input!r}}}")
        if job_input.get("openai_route"):
            route, openai_input = job_input.get("openai_route"), job_input.get("openai_input")
            if route == "/v1/models":
                return self.models()
            if route == "/v1/embeddings":
                if openai_input is None:
                    # worker 1.1.4 reads openai_input["model"] before checking it: the handler raises
                    raise AttributeError("'NoneType' object has no attribute 'get'")
                model_name = openai_input.get("model")
                if not openai_input:
                    return error_response("Missing input")
                if not model_name:
                    return error_response("Did not specify model in openai_input")
                return await self._guarded(self._embeddings(openai_input.get("input"), model_name, as_list=True))
            return error_response(f"Invalid OpenAI Route: {route}")
        if job_input.get("query"):
            return await self._guarded(
                self._rerank(
                    job_input.get("query"), job_input.get("docs"), job_input.get("return_docs"), job_input.get("model")
                )
            )
        if job_input.get("input"):
            return await self._guarded(self._embeddings(job_input.get("input"), job_input.get("model"), as_list=False))
        return error_response(f"Invalid input: {{'id': '{ctx.job_id}', 'input': {dict(job_input)!r}}}")

    @staticmethod
    async def _guarded(work: Any) -> Any:
        """The handler's ``try: ... except Exception as e: return create_error_response(str(e))``."""
        try:
            return await work
        except Exception as exc:  # noqa: BLE001 - mirrors the worker's catch-all
            return error_response(str(exc))

    def models(self) -> dict[str, Any]:
        return {
            "data": [
                {
                    "id": name,
                    "stats": {},
                    "object": "model",
                    "owned_by": "infinity",
                    "created": self.created,
                    "backend": "",
                }
                for name in self.model_names
            ],
            "object": "list",
        }

    def _check_model(self, model_name: Any, wanted: str) -> None:
        if model_name not in self.model_names:
            raise IndexError(
                f"Engine for model name `{model_name}` not found. Available model names are {self.model_names}"
            )
        has = self.capabilities[model_name]
        if has != wanted:
            raise RuntimeError(refusal(wanted, has))

    async def _embeddings(self, inputs: Any, model_name: Any, *, as_list: bool) -> Any:
        self._check_model(model_name, "embed")
        texts = inputs if isinstance(inputs, list) else [inputs]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("input must be a string or a list of strings")
        vectors, tokens = await self.batchers[model_name].embed_texts([t.strip() for t in texts])
        usage = int(tokens.sum()) + SPECIAL_TOKENS_PER_TEXT * len(texts)
        result = {
            "model": model_name,
            "object": "list",
            # numpy rows, not lists: localpod's JSON encoder (orjson) writes float32 arrays as JSON
            # numbers directly, which at batch 64 costs less than converting them to Python floats
            "data": [{"object": "embedding", "embedding": vector, "index": i} for i, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": usage, "total_tokens": usage},
        }
        return [result] if as_list else result

    async def _rerank(self, query: Any, docs: Any, return_docs: Any, model_name: Any) -> dict[str, Any]:
        self._check_model(model_name, "rerank")
        if not isinstance(query, str) or not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise TypeError("rerank needs a string `query` and a list of strings `docs`")
        vectors, tokens = await self.batchers[model_name].embed_texts([query, *docs])
        logits = RERANK_LOGIT_SCALE * (vectors[1:] @ vectors[0] - RERANK_LOGIT_SHIFT)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        # each (query, document) pair is one cross-encoder input: [CLS] query [SEP] document [SEP]
        usage = int(tokens[1:].sum()) + (int(tokens[0]) + 3) * len(docs)
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        if self.rerank_unsendable:
            # What worker 1.1.4 builds (src/utils.py to_rerank_response): Infinity's sorted
            # RerankReturnType objects as relevance_score, numbered in that order. The platform
            # cannot send this; see RERANK_UNSENDABLE_TAGS.
            ranked = [RerankReturnType(relevance_score=float(scores[i]), document=docs[i], index=i) for i in order]
            shown: list[Any] = docs if return_docs else [None] * len(docs)
            unsent = [
                {"relevance_score": rank, "index": count, **({"document": doc} if return_docs else {})}
                for count, (rank, doc) in enumerate(zip(ranked, shown, strict=True))
            ]
            return {"model": model_name, "results": unsent, "usage": {"prompt_tokens": usage, "total_tokens": usage}}
        results = []
        for i in order:
            item: dict[str, Any] = {"relevance_score": float(scores[i]), "index": i}
            if return_docs:
                item["document"] = docs[i]
            results.append(item)
        return {"model": model_name, "results": results, "usage": {"prompt_tokens": usage, "total_tokens": usage}}
