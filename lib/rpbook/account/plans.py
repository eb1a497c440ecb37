"""Idempotent ``ensure_*``: find the resource by name, show what would change, change only that.

Running a runbook twice must not create a second volume, template or endpoint (each one costs
money or clutters the console), and a person should see, before anything billable happens, what
will be created or changed. So each ``plan_*`` looks the resource up BY NAME:

- no resource has that name: ``create``;
- exactly one: compare field by field and ``update`` only what differs (``none`` when nothing does);
- two or more: ``PlanConflictError`` listing their ids; rpbook never guesses which one you meant
  and never creates yet another.

A ``Plan`` prints as a "wanted vs actual" table (text, and HTML in JupyterLab) with secrets masked.
``apply`` executes it: POST for create, PATCH with only the changed fields for update, GET for none.

Runpod rules the plans know: a network volume can grow but never shrink, and its data center is
fixed at creation; REST v2 endpoints copy the template's image and env at creation (no link is
kept), so a changed template reaches an existing endpoint only by a PATCH with ``templateId``.
Where an endpoint's workers may run (data center, GPU pools, host CUDA version) is checked by
:mod:`rpbook.account.placement` before a plan is shown.

An endpoint spec with ``model_references`` (cached models) plans them like any field, read and set
through GraphQL (:mod:`rpbook.account.cachedmodels`, REST v2 has no field): ``apply`` writes REST
first, then ``saveEndpoint``.

An endpoint plan whose template or volume does not exist yet is ``blocked`` (a typed
:class:`Blocker`): it can be shown, not applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from rpbook.account.cachedmodels import check_cached_models_api, model_references, save_model_references
from rpbook.account.controlplane import RunpodClient
from rpbook.account.cuda import CudaRequirement
from rpbook.account.endpointscaling import ScalerSettings, WorkerSettings, check_scaler_type, scaling_body
from rpbook.account.ledger import record_create
from rpbook.account.placement import cuda_placement_notes, endpoint_cuda, endpoint_data_center
from rpbook.account.plan import (
    KIND_LABEL,
    Blocker,
    BlockerKind,
    EnsureResult,
    FieldChange,
    Kind,
    Plan,
    Resource,
)
from rpbook.account.resources import Endpoint, NetworkVolume, Template, one_by_name
from rpbook.account.specs import EndpointSpec, TemplateSpec, VolumeSpec
from rpbook.core.errors import ConfigError, EndpointNotFound, PlanConflictError
from rpbook.core.pending import NotCreated, clear_pending, pending, record_pending
from rpbook.core.secrets import Secret

CACHED_MODELS_NOTE = (
    "cached models are set through GraphQL saveEndpoint (modelReferences), a field Runpod's API docs do not "
    "document (runpodctl --model-reference sets it); rpbook re-sends every endpoint field, as runpodctl does"
)

VOLUME_TYPE = "STANDARD"
VOLUME_USD_PER_GB_MONTH = 0.07
VOLUME_USD_PER_GB_MONTH_OVER_1TB = 0.05
ONE_TB_GB = 1000
"""Runpod's STANDARD network volume price: $0.07/GB/month for the first 1 TB (1,000 GB, as localpod
bills it), $0.05/GB/month beyond."""


def volume_monthly_cost_usd(size_gb: int) -> float:
    """What a STANDARD network volume of ``size_gb`` costs per month, whether or not a worker runs."""
    if isinstance(size_gb, bool) or not isinstance(size_gb, (int, float)) or size_gb < 0:
        raise ConfigError(f"size_gb must be a number of GB >= 0, got {size_gb!r}")
    first = min(size_gb, ONE_TB_GB)
    rest = max(0, size_gb - ONE_TB_GB)
    return round(first * VOLUME_USD_PER_GB_MONTH + rest * VOLUME_USD_PER_GB_MONTH_OVER_1TB, 4)


def _named(kind: Kind, resources: Iterable[Any], name: str) -> Any | None:
    """The one resource of ``kind`` named ``name`` (``resources.one_by_name``)."""
    return one_by_name(resources, name, KIND_LABEL[kind])


def _env_value(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


def _env_changes(wanted: Mapping[str, Any], actual: Mapping[str, str] | None) -> list[FieldChange]:
    """Per-key env differences; a ``Secret`` compares by value. A key only in ``actual`` is removed."""
    actual = actual or {}
    changes = [
        FieldChange(f"env.{key}", value, actual.get(key))
        for key, value in wanted.items()
        if key not in actual or _env_value(value) != actual[key]
    ]
    changes += [FieldChange(f"env.{key}", None, value) for key, value in actual.items() if key not in wanted]
    return changes


def _compare(wanted: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldChange]:
    return [FieldChange(name, value, actual.get(name)) for name, value in wanted.items() if value != actual.get(name)]


# -- network volumes ---------------------------------------------------------------------------


def plan_volume(client: RunpodClient, spec: VolumeSpec) -> Plan:
    """Create the volume, grow it, or leave it; never shrink it, never move it."""
    volume: NetworkVolume | None = _named("volume", client.list_network_volumes(), spec.name)
    cost = f"about ${volume_monthly_cost_usd(spec.size_gb):.2f}/month for {spec.size_gb} GB while it exists"
    if volume is None:
        body = {"name": spec.name, "size": spec.size_gb, "dataCenter": spec.data_center, "type": VOLUME_TYPE}
        changes = [
            FieldChange("size_gb", spec.size_gb, None),
            FieldChange("data_center", spec.data_center, None),
            FieldChange("type", VOLUME_TYPE, None),
        ]
        return Plan("volume", spec.name, "create", changes, None, [f"{cost}, billed even when no worker runs"], body)
    if volume.data_center != spec.data_center:
        raise PlanConflictError(
            f"network volume {spec.name!r} ({volume.id}) is in {volume.data_center}, but {spec.data_center} is "
            f"wanted; a volume's data center cannot change. Either set data_center to {volume.data_center!r} "
            "(check_data_center() tells whether it offers your GPU pool), pick another volume name, or delete "
            "the volume in the Runpod console (its files are lost) and run again."
        )
    notes: list[str] = []
    if volume.type != VOLUME_TYPE:
        notes.append(f"the volume is {volume.type}, not {VOLUME_TYPE}; the tier is fixed at creation")
    if spec.size_gb > volume.size_gb:
        notes.append(cost)
        return Plan(
            "volume",
            spec.name,
            "update",
            [FieldChange("size_gb", spec.size_gb, volume.size_gb)],
            volume.id,
            notes,
            {"size": spec.size_gb},
            current=volume,
        )
    if spec.size_gb < volume.size_gb:
        notes.append(
            f"volumes can grow, never shrink: {spec.name!r} stays at {volume.size_gb} GB (wanted {spec.size_gb} GB)"
        )
    return Plan("volume", spec.name, "none", [], volume.id, notes, current=volume)


# -- templates ---------------------------------------------------------------------------------


def _template_wanted(spec: TemplateSpec) -> dict[str, Any]:
    wanted = {
        "image": spec.image,
        "disk_gb": spec.disk_gb,
        "serverless": spec.serverless,
        "args": spec.args,
        "ports": tuple(spec.ports),
    }
    if spec.cuda_versions is not None:  # None: no known requirement, the template's is left alone
        wanted["allowed_cuda_versions"] = spec.cuda_versions
    return wanted


_TEMPLATE_FIELDS = {
    "image": "image",
    "disk_gb": "disk",
    "serverless": "serverless",
    "args": "args",
    "ports": "ports",
    "allowed_cuda_versions": "allowedCudaVersions",
}


def plan_template(client: RunpodClient, spec: TemplateSpec) -> Plan:
    """Create the template or PATCH the fields (and env keys) that differ."""
    template: Template | None = _named("template", client.list_templates(), spec.name)
    wanted = _template_wanted(spec)
    if template is None:
        changes = [FieldChange(name, value, None) for name, value in wanted.items() if value not in ("", ())]
        changes += _env_changes(spec.env, None)
        body: dict[str, Any] = {
            "name": spec.name,
            "image": spec.image,
            "env": dict(spec.env),
            "disk": spec.disk_gb,
            "serverless": spec.serverless,
            "startSsh": False,
            "startJupyter": False,
        }
        if spec.args:
            body["args"] = spec.args
        if spec.ports:
            body["ports"] = list(spec.ports)
        if wanted.get("allowed_cuda_versions"):
            body["allowedCudaVersions"] = list(wanted["allowed_cuda_versions"])
        return Plan("template", spec.name, "create", changes, None, [], body)
    actual = {
        "image": template.image,
        "disk_gb": template.disk_gb,
        "serverless": template.serverless,
        "args": template.args,
        "ports": tuple(template.ports),
        "allowed_cuda_versions": template.allowed_cuda_versions,
    }
    changes = _compare(wanted, actual)
    env_changes = _env_changes(spec.env, template.env)
    body = {_TEMPLATE_FIELDS[c.field]: (list(c.wanted) if isinstance(c.wanted, tuple) else c.wanted) for c in changes}
    notes: list[str] = []
    if env_changes:
        body["env"] = dict(spec.env)  # PATCH replaces the whole env map
        notes.append(
            "endpoints created from this template keep their copy of image and env until "
            "ensure_endpoint re-applies the template"
        )
    changes += env_changes
    return Plan(
        "template", spec.name, "update" if changes else "none", changes, template.id, notes, body, current=template
    )


# -- lookups by name ---------------------------------------------------------------------------


def find_endpoint_id(client: RunpodClient, name: str) -> str | NotCreated:
    """The id of the endpoint named ``name``, printed with it; in a dry run whose plan would have
    created it, a :class:`NotCreated` the next steps skip on (see ``rpbook.core.pending``)."""
    endpoint = _named("endpoint", client.list_endpoints(), name)
    if endpoint is not None:
        print(f"endpoint {endpoint.name}: {endpoint.id}")
        return endpoint.id
    missing = pending("endpoint", name)
    if missing is None:
        raise EndpointNotFound(
            f"no serverless endpoint is named {name!r}; create it with runbook 02 (apply = True) "
            "or set endpoint_name to an existing one"
        )
    print(f"{missing}: nothing to wake or check")
    return missing


def find_endpoint(client: RunpodClient, name: str) -> Endpoint:
    """The one endpoint named ``name`` (how runbooks after 02 find it); a clear error when there is
    none (run runbook 02 with ``apply = True``) or more than one."""
    endpoint = _named("endpoint", client.list_endpoints(), name)
    if endpoint is None:
        raise EndpointNotFound(
            f"no serverless endpoint is named {name!r}; create it with runbook 02 (apply = True) "
            "or set endpoint_name to an existing one"
        )
    return endpoint


# -- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Container:
    """What workers run, as the endpoint should have it (from the template or its spec)."""

    image: str
    env: Mapping[str, Any]
    disk_gb: int


def _resolve_template(
    client: RunpodClient, spec: EndpointSpec, template_id: str | None, template_spec: TemplateSpec | None
) -> tuple[str | None, _Container | None]:
    if template_spec is not None and template_spec.name != spec.template_name:
        raise ConfigError(
            f"EndpointSpec.template_name is {spec.template_name!r} but the TemplateSpec given is "
            f"{template_spec.name!r}; make them the same"
        )
    template: Template | None
    if template_id is not None:
        template = client.get_template(template_id)
    else:
        template = _named("template", client.list_templates(), spec.template_name)
    if template_spec is not None:
        container = _Container(template_spec.image, template_spec.env, template_spec.disk_gb)
    elif template is not None:
        container = _Container(template.image, template.env, template.disk_gb)
    else:
        container = None
    return (template.id if template is not None else None), container


def _resolve_volume(client: RunpodClient, spec: EndpointSpec, volume_id: str | None) -> NetworkVolume | None:
    if volume_id is not None:
        return client.get_network_volume(volume_id)
    if spec.network_volume_name is None:
        return None
    return _named("volume", client.list_network_volumes(), spec.network_volume_name)


def _endpoint_actual(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "image": endpoint.image,
        "disk_gb": endpoint.disk_gb,
        "gpu_pools": endpoint.gpu_pools,
        "gpu_count": endpoint.gpu_count,
        "workers_min": endpoint.workers_min,
        "workers_max": endpoint.workers_max,
        "idle_timeout_s": endpoint.idle_timeout_s,
        "scaler_type": endpoint.scaler_type,
        "scaler_value": endpoint.scaler_value,
        "execution_timeout_s": endpoint.timeout_ms / 1000,
        "flashboot": endpoint.flashboot_enabled,
        "network_volume": endpoint.network_volume_ids,
        "data_center": endpoint.data_center_ids,
        "allowed_cuda_versions": endpoint.allowed_cuda_versions,
        "min_cuda_version": endpoint.min_cuda_version,
    }


def _scaler(spec: EndpointSpec) -> ScalerSettings:
    return ScalerSettings(check_scaler_type("EndpointSpec.scaler_type", spec.scaler_type), spec.scaler_value)


def plan_endpoint(
    client: RunpodClient,
    spec: EndpointSpec,
    template_id: str | None = None,
    volume_id: str | None = None,
    *,
    template_spec: TemplateSpec | None = None,
) -> Plan:
    """Create the endpoint or PATCH what differs.

    ``template_id``/``volume_id`` are the ids from ``ensure_template``/``ensure_volume``; when None
    they are looked up by ``spec.template_name``/``spec.network_volume_name`` (a plan can then be
    shown before they exist, but not applied). The endpoint's image and env are compared with
    ``template_spec`` when given (exact for a dry run where the template is still to be changed),
    else with the template as it is on Runpod.
    """
    gpus = client.gpu_types(serverless_availability=True)
    spec.check_pools(gpus)
    template_id, container = _resolve_template(client, spec, template_id, template_spec)
    volume = _resolve_volume(client, spec, volume_id)
    blocked = _missing_prerequisites(spec, template_id, volume)
    data_center, notes = endpoint_data_center(spec, volume, gpus)
    image = container.image if container is not None else None
    cuda = endpoint_cuda(spec, image)
    notes += cuda_placement_notes(client, spec, cuda, image, data_center)
    wanted = _endpoint_wanted(spec, container, volume, data_center, cuda)

    endpoint: Endpoint | None = _named("endpoint", client.list_endpoints(), spec.name)
    refs = None if spec.model_references is None else tuple(spec.model_references)
    if endpoint is None:
        if refs:
            # Before anything is created: the key reaches GraphQL and its Endpoint type has modelReferences.
            check_cached_models_api(client)
        changes = [FieldChange(name, value, None) for name, value in wanted.items() if value not in ((), None)]
        if volume is None and spec.network_volume_name is not None:
            changes.append(FieldChange("network_volume", f"{spec.network_volume_name} (to be created)", None))
        if refs:
            changes.append(FieldChange("model_references", refs, None))
            notes.append(CACHED_MODELS_NOTE)
        if container is not None:
            changes += _env_changes(container.env, None)
        body = _create_body(spec, template_id, volume, data_center, cuda)
        return Plan("endpoint", spec.name, "create", changes, None, notes, body, blocked, model_references=refs or None)

    if "network_volume" not in wanted:  # the volume is still to be created: it will be a change
        wanted["network_volume"] = f"{spec.network_volume_name} (to be created)"
    changes = _compare(wanted, _endpoint_actual(endpoint))
    refs_change = None
    if refs is not None:
        actual_refs = model_references(client, endpoint.id)
        if refs != actual_refs:
            changes.append(FieldChange("model_references", refs, actual_refs))
            refs_change = refs
            notes.append(CACHED_MODELS_NOTE)
    if container is not None:
        changes += _env_changes(container.env, endpoint.env)
    changed = {c.field for c in changes}
    notes += _update_notes(spec, endpoint, changed)
    body = _update_body(changed, spec, template_id, wanted) if changes else {}
    # An update is blocked only by what its body needs: a template to re-apply, a volume to attach.
    needed = [b for b in blocked if _update_needs(b, body, changed)]
    notes += [f"{b} (image and env were not compared)" for b in blocked if b not in needed]
    return Plan(
        "endpoint",
        spec.name,
        "update" if changes else "none",
        changes,
        endpoint.id,
        notes,
        body,
        needed,
        current=endpoint,
        model_references=refs_change,
    )


def _missing_prerequisites(spec: EndpointSpec, template_id: str | None, volume: NetworkVolume | None) -> list[Blocker]:
    """What must be created before this endpoint plan can be applied."""
    blocked: list[Blocker] = []
    if template_id is None:
        blocked.append(
            Blocker(
                BlockerKind.TEMPLATE_MISSING,
                f"template {spec.template_name!r} does not exist yet: this runbook creates it in its "
                "template step, before the endpoint",
                spec.template_name,
            )
        )
    if volume is None and spec.network_volume_name is not None:
        blocked.append(
            Blocker(
                BlockerKind.VOLUME_MISSING,
                f"network volume {spec.network_volume_name!r} does not exist yet: create it with runbook 01 "
                '(01_network_volume.ipynb, apply = True), or set the volume name to "" to run without one',
                spec.network_volume_name,
            )
        )
    return blocked


def _update_needs(blocker: Blocker, body: Mapping[str, Any], changed: set[str]) -> bool:
    """Whether an update's body needs what ``blocker`` says is missing."""
    if blocker.kind is BlockerKind.TEMPLATE_MISSING:
        return "templateId" in body
    if blocker.kind is BlockerKind.VOLUME_MISSING:
        return "network_volume" in changed
    return True


