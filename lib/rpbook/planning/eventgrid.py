"""Runbook 06's candidate settings: every combination of the grid's values, checked before any simulation.

A candidate is a ``rpbook.planning.capacity.Scaling``; the grid's parameters are checked as a whole so
that an error names the runbook's parameter and what to give instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from itertools import product
from typing import Any, TypeGuard

from rpbook.core.errors import ConfigError
from rpbook.planning.capacity import ScalerType, Scaling

SETTING_KEYS = ("workers_min", "workers_max", "idle_timeout_s", "scaler_type", "scaler_value")


def _is_scaler_type(value: str) -> TypeGuard[ScalerType]:
    """The two scaler types Runpod knows: checked here so that a typo fails before any simulation."""
    return value in ("QUEUE_DELAY", "REQUEST_COUNT")


def _candidates(name: str, values: Iterable[Any], kind: type, *, low: float, above: bool = False) -> list[Any]:
    """One grid parameter's values, checked as a whole: the error names the runbook's parameter."""
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, str) else [values]
    bound = f"greater than {low:g}" if above else f"at least {low:g}"
    wrong = [
        v
        for v in items
        if isinstance(v, bool)
        or not isinstance(v, int | float)
        or not math.isfinite(v)
        or (kind is int and v != int(v))
        or (v <= low if above else v < low)
    ]
    if not items or wrong:
        found = ", ".join(repr(v) for v in wrong) if wrong else "no value"
        raise ConfigError(f"{name}: {found}; give a list of {kind.__name__} values, each {bound}")
    return [kind(v) for v in items]


def grid(
    *,
    workers_max: Iterable[int],
    workers_min: Iterable[int] = (0,),
    idle_timeout_s: Iterable[float] = (5.0,),
    scaler_value: Iterable[float] = (4.0,),
    scaler_type: str = "QUEUE_DELAY",
    concurrency: int = 8,
    execution_timeout_s: float = 600.0,
    flashboot: bool = True,
) -> list[Scaling]:
    """Every combination of the candidate values, skipping those with more active workers than max
    (Runpod refuses min > max)."""
    if not _is_scaler_type(scaler_type):
        raise ConfigError(f"scaler_type must be QUEUE_DELAY or REQUEST_COUNT, got {scaler_type!r}")
    if concurrency < 1:
        raise ConfigError(f"concurrency (MAX_CONCURRENCY) must be at least 1, got {concurrency}")
    maxes = _candidates("grid_workers_max", workers_max, int, low=1)
    mins = _candidates("grid_workers_min", workers_min, int, low=0)
    idles = _candidates("grid_idle_timeout_s", idle_timeout_s, float, low=0)
    values = _candidates("grid_scaler_value", scaler_value, float, low=0, above=True)
    out = []
    for wmax, wmin, idle, value in product(maxes, mins, idles, values):
        if int(wmin) > int(wmax):
            continue
        out.append(
            Scaling(
                workers_min=int(wmin),
                workers_max=int(wmax),
                idle_timeout_s=float(idle),
                scaler_type=scaler_type,
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
