"""One error hierarchy for everything rpbook raises, so a runbook can catch ``RpbookError``.

Every message says what to fix. No message ever contains a secret: values that could hold one
are passed through ``rpbook.secrets.scrub`` before they reach an exception.
"""

from __future__ import annotations


class RpbookError(Exception):
    """Base class of rpbook's errors."""


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


class SanityCheckError(RpbookError):
    """An endpoint answered, but not as it should."""
