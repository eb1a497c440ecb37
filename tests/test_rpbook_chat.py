"""rpbook.endpoint.chat and rpbook.records.figures against localpod: clients, sanity checks, the curl example,
run figures."""

from __future__ import annotations

import json
import os
import stat

import openai
import pytest

from rpbook.account.wakeup import wake
from rpbook.core.errors import ConfigError, SanityCheckError
from rpbook.endpoint.chat import SanityReport, curl_example, langchain_chat, openai_client, sanity_checks
from rpbook.endpoint.checks import guard
from rpbook.records import figures as records
from rpbook.records.figures import record_figures
from rpbook.records.runfolder import load_figures

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"


@pytest.fixture
def key(settings):  # type: ignore[no-untyped-def]
    return settings.runpod_api_key()


@pytest.fixture
def awake(localpod, settings, key, plant_endpoint):  # type: ignore[no-untyped-def]
    """A woken Mistral endpoint (optionally with a served-name override)."""

    def make(**env: str) -> str:
        endpoint = plant_endpoint(image=VLLM_IMAGE, env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token, **env})
        wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=False)
        return endpoint.id

    return make


def test_sanity_checks_pass_and_report_the_max_tokens_trap(localpod, settings, key, awake):
    endpoint_id = awake()
    report = sanity_checks(settings, key, endpoint_id, MISTRAL, max_tokens=48)
    assert isinstance(report, SanityReport) and report.ok
    assert [c.name for c in report.checks] == [
        "served model",
        "chat completion",
        "streamed chat",
        "max_tokens trap",
        "langchain",
    ]
    figures = report.figures
    assert figures["ttft_s"] > 0 and figures["tokens_per_s"] > 0 and figures["chat_latency_s"] > 0
    assert figures["stream_chunks"] >= 3 and figures["stream_completion_tokens"] >= 1
    assert figures["no_max_tokens_completion_tokens"] == 16 and figures["no_max_tokens_finish_reason"] == "length"
    assert figures["max_tokens_trap"] is True
    trap = next(c for c in report.checks if c.name == "max_tokens trap")
    assert trap.ok and "16" in trap.detail and "always pass max_tokens" in trap.detail.lower()
    # an observation about vLLM's defaults, not a test of the endpoint: INFO, not counted as passed
    assert trap.informational and trap.mark == "INFO" and trap not in report.passed and len(report.passed) == 4
    text = str(report)
    assert "PASS" in text and "FAIL" not in text and "ttft_s=" in text
    assert "all 4 passed, 1 informational" in text and "  INFO  max_tokens trap" in text
    assert ">INFO</td>" in report._repr_html_()
    assert "<table>" in report._repr_html_()
    assert localpod.api_key not in text + report._repr_html_()


def test_served_name_override_and_wrong_expected_model(settings, key, awake):
    endpoint_id = awake(OPENAI_SERVED_MODEL_NAME_OVERRIDE="mistral-7b")
    with pytest.raises(SanityCheckError) as info:
        sanity_checks(settings, key, endpoint_id, MISTRAL)
    message = str(info.value)
    assert "mistral-7b" in message and "OPENAI_SERVED_MODEL_NAME_OVERRIDE" in message and "MODEL_NAME" in message
    # the same contract as the embedding checks: not served fails the first check and skips the rest
    assert info.value.report is not None and [c.name for c in info.value.report.checks] == ["served model"]
    lenient = sanity_checks(settings, key, endpoint_id, MISTRAL, strict=False)
    assert not lenient.ok and [c.name for c in lenient.checks] == ["served model"]
    assert "Other checks skipped" in lenient.checks[0].detail
    assert sanity_checks(settings, key, endpoint_id, "mistral-7b", max_tokens=16).ok


def test_failed_check_raises_with_the_report_or_returns_it(settings, key, awake):
    endpoint_id = awake()
    # max_tokens beyond the context makes the chat, stream and LangChain checks fail with a 400.
    with pytest.raises(SanityCheckError) as info:
        sanity_checks(settings, key, endpoint_id, MISTRAL, max_tokens=10**6)
    report = info.value.report
    assert report is not None
    assert not report.ok and {c.name for c in report.failed} == {"chat completion", "streamed chat", "langchain"}
    assert "HTTP 400" in next(c for c in report.failed if c.name == "chat completion").detail
    lenient = sanity_checks(settings, key, endpoint_id, MISTRAL, max_tokens=10**6, strict=False)
    assert not lenient.ok and "FAIL" in str(lenient)


