"""Keep-alive scoped to a conversation, against localpod with a 1 s idle timeout and 1.5 s pauses.

Runpod stops a worker ``idleTimeout`` seconds after its last job (runpod/docs
endpoint-configurations.mdx); localpod's scaler does the same (serverless/platform.py ``tick``), and
its REST v2 ``PATCH`` of ``workers.min`` takes effect on the running platform without a new release.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from localpod import catalog
from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import health
from rpbook.account.wakeup import wake
from rpbook.core.errors import ConfigError
from rpbook.endpoint import keepalive as K
from rpbook.endpoint import pins
from rpbook.endpoint.conversation import run_conversation

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
IDLE_S = 1
PAUSE_S = 1.5
PROMPTS = ("hello", "and then?", "one more")


@pytest.fixture
def key(settings):  # type: ignore[no-untyped-def]
    return settings.runpod_api_key()


@pytest.fixture
def endpoint(localpod, plant_endpoint, settings, key):  # type: ignore[no-untyped-def]
    ep = plant_endpoint(
        image=VLLM_IMAGE,
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token},
        idle_timeout=IDLE_S,
        gpu_pools=["ADA_24"],
        workers_max=2,
    )
    wake(settings, key, ep.id, poll_s=0.02, progress=False)
    return ep


def workers_min(settings, key, endpoint_id):  # type: ignore[no-untyped-def]
    with RunpodClient(settings, key) as client:
        return client.get_endpoint(endpoint_id).workers_min


def seconds_until_no_worker(settings, key, endpoint_id, limit_s=10.0):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if health(settings, key, endpoint_id).workers_total == 0:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("workers did not return to zero")


def slack_s(localpod) -> float:  # type: ignore[no-untyped-def]
    """One idle timeout plus one scaler tick, plus what polling /health over HTTP adds on a loaded
    two-core machine (0.5 s)."""
    return IDLE_S + localpod.ctx.settings.profile.scaler_tick_s + 0.5


def test_without_keepalive_every_turn_after_a_pause_is_cold(settings, key, endpoint):  # type: ignore[no-untyped-def]
    report = run_conversation(
        settings, key, endpoint.id, MISTRAL, strategy="off", pause_s=PAUSE_S, prompts=PROMPTS, max_tokens=4
    )
    assert [t.cold for t in report.turns] == [False, True, True]
    assert report.keepalive is None and report.usd == 0.0


@pytest.mark.parametrize("strategy", ["ping", "pin"])
def test_with_keepalive_every_turn_is_warm_and_workers_return_to_zero_after(  # type: ignore[no-untyped-def]
    localpod, settings, key, endpoint, strategy
):
    report = run_conversation(
        settings, key, endpoint.id, MISTRAL, strategy=strategy, pause_s=PAUSE_S, prompts=PROMPTS, max_tokens=4
    )
    assert [t.cold for t in report.turns] == [False, False, False]
    assert report.keepalive is not None and report.keepalive.stop_reason == "conversation closed"
    assert workers_min(settings, key, endpoint.id) == 0
    assert not list(pins.lease_dir(settings).glob("*.json"))
    if strategy == "ping":
        # one ping per pause: never more often than needed (pause 1.5 s, interval 0.75 s)
        assert 2 <= len(report.keepalive.pings) <= 4 and all(p.ok and p.job_id for p in report.keepalive.pings)
    else:
        assert report.keepalive.pings == [] and report.keepalive.pinned_s >= 2 * PAUSE_S
    assert report.usd > 0
    assert seconds_until_no_worker(settings, key, endpoint.id) <= slack_s(localpod)


def test_cost_estimate_comes_from_the_catalog(settings, key, endpoint):  # type: ignore[no-untyped-def]
    price_per_s = catalog.pool_price_per_gpu_s("ADA_24")
    ping = K.KeepAlive(settings, key, endpoint.id, strategy="ping", max_session_s=30)
    assert ping.usd_per_ping == pytest.approx(price_per_s * IDLE_S)
    assert ping.estimate.max_pings == int(30 / ping.ping_interval_s)
    assert ping.estimate.worst_case_usd == pytest.approx(ping.estimate.max_pings * price_per_s * IDLE_S)
    pin = K.KeepAlive(settings, key, endpoint.id, strategy="pin", max_session_s=30, cost_cap_usd=0.001)
    assert pin.estimate.worst_case_usd == pytest.approx(min(30 * price_per_s, 0.001))
    assert "pin" in str(pin.estimate)


def test_keepalive_stops_by_itself_after_conversation_idle(settings, key, endpoint):  # type: ignore[no-untyped-def]
    ka = K.KeepAlive(settings, key, endpoint.id, strategy="pin", conversation_idle_s=0.4)
    with ka:
        assert workers_min(settings, key, endpoint.id) == 1
        time.sleep(0.8)
        assert not ka.active
        assert workers_min(settings, key, endpoint.id) == 0
    assert "conversation_idle_s" in ka.report.stop_reason


def test_cost_cap_stops_pings(settings, key, endpoint):  # type: ignore[no-untyped-def]
    ka = K.KeepAlive(settings, key, endpoint.id, strategy="ping", conversation_idle_s=60)
    ka.cost_cap_usd = (ka.usd_per_ping or 0) * 1.5  # room for one ping
    with ka:
        time.sleep(2.0)
    assert len(ka.report.pings) == 1 and "cost cap" in ka.report.stop_reason


def test_a_pin_is_restored_on_an_exception(settings, key, endpoint):  # type: ignore[no-untyped-def]

    def fail_while_pinned() -> None:
        with K.KeepAlive(settings, key, endpoint.id, strategy="pin"):
            assert workers_min(settings, key, endpoint.id) == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_while_pinned()
    assert workers_min(settings, key, endpoint.id) == 0


def test_a_second_pin_on_the_same_endpoint_is_refused(settings, key, endpoint):  # type: ignore[no-untyped-def]
    with K.KeepAlive(settings, key, endpoint.id, strategy="pin"), pytest.raises(Exception, match="already pinned"):
        K.KeepAlive(settings, key, endpoint.id, strategy="pin").start()
    assert workers_min(settings, key, endpoint.id) == 0


def test_bad_parameters_say_what_to_fix(settings, key, endpoint):  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="strategy"):
        K.KeepAlive(settings, key, endpoint.id, strategy="warm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="margin_s"):
        K.KeepAlive(settings, key, endpoint.id, margin_s=5)


def _holder_script(settings, endpoint_id: str) -> str:  # type: ignore[no-untyped-def]
    return textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rpbook.core.settings import load_settings
        from rpbook.endpoint.keepalive import KeepAlive
        settings = load_settings("local", env_file=Path({str(settings.env_file)!r}),
                                 localpod_url={settings.localpod_url!r})
        ka = KeepAlive(settings, settings.runpod_api_key(), {endpoint_id!r}, strategy="pin", max_session_s=600)
        ka.start()
        print("pinned", flush=True)
        time.sleep(600)
    """)


