"""OpenAI-compatible routes through the unmodified ``openai``, ``langchain-openai`` and curl."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import numpy as np
import openai
import pytest
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from conftest import LocalpodServer

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
BGE = "BAAI/bge-small-en-v1.5"


@pytest.fixture
def vllm_endpoint(localpod: LocalpodServer, plant_endpoint):  # type: ignore[no-untyped-def]
    return plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2",
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token, "MAX_MODEL_LEN": "8192"},
    )


@pytest.fixture
def infinity_endpoint(plant_endpoint):  # type: ignore[no-untyped-def]
    return plant_endpoint(
        image="runpod/worker-infinity-embedding:1.1.4", env={"MODEL_NAMES": BGE, "RUNPOD_MAX_CONCURRENCY": "50"}
    )


def client_for(localpod: LocalpodServer, endpoint_id: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=localpod.openai_base(endpoint_id), api_key=localpod.api_key, max_retries=0)


def test_models_lists_the_served_name(localpod, vllm_endpoint):
    models = client_for(localpod, vllm_endpoint.id).models.list()
    assert [m.id for m in models.data] == [MISTRAL]


def test_served_name_override(localpod, plant_endpoint):
    endpoint = plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2",
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token, "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "team-chat"},
    )
    client = client_for(localpod, endpoint.id)
    assert [m.id for m in client.models.list().data] == ["team-chat"]
    reply = client.chat.completions.create(
        model="team-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=8
    )
    assert reply.model == "team-chat"


def test_sanity_chat(localpod, vllm_endpoint):
    reply = client_for(localpod, vllm_endpoint.id).chat.completions.create(
        model=MISTRAL, messages=[{"role": "user", "content": "Hello, how are you?"}], max_tokens=64
    )
    text = reply.choices[0].message.content
    assert reply.choices[0].message.role == "assistant"
    assert text and len(text.split()) >= 3
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_chat_matches_the_non_streamed_answer(localpod, vllm_endpoint):
    client = client_for(localpod, vllm_endpoint.id)
    messages = [{"role": "user", "content": "What is a network volume?"}]
    whole = client.chat.completions.create(model=MISTRAL, messages=messages, max_tokens=40, seed=7)
    pieces = []
    for chunk in client.chat.completions.create(model=MISTRAL, messages=messages, max_tokens=40, seed=7, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    assert len(pieces) > 3
    assert "".join(pieces) == whole.choices[0].message.content


def test_completion_without_max_tokens_stops_at_16(localpod, vllm_endpoint):
    result = client_for(localpod, vllm_endpoint.id).completions.create(
        model=MISTRAL, prompt="Write a long story about GPUs and volumes."
    )
    assert result.usage.completion_tokens == 16
    assert result.choices[0].finish_reason == "length"


def test_stop_sequence_and_max_tokens(localpod, vllm_endpoint):
    client = client_for(localpod, vllm_endpoint.id)
    long = client.completions.create(model=MISTRAL, prompt="Describe serverless.", max_tokens=60)
    assert long.usage.completion_tokens <= 60
    text = long.choices[0].text
    cut_at = text.split()[3]
    stopped = client.completions.create(model=MISTRAL, prompt="Describe serverless.", max_tokens=60, stop=[cut_at])
    assert cut_at not in stopped.choices[0].text
    assert stopped.choices[0].finish_reason == "stop"


def test_wrong_model_name_is_a_404(localpod, vllm_endpoint):
    """worker-vllm v2.25.2 reports vLLM's 404 as ``{"error": {"message": "vLLM returned HTTP 404:
    ...", "type": "worker_error"}}``, a FAILED job; the route answers with that status and message."""
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as info:
            client_for(localpod, vllm_endpoint.id).chat.completions.create(
                model="mistralai/Mistral-7B-v0.1", messages=[{"role": "user", "content": "Hi"}], stream=stream
            )
        assert "Mistral-7B-v0.1" in str(info.value) and "vLLM returned HTTP 404" in str(info.value)
        assert info.value.body["type"] == "worker_error" and info.value.body["code"] == 404
    with pytest.raises(openai.BadRequestError) as bad:
        client_for(localpod, vllm_endpoint.id).completions.create(model=MISTRAL, prompt="Hi", max_tokens=10**7)
    assert "vLLM returned HTTP 400" in str(bad.value) and "max_tokens" in str(bad.value)


