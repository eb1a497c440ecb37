"""rpbook's specs and idempotent plans against localpod: adopt by name, diff, never duplicate."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest

from rpbook.account.controlplane import RunpodClient
from rpbook.account.placement import check_data_center, pick_data_center, volume_data_center
from rpbook.account.plan import Blocker, BlockerKind, EnsureResult, FieldChange
from rpbook.account.plans import (
    apply,
    ensure_endpoint,
    ensure_template,
    ensure_volume,
    plan_endpoint,
    plan_template,
    plan_volume,
    volume_monthly_cost_usd,
)
from rpbook.account.resources import Endpoint, NetworkVolume, Template
from rpbook.account.specs import EndpointSpec, TemplateSpec, VolumeSpec
from rpbook.account.workerimages import vllm_template
from rpbook.core.errors import ConfigError, EndpointNotFound, PlanConflictError
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
REF = "{{ RUNPOD_SECRET_hf_token }}"
AMPERE_16_TYPES = {
    "NVIDIA RTX A4000",
    "NVIDIA RTX A4500",
    "NVIDIA RTX 4000 Ada Generation",
    "NVIDIA RTX 2000 Ada Generation",
}


@pytest.fixture
def client(settings: Settings) -> Iterator[RunpodClient]:
    with RunpodClient(settings, settings.runpod_api_key()) as rp:
        yield rp


def counts(localpod: Any) -> tuple[int, int, int]:
    store = localpod.ctx.store
    return len(store.volumes), len(store.templates), len(store.endpoints)


def snapshot(localpod: Any) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in localpod.ctx.store.to_dict().items() if k != "sessions"})


def template_spec(hf_token: Secret | str | None = REF, **overrides: Any) -> TemplateSpec:
    args: dict[str, Any] = dict(
        name="vllm-mistral-7b",
        model=MODEL,
        image_tag="v2.25.2",
        hf_token_ref=hf_token,
        max_model_len=8192,
        gpu_memory_utilization=0.9,
        max_concurrency=30,
    )
    return vllm_template(**(args | overrides))


def endpoint_spec(**overrides: Any) -> EndpointSpec:
    args: dict[str, Any] = dict(
        name="mistral-7b-vllm",
        template_name="vllm-mistral-7b",
        gpu_pools=["AMPERE_24", "ADA_24"],
        network_volume_name="llm-weights",
        data_center="EU-RO-1",
    )
    return EndpointSpec(**(args | overrides))


def ensure_all(
    client: RunpodClient,
    tspec: TemplateSpec | None = None,
    espec: EndpointSpec | None = None,
    vspec: VolumeSpec | None = None,
) -> tuple[EnsureResult, EnsureResult, EnsureResult]:
    vspec = vspec or VolumeSpec("llm-weights", 50, "EU-RO-1")
    tspec = tspec or template_spec()
    espec = espec or endpoint_spec()
    volume = ensure_volume(client, vspec, apply=True)
    template = ensure_template(client, tspec, apply=True)
    assert volume.resource is not None and template.resource is not None
    endpoint = ensure_endpoint(client, espec, template.resource.id, volume.resource.id, apply=True)
    return volume, template, endpoint


# -- specs ---------------------------------------------------------------------------------------


def test_endpoint_spec_defaults_are_the_teams() -> None:
    spec = EndpointSpec("e", "t", ["AMPERE_24"])
    assert (
        spec.workers_max,
        spec.workers_min,
        spec.gpu_count,
        spec.idle_timeout_s,
        spec.execution_timeout_s,
        spec.flashboot,
        spec.scaler_type,
        spec.scaler_value,
    ) == (5, 0, 1, 120, 600, True, "QUEUE_DELAY", 15)
    assert spec.gpu_pools == ("AMPERE_24",) and spec.timeout_ms == 600_000


def test_vllm_template_env() -> None:
    token = Secret("HF_TOKEN", "hf_vllmTemplateEnvTest_00000000000", "test")
    spec = template_spec(hf_token=token, extra_env={"ENABLE_PREFIX_CACHING": "1"})
    assert spec.image == "runpod/worker-v1-vllm:v2.25.2"
    assert spec.env == {
        "MODEL_NAME": MODEL,
        "HUGGING_FACE_HUB_TOKEN": token,
        "BASE_PATH": "/runpod-volume",
        "MAX_CONCURRENCY": "30",
        "GPU_MEMORY_UTILIZATION": "0.9",
        "MAX_MODEL_LEN": "8192",
        "ENABLE_PREFIX_CACHING": "1",
    }
    assert token.reveal() not in repr(spec)
    assert template_spec(hf_token=REF).env["HUGGING_FACE_HUB_TOKEN"] == REF
    assert "HUGGING_FACE_HUB_TOKEN" not in template_spec(hf_token=None).env
    assert all("HF_TOKEN" not in template_spec(hf_token=t).env for t in (REF, token, None))


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: template_spec(image_tag="latest"), "image_tag"),
        (lambda: template_spec(image_tag=""), "image_tag"),
        (lambda: template_spec(image_tag="runpod/worker-v1-vllm:v2"), "image_tag"),
        (lambda: template_spec(hf_token="hf_plainStringTokenNotAllowed000000"), "hf_token_ref"),
        (lambda: template_spec(hf_token="{{ RUNPOD_SECRET }}"), "hf_token_ref"),
        (lambda: template_spec(hf_token="{{RUNPOD_SECRET_hf token}}"), "hf_token_ref"),
        (lambda: template_spec(hf_token="{{ RUNPOD_SECRET_RUNPOD_x }}"), "hf_token_ref"),
        (lambda: template_spec(gpu_memory_utilization=0), "gpu_memory_utilization"),
        (lambda: template_spec(gpu_memory_utilization=1.2), "gpu_memory_utilization"),
        (lambda: template_spec(max_model_len=0), "max_model_len"),
        (lambda: template_spec(max_concurrency=0), "max_concurrency"),
        (lambda: template_spec(model="not a repo"), "model"),
        (lambda: template_spec(extra_env={"MODEL_NAME": "x/y"}), "extra_env"),
        (lambda: template_spec(extra_env={"HUGGING_FACE_HUB_TOKEN": REF}), "extra_env"),
        (lambda: TemplateSpec("t", "img:1", env={"HF_TOKEN": "hf_literalInEnv0000000000000"}), "TemplateSpec.env"),
        (lambda: TemplateSpec("t", "img:1", env={"MAX_MODEL_LEN": 8192}), "TemplateSpec.env"),
        (lambda: TemplateSpec("t", "img:1", env={"1BAD": "x"}), "TemplateSpec.env"),
        (lambda: TemplateSpec("", "img:1"), "TemplateSpec.name"),
        (lambda: VolumeSpec("v", 9, "EU-RO-1"), "VolumeSpec.size_gb"),
        (lambda: VolumeSpec("v", 4097, "EU-RO-1"), "VolumeSpec.size_gb"),
        (lambda: VolumeSpec("v", 50, "eu-ro-1"), "VolumeSpec.data_center"),
        (lambda: endpoint_spec(idle_timeout_s=0), "EndpointSpec.idle_timeout_s"),
        (lambda: endpoint_spec(idle_timeout_s=3601), "EndpointSpec.idle_timeout_s"),
        (lambda: endpoint_spec(workers_min=3, workers_max=2), "EndpointSpec.workers_min"),
        (lambda: endpoint_spec(execution_timeout_s=4), "EndpointSpec.execution_timeout_s"),
        (lambda: endpoint_spec(execution_timeout_s=7 * 24 * 3600 + 1), "EndpointSpec.execution_timeout_s"),
        (lambda: endpoint_spec(scaler_value=0.4), "EndpointSpec.scaler_value"),
        (lambda: endpoint_spec(scaler_type="REQUEST_COUNT", scaler_value=0), "EndpointSpec.scaler_value"),
        (lambda: endpoint_spec(scaler_type="FASTEST"), "EndpointSpec.scaler_type"),
        (lambda: endpoint_spec(gpu_pools=[]), "EndpointSpec.gpu_pools"),
        (lambda: endpoint_spec(gpu_pools=["ADA_24", "ADA_24"]), "EndpointSpec.gpu_pools"),
        (lambda: endpoint_spec(gpu_count=0), "EndpointSpec.gpu_count"),
        (lambda: endpoint_spec(data_center="Romania"), "EndpointSpec.data_center"),
    ],
)
def test_invalid_specs_name_the_field(make: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make()


def test_spec_errors_create_nothing(client: RunpodClient, localpod: Any) -> None:
    before = snapshot(localpod)
    with pytest.raises(ConfigError):
        ensure_volume(client, VolumeSpec("v", 5, "EU-RO-1"), apply=True)
    with pytest.raises(ConfigError):
        ensure_template(client, template_spec(image_tag="latest"), apply=True)
    with pytest.raises(ConfigError, match="unknown serverless GPU pool"):
        ensure_endpoint(
            client, endpoint_spec(gpu_pools=["AMPERE_24", "NOT_A_POOL"], network_volume_name=None), apply=True
        )
    assert snapshot(localpod) == before
    assert counts(localpod) == (0, 0, 0)


def test_papermill_empty_strings_mean_unset() -> None:
    spec = endpoint_spec(data_center="", network_volume_name="")
    assert spec.data_center is None and spec.network_volume_name is None


# -- ensure: create, adopt, no duplicates ----------------------------------------------------------


def test_ensure_creates_then_second_run_changes_nothing(client: RunpodClient, localpod: Any) -> None:
    volume, template, endpoint = ensure_all(client)
    assert [r.plan.action for r in (volume, template, endpoint)] == ["create"] * 3
    assert isinstance(volume.resource, NetworkVolume) and isinstance(template.resource, Template)
    assert isinstance(endpoint.resource, Endpoint)
    assert counts(localpod) == (1, 1, 1)

    created = endpoint.resource
    assert created.image == "runpod/worker-v1-vllm:v2.25.2" and created.env["HUGGING_FACE_HUB_TOKEN"] == REF
    assert created.gpu_pools == ("AMPERE_24", "ADA_24") and created.gpu_count == 1
    assert (created.workers_min, created.workers_max, created.idle_timeout_s) == (0, 5, 120)
    assert (created.scaler_type, created.scaler_value, created.timeout_ms) == ("QUEUE_DELAY", 15, 600_000)
    assert created.flashboot == "FLASHBOOT"
    assert created.network_volume_ids == (volume.resource.id,) and created.data_center_ids == ("EU-RO-1",)

    before = snapshot(localpod)
    again = ensure_all(client)
    assert [r.plan.action for r in again] == ["none"] * 3
    assert all(r.plan.changes == [] for r in again)
    ids = [r.resource.id for r in again]  # type: ignore[union-attr]
    assert ids == [volume.resource.id, template.resource.id, created.id]
    assert counts(localpod) == (1, 1, 1)
    assert snapshot(localpod) == before


def test_ensure_endpoint_looks_up_template_and_volume_by_name(client: RunpodClient, localpod: Any) -> None:
    ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    ensure_template(client, template_spec(), apply=True)
    result = ensure_endpoint(client, endpoint_spec(), apply=True)
    assert result.plan.action == "create" and result.applied
    assert counts(localpod) == (1, 1, 1)
    assert ensure_endpoint(client, endpoint_spec(), apply=True).plan.action == "none"


def test_dry_run_creates_nothing_and_endpoint_plan_is_blocked(client: RunpodClient, localpod: Any) -> None:
    volume = ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=False)
    template = ensure_template(client, template_spec(), apply=False)
    endpoint = ensure_endpoint(client, endpoint_spec(), apply=False, template_spec=template_spec())
    assert [r.plan.action for r in (volume, template, endpoint)] == ["create"] * 3
    assert all(r.resource is None and not r.applied for r in (volume, template, endpoint))
    assert counts(localpod) == (0, 0, 0)
    fields = endpoint.plan.changed_fields
    assert {"image", "gpu_pools", "workers_max", "network_volume", "env.MODEL_NAME"} <= set(fields)
    assert [b.kind for b in endpoint.plan.blocked] == [BlockerKind.TEMPLATE_MISSING, BlockerKind.VOLUME_MISSING]
    # the template comes in the same runbook's next step; the volume is runbook 01's to create
    assert [b.kind.awaits_prerequisite for b in endpoint.plan.blocked] == [True, False]
    assert all(isinstance(b, Blocker) for b in endpoint.plan.blocked)
    assert "blocked: template 'vllm-mistral-7b' does not exist yet: this runbook creates it" in str(endpoint.plan)
    assert "create it with runbook 01 (01_network_volume.ipynb, apply = True)" in str(endpoint.plan)
    with pytest.raises(ConfigError, match="this runbook creates it in its template step"):
        apply(client, endpoint.plan)
    assert counts(localpod) == (0, 0, 0)
    assert "CREATE" in str(volume.plan) and "$3.50/month" in str(volume.plan)


def test_apply_none_plan_reads_the_resource(client: RunpodClient) -> None:
    volume, _, _ = ensure_all(client)
    plan = plan_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"))
    assert plan.action == "none"
    assert apply(client, plan) == volume.resource


# -- updates: exactly the differing fields ---------------------------------------------------------


def test_workers_change_is_an_update_of_exactly_those_fields(client: RunpodClient, localpod: Any) -> None:
    _, _, endpoint = ensure_all(client)
    spec = endpoint_spec(workers_min=1, workers_max=3)
    plan = plan_endpoint(client, spec)
    assert plan.action == "update" and plan.resource_id == endpoint.resource.id  # type: ignore[union-attr]
    assert plan.changes == [FieldChange("workers_min", 1, 0), FieldChange("workers_max", 3, 5)]
    assert plan.request == {"workers": {"min": 1, "max": 3}}
    updated = apply(client, plan)
    assert isinstance(updated, Endpoint) and (updated.workers_min, updated.workers_max) == (1, 3)
    assert counts(localpod) == (1, 1, 1)
    assert plan_endpoint(client, spec).action == "none"


def test_scaling_timeout_flashboot_changes(client: RunpodClient) -> None:
    ensure_all(client)
    spec = endpoint_spec(scaler_type="REQUEST_COUNT", scaler_value=4, execution_timeout_s=300, flashboot=False)
    plan = plan_endpoint(client, spec)
    assert set(plan.changed_fields) == {"scaler_type", "scaler_value", "execution_timeout_s", "flashboot"}
    assert plan.request == {
        "scaling": {"type": "REQUEST_COUNT", "requestCount": 4},
        "timeout": 300_000,
        "flashboot": "OFF",
    }
    result = ensure_endpoint(client, spec, apply=True)
    assert isinstance(result.resource, Endpoint)
    assert result.resource.scaler_type == "REQUEST_COUNT" and result.resource.flashboot == "OFF"
    assert ensure_endpoint(client, spec, apply=True).plan.action == "none"


def test_env_change_updates_template_then_endpoint(client: RunpodClient, localpod: Any) -> None:
    _, template, endpoint = ensure_all(client)
    changed = template_spec(max_model_len=4096)
    tplan = plan_template(client, changed)
    assert tplan.action == "update"
    assert tplan.changes == [FieldChange("env.MAX_MODEL_LEN", "4096", "8192")]
    assert tplan.request == {"env": dict(changed.env)}

    # Dry run with the template spec: the endpoint plan already shows what will change.
    eplan = plan_endpoint(client, endpoint_spec(), template_spec=changed)
    assert eplan.changes == [FieldChange("env.MAX_MODEL_LEN", "4096", "8192")]

    ensure_template(client, changed, apply=True)
    assert localpod.ctx.store.templates[template.resource.id].env["MAX_MODEL_LEN"] == "4096"  # type: ignore[union-attr]
    # REST v2 endpoints keep their copy of the template: re-applied by templateId.
    eplan = plan_endpoint(client, endpoint_spec(), template.resource.id)  # type: ignore[union-attr]
    assert eplan.action == "update"
    assert eplan.changes == [FieldChange("env.MAX_MODEL_LEN", "4096", "8192")]
    assert eplan.request == {"templateId": template.resource.id}  # type: ignore[union-attr]
    updated = apply(client, eplan)
    assert updated.env["MAX_MODEL_LEN"] == "4096"  # type: ignore[union-attr]
    assert localpod.ctx.store.endpoints[endpoint.resource.id].env["MAX_MODEL_LEN"] == "4096"  # type: ignore[union-attr]
    assert counts(localpod) == (1, 1, 1)
    assert ensure_template(client, changed, apply=True).plan.action == "none"
    assert ensure_endpoint(client, endpoint_spec(), apply=True).plan.action == "none"


def test_extra_env_key_on_template_is_removed(client: RunpodClient, localpod: Any) -> None:
    _, template, _ = ensure_all(client)
    tid = template.resource.id  # type: ignore[union-attr]
    localpod.ctx.store.templates[tid].env["DEBUG"] = "1"
    plan = plan_template(client, template_spec())
    assert plan.changes == [FieldChange("env.DEBUG", None, "1")]
    apply(client, plan)
    assert "DEBUG" not in localpod.ctx.store.templates[tid].env


def test_image_change_is_a_template_field_change(client: RunpodClient) -> None:
    ensure_all(client)
    plan = plan_template(client, template_spec(image_tag="v2.24.0"))
    assert plan.changes == [FieldChange("image", "runpod/worker-v1-vllm:v2.24.0", "runpod/worker-v1-vllm:v2.25.2")]
    assert plan.request == {"image": "runpod/worker-v1-vllm:v2.24.0"}


# -- conflicts ------------------------------------------------------------------------------------


def test_duplicate_names_are_a_conflict_never_a_guess(client: RunpodClient, localpod: Any) -> None:
    v1 = client.create_network_volume({"name": "llm-weights", "size": 50, "dataCenter": "EU-RO-1"})
    v2 = client.create_network_volume({"name": "llm-weights", "size": 50, "dataCenter": "EU-RO-1"})
    t1 = client.create_template({"name": "vllm-mistral-7b", "image": "a:1", "serverless": True})
    t2 = client.create_template({"name": "vllm-mistral-7b", "image": "a:1", "serverless": True})
    before = snapshot(localpod)
    with pytest.raises(PlanConflictError) as caught:
        ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    assert v1.id in str(caught.value) and v2.id in str(caught.value)
    with pytest.raises(PlanConflictError) as caught:
        ensure_template(client, template_spec(), apply=True)
    assert t1.id in str(caught.value) and t2.id in str(caught.value)
    with pytest.raises(PlanConflictError):  # the template is looked up by name too
        ensure_endpoint(client, endpoint_spec(network_volume_name=None), apply=True)
    assert snapshot(localpod) == before

    for _ in range(2):
        client.create_endpoint(
            {
                "name": "dup",
                "type": "QUEUE",
                "templateId": t1.id,
                "gpu": {"pools": ["ADA_24"]},
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            }
        )
    ids = [e.id for e in client.list_endpoints()]
    with pytest.raises(PlanConflictError) as caught:
        plan_endpoint(client, endpoint_spec(name="dup", network_volume_name=None, data_center=None), t1.id)
    assert all(i in str(caught.value) for i in ids)
    assert counts(localpod) == (2, 2, 2)


def test_volume_never_shrinks_but_grows(client: RunpodClient, localpod: Any) -> None:
    volume, _, _ = ensure_all(client, vspec=VolumeSpec("llm-weights", 80, "EU-RO-1"))
    smaller = ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    assert smaller.plan.action == "none" and smaller.plan.changes == []
    assert any("volumes can grow, never shrink" in n for n in smaller.plan.notes)
    assert "volumes can grow, never shrink" in str(smaller.plan)
    assert localpod.ctx.store.volumes[volume.resource.id].size == 80  # type: ignore[union-attr]

    bigger = ensure_volume(client, VolumeSpec("llm-weights", 120, "EU-RO-1"), apply=True)
    assert bigger.plan.changes == [FieldChange("size_gb", 120, 80)] and bigger.plan.request == {"size": 120}
    assert bigger.resource.size_gb == 120  # type: ignore[union-attr]
    assert counts(localpod) == (1, 1, 1)


def test_volume_data_center_is_immutable(client: RunpodClient, localpod: Any) -> None:
    ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    before = snapshot(localpod)
    with pytest.raises(PlanConflictError) as caught:
        ensure_volume(client, VolumeSpec("llm-weights", 50, "US-TX-3"), apply=True)
    message = str(caught.value)
    assert "EU-RO-1" in message and "US-TX-3" in message and "another volume name" in message
    assert snapshot(localpod) == before


def test_endpoint_data_center_must_match_its_volume(client: RunpodClient, localpod: Any) -> None:
    ensure_volume(client, VolumeSpec("llm-weights", 50, "EU-RO-1"), apply=True)
    ensure_template(client, template_spec(), apply=True)
    with pytest.raises(ConfigError, match="US-TX-3"):
        ensure_endpoint(client, endpoint_spec(data_center="US-TX-3"), apply=True)
    assert counts(localpod) == (1, 1, 0)


def test_endpoint_pinned_to_a_data_center_without_its_pool(client: RunpodClient, localpod: Any) -> None:
    ensure_template(client, template_spec(), apply=True)
    spec = endpoint_spec(gpu_pools=["AMPERE_16"], network_volume_name=None, data_center="US-CA-2")
    with pytest.raises(ConfigError, match="THROTTLED") as caught:
        ensure_endpoint(client, spec, apply=True)
    assert "EU-RO-1" in str(caught.value)
    assert counts(localpod) == (0, 1, 0)
    partial = plan_endpoint(
        client, endpoint_spec(gpu_pools=["AMPERE_16", "ADA_24"], network_volume_name=None, data_center="US-CA-2")
    )
    assert any("no AMPERE_16" in n for n in partial.notes)


# -- data centers -----------------------------------------------------------------------------------


def test_check_data_center(client: RunpodClient) -> None:
    assert check_data_center(client, "EU-RO-1", "AMPERE_16").id == "EU-RO-1"
    with pytest.raises(ConfigError) as caught:
        check_data_center(client, "US-CA-2", "AMPERE_16")
    message = str(caught.value)
    assert "US-CA-2" in message and "AMPERE_16" in message and "EU-RO-1" in message
    assert "US-CA-2," not in message.split("network volumes:")[-1]
    with pytest.raises(ConfigError, match="no STANDARD network volumes"):
        check_data_center(client, "OC-AU-1", "ADA_24")
    with pytest.raises(ConfigError, match="not in Runpod's catalog"):
        check_data_center(client, "XX-NO-1", "ADA_24")
    with pytest.raises(ConfigError, match="unknown serverless GPU pool"):
        check_data_center(client, "EU-RO-1", "AMPERE_17")


def test_pick_data_center(client: RunpodClient) -> None:
    h200 = {dc.id for dc in next(g for g in client.gpu_types() if g.pool == "HOPPER_141").data_centers}
    picked = pick_data_center(client, "HOPPER_141")
    assert picked.id in h200 and picked.offers_standard_volumes
    assert pick_data_center(client, "AMPERE_16").id != "US-CA-2"
    assert pick_data_center(client, "ADA_24", preferred="US-CA-2").id == "US-CA-2"
    with pytest.raises(ConfigError) as caught:
        pick_data_center(client, "HOPPER_141", preferred="EU-SE-1")
    assert all(dc in str(caught.value) for dc in h200)
    # A list of pools: the best stock of the first pool decides, then the next pool's.
    high_24 = {
        dc.id for g in client.gpu_types() if g.pool == "AMPERE_24" for dc in g.data_centers if dc.availability == "HIGH"
    }
    high_ada = {
        dc.id for g in client.gpu_types() if g.pool == "ADA_24" for dc in g.data_centers if dc.availability == "HIGH"
    }
    assert pick_data_center(client, ["AMPERE_24", "ADA_24"]).id in high_24 & high_ada


def test_volume_data_center_follows_an_existing_volume(client: RunpodClient) -> None:
    # No volume yet: picked like pick_data_center.
    assert volume_data_center(client, "weights", "AMPERE_24").id == pick_data_center(client, "AMPERE_24").id
    ensure_volume(client, VolumeSpec("weights", 20, "EU-CZ-1"), apply=True)
    # The volume cannot move: without a preference its data center is kept, even if not the best pick.
    assert volume_data_center(client, "weights", "AMPERE_24").id == "EU-CZ-1"
    # An explicit preference is honoured (the plan then reports the conflict).
    assert volume_data_center(client, "weights", "AMPERE_24", preferred="EU-RO-1").id == "EU-RO-1"


def test_find_endpoint_by_name(client: RunpodClient, localpod) -> None:  # type: ignore[no-untyped-def]
    from rpbook.account.plans import find_endpoint

    with pytest.raises(EndpointNotFound, match="runbook 02"):  # gone at run time: not a configuration error
        find_endpoint(client, "nope")
    template = client.create_template({"name": "t", "image": "runpod/mock-worker:1", "serverless": True})
    body = {
        "name": "twin",
        "type": "QUEUE",
        "templateId": template.id,
        "gpu": {"pools": ["AMPERE_24"]},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    }
    first = client.create_endpoint(body)
    assert find_endpoint(client, "twin").id == first.id
    client.create_endpoint(body)
    with pytest.raises(PlanConflictError):
        find_endpoint(client, "twin")


def test_volume_monthly_cost() -> None:
    assert volume_monthly_cost_usd(100) == pytest.approx(7.0)
    assert volume_monthly_cost_usd(1000) == pytest.approx(70.0)
    assert volume_monthly_cost_usd(2000) == pytest.approx(70.0 + 50.0)
    with pytest.raises(ConfigError):
        volume_monthly_cost_usd(-1)


# -- display ----------------------------------------------------------------------------------------


def test_secrets_are_masked_in_plans(client: RunpodClient, localpod: Any) -> None:
    first = Secret("HF_TOKEN", "hf_firstTokenValueForPlanDisplay0000", "test")
    second = Secret("HF_TOKEN", "hf_secondTokenValueForPlanDisplay111", "test")
    created = ensure_template(client, template_spec(hf_token=first), apply=True)
    assert isinstance(created.resource, Template)
    assert localpod.ctx.store.templates[created.resource.id].env["HUGGING_FACE_HUB_TOKEN"] == first.reveal()
    for text in (
        str(created.plan),
        created.plan._repr_html_(),
        repr(created.plan),
        str(created),
        created._repr_html_(),
    ):
        assert first.reveal() not in text and "hf_…(" in text

    # Same value as a Secret again: compares by value, no change.
    assert plan_template(client, template_spec(hf_token=Secret("HF_TOKEN", first.reveal(), "other"))).action == "none"

    plan = plan_template(client, template_spec(hf_token=second))
    assert plan.changed_fields == ["env.HUGGING_FACE_HUB_TOKEN"]
    assert plan.changes[0].actual == first.reveal()  # the value is there for comparison ...
    for text in (str(plan), plan._repr_html_(), repr(plan), repr(plan.changes), str(plan.changes[0])):
        assert first.reveal() not in text and second.reveal() not in text  # ... never in display
    assert "env.HUGGING_FACE_HUB_TOKEN" in str(plan)
    assert "<code>env.HUGGING_FACE_HUB_TOKEN</code></td>" in plan._repr_html_()


def test_plan_table_rendering(client: RunpodClient) -> None:
    ensure_all(client)
    plan = plan_endpoint(client, endpoint_spec(workers_max=8, gpu_pools=["ADA_24"]))
    text = str(plan)
    assert text.splitlines()[0] == f"serverless endpoint 'mistral-7b-vllm' ({plan.resource_id}): UPDATE"
    assert "field" in text and "wanted" in text and "actual" in text
    assert any(line.split() == ["workers_max", "8", "5"] for line in text.splitlines())
    assert any(line.split()[:2] == ["gpu_pools", "ADA_24"] for line in text.splitlines())
    markup = plan._repr_html_()
    assert markup.startswith('<div class="mathjax_ignore tex2jax_ignore"><div class="rpbook-plan">')
    assert "<table>" in markup and "UPDATE" in markup
    none = plan_endpoint(client, endpoint_spec())
    assert "no change" in str(none) and "nothing to change" in none._repr_html_()


# -- CUDA: worker-vllm v2.25.2 needs 13.0 or newer (its .runpod/hub.json, as a floor) -----------


def test_plan_shows_the_image_cuda_and_the_endpoint_carries_it(client: RunpodClient, localpod: Any) -> None:
    """A floor, not an exact set: the spec's ``allowedCudaVersions`` "Matching is exact", and the
    docs (``serverless/endpoints/endpoint-configurations.mdx``) advise the required version "plus
    all newer versions"."""
    dry = ensure_endpoint(client, endpoint_spec(), apply=False, template_spec=template_spec())
    assert FieldChange("min_cuda_version", "13.0", None) in dry.plan.changes
    assert "allowed_cuda_versions" not in dry.plan.changed_fields
    assert dry.plan.request["gpu"]["allowedCudaVersions"] == [] and dry.plan.request["gpu"]["minCudaVersion"] == "13.0"
    text = str(dry.plan)
    assert "min_cuda_version" in text and "13.0" in text and "hub.json" in text
    _, _, endpoint = ensure_all(client)
    created = endpoint.resource
    assert isinstance(created, Endpoint) and (created.allowed_cuda_versions, created.min_cuda_version) == ((), "13.0")
    stored = localpod.ctx.store.endpoints[created.id]
    assert (stored.allowed_cuda_versions, stored.min_cuda_version) == ([], "13.0")
    assert ensure_endpoint(client, endpoint_spec(), apply=True).plan.action == "none"


