"""localpod's own security: keys on every route family, no foreign Host or Origin, no secret in
/_localpod/state, validated control config, Runpod secrets resolved at worker start, input bounds.

Sources for the emulated rules: Runpod docs ``pods/templates/secrets`` (``{{ RUNPOD_SECRET_name }}``
is substituted when the worker starts; a deleted secret makes deployments fail),
``pods/templates/environment-variables`` (at most 50 env vars), the job ``policy`` bounds of
``serverless/endpoints/send-requests`` (executionTimeout 5 s-7 d), and vLLM's
``vllm/sampling_params.py`` ``SamplingParams._verify_args`` (``n`` at most ``VLLM_MAX_N_SEQUENCES``,
default 16384).
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from conftest import LocalpodServer, wait_for

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"


def route_families(localpod: LocalpodServer, endpoint_id: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """One request per route family: (method, URL, extra httpx arguments)."""
    base = localpod.base_url
    return {
        "rest v2": ("GET", f"{localpod.rest_url}/v2/serverless", {}),
        "graphql": ("POST", f"{localpod.rest_url}/graphql", {"json": {"query": "query { myself { id } }"}}),
        "queue": ("GET", f"{localpod.queue_url}/{endpoint_id}/health", {}),
        "queue run": ("POST", f"{localpod.queue_url}/{endpoint_id}/run", {"json": {"input": {"mock_return": 1}}}),
        "openai": ("GET", f"{localpod.openai_base(endpoint_id)}/models", {}),
        "hub": ("GET", f"{localpod.hub_url}/api/whoami-v2", {}),
        "control state": ("GET", f"{base}/_localpod/state", {}),
        "control config": ("PATCH", f"{base}/_localpod/config", {"json": {}}),
        "control echo": ("POST", f"{base}/_localpod/echo", {"json": {"a": 1}}),
        "control reset": ("POST", f"{base}/_localpod/reset", {}),
    }


def key_for(localpod: LocalpodServer, family: str) -> str:
    """The hub's key is the HF token; every other family takes the Runpod API key."""
    return localpod.hf_token if family == "hub" else localpod.api_key


def test_every_route_family_refuses_missing_and_wrong_keys_and_foreign_host_and_origin(localpod, plant_endpoint):
    endpoint = plant_endpoint()
    for family, (method, url, extra) in route_families(localpod, endpoint.id).items():
        good = {"Authorization": f"Bearer {key_for(localpod, family)}"}
        answers = {
            "missing key": httpx.request(method, url, timeout=30, **extra),
            "wrong key": httpx.request(
                method, url, headers={"Authorization": "Bearer rpa_WRONG_KEY_xx"}, timeout=30, **extra
            ),
            "foreign host": httpx.request(
                method, url, headers={**good, "Host": "evil.example:8765"}, timeout=30, **extra
            ),
            "foreign origin": httpx.request(
                method, url, headers={**good, "Origin": "http://evil.example"}, timeout=30, **extra
            ),
            "same port other origin": httpx.request(
                method, url, headers={**good, "Origin": "http://127.0.0.1:1"}, timeout=30, **extra
            ),
        }
        statuses = {name: response.status_code for name, response in answers.items()}
        assert statuses == {
            "missing key": 401,
            "wrong key": 401,
            "foreign host": 403,
            "foreign origin": 403,
            "same port other origin": 403,
        }, family
        for name in ("foreign host", "foreign origin"):
            assert answers[name].headers["content-type"] == "application/problem+json", (family, name)
            assert answers[name].json()["status"] == 403
        allowed = httpx.request(method, url, headers={**good, "Origin": localpod.base_url}, timeout=30, **extra)
        assert allowed.status_code < 400, (family, allowed.text)
        for response in [*answers.values(), allowed]:
            assert localpod.api_key not in response.text and localpod.hf_token not in response.text


def test_health_needs_no_key_but_a_local_host(localpod):
    url = f"{localpod.base_url}/_localpod/health"
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.replace("127.0.0.1", "localhost")).status_code == 200
    assert httpx.get(url, headers={"Host": "attacker.example"}).status_code == 403


