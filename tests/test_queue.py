"""The serverless queue through the unmodified ``runpod`` SDK and plain HTTP."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
import requests
import runpod

from conftest import LocalpodServer, call_in_server, free_port, wait_for


@pytest.fixture
def sdk(localpod: LocalpodServer):  # type: ignore[no-untyped-def]
    """The runpod SDK pointed at localpod (only the base URL changes)."""
    saved = (runpod.api_key, runpod.endpoint_url_base)
    runpod.api_key = localpod.api_key
    runpod.endpoint_url_base = localpod.queue_url
    yield runpod
    runpod.api_key, runpod.endpoint_url_base = saved


def health(localpod: LocalpodServer, endpoint_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{localpod.queue_url}/{endpoint_id}/health", headers={"Authorization": f"Bearer {localpod.api_key}"}
    )
    response.raise_for_status()
    return response.json()


def live(localpod: LocalpodServer, endpoint_id: str) -> dict[str, Any]:
    return localpod.control("GET", "state").json()["live"].get(endpoint_id, {"workers": []})


def test_run_sync_cold_start_then_warm(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint()
    client = sdk.Endpoint(endpoint.id)
    started = time.monotonic()
    assert client.run_sync({"mock_return": {"answer": 42}}, timeout=30) == {"answer": 42}
    cold = time.monotonic() - started
    profile = localpod.ctx.settings.profile
    assert cold >= profile.container_start_s + profile.engine_init_s  # a lower bound: true however busy
    assert client.run_sync({"mock_return": "again"}, timeout=30) == "again"
    # warm: the same worker answered, no second cold start (what the machine's speed cannot blur)
    sessions = [s for s in localpod.control("GET", "state").json()["sessions"] if s["endpoint_id"] == endpoint.id]
    assert len(sessions) == 1
    body = health(localpod, endpoint.id)
    assert body["jobs"]["completed"] == 2
    assert body["workers"]["idle"] == 1


def test_run_status_and_output_with_delay_and_execution_times(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint()
    job = sdk.Endpoint(endpoint.id).run({"mock_return": [1, 2, 3], "mock_delay": 0.05})
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS")
    assert job.output(timeout=20) == [1, 2, 3]
    raw = requests.get(
        f"{localpod.queue_url}/{endpoint.id}/status/{job.job_id}", headers={"Authorization": localpod.api_key}
    ).json()  # a bare key works too
    assert raw["status"] == "COMPLETED"
    assert raw["id"] == job.job_id and raw["id"].endswith("-u1")
    assert raw["delayTime"] >= 0 and raw["executionTime"] >= 40  # a 50 ms handler, whole ms
    assert "workerId" in raw


@pytest.mark.slow
def test_runsync_wait_returns_in_progress_then_sdk_polls(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint()
    response = requests.post(
        f"{localpod.queue_url}/{endpoint.id}/runsync?wait=1000",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        json={"input": {"mock_return": "slow", "mock_delay": 1.5}},
    )
    body = response.json()
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS") and body["id"].startswith("sync-")
    # The SDK falls back to polling /status when runsync answers before the job is done.
    assert sdk.Endpoint(endpoint.id).run_sync({"mock_return": "polled", "mock_delay": 1.2}, timeout=30) == "polled"


def test_stream_generator_output(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2", env={"MODEL_NAME": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    )
    job = sdk.Endpoint(endpoint.id).run(
        {
            "messages": [{"role": "user", "content": "Tell me about volumes."}],
            "sampling_params": {"max_tokens": 12},
            "stream": True,
        }
    )
    chunks = list(job.stream())
    assert len(chunks) >= 3
    assert all(isinstance(c, str) and c.startswith("data:") for c in chunks)
    assert chunks[-1].strip() == "data: [DONE]"
    assert job.status() == "COMPLETED"


def test_failed_job_carries_sdk_shaped_error_and_retry(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint()
    job = sdk.Endpoint(endpoint.id).run({"mock_error": True})
    wait_for(lambda: job.status() == "FAILED")
    raw = requests.get(
        f"{localpod.queue_url}/{endpoint.id}/status/{job.job_id}",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    ).json()
    error = json.loads(raw["error"])
    assert {"error_type", "error_message", "error_traceback", "worker_id"} <= set(error)
    retried = requests.post(
        f"{localpod.queue_url}/{endpoint.id}/retry/{job.job_id}",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert retried.json() == {"id": job.job_id, "status": "IN_QUEUE"}
    wait_for(lambda: health(localpod, endpoint.id)["jobs"]["retried"] == 1)


def test_execution_timeout_gives_timed_out(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(timeout_ms=200)
    job = sdk.Endpoint(endpoint.id).run({"mock_return": "never", "mock_delay": 5})
    wait_for(lambda: job.status() == "TIMED_OUT", timeout=15)
    # A per-request policy overrides the endpoint's timeout.
    ok = requests.post(
        f"{localpod.queue_url}/{endpoint.id}/runsync",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        json={"input": {"mock_return": "done", "mock_delay": 0.3}, "policy": {"executionTimeout": 5000}},
    ).json()
    assert ok["status"] == "COMPLETED" and ok["output"] == "done"


def test_cancel_purge_and_health_with_no_workers(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(workers_max=0)
    client = sdk.Endpoint(endpoint.id)
    jobs = [client.run({"n": i}) for i in range(3)]
    time.sleep(0.1)
    body = health(localpod, endpoint.id)
    assert body["jobs"]["inQueue"] == 3
    assert body["workers"] == {"idle": 0, "initializing": 0, "ready": 0, "running": 0, "throttled": 0, "unhealthy": 0}
    assert jobs[0].cancel() == {"id": jobs[0].job_id, "status": "CANCELLED"}
    assert client.purge_queue() == {"removed": 2, "status": "completed"}
    assert health(localpod, endpoint.id)["jobs"]["inQueue"] == 0


def test_auth_unknown_endpoint_and_payload_limits(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint()
    with pytest.raises(RuntimeError, match="401"):
        runpod.Endpoint(endpoint.id, api_key="rpa_WRONG").run_sync({"x": 1}, timeout=5)
    with pytest.raises(requests.HTTPError) as info:
        sdk.Endpoint("nosuchendpoint0").health()
    assert info.value.response.status_code == 404
    missing_input = requests.post(
        f"{localpod.queue_url}/{endpoint.id}/run",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        json={"x": 1},
    )
    assert missing_input.status_code == 400 and "input" in missing_input.json()["error"]
    big = requests.post(
        f"{localpod.queue_url}/{endpoint.id}/run",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        data=json.dumps({"input": "x" * (10 * 1024 * 1024 + 10)}),
    )
    assert big.status_code == 413
    assert localpod.api_key not in big.text


def test_rate_limit_purge_queue(localpod, plant_endpoint):
    endpoint = plant_endpoint()
    url = f"{localpod.queue_url}/{endpoint.id}/purge-queue"
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    codes = [httpx.post(url, headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


@pytest.mark.slow
def test_request_count_scaler_starts_one_worker_per_request(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(
        scaler_type="REQUEST_COUNT", scaler_value=1, workers_max=3, env={"RUNPOD_MAX_CONCURRENCY": "1"}
    )
    client = sdk.Endpoint(endpoint.id)
    jobs = [client.run({"mock_return": i, "mock_delay": 0.6}) for i in range(4)]
    wait_for(lambda: len(live(localpod, endpoint.id)["workers"]) == 3)
    time.sleep(0.1)
    assert len(live(localpod, endpoint.id)["workers"]) == 3  # capped at workers max
    assert [j.output(timeout=20) for j in jobs] == [0, 1, 2, 3]


@pytest.mark.slow
def test_queue_delay_scaler_adds_a_worker_after_the_delay(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(
        scaler_type="QUEUE_DELAY", scaler_value=1, workers_max=3, env={"RUNPOD_MAX_CONCURRENCY": "1"}
    )
    client = sdk.Endpoint(endpoint.id)
    jobs = [client.run({"mock_return": i, "mock_delay": 2.0}) for i in range(2)]
    time.sleep(0.3)
    assert len(live(localpod, endpoint.id)["workers"]) == 1  # the first worker starts at once
    wait_for(lambda: len(live(localpod, endpoint.id)["workers"]) == 2, timeout=3)
    assert [j.output(timeout=20) for j in jobs] == [0, 1]


def test_concurrency_lets_one_worker_run_jobs_in_parallel(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(workers_max=1, env={"RUNPOD_MAX_CONCURRENCY": "4"})
    client = sdk.Endpoint(endpoint.id)
    client.run_sync({"mock_return": "warm"}, timeout=20)
    jobs = [client.run({"mock_return": i, "mock_delay": 3.0}) for i in range(4)]
    # all four in progress at once on the one worker (seen by the queue, not by a stopwatch: one
    # at a time, the count would never pass 1)
    wait_for(lambda: health(localpod, endpoint.id)["jobs"]["inProgress"] == 4, timeout=10)
    assert len(live(localpod, endpoint.id)["workers"]) == 1
    assert [j.output(timeout=20) for j in jobs] == [0, 1, 2, 3]


@pytest.mark.slow
def test_idle_timeout_stops_workers_but_keeps_min(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(idle_timeout=1, workers_min=0)
    sdk.Endpoint(endpoint.id).run_sync({"mock_return": 1}, timeout=20)
    assert len(live(localpod, endpoint.id)["workers"]) == 1
    wait_for(lambda: len(live(localpod, endpoint.id)["workers"]) == 0, timeout=5)
    kept = plant_endpoint(idle_timeout=1, workers_min=1)
    wait_for(lambda: health(localpod, kept.id)["workers"]["idle"] == 1, timeout=5)
    time.sleep(1.3)
    assert health(localpod, kept.id)["workers"]["idle"] == 1


@pytest.mark.slow
def test_flashboot_restart_is_faster_than_a_cold_start(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(idle_timeout=1, flashboot="FLASHBOOT")
    client = sdk.Endpoint(endpoint.id)
    client.run_sync({"mock_return": 1}, timeout=20)
    first = live(localpod, endpoint.id)["workers"][0]["coldStart"]
    assert first.startswith("container")
    wait_for(lambda: len(live(localpod, endpoint.id)["workers"]) == 0, timeout=5)
    client.run_sync({"mock_return": 2}, timeout=20)
    assert live(localpod, endpoint.id)["workers"][0]["coldStart"].startswith("FlashBoot")


def test_endpoint_update_recycles_stale_workers(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(workers_min=1)
    wait_for(lambda: health(localpod, endpoint.id)["workers"]["idle"] == 1)
    old = live(localpod, endpoint.id)["workers"][0]["id"]

    def bump() -> None:
        endpoint_ = localpod.ctx.store.endpoints[endpoint.id]
        endpoint_.env = {**endpoint_.env, "NEW": "1"}
        endpoint_.version += 1
        localpod.ctx.platform.endpoint_updated(endpoint_)

    call_in_server(localpod, bump)
    wait_for(
        lambda: [w["id"] for w in live(localpod, endpoint.id)["workers"] if w["version"] == 2 and w["status"] == "IDLE"]
    )
    assert old not in [w["id"] for w in live(localpod, endpoint.id)["workers"]]


def test_network_volume_caches_weights_after_first_download(localpod, sdk, plant_endpoint):
    from localpod.store import NetworkVolume

    def make_volume() -> str:
        volume = NetworkVolume(id="vol0000001", name="weights", size=50, data_center="EU-RO-1")
        localpod.ctx.store.volumes[volume.id] = volume
        return volume.id

    volume_id = call_in_server(localpod, make_volume)
    env = {"MODEL_NAME": "mistralai/Mistral-7B-Instruct-v0.3", "HF_TOKEN": localpod.hf_token}
    first = plant_endpoint(image="runpod/worker-v1-vllm:v2.25.2", env=env, network_volume_ids=[volume_id])
    job = sdk.Endpoint(first.id).run({"prompt": "hi", "sampling_params": {"max_tokens": 2}})
    job.output(timeout=30)
    assert "download" in live(localpod, first.id)["workers"][0]["coldStart"]
    assert localpod.ctx.store.volumes[volume_id].cached_models == ["mistralai/Mistral-7B-Instruct-v0.3"]
    second = plant_endpoint(image="runpod/worker-v1-vllm:v2.25.2", env=env, network_volume_ids=[volume_id])
    sdk.Endpoint(second.id).run({"prompt": "hi", "sampling_params": {"max_tokens": 2}}).output(timeout=30)
    plan = live(localpod, second.id)["workers"][0]["coldStart"]
    assert "volume read" in plan and "download" not in plan
    assert live(localpod, second.id)["workers"][0]["dataCenterId"] == "EU-RO-1"


def test_gated_model_without_licence_leaves_worker_unhealthy(localpod, sdk, plant_endpoint):
    endpoint = plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2",
        env={"MODEL_NAME": "mistralai/Mistral-7B-Instruct-v0.3", "HF_TOKEN": "hf_localpod_no_licence"},
    )
    job = sdk.Endpoint(endpoint.id).run({"prompt": "hi"})
    wait_for(lambda: health(localpod, endpoint.id)["workers"]["unhealthy"] == 1, timeout=10)
    assert job.status() == "IN_QUEUE"
    reason = live(localpod, endpoint.id)["workers"][0]["unhealthyReason"]
    assert "Mistral-7B-Instruct-v0.3" in reason
    assert "hf_localpod_no_licence" not in reason


def test_webhook_receives_the_finished_job(localpod, sdk, plant_endpoint):
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = plant_endpoint()
        requests.post(
            f"{localpod.queue_url}/{endpoint.id}/run",
            headers={"Authorization": f"Bearer {localpod.api_key}"},
            json={"input": {"mock_return": "hooked"}, "webhook": f"http://127.0.0.1:{server.server_port}/hook"},
        )
        wait_for(lambda: received)
        assert received[0]["status"] == "COMPLETED" and received[0]["output"] == "hooked"
    finally:
        server.shutdown()


def test_runsync_results_expire_after_retention(localpod, sdk, plant_endpoint, monkeypatch):
    from localpod.serverless import jobs

    monkeypatch.setattr(jobs, "RUNSYNC_RETENTION_S", 0.2)
    endpoint = plant_endpoint()
    body = requests.post(
        f"{localpod.queue_url}/{endpoint.id}/runsync",
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        json={"input": {"mock_return": 1}},
    ).json()
    url = f"{localpod.queue_url}/{endpoint.id}/status/{body['id']}"
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    assert requests.get(url, headers=headers).status_code == 200
    wait_for(lambda: requests.get(url, headers=headers).status_code == 404, timeout=5)


# -- job semantics where a user would lose money -----------------------------------------------------


def status_of(localpod: LocalpodServer, endpoint_id: str, job_id: str) -> requests.Response:
    return requests.get(
        f"{localpod.queue_url}/{endpoint_id}/status/{job_id}", headers={"Authorization": f"Bearer {localpod.api_key}"}
    )


def post(localpod: LocalpodServer, endpoint_id: str, path: str, body: Any = None) -> requests.Response:
    return requests.post(
        f"{localpod.queue_url}/{endpoint_id}/{path}", headers={"Authorization": f"Bearer {localpod.api_key}"}, json=body
    )


def test_execution_timeout_stops_the_worker(localpod, sdk, plant_endpoint):
    """runpod/docs serverless/endpoints/endpoint-configurations.mdx, Execution timeout: "When
    exceeded, the job fails and the worker stops"."""
    endpoint = plant_endpoint(timeout_ms=300, env={"RUNPOD_MAX_CONCURRENCY": "2"})
    job = sdk.Endpoint(endpoint.id).run({"mock_return": "never", "mock_delay": 30})
    worker_id = wait_for(lambda: status_of(localpod, endpoint.id, job.job_id).json().get("workerId"))
    neighbour = post(
        localpod,
        endpoint.id,
        "run",
        {"input": {"mock_return": "slow", "mock_delay": 30}, "policy": {"executionTimeout": 60_000}},
    ).json()["id"]
    wait_for(lambda: status_of(localpod, endpoint.id, neighbour).json().get("workerId") == worker_id)
    wait_for(lambda: job.status() == "TIMED_OUT", timeout=15)
    wait_for(lambda: worker_id not in [w["id"] for w in live(localpod, endpoint.id)["workers"]], timeout=5)
    session = next(s for s in localpod.ctx.store.sessions if s.worker_id == worker_id)
    assert session.stopped_at is not None  # its billing ended with it
    # the other job on that worker is gone with it (Runpod does not document what it shows): FAILED, saying why
    other = status_of(localpod, endpoint.id, neighbour).json()
    assert other["status"] == "FAILED" and "execution timeout" in other["error"] and job.job_id in other["error"]


