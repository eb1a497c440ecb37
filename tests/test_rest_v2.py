"""Runpod REST API v2 on localpod: every response here is validated against the official spec.

All requests go through ``SpecCheckedClient``, which matches each URL to the spec's path template
and validates the response body (success and problem documents alike) against the schema the spec
declares for that status, refusing undocumented fields. The negative controls at the end prove the
validator does reject wrong bodies, so these tests cannot pass vacuously.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from localpod import catalog
from localpod.serverless.platform import WorkerInfo
from localpod.store import WorkerSession
from spec import SpecCheckedClient, ValidationError, load_spec, validate_response


@pytest.fixture
def api(localpod: Any) -> Iterator[SpecCheckedClient]:
    load_spec()  # skip early, with the reason, when the spec is not available
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as client:
        yield client
    assert client.checked, "no response was validated"


def problem_errors(response: httpx.Response, status: int) -> list[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body.get("errors", [])


def new_volume(api: SpecCheckedClient, **overrides: Any) -> dict[str, Any]:
    body = {"name": "models", "size": 50, "dataCenter": "EU-RO-1"} | overrides
    response = api.post("/v2/network-volumes", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_template(api: SpecCheckedClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "vllm",
        "image": "runpod/worker-v1-vllm:v2.25.2",
        "serverless": True,
        "env": {"MODEL_NAME": "Qwen/Qwen2.5-0.5B-Instruct", "MAX_MODEL_LEN": "4096"},
    } | overrides
    response = api.post("/v2/templates", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def endpoint_body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "chat",
        "type": "QUEUE",
        "image": "runpod/worker-v1-vllm:v2.25.2",
        "gpu": {"pools": ["ADA_24", "AMPERE_24"]},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    } | overrides


def new_endpoint(api: SpecCheckedClient, **overrides: Any) -> dict[str, Any]:
    response = api.post("/v2/serverless", json=endpoint_body(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


# -- auth, routing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v2/serverless"),
        ("POST", "/v2/templates"),
        ("GET", "/v2/network-volumes/abc"),
        ("GET", "/v2/catalog/gpus"),
        ("GET", "/v2/billing/serverless"),
        ("DELETE", "/v2/serverless/abc"),
    ],
)
def test_missing_or_bad_key_is_401(localpod: Any, method: str, path: str) -> None:
    load_spec()
    for key in (None, "rpa_WRONG_KEY"):
        with SpecCheckedClient(localpod.rest_url, key) as client:
            response = client.request(method, path, json={} if method == "POST" else None)
        problem_errors(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert localpod.api_key not in response.text and "rpa_WRONG_KEY" not in response.text


def test_only_a_bearer_header_authenticates_rest_v2(localpod: Any) -> None:
    """The spec's one security scheme (``bearerAuth``): "send it in the ``Authorization`` header as
    ``Bearer <api_key>``". A bare key in the header or ``?api_key=`` is a 401 here, although the
    queue (``api.runpod.ai``) and GraphQL, whose docs show both forms, still take them."""
    load_spec()
    with SpecCheckedClient(localpod.rest_url, None) as client:
        bare = client.get("/v2/serverless", headers={"Authorization": localpod.api_key})
        problem_errors(bare, 401)
        assert "Authorization: Bearer" in bare.json()["detail"]
        problem_errors(client.get("/v2/serverless", params={"api_key": localpod.api_key}), 401)
        problem_errors(client.get("/v2/serverless", headers={"Authorization": "Basic " + localpod.api_key}), 401)
        ok = client.get("/v2/serverless", headers={"Authorization": f"bearer {localpod.api_key}"})
        assert ok.status_code == 200  # the scheme name is case-insensitive (RFC 9110)
    control = httpx.get(f"{localpod.base_url}/_localpod/state", headers={"Authorization": localpod.api_key})
    assert control.status_code == 401
    graphql = httpx.post(
        f"{localpod.rest_url}/graphql",
        params={"api_key": localpod.api_key},
        json={"query": "query { myself { id } }"},
    )
    assert graphql.status_code == 200 and graphql.json()["data"]["myself"]["id"]
    queue = httpx.get(f"{localpod.queue_url}/nosuchendpoint/health", headers={"Authorization": localpod.api_key})
    assert queue.status_code != 401


def test_wrong_method_is_a_405_problem_with_allow(api: SpecCheckedClient) -> None:
    response = api.put("/v2/templates", json={})
    problem_errors(response, 405)
    assert response.headers["allow"] == "GET, POST"


# -- templates -------------------------------------------------------------------------------


def test_template_crud(api: SpecCheckedClient) -> None:
    created = new_template(api, disk=40, ports=["8000/http"], mounts={"persistent": {"size": 20, "path": "/data"}})
    assert created["serverless"] is True and created["disk"] == 40 and created["category"] == "NVIDIA"
    assert created["startSsh"] is True and created["startJupyter"] is True and created["public"] is False
    assert created["mounts"] == {"persistent": {"size": 20, "path": "/data"}}
    assert created["registry"] is None and created["args"] == "" and created["allowedCudaVersions"] == []
    tid = created["id"]
    assert api.get(f"/v2/templates/{tid}").json() == created
    assert [t["id"] for t in api.get("/v2/templates").json()["templates"]] == [tid]

    patched = api.patch(f"/v2/templates/{tid}", json={"name": "vllm-2", "env": {"ONLY": "this"}, "mounts": {}})
    assert patched.status_code == 200
    assert patched.json()["name"] == "vllm-2"
    assert patched.json()["env"] == {"ONLY": "this"}  # env is replaced, not merged
    assert patched.json()["mounts"] == created["mounts"]  # {} leaves the mount alone
    assert patched.json()["image"] == created["image"]  # omitted fields are untouched
    assert api.get(f"/v2/templates/{tid}").json() == patched.json()

    assert api.delete(f"/v2/templates/{tid}").status_code == 204
    problem_errors(api.get(f"/v2/templates/{tid}"), 404)
    problem_errors(api.delete(f"/v2/templates/{tid}"), 404)
    problem_errors(api.patch(f"/v2/templates/{tid}", json={"name": "x"}), 404)


def test_template_body_validation(api: SpecCheckedClient) -> None:
    errors = problem_errors(api.post("/v2/templates", json={"name": "", "disk": "20", "isServerless": True}), 422)
    assert any(e.startswith("name:") for e in errors)
    assert any(e.startswith("image:") for e in errors)
    assert any(e.startswith("disk:") for e in errors)
    assert any(e.startswith("isServerless:") for e in errors)
    errors = problem_errors(
        api.post("/v2/templates", json={"name": "t", "image": "i", "allowedCudaVersions": ["12"]}), 422
    )
    assert any(e.startswith("allowedCudaVersions[0]:") for e in errors)


def test_names_are_not_unique_and_lists_show_everything(api: SpecCheckedClient) -> None:
    templates = [new_template(api, name="same") for _ in range(2)]
    volumes = [new_volume(api, name="same") for _ in range(2)]
    endpoints = [new_endpoint(api, name="same") for _ in range(2)]
    for kind, key, created in (
        ("templates", "templates", templates),
        ("network-volumes", "networkVolumes", volumes),
        ("serverless", "endpoints", endpoints),
    ):
        assert len({c["id"] for c in created}) == 2
        listed = api.get(f"/v2/{kind}").json()[key]
        assert [item["id"] for item in listed] == [c["id"] for c in created]
        assert {item["name"] for item in listed} == {"same"}


# -- network volumes -------------------------------------------------------------------------


def test_network_volume_crud_grow_only(api: SpecCheckedClient) -> None:
    volume = new_volume(api, size=50)
    assert volume["type"] == "STANDARD" and volume["dataCenter"] == "EU-RO-1"
    vid = volume["id"]
    grown = api.patch(f"/v2/network-volumes/{vid}", json={"size": 100, "name": "bigger"})
    assert grown.status_code == 200 and grown.json()["size"] == 100 and grown.json()["name"] == "bigger"
    assert api.patch(f"/v2/network-volumes/{vid}", json={"size": 100}).status_code == 200  # same size is fine

    errors = problem_errors(api.patch(f"/v2/network-volumes/{vid}", json={"size": 60}), 400)
    assert errors and errors[0].startswith("size:") and "cannot be reduced" in errors[0]
    assert api.get(f"/v2/network-volumes/{vid}").json()["size"] == 100

    errors = problem_errors(api.patch(f"/v2/network-volumes/{vid}", json={"dataCenter": "US-TX-3"}), 422)
    assert errors == [e for e in errors if e.startswith("dataCenter:")] and "immutable" in errors[0]
    problem_errors(api.patch(f"/v2/network-volumes/{vid}", json={}), 422)
    problem_errors(api.patch(f"/v2/network-volumes/{vid}", json={"size": 5000}), 422)
    assert api.get(f"/v2/network-volumes/{vid}").json()["dataCenter"] == "EU-RO-1"

    assert api.delete(f"/v2/network-volumes/{vid}").status_code == 204
    problem_errors(api.get(f"/v2/network-volumes/{vid}"), 404)
    problem_errors(api.patch(f"/v2/network-volumes/{vid}", json={"size": 200}), 404)
    assert api.get("/v2/network-volumes").json() == {"networkVolumes": []}


def test_network_volume_create_rules(api: SpecCheckedClient) -> None:
    for size in (9, 4097):
        errors = problem_errors(
            api.post("/v2/network-volumes", json={"name": "v", "size": size, "dataCenter": "EU-RO-1"}), 422
        )
        assert errors[0].startswith("size:")
    errors = problem_errors(
        api.post("/v2/network-volumes", json={"name": "v", "size": 10, "dataCenter": "MARS-1"}), 400
    )
    with_storage = [dc.id for dc in catalog.data_centers() if dc.volume_types]
    assert "MARS-1" in errors[0] and all(dc in errors[0] for dc in with_storage)
    no_storage = next(dc.id for dc in catalog.data_centers() if not dc.volume_types)
    errors = problem_errors(
        api.post("/v2/network-volumes", json={"name": "v", "size": 10, "dataCenter": no_storage}), 400
    )
    assert "offers no network volume storage" in errors[0]
    standard_only = next(dc.id for dc in catalog.data_centers() if dc.volume_types == ("STANDARD",))
    problem_errors(
        api.post(
            "/v2/network-volumes",
            json={"name": "v", "size": 10, "dataCenter": standard_only, "type": "HIGH_PERFORMANCE"},
        ),
        400,
    )
    fast = new_volume(api, dataCenter="US-KS-2", type="HIGH_PERFORMANCE")
    assert fast["type"] == "HIGH_PERFORMANCE"


# -- serverless endpoints --------------------------------------------------------------------


def test_endpoint_create_defaults_and_request_urls(api: SpecCheckedClient, localpod: Any) -> None:
    endpoint = new_endpoint(api)
    eid = endpoint["id"]
    assert endpoint["workers"] == {"min": 0, "max": 3, "idleTimeout": 10}
    assert endpoint["timeout"] == 300000 and endpoint["flashboot"] == "OFF" and endpoint["type"] == "QUEUE"
    assert endpoint["gpu"] == {
        "pools": ["ADA_24", "AMPERE_24"],
        "count": 1,
        "allowedCudaVersions": [],
        "minCudaVersion": None,
    }
    assert endpoint["dataCenterIds"] == [] and endpoint["networkVolumes"] == []
    assert endpoint["requestUrls"]["run"] == f"{localpod.queue_url}/{eid}/run"
    assert endpoint["requestUrls"]["status"] == f"{localpod.queue_url}/{eid}/status/{{job_id}}"
    assert endpoint["requestUrls"]["purgeQueue"] == f"{localpod.queue_url}/{eid}/purge-queue"
    assert api.get(f"/v2/serverless/{eid}").json() == endpoint
    stored = localpod.ctx.store.endpoints[eid]
    assert stored.version == 1 and stored.template_id is None and stored.timeout_ms == 300000


def test_spec_examples_are_accepted(api: SpecCheckedClient) -> None:
    """The spec's own request examples, read from the spec at run time, create what they describe."""
    spec = load_spec()

    def example(path: str, name: str) -> dict[str, Any]:
        media = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return copy.deepcopy(media["examples"][name]["value"])

    body = example("/v2/serverless", "serverlessEndpoint")
    created = api.post("/v2/serverless", json=body)
    assert created.status_code == 201, created.text
    for key in ("name", "image", "type", "workers", "scaling", "dataCenterIds", "timeout"):
        assert created.json()[key] == body[key]
    assert created.json()["gpu"]["pools"] == body["gpu"]["pools"]
    template = example("/v2/templates", "podTemplate")
    created = api.post("/v2/templates", json=template)
    assert created.status_code == 201 and created.json()["mounts"] == template["mounts"]
    cpu = api.post("/v2/serverless", json=example("/v2/serverless", "cpuServerlessEndpoint"))
    assert "not emulated" in problem_errors(cpu, 422)[0]


