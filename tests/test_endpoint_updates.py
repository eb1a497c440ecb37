"""Endpoint updates have one home: ``rpbook.account.endpointscaling`` (issue 21 item 2, issue 18 item 5).

- Its bounds are the REST v2 spec's (/work/shared/runpod/openapi-v2.json ``EndpointWorkers``,
  ``QueueDelayScaling``, ``RequestCountScaling``), read here from the spec itself.
- The bodies it builds validate against the spec's ``UpdateEndpointRequest``; the ones the API
  refuses are refused before anything is sent, naming the field.
- No other module of rpbook builds a ``workers`` / ``scaling`` body by hand (an AST check, so a
  hand-built update coming back fails here, not on Runpod).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from rpbook.account import endpointscaling as es
from rpbook.core.errors import ConfigError
from spec import load_spec

LIB = Path(__file__).resolve().parent.parent / "lib" / "rpbook"
HOME = LIB / "account" / "endpointscaling.py"
GRAPHQL_INPUT = LIB / "account" / "cachedmodels.py"
"""GraphQL ``saveEndpoint``'s ``EndpointInput`` (runpodctl re-sends every field, ``idleTimeout``
included): another API's shape, not a REST v2 update body."""
BODY_KEYS = {"workers", "scaling", "idleTimeout", "queueDelay", "requestCount"}
"""Members of ``UpdateEndpointRequest`` that only the home module may write."""
LIST_VALUES = (ast.List, ast.ListComp, ast.Tuple)
"""A list under ``"workers"`` is a listing (``ListEndpointWorkersResponse``, a run's record of the
workers it saw), never an update body: the spec's ``EndpointWorkers`` is an object."""


def _schemas() -> dict[str, Any]:
    return load_spec()["components"]["schemas"]


def test_bounds_are_the_specs() -> None:
    schemas = _schemas()
    workers = schemas["EndpointWorkers"]["properties"]
    assert workers["min"]["minimum"] == workers["max"]["minimum"] == es.WORKERS_LOW
    idle = workers["idleTimeout"]
    assert idle["type"] == "integer"
    assert (idle["minimum"], idle["maximum"]) == (es.IDLE_TIMEOUT_LOW_S, es.IDLE_TIMEOUT_HIGH_S)
    assert schemas["QueueDelayScaling"]["properties"]["queueDelay"]["minimum"] == es.QUEUE_DELAY_LOW_S
    count = schemas["RequestCountScaling"]["properties"]["requestCount"]
    assert (count["type"], count["minimum"]) == ("integer", es.REQUEST_COUNT_LOW)
    assert set(schemas["EndpointScaling"]["discriminator"]["mapping"]) == set(es.SCALER_TYPES)


def _update_validator() -> Draft202012Validator:
    spec = load_spec()
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": "urn:spec#/components/schemas/UpdateEndpointRequest"}, registry=registry)


@pytest.mark.parametrize(
    ("workers", "scaler"),
    [
        (es.WorkerSettings(workers_min=0, workers_max=0), None),
        (es.WorkerSettings(workers_min=1), None),
        (es.WorkerSettings(idle_timeout_s=1), es.ScalerSettings("QUEUE_DELAY", 0.5)),
        (es.WorkerSettings(workers_max=5, idle_timeout_s=3600), es.ScalerSettings("QUEUE_DELAY", 15)),
        (es.WorkerSettings(workers_max=4), es.ScalerSettings("REQUEST_COUNT", 3)),
        (None, es.ScalerSettings("REQUEST_COUNT", 1.0)),
    ],
)
def test_bodies_validate_against_the_spec(workers: es.WorkerSettings | None, scaler: es.ScalerSettings | None) -> None:
    body = es.scaling_body(workers, scaler)
    assert body
    _update_validator().validate(body)
    if scaler is not None and scaler.scaler_type == "REQUEST_COUNT":
        assert isinstance(body["scaling"]["requestCount"], int)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: es.WorkerSettings(workers_min=-1), "workers_min: must be a whole number of workers >= 0"),
        (lambda: es.WorkerSettings(workers_max=1.5), "workers_max"),
        (lambda: es.WorkerSettings(workers_min=3, workers_max=2), "workers_min (3) is above workers_max (2)"),
        (lambda: es.WorkerSettings(idle_timeout_s=0), "idle_timeout_s: must be whole seconds from 1 to 3600"),
        (lambda: es.WorkerSettings(idle_timeout_s=3601), "idle_timeout_s"),
        (lambda: es.ScalerSettings("QUEUE_DELAY", 0.4), "scaler_value: with QUEUE_DELAY"),
        (lambda: es.ScalerSettings("REQUEST_COUNT", 0.5), "scaler_value: with REQUEST_COUNT"),
        (lambda: es.ScalerSettings("REQUEST_COUNT", 2.5), "a whole number >= 1"),
        (lambda: es.ScalerSettings("CPU", 4), "scaler_type: must be one of QUEUE_DELAY, REQUEST_COUNT"),  # type: ignore[arg-type]
        (
            lambda: es.scaling_body(es.WorkerSettings(idle_timeout_s=5), es.ScalerSettings("REQUEST_COUNT", 2)),
            "idle_timeout_s cannot be set with the REQUEST_COUNT scaler",
        ),
    ],
)
def test_what_the_api_refuses_is_refused_before_sending(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        build()


def _hand_built(tree: ast.AST) -> list[tuple[int, str]]:
    """Dict displays and subscript writes that use one of :data:`BODY_KEYS` as a string key."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in BODY_KEYS and not isinstance(value, LIST_VALUES):
                    found.append((node.lineno, f"{{{key.value!r}: ...}}"))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            key = node.slice
            if isinstance(key, ast.Constant) and key.value in BODY_KEYS:
                found.append((node.lineno, f"[{key.value!r}] = ..."))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            for kw in node.keywords:
                if kw.arg in BODY_KEYS:
                    found.append((node.lineno, f"dict({kw.arg}=...)"))
    return found


def test_no_module_builds_a_workers_or_scaling_body_by_hand() -> None:
    offenders = [
        f"{path.relative_to(LIB.parent)}:{line}: {what}"
        for path in sorted(LIB.rglob("*.py"))
        if path not in (HOME, GRAPHQL_INPUT)
        for line, what in _hand_built(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not offenders, (
        "endpoint update bodies are built only in rpbook/account/endpointscaling.py (WorkerSettings, "
        "ScalerSettings, scaling_body, RunpodClient.set_workers/set_scaling):\n" + "\n".join(offenders)
    )


def test_the_guard_sees_a_hand_built_body() -> None:
    """The check above can fail: each shape a hand-built body takes is caught."""
    sources = [
        'client.update_endpoint(e, {"workers": {"min": 0}})',
        'body["scaling"] = {"type": "QUEUE_DELAY", "queueDelay": 4}',
        "x = dict(workers={})",
    ]
    assert all(_hand_built(ast.parse(source)) for source in sources)
    assert not _hand_built(ast.parse('workers = data.get("workers") or {}'))  # reading a response is fine
    assert not _hand_built(ast.parse('record = {"workers": [asdict(w) for w in seen]}'))  # a listing, not a body
