"""rpbook.endpoint.embeddings against localpod's Infinity worker, and workerimages.infinity_template's validation.

localpod's worker computes real 256-dimension vectors (wordllama) in place of bge-small's 384, so the
checks run here with ``expected_dimension=256``, as the local parameters state."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from conftest import wait_for
from rpbook.account.specs import TemplateSpec
from rpbook.account.wakeup import wake
from rpbook.account.workerimages import infinity_template
from rpbook.core.errors import ConfigError, SanityCheckError
from rpbook.core.secrets import Secret
from rpbook.endpoint.embeddings import (
    EmbeddingReport,
    batch_texts,
    decode_base64_embedding,
    embedding_checks,
    embeddings_client,
    embeddings_ping,
    langchain_embeddings,
)

INFINITY_IMAGE = "runpod/worker-infinity-embedding:1.1.4"
PATCHED_IMAGE = "example/worker-infinity-embedding:1.1.4-rerank-fix"
"""A team's own build with the rerank fix: localpod reranks cleanly on it (1.1.4 never answers)."""
BGE = "BAAI/bge-small-en-v1.5"
RERANKER = "BAAI/bge-reranker-base"
LOCAL_DIMENSION = 256
CHECKS = ["served model", "float embeddings", "base64 embeddings", "similarity", "batch order", "langchain", "rerank"]


@pytest.fixture
def key(settings):  # type: ignore[no-untyped-def]
    return settings.runpod_api_key()


@pytest.fixture
def endpoint_id(settings, key, plant_endpoint) -> str:  # type: ignore[no-untyped-def]
    """A woken Infinity endpoint serving bge-small and a reranker (woken with the embeddings ping)."""
    endpoint = plant_endpoint(
        image=PATCHED_IMAGE, env={"MODEL_NAMES": f"{BGE};{RERANKER}", "RUNPOD_MAX_CONCURRENCY": "50"}
    )
    wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=False, job_input=embeddings_ping(BGE))
    return endpoint.id


def test_all_checks_pass_with_the_local_dimension(localpod, settings, key, endpoint_id, tmp_path):
    report = embedding_checks(settings, key, endpoint_id, BGE, LOCAL_DIMENSION, timeout=30, rerank_model=RERANKER)
    assert isinstance(report, EmbeddingReport) and report.ok, str(report)
    assert [c.name for c in report.checks] == CHECKS
    assert 0.5 < report.figures["rerank_top_score"] < 1  # a reranker's sigmoid score
    without_reranker = embedding_checks(settings, key, endpoint_id, BGE, LOCAL_DIMENSION, timeout=30)
    assert [c.name for c in without_reranker.checks] == CHECKS[:-1]
    figures = report.figures
    assert figures["dimension"] == LOCAL_DIMENSION and abs(figures["mean_norm"] - 1) < 1e-3
    assert figures["similar_score"] > figures["unrelated_score"] and figures["similarity_margin"] > 0
    assert figures["embeddings_per_s"] > 0 and figures["batch_size"] == 100 and figures["batch_min_agreement"] > 0.9999
    assert figures["rerank_top_index"] == 1 and figures["base64_max_abs_diff"] == 0
    # worker 1.1.4 ignores encoding_format: an explicit base64 request gets float lists, said so plainly
    assert figures["explicit_base64_answer"] == "float"
    assert "ignores encoding_format" in next(c for c in report.checks if c.name == "base64 embeddings").detail
    for name in (
        "models_latency_s",
        "float_latency_s",
        "base64_latency_s",
        "batch_latency_s",
        "langchain_latency_s",
        "rerank_latency_s",
    ):
        assert figures[name] > 0
    text, page = str(report), report._repr_html_()
    assert "PASS" in text and "FAIL" not in text and "embeddings_per_s=" in text and "<table>" in page
    assert localpod.api_key not in text + page + repr(report)
    # every figure is a JSON scalar the runbook can record
    from rpbook.records.figures import record_figures
    from rpbook.records.runfolder import load_figures

    assert load_figures(record_figures("04-embeddings", figures, run_dir=tmp_path)) == figures


def test_wrong_dimension_fails_naming_both_numbers(settings, key, endpoint_id):
    with pytest.raises(SanityCheckError) as info:
        embedding_checks(settings, key, endpoint_id, BGE, 384, timeout=30)
    report = info.value.report
    assert report is not None
    assert [c.name for c in report.failed] == ["float embeddings"]  # one failure for one cause
    detail = report.failed[0].detail
    assert "256-dim" in detail and "384" in detail and "MODEL_NAMES" in detail
    assert "256" in str(info.value) and "384" in str(info.value)
    lenient = embedding_checks(settings, key, endpoint_id, BGE, 384, timeout=30, strict=False)
    assert not lenient.ok and lenient.figures["dimension"] == 256 and "FAIL" in str(lenient)