def test_endpoint_from_template_merges_env_and_blocks_template_delete(api: SpecCheckedClient, localpod: Any) -> None:
    template = new_template(api, disk=30, env={"A": "1", "B": "2"}, allowedCudaVersions=["12.8"])
    body = endpoint_body(templateId=template["id"], env={"B": "body", "C": "3"})
    del body["image"]
    response = api.post("/v2/serverless", json=body)
    assert response.status_code == 201, response.text
    endpoint = response.json()
    assert endpoint["image"] == template["image"] and endpoint["disk"] == 30
    assert endpoint["env"] == {"A": "1", "B": "body", "C": "3"}
    assert endpoint["gpu"]["allowedCudaVersions"] == ["12.8"]  # seeded from the template
    assert localpod.ctx.store.endpoints[endpoint["id"]].template_id == template["id"]

    refused = api.delete(f"/v2/templates/{template['id']}")
    problem_errors(refused, 400)
    assert endpoint["id"] in refused.json()["detail"]
    # Later template edits do not reach the endpoint.
    api.patch(f"/v2/templates/{template['id']}", json={"image": "other:1"})
    assert api.get(f"/v2/serverless/{endpoint['id']}").json()["image"] == template["image"]

    # Deleting the endpoint deletes "its bound template" too (openapi-v2.json, deleteEndpoint).
    assert api.delete(f"/v2/serverless/{endpoint['id']}").status_code == 204
    problem_errors(api.get(f"/v2/templates/{template['id']}"), 404)
    problem_errors(api.delete(f"/v2/templates/{template['id']}"), 404)


