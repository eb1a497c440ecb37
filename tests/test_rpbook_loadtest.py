"""rpbook.endpoint.loadtest against localpod: metrics against injected timings, load shapes, errors, outputs.

TTFT and inter-token time are injected through localpod's profile (``/_localpod/config``
overrides of ``time_to_first_token_s`` and ``inter_token_s``, which the emulated vLLM server reads
live: serverless/backends/textmodel.py ``paced``), into a localpod running in a process of its own.
How close the measured p50 TTFT and ITL come to the injected values is a figure of the machine, so it
lives in ``benchmarks/loadtest_capacity.py`` (at 8, 64 and 200 streams, beside a minimal reference
client and GuideLLM). The tests check what holds however busy the machine is: localpod sleeps the
injected times before each token, so every TTFT and E2EL has a floor, and the metrics relate to one
another exactly as their definitions say.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from rpbook.account.wakeup import wake
from rpbook.core.errors import ConfigError
from rpbook.endpoint.loadtest import run_load_test
from rpbook.endpoint.loadtest_plot import plot
from rpbook.endpoint.loadtest_result import SLO, LoadShape

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
TTFT_S = 0.3
ITL_S = 0.06


@pytest.fixture
def key(settings):  # type: ignore[no-untyped-def]
    return settings.runpod_api_key()


@pytest.fixture
def endpoint(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    return plant_endpoint(
        image=VLLM_IMAGE,
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token, "MAX_CONCURRENCY": "64"},
        idle_timeout=30,
        gpu_pools=["ADA_24"],
        workers_max=1,
    )


@pytest.fixture(scope="module")
def own_localpod(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A localpod in a process of its own with a warm vLLM endpoint: timing figures measured against
    the in-process test server would include the GIL the client shares with it."""
    import httpx

    from conftest import localpod_process
    from rpbook.core.settings import load_settings

    key, token = "rpa_LOADTEST_KEY_NOT_REAL", "hf_loadtest_token_not_real"
    with localpod_process({"LOCALPOD_API_KEY": key, "LOCALPOD_HF_TOKEN": token}) as base:
        auth = {"Authorization": f"Bearer {key}"}
        httpx.patch(
            f"{base}/_localpod/config", headers=auth, json={"rate_limits": False}, timeout=10
        ).raise_for_status()
        rest = httpx.Client(base_url=f"{base}/api.runpod.io", headers=auth, timeout=30)
        template = rest.post(
            "/v2/templates",
            json={
                "name": "lt",
                "image": VLLM_IMAGE,
                "serverless": True,
                "env": {"MODEL_NAME": MISTRAL, "HUGGING_FACE_HUB_TOKEN": token, "MAX_CONCURRENCY": "64"},
            },
        )
        template.raise_for_status()
        endpoint = rest.post(
            "/v2/serverless",
            json={
                "name": "lt",
                "type": "QUEUE",
                "templateId": template.json()["id"],
                "gpu": {"pools": ["ADA_24"], "allowedCudaVersions": ["13.0"]},
                "workers": {"min": 1, "max": 1, "idleTimeout": 600},
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            },
        )
        endpoint.raise_for_status()
        settings = load_settings("local", env_file=tmp_path_factory.mktemp("lt") / ".env", localpod_url=base)
        yield settings, key, str(endpoint.json()["id"]), base


def test_metrics_follow_their_definitions_and_the_injected_floors(own_localpod, tmp_path):  # type: ignore[no-untyped-def]
    import httpx

    settings, key, endpoint_id, base = own_localpod
    httpx.patch(
        f"{base}/_localpod/config",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
        json={"overrides": {"time_to_first_token_s": TTFT_S, "inter_token_s": ITL_S}},
    ).raise_for_status()
    wake(settings, key, endpoint_id, poll_s=0.02, progress=False)
    result = run_load_test(
        settings,
        key,
        endpoint_id,
        MISTRAL,
        route="chat",
        max_tokens=12,
        progress=False,
        shape=LoadShape("closed", concurrency=4, num_requests=24, warmup_requests=4),
        out_dir=tmp_path,
        health_interval_s=0.2,
    )
    s = result.summary()
    assert s["completed"] == 24 and not s["errors"] and s["requests"] == 24
    for r in result.measured:
        # the server sleeps TTFT_S before the first token and ITL_S before each next one
        assert r.ttft_s >= TTFT_S and r.e2el_s >= TTFT_S + 11 * ITL_S
        # each of the 12 tokens is one chunk: 11 gaps, and the last token arrives before [DONE]
        assert r.output_tokens == 12 and len(r.itl_s) == 11
        assert r.ttft_s + sum(r.itl_s) <= r.e2el_s + 1e-9
        assert r.tpot_s == pytest.approx((r.e2el_s - r.ttft_s) / 11)
    assert s["p50_ttft_ms"] == pytest.approx(float(np.median([r.ttft_s * 1000 for r in result.measured])))
    assert s["p50_itl_ms"] == pytest.approx(float(np.median([x * 1000 for r in result.measured for x in r.itl_s])))
    assert s["transport_overhead_ms"] > 0
    assert s["cold_starts_seen"] == 0 and s["max_concurrency_seen"] == 4
    saved = json.loads((tmp_path / "loadtest.json").read_text())
    assert saved["shape"]["concurrency"] == 4 and saved["versions"]["image"] == VLLM_IMAGE
    assert len(saved["requests"]) == 28 and sum(r["warmup"] for r in saved["requests"]) == 4
    assert (tmp_path / "loadtest.csv").read_text().count("\n") == 29
    chart = plot(result, pings_s=[0.5])
    assert len(chart.figure.axes) == 3 and chart._repr_png_().startswith(b"\x89PNG")


