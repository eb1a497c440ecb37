"""The history of scheduled checks as a report: flags of the newest run, a table, one plot.

Runbook 07 and ``rpbook history`` show this; the plot draws each key figure over time (one small
panel per figure) with each run's band (``rpbook.records.history``'s rule: the median of the runs
before and how far a value may move before it is flagged) and flagged runs in red, so a reader sees
at once whether a flag is a step (an image bump) or a one-off, and how wide the noise is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import RegressionError
from rpbook.core.plots import BAR, WIDTH_IN, _png_img, _quiet_matplotlib
from rpbook.records.history import (
    DEFAULT_MIN_RUNS,
    DEFAULT_THRESHOLDS,
    DEFAULT_WINDOW,
    Band,
    Flag,
    HistoryRun,
    Threshold,
    band_for,
    find_regressions,
    latest_regressions,
    load_history,
    parse_thresholds,
)
from rpbook.records.parking import ParkingStatus, parking_from_history

FLAG_COLOR = "#c44e52"


@rich_output
@dataclass(frozen=True)
class HistoryReport:
    runs: list[HistoryRun] = field(hash=False)
    flags: list[Flag] = field(hash=False)
    figures: tuple[str, ...]
    min_runs: int
    parking: list[ParkingStatus] = field(default_factory=list, hash=False)
    """Days left before Runpod's idle parking, per endpoint the runs woke (``rpbook.records.parking``)."""
    thresholds: dict[str, Threshold] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS), hash=False)
    window: int = DEFAULT_WINDOW

    @property
    def not_judged(self) -> list[str]:
        """Figures shown but left out of the newest run's verdict: they measure the machine (local mode)."""
        if not self.runs:
            return []
        target = self.runs[-1].target
        return [name for name in self.figures if not self.thresholds[name].judged(target)]

    def bands(self, name: str) -> list[Band | None]:
        """Each run's band for figure ``name`` (None where it was not judged)."""
        limit = self.thresholds[name]
        return [
            band_for(self.runs, i, name, limit, window=self.window, min_runs=self.min_runs)
            for i in range(len(self.runs))
        ]

    @property
    def enough(self) -> bool:
        """Whether the newest run could be judged at all (``min_runs`` runs before it)."""
        return len(self.runs) > self.min_runs

    @property
    def latest_flags(self) -> list[Flag]:
        return latest_regressions(self.runs, self.flags)

    @property
    def regressed(self) -> bool:
        """The newest run regressed: what cron or CI fails on."""
        return bool(self.latest_flags)

    def headline(self) -> str:
        if not self.runs:
            return "no runs in the history yet: not enough runs yet to look for regressions"
        if not self.enough:
            return (
                f"{len(self.runs)} run(s) in the history: not enough runs yet to look for regressions "
                f"(needs {self.min_runs} before the newest)"
            )
        if self.regressed:
            return "REGRESSION in the newest run: " + "; ".join(f.detail for f in self.latest_flags)
        return f"the newest of {len(self.runs)} runs is in line with the recent median"

    def not_judged_line(self) -> str:
        if not self.not_judged:
            return ""
        return f"not judged in local mode (they measure this machine, not an endpoint): {', '.join(self.not_judged)}"

    def raise_if_regressed(self) -> None:
        """Fail the notebook (papermill then exits 1) when the newest run regressed."""
        if self.regressed:
            raise RegressionError(
                self.headline() + " (see the table and plot above; a deliberate change such "
                "as a bigger model makes a new normal after `window` runs)"
            )

    def __str__(self) -> str:
        lines = [self.headline()]
        if self.not_judged:
            lines.append(self.not_judged_line())
        if self.flags:
            lines.append(f"{len(self.flags)} flag(s) in the history:")
            lines += [f"  {f.started_at[:19]}  {f.detail}  ({f.run_dir})" for f in self.flags]
        if self.parking:
            lines.append("idle parking (Runpod: 3 days without requests -> max workers 2, 7 days -> 0):")
            lines += [f"  {status}" for status in self.parking]
        return "\n".join(lines)

    def table_rows(self) -> list[list[str]]:
        flagged = {(f.run_dir, f.figure) for f in self.flags}
        rows = []
        for run in self.runs:
            cells = [run.started_at[:19].replace("T", " "), "ok" if run.ok else "failed"]
            for name in self.figures:
                value = run.figure(name)
                text = "" if value is None else f"{value:g}"
                cells.append(f"{text} ⚠" if (run.run_dir, name) in flagged else text)
            cells.append(", ".join(f"{k}={v}" for k, v in sorted(run.image_tags.items())))
            rows.append(cells)
        return rows

    def _repr_html_(self) -> str:
        color = FLAG_COLOR if self.regressed else "inherit"
        parts = [f'<p style="color:{color}"><b>{self.headline()}</b></p>']
        if self.not_judged:
            parts.append(f"<p><small>{self.not_judged_line()}</small></p>")
        if self.runs:
            header = ["started (UTC)", "status", *self.figures, "image tags"]
            right = set(range(2, 2 + len(self.figures)))
            parts.append(html_table(header, self.table_rows()[-20:], right=right))
            parts.append(plot_html(self))
        if self.parking:
            parts.append("<p><b>Idle parking</b> (Runpod: 3 days without requests: max workers 2; 7 days: 0)</p>")
            parts.append(
                html_table(
                    ["endpoint", "last request (UTC)", "days to max 2", "days to max 0", "warning"],
                    [
                        [
                            p.endpoint,
                            f"{p.last_request_at:%Y-%m-%d %H:%M}",
                            *(f"{left:.1f}" for _, left in p.days_left()),
                            p.warning or "",
                        ]
                        for p in self.parking
                    ],
                    right={2, 3},
                )
            )
        return "".join(parts)