def test_endpoint_template_must_exist_and_be_serverless(api: SpecCheckedClient) -> None:
    body = endpoint_body(templateId="nosuchtmpl")
    problem_errors(api.post("/v2/serverless", json=body), 404)
    pod_template = new_template(api, serverless=False)
    errors = problem_errors(api.post("/v2/serverless", json=endpoint_body(templateId=pod_template["id"])), 422)
    assert errors[0].startswith("templateId:") and "serverless" in errors[0]
    assert api.get("/v2/serverless").json() == {"endpoints": []}


def test_endpoint_schema_failures_are_422_with_every_field(api: SpecCheckedClient) -> None:
    body = endpoint_body(
        scaling={"type": "QUEUE_DELAY", "queueDelay": 0.1},
        gpu={"pools": ["ADA_24"], "count": "1"},
        workers={"min": -1},
        flashboot=True,
        gpuIds="ADA_24",
    )
    del body["name"]
    errors = problem_errors(api.post("/v2/serverless", json=body), 422)
    for field in ("name:", "scaling.queueDelay:", "gpu.count:", "workers.min:", "flashboot:", "gpuIds:"):
        assert any(e.startswith(field) for e in errors), (field, errors)
    body = endpoint_body()
    del body["image"]
    assert problem_errors(api.post("/v2/serverless", json=body), 422) == ["image: required unless templateId is set"]
    lb = endpoint_body(type="LOAD_BALANCER", scaling={"type": "REQUEST_COUNT", "requestCount": 2})
    assert "not emulated" in problem_errors(api.post("/v2/serverless", json=lb), 422)[0]
    problem_errors(api.post("/v2/serverless", json=[1, 2]), 422)


def test_malformed_json_is_400(api: SpecCheckedClient) -> None:
    response = api.post("/v2/serverless", content=b'{"name": ', headers={"content-type": "application/json"})
    problem_errors(response, 400)
    response = api.patch("/v2/network-volumes/whatever", content=b"not json")
    problem_errors(response, 400)


