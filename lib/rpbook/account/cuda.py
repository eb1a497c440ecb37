"""The host CUDA version a worker image needs, and how an endpoint states it.

A worker image built on a CUDA toolkit starts only on a host whose driver reports that CUDA version
(or, for a floor, a newer one). An endpoint that does not say so lets Runpod place its workers on
any host; on an older one the container cannot start and the worker crash-loops (UNHEALTHY). REST v2
states the constraint on the endpoint as ``gpu.allowedCudaVersions`` (an exact set of ``major.minor``
versions) or ``gpu.minCudaVersion`` (a floor), mutually exclusive, and the catalog tells where it
can be met: ``/v2/catalog/gpus?include=AVAILABILITY&product=SERVERLESS&cudaVersions=13.0`` lists
per GPU type only the data centers with hosts on 13.0.

A floor, not an exact set: the spec says ``allowedCudaVersions`` "Matching is exact", so a set
such as ``["13.0"]`` shuts out every host that moves to 13.1 or later and the workers stay
THROTTLED; Runpod's docs (``serverless/endpoints/endpoint-configurations.mdx``, "CUDA version
selection") say "Select your required version plus all newer versions, since CUDA is backward
compatible". ``minCudaVersion`` states exactly that, open-ended, on the endpoint (the spec:
"compared numerically ... Use this for an open-ended floor"). A template has only
``allowedCudaVersions`` (no floor), so rpbook leaves the template's empty and puts the floor on
the endpoint, with an explicit ``allowedCudaVersions: []`` beside it (the spec: "an explicit
``[]`` ... may accompany this floor"), so no exact set is inherited from the template.

The images the runbooks deploy, and what each needs (the only table of it in rpbook):

- ``runpod/worker-v1-vllm`` v2.19.0 to v2.25.2: CUDA 13.0 or newer. Its ``.runpod/hub.json`` lists
  ``allowedCudaVersions: ["13.0"]`` at every one of those tags (the newest CUDA when it was
  written: its floor); v2.12.0 to v2.18.1: ``["12.9", "12.8"]`` (same file), floor 12.8.
  Source: github.com/runpod-workers/worker-vllm.
- ``runpod/worker-infinity-embedding`` 1.1.0 to 1.1.4: CUDA 12.4 or newer. Its ``Dockerfile``
  builds ``FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04`` with ``torch==2.5.1+cu124``; its
  ``.runpod/hub.json`` lists ``["12.7", "12.6", "12.5", "12.4"]``. That exact list would also shut
  out hosts on 12.8 or 13.0, whose drivers run containers built for an older CUDA, so rpbook states
  the floor the build needs instead. Source: github.com/runpod-workers/worker-infinity-embedding.

Other images and other tags have no known requirement: rpbook does not guess (set
``EndpointSpec.allowed_cuda_versions`` or ``min_cuda_version`` yourself).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rpbook.core.errors import ConfigError

_VERSION = re.compile(r"^\d+\.\d+$")
_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def version_key(version: str) -> tuple[int, ...]:
    """``12.11`` above ``12.2``: CUDA versions compare numerically, part by part."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class CudaRequirement:
    """An endpoint's CUDA constraint: ``allowed`` (exact set) or ``minimum`` (floor), not both;
    neither means "any host" (an explicit no-constraint). ``source`` says where it was read."""

    allowed: tuple[str, ...] = ()
    minimum: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        allowed = (self.allowed,) if isinstance(self.allowed, str) else tuple(self.allowed)
        for version in allowed:
            if not isinstance(version, str) or not _VERSION.match(version):
                raise ConfigError(
                    f"allowed_cuda_versions: {version!r} is not a CUDA version as major.minor (e.g. '13.0')"
                )
        if len(set(allowed)) != len(allowed):
            raise ConfigError(f"allowed_cuda_versions: {list(allowed)} lists a version twice")
        if self.minimum is not None and (not isinstance(self.minimum, str) or not _VERSION.match(self.minimum)):
            raise ConfigError(f"min_cuda_version: {self.minimum!r} is not a CUDA version as major.minor (e.g. '12.4')")
        if allowed and self.minimum is not None:
            raise ConfigError(
                "allowed_cuda_versions and min_cuda_version are mutually exclusive (Runpod refuses "
                "both): give an exact set or a floor, not both"
            )
        object.__setattr__(self, "allowed", allowed)

    @property
    def constrained(self) -> bool:
        return bool(self.allowed) or self.minimum is not None

    def describe(self) -> str:
        """``CUDA 13.0``, ``CUDA 12.9 or 12.8``, ``CUDA >= 12.4`` or ``any CUDA``."""
        if self.allowed:
            return "CUDA " + " or ".join(self.allowed)
        if self.minimum is not None:
            return f"CUDA >= {self.minimum}"
        return "any CUDA"

    def catalog_params(self) -> dict[str, str]:
        """The ``/v2/catalog/gpus`` filter that scopes availability to hosts meeting it."""
        if self.allowed:
            return {"cudaVersions": ",".join(self.allowed)}
        if self.minimum is not None:
            return {"minCudaVersion": self.minimum}
        return {}

    def endpoint_gpu_fields(self) -> dict[str, Any]:
        """The ``gpu`` fields of an endpoint create body (nothing for no constraint). A floor goes
        with an explicit ``allowedCudaVersions: []``, so the template's set is not inherited."""
        if self.allowed:
            return {"allowedCudaVersions": list(self.allowed)}
        if self.minimum is not None:
            return {"allowedCudaVersions": [], "minCudaVersion": self.minimum}
        return {}


