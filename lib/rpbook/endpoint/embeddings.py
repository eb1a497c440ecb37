"""Embedding clients bound to an Infinity endpoint, and the checks a new embeddings endpoint should pass.

Runpod's embedding worker (``runpod/worker-infinity-embedding``) speaks OpenAI at
``{queue}/{endpoint_id}/openai/v1`` (``/models``, ``/embeddings``) with the Runpod API key as the
bearer token, and reranks through the plain queue (``{"model", "query", "docs"}`` jobs). Retrieval
code breaks quietly when an endpoint answers with the wrong vectors, so ``embedding_checks`` checks
what "it answered" does not: the dimension (an index built for 384 dimensions cannot take 256),
that the ``openai`` SDK's default base64 path gives the same numbers as floats, that similar
sentences score higher than unrelated ones, that a batch keeps its order, LangChain, and reranking.

About base64: the ``openai`` SDK asks for ``encoding_format="base64"`` by default and decodes the
strings it gets back, passing float lists through untouched. Worker 1.1.4 never reads
``encoding_format`` and always answers float lists, so the default path works, but code that asks
for base64 itself and decodes every answer breaks; the check reports which one the endpoint does.

Run ``rpbook.account.wakeup.wake(..., job_input=embeddings_ping(model))`` first: on a cold endpoint
every call here waits for the cold start.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import openai
from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

from rpbook.account import hub
from rpbook.account.jobqueue import run_job
from rpbook.core.display import rich_output
from rpbook.core.errors import CheckFailed, ConfigError, JobTimeoutError
from rpbook.core.pending import NotCreated, Skipped, skip
from rpbook.core.secrets import Secret, reveal_api_key, scrub
from rpbook.core.settings import LOCAL_EMBEDDING_DIMENSION, Settings
from rpbook.endpoint.chat import openai_client
from rpbook.endpoint.checks import (
    CheckReport,
    CheckResult,
    Figure,
    check_served_model,
    guard,
    raise_if_failed,
)

SIMILARITY_TRIPLES: tuple[tuple[str, str, str], ...] = (
    (
        "How do I reset my password?",
        "I forgot my password and need to change it.",
        "The weather in Lisbon is sunny today.",
    ),
    ("The cat sat on the mat.", "A kitten is resting on the rug.", "Quarterly revenue grew by eight percent."),
    ("What is the capital of France?", "Paris is the capital city of France.", "Bananas are rich in potassium."),
)
"""(anchor, similar, unrelated): any working embedding model puts the similar sentence closer."""

RERANK_QUERY = "How do I reset my password?"
RERANK_DOCS: tuple[str, ...] = (
    "Bananas are rich in potassium and fibre.",
    "To reset your password, open Settings and choose Forgot password.",
    "The stock market closed higher on Friday.",
)
RERANK_RELEVANT = 1
"""Index of the document that answers ``RERANK_QUERY`` (not the first, so order alone cannot pass)."""

RERANK_WAIT_S = 60.0
"""Longest the rerank check waits for its queue job. The endpoint is warm by then and the job is
three short documents; a job still IN_PROGRESS after this is a worker that will never answer."""

RERANK_BROKEN_TAGS = frozenset({"1.0.0", "1.1.0", "1.1.1", "1.1.2", "1.1.3", "1.1.4"})
"""``runpod/worker-infinity-embedding`` releases that never return a rerank result.