def _start_holder(settings, endpoint_id):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _holder_script(settings, endpoint_id)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "pinned", proc.stderr.read() if proc.stderr else ""
    return proc


def test_kill_9_of_a_pin_holder_is_restored_by_the_next_rpbook_call(
    localpod,
    settings,
    key,
    endpoint,  # type: ignore[no-untyped-def]
    monkeypatch,
):
    monkeypatch.setenv("LOCALPOD_URL", localpod.base_url)
    proc = _start_holder(settings, endpoint.id)
    assert workers_min(settings, key, endpoint.id) == 1
    # a live holder's pin is left alone
    assert pins.recover_stale_pins(settings, key) == []
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert workers_min(settings, key, endpoint.id) == 1  # nothing ran on the way out
    from rpbook.runbook import session

    session.start("local", str(settings.env_file))  # the next runbook's first call
    assert workers_min(settings, key, endpoint.id) == 0
    assert not list(pins.lease_dir(settings).glob("*.json"))


def test_sigterm_of_a_pin_holder_restores_on_its_way_out(settings, key, endpoint):  # type: ignore[no-untyped-def]
    proc = _start_holder(settings, endpoint.id)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert workers_min(settings, key, endpoint.id) == 0
    assert not list(pins.lease_dir(settings).glob("*.json"))


def test_an_expired_lease_is_stale_even_when_the_pid_lives() -> None:
    lease = pins.Lease("ep", "http://x", 0, 1, os.getpid(), __import__("socket").gethostname(), 0.0, time.time() - 1)
    assert lease.stale()
    alive = pins.Lease("ep", "http://x", 0, 1, os.getpid(), __import__("socket").gethostname(), 0.0, time.time() + 60)
    assert not alive.stale()