def _endpoint_wanted(
    spec: EndpointSpec,
    container: _Container | None,
    volume: NetworkVolume | None,
    data_center: str | None,
    cuda: CudaRequirement | None,
) -> dict[str, Any]:
    """The endpoint as the plan wants it, in the fields of ``_endpoint_actual`` (those it has an
    opinion on: no image without a known template, no volume before it is known)."""
    wanted: dict[str, Any] = {}
    if container is not None:
        wanted.update(image=container.image, disk_gb=container.disk_gb)
    wanted.update(
        gpu_pools=tuple(spec.gpu_pools),
        gpu_count=spec.gpu_count,
        workers_min=spec.workers_min,
        workers_max=spec.workers_max,
    )
    if spec.scaler_type == "QUEUE_DELAY":
        wanted["idle_timeout_s"] = spec.idle_timeout_s  # not applicable to REQUEST_COUNT (the API refuses it)
    wanted.update(
        scaler_type=spec.scaler_type,
        scaler_value=spec.scaler_value,
        execution_timeout_s=spec.execution_timeout_s,
        flashboot=spec.flashboot,
    )
    if volume is not None:
        wanted["network_volume"] = (volume.id,)
    elif spec.network_volume_name is None:
        wanted["network_volume"] = ()
    if data_center is not None:
        wanted["data_center"] = (data_center,)
    if cuda is not None:
        wanted.update(allowed_cuda_versions=cuda.allowed, min_cuda_version=cuda.minimum)
    return wanted


