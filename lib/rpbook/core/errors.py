"""One error hierarchy for everything rpbook raises, so a runbook can catch ``RpbookError``.

Every message says what to fix. No message ever contains a secret: values that could hold one
are passed through ``rpbook.core.secrets.scrub`` before they reach an exception.
"""

from __future__ import annotations

import os
import traceback
from typing import Any


class RpbookError(Exception):
    """Base class of rpbook's errors."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it in a notebook: the message alone, which already says what to fix (a
        newcomer reads one red line, not a stack of library frames). ``RPBOOK_TRACEBACK=1`` shows
        the whole traceback for debugging."""
        if os.environ.get("RPBOOK_TRACEBACK"):
            return traceback.format_exception(self)
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class ConfigError(RpbookError):
    """A setting or parameter is missing or wrong (nothing was created)."""


class SecretMissingError(ConfigError):
    """A secret (HF token, Runpod API key) is not in the environment nor in the env file."""


class HubError(RpbookError):
    """The Hugging Face Hub refused or failed a check."""


class GatedModelError(HubError):
    """The token cannot read a gated model: the licence is not accepted or the token lacks permission."""


class ControlPlaneError(RpbookError):
    """Runpod's REST API answered with an error."""

    def __init__(self, message: str, status: int | None = None, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class PlanConflictError(RpbookError):
    """Adopting by name is ambiguous or impossible (e.g. two resources share the wanted name)."""


class EndpointNotReadyError(RpbookError):
    """An endpoint did not serve a job in time."""


class EndpointNotFound(RpbookError):
    """The queue does not know the endpoint id (HTTP 404): deleted since, another target, or a typo.
    Not a ``ConfigError``: the settings may be right and the endpoint gone at run time."""


class JobTimeoutError(EndpointNotReadyError):
    """A job was not final in time; rpbook cancelled it. ``status`` is the state it was left in
    (``IN_QUEUE``: no worker took it; ``IN_PROGRESS``: a worker took it and never answered)."""

    def __init__(self, message: str, job_id: str, status: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status


class SanityCheckError(RpbookError):
    """An endpoint answered, but not as it should. ``report`` holds every check (the failed ones and
    the rest: an ``rpbook.endpoint.checks.CheckReport``, typed loosely here because core imports no
    room above it), so a caller that catches the error can still read and record the figures."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class CheckFailed(RpbookError):
    """Raised inside a sanity check to fail it with this message as the detail
    (``rpbook.endpoint.checks.guard`` catches it)."""


class LedgerError(ConfigError):
    """The ledger cannot be written: nothing is created, so nothing can be forgotten."""


class RolloutTimeoutError(RpbookError):
    """Workers still ran an old release when the wait ended. ``old`` lists them as they were last
    seen (``rpbook.account.resources.Worker`` values, typed loosely here because core imports no
    room above it)."""

    def __init__(self, message: str, old: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.old = old


class TeardownError(RpbookError):
    """Teardown could not finish; the message says what still exists or bills and what to do."""


class RegressionError(RpbookError):
    """The newest scheduled check regressed; raised on request so that papermill (and cron) exit 1."""


class WorkerQuotaError(ConfigError):
    """A planned change needs more max workers than the account's quota (nothing was created);
    ``check`` holds the table and the advice (an ``rpbook.account.quota.QuotaCheck``, typed loosely
    here because core imports no room above it)."""

    def __init__(self, check: Any) -> None:
        super().__init__(check.problem())
        self.check = check
