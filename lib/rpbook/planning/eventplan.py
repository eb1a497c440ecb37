"""Plan an event: which scaling settings, what they cost, what users wait, before anyone pays.

Peers show a price per hour (dstack's plan, SkyPilot's dry run, Runpod's active-worker formula);
none plays a scaling policy against a traffic pattern. This module does: a grid of candidate
settings (workers max, active workers during the event, idle timeout, scaler value) is run
through the simulator (``rpbook.planning.capacity.sweep``, both cores) on the same requests
(``rpbook.planning.eventtraffic`` + ``rpbook.planning.servicetimes``), and each setting gets p50/p95/p99 TTFT and
queue wait, cold starts, throttling, worker-hours and cost in dollars.

**The choice**: the cheapest setting whose p95 TTFT and p95 queue wait meet the SLOs and that
times nothing out; ties go to the lower p95 TTFT. When none meets them the plan says so and names
the setting closest to them (lowest p95 TTFT) and what to widen. The **Pareto front** (no other
setting is both cheaper and faster at p95) shows what each extra dollar buys.

**Prices** come from where rpbook's budget guard and failure report take them
(``rpbook.account.budget``, ``rpbook.account.billing_now``): the catalog's serverless price of the endpoint's
dearest pool × GPUs per worker. Active workers are priced at the flex rate too (Runpod's active
discount is not in the catalog; "discounts available through sales inquiry", docs
serverless/pricing): an upper bound, unless ``active_discount`` is given.

**The plan** (optional): the chosen settings as a field-by-field plan of the endpoint
(``rpbook.account.plans.Plan``, applied with ``rpbook.account.plans.apply`` only when ``apply`` is true), and the
restore plan (the endpoint's settings now) for afterwards, saved as JSON so that it survives the
kernel: active workers bill around the clock until they are restored.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any, ClassVar, TypeGuard, cast

from rpbook.account.controlplane import RunpodClient
from rpbook.account.plans import FieldChange, Plan
from rpbook.account.plans import apply as apply_plan
from rpbook.account.resources import Endpoint, GpuType
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ConfigError
from rpbook.planning.capacity import ColdStart, Prices, Requests, ScalerType, Scaling, simulate, sweep

SETTING_KEYS = ("workers_min", "workers_max", "idle_timeout_s", "scaler_type", "scaler_value")
METRIC_KEYS = (
    "ttft_p50_s",
    "ttft_p95_s",
    "ttft_p99_s",
    "wait_p50_s",
    "wait_p95_s",
    "wait_p99_s",
    "cold_starts",
    "flashboot_starts",
    "throttled",
    "timed_out",
    "worker_hours",
    "cost_usd",
)


# -- grid and prices ----------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PriceQuote:
    """What one worker costs, and where the figure comes from."""

    prices: Prices
    pool: str
    usd_per_gpu_hour: float
    gpu_count: int
    active_discount: float

    def describe(self) -> str:
        per_hour = self.prices.flex_usd_per_s * 3600
        active = (
            "at the flex price (an upper bound: Runpod's active discount is not in the catalog)"
            if not self.active_discount
            else f"{self.active_discount:.0%} below the flex price (as given)"
        )
        return (
            f"one worker: {self.gpu_count} GPU × ${self.usd_per_gpu_hour:.2f}/h ({self.pool}, the dearest of the "
            f"endpoint's pools in the catalog) = ${per_hour:.2f}/h; active workers {active}"
        )


def prices_from_catalog(
    gpu_types: Sequence[GpuType], gpu_pools: Sequence[str], gpu_count: int = 1, *, active_discount: float = 0.0
) -> PriceQuote:
    """Prices as ``rpbook.account.budget.worst_case`` takes them: the dearest of the pools' serverless
    prices (``GET /v2/catalog/gpus``, ``price.serverless``) × GPUs per worker."""
    if not 0 <= active_discount < 1:
        raise ConfigError(f"active_discount must be in [0, 1), got {active_discount}")
    priced = [
        (g.serverless_price_hr, str(g.pool))
        for g in gpu_types
        if g.pool in gpu_pools and g.serverless_price_hr is not None
    ]
    if not priced:
        raise ConfigError(f"the catalog gives no serverless price for {', '.join(gpu_pools)}; check gpu_pools")
    price, pool = max(priced)
    flex = float(price) * gpu_count / 3600
    return PriceQuote(
        Prices(flex_usd_per_s=flex, active_usd_per_s=flex * (1 - active_discount)),
        pool,
        float(price),
        gpu_count,
        active_discount,
    )


def client_prices(
    client: RunpodClient, gpu_pools: Sequence[str], gpu_count: int = 1, *, active_discount: float = 0.0
) -> PriceQuote:
    """:func:`prices_from_catalog` with the catalog read through ``client``."""
    return prices_from_catalog(
        client.gpu_types(serverless_availability=False), gpu_pools, gpu_count, active_discount=active_discount
    )


# -- results ------------------------------------------------------------------------------------


def _first(summary: Mapping[str, Any], *names: str, default: float = math.nan) -> Any:
    for name in names:
        if name in summary and summary[name] is not None:
            return summary[name]
    return default


def normalise(row: Mapping[str, Any]) -> dict[str, Any]:
    """One sweep row with rpbook's names for the settings and the metrics (seconds, dollars)."""
    out: dict[str, Any] = {k: row[k] for k in SETTING_KEYS if k in row}
    for kind, names in (("ttft", ("ttft",)), ("wait", ("queue_wait", "wait"))):
        for p in (50, 95, 99):
            keys = [f"{n}_p{p}_s" for n in names] + [f"p{p}_{n}_s" for n in names]
            out[f"{kind}_p{p}_s"] = float(_first(row, *keys))
    out["cold_starts"] = int(_first(row, "cold_starts", default=0))
    out["flashboot_starts"] = int(_first(row, "flashboot_starts", default=0))
    out["throttled"] = int(_first(row, "throttled", default=0))
    out["timed_out"] = int(_first(row, "timed_out", default=0))
    hours = _first(row, "worker_hours", "worker_h")
    if isinstance(hours, float) and math.isnan(hours):
        hours = (
            float(_first(row, "flex_worker_s", default=0.0)) + float(_first(row, "active_worker_s", default=0.0))
        ) / 3600
    out["worker_hours"] = float(hours)
    out["cost_usd"] = float(_first(row, "cost_usd"))
    return out


