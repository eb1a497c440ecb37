"""rpbook's REST v2 client against localpod: every method, typed parsing, retries, problem documents."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from localpod.store import WorkerSession
from rpbook.account.controlplane import RunpodClient
from rpbook.account.endpointscaling import ScalerSettings, WorkerSettings
from rpbook.account.resources import DataCenter, Endpoint, GpuType, NetworkVolume, Template, WorkerSummary
from rpbook.core.errors import ControlPlaneError
from rpbook.core.secrets import Secret, redact_env
from rpbook.core.settings import Settings, load_settings

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
LITERAL_TOKEN = "hf_literal_token_in_template_env_not_real"


@pytest.fixture
def client(settings: Settings) -> Iterator[RunpodClient]:
    with RunpodClient(settings, settings.runpod_api_key(), backoff_s=0.01) as rp:
        yield rp


def new_template(client: RunpodClient, **overrides: Any) -> Template:
    body = {
        "name": "vllm-test",
        "image": VLLM_IMAGE,
        "serverless": True,
        "disk": 30,
        "env": {"MODEL_NAME": "Qwen/Qwen2.5-7B-Instruct", "MAX_MODEL_LEN": "4096"},
    } | overrides
    return client.create_template(body)


def endpoint_body(template_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "chat",
        "type": "QUEUE",
        "templateId": template_id,
        "gpu": {"pools": ["ADA_24", "AMPERE_24"]},
        "workers": {"min": 0, "max": 2, "idleTimeout": 30},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        "timeout": 120_000,
        "flashboot": "FLASHBOOT",
    } | overrides


# -- resources -----------------------------------------------------------------------------------


def test_template_crud(client: RunpodClient, localpod: Any) -> None:
    template = new_template(client)
    assert isinstance(template, Template)
    assert (template.name, template.image, template.disk_gb, template.serverless) == ("vllm-test", VLLM_IMAGE, 30, True)
    assert template.env == {"MODEL_NAME": "Qwen/Qwen2.5-7B-Instruct", "MAX_MODEL_LEN": "4096"}
    assert template.raw["id"] == template.id and template.raw["image"] == VLLM_IMAGE
    assert [t.id for t in client.list_templates()] == [template.id]
    assert client.get_template(template.id) == template

    updated = client.update_template(template.id, {"env": {"MODEL_NAME": "BAAI/bge-small-en-v1.5"}})
    assert updated.env == {"MODEL_NAME": "BAAI/bge-small-en-v1.5"}
    assert localpod.ctx.store.templates[template.id].env == {"MODEL_NAME": "BAAI/bge-small-en-v1.5"}

    client.delete_template(template.id)
    assert client.list_templates() == []
    with pytest.raises(ControlPlaneError) as caught:
        client.get_template(template.id)
    assert caught.value.status == 404
    assert "not found" in str(caught.value) and "run the plan again" in str(caught.value)


def test_secret_in_template_env_is_sent_revealed_and_shown_masked(client: RunpodClient, localpod: Any) -> None:
    token = Secret("HF_TOKEN", "hf_secretSentOnlyOnTheWire000111222", "test")
    template = new_template(client, env={"MODEL_NAME": "x/y", "HF_TOKEN": token})
    assert localpod.ctx.store.templates[template.id].env["HF_TOKEN"] == token.reveal()  # revealed on the wire
    assert template.env["HF_TOKEN"] == token.reveal()  # typed value is real, for comparisons
    for shown in (repr(template), str(template), repr(template.raw), str(redact_env(template.env))):
        assert token.reveal() not in shown
        assert "hf_…(" in shown


def test_literal_token_read_from_the_api_is_masked(client: RunpodClient, localpod: Any) -> None:
    from localpod.store import Template as StoredTemplate

    localpod.ctx.store.templates["tpl0000001"] = StoredTemplate(
        id="tpl0000001",
        name="console-made",
        image=VLLM_IMAGE,
        serverless=True,
        env={"HF_TOKEN": LITERAL_TOKEN, "MODEL_NAME": "a/b"},
    )
    template = client.get_template("tpl0000001")
    assert template.env["HF_TOKEN"] == LITERAL_TOKEN
    assert LITERAL_TOKEN not in repr(template) and LITERAL_TOKEN not in repr(template.raw)


def test_network_volume_crud(client: RunpodClient, localpod: Any) -> None:
    volume = client.create_network_volume({"name": "weights", "size": 50, "dataCenter": "EU-RO-1", "type": "STANDARD"})
    assert isinstance(volume, NetworkVolume)
    assert (volume.name, volume.size_gb, volume.data_center, volume.type) == ("weights", 50, "EU-RO-1", "STANDARD")
    assert client.list_network_volumes() == [volume]
    assert client.get_network_volume(volume.id) == volume
    grown = client.update_network_volume(volume.id, {"size": 80})
    assert grown.size_gb == 80 and localpod.ctx.store.volumes[volume.id].size == 80
    client.delete_network_volume(volume.id)
    assert client.list_network_volumes() == []


def test_endpoint_crud_and_parsing(client: RunpodClient, localpod: Any) -> None:
    template = new_template(client)
    volume = client.create_network_volume({"name": "weights", "size": 50, "dataCenter": "US-TX-3"})
    endpoint = client.create_endpoint(endpoint_body(template.id, networkVolumes=[volume.id]))
    assert isinstance(endpoint, Endpoint)
    assert endpoint.name == "chat" and endpoint.image == VLLM_IMAGE
    assert endpoint.env == template.env
    assert endpoint.gpu_pools == ("ADA_24", "AMPERE_24") and endpoint.gpu_count == 1
    assert (endpoint.workers_min, endpoint.workers_max, endpoint.idle_timeout_s) == (0, 2, 30)
    assert (endpoint.scaler_type, endpoint.scaler_value) == ("QUEUE_DELAY", 4.0)
    assert endpoint.timeout_ms == 120_000 and endpoint.execution_timeout_s == 120
    assert endpoint.flashboot == "FLASHBOOT" and endpoint.flashboot_enabled
    assert endpoint.network_volume_ids == (volume.id,)
    assert endpoint.data_center_ids == ("US-TX-3",)  # a volume pins the endpoint to its data center
    assert endpoint.request_urls["runSync"] == f"{localpod.queue_url}/{endpoint.id}/runsync"
    assert endpoint.raw["requestUrls"] == endpoint.request_urls
    assert "chat" in repr(endpoint)

    assert [e.id for e in client.list_endpoints()] == [endpoint.id]
    assert client.get_endpoint(endpoint.id) == endpoint

    updated = client.set_scaling(
        endpoint.id, workers=WorkerSettings(workers_max=4), scaler=ScalerSettings("REQUEST_COUNT", 3)
    )
    assert updated.workers_max == 4 and updated.scaler_type == "REQUEST_COUNT" and updated.scaler_value == 3
    assert updated.idle_timeout_s is None  # the API omits it for REQUEST_COUNT
    assert localpod.ctx.store.endpoints[endpoint.id].workers_max == 4

    client.delete_endpoint(endpoint.id)
    assert client.list_endpoints() == []
    assert endpoint.id not in localpod.ctx.store.endpoints


def test_endpoint_workers(client: RunpodClient) -> None:
    template = client.create_template({"name": "mock", "image": "runpod/mock-worker:latest", "serverless": True})
    endpoint = client.create_endpoint(endpoint_body(template.id, workers={"min": 1, "max": 1, "idleTimeout": 5}))
    deadline = time.monotonic() + 10
    summary = client.endpoint_workers(endpoint.id)
    while summary.total < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        summary = client.endpoint_workers(endpoint.id)
    assert isinstance(summary, WorkerSummary)
    assert summary.total == 1 == len(summary.workers)
    assert summary.running + summary.idle + summary.initializing + summary.throttled + summary.unhealthy == 1
    worker = summary.workers[0]
    assert worker.status in ("RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY")
    assert worker.gpu_count == 1 and worker.is_stale is False
    assert summary.endpoint_version == worker.version


def test_gpu_catalog_with_serverless_availability(client: RunpodClient) -> None:
    gpus = client.gpu_types()
    assert all(isinstance(g, GpuType) for g in gpus)
    h200 = next(g for g in gpus if g.id == "NVIDIA H200")
    assert h200.pool == "HOPPER_141" and h200.memory_gb == 141
    assert h200.serverless_price_hr == pytest.approx(0.00155 * 3600)
    assert h200.serverless_price_per_s == pytest.approx(0.00155)
    assert h200.availability in ("LOW", "MEDIUM", "HIGH")
    assert 0 < len(h200.data_centers) <= 3  # H200 only in a few data centers
    assert {dc.id for dc in h200.data_centers} <= {"EU-RO-1", "US-TX-3", "US-GA-2"}
    no_pool = next(g for g in gpus if g.pool is None)
    assert no_pool.serverless_price_hr is None
    plain = client.gpu_types(serverless_availability=False)
    assert {g.id for g in plain} == {g.id for g in gpus}
    assert all(g.availability is None and g.data_centers == () for g in plain)


def test_data_center_catalog(client: RunpodClient) -> None:
    centers = {dc.id: dc for dc in client.data_centers()}
    assert all(isinstance(dc, DataCenter) for dc in centers.values())
    ca2 = centers["US-CA-2"]
    assert ca2.region == "NORTH_AMERICA" and ca2.offers_standard_volumes
    offered = {g.id for g in ca2.gpu_availability}
    assert "NVIDIA GeForce RTX 4090" in offered
    assert not offered & {
        "NVIDIA RTX A4000",
        "NVIDIA RTX A4500",
        "NVIDIA RTX 4000 Ada Generation",
        "NVIDIA RTX 2000 Ada Generation",
    }  # no AMPERE_16 there
    assert centers["OC-AU-1"].volume_types == () and not centers["OC-AU-1"].offers_standard_volumes
    assert all(dc.gpu_availability == () for dc in client.data_centers(gpu_availability=False))


def test_serverless_billing(client: RunpodClient, localpod: Any) -> None:
    now = time.time()
    localpod.ctx.store.sessions.append(
        WorkerSession("epA", "w1", "NVIDIA GeForce RTX 4090", 1, 0.00031, now - 200, now - 100)
    )
    localpod.ctx.store.sessions.append(WorkerSession("epB", "w2", "NVIDIA L4", 2, 0.00019, now - 50, now - 40))
    everything = client.serverless_billing(last_n=2)
    assert {r.endpoint_id for r in everything.records} == {"epA", "epB"}
    assert everything.total_usd == pytest.approx(100 * 0.00031 + 10 * 2 * 0.00019, abs=1e-5)
    assert everything.bucket_size == "day"
    only_a = client.serverless_billing("epA", last_n=2)
    assert [r.endpoint_id for r in only_a.records] == ["epA"]
    assert only_a.total_usd == pytest.approx(100 * 0.00031, abs=1e-5)
    assert only_a.raw["metadata"]["query"]["serverlessId"] == "epA"


# -- errors ----------------------------------------------------------------------------------------


def test_problem_document_becomes_control_plane_error(client: RunpodClient, localpod: Any) -> None:
    template = new_template(client)
    with pytest.raises(ControlPlaneError) as caught:
        client.create_endpoint(endpoint_body(template.id, workers={"min": 3, "max": 1}, gpu={"pools": ["NOT_A_POOL"]}))
    error = caught.value
    assert error.status == 400
    assert any("workers.max" in e for e in error.errors)
    assert any("NOT_A_POOL" in e for e in error.errors)
    assert "POST /v2/serverless" in str(error) and "400" in str(error)
    assert localpod.ctx.store.endpoints == {}

    with pytest.raises(ControlPlaneError) as caught:
        client.create_network_volume({"name": "v", "size": 5, "dataCenter": "EU-RO-1", "bogus": 1})
    assert caught.value.status == 422
    assert any(e.startswith("size") for e in caught.value.errors)
    assert any(e.startswith("bogus") for e in caught.value.errors)


def test_wrong_api_key_is_a_401_that_says_what_to_fix(settings: Settings) -> None:
    key = Secret("RUNPOD_API_KEY", "rpa_WRONG_KEY_FOR_THIS_TEST_0123", "test")
    with RunpodClient(settings, key) as rp, pytest.raises(ControlPlaneError) as caught:
        rp.list_endpoints()
    assert caught.value.status == 401
    assert "RUNPOD_API_KEY" in str(caught.value)
    assert key.reveal() not in str(caught.value)


def test_api_key_must_be_a_secret(settings: Settings, localpod: Any) -> None:
    with pytest.raises(TypeError):
        RunpodClient(settings, localpod.api_key)  # type: ignore[arg-type]


def test_error_bodies_are_scrubbed(settings: Settings) -> None:
    leaked = Secret("HF_TOKEN", "hf_thisValueMustNeverBeShown987654", "test")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "title": "Bad Request",
                "status": 400,
                "detail": f"env HF_TOKEN={leaked.reveal()} is odd",
                "errors": [f"env.HF_TOKEN: {leaked.reveal()}"],
            },
        )

    with (
        RunpodClient(settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler)) as rp,
        pytest.raises(ControlPlaneError) as caught,
    ):
        rp.create_template({"name": "x", "image": "y"})
    assert leaked.reveal() not in str(caught.value)
    assert all(leaked.reveal() not in e for e in caught.value.errors)
    assert "hf_…(" in str(caught.value)


# -- retries ---------------------------------------------------------------------------------------


def scripted(
    statuses: list[int], body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[Any, list[httpx.Request]]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        status = statuses[min(len(calls) - 1, len(statuses) - 1)]
        if status >= 400:
            return httpx.Response(
                status, headers=headers or {}, json={"title": "busy", "status": status, "detail": "try later"}
            )
        return httpx.Response(status, json=body)

    return handler, calls


def test_get_retries_429_and_503_then_succeeds(settings: Settings) -> None:
    handler, calls = scripted(
        [429, 503, 200],
        {"networkVolumes": [{"id": "v1", "name": "w", "size": 10, "dataCenter": "EU-RO-1", "type": "STANDARD"}]},
    )
    sleeps: list[float] = []
    with RunpodClient(
        settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), backoff_s=0.25, sleep=sleeps.append
    ) as rp:
        volumes = rp.list_network_volumes()
    assert [v.id for v in volumes] == ["v1"]
    assert len(calls) == 3
    assert sleeps == [0.25, 0.5]  # exponential backoff
    assert calls[0].headers["authorization"] == f"Bearer {settings.runpod_api_key().reveal()}"


def test_every_back_off_is_announced_on_stdout(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """A cell that backs off says so (in the cell's output) instead of looking hung: one line per
    retry with the wait, the reason and the attempt, like huggingface_hub's ``http_backoff``."""
    handler, _ = scripted([429, 503, 200], {"templates": []})
    with RunpodClient(
        settings,
        settings.runpod_api_key(),
        transport=httpx.MockTransport(handler),
        backoff_s=0.25,
        sleep=lambda s: None,
    ) as rp:
        assert rp.list_templates() == []
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "GET /v2/templates: retrying in 0.25 s after HTTP 429 Too Many Requests (attempt 1 of 4)",
        "GET /v2/templates: retrying in 0.5 s after HTTP 503 Service Unavailable (attempt 2 of 4)",
    ]


