"""The serverless queue across ``kill -9``: ``localpod serve --state`` killed with jobs finished,
running and queued, then restarted on the same state.

What Runpod promises and this checks: a job's id answers for its ttl (24 h default) and a result
for 30 minutes after ``/run`` (runpod/docs serverless/endpoints/send-requests.mdx,
operation-reference.mdx); a job whose worker vanished is retried automatically with the same id
(serverless/load-balancing/overview.mdx "Automatic retries"); a worker is billed while it runs, so a
worker that died with the crash is not billed for the outage.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from test_server_process import KEY, serve


def _queue(port: int, endpoint_id: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api.runpod.ai/v2/{endpoint_id}",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )


def _wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _sessions(port: int) -> list[dict]:
    response = httpx.get(f"http://127.0.0.1:{port}/_localpod/state", headers={"Authorization": f"Bearer {KEY}"})
    response.raise_for_status()
    return response.json()["sessions"]


@pytest.mark.slow
def test_jobs_and_results_survive_kill_9_and_the_outage_is_not_billed(tmp_path: Path):
    state = tmp_path / "state.json"
    port = free_port()
    proc = serve(port, "--state", str(state))
    try:
        rest = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api.runpod.io", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
        )
        template = rest.post(
            "/v2/templates",
            json={
                "name": "t",
                "image": "runpod/mock-worker:latest",
                "serverless": True,
                "env": {"RUNPOD_MAX_CONCURRENCY": "2"},
            },
        )
        assert template.status_code == 201, template.text
        endpoint = rest.post(
            "/v2/serverless",
            json={
                "name": "e",
                "type": "QUEUE",
                "templateId": template.json()["id"],
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
                "gpu": {"pools": ["AMPERE_24"]},
                "workers": {"min": 0, "max": 1, "idleTimeout": 600},
            },
        )
        assert endpoint.status_code == 201, endpoint.text
        endpoint_id = endpoint.json()["id"]
        queue = _queue(port, endpoint_id)

        done = [queue.post("/run", json={"input": {"mock_return": {"n": n}}}).json()["id"] for n in range(3)]
        _wait(lambda: all(queue.get(f"/status/{i}").json()["status"] == "COMPLETED" for i in done))
        before = {i: queue.get(f"/status/{i}").json() for i in done}
        # Two jobs hold the worker's two slots; two more wait behind them.
        slow = [queue.post("/run", json={"input": {"mock_delay": 60, "mock_return": n}}).json()["id"] for n in range(4)]
        _wait(lambda: sum(queue.get(f"/status/{i}").json()["status"] == "IN_PROGRESS" for i in slow) == 2)
        time.sleep(0.6)  # a couple of heartbeats while the worker bills
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no shutdown hook runs
        killed_at = time.time()
        proc.wait(timeout=10)
    assert not list(tmp_path.glob(".localpod-*")), "a temporary file was left behind"

    time.sleep(1.0)  # the outage
    restarted_at = time.time()
    port = free_port()
    proc = serve(port, "--state", str(state))
    try:
        queue = _queue(port, endpoint_id)
        for job_id in done:
            after = queue.get(f"/status/{job_id}")
            assert after.status_code == 200, after.text
            assert after.json() == before[job_id], "a finished result changed: was it run again?"
        statuses = {}
        for job_id in slow:
            response = queue.get(f"/status/{job_id}")
            assert response.status_code == 200, response.text
            statuses[job_id] = response.json()["status"]
            assert "output" not in response.json()
        assert set(statuses.values()) <= {"IN_QUEUE", "IN_PROGRESS"}
        assert queue.get("/health").json()["jobs"]["retried"] == 2  # the two that were running

        old = [s for s in _sessions(port) if s["started_at"] < killed_at]
        assert old, "the first run's worker session is missing"
        outage = sum(max(0.0, min(s["stopped_at"], restarted_at) - max(s["started_at"], killed_at)) for s in old)
        assert outage == 0.0
        # ...and it was billed up to its last heartbeat (0.25 s apart), not cut short.
        assert all(s["stopped_at"] > killed_at - 1.0 for s in old)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