@dataclass(frozen=True)
class _ImageCuda:
    repository: str
    first: tuple[int, int, int]
    last: tuple[int, int, int]
    requirement: CudaRequirement


_HUB_VLLM = "runpod-workers/worker-vllm .runpod/hub.json allowedCudaVersions"
IMAGE_CUDA: tuple[_ImageCuda, ...] = (
    _ImageCuda(
        "runpod/worker-v1-vllm",
        (2, 19, 0),
        (2, 25, 2),
        CudaRequirement(minimum="13.0", source=f'{_HUB_VLLM} ["13.0"], v2.19.0-v2.25.2, as a floor'),
    ),
    _ImageCuda(
        "runpod/worker-v1-vllm",
        (2, 12, 0),
        (2, 18, 1),
        CudaRequirement(minimum="12.8", source=f'{_HUB_VLLM} ["12.9", "12.8"], v2.12.0-v2.18.1, as a floor'),
    ),
    _ImageCuda(
        "runpod/worker-infinity-embedding",
        (1, 1, 0),
        (1, 1, 4),
        CudaRequirement(
            minimum="12.4",
            source="runpod-workers/worker-infinity-embedding Dockerfile (FROM nvidia/cuda:12.4.1), 1.1.0-1.1.4",
        ),
    ),
)


def image_cuda_requirement(image: str) -> CudaRequirement | None:
    """What ``image`` (``repository:tag``) needs, from the table above; None when not known."""
    repository, _, tag = image.strip().rpartition(":") if isinstance(image, str) else ("", "", "")
    match = _RELEASE.match(tag)
    if not repository or match is None:
        return None
    release = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    for row in IMAGE_CUDA:
        if row.repository == repository and row.first <= release <= row.last:
            return row.requirement
    return None


def requirement_from_fields(allowed: Sequence[str] | str | None, minimum: str | None) -> CudaRequirement | None:
    """A requirement from parameters (``None`` both: none given, derive it from the image). A
    comma-separated string is a list; ``[]`` states "no constraint" on purpose."""
    if allowed is None and minimum is None:
        return None
    if isinstance(allowed, str):
        allowed = [part.strip() for part in allowed.split(",") if part.strip()]
    return CudaRequirement(allowed=tuple(allowed or ()), minimum=minimum)