def test_existing_endpoint_without_cuda_gets_it_as_an_update(client: RunpodClient, localpod: Any) -> None:
    _, _, endpoint = ensure_all(client, espec=endpoint_spec(allowed_cuda_versions=[]))
    assert endpoint.resource.allowed_cuda_versions == ()  # type: ignore[union-attr]
    plan = plan_endpoint(client, endpoint_spec())
    assert plan.action == "update"
    assert plan.changes == [FieldChange("min_cuda_version", "13.0", None)]
    assert plan.request == {"gpu": {"minCudaVersion": "13.0"}}
    assert "13.0" in str(plan)
    apply(client, plan)
    assert localpod.ctx.store.endpoints[endpoint.resource.id].min_cuda_version == "13.0"  # type: ignore[union-attr]
    # An endpoint an older rpbook made with the exact set ["13.0"] moves to the floor; the PATCH
    # clears the set in the same request (setting one does not clear the other, the spec says).
    exact = plan_endpoint(client, endpoint_spec(allowed_cuda_versions=["13.0"]))
    assert exact.request == {"gpu": {"allowedCudaVersions": ["13.0"], "minCudaVersion": ""}}
    apply(client, exact)
    back = plan_endpoint(client, endpoint_spec())
    assert back.request == {"gpu": {"allowedCudaVersions": [], "minCudaVersion": "13.0"}}
    floor = plan_endpoint(client, endpoint_spec(min_cuda_version="12.9"))
    assert floor.request == {"gpu": {"allowedCudaVersions": [], "minCudaVersion": "12.9"}}
    apply(client, floor)
    stored = localpod.ctx.store.endpoints[endpoint.resource.id]  # type: ignore[union-attr]
    assert (stored.allowed_cuda_versions, stored.min_cuda_version) == ([], "12.9")


