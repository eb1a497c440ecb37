"""Runbook 06's choice: every candidate simulated on the same requests, the cheapest meeting the SLOs.

Peers show a price per hour (dstack's plan, SkyPilot's dry run, Runpod's active-worker formula);
none plays a scaling policy against a traffic pattern. This module does: the grid of candidate
settings (``rpbook.planning.eventgrid``) is run through the simulator (``rpbook.planning.capacity.sweep``,
both cores) on the same requests (``rpbook.planning.eventtraffic`` + ``rpbook.planning.servicetimes``), and
each setting gets p50/p95/p99 TTFT and queue wait, cold starts, throttling, worker-hours and cost in
dollars.

**Two readings of QUEUE_DELAY.** Runpod's docs do not say how many workers one QUEUE_DELAY
decision starts (``rpbook.planning.capacity``'s docstring has the sources), and the answer moves the
waits by an order of magnitude. Every setting is simulated under both readings on the same requests:
``one_per_decision`` (one worker per decision, a starting worker counting as free capacity: the
pessimistic one, localpod's default) gives each row's main figures; ``whole_queue`` (enough workers
for the whole queue at once) sits beside them under ``row["whole_queue"]``. REQUEST_COUNT follows the
docs' formula, so its two columns are the same.

**The choice**: the cheapest setting whose p95 TTFT and p95 queue wait meet the SLOs under both
readings (so under the pessimistic one) and that times nothing out, ranked by the higher of its two
costs; ties go to the lower p95 TTFT. When none meets them the plan says so and names the setting
closest to them (lowest p95 TTFT) and what to widen. The **Pareto front** (no other setting is both
cheaper and faster at p95) shows what each extra dollar buys.

**The account's worker quota** (Runpod docs ``serverless/workers/overview.mdx``, "Max worker limits";
the rule is ``rpbook.account.quota``'s): a setting whose max workers, added to every other endpoint's
on the account, exceed the quota is marked ``✗ quota`` and never chosen; when the best setting is one
of those, the headline says so, and when every setting is, the plan says none fits and the event
phase refuses to apply it. The chosen setting's check (``EventPlan.quota``) states the quota it needs.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from rpbook.account.quota import QuotaCheck
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ConfigError
from rpbook.planning.capacity import QUEUE_DELAY_READINGS, ColdStart, Prices, Requests, Scaling, simulate, sweep
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

    def met_by(self, figures: Mapping[str, Any]) -> bool:
        """Whether one reading's figures meet the SLOs."""
        return (
            figures["ttft_p95_s"] <= self.p95_ttft_s
            and figures["wait_p95_s"] <= self.p95_wait_s
            and figures["timed_out"] == 0
        )

    def met(self, row: Mapping[str, Any]) -> bool:
        """Met under every reading the row was simulated with (the pessimistic one included)."""
        return self.met_by(row) and ("whole_queue" not in row or self.met_by(row["whole_queue"]))


def budget_usd(row: Mapping[str, Any]) -> float:
    """The higher of the row's costs under the two QUEUE_DELAY readings: what to budget."""
    other = row.get("whole_queue")
    return max(float(row["cost_usd"]), float(other["cost_usd"])) if other else float(row["cost_usd"])


def fits_quota(row: Mapping[str, Any]) -> bool:
    """False only for a row marked over the account's worker quota (unchecked rows fit)."""
    return bool(row.get("quota_ok", True))