def pareto_front(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows no other row beats on both cost and p95 TTFT, cheapest first."""
    front: list[Mapping[str, Any]] = []
    best = math.inf
    for row in sorted(rows, key=lambda r: (r["cost_usd"], r["ttft_p95_s"])):
        if row["ttft_p95_s"] < best:
            front.append(row)
            best = row["ttft_p95_s"]
    return front


@dataclass(frozen=True)
class SLO:
    """What attendees may wait: p95 time to first token and p95 queue wait, in seconds."""

    p95_ttft_s: float = 2.0
    p95_wait_s: float = 1.0

    def __post_init__(self) -> None:
        if not (self.p95_ttft_s > 0 and self.p95_wait_s >= 0):
            raise ConfigError(
                f"SLOs must be positive seconds, got p95 TTFT {self.p95_ttft_s}, p95 wait {self.p95_wait_s}"
            )

    def met(self, row: Mapping[str, Any]) -> bool:
        return row["ttft_p95_s"] <= self.p95_ttft_s and row["wait_p95_s"] <= self.p95_wait_s and row["timed_out"] == 0


def choose(rows: Sequence[Mapping[str, Any]], slo: SLO) -> tuple[Mapping[str, Any], bool]:
    """The cheapest row meeting the SLOs (True), else the one with the lowest p95 TTFT (False)."""
    if not rows:
        raise ConfigError("no simulated setting to choose from")
    good = [r for r in rows if slo.met(r)]
    if good:
        return min(good, key=lambda r: (r["cost_usd"], r["ttft_p95_s"])), True
    return min(rows, key=lambda r: (r["ttft_p95_s"], r["cost_usd"])), False


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


def describe_setting(row: Mapping[str, Any]) -> str:
    unit = "s" if row["scaler_type"] == "QUEUE_DELAY" else " req/worker"
    return (
        f"workers max {row['workers_max']}, active {row['workers_min']}, idle {row['idle_timeout_s']:g} s, "
        f"{row['scaler_type']} {row['scaler_value']:g}{unit}"
    )


@rich_output
@dataclass
class EventPlan:
    """Every simulated setting, the choice, the Pareto front, and the chosen setting's timeline."""

    rows: list[dict[str, Any]]
    chosen: dict[str, Any]
    meets_slo: bool
    slo: SLO
    scaling: Scaling
    requests: int
    traffic: str
    service: str
    prices: str
    timeline: Any = None
    """The chosen setting's ``capacity.Timeline`` (t, queued, workers_running, workers_starting, cost_so_far)."""
    front: list[Mapping[str, Any]] = field(default_factory=list)

    def headline(self) -> str:
        c = self.chosen
        if self.meets_slo:
            verdict = (
                f"cheapest setting meeting p95 TTFT ≤ {self.slo.p95_ttft_s:g} s and p95 queue wait ≤ "
                f"{self.slo.p95_wait_s:g} s"
            )
        else:
            verdict = (
                f"NO setting of the grid meets p95 TTFT ≤ {self.slo.p95_ttft_s:g} s and p95 queue wait ≤ "
                f"{self.slo.p95_wait_s:g} s; closest shown: widen the grid (more workers max or active "
                "workers) or relax the SLOs"
            )
        return (
            f"{verdict}: {describe_setting(c)} → ${c['cost_usd']:,.2f} for the event "
            f"({c['worker_hours']:.1f} worker-hours), p50/p95/p99 TTFT {c['ttft_p50_s']:.2f} / {c['ttft_p95_s']:.2f}"
            f" / {c['ttft_p99_s']:.2f} s, p95 queue wait {c['wait_p95_s']:.2f} s, {c['cold_starts']} cold starts"
        )

    def __str__(self) -> str:
        return self.headline()

    __repr__ = __str__  # a notebook's text/plain output: the answer, not every simulated row

    def table_rows(self, rows: Sequence[Mapping[str, Any]] | None = None) -> list[list[str]]:
        front_ids = {id(r) for r in self.front}
        out = []
        for r in rows if rows is not None else sorted(self.rows, key=lambda r: r["cost_usd"]):
            mark = "◀ chosen" if r is self.chosen else ("pareto" if id(r) in front_ids else "")
            mark += "" if self.slo.met(r) else (" ✗ SLO" if mark else "✗ SLO")
            out.append(
                [
                    str(r["workers_max"]),
                    str(r["workers_min"]),
                    f"{r['idle_timeout_s']:g}",
                    f"{r['scaler_value']:g}",
                    f"{r['ttft_p50_s']:.2f}",
                    f"{r['ttft_p95_s']:.2f}",
                    f"{r['ttft_p99_s']:.2f}",
                    f"{r['wait_p50_s']:.2f}",
                    f"{r['wait_p95_s']:.2f}",
                    f"{r['wait_p99_s']:.2f}",
                    str(r["cold_starts"]),
                    str(r["throttled"]),
                    f"{r['worker_hours']:.1f}",
                    f"${r['cost_usd']:,.2f}",
                    mark.strip(),
                ]
            )
        return out

    HEADER: ClassVar[tuple[str, ...]] = (
        "max",
        "active",
        "idle s",
        "scaler",
        "TTFT p50",
        "p95",
        "p99",
        "wait p50",
        "p95",
        "p99",
        "cold",
        "throttled",
        "worker-h",
        "cost",
        "",
    )

    def _repr_html_(self) -> str:
        on_front = any(r is self.chosen for r in self.front)
        shown = sorted([*self.front, *([] if on_front else [self.chosen])], key=lambda r: r["cost_usd"])
        parts = [
            f"<p><b>{html.escape(self.headline())}</b></p>",
            (
                f"<p>{self.requests:,} requests · traffic: {html.escape(self.traffic)}<br>service: "
                f"{html.escape(self.service)}<br>prices: {html.escape(self.prices)}</p>"
            ),
            (
                f"<p>The Pareto front of {len(self.rows)} simulated settings (seconds; no other setting is both "
                "cheaper and faster at p95):</p>"
            ),
            html_table(self.HEADER, self.table_rows(shown), right=tuple(range(14))),
        ]
        return "".join(parts)

    def pareto_plot(self) -> Figure:
        """Cost against p95 TTFT: every setting, the Pareto front, the SLO, the choice."""
        from rpbook.core.plots import pareto_html

        return Figure(
            pareto_html(self.rows, self.front, self.chosen, self.slo.p95_ttft_s, "cost vs p95 time to first token")
        )

    def timeline_plot(self) -> Figure:
        """Queue, workers and cost over the event for the chosen setting."""
        from rpbook.core.plots import event_timeline_html

        tl = self.timeline
        if tl is None:
            return Figure("<p>no timeline was recorded</p>")
        return Figure(
            event_timeline_html(
                list(tl.t),
                list(tl.queued),
                list(tl.workers_running),
                list(tl.workers_starting),
                list(tl.cost_so_far),
                f"the event with {describe_setting(self.chosen)}",
            )
        )

    def all_settings_html(self) -> str:
        """Every simulated setting, cheapest first."""
        return html_table(self.HEADER, self.table_rows(), right=tuple(range(14)))

    @property
    def figures(self) -> dict[str, float | int | bool]:
        c = self.chosen
        return {
            "event_requests": self.requests,
            "event_settings_simulated": len(self.rows),
            "event_meets_slo": self.meets_slo,
            "event_workers_max": int(c["workers_max"]),
            "event_workers_min": int(c["workers_min"]),
            "event_idle_timeout_s": float(c["idle_timeout_s"]),
            "event_scaler_value": float(c["scaler_value"]),
            "event_cost_usd": round(float(c["cost_usd"]), 4),
            "event_ttft_p95_s": round(float(c["ttft_p95_s"]), 4),
            "event_wait_p95_s": round(float(c["wait_p95_s"]), 4),
            "event_cold_starts": int(c["cold_starts"]),
        }


def plan(
    requests: Requests,
    candidates: Sequence[Scaling],
    cold: ColdStart,
    prices: Prices,
    *,
    slo: SLO,
    p_throttle: float = 0.0,
    seed: int = 0,
    processes: int = 2,
    timeline_step_s: float = 30.0,
    traffic: str = "",
    service: str = "",
    price_note: str = "",
) -> EventPlan:
    """Simulate every candidate on the same requests, choose, and replay the choice with a timeline."""
    if not candidates:
        raise ConfigError("no candidate settings: give at least one workers_max")
    raw = sweep(requests, list(candidates), cold, prices, p_throttle=p_throttle, seed=seed, processes=processes)
    rows = []
    for setting, row in zip(candidates, raw, strict=True):
        merged = {**{k: getattr(setting, k) for k in SETTING_KEYS}, **row}
        rows.append({**{k: getattr(setting, k) for k in SETTING_KEYS}, **normalise(merged)})
    chosen, ok = choose(rows, slo)
    scaling = scaling_of(chosen, candidates[0])
    replay = simulate(
        requests, scaling, cold, prices, p_throttle=p_throttle, seed=seed, timeline_step_s=timeline_step_s
    )
    return EventPlan(
        rows=rows,
        chosen=cast(dict[str, Any], chosen),
        meets_slo=ok,
        slo=slo,
        scaling=scaling,
        requests=len(requests.arrival_s),
        traffic=traffic,
        service=service,
        prices=price_note,
        timeline=replay.timeline,
        front=pareto_front(rows),
    )


@rich_output
@dataclass(frozen=True)
class Figure:
    """One plot as HTML (a PNG inside), the cell's single output."""

    html_text: str

    def _repr_html_(self) -> str:
        return self.html_text

    def __repr__(self) -> str:
        """The image's alt text (what the plot shows, in words) as the text/plain output, not base64."""
        found = re.search(r'alt="([^"]*)"', self.html_text)
        return html.unescape(found.group(1)) if found else re.sub(r"<[^>]+>", "", self.html_text)


# -- the endpoint plan and its restore ----------------------------------------------------------


def _scaling_body(scaler_type: str, value: float) -> dict[str, Any]:
    # The body REST v2 takes (as rpbook.account.plans sends it for runbook 02).
    if scaler_type == "REQUEST_COUNT":
        return {"type": "REQUEST_COUNT", "requestCount": int(value)}
    return {"type": "QUEUE_DELAY", "queueDelay": value}


def _actual(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "workers_min": endpoint.workers_min,
        "workers_max": endpoint.workers_max,
        "idle_timeout_s": endpoint.idle_timeout_s,
        "scaler": endpoint.scaler_type,
        "scaler_value": endpoint.scaler_value,
    }


def settings_plan(endpoint: Endpoint, wanted: Mapping[str, Any], note: str) -> Plan:
    """A ``rpbook.account.plans.Plan`` that PATCHes only the scaling fields that differ."""
    actual = _actual(endpoint)
    changes = [
        FieldChange(k, wanted[k], actual[k])
        for k in actual
        if k in wanted and wanted[k] is not None and _differs(wanted[k], actual[k])
    ]
    changed = {c.field for c in changes}
    body: dict[str, Any] = {}
    workers = {}
    if "workers_min" in changed:
        workers["min"] = int(wanted["workers_min"])
    if "workers_max" in changed:
        workers["max"] = int(wanted["workers_max"])
    if "idle_timeout_s" in changed:
        workers["idleTimeout"] = round(wanted["idle_timeout_s"])
    if workers:
        body["workers"] = workers
    if changed & {"scaler", "scaler_value"}:
        body["scaling"] = _scaling_body(wanted["scaler"], wanted["scaler_value"])
    return Plan(
        "endpoint", endpoint.name, "update" if changes else "none", changes, endpoint.id, [note], body, current=endpoint
    )


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) > 1e-9
    return a != b


