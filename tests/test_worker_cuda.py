"""Worker placement under an endpoint's CUDA constraint, and the crash loop without one.

Runpod places workers only on hosts whose CUDA version passes ``gpu.allowedCudaVersions`` /
``minCudaVersion`` (REST v2 spec, ``CreateEndpointGpuConfig``: a version no machine reports "yields a
capacity error rather than a fallback", i.e. THROTTLED workers). Without a constraint a worker can
land on any host; ``runpod/worker-v1-vllm:v2.25.2`` needs CUDA 13.0 (its ``.runpod/hub.json``
``allowedCudaVersions: ["13.0"]``), so on an older host its container never starts: UNHEALTHY and
retrying, billed for its first start only (unhealthy workers do not bill: runpod/docs
serverless/workers/overview.mdx, "Worker states"; see tests/test_worker_states.py).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from conftest import LocalpodServer, wait_for

VLLM = "runpod/worker-v1-vllm:v2.25.2"
ENV = {"MODEL_NAME": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # public, in localpod's Hub data
POOLS = ["AMPERE_24", "ADA_24"]


def workers(localpod: LocalpodServer, endpoint_id: str) -> list[dict[str, Any]]:
    state = localpod.control("GET", "state").json()["live"]
    return state.get(endpoint_id, {"workers": []})["workers"]


def submit(localpod: LocalpodServer, endpoint_id: str) -> None:
    response = httpx.post(
        f"{localpod.queue_url}/{endpoint_id}/run",
        json={"input": {"prompt": "hi"}},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert response.status_code == 200, response.text


def test_no_host_with_the_allowed_cuda_keeps_the_worker_throttled(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    # US-IL-1 stocks AMPERE_24, but its hosts stop at CUDA 12.8.
    endpoint = plant_endpoint(
        image=VLLM, env=ENV, gpu_pools=POOLS, data_center_ids=["US-IL-1"], allowed_cuda_versions=["13.0"]
    )
    submit(localpod, endpoint.id)
    wait_for(lambda: workers(localpod, endpoint.id))
    time.sleep(0.5)  # several scheduler ticks in the fast profile
    [worker] = workers(localpod, endpoint.id)
    assert worker["status"] == "THROTTLED" and worker["gpuTypeId"] is None and worker["hostCudaVersion"] is None
    assert not [s for s in localpod.ctx.store.sessions if s.endpoint_id == endpoint.id]  # nothing billed


def test_allowed_cuda_picks_a_matching_host_and_the_worker_starts(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    # US-TX-3's AMPERE_24 hosts stop at 12.8: the worker goes to its ADA_24 hosts on 13.0.
    endpoint = plant_endpoint(
        image=VLLM, env=ENV, gpu_pools=POOLS, data_center_ids=["US-TX-3"], allowed_cuda_versions=["13.0"]
    )
    submit(localpod, endpoint.id)
    worker = wait_for(
        lambda: next((w for w in workers(localpod, endpoint.id) if w["status"] in ("IDLE", "RUNNING")), None)
    )
    assert (worker["gpuTypeId"], worker["dataCenterId"], worker["hostCudaVersion"]) == (
        "NVIDIA GeForce RTX 4090",
        "US-TX-3",
        "13.0",
    )


def test_no_cuda_filter_lands_on_an_old_host_and_crash_loops_unbilled(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(image=VLLM, env=ENV, gpu_pools=POOLS, data_center_ids=["US-TX-3"])
    submit(localpod, endpoint.id)

    def crashed_twice() -> dict[str, Any] | None:
        found = workers(localpod, endpoint.id)
        if not found or found[0]["status"] != "UNHEALTHY":
            return None
        statuses = [s for _, s in found[0]["events"]]
        return found[0] if statuses.count("UNHEALTHY") >= 2 else None

    worker = wait_for(crashed_twice)
    assert (worker["gpuTypeId"], worker["hostCudaVersion"]) == ("NVIDIA RTX A5000", "12.8")
    statuses = [s for _, s in worker["events"]]
    assert statuses.count("INITIALIZING") == 1  # it restarts, again and again, as UNHEALTHY
    assert "needs CUDA >= 13.0" in worker["unhealthyReason"] and "12.8" in worker["unhealthyReason"]
    assert "allowedCudaVersions" in worker["unhealthyReason"]
    sessions = [s for s in localpod.ctx.store.sessions if s.endpoint_id == endpoint.id]
    assert len(sessions) == 1 and sessions[0].stopped_at is not None  # the first start billed, the crash loop not
    health = httpx.get(
        f"{localpod.queue_url}/{endpoint.id}/health", headers={"Authorization": f"Bearer {localpod.api_key}"}
    ).json()
    assert health["jobs"]["inQueue"] == 1 and health["workers"]["unhealthy"] == 1


def test_setting_the_filter_replaces_the_crash_looping_worker(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(image=VLLM, env=ENV, gpu_pools=POOLS, data_center_ids=["US-TX-3"])
    submit(localpod, endpoint.id)
    wait_for(lambda: any(w["status"] == "UNHEALTHY" for w in workers(localpod, endpoint.id)))
    response = httpx.patch(
        f"{localpod.rest_url}/v2/serverless/{endpoint.id}",
        json={"gpu": {"allowedCudaVersions": ["13.0"]}},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["gpu"]["allowedCudaVersions"] == ["13.0"]
    ready = wait_for(
        lambda: next((w for w in workers(localpod, endpoint.id) if w["status"] in ("IDLE", "RUNNING")), None)
    )
    assert ready["hostCudaVersion"] == "13.0" and ready["gpuTypeId"] == "NVIDIA GeForce RTX 4090"


def test_an_image_with_no_known_cuda_need_starts_anywhere(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(image="runpod/mock-worker:latest", gpu_pools=POOLS, data_center_ids=["US-IL-1"])
    submit(localpod, endpoint.id)
    worker = wait_for(
        lambda: next((w for w in workers(localpod, endpoint.id) if w["status"] in ("IDLE", "RUNNING")), None)
    )
    assert worker["hostCudaVersion"] == "12.8"
