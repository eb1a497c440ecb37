"""An undefined Runpod secret is refused before anything is created (issue 20 item 3).

Sources: Runpod's docs list the account's secrets with ``GET /v2/account/secrets`` (docs.runpod.io
``api-reference-v2/account/list-secrets``, runpod/docs 6bedc9af; beside it create/get/update/delete
a secret): ``name`` filters case-insensitively, the answer is ``{"secrets": [{id, name, description,
createdAt, valueLastUpdatedAt}]}`` and values are never returned. The REST v2 spec of 2026-08
(``/work/shared/runpod/openapi-v2.json``) predates the route, so its answer is checked against the
schema below, written from that page. runpodctl (2e2df89) and runpod-python 1.12.0 have no secrets
call. ``pods/templates/secrets.mdx``: a reference is substituted when the worker starts, and
deployments that use a missing secret fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from rpbook.account.controlplane import RunpodClient
from rpbook.account.preflight import check_stack
from rpbook.account.specs import EndpointSpec, secret_references
from rpbook.account.workerimages import vllm_template
from rpbook.core.errors import ConfigError, ControlPlaneError
from rpbook.core.secrets import Secret

ROOT = Path(__file__).resolve().parent.parent
MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
LIST_SECRETS_200 = {
    "type": "object",
    "required": ["secrets"],
    "additionalProperties": False,
    "properties": {
        "secrets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "createdAt"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "description": {"type": ["string", "null"]},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "valueLastUpdatedAt": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        }
    },
}


def list_secrets(localpod: Any, **params: str) -> httpx.Response:
    return httpx.get(
        f"{localpod.rest_url}/v2/account/secrets",
        params=params,
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )


def stack(ref: str) -> tuple[Any, EndpointSpec]:
    template = vllm_template("vllm-mistral-7b", MODEL, "v2.25.2", ref, 8192, 0.9, 8)
    endpoint = EndpointSpec(name="mistral-7b-vllm", template_name="vllm-mistral-7b", gpu_pools=["AMPERE_24"])
    return template, endpoint


def resources_and_sessions(localpod: Any) -> tuple[dict[str, int], int]:
    store = localpod.ctx.store
    return {"templates": len(store.templates), "endpoints": len(store.endpoints)}, len(store.sessions)


def test_localpod_lists_secret_names_never_values(localpod: Any) -> None:
    validator = Draft202012Validator(LIST_SECRETS_200, format_checker=FormatChecker())
    body = list_secrets(localpod).json()
    validator.validate(body)
    assert [s["name"] for s in body["secrets"]] == ["hf_token"]  # the seed account's
    assert localpod.hf_token not in list_secrets(localpod).text
    only = list_secrets(localpod, name="HF_TOKEN").json()  # case-insensitive, as documented
    validator.validate(only)
    assert [s["name"] for s in only["secrets"]] == ["hf_token"]
    assert list_secrets(localpod, name="nope").json() == {"secrets": []}
    assert httpx.get(f"{localpod.rest_url}/v2/account/secrets").status_code == 401


def test_preflight_refuses_an_undefined_secret_and_creates_nothing(settings: Any, localpod: Any) -> None:
    template, endpoint = stack("{{ RUNPOD_SECRET_nope }}")
    assert secret_references(template.env) == ["nope"]
    before = resources_and_sessions(localpod)
    token = Secret("HF_TOKEN", localpod.hf_token, "test")
    with RunpodClient(settings, settings.runpod_api_key()) as client, pytest.raises(ConfigError) as info:
        check_stack(settings, client, token, template, endpoint, models=[MODEL], max_model_len=8192)
    message = str(info.value)
    assert "{{ RUNPOD_SECRET_nope }} names no secret of this account" in message
    assert "console.runpod.io/user/secrets" in message and "hf_token_ref" in message
    assert resources_and_sessions(localpod) == before

    # A name that differs only in case is named as such (secret names are matched exactly).
    template, endpoint = stack("{{ RUNPOD_SECRET_HF_TOKEN }}")
    with RunpodClient(settings, settings.runpod_api_key()) as client, pytest.raises(ConfigError) as info:
        check_stack(settings, client, token, template, endpoint, models=[MODEL], max_model_len=8192)
    assert "the account has 'hf_token'" in str(info.value)

    template, endpoint = stack("{{ RUNPOD_SECRET_hf_token }}")
    with RunpodClient(settings, settings.runpod_api_key()) as client:
        checks = check_stack(settings, client, token, template, endpoint, models=[MODEL], max_model_len=8192)
    assert any(c.name == "Runpod secrets" and c.ok and "hf_token exists" in c.detail for c in checks.checks)


def test_a_key_that_may_not_list_secrets_gets_a_warning_not_a_refusal(
    settings: Any, localpod: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restricted key answers 403 (the list route's documented refusal): the check cannot be made,
    so the plan goes on with a warning that says what to make sure of."""
    template, endpoint = stack("{{ RUNPOD_SECRET_nope }}")
    token = Secret("HF_TOKEN", localpod.hf_token, "test")
    with RunpodClient(settings, settings.runpod_api_key()) as client:

        def forbidden(name: str | None = None) -> list[str]:
            raise ControlPlaneError("Runpod REST API: GET /v2/account/secrets failed with 403 Forbidden", 403)

        monkeypatch.setattr(client, "account_secret_names", forbidden)
        checks = check_stack(settings, client, token, template, endpoint, models=[MODEL], max_model_len=8192)
    assert checks.ok and any("could not check that Runpod secret(s) nope exist" in w for w in checks.warnings)


def test_runbook_02_with_an_undefined_secret_exits_1_before_anything_exists(isolated: Any, tmp_path: Path) -> None:
    """End to end, as the issue found it: ``hf_token_ref: "{{ RUNPOD_SECRET_nope }}"`` used to create
    the endpoint, whose worker crash-looped on an empty queue. Now runbook 02 stops in its check
    cell: exit 1, the secret named, no template, no endpoint, no worker session (nothing billed)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text('hf_token_ref: "{{ RUNPOD_SECRET_nope }}"\n')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpbook",
            "run",
            str(ROOT / "notebooks" / "02_vllm_endpoint.ipynb"),
            "-f",
            str(ROOT / "params" / "local.yaml"),
            "-f",
            str(bad),
            "--out",
            str(tmp_path / "run"),
        ],
        env=isolated.process_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "02_vllm_endpoint.ipynb failed in cell" in done.stderr
    assert "RUNPOD_SECRET_nope }} names no secret of this account" in done.stderr
    assert isolated.resources() == {"templates": [], "endpoints": [], "volumes": []}
    from localpod import DEFAULT_API_KEY

    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}  # the key rpbook started it with (local default)
    state = httpx.get(f"{isolated.url}/_localpod/state", headers=headers, timeout=10).json()
    assert state["sessions"] == []  # no worker started, none billed
