"""Worker states and what bills, as today's Runpod docs describe them (issue 17 item 3).

Sources: runpod/docs ``serverless/workers/overview.mdx`` "Worker states" (Unhealthy: "Crashed;
auto-retries for up to 7 days", billing "No"; Throttled: "No"; Running: "Yes"), its note that an
endpoint that repeatedly produces unhealthy workers is scaled down automatically, and
``serverless/troubleshooting.mdx`` "My endpoint was scaled down unexpectedly" (max workers dropped;
fix the cause, then raise max workers). ``serverless/pricing.mdx`` bills "from when a worker starts
until it fully stops": where it disagrees with the state table (a crash loop), localpod follows the
table. The scale-down threshold is not documented: ``Profile.unhealthy_scale_down_s`` is localpod's
assumption (10 minutes), shortened here through ``/_localpod/config``. Worker listings are checked
against the REST v2 spec (``WorkerStatus``, ``ListEndpointWorkersResponse``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import TEST_PROFILE, LocalpodServer, call_in_server, wait_for
from localpod.resources import billing
from spec import SpecCheckedClient, load_spec

MISSING_SECRET_ENV = {"GREETING": "{{ RUNPOD_SECRET_nope }}"}


@pytest.fixture
def api(localpod: LocalpodServer) -> Iterator[SpecCheckedClient]:
    load_spec()
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as client:
        yield client
    assert client.checked, "no response was validated"


def timings(localpod: LocalpodServer, **overrides: float) -> None:
    localpod.control("PATCH", "config", json={"profile": "fast", "overrides": TEST_PROFILE | overrides})


def live_workers(localpod: LocalpodServer, endpoint_id: str) -> list[dict[str, Any]]:
    return localpod.control("GET", "state").json()["live"].get(endpoint_id, {"workers": []})["workers"]


def sessions_of(localpod: LocalpodServer, endpoint_id: str) -> list[Any]:
    return [s for s in localpod.ctx.store.sessions if s.endpoint_id == endpoint_id]


def retried(localpod: LocalpodServer, endpoint_id: str, times: int) -> dict[str, Any] | None:
    found = live_workers(localpod, endpoint_id)
    if not found:
        return None
    statuses = [s for _, s in found[0]["events"]]
    return found[0] if statuses.count("UNHEALTHY") >= times else None


def test_an_unhealthy_worker_retries_unbilled_and_lists_as_the_spec_says(localpod, plant_endpoint, api):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(env=MISSING_SECRET_ENV, workers_min=1, workers_max=1)
    worker = wait_for(lambda: retried(localpod, endpoint.id, 3))

    statuses = [s for _, s in worker["events"]]
    assert statuses[:3] == ["THROTTLED", "INITIALIZING", "UNHEALTHY"]
    assert set(statuses[3:]) == {"UNHEALTHY"}  # the retries are part of the Unhealthy state
    assert worker["billing"] is False and "{{ RUNPOD_SECRET_nope }}" in worker["unhealthyReason"]
    [session] = sessions_of(localpod, endpoint.id)  # the first container start only
    assert session.stopped_at is not None and billing.billed_seconds(session, time.time()) <= 1

    body = api.get(f"/v2/serverless/{endpoint.id}/workers").json()  # validated against the spec
    assert [w["status"] for w in body["workers"]] == ["UNHEALTHY"] and body["summary"]["unhealthy"] == 1
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    query = {"query": "{ myself { currentSpendPerHr } }"}
    me = httpx.post(f"{localpod.rest_url}/graphql", json=query, headers=headers).json()["data"]["myself"]
    assert me["currentSpendPerHr"] == 0  # nothing of this endpoint bills while it crash-loops


def test_runpod_stops_retrying_an_unhealthy_worker_after_its_retry_window(localpod, plant_endpoint):  # type: ignore[no-untyped-def]
    timings(localpod, unhealthy_retry_s=0.3)
    endpoint = plant_endpoint(env=MISSING_SECRET_ENV, workers_min=0, workers_max=1)
    httpx.post(
        f"{localpod.queue_url}/{endpoint.id}/run",
        json={"input": {}},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    ).raise_for_status()
    first = wait_for(lambda: live_workers(localpod, endpoint.id))[0]["id"]
    wait_for(lambda: first not in {w["id"] for w in live_workers(localpod, endpoint.id)})
    assert all(s.stopped_at is not None for s in sessions_of(localpod, endpoint.id) if s.worker_id == first)


def test_an_endpoint_that_keeps_producing_unhealthy_workers_is_scaled_down(localpod, plant_endpoint, api):  # type: ignore[no-untyped-def]
    timings(localpod, unhealthy_scale_down_s=0.4)
    endpoint = plant_endpoint(env=MISSING_SECRET_ENV, workers_min=1, workers_max=3)

    def scaled_down() -> dict[str, Any] | None:
        body = api.get(f"/v2/serverless/{endpoint.id}").json()
        return body if body["workers"]["max"] == 0 else None

    body = wait_for(scaled_down)
    assert body["workers"]["min"] == 0
    assert localpod.ctx.store.endpoints[endpoint.id].unhealthy_scale_down_at is not None
    wait_for(lambda: not live_workers(localpod, endpoint.id))  # its unhealthy workers are stopped
    assert all(s.stopped_at is not None for s in sessions_of(localpod, endpoint.id))
    workers = api.get(f"/v2/serverless/{endpoint.id}/workers").json()
    assert workers["workers"] == [] and workers["summary"]["total"] == 0

    # Raising max workers without fixing the cause: the crash loop starts again, and so does the
    # scale-down ("fix the underlying problem first, or the endpoint may be scaled down again").
    api.patch(f"/v2/serverless/{endpoint.id}", json={"workers": {"min": 1, "max": 3}}).raise_for_status()
    wait_for(lambda: any(w["status"] == "UNHEALTHY" for w in live_workers(localpod, endpoint.id)))
    wait_for(scaled_down)


def test_a_healthy_idle_endpoint_is_never_scaled_down(localpod, plant_endpoint, api):  # type: ignore[no-untyped-def]
    endpoint = plant_endpoint(workers_min=1, workers_max=2)
    wait_for(lambda: any(w["status"] == "IDLE" for w in live_workers(localpod, endpoint.id)))
    [worker] = live_workers(localpod, endpoint.id)
    assert worker["billing"] is True  # a ready worker bills (pricing.mdx: the idle timeout is billed)
    runtime = localpod.ctx.platform.runtime(endpoint.id)
    a_day_later = time.monotonic() + 86400
    assert not call_in_server(localpod, runtime.scale_down_if_unhealthy, runtime.endpoint, a_day_later)
    assert api.get(f"/v2/serverless/{endpoint.id}").json()["workers"]["max"] == 2