def test_refuse_a_pinned_data_center_without_cuda_13_hosts(client: RunpodClient, localpod: Any) -> None:
    # US-IL-1 stocks AMPERE_24, but localpod's stand-in hosts there stop at CUDA 12.8.
    ensure_template(client, template_spec(), apply=True)
    before = snapshot(localpod)
    spec = endpoint_spec(network_volume_name=None, data_center="US-IL-1")
    with pytest.raises(ConfigError) as caught:
        ensure_endpoint(client, spec, apply=True)
    message = str(caught.value)
    assert "US-IL-1" in message and "CUDA >= 13.0" in message and "worker-v1-vllm:v2.25.2" in message
    assert "EU-RO-1 (ADA_24, AMPERE_24)" in message and "US-TX-3 (ADA_24)" in message  # who does offer it
    assert "US-IL-1 (" not in message
    assert counts(localpod) == (0, 1, 0) and snapshot(localpod) == before  # nothing created
    # A floor the hosts there meet is accepted; stating "any CUDA" on purpose is too.
    assert (
        plan_endpoint(
            client, endpoint_spec(network_volume_name=None, data_center="US-IL-1", min_cuda_version="12.4")
        ).action
        == "create"
    )
    assert (
        plan_endpoint(
            client, endpoint_spec(network_volume_name=None, data_center="US-IL-1", allowed_cuda_versions=[])
        ).action
        == "create"
    )


