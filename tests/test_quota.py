"""The account's worker quota, in localpod (REST v2 and GraphQL, one rule) and in rpbook's preflight.

Sources: Runpod docs ``serverless/workers/overview.mdx`` "Max worker limits" (runpod/docs a900806):
max workers of all endpoints together (flex + active) within a quota set by the balance — 5 by
default, 10 at $100+, 20 at $200+, 30 at $300+, 40 at $500+, 50 at $700+, 60 at $900+; support can
raise it. Runpod's refusal, as its docs quote it (``tutorials/flash/build-rest-api-with-load-
balancer.mdx``): "Max workers across all endpoints must not exceed your workers quota (30)". The
balance: GraphQL ``myself { clientBalance }`` (runpod-python 1.12 ``api/queries/user.py``). REST
responses here go through ``SpecCheckedClient`` (validated against openapi-v2.json).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import runpod
from runpod.api.graphql import run_graphql_query
from runpod.error import QueryError

from localpod.resources import account
from rpbook.account.controlplane import RunpodClient
from rpbook.account.preflight import check_stack
from rpbook.account.quota import (
    AccountQuota,
    PlannedMax,
    account_quota,
    balance_for_quota,
    check_account_max_workers,
    check_quota,
    quota_for_balance,
    workers_max_total,
)
from rpbook.account.specs import EndpointSpec
from rpbook.account.workerimages import infinity_template
from rpbook.core.errors import ConfigError, WorkerQuotaError
from spec import SpecCheckedClient, load_spec

ROOT = Path(__file__).resolve().parent.parent
RUNPOD_TEXT = "Max workers across all endpoints must not exceed your workers quota ({quota})"

DOCS_TABLE = [(0, 5), (99.99, 5), (100, 10), (199, 10), (200, 20), (300, 30), (500, 40), (700, 50), (900, 60)]


@pytest.mark.parametrize("balance, quota", DOCS_TABLE)
def test_the_docs_table_in_both_localpod_and_rpbook(balance: float, quota: int) -> None:
    assert account.quota_for_balance(balance) == quota
    assert quota_for_balance(balance) == quota


def test_balance_for_quota_is_the_lowest_step_that_covers_it() -> None:
    assert balance_for_quota(5) == 0.0
    assert balance_for_quota(7) == 100.0
    assert balance_for_quota(20) == 200.0
    assert balance_for_quota(61) is None  # only support


@pytest.fixture
def api(localpod: Any) -> Any:
    load_spec()
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as client:
        yield client


def _body(name: str, workers_max: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "QUEUE",
        "image": "runpod/mock-worker:latest",
        "gpu": {"pools": ["AMPERE_16"]},
        "workers": {"min": 0, "max": workers_max},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    }


def test_localpod_refuses_rest_creates_and_raises_above_the_quota(api: Any, localpod: Any) -> None:
    localpod.control("PATCH", "config", json={"max_workers_quota": 5})
    assert api.post("/v2/serverless", json=_body("chat", 5)).status_code == 201
    refused = api.post("/v2/serverless", json=_body("embed", 2))
    assert refused.status_code == 400
    assert refused.json()["errors"] == ["workers.max: " + RUNPOD_TEXT.format(quota=5)]
    assert [e["name"] for e in api.get("/v2/serverless").json()["endpoints"]] == ["chat"]
    chat = api.get("/v2/serverless").json()["endpoints"][0]
    assert api.patch(f"/v2/serverless/{chat['id']}", json={"workers": {"max": 6}}).status_code == 400
    # Lowering is always allowed, and frees room for another endpoint.
    assert api.patch(f"/v2/serverless/{chat['id']}", json={"workers": {"max": 3}}).status_code == 200
    assert api.post("/v2/serverless", json=_body("embed", 2)).status_code == 201


def test_an_account_over_its_quota_can_still_scale_down(api: Any, localpod: Any) -> None:
    first = api.post("/v2/serverless", json=_body("a", 8)).json()
    localpod.control("PATCH", "config", json={"max_workers_quota": 5})  # e.g. the balance fell
    # A change that does not raise the max (here: the name) is not refused, nor is lowering it.
    assert api.patch(f"/v2/serverless/{first['id']}", json={"name": "renamed"}).status_code == 200
    assert api.patch(f"/v2/serverless/{first['id']}", json={"workers": {"max": 7}}).status_code == 200
    assert api.patch(f"/v2/serverless/{first['id']}", json={"workers": {"max": 8}}).status_code == 400


def test_the_quota_follows_the_balance_unless_set(localpod: Any) -> None:
    config = localpod.control("GET", "config").json()
    assert config["max_workers_quota"] is None and config["client_balance"] == 250.0
    assert config["max_workers_quota_in_force"] == 20  # $200+
    localpod.ctx.store.account.client_balance = 99.0
    assert localpod.control("GET", "config").json()["max_workers_quota_in_force"] == 5
    set_ = localpod.control("PATCH", "config", json={"max_workers_quota": 40}).json()
    assert set_["max_workers_quota"] == 40 and set_["max_workers_quota_in_force"] == 40
    for bad in (-1, 1.5, True, "5"):
        response = httpx.patch(
            f"{localpod.base_url}/_localpod/config",
            json={"max_workers_quota": bad},
            headers={"Authorization": f"Bearer {localpod.api_key}"},
        )
        assert response.status_code == 400 and "max_workers_quota" in response.text


def test_graphql_save_endpoint_obeys_the_same_rule(localpod: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_BASE_URL", localpod.rest_url)
    monkeypatch.setattr(runpod, "api_key", localpod.api_key)
    localpod.control("PATCH", "config", json={"max_workers_quota": 5})
    template = runpod.create_template(name="t", image_name="runpod/mock-worker:latest", is_serverless=True)
    fields = f'name: "e1", templateId: "{template["id"]}", gpuIds: "AMPERE_16", workersMin: 0, workersMax: 4'
    created = run_graphql_query(f"mutation {{ saveEndpoint(input: {{ {fields} }}) {{ id workersMax }} }}")
    endpoint_id = created["data"]["saveEndpoint"]["id"]
    with pytest.raises(QueryError, match=RUNPOD_TEXT.format(quota=5).replace("(", r"\(").replace(")", r"\)")):
        run_graphql_query(
            f'mutation {{ saveEndpoint(input: {{ name: "e2", templateId: "{template["id"]}", gpuIds: "AMPERE_16", '
            "workersMax: 2 }) { id } }"
        )
    with pytest.raises(QueryError, match="workers quota"):
        run_graphql_query(
            f'mutation {{ saveEndpoint(input: {{ id: "{endpoint_id}", name: "e1", templateId: "{template["id"]}", '
            'gpuIds: "AMPERE_16", workersMax: 6 }) { id } }'
        )
    balance = run_graphql_query("query { myself { clientBalance } }")["data"]["myself"]["clientBalance"]
    assert balance == 250.0


# -- rpbook ------------------------------------------------------------------------------------


def test_account_quota_from_the_balance_or_the_parameter(settings: Any, localpod: Any) -> None:
    key = settings.runpod_api_key()
    derived = account_quota(settings, key)
    assert (derived.max_workers, derived.balance_usd, derived.stated) == (20, 250.0, False)
    assert "balance $250.00" in derived.source
    stated = account_quota(settings, key, 7)
    assert (stated.max_workers, stated.stated) == (7, True)
    for bad in (0, -3, 2.5, True, "5"):
        with pytest.raises(ConfigError, match="account_max_workers"):
            check_account_max_workers(bad)


def test_check_quota_counts_every_endpoint_and_says_what_to_change(api: Any, settings: Any) -> None:
    api.post("/v2/serverless", json=_body("mistral-7b-vllm", 5))
    api.post("/v2/serverless", json=_body("someone-elses", 1))
    with RunpodClient(settings, settings.runpod_api_key()) as client:
        assert workers_max_total(client) == 6
        endpoints = client.list_endpoints()
    quota = AccountQuota(5, "account_max_workers = 5", stated=True)
    check = check_quota(quota, endpoints, [PlannedMax("bge-small-embeddings", 2, "embeddings_workers_max")])
    assert not check.ok and check.total == 8 and check.over_by == 3
    assert [(r.endpoint, r.max_workers, r.change) for r in check.rows] == [
        ("mistral-7b-vllm", 5, "unchanged"),
        ("someone-elses", 1, "unchanged"),
        ("bge-small-embeddings", 2, "new"),
    ]
    assert check.table_rows()[-1] == ("all endpoints", "", "8", "5 (over by 3)")
    with pytest.raises(WorkerQuotaError) as caught:
        check.raise_if_over()
    text = str(caught.value)
    assert "needs 8 max workers" in text and "quota is 5" in text
    assert "'mistral-7b-vllm' (5), 'someone-elses' (1)" in text  # lower the others...
    assert "a balance of $100+ gives 10" in text and "support" in text  # ...or raise the quota
    assert "embeddings_workers_max" not in text.split("Fix one:")[1].split(";")[0]  # 2 - 3 < 1: not offered
    # Adopting by name: the planned max replaces the endpoint's current one, and lowering fits.
    lower = check_quota(quota, endpoints, [PlannedMax("mistral-7b-vllm", 3)])
    assert lower.ok and lower.total == 4 and lower.rows[0].change == "changed"
    assert "3 (now 5)" in str(lower)
    # Already over (the balance fell): a plan that raises nothing is not refused, and says so.
    same = check_quota(AccountQuota(4, "balance $50.00 buys 5"), endpoints, [PlannedMax("mistral-7b-vllm", 5)])
    assert same.ok and same.over_by == 2 and "over its quota by 2 already" in same.describe()


def test_preflight_refuses_before_the_first_write(settings: Any, api: Any, localpod: Any) -> None:
    api.post("/v2/serverless", json=_body("mistral-7b-vllm", 5))
    template = infinity_template("infinity-bge-small", ["BAAI/bge-small-en-v1.5"], "1.1.4")
    endpoint = EndpointSpec(
        name="bge-small-embeddings", template_name="infinity-bge-small", gpu_pools=["AMPERE_16"], workers_max=2
    )
    with RunpodClient(settings, settings.runpod_api_key()) as client:
        kwargs: dict[str, Any] = dict(models=["BAAI/bge-small-en-v1.5"], workers_max_parameter="embeddings_workers_max")
        refused = check_stack(
            settings, client, settings.hf_token(), template, endpoint, account_max_workers=5,
            raise_for_problems=False, **kwargs,
        )  # fmt: skip
        assert not refused.ok and refused.quota is not None and refused.quota.total == 7
        row = next(c for c in refused.checks if c.name == "worker quota")
        assert not row.ok and "quota is 5" in row.detail
        assert "endpoint" in refused._repr_html_() and "over by 2" in str(refused)
        with pytest.raises(ConfigError, match="nothing was created"):
            refused.raise_for_problems()
        fits = check_stack(settings, client, settings.hf_token(), template, endpoint, **kwargs)  # balance: 20
        assert fits.quota is not None and fits.quota.ok and fits.figures["account_max_workers"] == 20
    assert [t["name"] for t in api.get("/v2/templates").json()["templates"]] == []


def _rpbook_run(isolated: Any, tmp_path: Path, notebooks: list[str], extra: str | None, out: str) -> Any:
    files = ["-f", str(ROOT / "params" / "local.yaml")]
    if extra is not None:
        override = tmp_path / f"{out}.yaml"
        override.write_text(extra + "\n")
        files += ["-f", str(override)]
    paths = [str(ROOT / "notebooks" / n) for n in notebooks]
    return subprocess.run(
        [sys.executable, "-m", "rpbook", "run", *paths, *files, "--out", str(tmp_path / out)],
        env=isolated.process_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=800,
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_runbook_04_on_a_new_account_stops_before_creating_anything(isolated: Any, tmp_path: Path) -> None:
    """Issue 17's "done means": on localpod with ``account_max_workers: 5`` (a new account), 00–02
    pass (the vLLM endpoint's 5 fit) and 04 exits 1 in its check cell, naming the quota and the fix,
    with nothing of its own created; with the team's quota (params/local.yaml: 10) 04 passes."""
    first = _rpbook_run(
        isolated,
        tmp_path,
        ["00_huggingface_token.ipynb", "01_network_volume.ipynb", "02_vllm_endpoint.ipynb"],
        "account_max_workers: 5",
        "new-account",
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    before = isolated.resources()
    assert {kind: len(ids) for kind, ids in before.items()} == {"templates": 1, "endpoints": 1, "volumes": 1}

    refused = _rpbook_run(isolated, tmp_path, ["04_embeddings_endpoint.ipynb"], "account_max_workers: 5", "refused")
    assert refused.returncode == 1, refused.stdout[-2000:] + refused.stderr[-2000:]
    err = refused.stderr
    assert "04_embeddings_endpoint.ipynb failed in cell" in err and "worker quota" in err
    assert "needs 7 max workers" in err and "quota is 5" in err
    assert "'mistral-7b-vllm' (5)" in err and "$100+" in err and "support" in err
    assert isolated.resources() == before  # no template, no endpoint

    team = _rpbook_run(isolated, tmp_path, ["04_embeddings_endpoint.ipynb"], None, "team-quota")
    assert team.returncode == 0, team.stdout[-2000:] + team.stderr[-2000:]
    assert {kind: len(ids) for kind, ids in isolated.resources().items()} == {
        "templates": 2,
        "endpoints": 2,
        "volumes": 1,
    }


def test_an_unreadable_balance_says_how_to_go_on(settings: Any) -> None:
    """The balance comes only from GraphQL; when it cannot be read the message names the way
    around it (``account_max_workers``) and never the key."""
    from rpbook.account.quota import account_balance
    from rpbook.core.errors import ControlPlaneError

    def refuse(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"].startswith("Bearer ")
        return httpx.Response(200, json={"errors": [{"message": "Unauthorized"}], "data": None})

    key = settings.runpod_api_key()
    with pytest.raises(ControlPlaneError) as caught:
        account_balance(settings, key, transport=httpx.MockTransport(refuse))
    assert "Unauthorized" in str(caught.value) and "account_max_workers" in str(caught.value)
    assert key.reveal() not in str(caught.value)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ControlPlaneError, match="account_max_workers"):
        account_balance(settings, key, transport=httpx.MockTransport(down))
