"""Which host CUDA version a worker image needs to start, for the images localpod emulates.

A container built on a CUDA toolkit runs only on a host whose driver reports that CUDA version or
a newer one. Runpod places a worker of an endpoint WITHOUT a CUDA filter on any host, so an image
that needs 13.0 can land on a 12.8 host: its container cannot start, Runpod restarts it, and the
worker crash-loops, billed, until someone sets ``gpu.allowedCudaVersions`` / ``minCudaVersion``.
localpod emulates that for the images below; an unknown image starts on any host.

The table, and where each row was read:

- ``runpod/worker-v1-vllm`` v2.19.0 to v2.25.2: CUDA 13.0. ``.runpod/hub.json`` sets
  ``"allowedCudaVersions": ["13.0"]`` at every tag in that range (commit 32b29d4, "update base image
  and hub for cuda 13.0", first released in v2.19.0); its ``Dockerfile`` is built ``FROM
  nvidia/cuda:13.0.2-devel-ubuntu22.04`` up to v2.23.0 and ``FROM vllm/vllm-openai:${VLLM_VERSION}``
  (v0.26.0 / v0.27.1) from v2.24.0. Tags v2.12.0 to v2.18.1 listed ``["12.9", "12.8"]`` on a
  ``nvidia/cuda:12.8.0`` / ``12.9.1`` base: 12.8.
- ``runpod/worker-infinity-embedding`` 1.1.0 to 1.1.4: CUDA 12.4. ``Dockerfile``: ``FROM
  nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04`` and ``torch==2.5.1+cu124``; ``.runpod/hub.json``
  lists ``["12.7", "12.6", "12.5", "12.4"]``, none below 12.4.

Newer tags are not guessed: a release may move to another CUDA, so they count as unknown until
the table is extended from that release's files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


@dataclass(frozen=True)
class ImageCuda:
    """Tags ``first``..``last`` (inclusive) of ``repository`` need a host CUDA >= ``min_cuda``."""

    repository: str
    first: tuple[int, int, int]
    last: tuple[int, int, int]
    min_cuda: str
    source: str


IMAGE_CUDA: tuple[ImageCuda, ...] = (
    ImageCuda(
        "runpod/worker-v1-vllm",
        (2, 19, 0),
        (2, 25, 2),
        "13.0",
        'runpod-workers/worker-vllm .runpod/hub.json allowedCudaVersions ["13.0"]',
    ),
    ImageCuda(
        "runpod/worker-v1-vllm",
        (2, 12, 0),
        (2, 18, 1),
        "12.8",
        'runpod-workers/worker-vllm .runpod/hub.json allowedCudaVersions ["12.9", "12.8"]',
    ),
    ImageCuda(
        "runpod/worker-infinity-embedding",
        (1, 1, 0),
        (1, 1, 4),
        "12.4",
        "runpod-workers/worker-infinity-embedding Dockerfile FROM nvidia/cuda:12.4.1",
    ),
)


def image_min_cuda(image: str) -> ImageCuda | None:
    """The row for ``image`` (``repository:tag``), or None when localpod does not know its CUDA."""
    repository, _, tag = image.strip().rpartition(":")
    match = _RELEASE.match(tag)
    if not repository or match is None:
        return None
    release = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    for row in IMAGE_CUDA:
        if row.repository == repository and row.first <= release <= row.last:
            return row
    return None
