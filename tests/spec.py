"""The official Runpod REST API v2 OpenAPI spec as a test oracle.

``load_spec()`` finds the spec (it is never copied into this repo): ``$RUNPOD_OPENAPI_SPEC``, then
``<repo>/../shared/runpod/openapi-v2.json``. Without it the calling test is skipped with the reason
on a developer's machine, and *fails* in CI (``CI`` set, as CI runners do): a contract test that
silently skips there would let localpod drift from Runpod unnoticed. Tests never fetch the live
spec (no network at test time).

``validate_response()`` checks one response against the schema the spec declares for that
operation and status (falling back to ``default``), resolving ``$ref``s with ``referencing`` and
validating with JSON Schema 2020-12, which is what OpenAPI 3.1 schemas are. It is *strict*: the spec's
response schemas mostly allow unknown properties, but localpod must send exactly the documented fields,
so every object schema is checked with ``unevaluatedProperties: false`` (see :func:`_strict`), and the
``date-time`` / ``uri`` formats are asserted.

``SpecCheckedClient`` is an ``httpx.Client`` that matches every response's URL to a spec path
template and validates it, so no REST response in the tests escapes the check.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:runpod:openapi-v2"
REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["SpecCheckedClient", "ValidationError", "load_spec", "match_path", "validate_log_event", "validate_response"]


@functools.cache
def _find_spec() -> tuple[dict[str, Any] | None, str]:
    """The spec and where it came from, or None and why it could not be found."""
    tried = []
    env = os.environ.get("RUNPOD_OPENAPI_SPEC")
    candidates = ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared" / "runpod" / "openapi-v2.json"]
    for path in candidates:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8")), str(path)
        tried.append(str(path))
    return None, (
        "Runpod OpenAPI v2 spec not found; put it at ../shared/runpod/openapi-v2.json or set "
        "RUNPOD_OPENAPI_SPEC. Tried: " + ", ".join(tried)
    )


def in_ci() -> bool:
    """CI runners set ``CI`` (``true``); an empty or ``false``/``0`` value means not in CI."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def load_spec() -> dict[str, Any]:
    """The official spec; without it ``pytest.fail`` in CI, else ``pytest.skip``, with where it was looked for."""
    spec, origin = _find_spec()
    if spec is None:
        if in_ci():
            pytest.fail(f"{origin} (CI must check localpod against the spec, not skip)", pytrace=False)
        pytest.skip(origin)
    return spec


# -- strictness ----------------------------------------------------------------------------

_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SUBSCHEMA_SINGLE = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
)
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")


def _strict(schema: Any, *, seal: bool) -> Any:
    """Copy of ``schema`` that refuses undocumented properties.

    ``unevaluatedProperties: false`` sees the properties declared anywhere in the schema's
    ``allOf``/``$ref`` composition, so it is added to every schema node that is *used* as a whole
    (a property's schema, an array's items, a ``oneOf`` branch, a ``$ref`` site) but not to ``allOf``
    members nor to component definitions, which are fragments composed into a larger object and
    would otherwise reject their siblings' properties. Nodes that already say something about extra
    properties (maps such as ``env``) are left alone.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _strict(sub, seal=True) for name, sub in out[key].items()}
    for key in _SUBSCHEMA_SINGLE:
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key], seal=True)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_strict(sub, seal=True) for sub in out[key]]
    if isinstance(out.get("allOf"), list):
        out["allOf"] = [_strict(sub, seal=False) for sub in out["allOf"]]
    if seal and "additionalProperties" not in out and "unevaluatedProperties" not in out:
        out["unevaluatedProperties"] = False
    return out


def _strict_spec(spec: dict[str, Any]) -> dict[str, Any]:
    strict = copy.deepcopy(spec)
    components = strict.get("components", {})
    components["schemas"] = {
        name: _strict(schema, seal=False) for name, schema in components.get("schemas", {}).items()
    }
    for response in components.get("responses", {}).values():
        for media in response.get("content", {}).values():
            if "schema" in media:
                media["schema"] = _strict(media["schema"], seal=True)
    for operations in strict.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    if "schema" in media:
                        media["schema"] = _strict(media["schema"], seal=True)
    return strict


# -- formats -------------------------------------------------------------------------------

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    """RFC 3339: a date, ``T``, a time and a mandatory offset (``Z`` or ``+hh:mm``)."""
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    datetime.fromisoformat(value.replace("z", "Z"))  # rejects impossible dates such as month 13
    return True


@FORMATS.checks("uri", raises=ValueError)
def _is_uri(value: object) -> bool:
    """An absolute URI: scheme and authority (the spec's own examples keep ``{job_id}`` in paths)."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


# -- validation ----------------------------------------------------------------------------


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@functools.cache
def _registry() -> tuple[Registry, dict[str, Any]]:
    spec = _strict_spec(load_spec())
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource), spec


def _response_entry(spec: dict[str, Any], method: str, path_template: str, status: int) -> tuple[dict, list[str]]:
    """The response object for (method, path, status) and its JSON pointer parts in the spec."""
    operation = spec["paths"].get(path_template, {}).get(method.lower())
    if operation is None and status == 405 and "MethodNotAllowedError" in spec["components"].get("responses", {}):
        # A method the path does not have: the spec describes that answer once, as a shared response.
        entry = spec["components"]["responses"]["MethodNotAllowedError"]
        return entry, ["components", "responses", "MethodNotAllowedError"]
    if operation is None:
        raise ValidationError(f"the spec has no operation {method.upper()} {path_template}")
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default"
    if key not in responses:
        raise ValidationError(f"{method.upper()} {path_template} documents no {status} (and no default)")
    parts = ["paths", path_template, method.lower(), "responses", key]
    entry = responses[key]
    while "$ref" in entry:  # response objects are OpenAPI refs, not JSON Schema: follow by hand
        ref = entry["$ref"]
        parts = [p.replace("~1", "/").replace("~0", "~") for p in ref.removeprefix("#/").split("/")]
        entry = spec
        for part in parts:
            entry = entry[part]
    return entry, parts


