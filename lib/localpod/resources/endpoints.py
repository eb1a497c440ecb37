"""Serverless endpoints: every rule about creating, changing and deleting one, for both APIs.

REST v2 (``/v2/serverless``) and GraphQL (``saveEndpoint``...) parse their own request shapes into
``Endpoint`` field values and hand them here; this module links the template, checks the rules on
the endpoint as it would be stored, stores it and tells the platform. Rules, with their source:

- ``gpu.pools`` are pool ids (``ADA_24``), exclusions are GPU types inside those pools, and a
  selection that excludes every card is refused;
- a network volume must exist and, when data centers are given, lie in one of them; at most one
  volume per data center; volumes pin the endpoint to their data centers (a worker can only mount
  a volume in its own data center). Whether those data centers stock the pool is *not* checked, as
  upstream: the workers simply stay THROTTLED;
- an exact CUDA set and a CUDA floor are mutually exclusive when both are non-empty; when neither
  is sent on create, the template's ``allowedCudaVersions`` is inherited (REST v2 spec: "inherit
  the template's constraint when creating from ``templateId``"). A version no host reports is
  accepted, as upstream (the spec: "yields a capacity error rather than a fallback"): the workers
  stay THROTTLED. Without either, a worker may land on a host too old for its image and
  crash-loop (:mod:`localpod.serverless.imagecuda`);
- the execution timeout is 5 s to 7 days (Runpod's endpoint settings docs); GraphQL's
  ``executionTimeoutMs`` also takes 0 for no limit;
- ``version`` is the release workers run: bumped when something a worker runs with changes
  (:data:`localpod.store.RELEASE_FIELDS`), not for name, scaling or worker counts, so REST v2's
  ``/workers`` can flag stale workers;
- deleting: REST v2 ``DELETE /v2/serverless/{id}`` needs no scale-down ("all workers are
  terminated and any queued or in-progress jobs are cancelled", openapi-v2.json), while GraphQL
  ``deleteEndpoint`` is refused until ``workersMin`` and ``workersMax`` are both 0 (runpod-api.md,
  from Runpod's ``sdks/graphql/manage-endpoints.mdx``). A REST delete also removes the endpoint's
  "bound template" (openapi-v2.json, ``deleteEndpoint``: "Permanently deletes a serverless endpoint
  and its bound template"): localpod deletes the template the endpoint was created from
  (``templateId``). The spec does not say what happens to a template another endpoint still uses;
  localpod keeps it then (deleting it would break that endpoint, and ``deleteTemplate`` refuses a
  bound template), which is localpod's assumption. GraphQL's ``deleteEndpoint`` keeps the template
  (its docs say nothing of one).

- cached models (GraphQL ``modelReferences`` only; REST v2 has no field): each must be
  ``https://huggingface.co/<org>/<model>:<revision>`` (:mod:`localpod.resources.modelrefs`, after
  runpodctl); a REST v2 update keeps them, a GraphQL ``saveEndpoint`` replaces them like every field.

``LOAD_BALANCER`` endpoints are refused in both APIs: localpod does not emulate them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from localpod import catalog, limits
from localpod.resources import modelrefs
from localpod.resources.account import QUOTA_MESSAGE, quota_exceeded
from localpod.resources.common import EndpointListener, copy_into
from localpod.resources.errors import ResourceError, Wording
from localpod.resources.templates import Templates, linked_container
from localpod.store import Endpoint, Store, Template

MIN_TIMEOUT_MS = limits.MIN_EXECUTION_TIMEOUT_MS
MAX_TIMEOUT_MS = limits.MAX_EXECUTION_TIMEOUT_MS
"""An endpoint's execution timeout bounds, 5 s to 7 days (Runpod's endpoint settings docs): the
same as a job's ``policy.executionTimeout``, so declared once, in :mod:`localpod.limits`."""


@dataclass(frozen=True)
class EndpointApi:
    """What differs between the APIs for endpoints: their wording and two rules of GraphQL's."""

    wording: Wording
    zero_timeout_is_no_limit: bool
    delete_needs_zero_workers: bool
    delete_removes_template: bool


_TIMEOUTS = {
    "min": MIN_TIMEOUT_MS,
    "max": MAX_TIMEOUT_MS,
    "min_s": MIN_TIMEOUT_MS / 1000,
    "max_days": MAX_TIMEOUT_MS / 86_400_000,
}

