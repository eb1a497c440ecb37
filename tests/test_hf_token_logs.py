"""The HF token never reaches a vLLM worker's logs when rpbook deploys it (issue 8, "First contact").

worker-vllm v2.25.2 turns ``HF_TOKEN`` into ``--hf-token <token>`` (``src/args_builder.py``) and logs
``Starting vLLM: <argv>`` (``src/main.py``); huggingface_hub also reads ``HUGGING_FACE_HUB_TOKEN``
(``utils/_auth.py``), which is no vLLM flag. rpbook passes the token that way. These tests plant a
canary token, run the runbook's vLLM flow against localpod, and look for the canary in every line
of every worker's log, with a negative control proving the emulated start line would show it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from conftest import LocalpodServer
from rpbook.account.controlplane import RunpodClient
from rpbook.account.plan import FieldChange
from rpbook.account.plans import (
    apply,
    ensure_endpoint,
    ensure_template,
    ensure_volume,
    plan_endpoint,
    plan_template,
)
from rpbook.account.specs import EndpointSpec, TemplateSpec, VolumeSpec
from rpbook.account.wakeup import wake
from rpbook.account.workerimages import vllm_template
from rpbook.core.errors import ConfigError
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings
from spec import SpecCheckedClient, load_spec
from test_worker_logs import CANARY, MISTRAL, all_log_text, read_log

REF = "{{ RUNPOD_SECRET_hf_token }}"
FAST = {"timeout_s": 30, "poll_s": 0.02, "progress": False}


@pytest.fixture
def canary(localpod: LocalpodServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The canary is the user's HF_TOKEN, and the token localpod's Hub accepts with the licence."""
    monkeypatch.setattr(localpod.ctx.settings, "hf_token", CANARY)  # also what Runpod secrets resolve to
    monkeypatch.setenv("HF_TOKEN", CANARY)
    return CANARY


@pytest.fixture
def client(settings: Settings) -> Iterator[RunpodClient]:
    with RunpodClient(settings, settings.runpod_api_key()) as rp:
        yield rp


@pytest.fixture
def api(localpod: LocalpodServer) -> Iterator[SpecCheckedClient]:
    load_spec()
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as rest:
        yield rest


def template(token: Secret | str) -> TemplateSpec:
    return vllm_template(
        "vllm-mistral-7b", MISTRAL, "v2.25.2", token, max_model_len=8192, gpu_memory_utilization=0.9, max_concurrency=30
    )


ENDPOINT = EndpointSpec(
    "mistral-7b-vllm",
    "vllm-mistral-7b",
    ["AMPERE_24", "ADA_24"],
    network_volume_name="llm-weights",
    data_center="EU-RO-1",
)


def deploy(client: RunpodClient, spec: TemplateSpec) -> str:
    volume = ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    made = ensure_template(client, spec, apply=True)
    assert volume.resource is not None and made.resource is not None
    endpoint = ensure_endpoint(client, ENDPOINT, made.resource.id, volume.resource.id, apply=True)
    assert endpoint.resource is not None
    return endpoint.resource.id


def start_lines(api: SpecCheckedClient, endpoint_id: str) -> list[str]:
    """``Starting vLLM`` lines of the endpoint's listed workers, read raw from the REST stream."""
    lines = []
    for worker in api.get(f"/v2/serverless/{endpoint_id}/workers").json()["workers"]:
        lines += [data["line"] for _, data in read_log(api, endpoint_id, worker["id"])]
    return [line for line in lines if "Starting vLLM: " in line]


@pytest.mark.parametrize("how", ["secret", "reference"])
def test_canary_token_never_reaches_worker_logs(
    localpod: LocalpodServer, settings: Settings, client: RunpodClient, api: SpecCheckedClient, canary: str, how: str
) -> None:
    token = settings.hf_token() if how == "secret" else REF
    assert settings.hf_token().reveal() == canary
    endpoint_id = deploy(client, template(token))
    assert "HF_TOKEN" not in localpod.ctx.store.endpoints[endpoint_id].env

    report = wake(settings, settings.runpod_api_key(), endpoint_id, **FAST)  # the gated model loads
    assert "first token" in report.timeline and report.output_preview
    started = start_lines(api, endpoint_id)
    assert len(started) == 1 and f"--model {MISTRAL}" in started[0] and "--hf-token" not in started[0]
    text = all_log_text(localpod)  # every line of every worker, stopped ones included
    assert "Starting vLLM: " in text and canary not in text
    assert all(canary not in str(line) for line in client.worker_logs(endpoint_id))