def test_a_refused_connection_is_announced_and_a_write_answer_is_not(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A write is retried (and announced) only when the connection never opened; a POST's 503 is
    neither retried nor announced."""
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503, json={"title": "busy", "status": 503})

    with (
        RunpodClient(
            settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=lambda s: None
        ) as rp,
        pytest.raises(ControlPlaneError),
    ):
        rp.create_template({"name": "t", "image": "i"})
    assert attempts == 2
    assert capsys.readouterr().out.splitlines() == [
        "POST /v2/templates: retrying in 0.5 s after ConnectError: connection refused (attempt 1 of 4)"
    ]


def test_get_honours_retry_after(settings: Settings) -> None:
    handler, calls = scripted([429, 200], {"templates": []}, headers={"Retry-After": "3"})
    sleeps: list[float] = []
    with RunpodClient(
        settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=sleeps.append
    ) as rp:
        assert rp.list_templates() == []
    assert sleeps == [3.0] and len(calls) == 2


def test_get_gives_up_after_four_attempts(settings: Settings) -> None:
    handler, calls = scripted([503], {})
    sleeps: list[float] = []
    with (
        RunpodClient(
            settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=sleeps.append
        ) as rp,
        pytest.raises(ControlPlaneError) as caught,
    ):
        rp.list_endpoints()
    assert len(calls) == 4 and len(sleeps) == 3
    assert caught.value.status == 503 and "server-side" in str(caught.value)


def test_get_retries_connection_errors(settings: Settings) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"endpoints": []})

    with RunpodClient(
        settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=lambda s: None
    ) as rp:
        assert rp.list_endpoints() == []
    assert len(calls) == 3


def test_unreachable_server_is_a_clear_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_unreachable_test_key")
    settings = load_settings("local", env_file=tmp_path / ".env", localpod_url="http://127.0.0.1:9")
    with (
        RunpodClient(settings, settings.runpod_api_key(), timeout=2, sleep=lambda s: None) as rp,
        pytest.raises(ControlPlaneError) as caught,
    ):
        rp.list_templates()
    assert "after 4 attempt(s)" in str(caught.value) and "localpod" in str(caught.value)


@pytest.mark.parametrize("status", [429, 503])
def test_post_is_not_retried(settings: Settings, status: int) -> None:
    handler, calls = scripted([status, 201], {"id": "t1", "name": "x", "image": "y"})
    sleeps: list[float] = []
    with (
        RunpodClient(
            settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=sleeps.append
        ) as rp,
        pytest.raises(ControlPlaneError) as caught,
    ):
        rp.create_template({"name": "x", "image": "y"})
    assert len(calls) == 1 and sleeps == []
    assert caught.value.status == status


def test_patch_and_delete_are_not_retried(settings: Settings) -> None:
    handler, calls = scripted([502], {})
    with RunpodClient(
        settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=lambda s: None
    ) as rp:
        with pytest.raises(ControlPlaneError):
            rp.set_workers("ep1", workers_max=1)
        with pytest.raises(ControlPlaneError):
            rp.delete_endpoint("ep1")
    assert len(calls) == 2


def test_a_name_is_not_an_id(client: RunpodClient, localpod: Any) -> None:
    from rpbook.core.errors import ConfigError

    for bad in ("", " ", "a/b"):
        with pytest.raises(ConfigError, match="not a Runpod resource id"):
            client.get_endpoint(bad)


# -- worker logs ----------------------------------------------------------------------------------


def test_worker_logs_reads_one_worker_or_all(client: RunpodClient, plant_endpoint: Any) -> None:
    """GET /v2/serverless/{id}/workers/{workerId}/logs streams SSE and stays open: the helper reads the backfill."""
    from rpbook.account.resources import WorkerLogLine
    from rpbook.core.errors import ConfigError

    endpoint = plant_endpoint(image="runpod/mock-worker:latest", workers_min=1, workers_max=1)
    deadline = time.monotonic() + 10
    while not client.endpoint_workers(endpoint.id).idle and time.monotonic() < deadline:
        time.sleep(0.05)
    worker_id = client.endpoint_workers(endpoint.id).workers[0].id
    started = time.monotonic()
    lines = client.worker_logs(endpoint.id, worker_id, idle_s=0.3, max_s=60)
    assert time.monotonic() - started < 60 / 2  # stopped by the quiet stream, long before max_s
    assert lines and all(isinstance(line, WorkerLogLine) and line.worker_id == worker_id for line in lines)
    assert "--- Starting Serverless Worker |  Version 1.12.0 ---" in [line.line for line in lines]
    assert [line.source for line in client.worker_logs(endpoint.id, worker_id, source="system", idle_s=0.3)] == [
        "system"
    ] * 2  # placed, container started
    assert client.worker_logs(endpoint.id, worker_id, tail=1, idle_s=0.3) == lines[-1:]
    assert client.worker_logs(endpoint.id, idle_s=0.3) == lines  # every listed worker
    with pytest.raises(ControlPlaneError) as info:
        client.worker_logs(endpoint.id, "nosuchworker", idle_s=0.3)
    assert info.value.status == 404 and "nosuchworker" in str(info.value)
    with pytest.raises(ConfigError, match="tail"):
        client.worker_logs(endpoint.id, worker_id, tail=5001)
    with pytest.raises(ConfigError, match="source"):
        client.worker_logs(endpoint.id, worker_id, source="stdout")