@rich_output
@dataclass
class EventPlans:
    """The plan for the event window and the restore plan for afterwards."""

    during: Plan
    restore: Plan
    restore_file: Path | None = None
    saved: dict[str, Any] = field(default_factory=dict)
    """What :func:`apply_event` writes to ``restore_file`` before it changes the endpoint."""

    def _repr_html_(self) -> str:
        where = (
            f"<p>the restore plan is saved to <code>{html.escape(str(self.restore_file))}</code> when the event "
            "plan is applied</p>"
            if self.restore_file
            else ""
        )
        return (
            "<p><b>During the event</b></p>"
            + self.during._repr_html_()
            + "<p><b>After the event</b></p>"
            + self.restore._repr_html_()
            + where
        )

    def __str__(self) -> str:
        where = (
            f"\nthe restore plan is saved to {self.restore_file} when the event plan is applied"
            if self.restore_file
            else ""
        )
        return f"during the event:\n{self.during}\nafter the event:\n{self.restore}{where}"

    __repr__ = __str__  # the text a headless run records: no dataclass repr with paths and saved values


def event_plans(endpoint: Endpoint, chosen: Mapping[str, Any], *, restore_file: str | Path | None = None) -> EventPlans:
    """The chosen settings as a plan for the event, and the endpoint's current settings as the
    restore plan (what runbook 02 also sets back on its next run). With ``restore_file``, pre-event
    settings saved there by an applied, not yet restored event plan stay the ones to restore;
    :func:`apply_event` writes the file, :func:`restore_saved` applies and removes it."""
    wanted = {
        "workers_min": int(chosen["workers_min"]),
        "workers_max": int(chosen["workers_max"]),
        "idle_timeout_s": round(float(chosen["idle_timeout_s"])),
        "scaler": chosen["scaler_type"],
        "scaler_value": float(chosen["scaler_value"]),
    }
    during = settings_plan(endpoint, wanted, "settings chosen by runbook 06 for the event window")
    restore_values = _actual(endpoint)
    path = Path(restore_file) if restore_file is not None else None
    kept = _saved_restore(path, endpoint.id) if path is not None else None
    if kept is not None:
        # An event plan was applied and not restored yet: the endpoint's settings now are the
        # event's, so the pre-event ones saved then stay the ones to restore.
        restore_values = kept
    after = _restore_plan(endpoint, {**_actual(endpoint), **wanted}, restore_values)
    if kept is not None:
        after = replace(after, notes=[*after.notes, f"pre-event settings kept from {path} (not restored yet)"])
    return EventPlans(
        during, after, path, {"endpoint_id": endpoint.id, "endpoint_name": endpoint.name, "restore": restore_values}
    )