def test_clients_are_bound_to_the_endpoint(settings, key, awake):
    endpoint_id = awake()
    client = openai_client(settings, key, endpoint_id, timeout=30)
    assert str(client.base_url).rstrip("/") == settings.openai_base_url(endpoint_id)
    chat = langchain_chat(settings, key, endpoint_id, MISTRAL)
    assert chat.max_tokens == 512 and key.reveal() not in repr(chat)
    assert chat.invoke("Say hi").content


def test_curl_example_uses_the_variable_never_the_key(settings, key):
    command = curl_example(settings, "abc123", MISTRAL, "It's a test")
    assert "$VLLM_API_KEY" in command and key.reveal() not in command
    assert f"set -a; . {settings.env_file.absolute()}; set +a" in command
    assert f"{settings.openai_base_url('abc123')}/chat/completions" in command
    body = command.split(" -d ", 1)[1]
    import shlex

    payload = json.loads(shlex.split(body)[0])
    assert payload["max_tokens"] == 128 and payload["messages"][0]["content"] == "It's a test"
    assert payload["model"] == MISTRAL


def test_records_merge_atomically_and_hold_no_secret(tmp_path, key, monkeypatch):
    path = record_figures("04-wake", {"ttft_s": 0.12, "cold": True}, run_dir=tmp_path)
    assert path == (tmp_path / "04-wake.figures.json").resolve()
    record_figures(
        "04-wake", {"tokens_per_s": 250.5, "note": f"used key {key.reveal()} and hf_abcdefghijklmnop"}, run_dir=tmp_path
    )
    figures = load_figures(path)
    assert figures["ttft_s"] == 0.12 and figures["cold"] is True and figures["tokens_per_s"] == 250.5
    raw = path.read_text()
    assert key.reveal() not in raw and "hf_abcdefghijklmnop" not in raw and "rpa_…" in raw
    assert [p.name for p in tmp_path.iterdir()] == ["04-wake.figures.json"]  # no temp file left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644

    monkeypatch.setenv("RPBOOK_RUN_DIR", str(tmp_path / "from-env"))
    assert record_figures("x", {"a": 1}).parent == (tmp_path / "from-env").resolve()
    monkeypatch.delenv("RPBOOK_RUN_DIR")
    monkeypatch.chdir(tmp_path)
    assert record_figures("y", {"a": 1}) == (tmp_path / "runs" / "latest" / "y.figures.json").resolve()


def test_records_refuse_non_scalars_and_bad_names(tmp_path):
    with pytest.raises(ConfigError, match="JSON scalars"):
        record_figures("n", {"timeline": {"ready": 1.0}}, run_dir=tmp_path)  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="NaN"):
        record_figures("n", {"x": float("nan")}, run_dir=tmp_path)
    with pytest.raises(ConfigError, match="not valid"):
        record_figures("../escape", {"x": 1}, run_dir=tmp_path)
    assert not list(tmp_path.iterdir())
    assert records.figures_dir(tmp_path) == tmp_path


def test_the_trap_check_fails_when_its_request_fails() -> None:
    """Informational when vLLM answers; a failed /completions request is still a failed check."""
    import httpx
    import openai

    from rpbook.endpoint import chat

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            500,
            json={
                "error": {
                    "message": 'vLLM returned HTTP 500: {"detail": "boom"}',
                    "type": "worker_error",
                    "param": None,
                    "code": 500,
                }
            },
        )

    client = openai.OpenAI(
        base_url="http://fake.invalid/v1",
        api_key="sk-fake",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    result = guard("max_tokens trap", lambda: chat._check_trap(client, MISTRAL, "hi"))
    assert not result.ok and result.mark == "FAIL" and not result.informational
    assert "HTTP 500: vLLM answered HTTP 500: boom" in result.detail
    report = SanityReport(endpoint_id="abc", model=MISTRAL, checks=(result,))
    assert not report.ok and "1 failed, 0 passed" in str(report)


def test_wrong_model_error_names_vllms_message(settings, key, awake):
    """worker-vllm v2.25.2 wraps vLLM's 404 as "vLLM returned HTTP 404: {json}"; the check's
    message unwraps it to vLLM's own sentence."""
    from rpbook.endpoint.checks import client_error_detail

    client = openai_client(settings, key, awake(), timeout=30)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert client_error_detail(info.value) == (
        "NotFoundError: HTTP 404: vLLM answered HTTP 404: The model `gpt-4o` does not exist."
    )