REST = EndpointApi(
    Wording(
        "REST v2",
        {
            "not_found": ("id", "serverless endpoint {id!r} not found"),
            "load_balancer": ("type", "LOAD_BALANCER endpoints are not emulated by localpod; use QUEUE"),
            "workers_order": ("workers.max", "must be >= workers.min"),
            "quota": ("workers.max", QUOTA_MESSAGE),
            "idle_not_applicable": (
                "workers.idleTimeout",
                "not applicable to a queue endpoint scaling on REQUEST_COUNT",
            ),
            "cuda_exclusive": ("gpu.minCudaVersion", "mutually exclusive with a non-empty gpu.allowedCudaVersions"),
            "timeout": ("timeout", "must be between {min} and {max} ms"),
            "unknown_pool": ("gpu.pools[{i}]", "unknown GPU pool {pool!r}; valid pools: {valid}"),
            "excluded_not_in_pools": ("gpu.excludedTypes[{i}]", "{gpu!r} is not a GPU type in gpu.pools"),
            "excludes_all": ("gpu.excludedTypes", "excludes every GPU type of gpu.pools; keep at least one"),
            "unknown_dc": ("dataCenterIds[{i}]", "unknown data center {dc!r}; valid: {valid}"),
            "volume_missing": ("networkVolumes[{i}]", "network volume {volume!r} does not exist"),
            "volume_outside": (
                "networkVolumes[{i}]",
                "volume {volume!r} is in {dc}, which is not in dataCenterIds ({wanted})",
            ),
            "volume_twin": (
                "networkVolumes[{i}]",
                "at most one volume per data center; {volume!r} and {other!r} are both in {dc}",
            ),
        },
    ),
    zero_timeout_is_no_limit=False,
    delete_needs_zero_workers=False,
    delete_removes_template=True,
)

GRAPHQL = EndpointApi(
    Wording(
        "GraphQL",
        {
            "not_found": ("id", "Endpoint {id} not found"),
            "load_balancer": ("type", "Load-balancer (LB) endpoints are not emulated by localpod; use QB"),
            "workers_order": ("workersMax", "workersMin ({min}) must not exceed workersMax ({max})"),
            "quota": ("workersMax", QUOTA_MESSAGE),
            "cuda_exclusive": (
                "minCudaVersion",
                "minCudaVersion and a non-empty allowedCudaVersions are mutually exclusive",
            ),
            "timeout": (
                "executionTimeoutMs",
                "executionTimeoutMs must be 0 (no limit) or between {min} ({min_s:g} s) and {max} ({max_days:g} days)",
            ),
            "unknown_pool": ("gpuIds", 'Unknown GPU pool "{pool}" in gpuIds; valid pools: {valid}'),
            "excluded_not_in_pools": ("gpuIds", 'Excluded GPU type "{gpu}" is not in the pools {pools}'),
            "excludes_all": ("gpuIds", "gpuIds excludes every GPU type of its pools; leave at least one"),
            "unknown_dc": (
                "locations",
                'Unknown location "{dc}": expected data center ids such as {first} or country codes',
            ),
            "volume_missing": ("networkVolumeId", "Network volume {volume} not found"),
            "volume_outside": (
                "networkVolumeId",
                "Network volume {volume} is in {dc}, which is not among the endpoint's locations ({wanted_csv})",
            ),
            "volume_twin": (
                "networkVolumeIds",
                "At most one network volume per data center: {other} and {volume} are both in {dc}",
            ),
            "has_workers": (
                "id",
                "Endpoint {id} still has workers (workersMin {min}, workersMax {max}): scale it to 0 "
                "(workersMin 0, workersMax 0) before deleting it",
            ),
        },
    ),
    zero_timeout_is_no_limit=True,
    delete_needs_zero_workers=True,
    delete_removes_template=False,
)