def test_unknown_model_fails_and_skips_the_rest(localpod, settings, key, endpoint_id):
    report = embedding_checks(settings, key, endpoint_id, "BAAI/bge-large-en-v1.5", 1024, strict=False)
    assert not report.ok and [c.name for c in report.checks] == ["served model"]
    detail = report.checks[0].detail
    assert "bge-large-en-v1.5" in detail and BGE in detail and "MODEL_NAMES" in detail
    with pytest.raises(SanityCheckError) as info:
        embedding_checks(settings, key, endpoint_id, "BAAI/bge-large-en-v1.5", 1024)
    assert info.value.report is not None and info.value.report.checks[0].name == "served model"
    assert localpod.api_key not in str(info.value)


def test_rerank_with_a_model_the_worker_does_not_serve(settings, key, endpoint_id):
    report = embedding_checks(
        settings, key, endpoint_id, BGE, LOCAL_DIMENSION, strict=False, rerank_model="BAAI/bge-reranker-large"
    )
    assert [c.name for c in report.failed] == ["rerank"]
    assert "error" in report.failed[0].detail and "bge-reranker-large" in report.failed[0].detail
    # told apart from "served but not a reranker" by /models, not by the worker's message text
    assert "not among the served models" in report.failed[0].detail and "refused" not in report.failed[0].detail


def test_rerank_with_the_embedding_model_explains_what_to_add(settings, key, endpoint_id):
    """Infinity refuses to rerank with an embedding model; the check says which model to add."""
    report = embedding_checks(settings, key, endpoint_id, BGE, LOCAL_DIMENSION, strict=False, rerank_model=BGE)
    [failed] = report.failed
    assert failed.name == "rerank" and "cannot fullyfill `rerank`" in failed.detail
    assert "is served but refused" in failed.detail
    assert "BAAI/bge-reranker-base" in failed.detail and "MODEL_NAMES" in failed.detail and ".." not in failed.detail


def test_rerank_on_released_workers_fails_fast_without_a_job(localpod, settings, key, endpoint_id):
    """worker-infinity-embedding 1.0.0-1.1.4 never answer a rerank (issues #29, #37): knowing the
    image, the check fails at once and sends nothing that could keep a worker billing."""
    from rpbook.endpoint.embeddings import rerank_broken

    assert rerank_broken("1.1.4") and rerank_broken(INFINITY_IMAGE) and rerank_broken(" 1.0.0 ")
    assert not rerank_broken(PATCHED_IMAGE) and not rerank_broken("other/image:1.1.4") and not rerank_broken(None)
    assert not rerank_broken("runpod/worker-infinity-embedding@sha256:" + "0" * 64) and not rerank_broken("1.2.0")
    runtime = localpod.ctx.platform.runtime(endpoint_id)
    before = len(runtime.jobs)
    for image in ("1.1.4", INFINITY_IMAGE):
        report = embedding_checks(
            settings,
            key,
            endpoint_id,
            BGE,
            LOCAL_DIMENSION,
            timeout=30,
            strict=False,
            rerank_model=RERANKER,
            worker_image=image,
        )
        [failed] = report.failed
        assert failed.name == "rerank" and failed.detail.startswith("not run: runpod/worker-infinity-embedding:1.1.4")
        assert "issues #29 and #37" in failed.detail and "rerank_model empty" in failed.detail
    assert len(runtime.jobs) == before  # no queue job was sent (the OpenAI-route jobs are not kept)


def test_a_rerank_that_never_answers_is_cancelled(localpod, settings, key, plant_endpoint):
    """Asked anyway (``force_rerank``, or an image rpbook does not know), the check waits at most
    ``rerank_wait_s`` and cancels the job, so no worker keeps billing for it until the execution
    timeout (600 s here)."""
    endpoint = plant_endpoint(image=INFINITY_IMAGE, env={"MODEL_NAMES": f"{BGE};{RERANKER}"})
    wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=False, job_input=embeddings_ping(BGE))
    for options in ({"worker_image": "1.1.4", "force_rerank": True}, {}):
        report = embedding_checks(
            settings,
            key,
            endpoint.id,
            BGE,
            LOCAL_DIMENSION,
            timeout=30,
            strict=False,
            rerank_model=RERANKER,
            rerank_wait_s=1.0,
            **options,
        )
        [failed] = report.failed
        assert failed.name == "rerank" and "had not answered after 1 s" in failed.detail
        assert "cancelled it" in failed.detail and "issues #29 and #37" in failed.detail
        job_id = failed.detail.split("rerank job ")[1].split()[0]
        job = localpod.ctx.platform.runtime(endpoint.id).jobs[job_id]
        assert job.status == "CANCELLED"
    # The cancelled handler task unwinds on localpod's loop (another thread): wait for it, as a
    # status poll on Runpod would.
    wait_for(lambda: localpod.ctx.platform.runtime(endpoint.id).health()["jobs"]["inProgress"] == 0, timeout=5)


