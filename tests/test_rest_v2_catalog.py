"""REST v2's CPU and public-template catalogs on localpod, validated against the spec.

Every response goes through ``SpecCheckedClient`` (openapi-v2.json, strict: no undocumented field).
Rules from the spec's ``listCpuTypes`` / ``getCpuType`` (``include=AVAILABILITY`` requires
``product`` and ``product``/``vcpuCount`` are valid only with it, 400 either way; ``vcpuCount`` a
power of two; ``dataCenters`` omitted when the flavor is unavailable everywhere) and
``listPublicTemplates`` (``source`` official by default, verified or community; ``registry`` null
for templates you don't own; any catalog template readable through ``/v2/templates/{id}``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from spec import SpecCheckedClient, load_spec


@pytest.fixture
def api(localpod: Any) -> Iterator[SpecCheckedClient]:
    load_spec()
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as client:
        yield client
    assert client.checked


def status(response: httpx.Response, code: int) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    return body


def test_cpu_catalog_without_and_with_availability(api: SpecCheckedClient) -> None:
    plain = status(api.get("/v2/catalog/cpus"), 200)["cpus"]
    assert plain and all("availability" not in c and "dataCenters" not in c for c in plain)
    first = next(c for c in plain if c["id"] == "cpu3c")  # the spec's own example flavor
    assert (first["name"], first["group"], first["vcpu"], first["ramGbPerVcpu"]) == (
        "Compute-Optimized",
        "Gen 3",
        {"min": 2, "max": 32},
        2.5,
    )
    assert first["price"] == {"securePerVcpu": 0.04, "serverlessPerVcpu": 0.03}
    base = {"include": "AVAILABILITY", "product": "SERVERLESS"}
    serverless = status(api.get("/v2/catalog/cpus", params=base), 200)["cpus"]
    assert all(c["availability"] in ("NONE", "LOW", "MEDIUM", "HIGH") for c in serverless)
    memory = next(c for c in serverless if c["id"] == "cpu3m")
    assert memory["availability"] == "NONE" and "dataCenters" not in memory  # pods only
    pods = status(api.get("/v2/catalog/cpus/cpu3m", params=base | {"product": "POD"}), 200)
    assert pods["availability"] == "LOW" and {d["id"] for d in pods["dataCenters"]} == {"US-KS-2", "EU-RO-1"}
    both = status(api.get("/v2/catalog/cpus/cpu3c", params=base | {"product": "POD,SERVERLESS"}), 200)
    assert both["availability"] == "HIGH"
    too_many = status(api.get("/v2/catalog/cpus/cpu3m", params=base | {"product": "POD", "vcpuCount": "32"}), 200)
    assert too_many["availability"] == "NONE" and "dataCenters" not in too_many  # cpu3m stops at 16
    status(api.get("/v2/catalog/cpus/nosuchcpu"), 404)


@pytest.mark.parametrize(
    "params, code",
    [
        ({"include": "AVAILABILITY"}, 400),  # product required
        ({"product": "POD"}, 400),  # only with include
        ({"vcpuCount": "4"}, 400),  # only with include
        ({"include": "AVAILABILITY", "product": "POD", "vcpuCount": "6"}, 400),  # not a power of two
        ({"include": "AVAILABILITY", "product": "CLUSTER"}, 422),  # not a CPU product
        ({"include": "AVAILABILITY", "product": "POD", "vcpuCount": "1"}, 422),  # minimum 2
        ({"include": "GPU_AVAILABILITY", "product": "POD"}, 422),
    ],
)
def test_cpu_catalog_parameter_rules(api: SpecCheckedClient, params: dict[str, str], code: int) -> None:
    body = status(api.get("/v2/catalog/cpus", params=params), code)
    assert body["status"] == code and body["errors"]


def test_public_template_catalog_slices(api: SpecCheckedClient) -> None:
    official = status(api.get("/v2/catalog/templates"), 200)["templates"]
    assert official == status(api.get("/v2/catalog/templates", params={"source": "official"}), 200)["templates"]
    assert {t["image"].split(":")[0] for t in official} >= {"runpod/pytorch", "runpod/worker-v1-vllm"}
    assert {t["serverless"] for t in official} == {True, False}  # pod and serverless templates both
    assert all(t["public"] and t["registry"] is None for t in official)
    assert status(api.get("/v2/catalog/templates", params={"source": "verified"}), 200) == {"templates": []}
    mine = {"name": "shared", "image": "me/worker:1", "serverless": True, "public": True}
    shared = status(api.post("/v2/templates", json=mine), 201)
    status(api.post("/v2/templates", json=mine | {"name": "private", "public": False}), 201)
    community = status(api.get("/v2/catalog/templates", params={"source": "community"}), 200)["templates"]
    assert [t["id"] for t in community] == [shared["id"]]
    status(api.get("/v2/catalog/templates", params={"source": "everything"}), 422)
    # A catalog template is readable by id, but not the reader's to change or delete.
    pytorch = next(t for t in official if t["image"].startswith("runpod/pytorch"))
    assert status(api.get(f"/v2/templates/{pytorch['id']}"), 200) == pytorch
    status(api.delete(f"/v2/templates/{pytorch['id']}"), 404)
    assert pytorch["id"] not in [t["id"] for t in status(api.get("/v2/templates"), 200)["templates"]]


def test_data_centers_show_cpu_availability_when_asked(api: SpecCheckedClient) -> None:
    centers = status(api.get("/v2/catalog/datacenters", params={"include": "CPU_AVAILABILITY"}), 200)["dataCenters"]
    kansas = next(dc for dc in centers if dc["id"] == "US-KS-2")
    assert {c["id"] for c in kansas["cpuAvailability"]} == {"cpu3c", "cpu3g", "cpu3m"}
    sweden = next(dc for dc in centers if dc["id"] == "EU-SE-1")
    assert "cpuAvailability" not in sweden  # offers no CPU flavor: omitted, not empty
    plain = status(api.get("/v2/catalog/datacenters/US-KS-2"), 200)
    assert "cpuAvailability" not in plain
