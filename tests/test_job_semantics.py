"""One suite of job semantics, run on both worker paths, which must agree.

localpod runs the images it emulates (runpod/mock-worker, worker-vllm, worker-infinity-embedding)
either inside its own process (the default: fast, its rules in ``localpod.serverless.workers`` written
after reading runpod-python's ``rp_job``/``rp_http``) or, with ``--worker-processes``, as handlers in
real worker processes running the runpod SDK 1.12.0 loop (``localpod.serverless.sdk_handler``), where
the SDK's own code decides. Each case below runs on both and checks the same outcome, so the
in-process rules cannot drift from the SDK without a test failing here.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import LocalpodServer, call_in_server, wait_for

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
BGE = "BAAI/bge-small-en-v1.5"
RERANKER = "BAAI/bge-reranker-base"

pytestmark = pytest.mark.slow


@pytest.fixture(params=["in-process", "sdk-process"])
def path(request, localpod: LocalpodServer, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(localpod.ctx.settings, "worker_processes", request.param == "sdk-process")
    yield request.param
    localpod.control("POST", "reset")  # stops worker processes before the setting goes back


def queue(localpod: LocalpodServer, endpoint_id: str, op: str, body: Any = None) -> Any:
    url = f"{localpod.base_url}/api.runpod.ai/v2/{endpoint_id}/{op}"
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    response = (
        httpx.get(url, headers=headers, timeout=90)
        if body is None
        else httpx.post(url, json=body, headers=headers, timeout=90)
    )
    response.raise_for_status()
    return response.json()


def runsync(localpod: LocalpodServer, endpoint_id: str, job_input: Any) -> dict[str, Any]:
    return queue(localpod, endpoint_id, "runsync?wait=60000", {"input": job_input})  # type: ignore[no-any-return]


def error_of(result: dict[str, Any]) -> dict[str, Any]:
    return json.loads(result["error"])  # type: ignore[no-any-return]


def test_mock_worker_outputs_errors_and_crashes(localpod, plant_endpoint, path):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(image="runpod/mock-worker:1.0", workers_max=1, idle_timeout=60)
    assert runsync(localpod, endpoint.id, {})["output"] == "Hello World!"
    assert runsync(localpod, endpoint.id, {"mock_return": [1, {"a": 2}]})["output"] == [1, {"a": 2}]
    failed = runsync(localpod, endpoint.id, {"mock_error": True})
    assert failed["status"] == "FAILED"
    assert error_of(failed)["error_type"] == "<class 'Exception'>"
    assert error_of(failed)["error_message"] == "Mock error"
    crashed = runsync(localpod, endpoint.id, {"mock_crash": True})
    assert crashed["status"] == "FAILED"
    assert "exited with code 1" in error_of(crashed)["error_message"]
    after = runsync(localpod, endpoint.id, {"mock_return": "after the crash"})
    assert after["status"] == "COMPLETED" and after["output"] == "after the crash"


def test_vllm_streams_and_aggregates_and_fails_on_an_error_item(localpod, plant_endpoint, path):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2",
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token},
        gpu_pools=["ADA_24"],
        workers_max=1,
        idle_timeout=60,
    )
    done = runsync(localpod, endpoint.id, {"prompt": "Hello there", "sampling_params": {"max_tokens": 6}})
    assert done["status"] == "COMPLETED"
    [completion] = done["output"]
    assert completion["object"] == "text_completion" and completion["usage"]["completion_tokens"] == 6
    stream = queue(localpod, endpoint.id, f"stream/{done['id']}")
    assert [chunk["output"] for chunk in stream["stream"]] == done["output"]
    wrong = runsync(
        localpod,
        endpoint.id,
        {
            "openai_route": "/v1/chat/completions",
            "openai_input": {"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        },
    )
    assert wrong["status"] == "FAILED"
    # rp_job.handle_job: str() of the error item's "error" value, a Python repr of worker-vllm's dict
    assert wrong["error"].startswith("{'message': 'vLLM returned HTTP 404")


def test_infinity_embeds_and_a_released_rerank_never_answers(localpod, plant_endpoint, path):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(
        image="runpod/worker-infinity-embedding:1.1.4",
        env={"MODEL_NAMES": f"{BGE};{RERANKER}"},
        workers_max=1,
        idle_timeout=60,
    )
    done = runsync(localpod, endpoint.id, {"model": BGE, "input": ["Paris is in France."]})
    assert done["status"] == "COMPLETED"
    assert len(done["output"]["data"][0]["embedding"]) == 256
    # worker-infinity-embedding 1.1.4 returns Infinity's RerankReturnType objects, which json.dumps
    # refuses in rp_http._handle_result: the result is never sent (its issues #29 and #37).
    stuck = queue(
        localpod,
        endpoint.id,
        "run",
        {"input": {"model": RERANKER, "query": "capital?", "docs": ["a", "b"]}, "policy": {"executionTimeout": 5000}},
    )
    final = wait_for(
        lambda: (
            (s := queue(localpod, endpoint.id, f"status/{stuck['id']}"))["status"] not in ("IN_QUEUE", "IN_PROGRESS")
            and s
        ),
        timeout=60,
    )
    assert final["status"] == "TIMED_OUT"


def test_both_paths_bill_the_same_worker_session_shape(localpod, plant_endpoint, path):  # type: ignore[no-untyped-def]
    """A process worker is billed by the platform like any other: one session from placement."""
    endpoint = plant_endpoint(image="runpod/mock-worker:1.0", workers_max=1, idle_timeout=60)
    runsync(localpod, endpoint.id, {})
    sessions = call_in_server(
        localpod, lambda: [s for s in localpod.ctx.store.sessions if s.endpoint_id == endpoint.id]
    )
    assert len(sessions) == 1 and sessions[0].stopped_at is None and sessions[0].price_per_gpu_s > 0