def test_a_volume_data_center_with_cuda_13_only_for_some_pools(client: RunpodClient, localpod: Any) -> None:
    # US-TX-3: AMPERE_24 hosts stop at 12.8, ADA_24 hosts run 13.0.
    ensure_volume(client, VolumeSpec("llm-weights", 50, "US-TX-3"), apply=True)
    ensure_template(client, template_spec(), apply=True)
    partial = plan_endpoint(client, endpoint_spec(data_center=None))
    assert partial.action == "create"
    assert any("US-TX-3 has no AMPERE_24 host with CUDA >= 13.0" in n for n in partial.notes)
    with pytest.raises(ConfigError, match=r"pools that offer it in US-TX-3: .*ADA_24"):
        plan_endpoint(client, endpoint_spec(gpu_pools=["AMPERE_24"], data_center=None))
    assert counts(localpod) == (1, 1, 0)


def test_a_worker_lands_on_a_data_center_that_only_has_newer_cuda_hosts(
    client: RunpodClient, localpod: Any, settings: Settings
) -> None:
    """Issue 17.2: hosts move past the image's CUDA. EU-CZ-1's hosts in localpod's catalog all run
    13.1 or 13.2; the endpoint rpbook creates for worker-vllm v2.25.2 (hub.json: 13.0) states a
    floor, so its worker is placed there and serves. With the exact set ``["13.0"]`` (the spec:
    "Matching is exact") the same endpoint gets no host there: THROTTLED."""
    import httpx

    from conftest import wait_for
    from rpbook.account import wakeup

    vspec = VolumeSpec("llm-weights", 50, "EU-CZ-1")
    _, _, endpoint = ensure_all(client, espec=endpoint_spec(data_center="EU-CZ-1"), vspec=vspec)
    created = endpoint.resource
    assert isinstance(created, Endpoint) and created.min_cuda_version == "13.0" and created.allowed_cuda_versions == ()
    wake = wakeup.wake(settings, settings.runpod_api_key(), created.id, timeout_s=60, progress=False)
    assert isinstance(wake, wakeup.WakeReport) and wake.cold  # it served a job
    [worker] = localpod.control("GET", "state").json()["live"][created.id]["workers"]
    assert (worker["dataCenterId"], worker["hostCudaVersion"]) == ("EU-CZ-1", "13.2")
    assert worker["status"] in ("IDLE", "RUNNING")

    # rpbook refuses to plan the exact set there: no host in EU-CZ-1 reports exactly 13.0...
    with pytest.raises(ConfigError, match=re.escape("EU-CZ-1 has no host with CUDA 13.0")):
        plan_endpoint(client, endpoint_spec(name="exact-13", data_center="EU-CZ-1", allowed_cuda_versions=["13.0"]))
    # ...and created by hand, such an endpoint's worker finds no host.
    body = {
        "name": "exact-13",
        "type": "QUEUE",
        "image": "runpod/worker-v1-vllm:v2.25.2",
        "env": {"MODEL_NAME": MODEL},
        "gpu": {"pools": ["AMPERE_24", "ADA_24"], "allowedCudaVersions": ["13.0"]},
        "dataCenterIds": ["EU-CZ-1"],
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    }
    auth = {"Authorization": f"Bearer {localpod.api_key}"}
    made = httpx.post(f"{localpod.rest_url}/v2/serverless", json=body, headers=auth).json()
    httpx.post(f"{localpod.queue_url}/{made['id']}/run", json={"input": {"prompt": "hi"}}, headers=auth)

    def throttled() -> dict[str, Any] | None:
        live = localpod.control("GET", "state").json()["live"].get(made["id"], {"workers": []})["workers"]
        return live[0] if live and live[0]["status"] == "THROTTLED" else None

    stuck = wait_for(throttled)
    assert stuck["hostCudaVersion"] is None and stuck["dataCenterId"] is None


