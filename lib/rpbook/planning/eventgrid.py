"""Runbook 06's candidate settings: every combination of the grid's values, checked before any simulation.

A candidate is a ``rpbook.planning.capacity.Scaling``; the grid's parameters are checked as a whole so
that an error names the runbook's parameter and what to give instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from itertools import product
from typing import Any

from rpbook.account.endpointscaling import (
    IDLE_TIMEOUT_HIGH_S,
    IDLE_TIMEOUT_LOW_S,
    QUEUE_DELAY_LOW_S,
    REQUEST_COUNT_LOW,
    WORKERS_LOW,
    check_scaler_type,
)
from rpbook.core.errors import ConfigError
from rpbook.planning.capacity import Scaling

SETTING_KEYS = ("workers_min", "workers_max", "idle_timeout_s", "scaler_type", "scaler_value")


def _candidates(
    name: str, values: Iterable[Any], kind: type, *, low: float, high: float | None = None, source: str = ""
) -> list[Any]:
    """One grid parameter's values, checked as a whole: the error names the runbook's parameter."""
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, str) else [values]
    bound = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
    wrong = [
        v
        for v in items
        if isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or (kind is int and v != int(v))
        or v < low
        or (high is not None and v > high)
    ]
    if not items or wrong:
        found = ", ".join(repr(v) for v in wrong) if wrong else "no value"
        raise ConfigError(f"{name}: {found}; give a list of {kind.__name__} values, each {bound}{source}")
    return [kind(v) for v in items]


def grid(
    *,
    workers_max: Iterable[int],
    workers_min: Iterable[int] = (0,),
    idle_timeout_s: Iterable[float] = (5,),
    scaler_value: Iterable[float] = (4.0,),
    scaler_type: str = "QUEUE_DELAY",
    concurrency: int = 8,
    execution_timeout_s: float = 600.0,
    flashboot: bool = True,
) -> list[Scaling]:
    """Every combination of the candidate values, skipping those with more active workers than max
    (Runpod refuses min > max). Only values the API accepts are proposed: the idle timeout and the
    scaler value within the REST v2 spec's bounds (``rpbook.account.endpointscaling``: idle timeout
    1–3600 whole seconds, queue delay >= 0.5 s, request count a whole number >= 1)."""
    scaler = check_scaler_type("scaler_type", scaler_type)
    if concurrency < 1:
        raise ConfigError(f"concurrency (MAX_CONCURRENCY) must be at least 1, got {concurrency}")
    spec = " (the REST v2 spec's bounds)"
    maxes = _candidates("grid_workers_max", workers_max, int, low=1)
    mins = _candidates("grid_workers_min", workers_min, int, low=WORKERS_LOW)
    idles = _candidates(
        "grid_idle_timeout_s", idle_timeout_s, int, low=IDLE_TIMEOUT_LOW_S, high=IDLE_TIMEOUT_HIGH_S, source=spec
    )
    if scaler == "REQUEST_COUNT":
        values = _candidates("grid_scaler_value", scaler_value, int, low=REQUEST_COUNT_LOW, source=spec)
    else:
        values = _candidates("grid_scaler_value", scaler_value, float, low=QUEUE_DELAY_LOW_S, source=spec)
    out = []
    for wmax, wmin, idle, value in product(maxes, mins, idles, values):
        if int(wmin) > int(wmax):
            continue
        out.append(
            Scaling(
                workers_min=int(wmin),
                workers_max=int(wmax),
                idle_timeout_s=float(idle),
                scaler_type=scaler,
                scaler_value=float(value),
                concurrency=int(concurrency),
                execution_timeout_s=float(execution_timeout_s),
                flashboot=bool(flashboot),
            )
        )
    if not out:
        raise ConfigError("the grid is empty: every candidate had workers_min > workers_max")
    return out


def scaling_of(row: Mapping[str, Any], template: Scaling) -> Scaling:
    """The ``Scaling`` a result row was simulated with (its fields over ``template``'s)."""
    return replace(
        template,
        workers_min=int(row["workers_min"]),
        workers_max=int(row["workers_max"]),
        idle_timeout_s=float(row["idle_timeout_s"]),
        scaler_type=row["scaler_type"],
        scaler_value=float(row["scaler_value"]),
    )
