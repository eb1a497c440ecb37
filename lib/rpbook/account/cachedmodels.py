"""Cached models on an endpoint, through Runpod's GraphQL ``saveEndpoint`` (``modelReferences``).

Why GraphQL: Runpod's docs (``serverless/endpoints/model-caching.mdx``, runpod/docs at a900806)
describe cached models (workers start on hosts that already hold the Hugging Face model; the
download is not billed; no network volume, so no data-center pinning) and show only the console's
Model field. The REST v2 spec (``openapi-v2.json``) has no field for it. **The field is not
documented in Runpod's API docs**: this module follows runpodctl (runpod/runpodctl at 53ccd0f,
2026-06-11, "Add support for deploying serverless with models"), whose ``internal/api/endpoints.go``
sends ``modelReferences`` (a list of ``https://huggingface.co/<org>/<model>:<revision>`` strings)
in ``saveEndpoint`` and whose ``cmd/serverless/create.go`` / ``update.go`` expose it as
``--model-reference`` (GPU endpoints only).

``saveEndpoint`` with an ``id`` is a full replace: a field left out takes Runpod's default again
(runpodctl's ``UpdateEndpointModels``: "saveEndpoint is a full replace and omitting fields would
reset them to server defaults"). So, like runpodctl, :func:`save_model_references` reads the whole
endpoint first and sends every field back with only ``modelReferences`` changed. runpodctl reads it
over REST; rpbook reads the GraphQL fields it writes (``myself { endpoints { ... } }``, the query
runpod-python 1.12 uses to list endpoints), so nothing is translated between the two shapes. One
field more than runpodctl sends: ``allowedCudaVersions`` (an ``EndpointInput`` field in
runpod-python's ``api/mutations/endpoints.py``), so an exact CUDA set survives the replace.
GraphQL's ``scalerValue`` is an Int: a fractional REST queue delay would be rounded by the replace,
so :class:`~rpbook.account.specs.EndpointSpec` refuses one with cached models before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rpbook.account.controlplane import RunpodClient
from rpbook.account.modelrefs import check_references
from rpbook.core.errors import ControlPlaneError, EndpointNotFound

ENDPOINT_FIELDS = (
    "id name templateId gpuIds gpuCount instanceIds workersMin workersMax locations networkVolumeId "
    "networkVolumeIds { networkVolumeId } idleTimeout scalerType scalerValue executionTimeoutMs "
    "minCudaVersion allowedCudaVersions flashBootType modelReferences"
)
"""What runpodctl's ``UpdateEndpointModels`` selects and re-sends (plus ``allowedCudaVersions``)."""
ENDPOINTS_QUERY = f"query Endpoints {{ myself {{ endpoints {{ {ENDPOINT_FIELDS} }} }} }}"
SAVE_ENDPOINT = (
    f"mutation SaveEndpoint($input: EndpointInput!) {{ saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }} }}"
)
"""runpodctl's mutation text: ``$input: EndpointInput!`` as a variable, never inlined."""


def read_endpoint(client: RunpodClient, endpoint_id: str) -> dict[str, Any]:
    """The endpoint as GraphQL shows it (the fields ``saveEndpoint`` takes back)."""
    me = client.graphql(ENDPOINTS_QUERY).get("myself") or {}
    for endpoint in me.get("endpoints") or []:
        if isinstance(endpoint, dict) and endpoint.get("id") == endpoint_id:
            return endpoint
    raise EndpointNotFound(f"endpoint {endpoint_id!r} is not among the account's endpoints (GraphQL myself.endpoints)")


def check_cached_models_api(client: RunpodClient) -> None:
    """Read every endpoint with the fields :func:`save_model_references` reads and writes: the
    plan of a new endpoint with cached models calls it, so a key GraphQL refuses, or a schema without
    ``modelReferences``, stops the runbook before the endpoint (or anything) is created."""
    client.graphql(ENDPOINTS_QUERY)


def model_references(client: RunpodClient, endpoint_id: str) -> tuple[str, ...]:
    """The endpoint's cached models, as Runpod keeps them."""
    return tuple(read_endpoint(client, endpoint_id).get("modelReferences") or ())


def save_endpoint_input(current: Mapping[str, Any], references: Sequence[str]) -> dict[str, Any]:
    """``EndpointInput`` for ``saveEndpoint``: every field of ``current`` as runpodctl's
    ``UpdateEndpointModels`` re-sends it, ``modelReferences`` replaced (``[]`` clears them)."""
    volumes = [{"networkVolumeId": v["networkVolumeId"]} for v in current.get("networkVolumeIds") or [] if v]
    body: dict[str, Any] = {
        "id": current["id"],
        "name": current.get("name"),
        "templateId": current.get("templateId"),
        "gpuIds": current.get("gpuIds"),
        "gpuCount": current.get("gpuCount"),
        "instanceIds": current.get("instanceIds") or None,
        "workersMin": current.get("workersMin"),
        "workersMax": current.get("workersMax"),
        "locations": current.get("locations") or "",
        "networkVolumeId": current.get("networkVolumeId") or "",
        "networkVolumeIds": volumes,
        "idleTimeout": current.get("idleTimeout"),
        "scalerType": current.get("scalerType"),
        "scalerValue": current.get("scalerValue"),
        "executionTimeoutMs": current.get("executionTimeoutMs"),
        "minCudaVersion": current.get("minCudaVersion") or "",
        "flashBootType": current.get("flashBootType"),
        "modelReferences": list(references),
    }
    if current.get("allowedCudaVersions"):
        body["allowedCudaVersions"] = current["allowedCudaVersions"]
    return body


def save_model_references(client: RunpodClient, endpoint_id: str, references: Sequence[str]) -> tuple[str, ...]:
    """Set the endpoint's cached models to exactly ``references`` (``()`` clears them), keeping
    every other field; returns what Runpod saved, which must be what was asked."""
    wanted = check_references("model_references", list(references))
    current = read_endpoint(client, endpoint_id)
    saved = client.graphql(SAVE_ENDPOINT, {"input": save_endpoint_input(current, wanted)}).get("saveEndpoint") or {}
    got = tuple(saved.get("modelReferences") or ())
    if got != wanted:
        raise ControlPlaneError(
            f"saveEndpoint kept model references {list(got)} for endpoint {endpoint_id}, not {list(wanted)}: "
            "check the endpoint in the Runpod console (Manage -> Edit Endpoint -> Model)"
        )
    return got