def test_infinity_1_1_4_rerank_never_answers_and_bills_until_the_timeout(localpod, sdk, plant_endpoint):
    """worker-infinity-embedding 1.1.4 (issues #29, #37): the rerank result holds Infinity 0.0.76's
    ``RerankReturnType``, runpod-python 1.7's ``rp_http._handle_result`` cannot serialise it, logs
    "Error while returning job result" and sends nothing (``rp_scale.handle_job`` still frees the
    slot). For the platform the job stays IN_PROGRESS, its worker busy, until the execution
    timeout; a cancel ends it at once."""
    endpoint = plant_endpoint(
        image="runpod/worker-infinity-embedding:1.1.4",
        timeout_ms=2500,
        env={"MODEL_NAMES": "BAAI/bge-small-en-v1.5;BAAI/bge-reranker-base"},
    )
    client = sdk.Endpoint(endpoint.id)
    rerank = {"model": "BAAI/bge-reranker-base", "query": "capital of France?", "docs": ["Paris.", "Bananas."]}
    assert post(localpod, endpoint.id, "run", {"input": {"model": "BAAI/bge-small-en-v1.5", "input": "warm"}}).ok
    wait_for(lambda: health(localpod, endpoint.id)["jobs"]["completed"] == 1, timeout=15)
    hung = client.run(rerank)
    cancelled = client.run(rerank)
    time.sleep(0.5)  # a rerank takes milliseconds here
    assert hung.status() == cancelled.status() == "IN_PROGRESS"
    assert health(localpod, endpoint.id)["jobs"]["inProgress"] == 2
    # The SDK freed the slots: the same worker still answers other jobs, and stays RUNNING (billed).
    # (wrapped in "input": the SDK sends a dict with a truthy "input" key as the whole request body)
    embedded = client.run_sync({"input": {"model": "BAAI/bge-small-en-v1.5", "input": "still serving"}}, timeout=10)
    assert len(embedded["data"][0]["embedding"]) == 256
    assert [w["status"] for w in live(localpod, endpoint.id)["workers"]] == ["RUNNING"]
    assert post(localpod, endpoint.id, f"cancel/{cancelled.job_id}").json()["status"] == "CANCELLED"
    wait_for(lambda: hung.status() == "TIMED_OUT", timeout=10)
    body = status_of(localpod, endpoint.id, hung.job_id).json()
    assert "output" not in body and body["executionTime"] >= 2400


