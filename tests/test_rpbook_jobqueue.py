"""rpbook.account.jobqueue against localpod: health, wake-up (cold, warm, unhealthy, throttled, no worker), jobs."""

from __future__ import annotations

import json
import logging
import time

import pytest
import runpod

from localpod import hubdata
from rpbook.account import jobqueue, wakeup
from rpbook.account.jobqueue import Health, health, run_job
from rpbook.account.wakeup import WakeReport, wake
from rpbook.core.errors import ConfigError, EndpointNotFound, EndpointNotReadyError
from rpbook.core.secrets import Secret
from rpbook.core.settings import load_settings

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
FAST = {"poll_s": 0.02, "progress": False}


@pytest.fixture
def key(settings) -> Secret:  # type: ignore[no-untyped-def]
    return settings.runpod_api_key()


@pytest.fixture
def vllm_endpoint(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    def make(hf_token: str | None = None, **fields):  # type: ignore[no-untyped-def]
        env = {"MODEL_NAME": MISTRAL, "HF_TOKEN": hf_token or localpod.hf_token}
        return plant_endpoint(image=VLLM_IMAGE, env=env, **fields)

    return make


def expected_cold_start_s(localpod) -> float:  # type: ignore[no-untyped-def]
    profile = localpod.ctx.settings.profile
    download = (hubdata.download_size_bytes(MISTRAL) or 0) / profile.download_bytes_per_s
    return profile.container_start_s + download + profile.engine_init_s


def test_health_is_typed_and_parses_the_documented_shape(settings, key, plant_endpoint):
    endpoint = plant_endpoint(workers_max=0)
    now = health(settings, key, endpoint.id)
    assert now == Health()
    assert now.stage == "cold" and not now.has_ready_worker
    # Runpod's documented example has fewer worker keys than live answers: ready = idle + running.
    doc = Health.from_json(
        {
            "jobs": {"completed": 1, "failed": 5, "inProgress": 0, "inQueue": 2, "retried": 0},
            "workers": {"idle": 1, "running": 2},
        }
    )
    assert (doc.ready, doc.in_queue, doc.failed, doc.stage) == (3, 2, 5, "ready")
    assert "2 in queue" in doc.summary()


def test_cold_wake_then_warm_wake(localpod, settings, key, vllm_endpoint):
    saved = (runpod.api_key, runpod.endpoint_url_base)
    endpoint = vllm_endpoint()
    report = wake(settings, key, endpoint.id, timeout_s=30, **FAST)
    assert isinstance(report, WakeReport) and report.cold
    timeline = report.timeline
    assert list(timeline) == [s for s in wakeup.STAGES if s in timeline]
    assert {"queued", "initializing", "ready", "first token"} <= set(timeline)
    assert timeline["queued"] <= timeline["initializing"] <= timeline["ready"] <= timeline["first token"]
    expected = expected_cold_start_s(localpod)
    # at least the injected cold start (a lower bound holds however busy the machine is)
    assert expected * 0.8 <= timeline["ready"], (timeline, expected)
    assert report.health_at_end.has_ready_worker
    assert report.delay_time_ms is not None and report.delay_time_ms >= expected * 800
    assert report.figures["cold"] is True and report.figures["ready_s"] == pytest.approx(timeline["ready"], abs=1e-3)
    assert "cold start" in str(report) and "initializing" in report._repr_html_()

    again = wake(settings, key, endpoint.id, timeout_s=10, **FAST)
    assert not again.cold
    assert again.timeline["ready"] == 0.0 and "initializing" not in again.timeline
    # The SDK's globals are as they were: rpbook sets the base URL only while building a client.
    assert (runpod.api_key, runpod.endpoint_url_base) == saved


def test_progress_bar_shows_the_stages_to_a_person(settings, key, vllm_endpoint, capsys, monkeypatch):
    monkeypatch.setattr("rpbook.core.person.person_at_kernel", lambda: True)
    endpoint = vllm_endpoint()
    wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=True)
    err = capsys.readouterr().err
    assert "initializing" in err and "first token" in err


def test_headless_progress_is_one_final_line(settings, key, vllm_endpoint, capsys, monkeypatch):
    monkeypatch.setattr("rpbook.core.person.person_at_kernel", lambda: False)
    endpoint = vllm_endpoint()
    wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=True)
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == 1 and "first token (awake)" in lines[0] and "4/4" in lines[0]


def test_unhealthy_workers_fail_fast_with_the_licence_hint(localpod, settings, key, vllm_endpoint):
    endpoint = vllm_endpoint(hf_token="hf_localpod_no_licence")
    started = time.monotonic()
    with pytest.raises(EndpointNotReadyError) as info:
        wake(settings, key, endpoint.id, timeout_s=30, unhealthy_grace_s=0.3, **FAST)
    assert time.monotonic() - started < 30 / 2  # after the 0.3 s grace, long before the 30 s timeout
    message = str(info.value)
    assert "unhealthy" in message and "licence" in message and "HF_TOKEN" in message and "MODEL_NAME" in message
    assert "hf_localpod_no_licence" not in message and localpod.api_key not in message
    # The wake-up job was cancelled, so it will not start a worker later.
    assert health(settings, key, endpoint.id).in_queue == 0


