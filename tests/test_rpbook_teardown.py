"""The ledger and the teardown against localpod: intent rows before the POST, order of deletion,
volumes kept unless asked, drained workers, billing flat afterwards, a second teardown plans nothing.

Runpod rules these tests hold rpbook to: REST v2 ``DELETE /v2/templates/{id}`` is refused (400)
while an endpoint is bound to the template, and ``DELETE /v2/serverless/{id}`` terminates workers
(both in /work/shared/runpod/openapi-v2.json); GraphQL ``deleteEndpoint`` needs workers min = max =
0 first (runpod-api.md, from Runpod's docs ``sdks/graphql/manage-endpoints.mdx``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import sdk_endpoint
from rpbook.account.ledger import Ledger, ledger_path
from rpbook.account.plans import ensure_endpoint, ensure_template, ensure_volume, plan_endpoint, plan_template
from rpbook.account.specs import EndpointSpec, VolumeSpec
from rpbook.account.teardown import Proof, apply_teardown, plan_teardown, prove_nothing_bills
from rpbook.account.workerimages import vllm_template
from rpbook.core.errors import ControlPlaneError, LedgerError, TeardownError
from rpbook.core.settings import Settings

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
NAMES = {"endpoints": ["mistral-7b-vllm"], "templates": ["vllm-mistral-7b"], "volumes": ["llm-weights"]}


class Recording(httpx.BaseTransport):
    """Forwards to the real localpod and notes each request (method, path)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.calls: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path.split("/api.runpod.io", 1)[-1]))
        return self.inner.handle_request(request)


@pytest.fixture
def client(settings: Settings) -> Iterator[RunpodClient]:
    with RunpodClient(settings, settings.runpod_api_key()) as rp:
        yield rp


def build_stack(client: RunpodClient) -> tuple[str, str, str]:
    """Volume, template and endpoint through the plans (so through the ledger); their ids."""
    volume = ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    tspec = vllm_template("vllm-mistral-7b", MODEL, "v2.25.2", "{{ RUNPOD_SECRET_hf_token }}", 8192, 0.9, 8)
    template = ensure_template(client, tspec, apply=True)
    assert volume.resource is not None and template.resource is not None
    espec = EndpointSpec(
        "mistral-7b-vllm",
        "vllm-mistral-7b",
        ["AMPERE_24", "ADA_24"],
        network_volume_name="llm-weights",
        data_center="EU-RO-1",
        idle_timeout_s=60,
    )
    endpoint = ensure_endpoint(client, espec, template.resource.id, volume.resource.id, apply=True)
    assert endpoint.resource is not None
    return volume.resource.id, template.resource.id, endpoint.resource.id


def rows(settings: Settings) -> list[tuple[Any, ...]]:
    with sqlite3.connect(ledger_path(settings)) as conn:
        return conn.execute("SELECT kind, name, resource_id, status FROM resources ORDER BY seq").fetchall()


# -- the ledger ----------------------------------------------------------------------------------


def test_every_create_is_in_the_ledger_with_its_id(client: RunpodClient, settings: Settings) -> None:
    volume_id, template_id, endpoint_id = build_stack(client)
    assert ledger_path(settings) == settings.env_file.resolve().parent / ".rpbook" / "ledger.sqlite"
    assert rows(settings) == [
        ("volume", "llm-weights", volume_id, "created"),
        ("template", "vllm-mistral-7b", template_id, "created"),
        ("endpoint", "mistral-7b-vllm", endpoint_id, "created"),
    ]
    build_stack(client)  # a second run adopts: nothing created, nothing added
    assert len(rows(settings)) == 3


