"""rpbook.account.rollout against localpod: an env change applied through rpbook's plans is a new release;
the worker busy on the old one finishes its job and is replaced, and follow_rollout times that.

Sources: the REST v2 spec (/work/shared/runpod/openapi-v2.json): ``ListEndpointWorkersResponse``
carries ``endpointVersion``, each ``Worker`` its ``version`` and ``isStale`` ("running an older
endpoint configuration than the current one (e.g. mid rolling-update)"); localpod models stale
workers finishing their jobs and recycling (localpod/serverless/platform.py, ``tick``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import wait_for
from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import sdk_endpoint
from rpbook.account.plans import ensure_endpoint, ensure_template
from rpbook.account.rollout import RolloutReport, after_apply, follow_rollout
from rpbook.account.specs import EndpointSpec, TemplateSpec
from rpbook.core.errors import RolloutTimeoutError
from rpbook.core.pending import Skipped
from rpbook.core.settings import Settings

IMAGE = "runpod/mock-worker:latest"


@pytest.fixture
def client(settings: Settings) -> Iterator[RunpodClient]:
    with RunpodClient(settings, settings.runpod_api_key()) as rp:
        yield rp


def tspec(**env: str) -> TemplateSpec:
    return TemplateSpec(name="mock-tpl", image=IMAGE, env={"MOCK_RETURN": "hi", **env})


def espec(**overrides: Any) -> EndpointSpec:
    return EndpointSpec(
        **(
            {
                "name": "mock-ep",
                "template_name": "mock-tpl",
                "gpu_pools": ["AMPERE_16"],
                "workers_min": 1,
                "workers_max": 2,
            }
            | overrides
        )
    )


def busy_endpoint(settings: Settings, client: RunpodClient, delay_s: float) -> tuple[str, str]:
    """An endpoint made by rpbook's plans whose one worker is RUNNING a ``delay_s`` job."""
    template = ensure_template(client, tspec(), apply=True)
    assert template.resource is not None
    created = ensure_endpoint(client, espec(), template.resource.id, apply=True)
    assert created.resource is not None
    endpoint_id = created.resource.id
    wait_for(lambda: [w for w in client.endpoint_workers(endpoint_id).workers if w.status == "IDLE"], timeout=20)
    sdk_endpoint(settings, settings.runpod_api_key(), endpoint_id).run({"mock_delay": delay_s})
    worker = wait_for(
        lambda: [w.id for w in client.endpoint_workers(endpoint_id).workers if w.status == "RUNNING"], timeout=20
    )[0]
    return endpoint_id, worker


def apply_env_change(client: RunpodClient) -> Any:
    template = ensure_template(client, tspec(MOCK_RETURN="changed"), apply=True)
    assert template.plan.action == "update"
    result = ensure_endpoint(client, espec(), template.resource.id, apply=True)  # type: ignore[union-attr]
    assert result.plan.action == "update" and "env.MOCK_RETURN" in result.plan.changed_fields
    assert any("rolling update" in n for n in result.plan.notes)
    return result


def test_env_change_rolls_the_busy_worker_and_reports_how_long(settings: Settings, client: RunpodClient) -> None:
    endpoint_id, old = busy_endpoint(settings, client, delay_s=1.5)
    result = apply_env_change(client)
    summary = client.endpoint_workers(endpoint_id)
    assert [w.id for w in summary.workers if w.is_stale] == [old]  # mid rolling update: still on its job

    report = after_apply(settings, client, result, timeout_s=20, poll_s=0.05)
    assert isinstance(report, RolloutReport)
    assert report.replaced == (old,) and report.endpoint_version == summary.endpoint_version
    assert report.duration_s > 0  # it had to finish the rest of its job first: samples[0] below saw it
    assert report.samples[0].old == 1 and report.samples[-1].old == 0
    after = client.endpoint_workers(endpoint_id)
    assert old not in [w.id for w in after.workers]
    assert all(w.version == after.endpoint_version for w in after.workers)
    assert "rolling update done" in str(report) and old in str(report)
    assert report.figures["old_workers_replaced"] == 1
    # Following again: nothing old is left, so it returns at once.
    again = follow_rollout(settings, client, endpoint_id, timeout_s=5, poll_s=0.05)
    assert again.replaced == () and len(again.samples) == 1


def test_timeout_names_the_worker_still_on_the_old_release(settings: Settings, client: RunpodClient) -> None:
    endpoint_id, old = busy_endpoint(settings, client, delay_s=30)
    apply_env_change(client)
    with pytest.raises(RolloutTimeoutError) as caught:
        follow_rollout(settings, client, endpoint_id, timeout_s=0.4, poll_s=0.05)
    message = str(caught.value)
    assert old in message and "RUNNING" in message and "old release" in message and "timeout_s" in message
    assert [w.id for w in caught.value.old] == [old]


def test_after_apply_skips_when_there_is_no_new_release(settings: Settings, client: RunpodClient) -> None:
    template = ensure_template(client, tspec(), apply=True)
    tid = template.resource.id  # type: ignore[union-attr]
    assert isinstance(after_apply(settings, client, ensure_endpoint(client, espec(), tid, apply=False)), Skipped)
    created = after_apply(settings, client, ensure_endpoint(client, espec(), tid, apply=True))
    assert isinstance(created, Skipped) and "just created" in str(created)
    scaled = ensure_endpoint(client, espec(workers_max=3), tid, apply=True)
    assert scaled.plan.changed_fields == ["workers_max"]
    skipped = after_apply(settings, client, scaled)
    assert isinstance(skipped, Skipped) and "no new release" in str(skipped)


def test_a_worker_on_another_version_counts_as_old_even_without_the_flag() -> None:
    from rpbook.account.resources import WorkerSummary
    from rpbook.account.rollout import is_old

    summary = WorkerSummary.from_api(
        {
            "endpointVersion": 4,
            "summary": {},
            "workers": [
                {"id": "a", "status": "IDLE", "gpuCount": 1, "isStale": False, "version": 3},
                {"id": "b", "status": "IDLE", "gpuCount": 1, "isStale": True, "version": None},
                {"id": "c", "status": "IDLE", "gpuCount": 1, "isStale": False, "version": 4},
                {"id": "d", "status": "IDLE", "gpuCount": 1, "isStale": False, "version": None},
            ],
        }
    )
    assert [w.id for w in summary.workers if is_old(w, summary)] == ["a", "b"]
