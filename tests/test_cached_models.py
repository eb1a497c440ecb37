"""Cached models (issue 17 item 6): localpod's GraphQL ``modelReferences``, its cold start without a
download, and rpbook's plans and runbook 02 with ``weights = "cached"``.

Sources: runpod/docs ``serverless/endpoints/model-caching.mdx`` (a900806: workers start on hosts that
hold the model, download time not billed, no network volume); runpod/runpodctl at 53ccd0f
(``internal/api/endpoints.go`` ``CreateEndpointGQL`` / ``UpdateEndpointModels``,
``cmd/serverless/create.go`` / ``update.go`` ``--model-reference``): GraphQL ``saveEndpoint`` with
``modelReferences``, re-sending every field because ``saveEndpoint`` is a full replace.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LocalpodServer, call_in_server, wait_for
from rpbook.account.cachedmodels import model_references
from rpbook.account.controlplane import RunpodClient
from rpbook.account.modelrefs import model_reference, weights_settings
from rpbook.account.plans import ensure_endpoint, ensure_template
from rpbook.account.specs import EndpointSpec
from rpbook.account.workerimages import vllm_template
from rpbook.core.errors import ConfigError, ControlPlaneError
from rpbook.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"

# runpodctl's CreateEndpointGQL mutation (internal/api/endpoints.go at 53ccd0f), verbatim in substance.
RUNPODCTL_CREATE = """
mutation SaveEndpoint($input: EndpointInput!) {
  saveEndpoint(input: $input) {
    id name templateId gpuIds instanceIds networkVolumeId
    networkVolumeIds { networkVolumeId dataCenterId }
    locations idleTimeout scalerType scalerValue workersMin workersMax gpuCount
    minCudaVersion executionTimeoutMs flashBootType modelReferences
  }
}
"""
# The keys runpodctl's UpdateEndpointModels re-sends (its "input" map), every one of them.
RUNPODCTL_UPDATE_KEYS = {
    "id",
    "name",
    "templateId",
    "gpuIds",
    "gpuCount",
    "instanceIds",
    "workersMin",
    "workersMax",
    "locations",
    "networkVolumeId",
    "networkVolumeIds",
    "idleTimeout",
    "scalerType",
    "scalerValue",
    "executionTimeoutMs",
    "minCudaVersion",
    "flashBootType",
    "modelReferences",
}


def gql(localpod: LocalpodServer, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{localpod.rest_url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        timeout=10,
    )
    assert response.status_code == 200
    return response.json()


def serverless_template(localpod: LocalpodServer) -> str:
    body = gql(
        localpod,
        "mutation T($input: SaveTemplateInput!) { saveTemplate(input: $input) { id } }",
        {
            "input": {
                "name": "qwen-tpl",
                "imageName": "runpod/worker-v1-vllm:v2.25.2",
                "containerDiskInGb": 20,
                "volumeInGb": 0,
                "isServerless": True,
                "env": [{"key": "MODEL_NAME", "value": QWEN}],
            }
        },
    )
    return body["data"]["saveTemplate"]["id"]


# -- localpod ------------------------------------------------------------------------------------


def test_save_endpoint_keeps_model_references_as_runpodctl_sends_them(localpod: LocalpodServer) -> None:
    """runpodctl's create input (omitempty: no volume, no locations) with ``--model-reference``; the
    reference reads back through ``myself { endpoints { modelReferences } }``; a malformed one is
    refused and nothing changes; a full replace without the field clears it (as runpodctl warns)."""
    template_id = serverless_template(localpod)
    reference = f"https://huggingface.co/{QWEN}:main"
    created = gql(
        localpod,
        RUNPODCTL_CREATE,
        {
            "input": {
                "name": "qwen-cached",
                "templateId": template_id,
                "gpuIds": "ADA_24",
                "gpuCount": 1,
                "workersMax": 2,
                "flashBootType": "FLASHBOOT",
                "modelReferences": [reference],
            }
        },
    )
    assert "errors" not in created, created
    endpoint = created["data"]["saveEndpoint"]
    assert endpoint["modelReferences"] == [reference]
    assert endpoint["networkVolumeId"] is None and endpoint["locations"] == ""
    listed = gql(localpod, "query { myself { endpoints { id modelReferences } } }")["data"]["myself"]["endpoints"]
    assert listed == [{"id": endpoint["id"], "modelReferences": [reference]}]

    for bad in (QWEN, f"https://huggingface.co/{QWEN}", f"http://huggingface.co/{QWEN}:main", "https://x.io/a/b:main"):
        refused = gql(
            localpod,
            RUNPODCTL_CREATE,
            {"input": {"id": endpoint["id"], "name": "qwen-cached", "templateId": template_id, "gpuIds": "ADA_24",
                       "modelReferences": [bad]}},
        )  # fmt: skip
        assert refused["data"]["saveEndpoint"] is None
        assert "https://huggingface.co/<org>/<model>:<revision>" in refused["errors"][0]["message"]
    assert localpod.ctx.store.endpoints[endpoint["id"]].model_references == [reference]

    replaced = gql(
        localpod,
        RUNPODCTL_CREATE,
        {"input": {"id": endpoint["id"], "name": "qwen-cached", "templateId": template_id, "gpuIds": "ADA_24"}},
    )
    assert replaced["data"]["saveEndpoint"]["modelReferences"] == []


def test_a_cached_model_starts_without_a_download_unlike_the_volume_path(
    localpod: LocalpodServer, plant_endpoint: Any
) -> None:
    """The same model, one endpoint on an empty network volume, one with the model cached: the volume's
    first worker downloads (billed, it runs after the container start), the cached one reads the
    weights from the host's cache and downloads nothing (model-caching.mdx: download time not billed)."""
    from localpod.store import NetworkVolume

    def make_volume() -> str:
        volume = NetworkVolume(id="vol0000001", name="weights", size=50, data_center="EU-RO-1")
        localpod.ctx.store.volumes[volume.id] = volume
        return volume.id

    volume_id = call_in_server(localpod, make_volume)
    env = {"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token}
    image = "runpod/worker-v1-vllm:v2.25.2"
    on_volume = plant_endpoint(image=image, env=env, network_volume_ids=[volume_id], workers_min=1)
    cached = plant_endpoint(image=image, env=env, model_references=[f"https://huggingface.co/{MISTRAL}:main"],
                            workers_min=1)  # fmt: skip

    def ready_plan(endpoint_id: str) -> Any:
        def plan() -> Any:
            runtime = localpod.ctx.platform.runtimes.get(endpoint_id)
            workers = list(runtime.workers.values()) if runtime is not None else []
            return workers[0].plan if workers and workers[0].status in ("IDLE", "RUNNING") else None

        return wait_for(lambda: call_in_server(localpod, plan), timeout=20)

    volume_plan, cached_plan = ready_plan(on_volume.id), ready_plan(cached.id)
    assert volume_plan.downloaded == [MISTRAL] and volume_plan.download_s > 0
    assert cached_plan.downloaded == [] and cached_plan.download_s == 0
    assert cached_plan.from_host_cache == [MISTRAL] and cached_plan.host_cache_read_s > 0
    assert "download" not in cached_plan.describe() and "cached model read" in cached_plan.describe()
    # Nothing of the cached model lands on a volume, and the cached endpoint is not pinned.
    assert localpod.ctx.store.volumes[volume_id].cached_models == [MISTRAL]
    assert localpod.ctx.store.endpoints[cached.id].data_center_ids == []


def test_cold_start_arithmetic_of_the_two_paths() -> None:
    """With the realistic profile: volume path's first start = container + download + engine init;
    cached path = container + read from the host's cache + engine init, faster than the volume read."""
    from localpod import hubdata
    from localpod.profiles import REALISTIC as P
    from localpod.serverless.coldstart import plan_cold_start

    first = plan_cold_start(P, [MISTRAL], set(), False)
    again = plan_cold_start(P, [MISTRAL], {MISTRAL}, False)
    cached = plan_cold_start(P, [MISTRAL], None, False, {MISTRAL})
    weights = hubdata.weights_size_bytes(MISTRAL) or 0
    assert weights > 0
    assert first.total_s == pytest.approx(
        P.container_start_s + (hubdata.download_size_bytes(MISTRAL) or 0) / P.download_bytes_per_s + P.engine_init_s
    )
    assert cached.download_s == 0
    assert cached.total_s == pytest.approx(
        P.container_start_s + weights / P.host_cache_read_bytes_per_s + P.engine_init_s
    )
    assert cached.total_s < again.total_s < first.total_s


# -- rpbook --------------------------------------------------------------------------------------


class RecordingTransport(httpx.HTTPTransport):
    """A real HTTP transport that keeps the GraphQL bodies it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.graphql: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/graphql"):
            self.graphql.append(json.loads(request.content))
        return super().handle_request(request)


@pytest.fixture
def recorded(settings: Settings) -> Iterator[tuple[RunpodClient, RecordingTransport]]:
    transport = RecordingTransport()
    with RunpodClient(settings, settings.runpod_api_key(), transport=transport) as rp:
        yield rp, transport


def test_model_reference_form_and_weights_choice() -> None:
    assert model_reference(QWEN) == f"https://huggingface.co/{QWEN}:main"
    assert weights_settings("cached", QWEN, "llm-weights") == (None, (f"https://huggingface.co/{QWEN}:main",))
    assert weights_settings("volume", QWEN, "llm-weights") == ("llm-weights", ())
    with pytest.raises(ConfigError, match="'volume', 'cached'"):
        weights_settings("both", QWEN, "llm-weights")
    with pytest.raises(ConfigError, match=re.escape("https://huggingface.co/<org>/<model>:<revision>")):
        EndpointSpec("e", "t", ["ADA_24"], model_references=[QWEN])
    with pytest.raises(ConfigError, match="whole number"):
        EndpointSpec("e", "t", ["ADA_24"], scaler_value=2.5, model_references=[model_reference(QWEN)])


def test_plan_and_apply_a_cached_endpoint_idempotently(
    recorded: tuple[RunpodClient, RecordingTransport], localpod: LocalpodServer, settings: Settings
) -> None:
    """No volume, no data center: the plan shows ``model_references``, apply creates the endpoint over
    REST v2 then sets the reference with runpodctl's saveEndpoint body (every field re-sent, values
    as variables); a second run plans no change and sends no mutation."""
    client, transport = recorded
    template = vllm_template("vllm-qwen", QWEN, "v2.25.2", settings.hf_token(), 4096, 0.9, 8)
    reference = model_reference(QWEN)
    spec = EndpointSpec("qwen-cached", "vllm-qwen", ["ADA_24"], model_references=(reference,))
    ensure_template(client, template, apply=True)

    dry = ensure_endpoint(client, spec, apply=False, template_spec=template)
    assert dry.plan.action == "create" and not localpod.ctx.store.endpoints
    change = next(c for c in dry.plan.changes if c.field == "model_references")
    assert change.wanted == (reference,) and change.actual is None
    assert "network_volume" not in dry.plan.changed_fields and "data_center" not in dry.plan.changed_fields
    assert any("runpodctl" in note for note in dry.plan.notes)

    created = ensure_endpoint(client, spec, apply=True, template_spec=template)
    assert created.applied and created.resource is not None
    stored = localpod.ctx.store.endpoints[created.resource.id]
    assert stored.model_references == [reference]
    assert stored.network_volume_ids == [] and stored.data_center_ids == []
    assert model_references(client, created.resource.id) == (reference,)

    saves = [b for b in transport.graphql if "saveEndpoint" in b["query"]]
    assert len(saves) == 1
    assert "$input: EndpointInput!" in saves[0]["query"] and reference not in saves[0]["query"]
    sent = saves[0]["variables"]["input"]
    assert set(sent) >= RUNPODCTL_UPDATE_KEYS
    assert sent["id"] == created.resource.id and sent["modelReferences"] == [reference]
    assert sent["gpuIds"] == "ADA_24" and sent["workersMax"] == 5 and sent["idleTimeout"] == 120
    assert sent["networkVolumeIds"] == [] and sent["locations"] == "" and sent["flashBootType"] == "FLASHBOOT"
    assert stored.version == 1  # the round trip changed nothing a worker runs with

    transport.graphql.clear()
    again = ensure_endpoint(client, spec, apply=True, template_spec=template)
    assert again.plan.action == "none" and again.plan.changes == []
    assert not [b for b in transport.graphql if "saveEndpoint" in b["query"]]
    assert len(localpod.ctx.store.endpoints) == 1

    # Back to no cached model: a plan of exactly that change, applied with [] (runpodctl --clear-models).
    cleared = ensure_endpoint(client, EndpointSpec("qwen-cached", "vllm-qwen", ["ADA_24"], model_references=()),
                              apply=True, template_spec=template)  # fmt: skip
    assert cleared.plan.changed_fields == ["model_references"]
    assert localpod.ctx.store.endpoints[created.resource.id].model_references == []


class NoModelReferences(httpx.HTTPTransport):
    """localpod's REST v2, and a GraphQL API whose Endpoint type has no ``modelReferences``."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/graphql"):
            message = 'Cannot query field "modelReferences" on type "Endpoint".'
            return httpx.Response(200, json={"data": None, "errors": [{"message": message}]}, request=request)
        return super().handle_request(request)