def test_unknown_image_cuda_is_left_alone_with_a_note(client: RunpodClient) -> None:
    tspec = TemplateSpec(name="vllm-mistral-7b", image="ghcr.io/team/custom-worker:1.0")
    plan = plan_endpoint(client, endpoint_spec(network_volume_name=None), template_spec=tspec)
    assert "allowed_cuda_versions" not in plan.changed_fields and "allowedCudaVersions" not in plan.request["gpu"]
    assert any("no CUDA requirement is known" in n for n in plan.notes)


def test_data_center_choice_follows_the_cuda_requirement(client: RunpodClient) -> None:
    from rpbook.account.cuda import image_cuda_requirement

    cuda = image_cuda_requirement("runpod/worker-v1-vllm:v2.25.2")
    # AMPERE_48's best stock is in EU-SE-1, whose hosts have no 13.0: the choice moves.
    assert pick_data_center(client, "AMPERE_48").id == "EU-SE-1"
    assert pick_data_center(client, "AMPERE_48", cuda=cuda).id == "EU-RO-1"
    with pytest.raises(ConfigError, match=re.escape("CUDA >= 13.0")) as caught:
        pick_data_center(client, "AMPERE_24", preferred="US-IL-1", cuda=cuda)
    # EU-CZ-1's hosts all run 13.1 or 13.2: a floor admits them, an exact ["13.0"] would not.
    assert (
        "EU-RO-1" in str(caught.value)
        and "EU-CZ-1" in str(caught.value)
        and "US-IL-1," not in str(caught.value).split("volumes:")[-1]
    )
    ensure_volume(client, VolumeSpec("weights", 20, "US-TX-3"), apply=True)
    assert volume_data_center(client, "weights", "AMPERE_24").id == "US-TX-3"
    with pytest.raises(ConfigError, match=r"US-TX-3.*CUDA >= 13\.0"):
        volume_data_center(client, "weights", "AMPERE_24", cuda=cuda)
    assert volume_data_center(client, "weights", ["AMPERE_24", "ADA_24"], cuda=cuda).id == "US-TX-3"


