"""Fault scenarios (issue 10): 429 bursts, 5xx, connection resets, answers lost after a write,
timeouts, a slow cold start and an unreachable localpod. Every scenario ends in success or in a
clear error, never with a duplicate resource; a rerun after an error adopts what exists.

Faults are injected between rpbook's real HTTP client and a real localpod by a transport that
answers for the server (429/5xx), drops the connection before the request leaves, or forwards
the request and then loses the answer (the case where Runpod did the write but the client never
heard), so the server's state is real in every row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import health
from rpbook.account.plans import ensure_endpoint, ensure_template
from rpbook.account.specs import EndpointSpec
from rpbook.account.wakeup import wake
from rpbook.account.workerimages import vllm_template
from rpbook.core.errors import ControlPlaneError, EndpointNotReadyError, RpbookError
from rpbook.core.settings import load_settings

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"


class FaultyTransport(httpx.BaseTransport):
    """Forwards to localpod, except where ``faults`` says otherwise. ``faults`` maps a method to a
    list of what the next requests with that method meet: ``ok``, ``429``, ``503``, ``500``,
    ``refused`` (nothing reaches the server) or ``lost`` (the server acts, the answer is lost)."""

    def __init__(self, faults: dict[str, list[str]]) -> None:
        self.inner = httpx.HTTPTransport()
        self.faults = {method: list(kinds) for method, kinds in faults.items()}
        self.reached: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pending = self.faults.get(request.method) or []
        kind = pending.pop(0) if pending else "ok"
        if kind in ("429", "503", "500"):
            headers = {"retry-after": "0"} if kind == "429" else {}
            return httpx.Response(
                int(kind), headers=headers, json={"title": "injected", "status": int(kind)}, request=request
            )
        if kind == "refused":
            raise httpx.ConnectError("connection refused (injected)", request=request)
        response = self.inner.handle_request(request)
        self.reached[request.method] += 1
        if kind == "lost":
            response.read()
            response.close()
            raise httpx.ReadTimeout("the answer was lost (injected)", request=request)
        return response


def template() -> Any:
    return vllm_template("vllm-mistral-7b", MODEL, "v2.25.2", "{{ RUNPOD_SECRET_hf_token }}", 8192, 0.9, 8)


def endpoint() -> EndpointSpec:
    return EndpointSpec(name="mistral-7b-vllm", template_name="vllm-mistral-7b", gpu_pools=["AMPERE_24", "ADA_24"])


@pytest.fixture
def faulty(settings: Any) -> Iterator[Any]:
    clients: list[RunpodClient] = []

    def make(**faults: list[str]) -> tuple[RunpodClient, FaultyTransport]:
        transport = FaultyTransport(faults)
        client = RunpodClient(
            settings, settings.runpod_api_key(), transport=transport, sleep=lambda s: None, backoff_s=0
        )
        clients.append(client)
        return client, transport

    yield make
    for client in clients:
        client.close()


def names(localpod: Any) -> Counter[str]:
    store = localpod.ctx.store
    return Counter(
        [f"template/{t.name}" for t in store.templates.values()]
        + [f"endpoint/{e.name}" for e in store.endpoints.values()]
    )


def create_stack(client: RunpodClient) -> None:
    ensure_template(client, template(), apply=True)
    ensure_endpoint(client, endpoint(), apply=True, template_spec=template())


SCENARIOS = [
    # (name, faults, outcome): outcome "ok" or the text of the clear error
    ("429 burst on reads", {"GET": ["429", "429", "429"]}, "ok"),
    ("503 burst on reads", {"GET": ["503", "503"]}, "ok"),
    ("reads refused then back", {"GET": ["refused", "refused"]}, "ok"),
    ("create refused before it left", {"POST": ["refused"]}, "ok"),
    ("reads always 500", {"GET": ["500"] * 8}, "failed with 500"),
    ("create answered 503", {"POST": ["503"]}, "failed with 503"),
    ("create answered 429", {"POST": ["429"]}, "rate limiting"),
    ("template create answer lost", {"POST": ["lost"]}, "may have been done"),
    ("endpoint create answer lost", {"POST": ["ok", "lost"]}, "may have been done"),
]


@pytest.mark.parametrize("case, faults, outcome", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_control_plane_faults_end_clearly_and_never_duplicate(
    faulty: Any, localpod: Any, settings: Any, case: str, faults: dict[str, list[str]], outcome: str
) -> None:
    client, transport = faulty(**faults)
    if outcome == "ok":
        create_stack(client)
    else:
        with pytest.raises(ControlPlaneError) as info:
            create_stack(client)
        assert outcome in str(info.value), (case, str(info.value))
        assert transport.reached["POST"] <= 2  # a write that may have reached the server was not repeated
    # Whatever happened, a clean rerun converges on exactly one of each.
    with RunpodClient(settings, settings.runpod_api_key()) as clean:
        create_stack(clean)
    assert names(localpod) == Counter({"template/vllm-mistral-7b": 1, "endpoint/mistral-7b-vllm": 1})


def test_unreachable_localpod_is_a_clear_error(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_test_key_not_real")
    settings = load_settings("local", env_file=tmp_path / ".env", localpod_url="http://127.0.0.1:9")
    with (
        RunpodClient(settings, settings.runpod_api_key(), sleep=lambda s: None) as client,
        pytest.raises(ControlPlaneError, match="that localpod is running"),
    ):
        client.list_endpoints()


def test_slow_cold_start_gives_up_clearly_and_says_what_bills(
    localpod: Any, settings: Any, plant_endpoint: Any
) -> None:
    localpod.control("PATCH", "config", json={"overrides": {"engine_init_s": 30}})
    try:
        planted = plant_endpoint(
            image="runpod/worker-v1-vllm:v2.25.2", env={"MODEL_NAME": MODEL, "HF_TOKEN": localpod.hf_token}
        )
        key = settings.runpod_api_key()
        with pytest.raises(EndpointNotReadyError) as info:
            wake(settings, key, planted.id, timeout_s=1.0, poll_s=0.05, progress=False)
        message = str(info.value)
        assert "did not answer the wake-up job within 1 s" in message and "initializing" in message
        assert "still running: 1 worker(s)" in message
        assert health(settings, key, planted.id).in_queue == 0  # the wake-up job was cancelled
    finally:
        localpod.control("PATCH", "config", json={"profile": "fast"})


def test_a_crashing_worker_ends_the_wake_with_a_clear_error(localpod: Any, settings: Any, plant_endpoint: Any) -> None:
    planted = plant_endpoint(image="runpod/mock-worker:latest")
    key = settings.runpod_api_key()
    with pytest.raises(RpbookError) as info:
        wake(
            settings,
            key,
            planted.id,
            timeout_s=20,
            poll_s=0.05,
            progress=False,
            job_input={"mock_crash": True},
            unhealthy_grace_s=0.5,
        )
    assert "ended FAILED" in str(info.value) and "mock_crash" in str(info.value)
    assert "still running" in str(info.value) or "nothing bills" in str(info.value)