def test_wake_with_the_embeddings_ping(settings, key, plant_endpoint):
    ping = embeddings_ping(BGE)
    assert "input" not in ping  # the runpod SDK would take it for the whole request body
    assert ping == {"openai_route": "/v1/embeddings", "openai_input": {"model": BGE, "input": "ping"}}
    with pytest.raises(ConfigError):
        embeddings_ping("")
    endpoint = plant_endpoint(image=INFINITY_IMAGE, env={"MODEL_NAMES": BGE})
    woken = wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=False, job_input=embeddings_ping(BGE))
    assert woken.cold and "first token" in woken.timeline and '"embedding"' in woken.output_preview
    again = wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=False, job_input=embeddings_ping(BGE))
    assert not again.cold


def test_clients_are_bound_and_hide_the_key(settings, key, endpoint_id):
    client = embeddings_client(settings, key, endpoint_id, timeout=30)
    assert str(client.base_url).rstrip("/") == settings.openai_base_url(endpoint_id)
    vector = client.embeddings.create(model=BGE, input="hello").data[0].embedding
    assert len(vector) == LOCAL_DIMENSION
    embedder = langchain_embeddings(settings, key, endpoint_id, BGE)
    assert embedder.check_embedding_ctx_length is False and key.reveal() not in repr(embedder)
    assert len(embedder.embed_query("hello")) == LOCAL_DIMENSION
    # a plain-string key works too and is registered for scrubbing
    plain = "rpa_PLAIN_STRING_KEY_FOR_TEST"
    report = embedding_checks(settings, plain, endpoint_id, BGE, LOCAL_DIMENSION, strict=False)
    assert not report.ok and plain not in str(report) and "401" in report.checks[0].detail


def test_helpers():
    texts = batch_texts()
    assert len(texts) == 100 and len(set(texts)) == 100
    values = np.array([0.5, -1.25, 3.0], dtype="<f4")
    assert decode_base64_embedding(base64.b64encode(values.tobytes()).decode()) == [0.5, -1.25, 3.0]
    with pytest.raises(ValueError, match="decodes to 5 bytes, not a whole number of float32"):
        decode_base64_embedding(base64.b64encode(b"12345").decode())


def test_bad_arguments_are_config_errors(settings, key):
    with pytest.raises(ConfigError, match="expected_dimension"):
        embedding_checks(settings, key, "abc", BGE, 0)
    with pytest.raises(ConfigError, match="expected_dimension"):
        embedding_checks(settings, key, "abc", BGE, True)  # type: ignore[arg-type]


# -- infinity_template ------------------------------------------------------------------------------


def test_infinity_template_env():
    spec = infinity_template("infinity-bge-small", [BGE], "1.1.4")
    assert isinstance(spec, TemplateSpec)
    assert spec.image == "runpod/worker-infinity-embedding:1.1.4" and spec.disk_gb == 20
    assert spec.env == {
        "MODEL_NAMES": BGE,
        "BATCH_SIZES": "32",
        "BACKEND": "torch",
        "DTYPES": "auto",
        "RUNPOD_MAX_CONCURRENCY": "50",
    }
    two = infinity_template(
        "t",
        [BGE, "BAAI/bge-reranker-base"],
        "1.1.4",
        batch_sizes=[64, 8],
        backend="optimum",
        dtypes=["fp16", "auto"],
        max_concurrency=20,
        disk_gb=30,
    )
    assert two.env["MODEL_NAMES"] == f"{BGE};BAAI/bge-reranker-base" and two.env["BATCH_SIZES"] == "64;8"
    assert two.env["DTYPES"] == "fp16;auto" and two.env["BACKEND"] == "optimum"
    assert two.env["RUNPOD_MAX_CONCURRENCY"] == "20" and two.disk_gb == 30
    # one value for all models; ';'-joined strings as papermill parameters give them
    shared = infinity_template("t", f"{BGE};BAAI/bge-reranker-base", "1.1.4", batch_sizes=16, dtypes="fp16")
    assert shared.env["BATCH_SIZES"] == "16;16" and shared.env["DTYPES"] == "fp16;fp16"
    assert infinity_template("t", BGE, "1.1.4", batch_sizes="32").env["BATCH_SIZES"] == "32"