def _saved_restore(path: Path, endpoint_id: str) -> dict[str, Any] | None:
    """The pre-event settings saved for this endpoint and not restored yet, else None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(saved, dict)
        or saved.get("endpoint_id") != endpoint_id
        or not isinstance(saved.get("restore"), dict)
    ):
        return None
    return dict(saved["restore"])


def _restore_plan(endpoint: Endpoint, during_values: Mapping[str, Any], restore_values: Mapping[str, Any]) -> Plan:
    """The restore plan as it will read after the event plan is applied."""
    event_view = replace(
        endpoint,
        workers_min=int(during_values["workers_min"]),
        workers_max=int(during_values["workers_max"]),
        idle_timeout_s=during_values["idle_timeout_s"],
        scaler_type=during_values["scaler"],
        scaler_value=float(during_values["scaler_value"]),
    )
    plan_ = settings_plan(event_view, restore_values, "restores the settings the endpoint had before the event")
    return replace(plan_, current=endpoint)


PHASES = ("plan", "event", "restore")
"""Runbook 06's ``phase``: show the plans; set the event's settings; set the saved ones back."""


def check_phase(phase: str) -> str:
    """``phase`` if it is one of :data:`PHASES`; checked in the runbook's first cell, before any call."""
    if phase not in PHASES:
        raise ConfigError(
            f"phase must be one of {', '.join(repr(p) for p in PHASES)}, got {phase!r}: "
            '"plan" shows the plans, "event" sets the event\'s settings, "restore" sets them back'
        )
    return phase


