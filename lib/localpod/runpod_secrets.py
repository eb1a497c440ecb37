"""Runpod secrets: ``{{ RUNPOD_SECRET_name }}`` in an endpoint's env, resolved when a worker starts.

Runpod's docs (docs.runpod.io ``pods/templates/secrets``): a secret is referenced in a template's
environment variables as ``{{ RUNPOD_SECRET_secret_name }}``, and Runpod "substitute[s] the
encrypted secret value when the Pod starts"; deleting a secret that templates still use "will cause
those deployments to fail". So the stored env keeps the reference (every API shows the reference,
never the value), the worker's env gets the value, and a reference to a secret the account does not
have fails the worker's start (localpod: UNHEALTHY, with the secret's name in the reason).

localpod's account gets its secrets from its own start (``localpod serve --secret NAME=ENVVAR`` or
``LOCALPOD_SECRET_<NAME>``; ``hf_token`` always exists, the seed account's HF token). REST v2 lists
them, names and metadata only, as Runpod's current docs describe ``GET /v2/account/secrets``
(docs.runpod.io ``api-reference-v2/account/list-secrets``, runpod/docs 6bedc9af: query ``name``
filters case-insensitively; ``{"secrets": [{id, name, description, createdAt,
valueLastUpdatedAt}]}``; create/get/update/delete exist beside it). The REST v2 spec of 2026-08
(``openapi-v2.json``) predates the route. localpod serves the listing only; secrets are created
when it starts, not through the API.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

REFERENCE = re.compile(r"\{\{\s*RUNPOD_SECRET_([A-Za-z_][A-Za-z0-9_.\-/]*)\s*\}\}")


def resolve_env(env: Mapping[str, str], lookup: Callable[[str], str | None]) -> tuple[dict[str, str], list[str]]:
    """The env a worker runs with (every reference replaced by its secret's value) and the names of
    referenced secrets that do not exist (their references are left as they are)."""
    missing: list[str] = []
    resolved: dict[str, str] = {}

    def substitute(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None:
            if match.group(1) not in missing:
                missing.append(match.group(1))
            return match.group(0)
        return value

    for key, value in env.items():
        resolved[key] = REFERENCE.sub(substitute, value) if isinstance(value, str) and "{{" in value else value
    return resolved, missing


@dataclass(frozen=True)
class AccountSecret:
    """A secret's metadata as REST v2 lists it (``GET /v2/account/secrets``); never its value."""

    id: str
    name: str
    created_at: str


def secret_id(name: str) -> str:
    """A stable 12-character id for a secret name (Runpod's ids look like ``2q9m7x4cavgd``)."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(12):
        digest, index = divmod(digest, 36)
        out += alphabet[index]
    return out


def account_secrets(names: Iterable[str], created_at: str, name_filter: str | None = None) -> list[AccountSecret]:
    """The account's secrets, sorted by name; ``name_filter`` keeps the one with that name,
    compared case-insensitively as the list route's ``name`` parameter does."""
    wanted = name_filter.casefold() if name_filter else None
    return [
        AccountSecret(secret_id(name), name, created_at)
        for name in sorted(set(names))
        if wanted is None or name.casefold() == wanted
    ]