def test_wrapped_openai_client_counts_turns_and_langchain_callbacks_too(settings, key, endpoint):  # type: ignore[no-untyped-def]
    from rpbook.endpoint.chat import langchain_chat, openai_client

    ka = K.KeepAlive(settings, key, endpoint.id, strategy="ping", conversation_idle_s=60)
    with ka:
        before = ka._last_turn
        client = ka.wrap(openai_client(settings, key, endpoint.id))
        client.chat.completions.create(model=MISTRAL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert ka._last_turn > before and ka._in_flight == 0
        llm = langchain_chat(settings, key, endpoint.id, MISTRAL).with_config(callbacks=ka.langchain_callbacks())
        mark = ka._last_turn
        llm.invoke("hi")
        assert ka._last_turn > mark and ka._in_flight == 0


def test_scaled_idle_timeout_plays_two_minute_pauses_in_seconds(localpod, plant_endpoint, settings, key):  # type: ignore[no-untyped-def]
    """localpod's ``idle_timeout_scale`` (a profile override) shortens every idle timeout; the
    conversation and its keep-alive scale their pauses and ping times by the same factor."""
    from rpbook.core.localpod_control import set_profile_overrides

    ep = plant_endpoint(
        image=VLLM_IMAGE,
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token},
        idle_timeout=120,
        gpu_pools=["ADA_24"],
        workers_max=2,
    )
    previous = set_profile_overrides(settings, key, {"idle_timeout_scale": 0.01})
    assert previous == {"idle_timeout_scale": 1.0}
    wake(settings, key, ep.id, poll_s=0.02, progress=False)
    off = run_conversation(
        settings, key, ep.id, MISTRAL, strategy="off", pause_s=150, prompts=PROMPTS[:2], max_tokens=4, time_scale=0.01
    )
    assert [t.cold for t in off.turns] == [False, True]
    ping = run_conversation(
        settings, key, ep.id, MISTRAL, strategy="ping", pause_s=150, prompts=PROMPTS[:2], max_tokens=4, time_scale=0.01
    )
    assert [t.cold for t in ping.turns] == [False, False] and len(ping.keepalive.pings) >= 1
    set_profile_overrides(settings, key, previous)


def test_profile_overrides_are_local_only(tmp_path, key):  # type: ignore[no-untyped-def]
    from rpbook.core.localpod_control import set_profile_overrides
    from rpbook.core.settings import load_settings

    with pytest.raises(ConfigError, match="localpod"):
        set_profile_overrides(load_settings("runpod", env_file=tmp_path / ".env"), key, {"idle_timeout_scale": 0.1})


def test_async_context_manager_and_async_openai_client(settings, key, endpoint):  # type: ignore[no-untyped-def]
    import asyncio

    import openai

    async def converse() -> K.KeepAlive:
        ka = K.KeepAlive(
            settings, key, endpoint.id, strategy="ping", conversation_idle_s=60, install_signal_handlers=False
        )
        async with ka:
            client = ka.wrap(
                openai.AsyncOpenAI(base_url=settings.openai_base_url(endpoint.id), api_key=key.reveal(), max_retries=0)
            )
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model=MISTRAL, max_tokens=3, stream=True, messages=[{"role": "user", "content": "hi"}]
                )
                assert ka._in_flight == 1  # the turn lasts as long as its stream
                async for _chunk in stream:
                    pass
                assert ka._in_flight == 0
                await asyncio.sleep(PAUSE_S)
            assert health(settings, key, endpoint.id).has_ready_worker
        return ka

    ka = asyncio.run(converse())
    assert ka.report.stop_reason == "conversation closed" and len(ka.report.pings) >= 1


def test_ping_inputs_are_the_smallest_jobs_each_worker_accepts(localpod, plant_endpoint, settings, key):  # type: ignore[no-untyped-def]
    """worker-vllm: one token; worker-infinity-embedding (src/handler.py: ``input`` + ``model``): one word."""
    from rpbook.account.jobqueue import run_job

    assert K.ping_input(VLLM_IMAGE, MISTRAL) == {"prompt": "ping", "sampling_params": {"max_tokens": 1}}
    image = "runpod/worker-infinity-embedding:1.1.4"
    model = "BAAI/bge-small-en-v1.5"
    ep = plant_endpoint(image=image, env={"MODEL_NAMES": model}, gpu_pools=["AMPERE_16"])
    result = run_job(settings, key, ep.id, K.ping_input(image, model), timeout_s=60, poll_s=0.05)
    assert result.status == "COMPLETED"