def test_wrong_key_is_a_401(localpod, vllm_endpoint):
    bad = openai.OpenAI(base_url=localpod.openai_base(vllm_endpoint.id), api_key="rpa_WRONG", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_langchain_chat_invoke_and_stream(localpod, vllm_endpoint):
    llm = ChatOpenAI(
        model=MISTRAL,
        base_url=localpod.openai_base(vllm_endpoint.id),
        api_key=localpod.api_key,
        max_tokens=32,
        max_retries=0,
    )
    answer = llm.invoke("Hello, how are you?")
    assert answer.content
    streamed = "".join(chunk.content for chunk in llm.stream("Hello, how are you?"))
    assert streamed == answer.content


def test_embeddings_float_and_base64(localpod, infinity_endpoint):
    client = client_for(localpod, infinity_endpoint.id)
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Quarterly tax filing deadlines."]
    floats = client.embeddings.create(model=BGE, input=texts, encoding_format="float")
    b64 = client.embeddings.create(model=BGE, input=texts, encoding_format="base64")
    a = np.array([d.embedding for d in floats.data])
    # worker-infinity-embedding 1.1.4 never reads encoding_format: an explicit base64 request still
    # gets float lists (a client decoding base64 strings would have to accept both).
    assert all(isinstance(d.embedding, list) for d in b64.data)
    b = np.array([d.embedding for d in b64.data])
    assert a.shape == (3, 256)
    assert np.allclose(a, b, atol=1e-6)
    sims = a @ a.T
    assert sims[0, 1] > sims[0, 2]
    assert [d.index for d in floats.data] == [0, 1, 2]
    # Without encoding_format the SDK asks for base64 itself and decodes it.
    default = client.embeddings.create(model=BGE, input=texts)
    assert np.allclose(np.array([d.embedding for d in default.data]), a, atol=1e-6)


def test_langchain_embeddings(localpod, infinity_endpoint):
    embeddings = OpenAIEmbeddings(
        model=BGE,
        base_url=localpod.openai_base(infinity_endpoint.id),
        api_key=localpod.api_key,
        check_embedding_ctx_length=False,
        max_retries=0,
    )
    vectors = embeddings.embed_documents(["first text", "second text"])
    assert len(vectors) == 2 and len(vectors[0]) == 256
    assert len(embeddings.embed_query("a query")) == 256


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed: apt-get install curl")
def test_sanity_request_through_curl(localpod, vllm_endpoint):
    """The request from Runpod's docs, with only the host changed."""
    url = f"{localpod.openai_base(vllm_endpoint.id)}/chat/completions"
    body = {"model": MISTRAL, "messages": [{"role": "user", "content": "Hello, how are you?"}], "max_tokens": 50}
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            url,
            "-H",
            "Content-Type: application/json",
            "-H",
            f"Authorization: Bearer {localpod.api_key}",
            "-d",
            json.dumps(body),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    reply = json.loads(out)
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["content"]


def test_infinity_errors_keep_their_shapes(localpod, infinity_endpoint):
    """worker-infinity-embedding 1.1.4's handler is a plain function: its own errors are returned
    outputs (``{"object": "error", ..., "code": 400}``, no ``error`` key, so the job COMPLETED and
    the route answers 400), and an exception (``openai_input`` missing: it calls ``.get`` on None)
    is runpod-python ``run_job``'s JSON error, a FAILED job, answered as a 500 without the traceback."""
    with pytest.raises(openai.BadRequestError) as info:
        client_for(localpod, infinity_endpoint.id).embeddings.create(model="nope", input="x")
    assert "nope" in str(info.value)
    response = httpx.get(
        f"{localpod.openai_base(infinity_endpoint.id)}/embeddings",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert message == "<class 'AttributeError'>: 'NoneType' object has no attribute 'get'"
