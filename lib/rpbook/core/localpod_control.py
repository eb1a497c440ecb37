"""Calls to a running localpod's own control routes (``/_localpod/...``), which only the local target has.

Kept apart from ``rpbook.runbook.local`` (which starts and stops localpod) so that the rooms below the
notebook side, such as runbook 05's conversation, can change localpod's timings without importing it.
"""

from __future__ import annotations

import httpx

from rpbook.core.errors import ConfigError, RpbookError
from rpbook.core.secrets import Secret, reveal_api_key, scrub
from rpbook.core.settings import Settings


def set_profile_overrides(settings: Settings, api_key: Secret | str, overrides: dict[str, float]) -> dict[str, float]:
    """Override durations of the running localpod's timing profile (``PATCH /_localpod/config``)
    and return their previous values, to pass back here when done. Runbook 05 scales the idle
    timeout (``idle_timeout_scale``) so that a conversation with two-minute pauses plays in seconds,
    and injects TTFT / inter-token times for its load test. Local target only."""
    if settings.target != "local" or not settings.localpod_url:
        raise ConfigError("profile overrides exist only on localpod (target 'local')")
    key = api_key.reveal() if isinstance(api_key, Secret) else reveal_api_key(api_key)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{settings.localpod_url}/_localpod/config"
    try:
        before = httpx.get(url, headers=headers, timeout=10)
        before.raise_for_status()
        previous = {k: float(before.json()["profile"][k]) for k in overrides}
        response = httpx.patch(url, headers=headers, json={"overrides": overrides}, timeout=10)
    except httpx.HTTPError as err:
        raise RpbookError(f"could not change localpod's profile at {url}: {scrub(str(err))}") from None
    except KeyError as err:
        raise ConfigError(f"localpod at {settings.localpod_url} has no profile field {err}; update localpod") from None
    if response.status_code >= 400:
        raise ConfigError(f"localpod refused the profile overrides {sorted(overrides)}: {scrub(response.text)[:300]}")
    return previous