def validate_response(method: str, path_template: str, status: int, body: Any, content_type: str | None) -> None:
    """Raise ``jsonschema.ValidationError`` unless the response matches the spec.

    ``body`` is the parsed JSON (or None / ``b""`` for an empty body); ``content_type`` the
    response's ``Content-Type`` header (parameters such as ``charset`` are ignored).
    """
    registry, spec = _registry()
    entry, parts = _response_entry(spec, method, path_template, status)
    content = entry.get("content")
    if not content:
        if body not in (None, b"", ""):
            raise ValidationError(
                f"{method.upper()} {path_template} {status}: the spec documents no body, got {body!r}"
            )
        return
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in content:
        raise ValidationError(
            f"{method.upper()} {path_template} {status}: content type {media!r} is not one of {sorted(content)}"
        )
    pointer = SPEC_URI + "#" + _pointer(*parts, "content", media, "schema")
    validator = Draft202012Validator({"$ref": pointer}, registry=registry, format_checker=FORMATS)
    errors = list(validator.iter_errors(body))
    if errors:
        raise ValidationError(
            f"{method.upper()} {path_template} {status} does not match the spec: " + _describe(errors)
        )


def _describe(errors: list[ValidationError]) -> str:
    """The most specific failures first: a failing ``allOf`` member also makes the enclosing
    ``unevaluatedProperties`` list every property as unexpected, which is noise next to the cause."""

    def leaves(error: ValidationError) -> Any:
        if error.context:
            for sub in error.context:
                yield from leaves(sub)
        else:
            yield error

    lines = {
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}": e for error in errors for e in leaves(error)
    }
    ranked = sorted(lines, key=lambda line: (lines[line].validator == "unevaluatedProperties", len(line)))
    return "; ".join(ranked[:6])


def validate_log_event(event_id: str, data: Any) -> None:
    """One SSE event of a log stream (``getWorkerLogs`` / ``getPodLogs``): the spec describes its
    ``data`` as ``{"ts", "source", "line"}`` in prose only, ``source`` from ``LogSource`` and ``id``
    the event's ``ts`` as a resume cursor (its example: ``2026-06-01T12:05:04Z/000000000042``)."""
    sources = load_spec()["components"]["schemas"]["LogSource"]["enum"]
    if not isinstance(data, dict) or set(data) != {"ts", "source", "line"}:
        raise ValidationError(f"log event data must have exactly ts, source, line: {data!r}")
    if not _is_datetime(data["ts"]) or data["source"] not in sources or not isinstance(data["line"], str):
        raise ValidationError(f"log event data has a bad ts, source or line: {data!r}")
    if not event_id.startswith(data["ts"]):
        raise ValidationError(f"log event id {event_id!r} does not start with its ts {data['ts']!r}")


@functools.cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    """Spec path templates as regexes, literal paths first (``/x/delegations`` before ``/x/{id}``)."""
    templates = sorted(load_spec()["paths"], key=lambda t: (t.count("{"), -len(t)))
    return [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(t)) + "$"), t) for t in templates]


def match_path(path: str) -> str | None:
    """The spec's path template for a concrete (already URL-decoded) path, e.g. ``/v2/serverless/{id}``."""
    for pattern, template in _path_patterns():
        if pattern.match(path):
            return template
    return None


# -- client --------------------------------------------------------------------------------


@dataclass
class Checked:
    """One validated exchange."""

    method: str
    template: str
    status: int
    body: Any = field(repr=False)


class SpecCheckedClient(httpx.Client):
    """``httpx.Client`` for localpod's REST v2 base URL that validates every response it receives.

    A response on a path the spec does not have, or one that does not match its schema, raises
    ``jsonschema.ValidationError`` from the request call itself, so a test cannot ignore it.
    ``checked`` records every exchange (method, path template, status).
    """

    def __init__(self, rest_url: str, api_key: str | None, **kwargs: Any) -> None:
        self.prefix = urlsplit(rest_url).path.rstrip("/")
        self.checked: list[Checked] = []
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(
            base_url=rest_url,
            headers=headers,
            timeout=kwargs.pop("timeout", 10),
            event_hooks={"response": [self._check]},
            **kwargs,
        )

    def _check(self, response: httpx.Response) -> None:
        path = httpx.URL(str(response.request.url)).path  # decoded
        if not path.startswith(self.prefix):
            raise ValidationError(f"{path} is not under the REST base {self.prefix}")
        template = match_path(path[len(self.prefix) :])
        if template is None:
            raise ValidationError(f"{path[len(self.prefix) :]} matches no path of the spec")
        content_type = response.headers.get("content-type")
        if (content_type or "").split(";")[0].strip().lower() == "text/event-stream":
            # An SSE stream stays open while the worker lives: check status and media type here; the
            # caller reads it (``client.stream``) and checks each event with ``validate_log_event``.
            validate_response(response.request.method, template, response.status_code, "", content_type)
            self.checked.append(Checked(response.request.method, template, response.status_code, None))
            return
        response.read()
        body: Any = response.content
        if response.content:
            try:
                body = response.json()
            except ValueError:
                raise ValidationError(
                    f"{response.request.method} {template} {response.status_code}: body is "
                    f"not JSON: {response.text[:200]!r}"
                ) from None
        validate_response(
            response.request.method, template, response.status_code, body, response.headers.get("content-type")
        )
        self.checked.append(Checked(response.request.method, template, response.status_code, body))