def _create_body(
    spec: EndpointSpec,
    template_id: str | None,
    volume: NetworkVolume | None,
    data_center: str | None,
    cuda: CudaRequirement | None,
) -> dict[str, Any]:
    """``CreateEndpointRequest``: the image, env and disk come from the template (``templateId``)."""
    body: dict[str, Any] = {
        "name": spec.name,
        "type": "QUEUE",
        "templateId": template_id,
        "gpu": {"pools": list(spec.gpu_pools), "count": spec.gpu_count},
        **scaling_body(
            WorkerSettings(
                spec.workers_min,
                spec.workers_max,
                # not applicable to REQUEST_COUNT (the API refuses it)
                spec.idle_timeout_s if spec.scaler_type == "QUEUE_DELAY" else None,
            ),
            _scaler(spec),
        ),
        "timeout": spec.timeout_ms,
        "flashboot": spec.flashboot_mode,
    }
    if volume is not None:
        body["networkVolumes"] = [volume.id]
    if data_center is not None:
        body["dataCenterIds"] = [data_center]
    if cuda is not None:  # an explicit [] states "no constraint" (else a template's would be inherited)
        body["gpu"].update(cuda.endpoint_gpu_fields() or {"allowedCudaVersions": []})
    return body


def _update_body(
    changed: set[str], spec: EndpointSpec, template_id: str | None, wanted: Mapping[str, Any]
) -> dict[str, Any]:
    """``UpdateEndpointRequest`` with only the ``changed`` fields (a PATCH changes what it sends)."""
    body: dict[str, Any] = {}
    if _reapplies_template(changed):
        body["templateId"] = template_id  # re-applies the template's image, disk and env (env replaced)
    gpu: dict[str, Any] = {}
    if "gpu_pools" in changed:
        gpu["pools"] = list(spec.gpu_pools)
    if "gpu_count" in changed:
        gpu["count"] = spec.gpu_count
    # A PATCH setting one CUDA field does not clear the other: both are sent when both differ.
    if "allowed_cuda_versions" in changed:
        gpu["allowedCudaVersions"] = list(wanted["allowed_cuda_versions"])
    if "min_cuda_version" in changed:
        gpu["minCudaVersion"] = wanted["min_cuda_version"] or ""  # "" clears the floor
    if gpu:
        body["gpu"] = gpu
    body.update(
        scaling_body(
            WorkerSettings(
                spec.workers_min if "workers_min" in changed else None,
                spec.workers_max if "workers_max" in changed else None,
                spec.idle_timeout_s if "idle_timeout_s" in changed else None,
            ),
            _scaler(spec) if changed & {"scaler_type", "scaler_value"} else None,
        )
    )
    if "execution_timeout_s" in changed:
        body["timeout"] = spec.timeout_ms
    if "flashboot" in changed:
        body["flashboot"] = spec.flashboot_mode
    if "network_volume" in changed and isinstance(wanted["network_volume"], tuple):
        body["networkVolumes"] = list(wanted["network_volume"])
    if "data_center" in changed:
        body["dataCenterIds"] = list(wanted["data_center"])
    return body


