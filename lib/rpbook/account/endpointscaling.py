"""An endpoint's workers and scaler as the REST v2 spec bounds them, and the one place their request bodies are built.

Source: the REST v2 spec (/work/shared/runpod/openapi-v2.json, ``components.schemas``):

- ``EndpointWorkers``: ``min`` and ``max`` integers >= 0; ``idleTimeout`` an integer from 1 to 3600
  seconds, "not applicable to queue-based endpoints scaling on ``requestCount`` — rejected on
  create/update";
- ``EndpointScaling``: a union on ``type``: ``QueueDelayScaling`` (``queueDelay``, a number >= 0.5
  seconds) or ``RequestCountScaling`` (``requestCount``, an integer >= 1).

Every caller that sets workers or the scaler (runbooks 02/04 through ``rpbook.account.plans``, runbook
05's keep-alive pin, runbook 06's event plan, teardown and the failure report's scale-to-zero) builds
its body here, through :class:`WorkerSettings` / :class:`ScalerSettings` and :func:`scaling_body`, or
calls ``RunpodClient.set_workers`` / ``set_scaling``, which do. A value the API would refuse raises
``ConfigError`` naming the field before anything is sent. ``tests/test_endpoint_updates.py`` checks
these bounds against the spec and that no other module builds such a body by hand.

The scaler type has one name everywhere in rpbook: ``scaler_type`` (``QUEUE_DELAY`` or
``REQUEST_COUNT``), with its value ``scaler_value``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from rpbook.core.errors import ConfigError

ScalerType = Literal["QUEUE_DELAY", "REQUEST_COUNT"]
SCALER_TYPES: tuple[ScalerType, ...] = ("QUEUE_DELAY", "REQUEST_COUNT")
WORKERS_LOW = 0
"""``EndpointWorkers.min`` / ``.max``: ``minimum: 0``."""
IDLE_TIMEOUT_LOW_S = 1
IDLE_TIMEOUT_HIGH_S = 3600
"""``EndpointWorkers.idleTimeout``: integer, ``minimum: 1``, ``maximum: 3600``."""
QUEUE_DELAY_LOW_S = 0.5
"""``QueueDelayScaling.queueDelay``: number, ``minimum: 0.5``."""
REQUEST_COUNT_LOW = 1
"""``RequestCountScaling.requestCount``: integer, ``minimum: 1``."""


def is_scaler_type(value: object) -> TypeGuard[ScalerType]:
    return value in SCALER_TYPES


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    return float(value)


def check_scaler_type(where: str, value: Any) -> ScalerType:
    """``value`` if it is a scaler type the API knows, else ConfigError naming ``where``."""
    if not is_scaler_type(value):
        raise ConfigError(f"{where}: must be one of {', '.join(SCALER_TYPES)}, got {value!r}")
    return value


def check_workers(where: str, value: Any) -> int:
    """A worker count the API accepts (an integer >= 0)."""
    number = _number(where, value)
    if not number.is_integer() or number < WORKERS_LOW:
        raise ConfigError(f"{where}: must be a whole number of workers >= {WORKERS_LOW}, got {value!r}")
    return int(number)


def check_idle_timeout(where: str, value: Any) -> int:
    """An idle timeout the API accepts: whole seconds from 1 to 3600."""
    number = _number(where, value)
    if not number.is_integer() or not IDLE_TIMEOUT_LOW_S <= number <= IDLE_TIMEOUT_HIGH_S:
        raise ConfigError(
            f"{where}: must be whole seconds from {IDLE_TIMEOUT_LOW_S} to {IDLE_TIMEOUT_HIGH_S} "
            f"(REST v2 EndpointWorkers.idleTimeout), got {value!r}"
        )
    return int(number)


def check_scaler_value(where: str, scaler_type: ScalerType, value: Any) -> float:
    """A scaler value the API accepts for ``scaler_type``: QUEUE_DELAY seconds >= 0.5, REQUEST_COUNT
    a whole number of requests per worker >= 1."""
    number = _number(where, value)
    if scaler_type == "REQUEST_COUNT":
        if not number.is_integer() or number < REQUEST_COUNT_LOW:
            raise ConfigError(
                f"{where}: with REQUEST_COUNT it is requests per worker, a whole number >= {REQUEST_COUNT_LOW} "
                f"(REST v2 RequestCountScaling.requestCount), got {value!r}"
            )
        return float(int(number))
    if number < QUEUE_DELAY_LOW_S:
        raise ConfigError(
            f"{where}: with QUEUE_DELAY it is the seconds a request waits in the queue before a new worker "
            f"starts and must be >= {QUEUE_DELAY_LOW_S:g} (REST v2 QueueDelayScaling.queueDelay), got {value!r}"
        )
    return number


@dataclass(frozen=True)
class WorkerSettings:
    """``EndpointWorkers``: only the fields given (not None) are sent, so a PATCH changes only them."""

    workers_min: int | None = None
    workers_max: int | None = None
    idle_timeout_s: int | None = None

    def __post_init__(self) -> None:
        for name in ("workers_min", "workers_max"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_workers(name, value))
        if self.idle_timeout_s is not None:
            object.__setattr__(self, "idle_timeout_s", check_idle_timeout("idle_timeout_s", self.idle_timeout_s))
        if self.workers_min is not None and self.workers_max is not None and self.workers_min > self.workers_max:
            raise ConfigError(
                f"workers_min ({self.workers_min}) is above workers_max ({self.workers_max}); "
                "lower workers_min or raise workers_max"
            )

    def body(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.workers_min is not None:
            out["min"] = self.workers_min
        if self.workers_max is not None:
            out["max"] = self.workers_max
        if self.idle_timeout_s is not None:
            out["idleTimeout"] = self.idle_timeout_s
        return out


@dataclass(frozen=True)
class ScalerSettings:
    """``EndpointScaling``: the scaler type and its value, both always sent (the union needs both)."""

    scaler_type: ScalerType
    scaler_value: float

    def __post_init__(self) -> None:
        check_scaler_type("scaler_type", self.scaler_type)
        object.__setattr__(
            self, "scaler_value", check_scaler_value("scaler_value", self.scaler_type, self.scaler_value)
        )

    def body(self) -> dict[str, Any]:
        if self.scaler_type == "REQUEST_COUNT":
            return {"type": "REQUEST_COUNT", "requestCount": int(self.scaler_value)}
        return {"type": "QUEUE_DELAY", "queueDelay": self.scaler_value}


def scaling_body(workers: WorkerSettings | None = None, scaler: ScalerSettings | None = None) -> dict[str, Any]:
    """The ``workers`` and ``scaling`` members of a ``CreateEndpointRequest`` / ``UpdateEndpointRequest``
    (only those given, and ``workers`` only when it sets something)."""
    if (
        scaler is not None
        and scaler.scaler_type == "REQUEST_COUNT"
        and workers is not None
        and workers.idle_timeout_s is not None
    ):
        raise ConfigError(
            "idle_timeout_s cannot be set with the REQUEST_COUNT scaler (REST v2 EndpointWorkers.idleTimeout: "
            "rejected on create/update for that combination); leave it unset"
        )
    out: dict[str, Any] = {}
    if workers is not None and workers.body():
        out["workers"] = workers.body()
    if scaler is not None:
        out["scaling"] = scaler.body()
    return out
