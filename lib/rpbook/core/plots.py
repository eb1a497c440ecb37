"""Small plots inside rpbook's HTML reports, where a timeline or a comparison says more than numbers.

Each report draws at most one figure, with matplotlib's object API on the Agg canvas (no pyplot,
so no global figure is left open and nothing is shown twice), and embeds it as a PNG in the
report's own HTML: one output per report, which JupyterLab, papermill's executed notebooks and
the screenshots all show. matplotlib is imported only when a report is displayed.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

WIDTH_IN, DPI = 6.4, 100
BAR = "#4c72b0"
WAIT = "#c7cedb"


@contextmanager
def _quiet_matplotlib() -> Iterator[None]:
    """matplotlib's first import on a machine builds its font cache and logs every font it cannot
    read (e.g. "Failed to extract font properties from NotoColorEmoji.ttf") and "generated new
    fontManager"; the runpod SDK routes INFO logs to stderr, so a newcomer's first plot would come
    with red lines. Only errors get through while rpbook draws."""
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _png_img(fig: object, alt: str) -> str:  # fig: matplotlib.figure.Figure
    buffer = io.BytesIO()
    with _quiet_matplotlib():
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")  # type: ignore[attr-defined]
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="display:block;max-width:100%">'


def timeline_html(timeline: Mapping[str, float], total_s: float, title: str) -> str:
    """A wake-up as one horizontal lane per stage: the wait before it (light) and the moment it was
    reached (a mark), in seconds since the job was submitted; empty for fewer than two stages."""
    if len(timeline) < 2:
        return ""
    with _quiet_matplotlib():
        from matplotlib.figure import Figure

    stages = list(timeline)
    end = max(total_s, *timeline.values(), 1e-3)
    fig = Figure(figsize=(WIDTH_IN, 0.35 * len(stages) + 0.8))
    ax = fig.add_subplot()
    previous = 0.0
    for row, stage in enumerate(stages):
        at = timeline[stage]
        ax.barh(row, max(at - previous, end * 0.004), left=previous, color=WAIT, height=0.55)
        ax.plot([at], [row], marker="|", markersize=14, color=BAR, mew=2)
        ax.annotate(f"{at:.2f} s", (at, row), xytext=(6, -4), textcoords="offset points", fontsize=8)
        previous = max(previous, at)
    ax.set_yticks(range(len(stages)), stages, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, end * 1.18)
    ax.set_xlabel("seconds since the job was submitted", fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png_img(fig, f"{title}: " + ", ".join(f"{s} {t:.2f} s" for s, t in timeline.items()))


def latency_bars_html(latencies: Sequence[tuple[str, float]], title: str) -> str:
    """One bar per request kind (seconds), longest visible at a glance; empty for fewer than two."""
    if len(latencies) < 2:
        return ""
    with _quiet_matplotlib():
        from matplotlib.figure import Figure

    names = [name for name, _ in latencies]
    values = [seconds for _, seconds in latencies]
    fig = Figure(figsize=(WIDTH_IN, 0.32 * len(names) + 0.8))
    ax = fig.add_subplot()
    ax.barh(range(len(names)), values, color=BAR, height=0.6)
    for row, seconds in enumerate(values):
        ax.annotate(f"{seconds:.3f} s", (seconds, row), xytext=(4, -3), textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max([*values, 1e-3]) * 1.25)
    ax.set_xlabel("seconds", fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _png_img(fig, f"{title}: " + ", ".join(f"{n} {v:.3f} s" for n, v in latencies))


def pareto_html(
    rows: Sequence[Mapping[str, float | int | str | bool]],
    front: Sequence[Mapping[str, float | int | str | bool]],
    chosen: Mapping[str, float | int | str | bool],
    slo_p95_ttft_s: float,
    title: str,
) -> str:
    """Runbook 06: cost against p95 TTFT of every simulated setting (grey), the Pareto front (a
    line: no setting is both cheaper and faster), the SLO (dashed) and the chosen setting (ringed);
    empty for no rows."""
    if not rows:
        return ""
    with _quiet_matplotlib():
        from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, 3.6))
    ax = fig.add_subplot()
    ax.scatter(
        [float(r["cost_usd"]) for r in rows],
        [float(r["ttft_p95_s"]) for r in rows],
        s=14,
        color=WAIT,
        label="simulated setting",
    )
    fx = [float(r["cost_usd"]) for r in front]
    fy = [float(r["ttft_p95_s"]) for r in front]
    ax.plot(fx, fy, marker="o", markersize=4, color=BAR, label="Pareto front")
    cx, cy = float(chosen["cost_usd"]), float(chosen["ttft_p95_s"])
    ax.scatter([cx], [cy], s=140, facecolors="none", edgecolors="#c44e52", linewidths=2, label="chosen", zorder=5)
    ax.annotate(
        f"max {chosen['workers_max']}, active {chosen['workers_min']}, idle {chosen['idle_timeout_s']:g} s",
        (cx, cy),
        xytext=(8, 8),
        textcoords="offset points",
        fontsize=8,
    )
    ax.axhline(slo_p95_ttft_s, color="#c44e52", linestyle="--", linewidth=1, label=f"SLO p95 TTFT {slo_p95_ttft_s:g} s")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    def two_and_five(value: float, _: object) -> str:
        # minor ticks labelled at 2 and 5 only (0.2, 0.5, 2, 5...): readable, not a column of digits
        return f"{value:g}" if value > 0 and f"{value:.0e}"[0] in "25" else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.2, 2, 30 rather than 2×10⁻¹
    ax.yaxis.set_minor_formatter(FuncFormatter(two_and_five))
    ax.tick_params(axis="y", which="both", labelsize=8)
    ax.set_xlabel("cost of the event (USD)", fontsize=9)
    ax.set_ylabel("p95 time to first token (s)", fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png_img(fig, f"{title}: {len(rows)} settings; chosen ${cx:,.2f} at p95 TTFT {cy:.2f} s")


def event_timeline_html(
    t_s: Sequence[float],
    queued: Sequence[float],
    running: Sequence[float],
    starting: Sequence[float],
    cost_usd: Sequence[float],
    title: str,
) -> str:
    """Runbook 06: requests waiting, workers running and starting (top) and the money spent so far
    (bottom) over the event, for the chosen setting; empty for fewer than two samples."""
    if len(t_s) < 2:
        return ""
    with _quiet_matplotlib():
        from matplotlib.figure import Figure

    minutes = [t / 60 for t in t_s]
    fig = Figure(figsize=(WIDTH_IN, 4.2))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.step(minutes, queued, where="post", color="#c44e52", label="requests waiting")
    top.step(minutes, running, where="post", color=BAR, label="workers running")
    top.step(minutes, starting, where="post", color="#dd8452", linestyle="--", label="workers starting")
    top.set_ylabel("count", fontsize=9)
    top.set_title(title, fontsize=10, loc="left")
    top.legend(fontsize=8)
    bottom.plot(minutes, cost_usd, color="#55a868")
    bottom.set_ylabel("USD so far", fontsize=9)
    bottom.set_xlabel("minutes since the event started", fontsize=9)
    for ax in (top, bottom):
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _png_img(
        fig, f"{title}: peak {max(queued):.0f} waiting, {max(running):.0f} workers, ${cost_usd[-1]:,.2f} in all"
    )


class Chart:
    """A matplotlib figure drawn with the object API (no pyplot: no global figure left open, nothing
    shown twice) that a notebook shows as one PNG, its cell's result."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure

    def png(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def __repr__(self) -> str:
        return f"<chart: {len(self.figure.axes)} plot(s)>"


def new_figure(width_in: float, height_in: float, columns: int, **kw: Any) -> tuple[Any, Any]:
    """A figure with ``columns`` side-by-side axes, matplotlib's INFO logs (font cache) kept quiet."""
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in))
    return figure, figure.subplots(1, columns, **kw)
