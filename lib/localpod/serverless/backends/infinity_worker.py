"""Emulation of ``runpod/worker-infinity-embedding`` 1.1.4 with real embeddings.

The real worker serves Hugging Face embedding models through Infinity. Here every model name in
``MODEL_NAMES`` is served by WordLlama, a small static-embedding model whose weights ship inside
the ``wordllama`` wheel: it loads offline in well under a second and gives genuine semantic
vectors (similar texts score higher than unrelated ones), which is what retrieval code built on
the endpoint needs to behave sensibly. Request routing, response shapes and error dicts follow the
worker's ``handler.py``/``embedding_service.py``/``utils.py``, including that worker 1.1.4 never
reads ``encoding_format``: vectors are float lists even when a caller asks for base64 (the openai
client passes float lists through when it chose base64 itself, so its default path works).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

import numpy as np

from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec

THREAD_THRESHOLD = 32
"""Batches larger than this are embedded in a thread so the server's event loop stays responsive."""
SPECIAL_TOKENS_PER_TEXT = 2
"""``[CLS]``/``[SEP]``: BERT-style models such as bge count them in ``usage``."""

_model: Any = None
_model_lock = threading.Lock()


def load_wordllama() -> Any:
    """The process-wide WordLlama model (256-d), loaded once from the weights in its wheel.

    ``wordllama`` calls ``logging.basicConfig`` on import; a temporary handler on the root logger
    makes that call a no-op so importing it does not change how the server logs."""
    global _model
    with _model_lock:
        if _model is None:
            root = logging.getLogger()
            guard = logging.NullHandler()
            root.addHandler(guard)
            try:
                import wordllama
                from wordllama import WordLlama
            finally:
                root.removeHandler(guard)
            package_dir = Path(wordllama.__file__).parent
            _model = WordLlama.load(cache_dir=package_dir, disable_download=True)
        return _model


def error_response(message: str) -> dict[str, Any]:
    """The worker's ``create_error_response(...).model_dump()``."""
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}


def embed_texts(model: Any, texts: list[str]) -> tuple[np.ndarray, int]:
    """Unit-length float32 vectors for ``texts`` (bge models return normalised embeddings) and the
    token count Infinity reports as usage. Texts without any known token get a fixed unit vector
    instead of the NaN an average over zero tokens would give."""
    if not texts:
        return np.zeros((0, model.embedding.shape[1]), dtype=np.float32), 0
    vectors = np.asarray(model.embed(texts, norm=False), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    bad = ~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0)
    if bad.any():
        vectors[bad] = 1.0
        norms[bad] = np.sqrt(vectors.shape[1])
    vectors = vectors / norms
    tokens = sum(sum(enc.attention_mask) for enc in model.tokenize(texts))
    return vectors.astype(np.float32), int(tokens) + SPECIAL_TOKENS_PER_TEXT * len(texts)


class InfinityWorker(WorkerBackend):
    """``runpod/worker-infinity-embedding``: a plain handler returning one output per job."""

    generator = False

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        raw = spec.env.get("MODEL_NAMES") or ""
        self.model_names = [name.strip() for name in raw.split(";") if name.strip()]
        self.model: Any = None
        self.created = int(time.time())

    @property
    def model_repos(self) -> list[str]:
        return list(self.model_names)

    async def load(self) -> None:
        """Load the shared embedding model; the real worker exits at start without ``MODEL_NAMES``."""
        if not self.model_names:
            raise WorkerCrash("MODEL_NAMES is not set: worker-infinity-embedding needs at least one model "
                              "(';'-separated Hugging Face ids)")
        self.model = await asyncio.to_thread(load_wordllama)
        self.created = int(time.time())

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
            return await self._guarded(self._rerank(job_input.get("query"), job_input.get("docs"),
                                                    job_input.get("return_docs"), job_input.get("model")))
        if job_input.get("input"):
            return await self._guarded(self._embeddings(job_input.get("input"), job_input.get("model"),
                                                        as_list=False))
        return error_response(f"Invalid input: {{'id': '{ctx.job_id}', 'input': {dict(job_input)!r}}}")

    @staticmethod
    async def _guarded(work: Any) -> Any:
        """The handler's ``try: ... except Exception as e: return create_error_response(str(e))``."""
        try:
            return await work
        except Exception as exc:  # noqa: BLE001 - mirrors the worker's catch-all
            return error_response(str(exc))

    def models(self) -> dict[str, Any]:
        return {"data": [{"id": name, "stats": {}, "object": "model", "owned_by": "infinity",
                          "created": self.created, "backend": ""} for name in self.model_names],
                "object": "list"}

    def _check_model(self, model_name: Any) -> None:
        if model_name not in self.model_names:
            raise IndexError(f"Engine for model name `{model_name}` not found. "
                             f"Available model names are {self.model_names}")

    async def _vectors(self, texts: list[str]) -> tuple[np.ndarray, int]:
        if len(texts) > THREAD_THRESHOLD:
            return await asyncio.to_thread(embed_texts, self.model, texts)
        return embed_texts(self.model, texts)

    async def _embeddings(self, inputs: Any, model_name: Any, *, as_list: bool) -> Any:
        self._check_model(model_name)
        texts = inputs if isinstance(inputs, list) else [inputs]
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("input must be a string or a list of strings")
        vectors, usage = await self._vectors([t.strip() for t in texts])
        result = {
            "model": model_name,
            "object": "list",
            "data": [{"object": "embedding", "embedding": vector.tolist(), "index": i}
                     for i, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": usage, "total_tokens": usage},
        }
        return [result] if as_list else result

    async def _rerank(self, query: Any, docs: Any, return_docs: Any, model_name: Any) -> dict[str, Any]:
        self._check_model(model_name)
        if not isinstance(query, str) or not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise TypeError("rerank needs a string `query` and a list of strings `docs`")
        vectors, _ = await self._vectors([query, *docs])
        scores = (vectors[1:] @ vectors[0]).astype(float) if docs else np.zeros(0)
        query_tokens = len(self.model.tokenize(query)[0].ids) if query else 0
        usage = 0
        for doc_vector_tokens in self.model.tokenize(docs) if docs else []:
            usage += query_tokens + sum(doc_vector_tokens.attention_mask) + 3  # [CLS] q [SEP] d [SEP]
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        results = []
        for i in order:
            item: dict[str, Any] = {"relevance_score": float(scores[i]), "index": i}
            if return_docs:
                item["document"] = docs[i]
            results.append(item)
        return {"model": model_name, "results": results,
                "usage": {"prompt_tokens": int(usage), "total_tokens": int(usage)}}