def _update_notes(spec: EndpointSpec, endpoint: Endpoint, changed: set[str]) -> list[str]:
    """What a person should know about an update of ``changed`` fields before applying it."""
    notes: list[str] = []
    if "flashboot" not in changed and spec.flashboot and endpoint.flashboot == "PRIORITY_FLASHBOOT":
        notes.append("FlashBoot is on with priority capacity (PRIORITY_FLASHBOOT); left as it is")
    if changed & {"allowed_cuda_versions", "min_cuda_version"}:
        notes.append("the CUDA constraint takes effect as workers are replaced (running ones finish first)")
    if "gpu_pools" in changed and endpoint.gpu_excluded_types:
        notes.append(f"changing gpu_pools clears the excluded GPU types ({', '.join(endpoint.gpu_excluded_types)})")
    if _reapplies_template(changed):
        notes.append(
            "image/env come from the template: the update re-applies it (templateId), replacing the endpoint's env"
        )
        notes.append(
            "a new release: running workers finish their jobs and are replaced (rolling update); "
            "rpbook.account.rollout.after_apply follows it"
        )
    return notes


def _reapplies_template(changed: set[str]) -> bool:
    """Image, disk and env reach an endpoint only by re-applying its template."""
    return bool(changed & {"image", "disk_gb"}) or any(f.startswith("env.") for f in changed)