def test_closed_loop_lanes_start_staggered_not_in_lock_step(own_localpod):  # type: ignore[no-untyped-def]
    """Lanes started together against a server that paces every stream alike would stay in lock-step
    (all tokens of all streams in the same millisecond); each lane starts at its own offset within
    ``stagger_s`` instead, and every request's connection was opened before it was timed."""
    settings, key, endpoint_id, _ = own_localpod
    result = run_load_test(
        settings,
        key,
        endpoint_id,
        MISTRAL,
        route="chat",
        max_tokens=2,
        progress=False,
        shape=LoadShape("closed", concurrency=8, num_requests=8, stagger_s=0.4),
    )
    sends = sorted(r.sent_s for r in result.measured)
    # the offsets are seeded (the same run, the same starts) and slept, so their spread is a floor
    assert sends[-1] - sends[0] >= 0.1
    with pytest.raises(ConfigError, match="stagger_s"):
        LoadShape("closed", stagger_s=-1)


def test_queue_route_reads_delay_and_execution_times_and_sees_the_cold_start(
    localpod,
    settings,
    key,  # type: ignore[no-untyped-def]
    endpoint,
):
    result = run_load_test(
        settings,
        key,
        endpoint.id,
        MISTRAL,
        route="queue",
        max_tokens=4,
        progress=False,
        shape=LoadShape("closed", concurrency=2, num_requests=4),
        poll_s=0.02,
        health_interval_s=0.05,
    )
    s = result.summary()
    assert s["completed"] == 4
    assert s["cold_starts_seen"] >= 1 and result.measured[0].cold
    assert all(r.queue_delay_s is not None and r.execution_s is not None for r in result.measured)
    assert max(r.queue_delay_s for r in result.measured) > 0.05  # the first job waited for the cold start
    assert "p50_queue_delay_ms" in s and all(r.output_tokens == 4 for r in result.measured)


def test_errors_are_counted_by_kind_and_goodput_uses_the_slos(localpod, settings, key, endpoint):  # type: ignore[no-untyped-def]
    wake(settings, key, endpoint.id, poll_s=0.02, progress=False)
    bad = run_load_test(
        settings,
        key,
        endpoint.id,
        "no-such-model",
        route="completions",
        max_tokens=4,
        progress=False,
        shape=LoadShape("closed", concurrency=2, num_requests=4),
    )
    assert bad.summary()["errors"] == {"4xx": 4} and bad.summary()["completed"] == 0
    good = run_load_test(
        settings,
        key,
        endpoint.id,
        MISTRAL,
        route="completions",
        max_tokens=4,
        progress=False,
        shape=LoadShape("open", rate=50, num_requests=10),
        slo=SLO(ttft_ms=0.001),
    )
    s = good.summary()
    assert s["completed"] == 10 and s["goodput_per_s"] == 0.0 and s["request_throughput_per_s"] > 0


def test_open_loop_arrivals_follow_the_shape() -> None:
    rng = random.Random(1)
    poisson = LoadShape("open", rate=10, num_requests=4000)
    gaps = [poisson.interval_s(i, rng) for i in range(4000)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.1, rel=0.05)
    bursty = LoadShape("open", rate=10, burstiness=0.25)
    bursty_gaps = [bursty.interval_s(i, rng) for i in range(4000)]
    assert sum(bursty_gaps) / 4000 == pytest.approx(0.1, rel=0.1)
    var = lambda xs: sum((x - 0.1) ** 2 for x in xs) / len(xs)  # noqa: E731
    assert var(bursty_gaps) > 2 * var(gaps)
    assert LoadShape("open", rate=4, distribution="fixed").interval_s(3, rng) == 0.25
    ramp = LoadShape("ramp", rate=10, ramp_start_rate=1, num_requests=11, distribution="fixed")
    assert ramp.interval_s(0, rng) == 1.0 and ramp.interval_s(10, rng) == pytest.approx(0.1)


def test_bad_shapes_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="load shape"):
        LoadShape("zigzag")
    with pytest.raises(ConfigError, match="rate"):
        LoadShape("open", rate=0)
    with pytest.raises(ConfigError, match="burstiness"):
        LoadShape("open", burstiness=0)