def test_a_cross_site_simple_post_cannot_wipe_state(localpod, plant_endpoint):
    """What a web page can send without a preflight: text/plain POST with its Origin, no key."""
    endpoint = plant_endpoint()
    for headers in (
        {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Content-Type": "text/plain"},
    ):
        response = httpx.post(f"{localpod.base_url}/_localpod/reset", headers=headers, content="x")
        assert response.status_code in (401, 403)
    assert endpoint.id in localpod.ctx.store.endpoints


def test_state_redacts_secret_env_values_and_keeps_references(localpod):
    rest = httpx.Client(base_url=localpod.rest_url, headers={"Authorization": f"Bearer {localpod.api_key}"})
    created = rest.post(
        "/v2/templates",
        json={
            "name": "t",
            "image": VLLM_IMAGE,
            "env": {
                "HF_TOKEN": localpod.hf_token,
                "MODEL_NAME": MISTRAL,
                "OTHER": "{{ RUNPOD_SECRET_hf_token }}",
                "COPY": localpod.api_key,
            },
        },
    )
    assert created.status_code == 201, created.text
    state = localpod.control("GET", "state")
    env = state.json()["templates"][0]["env"]
    assert env == {
        "HF_TOKEN": "<redacted>",
        "MODEL_NAME": MISTRAL,
        "OTHER": "{{ RUNPOD_SECRET_hf_token }}",
        "COPY": "<redacted>",
    }
    assert localpod.hf_token not in state.text and localpod.api_key not in state.text


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"overrides": {"scaler_tick_s": "inf"}}, "scaler_tick_s"),
        ({"overrides": {"scaler_tick_s": 3600}}, "scaler_tick_s"),
        ({"overrides": {"scaler_tick_s": 0}}, "scaler_tick_s"),
        ({"overrides": {"container_start_s": True}}, "container_start_s"),
        ({"overrides": {"container_start_s": "1"}}, "container_start_s"),
        ({"overrides": {"download_bytes_per_s": 0}}, "download_bytes_per_s"),
        ({"overrides": {"nope_s": 1}}, "nope_s"),
        ({"overrides": "fast"}, "overrides"),
        ({"overrides": [1, 2]}, "overrides"),
        ({"profile": 5}, "profile"),
        ({"profile": "warp"}, "warp"),
        ({"rate_limits": "false"}, "rate_limits"),
        ({"rate_limits": 0}, "rate_limits"),
        ({"proxy_url": "file:///etc/passwd"}, "proxy_url"),
        ({"proxy_url": 3}, "proxy_url"),
        ({"colour": "red"}, "colour"),
        ({"overrides": {"queue_delay_reading": "all_at_once"}}, "queue_delay_reading"),
        ({"overrides": {"queue_delay_reading": 1}}, "queue_delay_reading"),
    ],
)
def test_config_rejects_malformed_values_with_400_and_changes_nothing(localpod, body, fragment):
    before = localpod.control("GET", "config").json()
    response = httpx.patch(
        f"{localpod.base_url}/_localpod/config", json=body, headers={"Authorization": f"Bearer {localpod.api_key}"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]
    assert localpod.control("GET", "config").json() == before


@pytest.mark.parametrize(
    "raw", ['{"overrides": {"scaler_tick_s": 1e999}}', '{"overrides": {"scaler_tick_s": NaN}}', '{"overrides": ', "[]"]
)
def test_config_rejects_infinite_numbers_and_broken_json(localpod, raw):
    response = httpx.patch(
        f"{localpod.base_url}/_localpod/config",
        content=raw,
        headers={"Authorization": f"Bearer {localpod.api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_config_accepts_valid_values(localpod):
    body = localpod.control(
        "PATCH", "config", json={"overrides": {"scaler_tick_s": 0.05, "container_start_s": 1}, "rate_limits": False}
    ).json()
    assert body["profile"]["scaler_tick_s"] == 0.05 and body["rate_limits"] is False
    assert body["profile"]["queue_delay_reading"] == "one_per_decision"  # the default, the pessimistic reading
    body = localpod.control("PATCH", "config", json={"overrides": {"queue_delay_reading": "whole_queue"}}).json()
    assert body["profile"]["queue_delay_reading"] == "whole_queue"


# -- Runpod secrets -----------------------------------------------------------------------------


def gated_vllm_env(hf_token: str) -> dict[str, str]:
    return {"MODEL_NAME": MISTRAL, "HF_TOKEN": hf_token}


def workers(localpod: LocalpodServer, endpoint_id: str) -> list[dict[str, Any]]:
    return localpod.control("GET", "state").json()["live"].get(endpoint_id, {}).get("workers", [])


def run_job(localpod: LocalpodServer, endpoint_id: str) -> None:
    response = httpx.post(
        f"{localpod.queue_url}/{endpoint_id}/run",
        json={"input": {"prompt": "hi"}},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert response.status_code == 200, response.text


def test_a_defined_secret_is_resolved_at_worker_start(localpod, plant_endpoint):
    localpod.ctx.settings.secrets["team_hf"] = localpod.hf_token
    try:
        endpoint = plant_endpoint(image=VLLM_IMAGE, env=gated_vllm_env("{{ RUNPOD_SECRET_team_hf }}"))
        run_job(localpod, endpoint.id)
        wait_for(lambda: any(w["status"] in ("IDLE", "RUNNING") for w in workers(localpod, endpoint.id)))
    finally:
        localpod.ctx.settings.secrets.pop("team_hf", None)
    assert localpod.ctx.store.endpoints[endpoint.id].env["HF_TOKEN"] == "{{ RUNPOD_SECRET_team_hf }}"


def test_a_secret_with_a_token_without_the_licence_leaves_the_worker_unhealthy(localpod, plant_endpoint):
    """The secret's value is what the worker downloads with, not localpod's own token."""
    localpod.ctx.settings.secrets["weak"] = "hf_localpod_no_licence"
    try:
        endpoint = plant_endpoint(image=VLLM_IMAGE, env=gated_vllm_env("{{ RUNPOD_SECRET_weak }}"))
        run_job(localpod, endpoint.id)
        worker = wait_for(lambda: [w for w in workers(localpod, endpoint.id) if w["status"] == "UNHEALTHY"])[0]
    finally:
        localpod.ctx.settings.secrets.pop("weak", None)
    assert MISTRAL in worker["unhealthyReason"] and "hf_localpod_no_licence" not in worker["unhealthyReason"]


def test_an_undefined_secret_fails_the_worker_start_and_names_the_secret(localpod, plant_endpoint):
    endpoint = plant_endpoint(image=VLLM_IMAGE, env=gated_vllm_env("{{ RUNPOD_SECRET_never_created }}"))
    run_job(localpod, endpoint.id)
    worker = wait_for(lambda: [w for w in workers(localpod, endpoint.id) if w["status"] == "UNHEALTHY"])[0]
    assert "never_created" in worker["unhealthyReason"] and "--secret" in worker["unhealthyReason"]


def test_hf_token_secret_defaults_to_the_seed_token(localpod, plant_endpoint):
    endpoint = plant_endpoint(image=VLLM_IMAGE, env=gated_vllm_env("{{ RUNPOD_SECRET_hf_token }}"))
    run_job(localpod, endpoint.id)
    wait_for(lambda: any(w["status"] in ("IDLE", "RUNNING") for w in workers(localpod, endpoint.id)))


def test_resolve_env_substitutes_every_reference():
    from localpod.runpod_secrets import resolve_env

    env, missing = resolve_env(
        {"A": "{{ RUNPOD_SECRET_a }}", "B": "x-{{RUNPOD_SECRET_b}}-y", "C": "plain"}, {"a": "1"}.get
    )
    assert env == {"A": "1", "B": "x-{{RUNPOD_SECRET_b}}-y", "C": "plain"} and missing == ["b"]


def test_secrets_come_from_env_vars_and_cli(monkeypatch):
    from localpod.cli import parse_secrets
    from localpod.config import Settings

    monkeypatch.setenv("LOCALPOD_SECRET_hf_token", "hf_from_env")
    monkeypatch.setenv("MY_TOKEN_VAR", "hf_from_cli")
    assert Settings.from_env().secret("hf_token") == "hf_from_env"
    assert parse_secrets(["team.hf=MY_TOKEN_VAR"], {"MY_TOKEN_VAR": "v"}) == {"team.hf": "v"}
    for bad, message in (["x"], "NAME=ENVVAR"), (["RUNPOD_x=MY_TOKEN_VAR"], "RUNPOD"), (["a=UNSET_VAR_X"], "not set"):
        with pytest.raises(ValueError, match=message):
            parse_secrets(bad, {})


# -- input bounds -------------------------------------------------------------------------------


def queue_post(localpod: LocalpodServer, endpoint_id: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{localpod.queue_url}/{endpoint_id}/run", json=body, headers={"Authorization": f"Bearer {localpod.api_key}"}
    )


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ({"policy": {"executionTimeout": True}}, "executionTimeout"),
        ({"policy": {"executionTimeout": 1}}, "executionTimeout"),
        ({"policy": {"executionTimeout": 8 * 24 * 3600 * 1000}}, "executionTimeout"),
        ({"policy": {"executionTimeout": 5000.5}}, "executionTimeout"),
        ({"policy": {"ttl": 5}}, "ttl"),
        ({"policy": {"lowPriority": "yes"}}, "lowPriority"),
        ({"policy": {"priority": 1}}, "priority"),
        ({"policy": []}, "policy"),
        ({"webhook": "http://169.254.169.254/latest/meta-data/"}, "link-local"),
        ({"webhook": "http://[fe80::1]/hook"}, "link-local"),
        ({"webhook": "http://[::ffff:169.254.169.254]/hook"}, "link-local"),
        ({"webhook": "http://metadata.google.internal/computeMetadata/v1/"}, "metadata"),
        ({"webhook": "http://0.0.0.0:80/hook"}, "unspecified"),
        ({"webhook": "file:///etc/passwd"}, "http"),
        ({"webhook": "gopher://127.0.0.1/"}, "http"),
        ({"webhook": 5}, "webhook"),
    ],
)
def test_job_requests_are_bounded_and_typed(localpod, plant_endpoint, extra, fragment):
    endpoint = plant_endpoint()
    response = queue_post(localpod, endpoint.id, {"input": {"mock_return": 1}, **extra})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_valid_policy_and_loopback_webhook_are_accepted(localpod, plant_endpoint):
    endpoint = plant_endpoint()
    response = queue_post(
        localpod,
        endpoint.id,
        {
            "input": {"mock_return": 1},
            "webhook": "http://127.0.0.1:9/hook",
            "policy": {"executionTimeout": 5000, "lowPriority": True, "ttl": 60_000},
        },
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({f"V{i}": "x" for i in range(51)}, "at most 50"),
        ({"BIG": "x" * 200_000}, "MAX_ARG_STRLEN"),
    ],
)
def test_env_is_bounded_in_rest_and_graphql(localpod, env, fragment):
    from spec import SpecCheckedClient

    rest = SpecCheckedClient(localpod.rest_url, localpod.api_key)  # the 400 problem bodies match the spec
    for path, body in (
        ("/v2/templates", {"name": "t", "image": "runpod/mock-worker:latest", "env": env}),
        (
            "/v2/serverless",
            {
                "name": "e",
                "type": "QUEUE",
                "image": "runpod/mock-worker:latest",
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
                "env": env,
            },
        ),
    ):
        response = rest.post(path, json=body)
        assert response.status_code == 400, (path, response.text[:300])
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.json()["detail"]
    env_items = ", ".join(f'{{key: "{k}", value: "{v}"}}' for k, v in env.items())
    query = (
        f'mutation {{ saveTemplate(input: {{name: "g", imageName: "img", containerDiskInGb: 5, volumeInGb: 0, '
        f'dockerArgs: "", env: [{env_items}]}}) {{ id }} }}'
    )
    response = httpx.post(
        f"{localpod.rest_url}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {localpod.api_key}"}
    )
    assert fragment in str(response.json().get("errors")), response.text[:300]
    assert not localpod.ctx.store.templates and not localpod.ctx.store.endpoints