# -- apply and ensure --------------------------------------------------------------------------


def apply(client: RunpodClient, plan: Plan) -> Resource:
    """Execute a plan: create -> POST, update -> PATCH (only the changed fields), none -> GET."""
    if plan.blocked and plan.action != "none":
        raise ConfigError(
            f"cannot apply the plan for {KIND_LABEL[plan.kind]} {plan.name!r}: "
            + "; ".join(str(b) for b in plan.blocked)
        )
    if plan.action == "create":
        create = {
            "volume": client.create_network_volume,
            "template": client.create_template,
            "endpoint": client.create_endpoint,
        }[plan.kind]
        # Written down before the POST leaves (rpbook.account.ledger): teardown must find it even after a crash.
        created = record_create(client.settings, plan.kind, plan.name, lambda: create(plan.request), attrgetter("id"))
        if plan.model_references is not None:
            save_model_references(client, created.id, plan.model_references)
        return created
    if plan.resource_id is None:
        raise ConfigError(f"the plan for {plan.name!r} has action {plan.action!r} but no resource id")
    if plan.action == "update" and plan.model_references is not None:
        # REST v2 first (only what it changes), then GraphQL's full replace re-reads the result.
        if plan.request:
            client.update_endpoint(plan.resource_id, plan.request)
        save_model_references(client, plan.resource_id, plan.model_references)
        return client.get_endpoint(plan.resource_id)
    if plan.action == "update":
        updates: dict[Kind, Callable[[str, Mapping[str, Any]], Resource]] = {
            "volume": client.update_network_volume,
            "template": client.update_template,
            "endpoint": client.update_endpoint,
        }
        return updates[plan.kind](plan.resource_id, plan.request)
    gets: dict[Kind, Callable[[str], Resource]] = {
        "volume": client.get_network_volume,
        "template": client.get_template,
        "endpoint": client.get_endpoint,
    }
    return gets[plan.kind](plan.resource_id)