def apply_event(client: RunpodClient, plans: EventPlans, *, do_apply: bool) -> str:
    """Apply the event plan when ``do_apply``; say what happened and how to restore."""
    if plans.during.action == "none":
        return "the endpoint already has the chosen settings: nothing to apply"
    if not do_apply:
        return "not applied (apply is false): read the plan, then rerun with apply = True before the event"
    if plans.restore_file is not None:  # written before the change, so no crash can lose it
        plans.restore_file.parent.mkdir(parents=True, exist_ok=True)
        plans.restore_file.write_text(json.dumps(plans.saved, indent=1))
    apply_plan(client, plans.during)
    where = f" (saved in {plans.restore_file})" if plans.restore_file else ""
    return (
        f"applied: endpoint {plans.during.name} now has the event's settings. After the event apply the restore "
        f'plan{where}: rerun this runbook with phase = "restore", or runbook 02'
    )


def restore_saved(client: RunpodClient, restore_file: str | Path, *, do_apply: bool) -> tuple[Plan, str]:
    """The restore plan saved by :func:`event_plans`, against the endpoint as it is now; applied
    when ``do_apply``."""
    path = Path(restore_file)
    try:
        saved = json.loads(path.read_text())
        endpoint = client.get_endpoint(str(saved["endpoint_id"]))
        values = dict(saved["restore"])
    except FileNotFoundError:
        raise ConfigError(f'no saved restore plan at {path}: run this runbook with phase = "event" first') from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a restore plan written by runbook 06 ({exc})") from None
    restore = settings_plan(endpoint, values, "restores the settings the endpoint had before the event")
    if restore.action == "none":
        path.unlink(missing_ok=True)
        return restore, "nothing to restore: the endpoint has its pre-event settings"
    if not do_apply:
        return restore, "not applied (apply is false)"
    apply_plan(client, restore)
    path.unlink(missing_ok=True)  # restored: the next event saves the settings of its own time
    return restore, f"restored endpoint {endpoint.name} to its pre-event settings"


