"""The first call of every runbook: which target, which env file, and localpod when local.

Notebooks run in their own folder (papermill and nbmake use the notebook's directory as the
working directory), so a relative ``.env`` would land in ``notebooks/``. The env file is therefore
resolved once, here: an explicit parameter, else ``RPBOOK_ENV_FILE``, else the ``.env`` of the
project (the nearest folder upwards holding a ``.env`` or a ``pyproject.toml``). localpod's state
lives beside it in ``.localpod/`` (or ``RPBOOK_LOCALPOD_DIR``), so every runbook, each in its own
kernel, shares one localpod and one set of resources.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rpbook.core.errors import ConfigError
from rpbook.core.paths import localpod_state_dir, resolve_env_file
from rpbook.core.settings import Settings, load_settings
from rpbook.runbook.local import LocalpodStatus, ensure_localpod

QUIET_LOGGERS = ("httpx", "httpcore", "httpx2", "httpcore2")
"""HTTP clients that log one INFO line per request: httpx for older openai releases, httpx2 (its
successor) for openai 3. Once the runpod SDK has run ``logging.basicConfig(level=INFO)`` (on its
import, runpod/serverless/utils/rp_upload.py) every chat request would print one into the notebook."""


def check_parameters(runbook: str, namespace: Mapping[str, Any]) -> None:
    """The first line of every runbook: every parameter it declares within its declared range
    (``rpbook.runbook.paramcheck``) before anything is started, called or created. ``namespace`` is
    the kernel's ``globals()``, where the parameters cell and papermill's injected values live."""
    from rpbook.core.paths import notebook_dir
    from rpbook.runbook.paramcheck import check_namespace

    notebook = notebook_dir() / f"{runbook}.ipynb"
    if not notebook.is_file():
        raise ConfigError(f"runbook {runbook} not found in {notebook.parent}: its parameters cannot be checked")
    check_namespace(notebook, namespace)


def start(target: str = "local", env_file: str = "", *, localpod_profile: str = "fast") -> Settings:
    """Settings for ``target``; for ``local``, localpod is started (or reused) before returning.

    Also quiets the HTTP clients' per-request log lines (``QUIET_LOGGERS``) for the runbook's
    kernel: a runbook's first call, never a side effect of importing an rpbook module."""
    quiet_http_logs()
    path = resolve_env_file(env_file)
    settings = load_settings(target, env_file=path)
    if settings.target == "local":
        status = ensure_localpod(settings, state_dir=localpod_state_dir(path), profile=localpod_profile)
        print(describe(settings, status))
    else:
        print(f"target runpod: REST {settings.rest_url}, queue {settings.queue_url}; env file {path}")
    _recover_pins(settings)
    return settings


def quiet_http_logs() -> None:
    """Raise ``QUIET_LOGGERS`` to WARNING, so a notebook shows answers, not one line per request."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _recover_pins(settings: Settings) -> None:
    """A keep-alive pin whose holder died (``kill -9``) or expired is restored by the next runbook."""
    from rpbook.endpoint.pins import lease_dir, read_leases, recover_stale_pins

    if not read_leases(lease_dir(settings)):
        return
    try:
        api_key = settings.runpod_api_key()
    except ConfigError as exc:
        print(f"keep-alive leases in {lease_dir(settings)} may need restoring, but: {exc}")
        return
    for message in recover_stale_pins(settings, api_key):
        print(message)


def describe(settings: Settings, status: LocalpodStatus) -> str:
    """Where local mode runs and which keys it uses (masked): nobody is asked for a key here."""
    how = "started" if status.started else "already running"
    keys = ", ".join(
        f"{secret.name} {secret.masked} ({secret.source})"
        for secret in (settings.runpod_api_key(), settings.hf_token())
    )
    return (
        f"target local: localpod {how} at {status.url} (log: {status.log_file}); "
        f"env file {settings.env_file}\nkeys: {keys}"
    )


def resolve_apply(apply: bool | None, settings: Settings) -> bool:
    """The ``apply`` parameter of the runbooks that create things. Unset (``None``) it means yes
    for the local target, where nothing is billed, so JupyterLab's "run from the top" builds the
    whole local stack; and no for real Runpod, where a person reads the plan first."""
    if apply is None:
        decided = settings.target == "local"
        why = "nothing is billed on localpod" if decided else "read the plans, then set apply = True"
        print(f"apply: {decided} (the default for target {settings.target}: {why})")
        return decided
    if not isinstance(apply, bool):
        raise ConfigError(f"apply must be True, False or None (the target's default), got {apply!r}")
    return apply