def test_negative_control_hf_token_set_through_the_api_is_printed(
    localpod: LocalpodServer, settings: Settings, client: RunpodClient, api: SpecCheckedClient, canary: str
) -> None:
    """Bypassing rpbook, HF_TOKEN in a template shows up in the start line: the emulation is faithful."""
    made = api.post(
        "/v2/templates",
        json={
            "name": "raw",
            "image": "runpod/worker-v1-vllm:v2.25.2",
            "serverless": True,
            "env": {"MODEL_NAME": MISTRAL, "HF_TOKEN": canary},
        },
    )
    assert made.status_code == 201, made.text
    endpoint = api.post(
        "/v2/serverless",
        json={
            "name": "raw",
            "type": "QUEUE",
            "templateId": made.json()["id"],
            "gpu": {"pools": ["ADA_24"]},
            "workers": {"min": 0, "max": 1},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        },
    )
    assert endpoint.status_code == 201, endpoint.text
    endpoint_id = endpoint.json()["id"]
    wake(settings, settings.runpod_api_key(), endpoint_id, **FAST)
    started = start_lines(api, endpoint_id)
    assert len(started) == 1 and started[0].endswith(
        f"Starting vLLM: vllm serve --host 127.0.0.1 --port 8000 --hf-token {canary} --model {MISTRAL}"
    )
    # rpbook's reader masks a token it knows even when a worker printed it.
    lines = [line.line for line in client.worker_logs(endpoint_id) if "Starting vLLM" in line.line]
    assert lines and canary not in lines[0] and "--hf-token hf_" in lines[0]


def test_an_endpoint_deployed_with_hf_token_is_migrated(
    localpod: LocalpodServer, settings: Settings, client: RunpodClient, api: SpecCheckedClient, canary: str
) -> None:
    """Templates rpbook made before this change carry HF_TOKEN: the plan removes it, adds the new key."""
    new = template(REF)
    old_env = {("HF_TOKEN" if key == "HUGGING_FACE_HUB_TOKEN" else key): value for key, value in new.env.items()}
    old = dataclasses.replace(new, env=old_env)
    endpoint_id = deploy(client, old)
    wake(settings, settings.runpod_api_key(), endpoint_id, **FAST)
    assert f"--hf-token {canary}" in start_lines(api, endpoint_id)[0]  # the leak being fixed

    tplan = plan_template(client, new)
    assert tplan.changes == [
        FieldChange("env.HUGGING_FACE_HUB_TOKEN", REF, None),
        FieldChange("env.HF_TOKEN", None, REF),
    ]
    assert tplan.request == {"env": dict(new.env)}
    assert "—" in str(tplan)  # the removed key shows as absent
    apply(client, tplan)
    eplan = plan_endpoint(client, ENDPOINT, tplan.resource_id)
    assert {c.field for c in eplan.changes} == {"env.HF_TOKEN", "env.HUGGING_FACE_HUB_TOKEN"}
    apply(client, eplan)
    stored = localpod.ctx.store.endpoints[endpoint_id].env
    assert "HF_TOKEN" not in stored and stored["HUGGING_FACE_HUB_TOKEN"] == REF
    assert ensure_template(client, new, apply=True).plan.action == "none"
    assert ensure_endpoint(client, ENDPOINT, apply=True).plan.action == "none"


@pytest.mark.parametrize("extra", [{"HF_TOKEN": REF}, {"VLLM_EXTRA_ARGS": f"--seed 1 --hf-token {REF}"}])
def test_vllm_template_refuses_the_token_where_the_worker_prints_it(extra: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="would be printed in the worker's logs") as info:
        vllm_template(
            "t",
            MISTRAL,
            "v2.25.2",
            REF,
            max_model_len=8192,
            gpu_memory_utilization=0.9,
            max_concurrency=30,
            extra_env=extra,
        )
    assert "HUGGING_FACE_HUB_TOKEN" in str(info.value) and "hf_token_ref" in str(info.value)