def choose(rows: Sequence[Mapping[str, Any]], slo: SLO) -> tuple[Mapping[str, Any], bool]:
    """The cheapest row (by :func:`budget_usd`) within the worker quota meeting the SLOs under both
    readings (True), else the one with the lowest p95 TTFT under the pessimistic reading (False).
    Rows over the quota are left out unless every row is over it."""
    if not rows:
        raise ConfigError("no simulated setting to choose from")
    rows = [r for r in rows if fits_quota(r)] or list(rows)
    good = [r for r in rows if slo.met(r)]
    if good:
        return min(good, key=lambda r: (budget_usd(r), r["ttft_p95_s"])), True
    return min(rows, key=lambda r: (r["ttft_p95_s"], budget_usd(r))), False


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
    quota: QuotaCheck | None = None
    """The chosen setting against the account's worker quota (None: not checked)."""
    quota_passed_over: Mapping[str, Any] | None = None
    """The setting that would have been chosen without the quota, when it is over it."""

    def quota_line(self) -> str:
        """What the chosen setting needs of the account's worker quota, in one sentence."""
        if self.quota is None:
            return "worker quota not checked"
        q = self.quota
        mine = int(self.chosen["workers_max"])
        line = (
            f"worker quota: this plan needs {q.total} max workers across all endpoints of the account (this "
            f"endpoint {mine}, the others {q.total - mine}); the quota is {q.quota.max_workers} ({q.quota.source})"
        )
        if not q.ok:
            return f"{line}: OVER by {q.over_by}, no setting of the grid fits; fix one: " + "; ".join(q.fixes())
        if self.quota_passed_over is not None:
            skipped = self.quota_passed_over
            line += (
                f"; {describe_setting(skipped)} (${budget_usd(skipped):,.2f}) would be cheaper and meet the SLOs but "
                f"needs {skipped['quota_needed']} max workers: not chosen (raise the quota to use it)"
            )
        return line

    def headline(self) -> str:
        c = self.chosen
        if self.quota is not None and not self.quota.ok:
            return (
                f"NO setting of the grid fits the account's worker quota ({self.quota.quota.max_workers}); closest "
                f"shown, NOT to be applied: {describe_setting(c)}. {self.quota_line()}"
            )
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
        other = c.get("whole_queue")
        beside = (
            f"; if Runpod's scaler starts workers for the whole queue at once: p95 TTFT "
            f"{other['ttft_p95_s']:.2f} s, p95 queue wait {other['wait_p95_s']:.2f} s, ${other['cost_usd']:,.2f}"
            if other and c["scaler_type"] == "QUEUE_DELAY"
            else ""
        )
        return (
            f"{verdict}: {describe_setting(c)} → ${c['cost_usd']:,.2f} for the event "
            f"({c['worker_hours']:.1f} worker-hours), p50/p95/p99 TTFT {c['ttft_p50_s']:.2f} / {c['ttft_p95_s']:.2f}"
            f" / {c['ttft_p99_s']:.2f} s, p95 queue wait {c['wait_p95_s']:.2f} s, {c['cold_starts']} cold starts "
            f"(one worker per scaler decision, the pessimistic reading){beside}"
        )

    def assumption(self) -> str:
        """What the two column groups assume, in words (the table's caption)."""
        return (
            "Assumption: Runpod's docs do not say how many workers one QUEUE_DELAY scaler decision starts. "
            "'one per decision' assumes one, with a starting worker counted as free capacity (localpod's "
            "default, the pessimistic reading); 'whole queue' assumes enough workers for every waiting request "
            "at once. The choice meets the SLOs under both and is priced at the higher cost. REQUEST_COUNT "
            "follows the docs' formula: its two column groups are the same."
        )

    def __str__(self) -> str:
        return f"{self.headline()}\n{self.quota_line()}" if self.quota is not None else self.headline()

    __repr__ = __str__  # a notebook's text/plain output: the answer, not every simulated row

    def table_rows(self, rows: Sequence[Mapping[str, Any]] | None = None) -> list[list[str]]:
        front_ids = {id(r) for r in self.front}
        out = []
        for r in rows if rows is not None else sorted(self.rows, key=lambda r: r["cost_usd"]):
            mark = "◀ chosen" if r is self.chosen else ("pareto" if id(r) in front_ids else "")
            mark += "" if self.slo.met(r) else " ✗ SLO"
            mark += "" if fits_quota(r) else f" ✗ quota ({r['quota_needed']})"
            other = r.get("whole_queue") or r
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
                    f"{other['ttft_p95_s']:.2f}",
                    f"{other['wait_p95_s']:.2f}",
                    f"${other['cost_usd']:,.2f}",
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
        "whole queue: TTFT p95",
        "wait p95",
        "cost",
        "",
    )

    def _repr_html_(self) -> str:
        on_front = any(r is self.chosen for r in self.front)
        shown = sorted([*self.front, *([] if on_front else [self.chosen])], key=lambda r: r["cost_usd"])
        parts = [
            f"<p><b>{html.escape(self.headline())}</b></p>",
            f"<p>{html.escape(self.quota_line())}</p>" if self.quota is not None else "",
            (
                f"<p>{self.requests:,} requests · traffic: {html.escape(self.traffic)}<br>service: "
                f"{html.escape(self.service)}<br>prices: {html.escape(self.prices)}</p>"
            ),
            (
                f"<p>The Pareto front of {len(self.rows)} simulated settings (seconds; no other setting is both "
                "cheaper and faster at p95). Columns from TTFT p50 to the first cost: one worker per scaler "
                "decision; the last three: workers for the whole queue at once.</p>"
            ),
            f"<p><i>{html.escape(self.assumption())}</i></p>",
            html_table(self.HEADER, self.table_rows(shown), right=tuple(range(17))),
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
        return html_table(self.HEADER, self.table_rows(), right=tuple(range(17)))

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
            "event_budget_usd": round(budget_usd(c), 4),
            **(
                {"event_quota_needed": self.quota.total, "event_quota": self.quota.quota.max_workers}
                if self.quota
                else {}
            ),
            "event_wait_p95_whole_queue_s": round(float((c.get("whole_queue") or c)["wait_p95_s"]), 4),
            "event_cost_whole_queue_usd": round(float((c.get("whole_queue") or c)["cost_usd"]), 4),
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
    quota: Callable[[int], QuotaCheck] | None = None,
) -> EventPlan:
    """Simulate every candidate on the same requests under both QUEUE_DELAY readings, choose, and
    replay the choice (pessimistic reading) with a timeline. ``quota``: the account's worker quota check
    of a candidate max (``rpbook.account.quota.check_quota`` with the endpoint's name as the planned
    change); each row gets ``quota_needed`` and ``quota_ok``, and rows over the quota are not chosen."""
    if not candidates:
        raise ConfigError("no candidate settings: give at least one workers_max")
    pessimistic, other = QUEUE_DELAY_READINGS
    raw = sweep(
        requests,
        list(candidates),
        cold,
        prices,
        p_throttle=p_throttle,
        seed=seed,
        processes=processes,
        queue_delay_reading=pessimistic,
    )
    if any(c.scaler_type == "QUEUE_DELAY" for c in candidates):
        alt = sweep(
            requests,
            list(candidates),
            cold,
            prices,
            p_throttle=p_throttle,
            seed=seed,
            processes=processes,
            queue_delay_reading=other,
        )
    else:
        alt = raw  # REQUEST_COUNT: the readings do not apply (the docs' formula)
    rows = []
    for setting, row, row_alt in zip(candidates, raw, alt, strict=True):
        settings = {k: getattr(setting, k) for k in SETTING_KEYS}
        rows.append({**settings, **normalise({**settings, **row}), other: normalise({**settings, **row_alt})})
    checks: dict[int, QuotaCheck] = {}
    if quota is not None:
        for row in rows:
            wmax = int(row["workers_max"])
            check = checks.setdefault(wmax, quota(wmax))
            row["quota_needed"], row["quota_ok"] = check.total, check.ok
    chosen, ok = choose(rows, slo)
    meeting = [r for r in rows if slo.met(r)]
    best_any = min(meeting, key=lambda r: (budget_usd(r), r["ttft_p95_s"])) if meeting else None
    passed_over = best_any if best_any is not None and not fits_quota(best_any) and fits_quota(chosen) else None
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
        quota=checks.get(int(chosen["workers_max"])),
        quota_passed_over=passed_over,
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