def test_template_states_no_exact_cuda_set_for_a_floor(client: RunpodClient, localpod: Any) -> None:
    """A template has no CUDA floor (spec: only ``allowedCudaVersions``), and an exact set there
    would be inherited by an endpoint created from it and shut out newer hosts: rpbook keeps it
    empty, and moves a template an older rpbook made with ``["13.0"]`` back to empty."""
    created = ensure_template(client, template_spec(), apply=True)
    assert "allowed_cuda_versions" not in created.plan.changed_fields
    assert "allowedCudaVersions" not in created.plan.request
    assert isinstance(created.resource, Template) and created.resource.allowed_cuda_versions == ()
    old = plan_template(client, TemplateSpec(**{**_template_args(template_spec()), "allowed_cuda_versions": ["13.0"]}))
    assert old.request == {"allowedCudaVersions": ["13.0"]}
    apply(client, old)
    update = plan_template(client, template_spec())
    assert update.changes == [FieldChange("allowed_cuda_versions", (), ("13.0",))]
    assert update.request == {"allowedCudaVersions": []}


def test_infinity_template_states_no_cuda_set_its_endpoint_a_floor(client: RunpodClient) -> None:
    from rpbook.account.workerimages import infinity_template

    tspec = infinity_template("infinity-bge-small", "BAAI/bge-small-en-v1.5", "1.1.4")
    assert tspec.cuda_versions == ()  # a floor (>= 12.4, its Dockerfile) is not a template field
    assert "allowed_cuda_versions" not in plan_template(client, tspec).changed_fields
    espec = EndpointSpec("bge-small-embeddings", "infinity-bge-small", ["AMPERE_16"])
    plan = plan_endpoint(client, espec, template_spec=tspec)
    assert FieldChange("min_cuda_version", "12.4", None) in plan.changes
    assert plan.request["gpu"] == {
        "pools": ["AMPERE_16"],
        "count": 1,
        "allowedCudaVersions": [],
        "minCudaVersion": "12.4",
    }


def _template_args(spec: TemplateSpec) -> dict[str, Any]:
    return {"name": spec.name, "image": spec.image, "env": dict(spec.env), "disk_gb": spec.disk_gb}
