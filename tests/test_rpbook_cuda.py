"""rpbook's table of what CUDA each worker image needs, and the CUDA fields of EndpointSpec.

Rows checked against the upstream files: runpod-workers/worker-vllm ``.runpod/hub.json``
(``allowedCudaVersions: ["13.0"]`` at v2.19.0..v2.25.2, ``["12.9", "12.8"]`` at v2.12.0..v2.18.1) and
runpod-workers/worker-infinity-embedding ``Dockerfile`` (``FROM nvidia/cuda:12.4.1-...`` at 1.1.x).
Each becomes a floor (``minCudaVersion``): the REST v2 spec says ``allowedCudaVersions`` matches
exactly, and Runpod's docs (``serverless/endpoints/endpoint-configurations.mdx``, "CUDA version
selection") say to select the required version "plus all newer versions".
"""

from __future__ import annotations

import re

import pytest

from rpbook.account.cuda import CudaRequirement, image_cuda_requirement, requirement_from_fields, version_key
from rpbook.account.specs import EndpointSpec
from rpbook.account.workerimages import infinity_template, vllm_template
from rpbook.core.errors import ConfigError


def test_worker_images_map_to_what_their_sources_say() -> None:
    vllm = vllm_template("t", "mistralai/Mistral-7B-Instruct-v0.3", "v2.25.2", None, 8192, 0.9, 30)
    need = image_cuda_requirement(vllm.image)
    assert need is not None and need.allowed == () and need.minimum == "13.0"
    assert "worker-vllm" in need.source and "hub.json" in need.source and "floor" in need.source
    assert image_cuda_requirement("runpod/worker-v1-vllm:v2.19.0").minimum == "13.0"
    assert image_cuda_requirement("runpod/worker-v1-vllm:v2.18.1").minimum == "12.8"
    infinity = image_cuda_requirement(infinity_template("e", "BAAI/bge-small-en-v1.5", "1.1.4").image)
    assert infinity is not None and infinity.minimum == "12.4" and infinity.allowed == ()
    assert "Dockerfile" in infinity.source


@pytest.mark.parametrize(
    "image",
    [
        "runpod/worker-v1-vllm:v2.26.0",
        "runpod/worker-v1-vllm:v2.11.0",
        "runpod/worker-v1-vllm:latest",
        "runpod/worker-infinity-embedding:1.0.0",
        "ghcr.io/me/worker:v2.25.2",
        "v2.25.2",
        "",
    ],
)
def test_unknown_images_are_not_guessed(image: str) -> None:
    assert image_cuda_requirement(image) is None


def test_requirement_rules() -> None:
    assert CudaRequirement(("13.0",)).describe() == "CUDA 13.0"
    assert CudaRequirement(("12.9", "12.8")).catalog_params() == {"cudaVersions": "12.9,12.8"}
    floor = CudaRequirement(minimum="12.4")
    assert floor.describe() == "CUDA >= 12.4" and floor.catalog_params() == {"minCudaVersion": "12.4"}
    # With an explicit [] beside the floor, so a template's exact set is not inherited (spec).
    assert floor.endpoint_gpu_fields() == {"allowedCudaVersions": [], "minCudaVersion": "12.4"}
    anything = CudaRequirement()
    assert not anything.constrained and anything.catalog_params() == {} and anything.describe() == "any CUDA"
    assert version_key("12.11") > version_key("12.2")
    for bad in (
        {"allowed": ("13",)},
        {"allowed": ("13.0", "13.0")},
        {"minimum": "12"},
        {"allowed": ("13.0",), "minimum": "12.4"},
    ):
        with pytest.raises(ConfigError):
            CudaRequirement(**bad)  # type: ignore[arg-type]
    assert requirement_from_fields(None, None) is None
    assert requirement_from_fields("13.0, 12.9", None) == CudaRequirement(("13.0", "12.9"))
    assert requirement_from_fields([], None) == CudaRequirement()


def test_endpoint_spec_cuda_fields() -> None:
    assert EndpointSpec("e", "t", ["ADA_24"]).cuda is None  # derive it from the image
    assert EndpointSpec("e", "t", ["ADA_24"], allowed_cuda_versions=["13.0"]).cuda == CudaRequirement(("13.0",))
    assert EndpointSpec("e", "t", ["ADA_24"], min_cuda_version="12.4").cuda == CudaRequirement(minimum="12.4")
    assert EndpointSpec("e", "t", ["ADA_24"], min_cuda_version="").cuda is None  # papermill's "unset"
    assert EndpointSpec("e", "t", ["ADA_24"], allowed_cuda_versions="").cuda is None
    assert EndpointSpec("e", "t", ["ADA_24"], allowed_cuda_versions=[]).cuda == CudaRequirement()
    with pytest.raises(ConfigError, match=re.escape("EndpointSpec.allowed_cuda_versions")):
        EndpointSpec("e", "t", ["ADA_24"], allowed_cuda_versions=["13"])
    with pytest.raises(ConfigError, match="mutually exclusive"):
        EndpointSpec("e", "t", ["ADA_24"], allowed_cuda_versions=["13.0"], min_cuda_version="12.4")