def test_infinity_template_hf_token(localpod):
    ref = "{{ RUNPOD_SECRET_hf_token }}"
    assert infinity_template("t", [BGE], "1.1.4", hf_token_ref=ref).env["HF_TOKEN"] == ref
    token = Secret("HF_TOKEN", "hf_infinity_template_test_token", "environment")
    spec = infinity_template("t", [BGE], "1.1.4", hf_token_ref=token)
    assert spec.env["HF_TOKEN"] is token and token.reveal() not in repr(spec)
    assert "HF_TOKEN" not in infinity_template("t", [BGE], "1.1.4", hf_token_ref="").env
    with pytest.raises(ConfigError, match="hf_token_ref"):
        infinity_template("t", [BGE], "1.1.4", hf_token_ref="hf_plain_token_value")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_tag": "latest"}, "pin a release tag"),
        ({"image_tag": ""}, "pin a release tag"),
        ({"image_tag": "runpod/worker-infinity-embedding:1.1.4"}, "not a Docker tag"),
        ({"models": []}, "at least one"),
        ({"models": ["bge-small"]}, "not a Hugging Face repo id"),
        ({"models": [BGE, BGE]}, "twice"),
        ({"batch_sizes": [32, 32]}, "2 value"),
        ({"batch_sizes": [0]}, "batch_sizes"),
        ({"batch_sizes": [True]}, "batch_sizes"),
        ({"backend": "onnx"}, "torch, optimum, ctranslate2"),
        ({"dtypes": ["int8"]}, "auto, fp16, fp8"),
        ({"dtypes": ["auto", "fp16"]}, "2 value"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"disk_gb": 0}, "disk_gb"),
    ],
)
def test_infinity_template_validation(kwargs, match):
    args = {"name": "t", "models": [BGE], "image_tag": "1.1.4", **kwargs}
    with pytest.raises(ConfigError, match=match):
        infinity_template(**args)


# -- what localpod cannot show: a base64-honouring server, Runpod's rerank answers ------------------


def _fake_openai(byteorder: str = "<"):  # type: ignore[no-untyped-def]
    """An OpenAI client whose server honours ``encoding_format`` (as Infinity's own server does)."""
    import json

    import httpx
    import openai

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(texts):
            vector = np.array([len(text), i + 1, -0.5, 0.25], dtype=np.float32)
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(vector.astype(f"{byteorder}f4").tobytes()).decode()
            else:
                embedding = vector.tolist()
            data.append({"object": "embedding", "embedding": embedding, "index": i})
        return httpx.Response(
            200,
            json={
                "object": "list",
                "model": body["model"],
                "data": data,
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    return openai.OpenAI(
        base_url="http://fake.invalid/v1",
        api_key="sk-fake",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


@pytest.mark.parametrize("byteorder, ok", [("<", True), (">", False)])
def test_base64_check_with_a_server_that_answers_base64(byteorder, ok):
    from rpbook.endpoint import embeddings

    client = _fake_openai(byteorder)
    state: dict = {}
    assert embeddings._check_float(client, "m", 4, state).ok
    result = embeddings._check_base64(client, "m", state)
    assert result.ok is ok and result.figures["explicit_base64_answer"] == "base64"
    if ok:
        assert "got base64 strings" in result.detail
    else:
        assert "differ" in result.detail


@pytest.mark.parametrize(
    "output, ok, words",
    [
        (
            {
                "object": "error",
                "message": "the loaded moded cannot fullyfill `rerank`. Options are {'embed'}.",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
            False,
            ["bge-reranker-base", "rerank_model"],
        ),
        # older workers keep the documents' order instead of sorting by score: the top is found by score
        (
            {
                "model": BGE,
                "results": [
                    {"relevance_score": 0.1, "index": 0},
                    {"relevance_score": 0.9, "index": 1},
                    {"relevance_score": 0.2, "index": 2},
                ],
                "usage": {},
            },
            True,
            ["first"],
        ),
        (
            {
                "model": BGE,
                "results": [
                    {"relevance_score": 0.9, "index": 2},
                    {"relevance_score": 0.5, "index": 1},
                    {"relevance_score": 0.2, "index": 0},
                ],
                "usage": {},
            },
            False,
            ["not ranked first"],
        ),
        ({"model": BGE, "results": []}, False, ["unexpected rerank output"]),
    ],
)
def test_rerank_answers(monkeypatch, settings, key, output, ok, words):
    from rpbook.account.jobqueue import JobResult
    from rpbook.endpoint import embeddings

    monkeypatch.setattr(embeddings, "run_job", lambda *a, **k: JobResult("job-1", "COMPLETED", output, 1, 1))
    result = embeddings._check_rerank(settings, key, "abc", BGE, 5, [BGE])
    assert result.ok is ok
    assert all(word in result.detail for word in words), result.detail