def test_worker_error_items_are_failed_jobs(localpod, sdk, plant_endpoint):
    """worker-vllm v2.25.2 (src/handler.py) yields ``{"error": {...}}`` for an HTTP >= 400 from
    vLLM; runpod-python 1.12.0 ``rp_job.handle_job`` ends the job with ``{"error":
    str(output["error"])}``, which the queue shows as FAILED with that string (seen on Runpod:
    runpod/serverless-workers issue #29)."""
    endpoint = plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2", env={"MODEL_NAME": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    )
    wrong = {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    }
    for stream in (False, True):
        body = post(
            localpod,
            endpoint.id,
            "runsync",
            {"input": {**wrong, "openai_input": {**wrong["openai_input"], "stream": stream}}},
        ).json()
        assert body["status"] == "FAILED" and "output" not in body, body
        assert body["error"].startswith("{'message': 'vLLM returned HTTP 404: ")
        assert "The model `gpt-4o` does not exist." in body["error"] and "'type': 'worker_error'" in body["error"]
    bad = post(localpod, endpoint.id, "runsync", {"input": {"foo": 1}}).json()
    assert bad["status"] == "FAILED" and "must contain one of" in bad["error"]
    assert health(localpod, endpoint.id)["jobs"]["failed"] == 3
    assert post(localpod, endpoint.id, "retry/" + bad["id"]).json()["status"] == "IN_QUEUE"  # FAILED can retry


