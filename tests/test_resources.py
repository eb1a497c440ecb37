"""The resource backends (``localpod.resources``) called directly, without HTTP: each rule once,
as both APIs word it.

Sources of the rules these tests hold the backends to: the REST v2 spec
(/work/shared/runpod/openapi-v2.json: ``deleteEndpoint`` "terminates all workers", ``deleteTemplate``
is "Rejected if ... bound to a serverless endpoint", ``templateId`` body fields override the
template's, the CUDA constraint is inherited from the template on create) and runpod-api.md (GraphQL
``deleteEndpoint`` needs workersMin and workersMax at 0 first).
"""

from __future__ import annotations

from typing import Any

import pytest

from localpod import catalog
from localpod.resources import Backends, ResourceError, backends
from localpod.resources.endpoints import MAX_TIMEOUT_MS, MIN_TIMEOUT_MS
from localpod.resources.templates import linked_container
from localpod.resources.volumes import volume_data_centers
from localpod.store import Endpoint, Store, Template


class Listener:
    """Records what the platform would hear."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def endpoint_created(self, endpoint: Endpoint) -> None:
        self.calls.append(("created", endpoint.id))

    def endpoint_updated(self, endpoint: Endpoint) -> None:
        self.calls.append(("updated", endpoint.id))

    def endpoint_deleted(self, endpoint_id: str) -> None:
        self.calls.append(("deleted", endpoint_id))


POOL = next(p for p in catalog.pool_ids() if len(catalog.pool_gpu_types(p)) >= 2)
POOL_TYPES = [gpu.id for gpu in catalog.pool_gpu_types(POOL)]
VOLUME_DC, OTHER_DC = volume_data_centers()[:2]


@pytest.fixture()
def store() -> Store:
    return Store()


@pytest.fixture()
def listener() -> Listener:
    return Listener()


def api(store: Store, listener: Listener, name: str = "rest") -> Backends:
    return backends(store, listener, name)  # type: ignore[arg-type]


def fields(**overrides: Any) -> dict[str, Any]:
    return {"name": "ep", "image": "org/worker:1", "gpu_pools": [POOL], "timeout_ms": 600_000} | overrides


def serverless_template(store: Store, **overrides: Any) -> Template:
    template = Template(
        id=store.new_template_id(),
        name=overrides.pop("name", "tpl"),
        image=overrides.pop("image", "org/worker:1"),
        serverless=True,
        **overrides,
    )
    store.templates[template.id] = template
    return template


def problems(error: ResourceError) -> list[str]:
    return [str(e) for e in error.all]


# -- endpoints: create, template linking ------------------------------------------------------------


def test_create_takes_the_templates_settings_with_the_requests_on_top(store: Store, listener: Listener) -> None:
    template = serverless_template(store, disk=30, env={"A": "1", "B": "2"}, allowed_cuda_versions=["12.8"])
    request = fields(env={"B": "mine", "C": "3"})
    del request["image"]
    endpoint = api(store, listener).endpoints.create(request, template_id=template.id, defaults={"disk": 20})
    assert (endpoint.image, endpoint.disk, endpoint.template_id) == (template.image, 30, template.id)
    assert endpoint.env == {"A": "1", "B": "mine", "C": "3"}
    assert endpoint.allowed_cuda_versions == ["12.8"]  # inherited: the request set no CUDA constraint
    assert store.endpoints == {endpoint.id: endpoint} and listener.calls == [("created", endpoint.id)]
    endpoint.env["A"] = "changed"
    assert template.env["A"] == "1"  # the endpoint owns copies


def test_a_cuda_floor_or_set_in_the_request_stops_the_template_seeding(store: Store, listener: Listener) -> None:
    template = serverless_template(store, allowed_cuda_versions=["12.8"])
    endpoints = api(store, listener).endpoints
    floor = endpoints.create(fields(min_cuda_version="12.4"), template_id=template.id)
    assert (floor.allowed_cuda_versions, floor.min_cuda_version) == ([], "12.4")
    exact = endpoints.create(fields(allowed_cuda_versions=["13.0"]), template_id=template.id)
    assert exact.allowed_cuda_versions == ["13.0"]


def test_defaults_are_copied_not_shared(store: Store, listener: Listener) -> None:
    endpoints = api(store, listener).endpoints
    defaults: dict[str, Any] = {"env": {}, "ports": []}
    first, second = (endpoints.create(fields(), defaults=defaults) for _ in range(2))
    first.env["X"] = "1"
    assert second.env == {} and defaults["env"] == {}


def test_linked_container_without_a_template_replaces_env() -> None:
    assert linked_container(None, {"env": {"A": "1"}, "name": "n"}) == {"env": {"A": "1"}}


def test_only_serverless_templates_can_be_linked(store: Store, listener: Listener) -> None:
    pod = Template(id="podtpl", name="pod", image="runpod/pytorch:2")
    store.templates[pod.id] = pod
    for name, message in (
        ("rest", "templateId: template 'podtpl' is a pod template"),
        ("graphql", "templateId: Template podtpl is not a serverless template"),
    ):
        with pytest.raises(ResourceError) as info:
            api(store, listener, name).endpoints.create(fields(), template_id=pod.id)
        assert info.value.kind == "unsupported" and str(info.value).startswith(message)
    with pytest.raises(ResourceError) as missing:
        api(store, listener).endpoints.create(fields(), template_id="nope")
    assert (missing.value.kind, missing.value.message) == ("not_found", "template 'nope' not found")
    assert store.endpoints == {} and listener.calls == []


# -- endpoints: rules -------------------------------------------------------------------------------


def test_every_broken_rule_is_reported_at_once_in_rest_and_first_in_graphql(store: Store, listener: Listener) -> None:
    bad = fields(
        workers_min=3,
        workers_max=1,
        gpu_pools=[POOL, "NOT_A_POOL"],
        data_center_ids=["MARS-1"],
        allowed_cuda_versions=["12.8"],
        min_cuda_version="12.4",
        timeout_ms=1,
    )
    with pytest.raises(ResourceError) as rest:
        api(store, listener).endpoints.create(bad)
    assert [e.field for e in rest.value.all] == [
        "workers.max",
        "gpu.minCudaVersion",
        "timeout",
        "gpu.pools[1]",
        "dataCenterIds[0]",
    ]
    assert problems(rest.value)[0] == "workers.max: must be >= workers.min"
    assert problems(rest.value)[2] == f"timeout: must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS} ms"
    with pytest.raises(ResourceError) as graphql:
        api(store, listener, "graphql").endpoints.create(bad)
    assert graphql.value.message == "workersMin (3) must not exceed workersMax (1)"
    assert len(graphql.value.all) == 5 and store.endpoints == {}


def test_timeout_bounds_are_shared_and_only_graphql_takes_zero(store: Store, listener: Listener) -> None:
    rest, graphql = api(store, listener).endpoints, api(store, listener, "graphql").endpoints
    for timeout, rest_ok, graphql_ok in (
        (0, False, True),
        (MIN_TIMEOUT_MS - 1, False, False),
        (MIN_TIMEOUT_MS, True, True),
        (MAX_TIMEOUT_MS, True, True),
        (MAX_TIMEOUT_MS + 1, False, False),
    ):
        candidate = Endpoint(id="x", name="x", image="i", gpu_pools=[POOL], timeout_ms=timeout)
        assert (not rest.rule_errors(candidate), not graphql.rule_errors(candidate)) == (rest_ok, graphql_ok), timeout
    message = graphql.rule_errors(Endpoint(id="x", name="x", image="i", gpu_pools=[POOL], timeout_ms=1))[0].message
    assert message == "executionTimeoutMs must be 0 (no limit) or between 5000 (5 s) and 604800000 (7 days)"


def test_gpu_exclusions_must_be_in_the_pools_and_leave_a_card(store: Store, listener: Listener) -> None:
    endpoints = api(store, listener).endpoints
    other = next(g.id for p in catalog.pool_ids() for g in catalog.pool_gpu_types(p) if g.id not in POOL_TYPES)
    errors = endpoints.rule_errors(Endpoint(id="x", name="x", image="i", gpu_pools=[POOL], gpu_excluded_types=[other]))
    assert [str(e) for e in errors] == [f"gpu.excludedTypes[0]: {other!r} is not a GPU type in gpu.pools"]
    everything = Endpoint(id="x", name="x", image="i", gpu_pools=[POOL], gpu_excluded_types=POOL_TYPES)
    assert [e.field for e in endpoints.rule_errors(everything)] == ["gpu.excludedTypes"]
    assert not endpoints.rule_errors(
        Endpoint(id="x", name="x", image="i", gpu_pools=[POOL], gpu_excluded_types=POOL_TYPES[:1])
    )


def test_idle_timeout_is_refused_only_when_sent_for_request_count_scaling(store: Store, listener: Listener) -> None:
    endpoints = api(store, listener).endpoints
    candidate = Endpoint(id="x", name="x", image="i", gpu_pools=[POOL], scaler_type="REQUEST_COUNT")
    assert [e.field for e in endpoints.rule_errors(candidate, idle_timeout_sent=True)] == ["workers.idleTimeout"]
    assert not endpoints.rule_errors(candidate, idle_timeout_sent=False)


def test_volumes_must_exist_lie_in_the_data_centers_and_pin_the_endpoint(store: Store, listener: Listener) -> None:
    resources = api(store, listener)
    volume = resources.volumes.create("weights", 50, VOLUME_DC)
    twin = resources.volumes.create("twin", 50, VOLUME_DC)
    pinned = resources.endpoints.create(fields(network_volume_ids=[volume.id]))
    assert pinned.data_center_ids == [VOLUME_DC]
    cases = {
        "networkVolumes[0]: network volume 'nope' does not exist": fields(network_volume_ids=["nope"]),
        f"networkVolumes[0]: volume {volume.id!r} is in {VOLUME_DC}, which is not in dataCenterIds "
        f"({OTHER_DC})": fields(network_volume_ids=[volume.id], data_center_ids=[OTHER_DC]),
        f"networkVolumes[1]: at most one volume per data center; {twin.id!r} and {volume.id!r} are both in "
        f"{VOLUME_DC}": fields(network_volume_ids=[volume.id, twin.id]),
    }
    for expected, request in cases.items():
        with pytest.raises(ResourceError) as info:
            resources.endpoints.create(request)
        assert problems(info.value) == [expected]
    with pytest.raises(ResourceError, match="Network volume nope not found"):
        api(store, listener, "graphql").endpoints.create(fields(network_volume_ids=["nope"]))


def test_load_balancers_are_refused_before_the_template_is_looked_up(store: Store, listener: Listener) -> None:
    with pytest.raises(ResourceError) as info:
        api(store, listener).endpoints.create(fields(type="LOAD_BALANCER"), template_id="missing")
    assert info.value.kind == "unsupported" and "not emulated" in info.value.message


# -- endpoints: update, replace, delete ------------------------------------------------------------


def test_update_changes_in_place_and_versions_only_releases(store: Store, listener: Listener) -> None:
    endpoints = api(store, listener).endpoints
    endpoint = endpoints.create(fields(workers_max=3))
    same = endpoints.update(endpoint.id, {"workers_max": 5, "name": "renamed"})
    assert same is endpoint and (endpoint.version, endpoint.workers_max, endpoint.name) == (1, 5, "renamed")
    endpoints.update(endpoint.id, {"image": "org/worker:2"})
    assert endpoint.version == 2
    with pytest.raises(ResourceError):
        endpoints.update(endpoint.id, {"workers_min": 6})  # checked against the stored max
    assert (endpoint.workers_min, endpoint.version) == (0, 2)
    assert listener.calls == [("created", endpoint.id), ("updated", endpoint.id), ("updated", endpoint.id)]


def test_update_with_a_template_repoints_the_link(store: Store, listener: Listener) -> None:
    endpoints = api(store, listener).endpoints
    endpoint = endpoints.create(fields())
    template = serverless_template(store, env={"MODE": "fast"})
    endpoints.update(endpoint.id, {"env": {"EXTRA": "1"}}, template_id=template.id)
    assert endpoint.template_id == template.id and endpoint.env == {"MODE": "fast", "EXTRA": "1"}


def test_graphql_replace_is_whole_and_keeps_id_creation_and_version(store: Store, listener: Listener) -> None:
    template = serverless_template(store)
    graphql = api(store, listener, "graphql").endpoints
    endpoint = graphql.create(fields(idle_timeout=60), template_id=template.id)
    replaced = graphql.replace(endpoint.id, fields(), template_id=template.id)
    assert replaced is endpoint and (endpoint.idle_timeout, endpoint.version) == (Endpoint.idle_timeout, 1)
    graphql.replace(endpoint.id, fields(gpu_count=2), template_id=template.id)
    assert endpoint.version == 2 and endpoint.created_at == replaced.created_at


def test_rest_delete_terminates_workers_graphql_wants_them_at_zero(store: Store, listener: Listener) -> None:
    template = serverless_template(store)
    rest, graphql = api(store, listener).endpoints, api(store, listener, "graphql").endpoints
    busy = rest.create(fields(workers_min=1, workers_max=2), template_id=template.id)
    with pytest.raises(ResourceError) as info:
        graphql.delete(busy.id)
    assert info.value.kind == "conflict" and "scale it to 0 (workersMin 0, workersMax 0)" in info.value.message
    rest.delete(busy.id)
    assert busy.id not in store.endpoints and ("deleted", busy.id) in listener.calls
    # REST v2 removes the bound template with it (openapi-v2.json, deleteEndpoint)...
    assert template.id not in store.templates
    with pytest.raises(ResourceError) as gone:
        graphql.delete(busy.id)
    assert (gone.value.kind, gone.value.message) == ("not_found", f"Endpoint {busy.id} not found")
    # ...GraphQL's deleteEndpoint does not (its docs name none).
    kept = serverless_template(store)
    idle = graphql.create(fields(workers_min=0, workers_max=0), template_id=kept.id)
    graphql.delete(idle.id)
    assert kept.id in store.templates


def test_rest_delete_keeps_a_template_another_endpoint_still_uses(store: Store, listener: Listener) -> None:
    """localpod's assumption (the spec does not say): a bound template shared with another endpoint
    stays until the last endpoint created from it is deleted."""
    rest = api(store, listener).endpoints
    template = serverless_template(store)
    first = rest.create(fields(), template_id=template.id)
    second = rest.create(fields(name="second"), template_id=template.id)
    rest.delete(first.id)
    assert template.id in store.templates
    rest.delete(second.id)
    assert template.id not in store.templates


# -- templates ----------------------------------------------------------------------------------------


def test_a_template_in_use_cannot_be_deleted(store: Store, listener: Listener) -> None:
    resources = api(store, listener)
    template = serverless_template(store)
    endpoint = resources.endpoints.create(fields(), template_id=template.id)
    with pytest.raises(ResourceError) as info:
        resources.templates.delete(template.id)
    assert info.value.kind == "conflict" and endpoint.id in info.value.message
    resources.endpoints.link_template(endpoint.id, serverless_template(store, name="other").id)
    resources.templates.delete(template.id)  # no endpoint is bound to it any more
    assert template.id not in store.templates


def test_graphql_template_names_are_unique_and_looked_up_by_name(store: Store, listener: Listener) -> None:
    rest, graphql = api(store, listener).templates, api(store, listener, "graphql").templates
    first = graphql.create({"name": "same", "image": "i"})
    twin = rest.create({"name": "same", "image": "i"})  # REST v2 allows twins
    assert twin.id != first.id and twin.id in store.templates
    with pytest.raises(ResourceError, match="already taken"):
        graphql.create({"name": "same", "image": "i"})
    with pytest.raises(ResourceError) as twins:
        graphql.by_name("same")
    assert twins.value.message == '2 templates are named "same"; delete them by id through the REST API'
    with pytest.raises(ResourceError, match='Template "other" not found'):
        graphql.by_name("other")
    rest.delete(twin.id)
    assert graphql.update(first.id, {"name": "same", "image": "j"}) is first  # its own name is no clash
    assert first.image == "j"


def test_template_edits_reach_endpoints_only_under_graphql(store: Store, listener: Listener) -> None:
    template = serverless_template(store, image="org/worker:1")
    endpoint = api(store, listener).endpoints.create(fields(), template_id=template.id)
    api(store, listener).templates.update(template.id, {"image": "org/worker:2"})
    assert (endpoint.image, endpoint.version) == ("org/worker:1", 1)  # REST v2: a snapshot
    api(store, listener, "graphql").templates.update(template.id, {"image": "org/worker:3"})
    assert (endpoint.image, endpoint.version) == ("org/worker:3", 2)
    assert listener.calls[-1] == ("updated", endpoint.id)


# -- volumes ------------------------------------------------------------------------------------------


def test_volume_rules(store: Store, listener: Listener) -> None:
    resources = api(store, listener)
    volumes = resources.volumes
    with pytest.raises(ResourceError) as info:
        volumes.create("v", 10, "MARS-1")
    assert info.value.field == "dataCenter" and all(dc in info.value.message for dc in volume_data_centers())
    no_storage = [dc.id for dc in catalog.data_centers() if not dc.volume_types]
    if no_storage:
        with pytest.raises(ResourceError, match="offers no network volume storage"):
            volumes.create("v", 10, no_storage[0])
    volume = volumes.create("v", 50, VOLUME_DC)
    assert volume.type == catalog.data_center(VOLUME_DC).volume_types[0]  # type: ignore[union-attr]
    with pytest.raises(ResourceError) as shrink:
        volumes.update(volume.id, size=40)
    assert str(shrink.value) == ("size: network volume storage cannot be reduced (current 50 GB, requested 40 GB)")
    assert volumes.update(volume.id, size=60, name="w").size == 60
    endpoint = resources.endpoints.create(fields(network_volume_ids=[volume.id]))
    with pytest.raises(ResourceError) as used:
        volumes.delete(volume.id)
    assert used.value.kind == "conflict" and endpoint.id in used.value.message
    resources.endpoints.delete(endpoint.id)
    volumes.delete(volume.id)
    with pytest.raises(ResourceError) as gone:
        volumes.get(volume.id)
    assert gone.value.kind == "not_found"


def test_raise_all_carries_every_problem() -> None:
    ResourceError.raise_all([])  # nothing to raise
    with pytest.raises(ResourceError) as info:
        ResourceError.raise_all([ResourceError("a", "one"), ResourceError("", "two")])
    assert [str(e) for e in info.value.all] == ["a: one", "two"]