def test_a_failed_wake_says_what_still_bills_and_can_scale_to_zero(localpod, settings, key, vllm_endpoint):
    """Unhealthy workers do not bill but Runpod retries them for up to 7 days and scales an endpoint
    that keeps producing them down by itself (runpod/docs serverless/workers/overview.mdx "Worker
    states", serverless/troubleshooting.mdx): the message says so, what the user must do, and how
    to stop the retries at once."""
    endpoint = vllm_endpoint(hf_token="hf_localpod_no_licence", workers_max=2)
    with pytest.raises(EndpointNotReadyError) as info:
        wake(settings, key, endpoint.id, timeout_s=30, unhealthy_grace_s=0.3, **FAST)
    message = str(info.value)
    assert "unhealthy worker(s): not billed while unhealthy" in message and "up to 7 days" in message
    assert "scales it down by itself" in message and "fix the cause" in message
    assert "scale_to_zero_on_failure" in message
    assert localpod.ctx.store.endpoints[endpoint.id].workers_max == 2  # only reported, nothing changed
    with pytest.raises(EndpointNotReadyError) as info:
        wake(settings, key, endpoint.id, timeout_s=30, unhealthy_grace_s=0.3, scale_to_zero_on_failure=True, **FAST)
    assert "scaled to zero (workers were 0-2)" in str(info.value)
    assert localpod.ctx.store.endpoints[endpoint.id].workers_max == 0
    deadline = time.monotonic() + 10
    while health(settings, key, endpoint.id).billing_workers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health(settings, key, endpoint.id).billing_workers == 0


def test_an_undefined_runpod_secret_is_named_from_the_workers_log(localpod, settings, key, plant_endpoint):
    """Issue 20 item 3: the worker of a template referencing a secret the account lacks is UNHEALTHY;
    the wake-up names the secret (read from the worker's log), not the licence causes."""
    env = {"MODEL_NAME": MISTRAL, "HUGGING_FACE_HUB_TOKEN": "{{ RUNPOD_SECRET_nope }}"}
    endpoint = plant_endpoint(image=VLLM_IMAGE, env=env)
    with pytest.raises(EndpointNotReadyError) as info:
        wake(settings, key, endpoint.id, timeout_s=30, unhealthy_grace_s=0.3, **FAST)
    message = str(info.value)
    assert "{{ RUNPOD_SECRET_nope }} unresolved" in message and "no Runpod secret named 'nope'" in message
    assert "hf_token_ref" in message and "licence" not in message
    assert "not billed while unhealthy" in message


