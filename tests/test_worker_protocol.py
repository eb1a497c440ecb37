"""Workers that are real processes running the runpod SDK's worker loop (runpod-python 1.12.0).

Each test maps an image to ``tests/handlers/behaviours.py`` (``localpod serve --handler``), so the
job semantics checked here come from the SDK's own code, named per test: ``rp_job.run_job`` (an
``{"error": ...}`` output and a raised exception), ``rp_job.handle_job`` and ``run_job_generator``
(streaming, ``return_aggregate_stream``, an error item), ``rp_http._handle_result`` (a result
``json.dumps`` refuses is logged and never sent), ``rp_progress.progress_update``,
``rp_scale.JobScaler`` (``refresh_worker``, the job-stop channel for a cancelled job).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LocalpodServer, call_in_server, wait_for

HANDLER = str(Path(__file__).parent / "handlers" / "behaviours.py")
IMAGE = "myteam/behaviours:0.1"

pytestmark = pytest.mark.slow


@pytest.fixture
def sdk_endpoint(localpod: LocalpodServer, plant_endpoint, monkeypatch):  # type: ignore[no-untyped-def]
    """Plant an endpoint whose workers run the behaviours handler as real SDK processes."""
    monkeypatch.setitem(localpod.ctx.settings.handlers, "myteam/behaviours", HANDLER)
    planted = []

    def plant(**fields: Any):  # type: ignore[no-untyped-def]
        endpoint = plant_endpoint(image=IMAGE, **{"workers_max": 1, "idle_timeout": 60, **fields})
        planted.append(endpoint)
        return endpoint

    yield plant
    localpod.control("POST", "reset")  # stops the worker processes


def _queue(localpod: LocalpodServer, endpoint_id: str, op: str, body: Any = None, timeout: float = 60) -> Any:
    url = f"{localpod.base_url}/api.runpod.ai/v2/{endpoint_id}/{op}"
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    if body is None:
        response = httpx.get(url, headers=headers, timeout=timeout)
    else:
        response = httpx.post(url, json=body, headers=headers, timeout=timeout)
    response.raise_for_status()
    return response.json()


def runsync(localpod: LocalpodServer, endpoint_id: str, job_input: Any, **extra: Any) -> dict[str, Any]:
    return _queue(localpod, endpoint_id, "runsync?wait=60000", {"input": job_input, **extra})  # type: ignore[no-any-return]


def status(localpod: LocalpodServer, endpoint_id: str, job_id: str) -> dict[str, Any]:
    return _queue(localpod, endpoint_id, f"status/{job_id}")  # type: ignore[no-any-return]


def worker_log(localpod: LocalpodServer, endpoint_id: str) -> str:
    book = localpod.ctx.platform.worker_logs
    return "\n".join(line for wid in book.worker_ids(endpoint_id) for line in book.get(endpoint_id, wid).text())


def live_workers(localpod: LocalpodServer, endpoint_id: str) -> list[Any]:
    return call_in_server(localpod, lambda: list(localpod.ctx.platform.runtime(endpoint_id).live_workers()))


def test_a_plain_handler_answers_through_the_sdk_loop(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    endpoint = sdk_endpoint()
    result = runsync(localpod, endpoint.id, {"mode": "echo", "value": 42})
    assert result["status"] == "COMPLETED"
    assert result["output"] == {"echo": 42, "worker": result["workerId"]}  # RUNPOD_POD_ID is the worker id
    # printed by the SDK itself (after it posted the result), not emulated
    wait_for(lambda: "Results sent." in worker_log(localpod, endpoint.id))
    assert "Starting Serverless Worker |  Version" in worker_log(localpod, endpoint.id)


def test_an_error_output_fails_the_job_because_run_job_says_so(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_job.run_job pops ``error`` from a dict output into the job's error: FAILED, no output."""
    endpoint = sdk_endpoint()
    result = runsync(localpod, endpoint.id, {"mode": "error", "message": "input.text is empty"})
    assert result["status"] == "FAILED"
    assert result["error"] == "input.text is empty"
    assert "output" not in result