def test_endpoint_rule_conflicts_are_400(api: SpecCheckedClient) -> None:
    errors = problem_errors(api.post("/v2/serverless", json=endpoint_body(workers={"min": 3, "max": 1})), 400)
    assert errors == ["workers.max: must be >= workers.min"]
    errors = problem_errors(api.post("/v2/serverless", json=endpoint_body(gpu={"pools": ["RTX_4090"]})), 400)
    assert errors[0].startswith("gpu.pools[0]:") and all(p in errors[0] for p in catalog.pool_ids())
    errors = problem_errors(
        api.post("/v2/serverless", json=endpoint_body(gpu={"pools": ["ADA_24"], "excludedTypes": ["NVIDIA A40"]})), 400
    )
    assert errors[0].startswith("gpu.excludedTypes[0]:")
    all_types = [g.id for g in catalog.pool_gpu_types("ADA_48_PRO")]
    errors = problem_errors(
        api.post("/v2/serverless", json=endpoint_body(gpu={"pools": ["ADA_48_PRO"], "excludedTypes": all_types})), 400
    )
    assert errors == ["gpu.excludedTypes: excludes every GPU type of gpu.pools; keep at least one"]
    errors = problem_errors(
        api.post(
            "/v2/serverless",
            json=endpoint_body(gpu={"pools": ["ADA_24"], "allowedCudaVersions": ["12.8"], "minCudaVersion": "12.4"}),
        ),
        400,
    )
    assert errors[0].startswith("gpu.minCudaVersion:")
    no_gpu = endpoint_body()
    del no_gpu["gpu"]
    problem_errors(api.post("/v2/serverless", json=no_gpu), 400)
    errors = problem_errors(api.post("/v2/serverless", json=endpoint_body(dataCenterIds=["MARS-1"])), 400)
    assert errors[0].startswith("dataCenterIds[0]:") and "EU-RO-1" in errors[0]
    errors = problem_errors(
        api.post(
            "/v2/serverless",
            json=endpoint_body(scaling={"type": "REQUEST_COUNT", "requestCount": 2}, workers={"idleTimeout": 5}),
        ),
        400,
    )
    assert errors[0].startswith("workers.idleTimeout:")
    assert api.get("/v2/serverless").json() == {"endpoints": []}


def test_network_volume_pins_endpoint_to_its_data_center(api: SpecCheckedClient) -> None:
    volume = new_volume(api, dataCenter="US-CA-2")
    endpoint = new_endpoint(api, networkVolumes=[volume["id"]])
    assert endpoint["dataCenterIds"] == ["US-CA-2"] and endpoint["networkVolumes"] == [volume["id"]]
    errors = problem_errors(
        api.post("/v2/serverless", json=endpoint_body(networkVolumes=[volume["id"]], dataCenterIds=["US-TX-3"])), 400
    )
    assert errors[0].startswith("networkVolumes[0]:") and "US-CA-2" in errors[0]
    errors = problem_errors(api.post("/v2/serverless", json=endpoint_body(networkVolumes=["nosuchvol"])), 400)
    assert errors[0].startswith("networkVolumes[0]:")
    twin = new_volume(api, dataCenter="US-CA-2")
    problem_errors(api.post("/v2/serverless", json=endpoint_body(networkVolumes=[volume["id"], twin["id"]])), 400)

    refused = api.delete(f"/v2/network-volumes/{volume['id']}")
    problem_errors(refused, 400)
    assert endpoint["id"] in refused.json()["detail"]
    api.delete(f"/v2/serverless/{endpoint['id']}")
    assert api.delete(f"/v2/network-volumes/{volume['id']}").status_code == 204