class Endpoints:
    """Every rule about serverless endpoints, over the shared store, for one API."""

    def __init__(self, store: Store, listener: EndpointListener, api: EndpointApi, templates: Templates) -> None:
        self.store = store
        self.listener = listener
        self.api = api
        self.templates = templates

    # -- reading -----------------------------------------------------------------------------

    def get(self, endpoint_id: str) -> Endpoint:
        endpoint = self.store.endpoints.get(endpoint_id)
        if endpoint is None:
            raise self.api.wording.error("not_found", "not_found", id=endpoint_id)
        return endpoint

    def all(self) -> list[Endpoint]:
        return list(self.store.endpoints.values())

    def check_type(self, endpoint_type: str) -> None:
        """Refuse what localpod does not emulate (checked before anything else of a request)."""
        if endpoint_type == "LOAD_BALANCER":
            raise self.api.wording.error("load_balancer", "unsupported")

    # -- writing -----------------------------------------------------------------------------

    def create(
        self,
        fields: Mapping[str, Any],
        *,
        template_id: str | None = None,
        defaults: Mapping[str, Any] | None = None,
        idle_timeout_sent: bool = False,
    ) -> Endpoint:
        """A new endpoint from ``fields`` (``Endpoint`` field names): the API's ``defaults``, then
        the template's container settings, then ``fields``."""
        candidate = self._build(self.store.new_endpoint_id(), fields, template_id, defaults)
        self._check(candidate, idle_timeout_sent, previous_max=0)
        with self.store.change():
            self.store.endpoints[candidate.id] = candidate
        self.listener.endpoint_created(candidate)
        return candidate

    def replace(self, endpoint_id: str, fields: Mapping[str, Any], *, template_id: str) -> Endpoint:
        """GraphQL ``saveEndpoint`` with an id: the endpoint becomes ``fields`` (anything not given
        takes its default again), keeping its id, creation time and version history."""
        existing = self.get(endpoint_id)
        kept = {"version": existing.version, "created_at": existing.created_at}
        candidate = self._build(existing.id, {**fields, **kept}, template_id, None)
        return self._save_over(existing, candidate, idle_timeout_sent=False)

    def update(
        self,
        endpoint_id: str,
        changes: Mapping[str, Any],
        *,
        template_id: str | None = None,
        idle_timeout_sent: bool = False,
    ) -> Endpoint:
        """Change only the given fields. With ``template_id`` the endpoint is re-pointed at that
        template and takes its container settings, ``changes`` on top."""
        existing = self.get(endpoint_id)
        template = self.templates.serverless(template_id) if template_id is not None else None
        values = {**changes, **linked_container(template, changes)}
        if template is not None:
            values["template_id"] = template.id
        return self._save_over(existing, dataclasses.replace(existing, **values), idle_timeout_sent)

    def link_template(self, endpoint_id: str, template_id: str) -> Endpoint:
        """GraphQL ``updateEndpointTemplate``: the template's container settings, whole."""
        existing = self.get(endpoint_id)
        template = self.templates.serverless(template_id)
        values = {"template_id": template.id, **linked_container(template, {})}
        return self._save_over(existing, dataclasses.replace(existing, **values), idle_timeout_sent=False)

    def delete(self, endpoint_id: str) -> None:
        """Terminate the endpoint's workers and jobs and forget it, with its bound template in REST
        v2 (see the module docstring for GraphQL's scale-to-zero guard and the bound template)."""
        endpoint = self.get(endpoint_id)
        if self.api.delete_needs_zero_workers and (endpoint.workers_min > 0 or endpoint.workers_max > 0):
            raise self.api.wording.error(
                "has_workers", "conflict", id=endpoint.id, min=endpoint.workers_min, max=endpoint.workers_max
            )
        with self.store.change():
            self.store.endpoints.pop(endpoint.id, None)
            bound = endpoint.template_id
            if (
                self.api.delete_removes_template
                and bound in self.store.templates
                and not any(e.template_id == bound for e in self.store.endpoints.values())
            ):
                del self.store.templates[bound]
        self.listener.endpoint_deleted(endpoint.id)

    # -- rules -------------------------------------------------------------------------------

    def _build(
        self, endpoint_id: str, fields: Mapping[str, Any], template_id: str | None, defaults: Mapping[str, Any] | None
    ) -> Endpoint:
        self.check_type(fields.get("type", "QUEUE"))
        template = self.templates.serverless(template_id) if template_id is not None else None
        values = {**copy.deepcopy(dict(defaults or {})), **fields, **linked_container(template, fields)}
        values["allowed_cuda_versions"] = _cuda_set(
            values.get("allowed_cuda_versions"), values.get("min_cuda_version"), template
        )
        return Endpoint(id=endpoint_id, template_id=template.id if template is not None else None, **values)

    def _save_over(self, existing: Endpoint, candidate: Endpoint, idle_timeout_sent: bool) -> Endpoint:
        self._check(candidate, idle_timeout_sent, previous_max=existing.workers_max)
        if candidate.release() != existing.release():
            candidate.version = existing.version + 1
        with self.store.change():
            copy_into(existing, candidate)  # in place: the platform holds this very object
        self.listener.endpoint_updated(existing)
        return existing

    def _check(self, candidate: Endpoint, idle_timeout_sent: bool, previous_max: int) -> None:
        """Every rule, on the endpoint as it would be stored, then the account's worker quota
        (``previous_max``: the endpoint's max before this change, 0 for a new one); all problems at
        once. Then pins the endpoint to its volumes' data centers."""
        errors = self.rule_errors(candidate, idle_timeout_sent)
        quota = quota_exceeded(self.store, candidate, previous_max)
        if quota is not None:
            errors.append(self.api.wording.error("quota", quota=quota))
        ResourceError.raise_all(errors)
        if candidate.network_volume_ids:
            pinned = [self.store.volumes[v].data_center for v in candidate.network_volume_ids]
            candidate.data_center_ids = list(dict.fromkeys(pinned))

    def rule_errors(self, candidate: Endpoint, idle_timeout_sent: bool = False) -> list[ResourceError]:
        """What is wrong with ``candidate`` against the rules the request schemas cannot express.
        ``idle_timeout_sent``: the request set an idle timeout, which REST v2 refuses for a queue
        endpoint scaling on REQUEST_COUNT (its schema omits the field there)."""
        say = self.api.wording.error
        errors: list[ResourceError] = []
        too_long = limits.name_error(candidate.name)
        if too_long is not None:
            errors.append(ResourceError("name", too_long))
        if candidate.workers_max < candidate.workers_min:
            errors.append(say("workers_order", min=candidate.workers_min, max=candidate.workers_max))
        if idle_timeout_sent and candidate.type == "QUEUE" and candidate.scaler_type == "REQUEST_COUNT":
            errors.append(say("idle_not_applicable"))
        if candidate.allowed_cuda_versions and candidate.min_cuda_version:
            errors.append(say("cuda_exclusive"))
        no_limit = self.api.zero_timeout_is_no_limit and candidate.timeout_ms == 0
        if not no_limit and not MIN_TIMEOUT_MS <= candidate.timeout_ms <= MAX_TIMEOUT_MS:
            errors.append(say("timeout", **_TIMEOUTS))
        errors += self._gpu_errors(candidate)
        valid_dcs = [dc.id for dc in catalog.data_centers()]
        for i, dc_id in enumerate(candidate.data_center_ids):
            if dc_id not in valid_dcs:
                errors.append(say("unknown_dc", i=i, dc=dc_id, valid=", ".join(valid_dcs), first=valid_dcs[0]))
        errors += self._volume_errors(candidate)
        errors += [
            ResourceError("modelReferences", problem)
            for problem in modelrefs.reference_errors(candidate.model_references)
        ]
        return errors

    def _gpu_errors(self, candidate: Endpoint) -> list[ResourceError]:
        say = self.api.wording.error
        errors: list[ResourceError] = []
        valid_pools = catalog.pool_ids()
        for i, pool in enumerate(candidate.gpu_pools):
            if pool not in valid_pools:
                errors.append(say("unknown_pool", i=i, pool=pool, valid=", ".join(valid_pools)))
        pool_types = {gpu.id for pool in candidate.gpu_pools for gpu in catalog.pool_gpu_types(pool)}
        for i, excluded in enumerate(candidate.gpu_excluded_types):
            if excluded not in pool_types:
                errors.append(say("excluded_not_in_pools", i=i, gpu=excluded, pools=", ".join(candidate.gpu_pools)))
        if pool_types and pool_types <= set(candidate.gpu_excluded_types):
            errors.append(say("excludes_all"))
        return errors

    def _volume_errors(self, candidate: Endpoint) -> list[ResourceError]:
        say = self.api.wording.error
        errors: list[ResourceError] = []
        wanted = candidate.data_center_ids
        by_dc: dict[str, str] = {}
        for i, volume_id in enumerate(candidate.network_volume_ids):
            volume = self.store.volumes.get(volume_id)
            if volume is None:
                errors.append(say("volume_missing", i=i, volume=volume_id))
                continue
            if wanted and volume.data_center not in wanted:
                errors.append(
                    say(
                        "volume_outside",
                        i=i,
                        volume=volume_id,
                        dc=volume.data_center,
                        wanted=", ".join(wanted),
                        wanted_csv=",".join(wanted),
                    )
                )
            if volume.data_center in by_dc:
                errors.append(
                    say("volume_twin", i=i, volume=volume_id, other=by_dc[volume.data_center], dc=volume.data_center)
                )
            by_dc.setdefault(volume.data_center, volume_id)
        return errors


def _cuda_set(allowed: list[str] | None, minimum: str | None, template: Template | None) -> list[str]:
    """The exact CUDA set: as sent; else, with no floor either, the template's (it seeds it)."""
    if allowed is None and minimum is None and template is not None:
        return list(template.allowed_cuda_versions)
    return list(allowed or [])