def test_a_graphql_api_without_the_field_stops_the_plan_before_anything_is_created(
    settings: Settings, localpod: LocalpodServer
) -> None:
    """The field is undocumented: if Runpod's API refuses it (or the key cannot reach GraphQL), the
    endpoint plan fails with Runpod's message before the endpoint is created."""
    with RunpodClient(settings, settings.runpod_api_key(), transport=NoModelReferences()) as client:
        template = vllm_template("vllm-qwen", QWEN, "v2.25.2", settings.hf_token(), 4096, 0.9, 8)
        ensure_template(client, template, apply=True)
        spec = EndpointSpec("qwen-cached", "vllm-qwen", ["ADA_24"], model_references=(model_reference(QWEN),))
        with pytest.raises(ControlPlaneError, match="modelReferences"):
            ensure_endpoint(client, spec, apply=True, template_spec=template)
    assert not localpod.ctx.store.endpoints


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_runbook_02_with_cached_weights_on_an_account_without_a_volume(isolated: Any, tmp_path: Path) -> None:
    """Runbook 02 alone (no runbook 01, so no volume on the account), ``weights: cached``, through
    papermill (``rpbook run``): nothing asks for a volume, the endpoint is created with the model's
    reference, unpinned; a second run plans no change."""
    override = tmp_path / "cached.yaml"
    override.write_text("weights: cached\n")
    command = [
        sys.executable, "-m", "rpbook", "run", str(ROOT / "notebooks" / "02_vllm_endpoint.ipynb"),
        "-f", str(ROOT / "params" / "local.yaml"), "-f", str(override),
    ]  # fmt: skip

    def run(out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--out", str(tmp_path / out)],
            env=isolated.process_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=500,
        )

    first = run("first")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    resources = isolated.resources()
    assert resources["volumes"] == [] and len(resources["endpoints"]) == 1
    figures = json.loads((tmp_path / "first" / "02_vllm_endpoint.figures.json").read_text())
    assert figures["weights"] == "cached" and figures["endpoint_action"] == "create"
    executed = (tmp_path / "first" / "02_vllm_endpoint.ipynb").read_text()
    assert "model_references" in executed and "volume" not in _blocked_lines(executed)

    from localpod import DEFAULT_API_KEY

    state = httpx.get(
        f"{isolated.url}/_localpod/state", headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=10
    ).json()
    endpoint = state["endpoints"][0]
    assert endpoint["model_references"] == [f"https://huggingface.co/{MISTRAL}:main"]
    assert endpoint["network_volume_ids"] == [] and endpoint["data_center_ids"] == []

    second = run("second")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = json.loads((tmp_path / "second" / "02_vllm_endpoint.figures.json").read_text())
    assert again["endpoint_action"] == "none"
    assert isolated.resources() == resources


def _blocked_lines(notebook_text: str) -> str:
    """Every output line that says something is blocked or missing (none may name a volume)."""
    return "\n".join(
        line for line in notebook_text.splitlines() if "blocked" in line or "does not exist" in line.lower()
    )