def test_patch_changes_only_sent_fields_and_bumps_version_for_worker_config(
    api: SpecCheckedClient, localpod: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = localpod.ctx.platform
    updates: list[tuple[str, int]] = []
    original = platform.endpoint_updated

    def recording(endpoint: Any) -> None:
        updates.append((endpoint.id, endpoint.version))
        original(endpoint)

    monkeypatch.setattr(platform, "endpoint_updated", recording)
    endpoint = new_endpoint(api, env={"A": "1"})
    eid = endpoint["id"]
    stored = localpod.ctx.store.endpoints[eid]

    def patch(body: dict[str, Any]) -> dict[str, Any]:
        response = api.patch(f"/v2/serverless/{eid}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    after = patch({"workers": {"max": 5}, "name": "renamed", "scaling": {"type": "QUEUE_DELAY", "queueDelay": 2}})
    assert after["workers"] == {"min": 0, "max": 5, "idleTimeout": 10} and after["name"] == "renamed"
    assert after["env"] == {"A": "1"} and after["image"] == endpoint["image"]
    assert stored.version == 1  # scaling-only changes are not a new release
    after = patch({"env": {"A": "2"}})
    assert after["env"] == {"A": "2"} and stored.version == 2
    patch({"env": {"A": "2"}})
    assert stored.version == 2  # nothing actually changed
    patch({"timeout": 60000})
    assert stored.version == 3
    assert updates == [(eid, 1), (eid, 2), (eid, 2), (eid, 3)]
    assert api.get(f"/v2/serverless/{eid}").json() == after | {"timeout": 60000}

    errors = problem_errors(api.patch(f"/v2/serverless/{eid}", json={"workers": {"min": 6}}), 400)
    assert errors == ["workers.max: must be >= workers.min"]  # checked against the stored max (5)
    problem_errors(api.patch(f"/v2/serverless/{eid}", json={"type": "LOAD_BALANCER"}), 422)
    assert stored.version == 3 and len(updates) == 4


def test_patch_flashboot_and_workers_round_trip(api: SpecCheckedClient, localpod: Any) -> None:
    eid = new_endpoint(api)["id"]
    body = {"flashboot": "FLASHBOOT", "workers": {"min": 0, "max": 4, "idleTimeout": 30}}
    patched = api.patch(f"/v2/serverless/{eid}", json=body).json()
    assert patched["flashboot"] == "FLASHBOOT" and patched["workers"] == body["workers"]
    again = api.patch(f"/v2/serverless/{eid}", json={"workers": {"max": 2}}).json()
    assert again["workers"] == {"min": 0, "max": 2, "idleTimeout": 30} and again["flashboot"] == "FLASHBOOT"
    assert api.get(f"/v2/serverless/{eid}").json() == again
    stored = localpod.ctx.store.endpoints[eid]
    assert (stored.flashboot, stored.workers_max, stored.idle_timeout, stored.version) == ("FLASHBOOT", 2, 30, 2)


def test_patch_gpu_selection_semantics(api: SpecCheckedClient) -> None:
    eid = new_endpoint(api, gpu={"pools": ["AMPERE_48"], "excludedTypes": ["NVIDIA A40"], "minCudaVersion": "12.4"})[
        "id"
    ]

    def gpu_after(body: dict[str, Any]) -> dict[str, Any]:
        response = api.patch(f"/v2/serverless/{eid}", json={"gpu": body})
        assert response.status_code == 200, response.text
        return response.json()["gpu"]

    assert gpu_after({"count": 2}) == {
        "pools": ["AMPERE_48"],
        "excludedTypes": ["NVIDIA A40"],
        "count": 2,
        "allowedCudaVersions": [],
        "minCudaVersion": "12.4",
    }
    assert "excludedTypes" not in gpu_after({"pools": ["AMPERE_48", "ADA_48_PRO"]})  # pools replace the selection
    assert gpu_after({"minCudaVersion": ""})["minCudaVersion"] is None  # "" clears the floor
    errors = problem_errors(api.patch(f"/v2/serverless/{eid}", json={"gpu": {"excludedTypes": ["NVIDIA A40"]}}), 422)
    assert errors[0].startswith("gpu.excludedTypes:")


def test_unknown_endpoint_is_404_everywhere(api: SpecCheckedClient) -> None:
    for method, path in (
        ("GET", "/v2/serverless/nope"),
        ("PATCH", "/v2/serverless/nope"),
        ("DELETE", "/v2/serverless/nope"),
        ("GET", "/v2/serverless/nope/workers"),
    ):
        response = api.request(method, path, json={"name": "x"} if method == "PATCH" else None)
        problem_errors(response, 404)
        assert "nope" in response.json()["detail"]


def test_paths_with_a_newline_are_problem_404s(localpod: Any) -> None:
    """A pasted id with its line end (``%0A``) matched no route, not even the catch-all (Starlette's
    ``path`` convertor stops at a newline), and got Starlette's text/plain 404."""
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    for path in ("/v2/serverless/abc%0A", "/v2/serverless/abc%0A/workers", "/v2/no%0Awhere", "/v2/templates%0A"):
        response = httpx.get(localpod.rest_url + path, headers=headers)
        problem_errors(response, 404)
    assert "'abc\\n'" in httpx.get(localpod.rest_url + "/v2/serverless/abc%0A", headers=headers).json()["detail"]
    problem_errors(httpx.get(localpod.rest_url + "/v2/no%0Awhere"), 401)  # the key is still checked first


def test_delete_endpoint(api: SpecCheckedClient, localpod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    deleted: list[str] = []
    original = localpod.ctx.platform.endpoint_deleted
    monkeypatch.setattr(localpod.ctx.platform, "endpoint_deleted", lambda eid: (deleted.append(eid), original(eid)))
    keep, gone = new_endpoint(api, name="keep"), new_endpoint(api, name="gone")
    response = api.delete(f"/v2/serverless/{gone['id']}")
    assert response.status_code == 204 and response.content == b""
    assert deleted == [gone["id"]]
    assert [e["id"] for e in api.get("/v2/serverless").json()["endpoints"]] == [keep["id"]]
    problem_errors(api.get(f"/v2/serverless/{gone['id']}"), 404)


def test_workers_listing_flags_stale_workers(
    api: SpecCheckedClient, localpod: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = new_endpoint(api)["id"]
    api.patch(f"/v2/serverless/{eid}", json={"image": "runpod/worker-v1-vllm:v2.26.0"})  # version 2
    fake = [
        WorkerInfo(
            "w-old",
            "RUNNING",
            1,
            1,
            "runpod/worker-v1-vllm:v2.25.2",
            120,
            "NVIDIA GeForce RTX 4090",
            "US-KS-2",
            "2026-06-01T12:00:00.000Z",
        ),
        WorkerInfo(
            "w-new", "INITIALIZING", 2, 1, "runpod/worker-v1-vllm:v2.26.0", None, "NVIDIA RTX A5000", "EU-RO-1", None
        ),
        WorkerInfo("w-wait", "THROTTLED", 2, 1, "runpod/worker-v1-vllm:v2.26.0", None, None, None, None),
    ]
    monkeypatch.setattr(localpod.ctx.platform, "list_workers", lambda endpoint_id: fake if endpoint_id == eid else [])
    body = api.get(f"/v2/serverless/{eid}/workers").json()
    assert body["endpointVersion"] == 2
    assert body["summary"] == {"running": 1, "idle": 0, "initializing": 1, "throttled": 1, "unhealthy": 0, "total": 3}
    assert [(w["id"], w["isStale"]) for w in body["workers"]] == [("w-old", True), ("w-new", False), ("w-wait", False)]
    assert body["workers"][0]["gpuTypeId"] == "NVIDIA GeForce RTX 4090" and body["workers"][0]["uptimeSeconds"] == 120


def test_workers_of_a_pinned_endpoint_without_stock_are_throttled(api: SpecCheckedClient) -> None:
    """The lesson the catalog teaches: a volume in US-CA-2 cannot serve an AMPERE_16 endpoint."""
    volume = new_volume(api, dataCenter="US-CA-2")
    eid = new_endpoint(api, gpu={"pools": ["AMPERE_16"]}, networkVolumes=[volume["id"]], workers={"min": 1, "max": 1})[
        "id"
    ]
    deadline = time.monotonic() + 10
    workers: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        workers = api.get(f"/v2/serverless/{eid}/workers").json()["workers"]
        if workers:
            break
        time.sleep(0.05)
    assert workers and all(w["status"] == "THROTTLED" and w["gpuTypeId"] is None for w in workers)
    api.patch(f"/v2/serverless/{eid}", json={"workers": {"min": 0, "max": 0}})


# -- catalog -------------------------------------------------------------------------------


def test_catalog_gpus_without_availability(api: SpecCheckedClient) -> None:
    gpus = api.get("/v2/catalog/gpus").json()["gpus"]
    assert [g["id"] for g in gpus] == [g.id for g in catalog.gpu_types()]
    for gpu in gpus:
        assert "availability" not in gpu and "dataCenters" not in gpu
        if gpu["pool"] is None:
            assert "serverless" not in gpu["price"]
        else:
            assert gpu["price"]["serverless"] == pytest.approx(catalog.pool_price_per_gpu_s(gpu["pool"]) * 3600)
    one = api.get(f"/v2/catalog/gpus/{quote('NVIDIA GeForce RTX 4090')}").json()
    assert one["pool"] == "ADA_24" and one["memory"] == 24
    problem_errors(api.get(f"/v2/catalog/gpus/{quote('NVIDIA GeForce RTX 9090')}"), 404)


def test_catalog_gpu_availability_for_serverless(api: SpecCheckedClient) -> None:
    gpus = {
        g["id"]: g
        for g in api.get("/v2/catalog/gpus", params={"include": "AVAILABILITY", "product": "SERVERLESS"}).json()["gpus"]
    }
    h200 = gpus["NVIDIA H200"]
    assert [dc["id"] for dc in h200["dataCenters"]] == catalog.data_centers_offering_pool("HOPPER_141")
    assert h200["availability"] in {"LOW", "MEDIUM", "HIGH"}
    hosts = {v for dc in catalog.data_centers() for v in catalog.host_cuda_versions(dc, "NVIDIA H200")}
    assert [c["version"] for c in h200["cudaVersions"]] == sorted(hosts, key=catalog.cuda_version_key)
    assert hosts <= set(catalog.gpu_type("NVIDIA H200").cuda_versions)
    mi300x = gpus["AMD Instinct MI300X OAM"]  # in no serverless pool
    assert mi300x["availability"] == "NONE" and "dataCenters" not in mi300x and "cudaVersions" not in mi300x
    pod = api.get(
        f"/v2/catalog/gpus/{quote('AMD Instinct MI300X OAM')}", params={"include": "AVAILABILITY", "product": "POD"}
    ).json()
    assert pod["availability"] != "NONE" and pod["dataCenters"]
    community = api.get(
        f"/v2/catalog/gpus/{quote('NVIDIA B200')}",
        params={"include": "AVAILABILITY", "product": "POD", "cloud": "COMMUNITY"},
    ).json()
    assert community["availability"] == "NONE"  # B200 is secure cloud only


def test_catalog_gpu_availability_filters(api: SpecCheckedClient) -> None:
    base = {"include": "AVAILABILITY", "product": "SERVERLESS"}
    japan = api.get("/v2/catalog/gpus", params=base | {"countryCodes": "JP"}).json()["gpus"]
    assert {g["id"] for g in japan} == set(catalog.data_center("AP-JP-1").gpu_stock) & {
        g.id for g in catalog.gpu_types() if g.pool
    }
    assert all([dc["id"] for dc in g["dataCenters"]] == ["AP-JP-1"] for g in japan)
    blackwell = api.get(
        f"/v2/catalog/gpus/{quote('NVIDIA GeForce RTX 5090')}", params=base | {"cudaVersions": "12.4"}
    ).json()
    assert blackwell["availability"] == "NONE" and "cudaVersions" not in blackwell
    floor = api.get(f"/v2/catalog/gpus/{quote('NVIDIA RTX A4000')}", params=base | {"minCudaVersion": "12.8"}).json()
    assert [c["version"] for c in floor["cudaVersions"]] == ["12.8", "12.9", "13.0", "13.1", "13.2"]
    assert all(c["available"] for c in floor["cudaVersions"])

    problem_errors(api.get("/v2/catalog/gpus", params={"include": "AVAILABILITY"}), 400)  # product required
    problem_errors(api.get("/v2/catalog/gpus", params={"product": "POD"}), 400)  # only with include
    problem_errors(api.get("/v2/catalog/gpus", params={"count": "2"}), 400)
    problem_errors(api.get("/v2/catalog/gpus", params=base | {"cudaVersions": "12.8", "minCudaVersion": "12"}), 400)
    errors = problem_errors(api.get("/v2/catalog/gpus", params={"include": "STOCK"}), 422)
    assert errors[0].startswith("include:")
    problem_errors(api.get("/v2/catalog/gpus", params=base | {"countryCodes": "jp"}), 422)
    problem_errors(api.get("/v2/catalog/gpus", params=base | {"cudaVersions": "12"}), 422)


def test_catalog_data_centers(api: SpecCheckedClient) -> None:
    centers = api.get("/v2/catalog/datacenters").json()["dataCenters"]
    assert [dc["id"] for dc in centers] == [dc.id for dc in catalog.data_centers()]
    assert all("gpuAvailability" not in dc for dc in centers)

    europe = api.get("/v2/catalog/datacenters", params={"regions": "EUROPE,OCEANIA"}).json()["dataCenters"]
    assert {dc["region"] for dc in europe} == {"EUROPE", "OCEANIA"}
    both = api.get("/v2/catalog/datacenters", params={"networkVolumeTypes": "STANDARD,HIGH_PERFORMANCE"}).json()[
        "dataCenters"
    ]
    assert both and all(set(dc["networkVolumeTypes"]) == {"STANDARD", "HIGH_PERFORMANCE"} for dc in both)
    green = api.get("/v2/catalog/datacenters", params={"compliance": "GDPR,RENEWABLE"}).json()["dataCenters"]
    assert green and all({"GDPR", "RENEWABLE"} <= set(dc["compliance"]) for dc in green)
    local = api.get("/v2/catalog/datacenters", params={"globalNetwork": "false"}).json()["dataCenters"]
    assert local and not any(dc["globalNetwork"] for dc in local)

    ca2 = api.get("/v2/catalog/datacenters/US-CA-2", params={"include": "GPU_AVAILABILITY"}).json()
    offered = {item["id"]: item["availability"] for item in ca2["gpuAvailability"]}
    assert offered == dict(catalog.data_center("US-CA-2").gpu_stock)
    assert not set(offered) & {g.id for g in catalog.pool_gpu_types("AMPERE_16")}
    problem_errors(api.get("/v2/catalog/datacenters/MARS-1"), 404)
    problem_errors(api.get("/v2/catalog/datacenters", params={"regions": "MARS"}), 422)


# -- billing -------------------------------------------------------------------------------

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def at(hours: float, seconds: float = 0) -> float:
    return (DAY + timedelta(hours=hours, seconds=seconds)).timestamp()


def plant_sessions(localpod: Any) -> None:
    localpod.ctx.store.sessions.extend(
        [
            # 100.2 s billed as 101 s on one RTX 4090 (ADA_24): 101 * 0.00031 = 0.03131
            WorkerSession("epA", "w1", "NVIDIA GeForce RTX 4090", 1, 0.00031, at(10), at(10, 100.2)),
            # 70 s on 2 x A4000 (AMPERE_16) across midnight: 30 s on day 1, 40 s on day 2 at 0.00032 $/s
            WorkerSession("epA", "w2", "NVIDIA RTX A4000", 2, 0.00016, at(23, 3570), at(24, 40)),
            # one hour on an A100 (AMPERE_80): 3600 * 0.00076 = 2.736
            WorkerSession("epB", "w3", "NVIDIA A100 80GB PCIe", 1, 0.00076, at(12), at(13)),
        ]
    )


def test_serverless_billing_arithmetic(api: SpecCheckedClient, localpod: Any) -> None:
    plant_sessions(localpod)
    window = {"startTime": "2026-03-02T00:00:00Z", "endTime": "2026-03-04T00:00:00Z", "bucketSize": "day"}
    body = api.get("/v2/billing/serverless", params=window).json()
    amounts = {(r["startTime"][:10], r["serverlessId"]): r["totalAmount"] for r in body["records"]}
    assert amounts == pytest.approx(
        {
            ("2026-03-02", "epA"): 0.03131 + 30 * 0.00032,
            ("2026-03-02", "epB"): 2.736,
            ("2026-03-03", "epA"): 40 * 0.00032,
        },
        abs=1e-9,
    )
    assert all(r["gpuAmount"] == r["totalAmount"] and r["cpuAmount"] == 0 for r in body["records"])
    meta = body["metadata"]
    assert meta["recordCount"] == 3 and meta["uniqueServerlessCount"] == 2
    assert round(meta["totals"]["totalAmount"], 2) == 2.79  # to the cent: 0.04091 + 2.736 + 0.0128
    assert meta["query"] == window | {"serverlessId": None}

    only_b = api.get("/v2/billing/serverless", params=window | {"serverlessId": "epB"}).json()
    assert [(r["serverlessId"], r["totalAmount"]) for r in only_b["records"]] == [("epB", 2.736)]
    assert only_b["metadata"]["query"]["serverlessId"] == "epB"

    hourly = api.get(
        "/v2/billing/serverless",
        params={"startTime": "2026-03-02T23:00:00Z", "endTime": "2026-03-03T01:00:00Z", "bucketSize": "hour"},
    )
    assert [(r["startTime"], r["totalAmount"]) for r in hourly.json()["records"]] == [
        ("2026-03-02T23:00:00Z", pytest.approx(0.0096)),
        ("2026-03-03T00:00:00Z", pytest.approx(0.0128)),
    ]


def test_serverless_billing_window_rules(api: SpecCheckedClient, localpod: Any) -> None:
    # A window inside a bucket is widened to whole buckets.
    body = api.get(
        "/v2/billing/serverless", params={"startTime": "2026-03-02T10:30:00Z", "endTime": "2026-03-02T11:00:01Z"}
    ).json()
    assert body["metadata"]["query"]["startTime"] == "2026-03-02T00:00:00Z"
    assert body["metadata"]["query"]["endTime"] == "2026-03-03T00:00:00Z"
    assert body["records"] == []  # no usage: no zero records
    problem_errors(api.get("/v2/billing/serverless", params={"lastN": 2, "startTime": "2026-03-02T00:00:00Z"}), 400)
    problem_errors(api.get("/v2/billing/serverless", params={"bucketSize": "minute"}), 422)
    problem_errors(api.get("/v2/billing/serverless", params={"startTime": "yesterday"}), 422)
    problem_errors(api.get("/v2/billing/serverless", params={"lastN": 0}), 422)
    problem_errors(
        api.get(
            "/v2/billing/serverless", params={"startTime": "2026-03-03T00:00:00Z", "endTime": "2026-03-02T00:00:00Z"}
        ),
        400,
    )


def test_running_worker_is_billed_up_to_now(api: SpecCheckedClient, localpod: Any) -> None:
    started = time.time() - 100.5
    localpod.ctx.store.sessions.append(WorkerSession("epC", "w", "NVIDIA L4", 1, 0.00019, started, None))
    body = api.get("/v2/billing/serverless", params={"lastN": 2, "bucketSize": "day"}).json()
    total = sum(r["totalAmount"] for r in body["records"] if r["serverlessId"] == "epC")
    seconds_so_far = math.ceil(time.time() - started)
    assert 101 * 0.00019 - 1e-9 <= total <= seconds_so_far * 0.00019 + 1e-9


def test_network_volume_billing(api: SpecCheckedClient, localpod: Any) -> None:
    standard = new_volume(api, size=100)
    fast = new_volume(api, size=10, dataCenter="US-KS-2", type="HIGH_PERFORMANCE")
    for vid in (standard["id"], fast["id"]):
        localpod.ctx.store.volumes[vid].created_at = "2026-03-02T00:00:00.000Z"
    body = api.get(
        "/v2/billing/network-volumes", params={"startTime": "2026-03-02T00:00:00Z", "endTime": "2026-03-03T00:00:00Z"}
    ).json()
    by_id = {r["networkVolumeId"]: r for r in body["records"]}
    assert by_id[standard["id"]]["standardAmount"] == pytest.approx(100 * 0.07 / 30, abs=1e-6)
    assert by_id[standard["id"]]["highPerformanceAmount"] == 0
    assert by_id[fast["id"]]["highPerformanceAmount"] == pytest.approx(10 * 0.14 / 30, abs=1e-6)
    assert body["metadata"]["uniqueNetworkVolumeCount"] == 2
    assert round(body["metadata"]["totals"]["totalAmount"], 2) == round(7 / 30 + 1.4 / 30, 2)


# -- negative controls: the oracle is not vacuous ------------------------------------------


def test_validator_rejects_a_wrong_endpoint_body(api: SpecCheckedClient) -> None:
    endpoint = new_endpoint(api)
    validate_response("GET", "/v2/serverless/{id}", 200, endpoint, "application/json")
    for broken in (
        {k: v for k, v in endpoint.items() if k != "id"},  # required field missing
        endpoint | {"templateId": "abc"},  # field the spec does not have
        endpoint | {"workers": {"min": 0, "max": 3, "idleTimeout": 10, "standby": 1}},
        endpoint | {"createdAt": "last tuesday"},
        endpoint | {"flashboot": True},
    ):
        with pytest.raises(ValidationError):
            validate_response("GET", "/v2/serverless/{id}", 200, broken, "application/json")
    with pytest.raises(ValidationError):  # a problem document must be application/problem+json
        validate_response(
            "GET", "/v2/serverless/{id}", 404, {"title": "Not Found", "status": 404, "detail": "x"}, "application/json"
        )
    with pytest.raises(ValidationError):  # 204 has no body
        validate_response("DELETE", "/v2/serverless/{id}", 204, {"ok": True}, "application/json")


def test_client_refuses_paths_outside_the_spec(api: SpecCheckedClient) -> None:
    assert api.get("/v2/templates").status_code == 200
    with pytest.raises(ValidationError):
        api.get("/v2/no-such-resource")


def test_catalog_cuda_filter_scopes_data_centers_to_matching_hosts(api: SpecCheckedClient) -> None:
    """``cudaVersions`` narrows ``dataCenters`` to data centers with a host on that version, which is
    how a runbook learns where worker-vllm v2.25.2 (CUDA 13.0, its ``.runpod/hub.json``) can run."""
    base = {"include": "AVAILABILITY", "product": "SERVERLESS"}
    a5000 = quote("NVIDIA RTX A5000")
    every = api.get(f"/v2/catalog/gpus/{a5000}", params=base).json()
    cuda13 = api.get(f"/v2/catalog/gpus/{a5000}", params=base | {"cudaVersions": "13.0"}).json()
    stocking = [dc["id"] for dc in every["dataCenters"]]
    with13 = [dc["id"] for dc in cuda13["dataCenters"]]
    assert with13 == [
        dc.id for dc in catalog.data_centers() if "13.0" in catalog.host_cuda_versions(dc, "NVIDIA RTX A5000")
    ]
    assert set(with13) < set(stocking) and {"US-TX-3", "US-IL-1", "AP-JP-1"} <= set(stocking) - set(with13)
    assert cuda13["cudaVersions"] == [{"version": "13.0", "available": True}]
    floor = api.get(f"/v2/catalog/gpus/{a5000}", params=base | {"minCudaVersion": "12.9"}).json()
    assert [c["version"] for c in floor["cudaVersions"]] == ["12.9", "13.0", "13.1", "13.2"]
    assert "US-IL-1" not in [dc["id"] for dc in floor["dataCenters"]]  # its hosts stop at 12.8
    japan = api.get(f"/v2/catalog/gpus/{a5000}", params=base | {"countryCodes": "JP"}).json()
    assert "13.0" not in [c["version"] for c in japan["cudaVersions"]]  # scoped to Japan's hosts
    nowhere = api.get(f"/v2/catalog/gpus/{a5000}", params=base | {"cudaVersions": "11.8"}).json()
    assert nowhere["availability"] == "NONE" and "dataCenters" not in nowhere and "cudaVersions" not in nowhere
    pod = api.get(f"/v2/catalog/gpus/{quote('Tesla V100-SXM2-32GB')}", params=base).json()
    assert pod["availability"] == "NONE" and all(not c["available"] for c in pod["cudaVersions"])


def test_endpoint_cuda_constraint_round_trip(api: SpecCheckedClient) -> None:
    created = new_endpoint(api, gpu={"pools": ["ADA_24"], "allowedCudaVersions": ["13.0"]})
    assert created["gpu"]["allowedCudaVersions"] == ["13.0"] and created["gpu"]["minCudaVersion"] is None
    eid = created["id"]
    assert api.get(f"/v2/serverless/{eid}").json()["gpu"]["allowedCudaVersions"] == ["13.0"]
    # Switch to a floor: one patch clears the set and sets the floor (setting one does not clear the other).
    patched = api.patch(f"/v2/serverless/{eid}", json={"gpu": {"allowedCudaVersions": [], "minCudaVersion": "12.4"}})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["gpu"]["allowedCudaVersions"], patched.json()["gpu"]["minCudaVersion"]) == ([], "12.4")
    errors = problem_errors(api.patch(f"/v2/serverless/{eid}", json={"gpu": {"allowedCudaVersions": ["13.0"]}}), 400)
    assert any("minCudaVersion" in e for e in errors)  # the floor is still there: mutually exclusive
    problem_errors(
        api.post("/v2/serverless", json=endpoint_body(gpu={"pools": ["ADA_24"], "allowedCudaVersions": ["13"]})), 422
    )
    template = new_template(api, name="vllm-13", allowedCudaVersions=["13.0"])
    body = endpoint_body(name="from-template", templateId=template["id"])
    del body["image"]
    seeded = api.post("/v2/serverless", json=body)
    assert seeded.status_code == 201, seeded.text
    assert seeded.json()["gpu"]["allowedCudaVersions"] == ["13.0"]  # inherited from the template
