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
fixed at creation; an endpoint's workers can only mount a volume in their own data center, and that
data center must stock the endpoint's GPU pool or the workers stay THROTTLED forever; REST v2
endpoints copy the template's image and env at creation (no link is kept), so a changed template
reaches an existing endpoint only by a PATCH with ``templateId``.

CUDA: an image built for CUDA 13.0 (``runpod/worker-v1-vllm`` v2.19.0+) crash-loops, billed, on an
older host, so the endpoint carries its image's requirement (``gpu.allowedCudaVersions`` or
``minCudaVersion``, from :mod:`rpbook.cuda` unless the spec sets it), the plan shows it, and before
anything is created the catalog must show hosts with it for the pools in the data center (pinned or
the volume's); otherwise ``ConfigError`` names the pools and data centers that do offer it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal, Mapping, Sequence

from rpbook.controlplane import RunpodClient
from rpbook.resources import (AVAILABILITY_LEVELS, DataCenter, Endpoint, GpuType, NetworkVolume, Template,
                              by_name)
from rpbook.cuda import CudaRequirement, image_cuda_requirement
from rpbook.display import html_table
from rpbook.ledger import record_create
from rpbook.pending import NotCreated, clear_pending, pending, record_pending
from rpbook.errors import ConfigError, PlanConflictError
from rpbook.secrets import Secret, display_env_value, scrub
from rpbook.specs import EndpointSpec, TemplateSpec, VolumeSpec, check_pools

Kind = Literal["volume", "template", "endpoint"]
Action = Literal["create", "update", "none"]
Resource = NetworkVolume | Template | Endpoint

VOLUME_TYPE = "STANDARD"
VOLUME_USD_PER_GB_MONTH = 0.07
VOLUME_USD_PER_GB_MONTH_OVER_1TB = 0.05
ONE_TB_GB = 1000
"""Runpod's STANDARD network volume price: $0.07/GB/month for the first 1 TB (1,000 GB, as localpod
bills it), $0.05/GB/month beyond."""

_KIND_LABEL = {"volume": "network volume", "template": "template", "endpoint": "serverless endpoint"}


def volume_monthly_cost_usd(size_gb: int) -> float:
    """What a STANDARD network volume of ``size_gb`` costs per month, whether or not a worker runs."""
    if isinstance(size_gb, bool) or not isinstance(size_gb, (int, float)) or size_gb < 0:
        raise ConfigError(f"size_gb must be a number of GB >= 0, got {size_gb!r}")
    first = min(size_gb, ONE_TB_GB)
    rest = max(0, size_gb - ONE_TB_GB)
    return round(first * VOLUME_USD_PER_GB_MONTH + rest * VOLUME_USD_PER_GB_MONTH_OVER_1TB, 4)


# -- plans -------------------------------------------------------------------------------------


def _show(field_name: str, value: Any) -> str:
    """A value as a person may see it: absent as an em dash, secrets masked, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, Secret):
        return value.masked
    if field_name.startswith("env."):
        return display_env_value(field_name[4:], value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(field_name, v) for v in value) if value else "(none)"
    return scrub(str(value))


@dataclass(frozen=True, repr=False)
class FieldChange:
    """One field whose wanted value differs from the actual one (``actual`` None: not there yet)."""

    field: str
    wanted: Any
    actual: Any

    @property
    def wanted_text(self) -> str:
        return _show(self.field, self.wanted)

    @property
    def actual_text(self) -> str:
        return _show(self.field, self.actual)

    def __repr__(self) -> str:
        return f"FieldChange({self.field}: {self.actual_text} -> {self.wanted_text})"

    __str__ = __repr__


@dataclass(frozen=True, repr=False)
class Plan:
    """What ``apply`` would do to one resource, and why."""

    kind: Kind
    name: str
    action: Action
    changes: list[FieldChange] = field(default_factory=list)
    resource_id: str | None = None
    notes: list[str] = field(default_factory=list)
    request: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The body ``apply`` sends (create: whole; update: only changed fields). Secrets stay ``Secret``."""
    blocked: list[str] = field(default_factory=list)
    """Why it cannot be applied yet (a template or volume it needs does not exist)."""
    current: Resource | None = field(default=None, compare=False)
    """The resource as it is now (None when it is to be created)."""

    @property
    def changed_fields(self) -> list[str]:
        return [c.field for c in self.changes]

    @property
    def title(self) -> str:
        where = f" ({self.resource_id})" if self.resource_id else ""
        verb = {"create": "CREATE", "update": "UPDATE", "none": "no change"}[self.action]
        return f"{_KIND_LABEL[self.kind]} {self.name!r}{where}: {verb}"

    def rows(self) -> list[tuple[str, str, str]]:
        return [(c.field, c.wanted_text, c.actual_text) for c in self.changes]

    def __str__(self) -> str:
        lines = [self.title]
        rows = self.rows()
        if rows:
            header = ("field", "wanted", "actual")
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
            fmt = "  {:<%d}  {:<%d}  {}" % (widths[0], widths[1])
            lines.append(fmt.format(*header))
            lines.append(fmt.format("-" * widths[0], "-" * widths[1], "-" * widths[2]))
            lines += [fmt.format(*row) for row in rows]
        elif self.action == "none":
            lines.append("  nothing to change")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  blocked: {b}" for b in self.blocked]
        return scrub("\n".join(lines))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = {"create": "#1a7f37", "update": "#9a6700", "none": "#57606a"}[self.action]
        esc = html.escape
        parts = [f'<div class="rpbook-plan"><b style="color:{color}">{esc(self.title)}</b>']
        rows = self.rows()
        if rows:
            parts.append(html_table(["field", "wanted", "actual"], rows, code={0}))
        elif self.action == "none":
            parts.append("<div>nothing to change</div>")
        if self.notes or self.blocked:
            parts.append("<ul>")
            parts += [f"<li>{esc(n)}</li>" for n in self.notes]
            parts += [f"<li><b>blocked:</b> {esc(b)}</li>" for b in self.blocked]
            parts.append("</ul>")
        parts.append("</div>")
        return scrub("".join(parts))


@dataclass(frozen=True)
class EnsureResult:
    """A plan, and the resource: after ``apply`` the applied one; without it the current one (None
    when it does not exist yet), which may still differ from the plan's wanted values."""

    plan: Plan
    resource: Resource | None
    applied: bool = False

    @property
    def id_or_pending(self) -> str | NotCreated:
        """The resource's id, or (a dry run that would create it) what the next steps skip on."""
        if self.resource is not None:
            return self.resource.id
        return NotCreated(self.plan.kind, self.plan.name)

    def __str__(self) -> str:
        return str(self.plan) + ("\n  applied" if self.applied else "\n  not applied (apply=False)")

    def _repr_html_(self) -> str:
        state = "applied" if self.applied else "not applied (apply=False)"
        return self.plan._repr_html_() + f"<div><i>{html.escape(state)}</i></div>"


def _single(kind: Kind, name: str, matches: Sequence[Any]) -> Any | None:
    if len(matches) > 1:
        ids = ", ".join(m.id for m in matches)
        raise PlanConflictError(
            f"{len(matches)} {_KIND_LABEL[kind]}s are named {name!r} ({ids}); rpbook adopts resources by name "
            "and will not guess which one you mean, nor create another. Delete or rename all but one in the "
            "Runpod console, or choose another name.")
    return matches[0] if matches else None


def _env_value(value: Any) -> Any:
    return value.reveal() if isinstance(value, Secret) else value


def _env_changes(wanted: Mapping[str, Any], actual: Mapping[str, str] | None) -> list[FieldChange]:
    """Per-key env differences; a ``Secret`` compares by value. A key only in ``actual`` is removed."""
    actual = actual or {}
    changes = [FieldChange(f"env.{key}", value, actual.get(key)) for key, value in wanted.items()
               if key not in actual or _env_value(value) != actual[key]]
    changes += [FieldChange(f"env.{key}", None, value) for key, value in actual.items() if key not in wanted]
    return changes


def _compare(wanted: Mapping[str, Any], actual: Mapping[str, Any]) -> list[FieldChange]:
    return [FieldChange(name, value, actual.get(name)) for name, value in wanted.items()
            if value != actual.get(name)]


# -- network volumes ---------------------------------------------------------------------------


def plan_volume(client: RunpodClient, spec: VolumeSpec) -> Plan:
    """Create the volume, grow it, or leave it; never shrink it, never move it."""
    volume: NetworkVolume | None = _single("volume", spec.name, by_name(client.list_network_volumes(), spec.name))
    cost = f"about ${volume_monthly_cost_usd(spec.size_gb):.2f}/month for {spec.size_gb} GB while it exists"
    if volume is None:
        body = {"name": spec.name, "size": spec.size_gb, "dataCenter": spec.data_center, "type": VOLUME_TYPE}
        changes = [FieldChange("size_gb", spec.size_gb, None), FieldChange("data_center", spec.data_center, None),
                   FieldChange("type", VOLUME_TYPE, None)]
        return Plan("volume", spec.name, "create", changes, None,
                    [f"{cost}, billed even when no worker runs"], body)
    if volume.data_center != spec.data_center:
        raise PlanConflictError(
            f"network volume {spec.name!r} ({volume.id}) is in {volume.data_center}, but {spec.data_center} is "
            f"wanted; a volume's data center cannot change. Either set data_center to {volume.data_center!r} "
            "(check_data_center() tells whether it offers your GPU pool), pick another volume name, or delete "
            "the volume in the Runpod console (its files are lost) and run again.")
    notes: list[str] = []
    if volume.type != VOLUME_TYPE:
        notes.append(f"the volume is {volume.type}, not {VOLUME_TYPE}; the tier is fixed at creation")
    if spec.size_gb > volume.size_gb:
        notes.append(cost)
        return Plan("volume", spec.name, "update", [FieldChange("size_gb", spec.size_gb, volume.size_gb)],
                    volume.id, notes, {"size": spec.size_gb}, current=volume)
    if spec.size_gb < volume.size_gb:
        notes.append(f"volumes can grow, never shrink: {spec.name!r} stays at {volume.size_gb} GB "
                     f"(wanted {spec.size_gb} GB)")
    return Plan("volume", spec.name, "none", [], volume.id, notes, current=volume)


# -- templates ---------------------------------------------------------------------------------


def _template_wanted(spec: TemplateSpec) -> dict[str, Any]:
    wanted = {"image": spec.image, "disk_gb": spec.disk_gb, "serverless": spec.serverless, "args": spec.args,
              "ports": tuple(spec.ports)}
    if spec.cuda_versions is not None:  # None: no known requirement, the template's is left alone
        wanted["allowed_cuda_versions"] = spec.cuda_versions
    return wanted


_TEMPLATE_FIELDS = {"image": "image", "disk_gb": "disk", "serverless": "serverless", "args": "args", "ports": "ports",
                    "allowed_cuda_versions": "allowedCudaVersions"}


def plan_template(client: RunpodClient, spec: TemplateSpec) -> Plan:
    """Create the template or PATCH the fields (and env keys) that differ."""
    template: Template | None = _single("template", spec.name, by_name(client.list_templates(), spec.name))
    wanted = _template_wanted(spec)
    if template is None:
        changes = [FieldChange(name, value, None) for name, value in wanted.items() if value not in ("", ())]
        changes += _env_changes(spec.env, None)
        body: dict[str, Any] = {"name": spec.name, "image": spec.image, "env": dict(spec.env), "disk": spec.disk_gb,
                                "serverless": spec.serverless, "startSsh": False, "startJupyter": False}
        if spec.args:
            body["args"] = spec.args
        if spec.ports:
            body["ports"] = list(spec.ports)
        if wanted.get("allowed_cuda_versions"):
            body["allowedCudaVersions"] = list(wanted["allowed_cuda_versions"])
        return Plan("template", spec.name, "create", changes, None, [], body)
    actual = {"image": template.image, "disk_gb": template.disk_gb, "serverless": template.serverless,
              "args": template.args, "ports": tuple(template.ports),
              "allowed_cuda_versions": template.allowed_cuda_versions}
    changes = _compare(wanted, actual)
    env_changes = _env_changes(spec.env, template.env)
    body = {_TEMPLATE_FIELDS[c.field]: (list(c.wanted) if isinstance(c.wanted, tuple) else c.wanted)
            for c in changes}
    notes: list[str] = []
    if env_changes:
        body["env"] = dict(spec.env)  # PATCH replaces the whole env map
        notes.append("endpoints created from this template keep their copy of image and env until "
                     "ensure_endpoint re-applies the template")
    changes += env_changes
    return Plan("template", spec.name, "update" if changes else "none", changes, template.id, notes, body,
                current=template)


# -- data centers ------------------------------------------------------------------------------


def _pools(pool: str | Sequence[str]) -> tuple[str, ...]:
    pools = (pool,) if isinstance(pool, str) else tuple(pool)
    if not pools or not all(isinstance(p, str) and p for p in pools):
        raise ConfigError(f"pool: give a serverless GPU pool id such as 'AMPERE_24' (or a list), got {pool!r}")
    return pools


def _pool_stock(gpus: Sequence[GpuType], pools: Sequence[str]) -> dict[str, dict[str, str]]:
    """data center id -> pool -> best serverless stock level of the pool's GPU types there."""
    stock: dict[str, dict[str, str]] = {}
    for gpu in gpus:
        if gpu.pool not in pools:
            continue
        for dc in gpu.data_centers:
            if dc.availability == "NONE":
                continue
            levels = stock.setdefault(dc.id, {})
            old = levels.get(gpu.pool, "NONE")
            levels[gpu.pool] = max(old, dc.availability, key=_level)
    return stock


def _level(value: str) -> int:
    return AVAILABILITY_LEVELS.index(value) if value in AVAILABILITY_LEVELS else 0


def _cuda_gpus(client: RunpodClient, cuda: CudaRequirement | None) -> list[GpuType]:
    """The serverless catalog, its availability scoped to hosts meeting ``cuda`` when constrained."""
    params = cuda.catalog_params() if cuda is not None and cuda.constrained else None
    return client.gpu_types(serverless_availability=True, cuda=params)


def _qualifying(client: RunpodClient, pools: Sequence[str], cuda: CudaRequirement | None = None
                ) -> tuple[list[DataCenter], list[DataCenter], dict[str, dict[str, str]]]:
    gpus = _cuda_gpus(client, cuda)
    check_pools("pool", pools, gpus)
    centers = client.data_centers(gpu_availability=False)
    stock = _pool_stock(gpus, pools)
    good = [dc for dc in centers if dc.offers_standard_volumes and stock.get(dc.id)]
    return centers, good, stock


def _offering(good: Sequence[DataCenter], pools: Sequence[str], cuda: CudaRequirement | None = None) -> str:
    names = ", ".join(dc.id for dc in good)
    with_cuda = f" on hosts with {cuda.describe()}" if cuda is not None and cuda.constrained else ""
    return (f"data centers that offer {'/'.join(pools)} for serverless{with_cuda} and STANDARD network volumes: "
            f"{names or 'none; try other GPU pools'}")


def check_data_center(client: RunpodClient, data_center: str, pool: str | Sequence[str], *,
                      cuda: CudaRequirement | None = None) -> DataCenter:
    """The data center, if it stocks (one of) the GPU pool(s) for serverless and offers STANDARD
    network volumes; otherwise ``ConfigError`` naming the data centers that do. A volume pins the
    endpoint to its data center, so one without the pool means workers that never start. With
    ``cuda`` (what the image needs, e.g. ``image_cuda_requirement(template_spec.image)``) the pool's
    hosts there must also offer that CUDA version."""
    pools = _pools(pool)
    centers, good, stock = _qualifying(client, pools, cuda)
    dc = next((c for c in centers if c.id == data_center), None)
    if dc is None:
        raise ConfigError(f"data_center {data_center!r} is not in Runpod's catalog; {_offering(good, pools, cuda)}")
    if not dc.offers_standard_volumes:
        raise ConfigError(f"data_center {data_center!r} offers no STANDARD network volumes; "
                          f"{_offering(good, pools, cuda)}")
    if not stock.get(dc.id):
        if cuda is not None and cuda.constrained:
            raise ConfigError(f"data_center {data_center!r} has no {'/'.join(pools)} hosts with {cuda.describe()} "
                              "(what the worker image needs) for serverless, so workers would stay THROTTLED or, "
                              f"without the constraint, crash-loop; {_offering(good, pools, cuda)}")
        raise ConfigError(f"data_center {data_center!r} has no {'/'.join(pools)} GPUs for serverless, so workers "
                          f"would stay THROTTLED; {_offering(good, pools)}")
    return dc


def pick_data_center(client: RunpodClient, pool: str | Sequence[str], preferred: str | None = None, *,
                     cuda: CudaRequirement | None = None) -> DataCenter:
    """``preferred`` if it qualifies (else ``ConfigError`` naming ones that do); without one, the data
    center with the best serverless stock of the first pool (then the next ...), in catalog order.
    With ``cuda`` only hosts offering that CUDA version count (see ``check_data_center``)."""
    pools = _pools(pool)
    if preferred:
        return check_data_center(client, preferred, pools, cuda=cuda)
    centers, good, stock = _qualifying(client, pools, cuda)
    if not good:
        with_cuda = f" on hosts with {cuda.describe()}" if cuda is not None and cuda.constrained else ""
        raise ConfigError(f"no data center offers {'/'.join(pools)} for serverless{with_cuda} together with STANDARD "
                          "network volumes; choose other GPU pools")
    order = {dc.id: i for i, dc in enumerate(centers)}
    return min(good, key=lambda dc: (tuple(-_level(stock[dc.id].get(p, "NONE")) for p in pools), order[dc.id]))


def volume_data_center(client: RunpodClient, volume_name: str, pool: str | Sequence[str],
                       preferred: str | None = None, *, cuda: CudaRequirement | None = None) -> DataCenter:
    """Where the volume named ``volume_name`` lives or should live. An existing volume cannot move,
    so its data center wins when none is asked for (and must still offer the pools, on hosts with
    ``cuda`` when given); a different ``preferred`` one is a conflict the plan reports. Without a
    volume: ``pick_data_center``."""
    existing = _single("volume", volume_name, by_name(client.list_network_volumes(), volume_name))
    if existing is not None and not preferred:
        return check_data_center(client, existing.data_center, pool, cuda=cuda)
    return pick_data_center(client, pool, preferred, cuda=cuda)


def find_endpoint_id(client: RunpodClient, name: str) -> str | NotCreated:
    """The id of the endpoint named ``name``, printed with it; in a dry run whose plan would have
    created it, a :class:`NotCreated` the next steps skip on (see ``rpbook.pending``)."""
    endpoint = _single("endpoint", name, by_name(client.list_endpoints(), name))
    if endpoint is not None:
        print(f"endpoint {endpoint.name}: {endpoint.id}")
        return endpoint.id
    missing = pending("endpoint", name)
    if missing is None:
        raise ConfigError(f"no serverless endpoint is named {name!r}; create it with runbook 02 (apply = True) "
                          "or set endpoint_name to an existing one")
    print(f"{missing}: nothing to wake or check")
    return missing


def find_endpoint(client: RunpodClient, name: str) -> Endpoint:
    """The one endpoint named ``name`` (how runbooks after 02 find it); a clear error when there is
    none (run runbook 02 with ``apply = True``) or more than one."""
    endpoint = _single("endpoint", name, by_name(client.list_endpoints(), name))
    if endpoint is None:
        raise ConfigError(f"no serverless endpoint is named {name!r}; create it with runbook 02 (apply = True) "
                          "or set endpoint_name to an existing one")
    return endpoint


# -- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Container:
    """What workers run, as the endpoint should have it (from the template or its spec)."""

    image: str
    env: Mapping[str, Any]
    disk_gb: int


def _resolve_template(client: RunpodClient, spec: EndpointSpec, template_id: str | None,
                      template_spec: TemplateSpec | None) -> tuple[str | None, _Container | None]:
    if template_spec is not None and template_spec.name != spec.template_name:
        raise ConfigError(f"EndpointSpec.template_name is {spec.template_name!r} but the TemplateSpec given is "
                          f"{template_spec.name!r}; make them the same")
    template: Template | None
    if template_id is not None:
        template = client.get_template(template_id)
    else:
        template = _single("template", spec.template_name, by_name(client.list_templates(), spec.template_name))
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
    return _single("volume", spec.network_volume_name,
                   by_name(client.list_network_volumes(), spec.network_volume_name))


def _endpoint_actual(endpoint: Endpoint) -> dict[str, Any]:
    return {"image": endpoint.image, "disk_gb": endpoint.disk_gb, "gpu_pools": endpoint.gpu_pools,
            "gpu_count": endpoint.gpu_count, "workers_min": endpoint.workers_min,
            "workers_max": endpoint.workers_max, "idle_timeout_s": endpoint.idle_timeout_s,
            "scaler": endpoint.scaler_type, "scaler_value": endpoint.scaler_value,
            "execution_timeout_s": endpoint.timeout_ms / 1000, "flashboot": endpoint.flashboot_enabled,
            "network_volume": endpoint.network_volume_ids, "data_center": endpoint.data_center_ids,
            "allowed_cuda_versions": endpoint.allowed_cuda_versions, "min_cuda_version": endpoint.min_cuda_version}


def _scaling(spec: EndpointSpec) -> dict[str, Any]:
    if spec.scaler == "REQUEST_COUNT":
        return {"type": "REQUEST_COUNT", "requestCount": int(spec.scaler_value)}
    return {"type": "QUEUE_DELAY", "queueDelay": spec.scaler_value}


def _update_body(changed: set[str], spec: EndpointSpec, template_id: str | None, wanted: Mapping[str, Any]
                 ) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if changed & {"image", "disk_gb"} or any(f.startswith("env.") for f in changed):
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
    workers = {}
    if "workers_min" in changed:
        workers["min"] = spec.workers_min
    if "workers_max" in changed:
        workers["max"] = spec.workers_max
    if "idle_timeout_s" in changed:
        workers["idleTimeout"] = spec.idle_timeout_s
    if workers:
        body["workers"] = workers
    if changed & {"scaler", "scaler_value"}:
        body["scaling"] = _scaling(spec)
    if "execution_timeout_s" in changed:
        body["timeout"] = spec.timeout_ms
    if "flashboot" in changed:
        body["flashboot"] = spec.flashboot_mode
    if "network_volume" in changed and isinstance(wanted["network_volume"], tuple):
        body["networkVolumes"] = list(wanted["network_volume"])
    if "data_center" in changed:
        body["dataCenterIds"] = list(wanted["data_center"])
    return body


def endpoint_cuda(spec: EndpointSpec, image: str | None) -> CudaRequirement | None:
    """The endpoint's CUDA constraint: the spec's own, else what its image needs (``rpbook.cuda``),
    else None (not known: the endpoint's CUDA fields are left as they are)."""
    if spec.cuda is not None:
        return spec.cuda
    return image_cuda_requirement(image) if image else None


def _check_cuda(client: RunpodClient, spec: EndpointSpec, cuda: CudaRequirement, image: str | None,
                data_center: str | None) -> list[str]:
    """Refuse (``ConfigError``) when no host offers ``cuda`` for the pools where workers may run (the
    pinned data center, else anywhere); notes for pools that lack it there. Read from the catalog's
    CUDA-scoped availability, which lists only data centers with hosts on a matching version."""
    gpus = _cuda_gpus(client, cuda)
    stock = _pool_stock(gpus, spec.gpu_pools)
    pools = ", ".join(spec.gpu_pools)
    source = f"{image} needs it ({cuda.source})" if spec.cuda is None and image else "EndpointSpec asks for it"
    why = f"{source}; a worker on another host never starts (crash loop, billed) or waits THROTTLED"
    offering = "; ".join(f"{dc} ({', '.join(sorted(levels))})" for dc, levels in sorted(stock.items()) if levels)

    def pools_offering(where: str | None) -> str:
        found = sorted({g.pool for g in gpus if g.pool and any(where in (None, d.id) for d in g.data_centers
                                                                if d.availability != "NONE")})
        return ", ".join(found) or "none"

    if data_center is not None:
        here = stock.get(data_center, {})
        if not here:
            raise ConfigError(
                f"data center {data_center} has no host with {cuda.describe()} for the GPU pools {pools}: {why}. "
                f"Data centers whose hosts offer it for these pools: {offering or 'none'}; pools that offer it in "
                f"{data_center}: {pools_offering(data_center)}. Change the data center (and so the volume), "
                "gpu_pools or the image tag.")
        missing = [p for p in spec.gpu_pools if p not in here]
        if missing:
            usable = ", ".join(p for p in spec.gpu_pools if p in here)
            lacking = ", ".join(missing)
            return [f"{data_center} has no {lacking} host with {cuda.describe()}; workers will use {usable} only"]
        return []
    if not stock:
        raise ConfigError(f"no data center has hosts with {cuda.describe()} for the GPU pools {pools}: {why}. "
                          f"Pools that offer it: {pools_offering(None)}. Change gpu_pools or the image tag.")
    return []


def plan_endpoint(client: RunpodClient, spec: EndpointSpec, template_id: str | None = None,
                  volume_id: str | None = None, *, template_spec: TemplateSpec | None = None) -> Plan:
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
    notes: list[str] = []
    blocked: list[str] = []
    if template_id is None:
        blocked.append(f"template {spec.template_name!r} does not exist yet: run ensure_template first")
    if volume is None and spec.network_volume_name is not None:
        blocked.append(f"network volume {spec.network_volume_name!r} does not exist yet: run ensure_volume first")

    data_center = spec.data_center
    if volume is not None:
        if data_center is not None and volume.data_center != data_center:
            raise ConfigError(
                f"EndpointSpec.data_center is {data_center!r} but network volume {volume.name!r} ({volume.id}) is "
                f"in {volume.data_center}: workers can only mount a volume in their own data center. Set "
                f"data_center to {volume.data_center!r} or use a volume in {data_center}.")
        data_center = volume.data_center
    if data_center is not None:
        stock = _pool_stock(gpus, spec.gpu_pools).get(data_center, {})
        if not stock:
            good = sorted(dc for dc, levels in _pool_stock(gpus, spec.gpu_pools).items() if levels)
            raise ConfigError(
                f"data center {data_center} has none of the GPU pools {', '.join(spec.gpu_pools)} for serverless, "
                f"so the endpoint's workers would stay THROTTLED; data centers that have them: "
                f"{', '.join(good) or 'none'}. Change gpu_pools or the data center (and so the volume).")
        missing = [p for p in spec.gpu_pools if p not in stock]
        if missing:
            notes.append(f"{data_center} has no {', '.join(missing)} for serverless; workers will use "
                         f"{', '.join(p for p in spec.gpu_pools if p in stock)} only")
    image = container.image if container is not None else None
    cuda = endpoint_cuda(spec, image)
    if cuda is not None and cuda.constrained:
        notes += _check_cuda(client, spec, cuda, image, data_center)
        if spec.cuda is None:
            notes.append(f"{cuda.describe()}: what {image} needs ({cuda.source})")
    elif cuda is None and image:
        notes.append(f"no CUDA requirement is known for {image}: workers may land on any host; if the image needs "
                     "one, set EndpointSpec.allowed_cuda_versions or min_cuda_version")

    wanted: dict[str, Any] = {}
    if container is not None:
        wanted.update(image=container.image, disk_gb=container.disk_gb)
    wanted.update(gpu_pools=tuple(spec.gpu_pools), gpu_count=spec.gpu_count, workers_min=spec.workers_min,
                  workers_max=spec.workers_max)
    if spec.scaler == "QUEUE_DELAY":
        wanted["idle_timeout_s"] = spec.idle_timeout_s  # not applicable to REQUEST_COUNT (the API refuses it)
    wanted.update(scaler=spec.scaler, scaler_value=spec.scaler_value, execution_timeout_s=spec.execution_timeout_s,
                  flashboot=spec.flashboot)
    if volume is not None:
        wanted["network_volume"] = (volume.id,)
    elif spec.network_volume_name is None:
        wanted["network_volume"] = ()
    if data_center is not None:
        wanted["data_center"] = (data_center,)
    if cuda is not None:
        wanted.update(allowed_cuda_versions=cuda.allowed, min_cuda_version=cuda.minimum)

    matches = by_name(client.list_endpoints(), spec.name)
    endpoint: Endpoint | None = _single("endpoint", spec.name, matches)
    if endpoint is None:
        changes = [FieldChange(name, value, None) for name, value in wanted.items() if value not in ((), None)]
        if volume is None and spec.network_volume_name is not None:
            changes.append(FieldChange("network_volume", f"{spec.network_volume_name} (to be created)", None))
        if container is not None:
            changes += _env_changes(container.env, None)
        body: dict[str, Any] = {"name": spec.name, "type": "QUEUE", "templateId": template_id,
                                "gpu": {"pools": list(spec.gpu_pools), "count": spec.gpu_count},
                                "workers": {"min": spec.workers_min, "max": spec.workers_max},
                                "scaling": _scaling(spec), "timeout": spec.timeout_ms,
                                "flashboot": spec.flashboot_mode}
        if spec.scaler == "QUEUE_DELAY":
            body["workers"]["idleTimeout"] = spec.idle_timeout_s
        if volume is not None:
            body["networkVolumes"] = [volume.id]
        if data_center is not None:
            body["dataCenterIds"] = [data_center]
        if cuda is not None:  # an explicit [] states "no constraint" (else a template's would be inherited)
            body["gpu"].update(cuda.endpoint_gpu_fields() or {"allowedCudaVersions": []})
        return Plan("endpoint", spec.name, "create", changes, None, notes, body, blocked)

    actual = _endpoint_actual(endpoint)
    if "network_volume" not in wanted:  # the volume is still to be created: it will be a change
        wanted["network_volume"] = f"{spec.network_volume_name} (to be created)"
    changes = _compare(wanted, actual)
    if container is not None:
        changes += _env_changes(container.env, endpoint.env)
    changed = {c.field for c in changes}
    if "flashboot" not in changed and spec.flashboot and endpoint.flashboot == "PRIORITY_FLASHBOOT":
        notes.append("FlashBoot is on with priority capacity (PRIORITY_FLASHBOOT); left as it is")
    if changed & {"allowed_cuda_versions", "min_cuda_version"}:
        notes.append("the CUDA constraint takes effect as workers are replaced (running ones finish first)")
    if "gpu_pools" in changed and endpoint.gpu_excluded_types:
        notes.append(f"changing gpu_pools clears the excluded GPU types ({', '.join(endpoint.gpu_excluded_types)})")
    if changed & {"image", "disk_gb"} or any(f.startswith("env.") for f in changed):
        notes.append("image/env come from the template: the update re-applies it (templateId), replacing the "
                     "endpoint's env")
        notes.append("a new release: running workers finish their jobs and are replaced (rolling update); "
                     "rpbook.rollout.after_apply follows it")
    body = _update_body(changed, spec, template_id, wanted) if changes else {}
    # An update is blocked only by what its body needs: a template to re-apply, a volume to attach.
    needed = [b for b in blocked if (b.startswith("template") and "templateId" in body)
              or (b.startswith("network volume") and "network_volume" in changed)]
    notes += [f"{b} (image and env were not compared)" for b in blocked if b not in needed]
    blocked = needed
    return Plan("endpoint", spec.name, "update" if changes else "none", changes, endpoint.id, notes, body,
                blocked, current=endpoint)


# -- apply and ensure --------------------------------------------------------------------------


def apply(client: RunpodClient, plan: Plan) -> Resource:
    """Execute a plan: create -> POST, update -> PATCH (only the changed fields), none -> GET."""
    if plan.blocked and plan.action != "none":
        raise ConfigError(f"cannot apply the plan for {_KIND_LABEL[plan.kind]} {plan.name!r}: "
                          + "; ".join(plan.blocked))
    if plan.action == "create":
        create = {"volume": client.create_network_volume, "template": client.create_template,
                  "endpoint": client.create_endpoint}[plan.kind]
        # Written down before the POST leaves (rpbook.ledger): teardown must find it even after a crash.
        return record_create(client.settings, plan.kind, plan.name, lambda: create(plan.request), attrgetter("id"))
    if plan.resource_id is None:
        raise ConfigError(f"the plan for {plan.name!r} has action {plan.action!r} but no resource id")
    if plan.action == "update":
        update = {"volume": client.update_network_volume, "template": client.update_template,
                  "endpoint": client.update_endpoint}[plan.kind]
        return update(plan.resource_id, plan.request)
    get = {"volume": client.get_network_volume, "template": client.get_template,
           "endpoint": client.get_endpoint}[plan.kind]
    return get(plan.resource_id)


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


def ensure_endpoint(client: RunpodClient, spec: EndpointSpec, template_id: str | None = None,
                    volume_id: str | None = None, *, apply: bool,
                    template_spec: TemplateSpec | None = None) -> EnsureResult:
    """Plan the endpoint, and create/update it when ``apply`` is true (after the template and volume)."""
    return _ensure(client, plan_endpoint(client, spec, template_id, volume_id, template_spec=template_spec), apply)