def test_a_handler_exception_is_the_sdks_json_error(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_job.run_job catches it: error_type, error_message, traceback, the worker's id."""
    endpoint = sdk_endpoint()
    result = runsync(localpod, endpoint.id, {"mode": "raise"})
    assert result["status"] == "FAILED"
    error = json.loads(result["error"])
    assert error["error_type"] == "<class 'ValueError'>"
    assert error["error_message"] == "the handler raised"
    assert "Traceback" in error["error_traceback"]
    assert error["worker_id"] == result["workerId"]
    assert error["runpod_version"] == "1.12.0"


def test_a_generator_streams_and_aggregates(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_job.handle_job: each yield is a job-stream post; return_aggregate_stream makes the list the output."""
    endpoint = sdk_endpoint(env={"GENERATOR": "1", "AGGREGATE": "1"})
    result = runsync(localpod, endpoint.id, {"count": 3})
    assert result["status"] == "COMPLETED"
    assert result["output"] == [{"item": 0}, {"item": 1}, {"item": 2}]
    stream = _queue(localpod, endpoint.id, f"stream/{result['id']}")
    assert [chunk["output"] for chunk in stream["stream"]] == [{"item": 0}, {"item": 1}, {"item": 2}]


def test_a_generator_without_aggregation_completes_with_an_empty_output(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """Without return_aggregate_stream the SDK sends ``{"output": []}``: the items exist only on /stream."""
    endpoint = sdk_endpoint(env={"GENERATOR": "1"})
    result = runsync(localpod, endpoint.id, {"count": 2})
    assert result["status"] == "COMPLETED"
    assert result["output"] == []


def test_an_error_item_ends_a_generator_job_as_failed(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_job.handle_job: the first yielded dict with a truthy ``error`` becomes the job's result."""
    endpoint = sdk_endpoint(env={"GENERATOR": "1", "AGGREGATE": "1"})
    result = runsync(localpod, endpoint.id, {"count": 3, "error_at": 1})
    assert result["status"] == "FAILED"
    assert result["error"] == "stopped at item 1"


def test_a_result_the_sdk_cannot_serialise_is_never_sent(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_http._handle_result: json.dumps raises TypeError, the SDK logs "Error while returning job
    result" and sends nothing, then frees its slot: the job stays IN_PROGRESS until the execution
    timeout, and the worker keeps taking other jobs meanwhile (nothing else is affected)."""
    endpoint = sdk_endpoint()
    stuck = _queue(
        localpod, endpoint.id, "run", {"input": {"mode": "unserialisable"}, "policy": {"executionTimeout": 5000}}
    )
    wait_for(lambda: "Error while returning job result" in worker_log(localpod, endpoint.id), timeout=30)
    assert status(localpod, endpoint.id, stuck["id"])["status"] == "IN_PROGRESS"
    other = runsync(localpod, endpoint.id, {"mode": "echo", "value": "still here"})
    assert other["status"] == "COMPLETED" and other["output"]["echo"] == "still here"
    final = wait_for(
        lambda: (s := status(localpod, endpoint.id, stuck["id"]))["status"] != "IN_PROGRESS" and s, timeout=30
    )
    assert final["status"] == "TIMED_OUT"


def test_progress_updates_show_on_status(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    endpoint = sdk_endpoint()
    result = runsync(localpod, endpoint.id, {"mode": "progress"})
    assert result["status"] == "COMPLETED" and result["output"] == {"done": True}
    wait_for(lambda: "Progress Update Sent: half way" in worker_log(localpod, endpoint.id))


def test_refresh_worker_replaces_the_worker_after_the_job(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_job.run_job turns ``refresh_worker`` into ``stopPod``: the worker stops after that job."""
    endpoint = sdk_endpoint()
    first = runsync(localpod, endpoint.id, {"mode": "refresh"})
    assert first["status"] == "COMPLETED" and first["output"] == {"done": True}
    wait_for(lambda: first["workerId"] not in [w.id for w in live_workers(localpod, endpoint.id)], timeout=30)
    second = runsync(localpod, endpoint.id, {"mode": "echo"})
    assert second["status"] == "COMPLETED" and second["workerId"] != first["workerId"]


def test_a_cancelled_job_is_stopped_through_the_job_stop_channel(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_scale.JobScaler.monitor_stop_signals cancels just that job's task."""
    endpoint = sdk_endpoint()
    job = _queue(localpod, endpoint.id, "run", {"input": {"mode": "sleep", "seconds": 60}})
    # IN_PROGRESS comes when localpod assigns the job; wait until the SDK has taken it and started
    # the handler (a job cancelled before its take never reaches the worker: nothing to stop there).
    started = f'"requestId": "{job["id"]}", "message": "Started."'
    wait_for(lambda: started in worker_log(localpod, endpoint.id), timeout=60)
    _queue(localpod, endpoint.id, f"cancel/{job['id']}", {})
    wait_for(lambda: "Job stopped." in worker_log(localpod, endpoint.id), timeout=30)
    assert status(localpod, endpoint.id, job["id"])["status"] == "CANCELLED"
    after = runsync(localpod, endpoint.id, {"mode": "echo", "value": 1})
    assert after["status"] == "COMPLETED"


def test_a_process_that_exits_mid_job_fails_the_job_and_restarts(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    endpoint = sdk_endpoint()
    result = runsync(localpod, endpoint.id, {"mode": "exit"})
    assert result["status"] == "FAILED"
    assert "exited with code 3" in json.loads(result["error"])["error_message"]
    wait_for(lambda: f"worker crashed during job {result['id']}" in worker_log(localpod, endpoint.id))
    again = runsync(localpod, endpoint.id, {"mode": "echo", "value": "back"})
    assert again["status"] == "COMPLETED" and again["output"]["echo"] == "back"


def test_a_handler_that_never_returns_times_out_and_stops_its_worker(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    endpoint = sdk_endpoint()
    job = _queue(
        localpod, endpoint.id, "run", {"input": {"mode": "sleep", "seconds": 600}, "policy": {"executionTimeout": 5000}}
    )
    final = wait_for(
        lambda: (s := status(localpod, endpoint.id, job["id"]))["status"] not in ("IN_QUEUE", "IN_PROGRESS") and s,
        timeout=60,
    )
    assert final["status"] == "TIMED_OUT"
    wait_for(lambda: final["workerId"] not in [w.id for w in live_workers(localpod, endpoint.id)], timeout=30)
    assert f"job {job['id']} hit the execution timeout (5 s): worker stopped" in worker_log(localpod, endpoint.id)


def test_a_handler_that_crashes_on_import_leaves_the_worker_unhealthy(localpod, sdk_endpoint, plant_endpoint):  # type: ignore[no-untyped-def]
    """The process exits before its first job-take: the worker is UNHEALTHY (and retries), its log
    shows the traceback's last line, and the job waits in the queue. Another endpoint is unaffected."""
    broken = sdk_endpoint(env={"CRASH_ON_IMPORT": "1"})
    job = _queue(localpod, broken.id, "run", {"input": {"mode": "echo"}})
    wait_for(lambda: any(w.status == "UNHEALTHY" for w in live_workers(localpod, broken.id)), timeout=60)
    worker = next(w for w in live_workers(localpod, broken.id) if w.status == "UNHEALTHY")
    assert "exited with code 1 before taking a job" in worker.unhealthy_reason
    assert "RuntimeError: boom at import: the model file is missing" in worker_log(localpod, broken.id)
    assert status(localpod, broken.id, job["id"])["status"] == "IN_QUEUE"
    healthy = sdk_endpoint(name="healthy")
    assert runsync(localpod, healthy.id, {"mode": "echo"})["status"] == "COMPLETED"


def test_worker_routes_refuse_a_user_key_and_another_workers_key(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    endpoint = sdk_endpoint()
    runsync(localpod, endpoint.id, {"mode": "echo"})
    worker = live_workers(localpod, endpoint.id)[0]
    base = f"{localpod.base_url}/api.runpod.ai/v2/{endpoint.id}"
    for key in (localpod.api_key, f"Bearer {localpod.api_key}", "rpw_not_this_workers_key", ""):
        response = httpx.get(f"{base}/job-take/{worker.id}?gpu=x&job_in_progress=0", headers={"Authorization": key})
        assert response.status_code == 401
    response = httpx.post(
        f"{base}/job-done/{worker.id}/nope?isStream=false", content=b"{}", headers={"Authorization": ""}
    )
    assert response.status_code == 401


def test_the_worker_process_sees_its_template_env_not_localpods(localpod, sdk_endpoint, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOCALPOD_CANARY_SECRET", "must-not-reach-the-worker")
    endpoint = sdk_endpoint(env={"TEAM_SETTING": "on"})
    result = runsync(localpod, endpoint.id, {"mode": "echo"})
    assert result["status"] == "COMPLETED"
    worker = live_workers(localpod, endpoint.id)[0]
    environ = Path(f"/proc/{worker.backend.process.pid}/environ").read_bytes().split(b"\0")
    names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
    assert "TEAM_SETTING" in names and "RUNPOD_AI_API_KEY" in names and "RUNPOD_WEBHOOK_GET_JOB" in names
    assert "LOCALPOD_CANARY_SECRET" not in names and "RUNPOD_API_KEY" not in names


def test_reset_stops_every_worker_process(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    endpoint = sdk_endpoint()
    runsync(localpod, endpoint.id, {"mode": "echo"})
    pid = live_workers(localpod, endpoint.id)[0].backend.process.pid
    localpod.control("POST", "reset")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_failed_fitness_check_is_reported_and_the_worker_is_unhealthy(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """rp_fitness.run_fitness_checks: a failing check is reported on the ping URL
    (``status=unhealthy``) before ``os._exit(1)``; localpod names it as the worker's reason."""
    endpoint = sdk_endpoint(env={"FAIL_FITNESS": "1"})
    _queue(localpod, endpoint.id, "run", {"input": {"mode": "echo"}})
    wait_for(lambda: any(w.status == "UNHEALTHY" for w in live_workers(localpod, endpoint.id)), timeout=60)
    worker = next(w for w in live_workers(localpod, endpoint.id) if w.status == "UNHEALTHY")
    assert (
        "a fitness check failed (weights_present: RuntimeError: weights not found in /models)"
        in worker.unhealthy_reason
    )


def test_the_sdk_takes_a_batch_up_to_its_concurrency(localpod, sdk_endpoint):  # type: ignore[no-untyped-def]
    """With ``concurrency_modifier`` returning 4 the SDK asks job-take-batch for several jobs
    (rp_job._job_get_url) and one worker runs four at once."""
    endpoint = sdk_endpoint(env={"CONCURRENCY": "4"})
    runsync(localpod, endpoint.id, {"mode": "echo"})  # the worker is up
    jobs = [_queue(localpod, endpoint.id, "run", {"input": {"mode": "sleep", "seconds": 3}}) for _ in range(4)]
    running = wait_for(
        lambda: all(status(localpod, endpoint.id, j["id"])["status"] == "IN_PROGRESS" for j in jobs), timeout=30
    )
    assert running
    assert len({status(localpod, endpoint.id, j["id"])["workerId"] for j in jobs}) == 1
    assert "job-take-batch" in worker_log(localpod, endpoint.id)