def test_an_interrupted_wake_cancels_its_job(localpod, settings, key, vllm_endpoint, monkeypatch):
    """A cell timeout interrupts the kernel (KeyboardInterrupt): the wake-up job must not stay queued."""
    endpoint = vllm_endpoint()
    polls = []

    def interrupt(seconds: float) -> None:
        polls.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(wakeup.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        wake(settings, key, endpoint.id, timeout_s=30, **FAST)
    monkeypatch.undo()
    assert polls
    now = health(settings, key, endpoint.id)  # without the cancel the job would still be queued
    assert now.in_queue == 0 and now.in_progress == 0, now


def test_default_grace_is_short_in_local_mode_and_longer_on_runpod(settings, tmp_path):
    assert wakeup._default_grace(settings) <= 3
    assert wakeup._default_grace(load_settings("runpod", env_file=tmp_path / ".env")) >= 20


def test_throttled_only_says_gpu_capacity(settings, key, vllm_endpoint):
    endpoint = vllm_endpoint(gpu_pools=["NO_SUCH_POOL"])
    with pytest.raises(EndpointNotReadyError) as info:
        wake(settings, key, endpoint.id, timeout_s=0.5, **FAST)
    message = str(info.value)
    assert "throttled" in message and "GPU" in message and "data center" in message
    assert "1 throttled" in message


def test_no_worker_allowed_times_out_saying_no_worker_can_start(settings, key, vllm_endpoint):
    endpoint = vllm_endpoint(workers_max=0)
    with pytest.raises(EndpointNotReadyError) as info:
        wake(settings, key, endpoint.id, timeout_s=0.3, **FAST)
    message = str(info.value)
    assert "no worker can start" in message and "workers.max" in message and "0.3 s" in message
    assert health(settings, key, endpoint.id).in_queue == 0


def test_failed_job_error_is_shown(settings, key, plant_endpoint):
    endpoint = plant_endpoint()
    with pytest.raises(EndpointNotReadyError, match="FAILED: <class 'Exception'>: Mock error"):
        wake(settings, key, endpoint.id, timeout_s=10, job_input={"mock_error": True}, **FAST)


def test_failed_job_error_is_scrubbed(key):
    secret = key.reveal()
    body = {
        "status": "FAILED",
        "error": json.dumps({"error_type": "ValueError", "error_message": f"bad header Bearer {secret}"}),
    }
    text = jobqueue.job_error_text(body)
    assert secret not in text and "ValueError: bad header Bearer rpa_" in text


@pytest.mark.parametrize(
    "error, expected",
    [
        # runpod-python rp_job.handle_job: str() of worker-vllm v2.25.2's error dict (a Python repr)
        (
            (
                '{\'message\': \'vLLM returned HTTP 404: {"error":{"message":"The model `x` does not exist.","type":'
                '"NotFoundError","param":"model","code":404}}\', \'type\': \'worker_error\', \'code\': None}'
            ),
            "vLLM answered HTTP 404: The model `x` does not exist.",
        ),
        (
            (
                "{'message': 'Job input must contain one of: openai_input (+openai_route), route (+body), "
                "or prompt/messages.', 'type': 'worker_error', 'code': None}"
            ),
            "Job input must contain one of: openai_input",
        ),
        # rp_job.run_job_generator: a generator handler that raised
        (
            "handler: CUDA error: out of memory \ntraceback: Traceback (most recent call last):\n  ...",
            "CUDA error: out of memory",
        ),
        ("just a sentence", "just a sentence"),
    ],
)
def test_failed_job_error_shapes_read_as_one_line(error, expected):
    text = jobqueue.job_error_text({"status": "FAILED", "error": error})
    assert text.startswith(expected) and "traceback" not in text.lower(), text


def test_worker_error_items_fail_run_job_with_vllms_message(settings, key, vllm_endpoint):
    endpoint = vllm_endpoint()
    job = {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    }
    with pytest.raises(EndpointNotReadyError) as info:
        run_job(settings, key, endpoint.id, job, timeout_s=30, poll_s=0.02)
    assert str(info.value).endswith("ended FAILED: vLLM answered HTTP 404: The model `gpt-4o` does not exist.")


def test_bad_key_is_a_config_error_and_an_unknown_endpoint_its_own(settings, plant_endpoint):
    """runpod 1.12 raises a bare RuntimeError on 401 (runpod/endpoint/runner.py, RunPodClient._request);
    rpbook tells it apart by the status code (a session hook), and a 404 is EndpointNotFound."""
    endpoint = plant_endpoint()
    wrong = Secret("RUNPOD_API_KEY", "rpa_WRONG_KEY_FOR_TEST", "test")
    with pytest.raises(ConfigError, match="401") as info:
        health(settings, wrong, endpoint.id)
    assert "rpa_WRONG_KEY_FOR_TEST" not in str(info.value)
    with pytest.raises(ConfigError, match="401"):
        run_job(settings, wrong, endpoint.id, {"mock_return": 1}, timeout_s=5, poll_s=0.02)
    with pytest.raises(EndpointNotFound, match="not found") as missing:
        health(settings, settings.runpod_api_key(), "nosuchendpoint0")
    assert not isinstance(missing.value, ConfigError)
    assert "endpoint_name" in str(missing.value) and "RUNPOD_ENDPOINT_ID" not in str(
        missing.value
    )  # advice that exists


def test_a_runtime_error_saying_401_is_not_taken_for_a_rejected_key():
    """Only the status code decides: an SDK RuntimeError whose text mentions 401 stays a queue failure."""

    def sdk_failure() -> None:
        raise RuntimeError("401 Unauthorized | Make sure Runpod API key is set and valid.")

    with pytest.raises(EndpointNotReadyError) as info:
        jobqueue.call_sdk("health check", "abc", sdk_failure)
    assert not isinstance(info.value, ConfigError)


def test_run_job_returns_output_and_times(settings, key, plant_endpoint):
    endpoint = plant_endpoint()
    result = run_job(settings, key, endpoint.id, {"mock_return": {"answer": 42}}, timeout_s=10, poll_s=0.02)
    assert result.status == "COMPLETED" and result.output == {"answer": 42}
    assert result.delay_time_ms is not None and result.execution_time_ms is not None


def test_importing_rpbook_leaves_logging_alone_and_session_start_quiets_http_logs():
    """Importing a module must not change third-party log levels: the runpod SDK (whose import runs
    logging.basicConfig(level=INFO), runpod/serverless/utils/rp_upload.py) is imported on first use,
    and the HTTP clients are quieted by rpbook.runbook.session.start, the runbooks' first call."""
    import subprocess
    import sys

    script = (
        "import importlib, logging, pkgutil, sys\n"
        "import rpbook\n"
        "for m in pkgutil.iter_modules(rpbook.__path__):\n"
        "    if m.name != '__main__':\n"
        "        importlib.import_module('rpbook.' + m.name)\n"
        "from rpbook.runbook.session import QUIET_LOGGERS, quiet_http_logs\n"
        "root = logging.getLogger()\n"
        "print(root.level, len(root.handlers), 'runpod' in sys.modules,\n"
        "      [logging.getLogger(n).level for n in QUIET_LOGGERS])\n"
        "quiet_http_logs()\n"
        "print([logging.getLogger(n).level for n in QUIET_LOGGERS])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    imported, quieted = out.stdout.splitlines()
    assert imported == f"{logging.WARNING} 0 False [0, 0, 0, 0]", out.stderr
    assert quieted == str([logging.WARNING] * 4)