def test_the_intent_row_is_committed_before_the_post_and_survives_a_lost_answer(
    localpod: Any, settings: Settings
) -> None:
    seen_at_post: list[list[tuple[Any, ...]]] = []

    class ForwardThenDrop(httpx.BaseTransport):
        """The POST reaches localpod (the template is created), then the answer is lost."""

        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if request.method == "POST":
                seen_at_post.append(rows(settings))  # read by another connection, as a crash would leave it
                response.read()
                raise httpx.ReadError("connection reset after the request was sent", request=request)
            return response

    tspec = vllm_template("vllm-mistral-7b", MODEL, "v2.25.2", "{{ RUNPOD_SECRET_hf_token }}", 8192, 0.9, 8)
    with (
        RunpodClient(settings, settings.runpod_api_key(), transport=ForwardThenDrop()) as rp,
        pytest.raises(ControlPlaneError, match="may have been done"),
    ):
        ensure_template(rp, tspec, apply=True)
    assert seen_at_post == [[("template", "vllm-mistral-7b", None, "creating")]]
    assert rows(settings) == [("template", "vllm-mistral-7b", None, "creating")]
    assert len(localpod.ctx.store.templates) == 1  # it does exist on the account

    # Teardown, given no names at all, finds it from the ledger row and removes it.
    with RunpodClient(settings, settings.runpod_api_key()) as rp:
        plan = plan_teardown(rp)
        assert [(s.kind, s.name, s.found_by) for s in plan.deletes] == [("template", "vllm-mistral-7b", "ledger")]
        apply_teardown(rp, settings.runpod_api_key(), plan)
        assert plan_teardown(rp).nothing_to_do
    assert len(localpod.ctx.store.templates) == 0
    assert rows(settings)[0][2:] == (next(iter([plan.deletes[0].resource_id])), "deleted")