def setting_dict(scaling: Scaling) -> dict[str, Any]:
    return asdict(scaling)


# -- inputs the runbook gathers -----------------------------------------------------------------


@dataclass(frozen=True)
class EndpointFacts:
    """What the simulation needs from the endpoint: read from it when it exists, else the
    runbook's parameters (the same ones runbook 02 creates it with)."""

    endpoint: Endpoint | None
    gpu_pools: tuple[str, ...]
    gpu_count: int
    concurrency: int
    execution_timeout_s: float
    flashboot: bool

    def describe(self) -> str:
        where = (
            f"endpoint {self.endpoint.name} ({self.endpoint.id}) as it is now"
            if self.endpoint is not None
            else "the parameters (the endpoint does not exist yet)"
        )
        return (
            f"from {where}: pools {', '.join(self.gpu_pools)}, {self.gpu_count} GPU per worker, "
            f"{self.concurrency} requests per worker at once, execution timeout {self.execution_timeout_s:g} s, "
            f"FlashBoot {'on' if self.flashboot else 'off'}"
        )


def endpoint_facts(
    client: RunpodClient,
    endpoint_name: str,
    *,
    gpu_pools: Sequence[str],
    gpu_count: int,
    max_concurrency: int,
    execution_timeout_s: float,
    flashboot: bool,
) -> EndpointFacts:
    """The endpoint's pools, GPUs, concurrency (``MAX_CONCURRENCY`` / ``RUNPOD_MAX_CONCURRENCY`` in
    its env), execution timeout and FlashBoot; the given values when it does not exist."""
    named = [e for e in client.list_endpoints() if e.name == endpoint_name]
    if len(named) > 1:
        raise ConfigError(
            f"{len(named)} endpoints are named {endpoint_name!r}; rename all but one (runbook 99 lists them)"
        )
    if not named:
        return EndpointFacts(None, tuple(gpu_pools), gpu_count, max_concurrency, float(execution_timeout_s), flashboot)
    endpoint = client.get_endpoint(named[0].id)
    env = endpoint.env or {}
    raw = env.get("RUNPOD_MAX_CONCURRENCY") or env.get("MAX_CONCURRENCY")
    try:
        concurrency = int(str(raw)) if raw else max_concurrency
    except ValueError:
        concurrency = max_concurrency
    return EndpointFacts(
        endpoint,
        tuple(endpoint.gpu_pools) or tuple(gpu_pools),
        endpoint.gpu_count or gpu_count,
        concurrency,
        endpoint.timeout_ms / 1000 if endpoint.timeout_ms else float(execution_timeout_s),
        endpoint.flashboot_enabled,
    )