def test_ttl_deletes_jobs_whatever_their_state(localpod, sdk, plant_endpoint):
    """runpod/docs send-requests.mdx: ``policy.ttl`` (ms, default 24 h, min 10 s, max 7 days) is
    the job's whole lifespan from submission; when it ends the job is deleted whatever its state
    and status checks return 404."""
    endpoint = plant_endpoint()
    for ttl in (9999, 7 * 24 * 3600 * 1000 + 1, "60000", True):
        refused = post(localpod, endpoint.id, "run", {"input": {}, "policy": {"ttl": ttl}})
        assert refused.status_code == 400 and "policy.ttl" in refused.json()["error"]
    running = post(
        localpod, endpoint.id, "run", {"input": {"mock_return": 1, "mock_delay": 30}, "policy": {"ttl": 10_000}}
    ).json()["id"]
    wait_for(lambda: status_of(localpod, endpoint.id, running).json()["status"] == "IN_PROGRESS", timeout=10)
    default = post(localpod, endpoint.id, "run", {"input": {"mock_return": 2, "mock_delay": 30}}).json()["id"]
    runtime = localpod.ctx.platform.runtime(endpoint.id)
    assert runtime.next_expiry <= time.monotonic() + 10  # the scaler tick expires it then
    call_in_server(localpod, lambda: runtime.expire(time.monotonic() + 10.5))  # 10.5 s later
    assert status_of(localpod, endpoint.id, running).status_code == 404
    assert status_of(localpod, endpoint.id, default).json()["status"] in ("IN_QUEUE", "IN_PROGRESS")
    wait_for(lambda: health(localpod, endpoint.id)["jobs"]["inProgress"] == 1)  # the expired one's handler stopped
    call_in_server(localpod, lambda: runtime.expire(time.monotonic() + 24 * 3600 + 1))
    assert status_of(localpod, endpoint.id, default).status_code == 404


def test_low_priority_jobs_do_not_start_workers(localpod, sdk, plant_endpoint):
    """runpod/docs send-requests.mdx: ``lowPriority``: "When true, job won't trigger worker scaling"."""
    for scaler in ("QUEUE_DELAY", "REQUEST_COUNT"):
        endpoint = plant_endpoint(scaler_type=scaler, scaler_value=1)
        low = post(
            localpod, endpoint.id, "run", {"input": {"mock_return": "low"}, "policy": {"lowPriority": True}}
        ).json()["id"]
        time.sleep(0.4)  # several scaler ticks and more than a cold start in the test profile
        assert live(localpod, endpoint.id)["workers"] == [] and health(localpod, endpoint.id)["jobs"]["inQueue"] == 1
        normal = sdk.Endpoint(endpoint.id).run_sync({"mock_return": "normal"}, timeout=15)
        assert normal == "normal"  # a normal job starts a worker, which then takes the low-priority one too
        wait_for(
            lambda eid=endpoint.id, job=low: status_of(localpod, eid, job).json()["status"] == "COMPLETED", timeout=10
        )
