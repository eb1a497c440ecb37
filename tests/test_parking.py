"""Idle parking in localpod (issue 13).

Rule emulated, from Runpod's docs page serverless/endpoints/endpoint-configurations ("Idle endpoint
scale-down", added in runpod/docs PR #674, summarised in /work/shared/reference/runpod-api.md):
an endpoint that receives no requests for 3 days has max workers lowered to 2, after 7 days max
workers is set to 0, and it stays there until someone raises it. Tests scale the two steps to
seconds through the ``parking_step1_s`` / ``parking_step2_s`` profile overrides.
"""

from __future__ import annotations

import time

import httpx

from conftest import LocalpodServer, call_in_server, wait_for
from spec import SpecCheckedClient, load_spec


def _park(localpod: LocalpodServer, endpoint_id: str, idle_s: float) -> tuple[int, int, int]:
    """Run one parking check as if ``idle_s`` seconds had passed since the last request."""

    def check() -> tuple[int, int, int]:
        runtime = localpod.ctx.platform.runtime(endpoint_id)
        endpoint = runtime.endpoint
        step = runtime.park_if_idle(endpoint, now=endpoint.last_request_at + idle_s)
        return step, endpoint.workers_max, endpoint.workers_min

    return call_in_server(localpod, check)


def test_defaults_are_three_and_seven_days(localpod):
    profile = localpod.ctx.settings.profile
    assert profile.parking_step1_s == 3 * 86400
    assert profile.parking_step2_s == 7 * 86400


def test_steps_follow_the_idle_time_with_default_days(localpod, plant_endpoint):
    endpoint = plant_endpoint(workers_max=5)
    day = 86400.0
    assert _park(localpod, endpoint.id, 2.9 * day) == (0, 5, 0)
    assert _park(localpod, endpoint.id, 3.0 * day) == (1, 2, 0)
    assert _park(localpod, endpoint.id, 6.9 * day) == (1, 2, 0)
    assert _park(localpod, endpoint.id, 7.0 * day) == (2, 0, 0)


def test_step_one_never_raises_a_smaller_max_and_min_follows_max_down(localpod, plant_endpoint):
    small = plant_endpoint(workers_max=1)
    assert _park(localpod, small.id, 3 * 86400) == (1, 1, 0)
    active = plant_endpoint(workers_min=3, workers_max=4)
    assert _park(localpod, active.id, 3 * 86400) == (1, 2, 2)
    assert _park(localpod, active.id, 7 * 86400) == (2, 0, 0)


def test_parking_is_persisted_with_the_endpoint(localpod, plant_endpoint):
    endpoint = plant_endpoint(workers_max=3)
    _park(localpod, endpoint.id, 7 * 86400)
    saved = localpod.ctx.store.to_dict()["endpoints"]
    row = next(e for e in saved if e["id"] == endpoint.id)
    assert row["workers_max"] == 0 and row["parked_step"] == 2
    assert isinstance(row["last_request_at"], float)


def test_scheduler_parks_then_a_raise_holds_and_a_request_restarts_the_clock(localpod, plant_endpoint):
    """End to end with scaled time: the scaler tick parks, REST v2 shows it (spec-validated), a
    PATCH raising max workers is not undone, and a job resets the idle clock."""
    load_spec()
    endpoint = plant_endpoint(workers_max=3, last_request_at=time.time())
    localpod.control("PATCH", "config", json={"overrides": {"parking_step1_s": 0.4, "parking_step2_s": 1.2}})
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as api:

        def workers_max() -> int:
            response = api.get(f"/v2/serverless/{endpoint.id}")
            assert response.status_code == 200, response.text
            return int(response.json()["workers"]["max"])

        wait_for(lambda: workers_max() == 2, timeout=5)
        wait_for(lambda: workers_max() == 0, timeout=5)
        response = api.patch(f"/v2/serverless/{endpoint.id}", json={"workers": {"max": 3}})
        assert response.status_code == 200, response.text
        time.sleep(0.3)  # several scaler ticks
        assert workers_max() == 3, "a raise after parking must hold until the next idle spell"

    before = call_in_server(localpod, lambda: localpod.ctx.store.endpoints[endpoint.id].last_request_at)
    queued = httpx.post(
        f"{localpod.queue_url}/{endpoint.id}/run",
        json={"input": {"mock_return": 1}},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert queued.status_code == 200, queued.text
    after = call_in_server(
        localpod,
        lambda: (
            localpod.ctx.store.endpoints[endpoint.id].last_request_at,
            localpod.ctx.store.endpoints[endpoint.id].parked_step,
        ),
    )
    assert after[0] > before and after[1] == 0


def test_overrides_must_keep_step_two_after_step_one(localpod):
    response = httpx.patch(
        f"{localpod.base_url}/_localpod/config",
        json={"overrides": {"parking_step1_s": 5, "parking_step2_s": 2}},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    assert response.status_code == 400
    assert "parking_step2_s" in response.text
    assert localpod.ctx.settings.profile.parking_step1_s == 3 * 86400