def find_loadtest(path: str = "", run_dir: str | Path | None = None) -> Path | None:
    """Runbook 05's load-test result: ``path`` when given (it must exist), else
    ``05_loadtest.json`` in this run's folder (``rpbook.records.figures.figures_dir``), else None."""
    from rpbook.records.figures import figures_dir

    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(
                f"loadtest_json {file} does not exist; give runbook 05's 05_loadtest.json or leave it "
                "empty to use this run's or the priors"
            )
        return file
    candidate = figures_dir(run_dir) / "05_loadtest.json"
    return candidate if candidate.is_file() else None


def local_profile(settings: Any, api_key: Any) -> dict[str, float] | None:
    """localpod's timing profile (``GET /_localpod/config``) on the local target, so that the plan
    uses the cold starts localpod will really play; None on Runpod."""
    if getattr(settings, "target", "") != "local" or not getattr(settings, "localpod_url", None):
        return None
    import httpx

    from rpbook.core.secrets import Secret, reveal_api_key

    key = api_key.reveal() if isinstance(api_key, Secret) else reveal_api_key(api_key)
    try:
        response = httpx.get(
            f"{settings.localpod_url}/_localpod/config", timeout=10, headers={"Authorization": f"Bearer {key}"}
        )
        response.raise_for_status()
        profile = response.json()["profile"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"could not read localpod's profile at {settings.localpod_url}: {type(exc).__name__}"
        ) from None
    return {k: float(v) for k, v in profile.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def restore_file_for(settings: Any, endpoint_name: str) -> Path:
    """Where the restore plan of ``endpoint_name`` is kept: beside the env file (as keep-alive pin
    leases are), so the run after the event finds it whatever its run folder."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in endpoint_name) or "endpoint"
    return Path(settings.env_file).parent / ".rpbook" / "events" / f"{safe}.restore.json"