Every release tag of runpod-workers/worker-infinity-embedding (1.0.0 to 1.1.4, the newest) pins
``infinity-emb==0.0.76`` and ``runpod~=1.7.0``; ``infinity_rerank`` hands Infinity's
``RerankReturnType`` objects to ``to_rerank_response`` (src/embedding_service.py, src/utils.py),
the runpod SDK cannot ``json.dumps`` them (``rp_http._handle_result`` logs "Error while returning
job result" and sends nothing), and the job stays IN_PROGRESS until the execution timeout while
the worker bills. Issues #29 and #37 of that repository, open; no release fixes it."""

RERANK_DEFECT = (
    "worker-infinity-embedding issues #29 and #37: the worker's rerank result holds Infinity "
    "0.0.76's RerankReturnType objects, which the runpod SDK cannot serialise, so it never sends "
    "the result and the job stays IN_PROGRESS until the execution timeout while the worker bills"
)
RERANK_REMEDY = (
    'Leave rerank_model empty ("") to skip reranking, or serve reranking from an image where it is '
    "fixed (your own build of the worker that returns plain floats) and check that one"
)

SERVED_NAME_FIX = (
    "The Infinity worker serves exactly the ids in MODEL_NAMES (';'-separated): send one of those, "
    "or fix MODEL_NAMES in the template and let the workers restart."
)

BATCH_SIZE = 100
SPOT_CHECKS = (0, 1, 37, 73, 99)
"""Positions of the batch embedded again one by one: each must match its own single embedding best."""
SAME_VECTOR_COSINE = 0.9999
"""Two embeddings of one text agree to float32 rounding; below this they are different vectors."""

_SUBJECTS = (
    "The river",
    "A small dog",
    "Our new laptop",
    "The violin teacher",
    "A cold winter",
    "The tax office",
    "My grandmother",
    "The football team",
    "A red balloon",
    "The night train",
)
_ACTIONS = (
    "crossed the valley",
    "barked at the mailman",
    "crashed during the update",
    "tuned every string",
    "froze the harbour",
    "mailed a refund",
    "baked apple pie",
    "won the final",
    "drifted over town",
    "left the station late",
)


def batch_texts(count: int = BATCH_SIZE) -> list[str]:
    """``count`` different sentences (every subject/action pair once per ten), so that a shifted or
    swapped batch item is told apart from the right one."""
    return [f"{_SUBJECTS[i % 10]} {_ACTIONS[(i // 10 + i) % 10]} in story {i}." for i in range(count)]


def embeddings_ping(model: str) -> dict[str, Any]:
    """The smallest job the Infinity worker answers (one embedding of "ping"), for
    ``wakeup.wake(job_input=...)``.

    It is the job Runpod makes of ``POST /openai/v1/embeddings`` (``openai_route`` +
    ``openai_input``), not the shorter ``{"model": ..., "input": "ping"}``: the ``runpod`` SDK's
    ``Endpoint.run`` takes a dict with a truthy ``"input"`` key for the whole request body and
    sends only ``"ping"`` to the worker, which answers "Invalid input". The model must be one of
    the worker's ``MODEL_NAMES``, or the job completes with an error output instead of a vector."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"embeddings_ping needs the served model name (one of MODEL_NAMES), got {model!r}")
    return {"openai_route": "/v1/embeddings", "openai_input": {"model": model, "input": "ping"}}


# -- clients --------------------------------------------------------------------------------------


def embeddings_client(
    settings: Settings, api_key: Secret | str, endpoint_id: str, *, timeout: float = 120.0, max_retries: int = 0
) -> openai.OpenAI:
    """An ``openai.OpenAI`` for the endpoint's OpenAI routes (``client.embeddings.create``)."""
    return openai_client(settings, api_key, endpoint_id, timeout=timeout, max_retries=max_retries)


def langchain_embeddings(
    settings: Settings, api_key: Secret | str, endpoint_id: str, model: str, **kw: Any
) -> OpenAIEmbeddings:
    """A LangChain ``OpenAIEmbeddings`` for the endpoint.

    ``check_embedding_ctx_length`` defaults to False: with True, LangChain tokenizes with OpenAI's
    tiktoken and sends token ids, which Infinity does not accept (and tiktoken downloads its tables).
    ``chunk_size`` (texts per request) defaults to 256, so one request stays a modest queue job
    (about 2 MB of JSON at 384 dimensions) instead of LangChain's 1000. Other keyword arguments go
    to ``OpenAIEmbeddings``."""
    kw.setdefault("check_embedding_ctx_length", False)
    kw.setdefault("chunk_size", 256)
    kw.setdefault("timeout", 120.0)
    kw.setdefault("max_retries", 0)  # as openai_client: a request that reached the worker is not repeated
    return OpenAIEmbeddings(
        model=model, base_url=settings.openai_base_url(endpoint_id), api_key=SecretStr(reveal_api_key(api_key)), **kw
    )


# -- report ---------------------------------------------------------------------------------------


@rich_output
@dataclass(frozen=True)
class EmbeddingReport(CheckReport):
    """All checks of one embeddings endpoint and model (figures: dimension, embeddings_per_s, …)."""

    expected_dimension: int = 0

    kind = "embedding checks"

    def subject(self) -> str:
        return f"{self.model} ({self.expected_dimension} dimensions expected)"


class _BadVectors(CheckFailed):
    """An answer that is not a list of float vectors (turned into a failed check by ``guard``)."""


# -- vector helpers -------------------------------------------------------------------------------


def _matrix(vectors: Sequence[Any], what: str) -> np.ndarray:
    """Float vectors of one dimension as a float64 matrix; anything else raises ``_BadVectors``."""
    if not vectors:
        raise _BadVectors(f"{what}: no embeddings in the answer")
    lengths = set()
    for vector in vectors:
        if isinstance(vector, str) or not isinstance(vector, (list, tuple, np.ndarray)):
            raise _BadVectors(f"{what}: an embedding is a {type(vector).__name__}, not a list of floats")
        lengths.add(len(vector))
    if len(lengths) != 1:
        raise _BadVectors(f"{what}: embeddings of different lengths {sorted(lengths)} in one answer")
    matrix = np.asarray(vectors, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise _BadVectors(f"{what}: embeddings contain NaN or infinity")
    return matrix


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm else 0.0


def _rows_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b``."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.where(norms == 0, 1.0, norms)


def decode_base64_embedding(text: str) -> list[float]:
    """An OpenAI base64 embedding: the bytes of little-endian float32 values."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"a base64 embedding decodes to {len(raw)} bytes, not a whole number of float32")
    return np.frombuffer(raw, dtype="<f4").astype(np.float64).tolist()


def _ordered(data: Sequence[Any], what: str) -> list[Any]:
    """Embeddings of a response in input order, after checking ``index`` is 0..n-1 as sent."""
    indexes = [item.index for item in data]
    if indexes != list(range(len(data))):
        raise _BadVectors(
            f"{what}: the answer's indexes are {indexes[:10]}{'…' if len(indexes) > 10 else ''}, "
            f"not 0..{len(data) - 1} in order"
        )
    return [item.embedding for item in data]


def expected_dimension(settings: Settings, token: Secret, model: str, override: int = 0) -> int:
    """The vector size the checks expect, and where it comes from (printed): ``override`` when set,
    else localpod's stand-in model's for the local target, else the model's ``hidden_size`` on the Hub."""
    if override:
        print(f"expected dimension: {override} (from the parameters)")
        return override
    if settings.target == "local":
        print(
            f"expected dimension: {LOCAL_EMBEDDING_DIMENSION} (localpod computes wordllama vectors in place of {model})"
        )
        return LOCAL_EMBEDDING_DIMENSION
    dimension = hub.embedding_dimension(settings, token, model)
    print(f"expected dimension: {dimension} (hidden_size of {model} on the Hub)")
    return dimension


# -- checks ---------------------------------------------------------------------------------------


def worker_image_tag(worker_image: str) -> str:
    """The tag of ``worker_image``: a full reference (``runpod/worker-infinity-embedding:1.1.4``)
    or the bare tag (``1.1.4``, as in the parameters); "" for a digest or no tag."""
    image = worker_image.strip()
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return ""
    if ":" in last:
        return last.split(":", 1)[1]
    return "" if "/" in image or "worker-infinity-embedding" in image else image


def rerank_broken(worker_image: str | None) -> bool:
    """True when ``worker_image`` is a ``runpod/worker-infinity-embedding`` release whose reranks
    never answer (``RERANK_BROKEN_TAGS``). A bare tag counts as that image; other images, a
    digest or no image are unknown (False)."""
    if not worker_image:
        return False
    image = worker_image.strip()
    named = ("/" not in image and ":" not in image) or "worker-infinity-embedding" in image.lower()
    return named and worker_image_tag(image) in RERANK_BROKEN_TAGS


def embedding_checks(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str | NotCreated,
    model: str,
    expected_dimension: int,
    *,
    timeout: float = 120,
    strict: bool = True,
    rerank_model: str | None = None,
    worker_image: str | None = None,
    force_rerank: bool = False,
    rerank_wait_s: float = RERANK_WAIT_S,
) -> EmbeddingReport | Skipped:
    """Check the endpoint serves ``model`` with vectors of ``expected_dimension`` that behave.

    Checks, in order: ``/models`` lists the model; float embeddings of the expected dimension;
    base64 (the SDK's default path equals floats; what an explicit base64 request gets back);
    similar sentences score higher than unrelated ones; a batch of 100 keeps its order (with
    embeddings/s); LangChain ``OpenAIEmbeddings``; reranking through the queue with ``rerank_model``
    when one is given (Infinity reranks only with a reranker, a cross-encoder such as
    ``BAAI/bge-reranker-base`` served beside ``model`` in ``MODEL_NAMES``; an embedding model
    refuses). When the model is not served the other checks are skipped (they would all fail the
    same way).

    Reranking on ``runpod/worker-infinity-embedding`` 1.0.0-1.1.4 never answers (``RERANK_DEFECT``):
    given that image (``worker_image``, a reference or a bare tag) the rerank check fails at once
    without sending a job, unless ``force_rerank``. Otherwise its job may wait ``rerank_wait_s``;
    a job still running then is cancelled, so no worker keeps billing for it.

    With ``strict`` a failed check raises ``SanityCheckError`` after the checks ran (the
    report is on ``error.report``)."""
    if isinstance(endpoint_id, NotCreated):
        return skip("check", endpoint_id)
    dimension = expected_dimension
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        raise ConfigError(
            f"expected_dimension must be a whole number of dimensions >= 1 (384 for "
            f"BAAI/bge-small-en-v1.5), got {expected_dimension!r}"
        )
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model must be the served model name (one of MODEL_NAMES), got {model!r}")
    client = embeddings_client(settings, api_key, endpoint_id, timeout=timeout)
    served, served_names = check_served_model(client, endpoint_id, model, SERVED_NAME_FIX)
    checks: list[CheckResult] = [served]
    if served.ok:
        state: dict[str, Any] = {}
        checks.append(guard("float embeddings", lambda: _check_float(client, model, dimension, state)))
        checks.append(guard("base64 embeddings", lambda: _check_base64(client, model, state)))
        checks.append(guard("similarity", lambda: _check_similarity(state)))
        checks.append(guard("batch order", lambda: _check_batch(client, model)))
        checks.append(
            guard(
                "langchain", lambda: _check_langchain(settings, api_key, endpoint_id, model, dimension, timeout, state)
            )
        )
        if rerank_model and rerank_broken(worker_image) and not force_rerank:
            checks.append(
                CheckResult(
                    "rerank",
                    False,
                    f"not run: runpod/worker-infinity-embedding:{worker_image_tag(worker_image or '')} never returns "
                    f"rerank results ({RERANK_DEFECT}). {RERANK_REMEDY}.",
                )
            )
        elif rerank_model:
            checks.append(
                guard(
                    "rerank",
                    lambda: _check_rerank(
                        settings, api_key, endpoint_id, rerank_model, min(timeout, rerank_wait_s), served_names
                    ),
                )
            )
    report = EmbeddingReport(endpoint_id=endpoint_id, model=model, expected_dimension=dimension, checks=tuple(checks))
    if strict:
        raise_if_failed(report, "embeddings endpoint")
    return report


def _check_float(client: openai.OpenAI, model: str, dimension: int, state: dict[str, Any]) -> CheckResult:
    texts = [text for triple in SIMILARITY_TRIPLES for text in triple]
    started = time.monotonic()
    response = client.embeddings.create(model=model, input=texts, encoding_format="float")
    elapsed = time.monotonic() - started
    figures: dict[str, Figure] = {"float_latency_s": round(elapsed, 3)}
    try:
        vectors = _matrix(_ordered(response.data, "float answer"), "float answer")
    except _BadVectors as exc:
        return CheckResult("float embeddings", False, str(exc), figures)
    if len(vectors) != len(texts):
        return CheckResult(
            "float embeddings", False, f"sent {len(texts)} inputs, got {len(vectors)} embeddings back", figures
        )
    got = vectors.shape[1]
    figures["dimension"] = got
    norms = np.linalg.norm(vectors, axis=1)
    figures["mean_norm"] = round(float(norms.mean()), 4)
    if response.usage is not None:
        figures["float_prompt_tokens"] = response.usage.prompt_tokens
    state["texts"], state["float"] = texts, vectors
    if got != dimension:
        return CheckResult(
            "float embeddings",
            False,
            f"the endpoint returns {got}-dim vectors but the params say {dimension}: check "
            f"MODEL_NAMES (is {model!r} the model you meant?) and the model card's embedding size, "
            "then fix the parameter or the template; a vector index built for one dimension "
            "rejects the other",
            figures,
        )
    return CheckResult(
        "float embeddings",
        True,
        f"{len(texts)} vectors of {got} dimensions in {elapsed:.2f} s (mean norm {figures['mean_norm']})",
        figures,
    )


def _check_base64(client: openai.OpenAI, model: str, state: dict[str, Any]) -> CheckResult:
    if "float" not in state:
        return CheckResult("base64 embeddings", False, "skipped: the float embeddings failed")
    texts, floats = state["texts"], state["float"]
    started = time.monotonic()
    default = client.embeddings.create(model=model, input=texts)  # the SDK asks for base64 and decodes
    elapsed = time.monotonic() - started
    figures: dict[str, Figure] = {"base64_latency_s": round(elapsed, 3)}
    decoded = _matrix(_ordered(default.data, "SDK default (base64) answer"), "SDK default (base64) answer")
    if decoded.shape != floats.shape:
        return CheckResult(
            "base64 embeddings",
            False,
            f"the SDK's default (base64) path gave {decoded.shape[0]}x{decoded.shape[1]} values, the "
            f"float request {floats.shape[0]}x{floats.shape[1]}",
            figures,
        )
    worst_default = float(np.abs(decoded - floats).max())
    figures["base64_max_abs_diff"] = worst_default

    explicit = client.embeddings.create(model=model, input=texts, encoding_format="base64")
    raw = _ordered(explicit.data, "explicit base64 answer")
    if all(isinstance(item, str) for item in raw):
        answered = "base64"
        explicit_vectors = _matrix([decode_base64_embedding(item) for item in raw], "explicit base64 answer")
    elif all(isinstance(item, (list, tuple)) for item in raw):
        answered = "float"
        explicit_vectors = _matrix(raw, "explicit base64 answer")
    else:
        return CheckResult(
            "base64 embeddings", False, "an explicit base64 request got a mix of strings and lists back", figures
        )
    figures["explicit_base64_answer"] = answered
    if explicit_vectors.shape != floats.shape:
        return CheckResult(
            "base64 embeddings",
            False,
            f"an explicit base64 request decodes to {explicit_vectors.shape[1]} dimensions, floats "
            f"have {floats.shape[1]} (is it little-endian float32?)",
            figures,
        )
    worst_explicit = float(np.abs(explicit_vectors - floats).max())
    worst = max(worst_default, worst_explicit)
    tolerance = 1e-5 * max(1.0, float(np.abs(floats).max()))
    if worst > tolerance:
        return CheckResult(
            "base64 embeddings",
            False,
            f"base64 and float embeddings of the same texts differ by up to {worst:.2g} (default "
            f"path {worst_default:.2g}, explicit {worst_explicit:.2g})",
            figures,
        )
    if answered == "base64":
        how = "an explicit encoding_format='base64' got base64 strings (little-endian float32), same vectors"
    else:
        how = (
            "an explicit encoding_format='base64' got float lists: the worker ignores encoding_format "
            "(worker-infinity-embedding 1.1.4 never reads it), so code that asks for base64 itself must "
            "accept lists"
        )
    return CheckResult(
        "base64 embeddings",
        True,
        f"the SDK's default path (base64 requested, decoded) equals floats (max diff {worst_default:.1g}); {how}",
        figures,
    )


def _check_similarity(state: dict[str, Any]) -> CheckResult:
    if "float" not in state:
        return CheckResult("similarity", False, "skipped: the float embeddings failed")
    vectors = state["float"]
    similar, unrelated, wrong = [], [], []
    for n, (anchor, _, _) in enumerate(SIMILARITY_TRIPLES):
        a, s, u = vectors[3 * n], vectors[3 * n + 1], vectors[3 * n + 2]
        similar.append(_cosine(a, s))
        unrelated.append(_cosine(a, u))
        if similar[-1] <= unrelated[-1]:
            wrong.append(f"{anchor!r}: similar {similar[-1]:.3f} <= unrelated {unrelated[-1]:.3f}")
    figures: dict[str, Figure] = {
        "similar_score": round(sum(similar) / len(similar), 4),
        "unrelated_score": round(sum(unrelated) / len(unrelated), 4),
    }
    figures["similarity_margin"] = round(min(s - u for s, u in zip(similar, unrelated, strict=True)), 4)
    if wrong:
        return CheckResult(
            "similarity",
            False,
            "similar sentences do not score higher than unrelated ones (is it an embedding model, "
            "and the one you meant?): " + "; ".join(wrong),
            figures,
        )
    return CheckResult(
        "similarity",
        True,
        f"similar pairs score {figures['similar_score']:.3f} on average, unrelated "
        f"{figures['unrelated_score']:.3f} (cosine, {len(SIMILARITY_TRIPLES)} triples)",
        figures,
    )


def _check_batch(client: openai.OpenAI, model: str) -> CheckResult:
    texts = batch_texts(BATCH_SIZE)
    started = time.monotonic()
    response = client.embeddings.create(model=model, input=texts, encoding_format="float")
    elapsed = time.monotonic() - started
    figures: dict[str, Figure] = {
        "batch_size": len(texts),
        "batch_latency_s": round(elapsed, 3),
        "embeddings_per_s": round(len(texts) / elapsed, 1) if elapsed > 0 else 0.0,
    }
    if len(response.data) != len(texts):
        return CheckResult(
            "batch order", False, f"sent {len(texts)} inputs, got {len(response.data)} embeddings back", figures
        )
    batch = _matrix(_ordered(response.data, "batch answer"), "batch answer")
    singles = _matrix(
        [
            client.embeddings.create(model=model, input=texts[i], encoding_format="float").data[0].embedding
            for i in SPOT_CHECKS
        ],
        "single embeddings",
    )
    if singles.shape[1] != batch.shape[1]:
        return CheckResult(
            "batch order",
            False,
            f"single embeddings have {singles.shape[1]} dimensions, the batch {batch.shape[1]}",
            figures,
        )
    agreement = _rows_cosine(batch[list(SPOT_CHECKS)], singles)
    norms = np.linalg.norm(batch, axis=1) * np.linalg.norm(singles, axis=1)[:, None]
    nearest = (singles @ batch.T / np.where(norms == 0, 1.0, norms)).argmax(axis=1)
    figures["batch_min_agreement"] = round(float(agreement.min()), 6)
    bad = [
        f"input {i} (cosine {c:.4f} with its single embedding, closest batch item {j})"
        for i, c, j in zip(SPOT_CHECKS, agreement, nearest, strict=True)
        if c < SAME_VECTOR_COSINE or j != i
    ]
    if bad:
        return CheckResult("batch order", False, "a batch of 100 does not keep its order: " + "; ".join(bad), figures)
    return CheckResult(
        "batch order",
        True,
        f"{len(texts)} inputs in {elapsed:.2f} s ({figures['embeddings_per_s']} embeddings/s), indexes "
        f"in order, items {', '.join(map(str, SPOT_CHECKS))} equal their single embeddings",
        figures,
    )


def _check_langchain(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str,
    model: str,
    dimension: int,
    timeout: float,
    state: dict[str, Any],
) -> CheckResult:
    embedder = langchain_embeddings(settings, api_key, endpoint_id, model, timeout=timeout)
    anchor, similar, _ = SIMILARITY_TRIPLES[0]
    started = time.monotonic()
    documents = embedder.embed_documents([anchor, similar])
    query = embedder.embed_query(anchor)
    elapsed = time.monotonic() - started
    figures: dict[str, Figure] = {"langchain_latency_s": round(elapsed, 3)}
    docs = _matrix(documents, "embed_documents")
    single = _matrix([query], "embed_query")
    # the same dimension as the SDK's answer (a wrong expected dimension is the float check's failure)
    want = state["float"].shape[1] if "float" in state else dimension
    if docs.shape[0] != 2 or docs.shape[1] != want or single.shape[1] != want:
        return CheckResult(
            "langchain",
            False,
            f"embed_documents gave {docs.shape[0]} vectors of {docs.shape[1]} dimensions and "
            f"embed_query {single.shape[1]}; expected 2 of {want}",
            figures,
        )
    agree = _cosine(docs[0], single[0])
    if "float" in state:
        agree = min(agree, _cosine(single[0], state["float"][0]))
    if agree < SAME_VECTOR_COSINE:
        return CheckResult(
            "langchain",
            False,
            f"embed_query and embed_documents (or the openai SDK) give different vectors for the "
            f"same text (cosine {agree:.4f})",
            figures,
        )
    return CheckResult(
        "langchain",
        True,
        f"OpenAIEmbeddings embed_documents (2) and embed_query agree with the SDK, "
        f"{want} dimensions, in {elapsed:.2f} s",
        figures,
    )


def _check_rerank(
    settings: Settings, api_key: Secret | str, endpoint_id: str, model: str, timeout: float, served: Sequence[str]
) -> CheckResult:
    job = {"model": model, "query": RERANK_QUERY, "docs": list(RERANK_DOCS), "return_docs": True}
    poll = 0.05 if settings.target == "local" else 0.25
    started = time.monotonic()
    try:
        result = run_job(settings, api_key, endpoint_id, job, timeout_s=timeout, poll_s=poll)
    except JobTimeoutError as exc:
        if exc.status != "IN_PROGRESS":
            raise
        return CheckResult(
            "rerank",
            False,
            f"a worker took the rerank job {exc.job_id} but had not answered after {timeout:g} s; rpbook cancelled it "
            f"so no worker keeps billing for it. A worker that never answers a rerank is most likely "
            f"runpod/worker-infinity-embedding 1.0.0-1.1.4 ({RERANK_DEFECT}). {RERANK_REMEDY}.",
            {"rerank_latency_s": round(time.monotonic() - started, 3)},
        )
    elapsed = time.monotonic() - started
    figures: dict[str, Figure] = {"rerank_latency_s": round(elapsed, 3)}
    output = result.output[0] if isinstance(result.output, list) and len(result.output) == 1 else result.output
    if isinstance(output, dict) and output.get("object") == "error":
        message = scrub(str(output.get("message", output)))[:300].rstrip(".")
        # The worker flattens every exception into one BadRequestError text (create_error_response in
        # worker-infinity-embedding 1.1.4 src/handler.py), so the cause is read from what we know
        # instead: a model /models lists but that cannot rerank is not a reranker (Infinity 0.0.76
        # raises ModelNotDeployedError when "rerank" is not among a model's capabilities).
        if model in served:
            hint = (
                f" {model!r} is served but refused a well-formed rerank: most likely it is an embedding model, and "
                "Infinity reranks only with a reranker (cross-encoder) such as BAAI/bge-reranker-base. Add one "
                "to MODEL_NAMES and set rerank_model to it."
            )
        else:
            hint = (
                f" {model!r} is not among the served models {list(served)}: add it to MODEL_NAMES, or set "
                "rerank_model to a reranker that is."
            )
        return CheckResult("rerank", False, f"the worker answered an error: {message}.{hint}", figures)
    results = output.get("results") if isinstance(output, dict) else None
    if (
        not isinstance(results, list)
        or not results
        or not all(
            isinstance(r, dict)
            and isinstance(r.get("relevance_score"), (int, float))
            and isinstance(r.get("index"), int)
            for r in results
        )
    ):
        return CheckResult("rerank", False, scrub(f"unexpected rerank output: {str(output)[:300]}"), figures)
    if sorted(r["index"] for r in results) != list(range(len(RERANK_DOCS))):
        return CheckResult(
            "rerank",
            False,
            f"rerank results cover indexes {[r['index'] for r in results]}, not one "
            f"per document (0..{len(RERANK_DOCS) - 1})",
            figures,
        )
    top = max(results, key=lambda r: r["relevance_score"])  # Infinity sorts by score; older workers kept doc order
    figures["rerank_top_index"] = top["index"]
    top_score = figures["rerank_top_score"] = round(float(top["relevance_score"]), 4)
    if not math.isfinite(top_score):
        return CheckResult("rerank", False, "the rerank scores are not finite numbers", figures)
    if top["index"] != RERANK_RELEVANT:
        return CheckResult(
            "rerank",
            False,
            f"the relevant document (index {RERANK_RELEVANT}) is not ranked first; document "
            f"{top['index']} is ({top['relevance_score']:.3f})",
            figures,
        )
    if "document" in top and top["document"] != RERANK_DOCS[RERANK_RELEVANT]:
        return CheckResult("rerank", False, "return_docs gave back a different text for the top document", figures)
    return CheckResult(
        "rerank",
        True,
        f"queue job ranks the relevant document first (score {top['relevance_score']:.3f}) in {elapsed:.2f} s",
        figures,
    )
