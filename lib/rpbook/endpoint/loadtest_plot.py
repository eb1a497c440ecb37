"""Plots of a load test: latency CDFs, requests in flight against workers, TTFT against concurrency."""

from __future__ import annotations

from typing import Any

import numpy as np

from rpbook.core.pending import Skipped
from rpbook.core.plots import Chart, new_figure
from rpbook.endpoint.loadtest_result import LoadTestResult


def plot(result: LoadTestResult | Skipped, pings_s: list[float] | None = None) -> Any:
    """Latency CDFs, requests in flight against workers over time (``/health`` samples), and TTFT
    against the concurrency each request met. ``pings_s`` (keep-alive pings, seconds since the
    run started) are drawn as markers so they are told apart from real traffic. A skipped run
    prints its line and draws nothing."""
    if not isinstance(result, LoadTestResult):
        print(result)
        return None

    ok = [r for r in result.measured if not r.error]
    fig, axes = new_figure(14, 3.8, 3)
    ax = axes[0]
    for label, values in (
        ("TTFT", [r.ttft_s for r in ok]),
        ("ITL", [x for r in ok for x in r.itl_s]),
        ("E2EL", [r.e2el_s for r in ok]),
        ("queue delay", [r.queue_delay_s for r in ok]),
    ):
        clean = np.sort([v * 1000 for v in values if v is not None])
        if clean.size:
            ax.step(clean, np.arange(1, clean.size + 1) / clean.size, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of requests (CDF)")
    ax.set_title("latency CDFs")
    ax.legend()

    ax = axes[1]
    events = sorted(
        [(r.sent_s, 1) for r in result.requests] + [(r.sent_s + (r.e2el_s or 0.0), -1) for r in result.requests]
    )
    times, level, levels = [], 0, []
    for t, delta in events:
        level += delta
        times.append(t)
        levels.append(level)
    ax.step(times, levels, where="post", label="requests in flight (client)")
    if result.health:
        hs = result.health
        ax.step([h.t_s for h in hs], [h.ready for h in hs], where="post", label="workers ready (/health)")
        ax.step(
            [h.t_s for h in hs],
            [h.initializing for h in hs],
            where="post",
            label="workers initializing",
            linestyle="--",
        )
        ax.step([h.t_s for h in hs], [h.in_queue for h in hs], where="post", label="jobs in queue", linestyle=":")
    for t in pings_s or []:
        ax.axvline(t, color="gray", alpha=0.4, linewidth=1)
    ax.set_xlabel("seconds since start")
    ax.set_title("in flight vs workers")
    ax.legend(fontsize="small")

    ax = axes[2]
    pairs = [(r.concurrency_at_send, r.ttft_s * 1000) for r in ok if r.ttft_s is not None]
    if pairs:
        ax.scatter(*zip(*pairs, strict=True), s=8, alpha=0.6)
    ax.set_xlabel("requests in flight at send")
    ax.set_ylabel("TTFT (ms)")
    ax.set_title("TTFT vs concurrency")
    fig.tight_layout()
    return Chart(fig)