def history_report(
    runs: Sequence[HistoryRun],
    *,
    window: int = DEFAULT_WINDOW,
    min_runs: int = DEFAULT_MIN_RUNS,
    thresholds: Mapping[str, Threshold] | None = None,
) -> HistoryReport:
    """Regressions over the whole history and the figures worth showing (those some run has)."""
    limits = dict(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    flags = find_regressions(runs, window=window, min_runs=min_runs, thresholds=limits)
    shown = tuple(name for name in limits if any(r.figure(name) is not None for r in runs))
    return HistoryReport(list(runs), flags, shown, min_runs, parking_from_history(runs), limits, window)


def resolve_history_file(history_file: str = "") -> Path:
    """The history file a notebook means: the given path, else ``runs/history.sqlite`` of the
    project (the notebook runs in ``notebooks/``, ``rpbook run`` in the project folder)."""
    if history_file:
        return Path(history_file).expanduser()
    from rpbook.core.paths import history_file as default_history

    return default_history()


def report_for(
    history_file: str = "",
    *,
    target: str = "",
    window: int = DEFAULT_WINDOW,
    min_runs: int = DEFAULT_MIN_RUNS,
    thresholds: Mapping[str, Any] | None = None,
) -> HistoryReport:
    """The report of a history file (absent: an empty history), for one target or all of them;
    ``thresholds`` changes some default factors (``{"ttft_s": 2.0}``)."""
    runs = load_history(resolve_history_file(history_file))
    if target:
        runs = [r for r in runs if r.target == target]
    return history_report(runs, window=window, min_runs=min_runs, thresholds=parse_thresholds(thresholds or {}))


def plot_html(report: HistoryReport) -> str:
    """One PNG: a panel per figure over the runs, each run's band (the median of the runs before it
    and how far a value may move before it is flagged) shaded, flagged runs in red; figures not
    judged in local mode say so. Empty for fewer than two runs."""
    if len(report.runs) < 2 or not report.figures:
        return ""
    with _quiet_matplotlib():
        from matplotlib.figure import Figure

    names = report.figures
    fig = Figure(figsize=(WIDTH_IN, 1.5 * len(names) + 0.4))
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    flagged = {(f.run_dir, f.figure) for f in report.flags}
    for ax, name in zip(axes, names, strict=True):
        bands = [(i, b) for i, b in enumerate(report.bands(name)) if b is not None]
        if bands:
            xs = [i for i, _ in bands]
            ax.fill_between(
                xs,
                [max(0.0, b.low) for _, b in bands],
                [b.high for _, b in bands],
                step="mid",
                color=BAR,
                alpha=0.15,
                lw=0,
                label="band (not flagged inside)",
            )
            ax.plot(xs, [b.baseline for _, b in bands], color=BAR, lw=0.8, ls="--", drawstyle="steps-mid")
        points = [(i, r.figure(name), (r.run_dir, name) in flagged) for i, r in enumerate(report.runs)]
        points = [(i, v, bad) for i, v, bad in points if v is not None]
        ax.plot([i for i, _, _ in points], [v for _, v, _ in points], marker="o", markersize=4, color=BAR, lw=1)
        bad = [(i, v) for i, v, is_bad in points if is_bad]
        if bad:
            ax.scatter([i for i, _ in bad], [v for _, v in bad], s=70, color=FLAG_COLOR, zorder=3, label="regression")
        if bad or bands:
            ax.legend(fontsize=7, loc="upper left", frameon=False)
        label = f"{name}\n(not judged)" if name in report.not_judged else name
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    labels = [r.started_at[5:16].replace("T", " ") for r in report.runs]
    step = max(1, len(labels) // 8)
    axes[-1].set_xticks(range(0, len(labels), step), labels[::step], fontsize=7, rotation=30, ha="right")
    axes[0].set_title(
        "scheduled checks over time (shaded: the band of the runs before; red: flagged)", fontsize=10, loc="left"
    )
    alt = f"{len(report.runs)} runs; {len(report.flags)} flags: " + "; ".join(f.detail for f in report.flags[:5])
    return _png_img(fig, alt)
