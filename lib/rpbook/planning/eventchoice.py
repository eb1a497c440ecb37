"""Runbook 06's choice: every candidate simulated on the same requests, the cheapest meeting the SLOs.

Peers show a price per hour (dstack's plan, SkyPilot's dry run, Runpod's active-worker formula);
none plays a scaling policy against a traffic pattern. This module does: the grid of candidate
settings (``rpbook.planning.eventgrid``) is run through the simulator (``rpbook.planning.capacity.sweep``,
both cores) on the same requests (``rpbook.planning.eventtraffic`` + ``rpbook.planning.servicetimes``), and
each setting gets p50/p95/p99 TTFT and queue wait, cold starts, throttling, worker-hours and cost in
dollars.

**The choice**: the cheapest setting whose p95 TTFT and p95 queue wait meet the SLOs and that
times nothing out; ties go to the lower p95 TTFT. When none meets them the plan says so and names
the setting closest to them (lowest p95 TTFT) and what to widen. The **Pareto front** (no other
setting is both cheaper and faster at p95) shows what each extra dollar buys.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from rpbook.core.display import html_table
from rpbook.core.errors import ConfigError
from rpbook.planning.capacity import ColdStart, Prices, Requests, Scaling, simulate, sweep
from rpbook.planning.eventgrid import SETTING_KEYS, scaling_of

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


def describe_setting(row: Mapping[str, Any]) -> str:
    unit = "s" if row["scaler_type"] == "QUEUE_DELAY" else " req/worker"
    return (
        f"workers max {row['workers_max']}, active {row['workers_min']}, idle {row['idle_timeout_s']:g} s, "
        f"{row['scaler_type']} {row['scaler_value']:g}{unit}"
    )


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