def test_no_ledger_no_create(
    localpod: Any, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("RPBOOK_LEDGER", str(blocker / "ledger.sqlite"))
    with RunpodClient(settings, settings.runpod_api_key()) as rp, pytest.raises(LedgerError) as caught:
        ensure_volume(rp, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    assert "nothing was created" in str(caught.value) and "RPBOOK_LEDGER" in str(caught.value)
    assert len(localpod.ctx.store.volumes) == 0


def test_a_refused_create_is_marked_refused(client: RunpodClient, settings: Settings) -> None:
    ledger = Ledger.for_settings(settings)

    def refuse() -> Any:
        raise ControlPlaneError("400 bad", 400)

    with pytest.raises(ControlPlaneError):
        ledger.record_create("template", "x", refuse, lambda r: r.id)
    assert rows(settings) == [("template", "x", None, "refused")]
    assert ledger.entries() == []  # not a resource teardown must look for


def test_accounts_never_mix(settings: Settings) -> None:
    local = Ledger.for_settings(settings)
    other = Ledger(local.path, "local", "http://127.0.0.1:1/api.runpod.io")
    real = Ledger(local.path, "runpod", "https://api.runpod.io")
    local.intend("endpoint", "a")
    real.intend("endpoint", "b")
    assert [e.name for e in local.entries()] == ["a"]
    assert [e.name for e in real.entries()] == ["b"]
    assert other.entries() == []


# -- teardown ------------------------------------------------------------------------------------


def test_teardown_order_keeps_volumes_and_second_run_plans_nothing(localpod: Any, settings: Settings) -> None:
    with RunpodClient(settings, settings.runpod_api_key()) as rp:
        volume_id, template_id, endpoint_id = build_stack(rp)
    recording = Recording()
    key = settings.runpod_api_key()
    with RunpodClient(settings, key, transport=recording) as rp:
        plan = plan_teardown(rp, **NAMES)
        assert [(s.kind, s.action, s.found_by) for s in plan.steps] == [
            ("endpoint", "delete", "ledger + name"),
            ("template", "delete", "ledger + name"),
            ("volume", "keep", "ledger + name"),
        ]
        assert "delete_volumes is false" in str(plan) and "deletes the weights" in str(plan)
        recording.calls.clear()
        report = apply_teardown(rp, key, plan, poll_s=0.05)
        writes = [c for c in recording.calls if c[0] != "GET"]
        # The endpoint's DELETE takes its bound template along (openapi-v2.json, deleteEndpoint):
        # teardown sees it gone, says so, and sends no second DELETE.
        assert writes == [
            ("PATCH", f"/v2/serverless/{endpoint_id}"),
            ("DELETE", f"/v2/serverless/{endpoint_id}"),
        ]
        assert [s.resource_id for s in report.with_endpoint] == [template_id]
        assert f"deleted template vllm-mistral-7b ({template_id}) with its endpoint" in str(report)
        assert report.figures["kept_volumes"] == 1 and report.figures["deleted_templates"] == 1
        second = plan_teardown(rp, **NAMES)
        assert second.nothing_to_do and "nothing to do" in str(second)
    store = localpod.ctx.store
    assert (list(store.volumes), len(store.templates), len(store.endpoints)) == ([volume_id], 0, 0)
    assert rows(settings) == [
        ("volume", "llm-weights", volume_id, "created"),
        ("template", "vllm-mistral-7b", template_id, "deleted"),
        ("endpoint", "mistral-7b-vllm", endpoint_id, "deleted"),
    ]


def test_delete_volumes_removes_the_volume_last(localpod: Any, settings: Settings) -> None:
    recording = Recording()
    key = settings.runpod_api_key()
    with RunpodClient(settings, key, transport=recording) as rp:
        volume_id, template_id, endpoint_id = build_stack(rp)
        recording.calls.clear()
        apply_teardown(rp, key, plan_teardown(rp, delete_volumes=True), poll_s=0.05)  # from the ledger alone
        deletes = [path for method, path in recording.calls if method == "DELETE"]
        assert deletes == [f"/v2/serverless/{endpoint_id}", f"/v2/network-volumes/{volume_id}"]
        assert template_id not in localpod.ctx.store.templates  # went with its endpoint
        assert plan_teardown(rp, delete_volumes=True, **NAMES).steps == ()
    assert not localpod.ctx.store.volumes


def test_a_volume_used_by_an_endpoint_teardown_keeps_is_kept(localpod: Any, settings: Settings) -> None:
    key = settings.runpod_api_key()
    with RunpodClient(settings, key) as rp:
        volume = ensure_volume(rp, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True).resource
        tspec = vllm_template("someone-elses", MODEL, "v2.25.2", "{{ RUNPOD_SECRET_hf_token }}", 8192, 0.9, 8)
        template = rp.create_template(plan_template(rp, tspec).request)
        espec = EndpointSpec("someone-elses", "someone-elses", ["AMPERE_24"], network_volume_name="llm-weights")
        assert volume is not None
        other = rp.create_endpoint(plan_endpoint(rp, espec, template.id, volume.id).request)  # not via the ledger
        plan = plan_teardown(rp, volumes=["llm-weights"], delete_volumes=True)
        assert [(s.kind, s.action) for s in plan.steps] == [("volume", "keep")]
        assert f"attached to endpoint(s) {other.id}" in plan.steps[0].note


def test_resources_adopted_by_name_are_found_without_a_ledger_row(localpod: Any, settings: Settings) -> None:
    key = settings.runpod_api_key()
    with RunpodClient(settings, key) as rp:
        rp.create_template(
            {"name": "made-in-the-console", "image": "runpod/mock-worker:latest", "env": {}, "serverless": True}
        )
        assert plan_teardown(rp).steps == ()  # not the runbooks', not named: left alone
        plan = plan_teardown(rp, templates=["made-in-the-console"])
        assert [(s.name, s.found_by) for s in plan.deletes] == [("made-in-the-console", "name")]


def test_busy_endpoint_is_drained_and_billing_stays_flat(localpod: Any, settings: Settings) -> None:
    key = settings.runpod_api_key()
    with RunpodClient(settings, key) as rp:
        _, _, endpoint_id = build_stack(rp)
        endpoint = sdk_endpoint(settings, key, endpoint_id)
        endpoint.run({"prompt": "hello", "sampling_params": {"max_tokens": 4}})
        deadline = time.monotonic() + 20
        while not any(s.endpoint_id == endpoint_id for s in localpod.ctx.store.sessions):
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.05)
        # Queued jobs that would wake workers again are purged; the worker is awaited.
        for _ in range(3):
            endpoint.run({"prompt": "more", "sampling_params": {"max_tokens": 4}})
        report = apply_teardown(rp, key, plan_teardown(rp, **NAMES), poll_s=0.05, drain_timeout_s=60)
        assert report.deleted_endpoint_ids == [endpoint_id]
        proof = prove_nothing_bills(rp, report, interval_s=1.2)
    assert isinstance(proof, Proof) and proof.ok, str(proof)
    assert proof.billed_before_usd > 0 and proof.billing_delta_usd == 0
    assert all(s.stopped_at is not None for s in localpod.ctx.store.sessions)
    assert "nothing left billing" in str(proof)


def test_the_proof_fails_while_a_worker_still_bills(localpod: Any, settings: Settings) -> None:
    """A teardown that left a worker running must not pass: the endpoint is reported as left over
    and its billing grows over the interval."""
    from rpbook.account.teardown import Step, TeardownPlan, TeardownReport

    key = settings.runpod_api_key()
    with RunpodClient(settings, key) as rp:
        _, _, endpoint_id = build_stack(rp)
        sdk_endpoint(settings, key, endpoint_id).run_sync(
            {"prompt": "hi", "sampling_params": {"max_tokens": 4}}, timeout=30
        )
        step = Step("endpoint", "mistral-7b-vllm", endpoint_id, "delete", "name")
        fake = TeardownReport(TeardownPlan("local", settings.rest_url, (step,)), deleted=[step])
        proof = prove_nothing_bills(
            rp, fake, interval_s=1.5, raise_if_billing=False
        )  # the idle worker waits 60 s: it bills
    assert not proof.ok
    assert f"serverless endpoint mistral-7b-vllm ({endpoint_id})" in proof.leftover
    assert proof.billing_delta_usd > 0
    assert "STILL BILLING" in str(proof)
    with RunpodClient(settings, key) as rp, pytest.raises(TeardownError, match="STILL BILLING"):
        prove_nothing_bills(rp, fake, interval_s=0.2)


def test_teardown_false_changes_nothing(localpod: Any, settings: Settings) -> None:
    key = settings.runpod_api_key()
    with RunpodClient(settings, key) as rp:
        build_stack(rp)
        plan = plan_teardown(rp, **NAMES)
        report = apply_teardown(rp, key, plan, enabled=False)
        proof = prove_nothing_bills(rp, report, interval_s=0)
    assert not report.applied and "nothing deleted: teardown is False" in str(report)
    assert "nothing to prove" in str(proof)
    store = localpod.ctx.store
    assert (len(store.volumes), len(store.templates), len(store.endpoints)) == (1, 1, 1)
    assert [r[3] for r in rows(settings)] == ["created"] * 3


def test_a_ledger_row_whose_resource_is_gone_is_closed_not_deleted(localpod: Any, settings: Settings) -> None:
    """The ledger drifted from the account (deleted in the console): the plan says so, applying
    closes the row, and nothing is deleted for it."""
    key = settings.runpod_api_key()
    recording = Recording()
    with RunpodClient(settings, key, transport=recording) as rp:
        _, _, endpoint_id = build_stack(rp)
        rp.delete_endpoint(endpoint_id)  # "in the console": its bound template goes with it
        plan = plan_teardown(rp)
        assert [e.name for e in plan.stale] == ["vllm-mistral-7b", "mistral-7b-vllm"] and "CLOSE" in str(plan)
        assert [s.resource_id for s in plan.deletes] == []
        recording.calls.clear()
        report = apply_teardown(rp, key, plan, poll_s=0.05)
        assert [c for c in recording.calls if c[0] != "GET"] == []
        assert report.figures["stale_ledger_rows_closed"] == 2
        assert plan_teardown(rp).nothing_to_do
    assert [r[3] for r in rows(settings)] == ["created", "gone", "gone"]


def test_a_template_the_endpoint_delete_leaves_is_deleted_on_its_own(localpod: Any, settings: Settings) -> None:
    """Either way: when the endpoint's DELETE does not take the runbooks' template (here the
    endpoint was re-pointed at another template, so it is no longer bound to it), teardown deletes
    it itself and says so."""
    key = settings.runpod_api_key()
    recording = Recording()
    with RunpodClient(settings, key, transport=recording) as rp:
        _, template_id, endpoint_id = build_stack(rp)
        other = rp.create_template({"name": "other", "image": "runpod/mock-worker:latest", "serverless": True})
        rp.update_endpoint(endpoint_id, {"templateId": other.id})
        recording.calls.clear()
        report = apply_teardown(rp, key, plan_teardown(rp, **NAMES), poll_s=0.05)
        deletes = [path for method, path in recording.calls if method == "DELETE"]
        assert deletes == [f"/v2/serverless/{endpoint_id}", f"/v2/templates/{template_id}"]
    assert report.with_endpoint == []
    assert f"deleted template vllm-mistral-7b ({template_id}) (the endpoints' deletes had left it)" in str(report)
    assert other.id not in localpod.ctx.store.templates  # the bound one went with the endpoint