def test_vllm_n_is_bounded_like_vllm_and_answers_fast(localpod, plant_endpoint):
    endpoint = plant_endpoint(image=VLLM_IMAGE, env=gated_vllm_env(localpod.hf_token))
    client = httpx.Client(
        base_url=localpod.openai_base(endpoint.id), headers={"Authorization": f"Bearer {localpod.api_key}"}, timeout=60
    )
    warm_start = time.monotonic()
    assert (
        client.post(
            "/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        ).status_code
        == 200
    )  # warm
    one_token_s = time.monotonic() - warm_start  # this machine's noise, measured now (it includes the cold start)
    start = time.monotonic()
    response = client.post("/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "n": 200_000})
    # refused before any sequence is generated: no slower than the one-token request that woke the worker
    assert time.monotonic() - start < max(one_token_s, 1.0) * 2
    assert response.status_code == 400
    assert "n must be at most 16384, got 200000." in response.json()["error"]["message"]


def test_state_lock_refuses_a_second_holder(tmp_path):
    from localpod import statelock

    state = tmp_path / "state.json"
    held = statelock.acquire(state, "http://127.0.0.1:1111")
    try:
        with pytest.raises(statelock.StateInUse, match=re.escape("http://127.0.0.1:1111")) as info:
            statelock.acquire(state, "http://127.0.0.1:2222", wait_s=0.1)
        assert info.value.holder["url"] == "http://127.0.0.1:1111"
    finally:
        held.close()
    statelock.acquire(state, "http://127.0.0.1:2222", wait_s=0.1).close()


def test_guard_reads_host_names_with_ports_and_ipv6():
    from localpod.config import Settings

    settings = Settings(port=8765, allowed_hosts=["box.lan"])
    assert all(settings.host_allowed(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "box.lan", "BOX.LAN"))
    assert not any(settings.host_allowed(h) for h in ("evil.example", "127.0.0.1.evil.example", "0.0.0.0"))


def test_many_choices_leave_the_event_loop_turns():
    """A chat with a large ``n`` must not hold localpod's one event loop until it is done."""
    import asyncio

    from localpod.profiles import FAST
    from localpod.serverless.backends.base import JobContext
    from localpod.serverless.backends.vllm_worker import EmulatedVllmServer

    server = EmulatedVllmServer("m", "m", 8192)
    profile = FAST.with_overrides({"inter_token_s": 0, "time_to_first_token_s": 0})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> list[object]:
        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0)
        start = ticks
        body = {"messages": [{"role": "user", "content": "hi"}], "n": 256, "max_tokens": 2}
        items = [item async for item in server.handle("POST", "/v1/chat/completions", body, JobContext("j", profile))]
        task.cancel()
        assert ticks - start >= 256 // 32 - 1
        return items

    items = asyncio.run(main())
    assert len(items[0]["choices"]) == 256  # type: ignore[index]


def test_redaction_reads_names_and_token_shapes():
    from localpod.services.control import REDACTED, redact_env

    env = {
        "HF_TOKEN": "x",
        "HUGGING_FACE_HUB_TOKEN": "x",
        "OPENAI_API_KEY": "x",
        "DB_PASSWORD": "x",
        "MAX_NUM_BATCHED_TOKENS": "8192",
        "KEY_PREFIX": "a",
        "ODD_NAME": "hf_abcdefghijklmnopqrstuvwxyz",
        "KNOWN": "shh-known-value",
        "REF": "{{ RUNPOD_SECRET_hf_token }}",
        "EMPTY_TOKEN": "",
    }
    assert redact_env(env, {"shh-known-value"}) == {
        "HF_TOKEN": REDACTED,
        "HUGGING_FACE_HUB_TOKEN": REDACTED,
        "OPENAI_API_KEY": REDACTED,
        "DB_PASSWORD": REDACTED,
        "MAX_NUM_BATCHED_TOKENS": "8192",
        "KEY_PREFIX": "a",
        "ODD_NAME": REDACTED,
        "KNOWN": REDACTED,
        "REF": "{{ RUNPOD_SECRET_hf_token }}",
        "EMPTY_TOKEN": "",
    }
