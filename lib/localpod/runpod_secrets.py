"""Runpod secrets: ``{{ RUNPOD_SECRET_name }}`` in an endpoint's env, resolved when a worker starts.

Runpod's docs (docs.runpod.io ``pods/templates/secrets``): a secret is referenced in a template's
environment variables as ``{{ RUNPOD_SECRET_secret_name }}``, and Runpod "substitute[s] the
encrypted secret value when the Pod starts"; deleting a secret that templates still use "will cause
those deployments to fail". So the stored env keeps the reference (every API shows the reference,
never the value), the worker's env gets the value, and a reference to a secret the account does not
have fails the worker's start (localpod: UNHEALTHY, with the secret's name in the reason).

localpod's account gets its secrets from its own start (``localpod serve --secret NAME=ENVVAR`` or
``LOCALPOD_SECRET_<NAME>``), not from an API Runpod lacks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

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