def _ensure(client: RunpodClient, plan: Plan, do_apply: bool) -> EnsureResult:
    if not do_apply:
        if plan.action == "create":
            record_pending(plan.kind, plan.name)
        return EnsureResult(plan, plan.current, applied=False)
    result = EnsureResult(plan, apply(client, plan), applied=True)
    clear_pending(plan.kind, plan.name)
    return result


def ensure_volume(client: RunpodClient, spec: VolumeSpec, *, apply: bool) -> EnsureResult:
    """Plan the network volume, and create/grow it when ``apply`` is true."""
    return _ensure(client, plan_volume(client, spec), apply)


def ensure_template(client: RunpodClient, spec: TemplateSpec, *, apply: bool) -> EnsureResult:
    """Plan the template, and create/update it when ``apply`` is true."""
    return _ensure(client, plan_template(client, spec), apply)


def ensure_endpoint(
    client: RunpodClient,
    spec: EndpointSpec,
    template_id: str | None = None,
    volume_id: str | None = None,
    *,
    apply: bool,
    template_spec: TemplateSpec | None = None,
) -> EnsureResult:
    """Plan the endpoint, and create/update it when ``apply`` is true (after the template and volume)."""
    return _ensure(client, plan_endpoint(client, spec, template_id, volume_id, template_spec=template_spec), apply)
