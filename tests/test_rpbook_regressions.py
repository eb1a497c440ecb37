"""Regression flags that do not cry wolf (issue 18 item 1): ``rpbook.records.history``'s rule on
synthetic series, no timing. Healthy runs with the noise of real checks (cold starts ±20 % and an
occasional slow one, TTFT ±25 %, tokens/s down to a third on a busy machine) raise no flag;
a cold start ×2, a FlashBoot hit lost and TTFT ×3 are flagged on the first bad run.

The noise is seeded (``random.Random``), so every series is the same on every machine; several seeds
are tried so the rule, not one lucky series, is what passes.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import nbformat
import pytest

from rpbook.records.history import (
    DEFAULT_MIN_RUNS,
    DEFAULT_THRESHOLDS,
    NOISE_SPREADS,
    HistoryRun,
    find_regressions,
    latest_regressions,
    robust_spread,
)
from rpbook.records.history_report import history_report, plot_html

SEEDS = range(25)
HEALTHY_RUNS = 30
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "07_health_history.ipynb"


def healthy(rng: random.Random, target: str) -> dict[str, float]:
    """One healthy check's figures. Runpod: a 7B cold start of ~90 s (±12 %, one in ten 25 % slower,
    as a busy host or a slower pull gives), TTFT ~0.2 s ±25 % (one streamed request through Runpod's
    proxy), ~40 tokens/s, a cost of the worker's billed seconds (cold start, checks, idle timeout).
    Local: localpod's fast profile on a shared machine (cold start ~1.5 s, TTFT ~0.02 s, tokens/s
    anywhere from a third to all of 1,600)."""
    slow = 1.25 if rng.random() < 0.1 else 1.0
    if target == "runpod":
        wake = 90.0 * rng.lognormvariate(0, 0.12) * slow
        figures = {
            "wake_total_s": wake,
            "delay_time_ms": 1000 * (wake - 1.0),
            "ttft_s": 0.2 * rng.lognormvariate(0, 0.25),
            "tokens_per_s": 40.0 * rng.lognormvariate(0, 0.08),
            "cost_usd": 0.00019 * (wake + 10.0 + 120.0),  # billed: cold start, checks, 120 s idle timeout
        }
    else:
        wake = 1.5 * rng.lognormvariate(0, 0.3) * slow
        figures = {
            "wake_total_s": wake,
            "delay_time_ms": 1000 * wake,
            "ttft_s": 0.02 * rng.lognormvariate(0, 0.8),
            "tokens_per_s": 1600.0 * rng.uniform(0.33, 1.0),
            "embeddings_per_s": 400.0 * rng.uniform(0.33, 1.0),
        }
    return {**figures, "cold": 1.0}


def run(index: int, figures: dict[str, float], target: str) -> HistoryRun:
    when = f"2026-{10 + index // 28:02d}-{index % 28 + 1:02d}T06:00:00+00:00"
    return HistoryRun(f"runs/{index:03d}", when, when, target, True, figures.get("cost_usd"), {}, 5, figures)


def series(seed: int, target: str, count: int = HEALTHY_RUNS) -> list[HistoryRun]:
    rng = random.Random(seed)
    return [run(i, healthy(rng, target), target) for i in range(count)]


@pytest.mark.parametrize("target", ["runpod", "local"])
def test_thirty_healthy_noisy_runs_raise_no_flag(target):
    for seed in SEEDS:
        flags = find_regressions(series(seed, target))
        assert flags == [], (seed, [f.detail for f in flags])


def _then(history: list[HistoryRun], figures: dict[str, float]) -> list[HistoryRun]:
    target = history[-1].target
    return [*history, run(len(history), {**history[-1].figures, **figures}, target)]


def test_a_cold_start_twice_as_slow_is_flagged_on_the_first_bad_run():
    for seed in SEEDS:
        history = series(seed, "runpod")
        median = sorted(r.figures["wake_total_s"] for r in history[-10:])[5]
        bad = _then(history, {"wake_total_s": 2 * median, "delay_time_ms": 2000 * median})
        latest = {f.figure for f in latest_regressions(bad, find_regressions(bad))}
        assert {"wake_total_s", "delay_time_ms"} <= latest, seed


def test_a_lost_flashboot_hit_is_flagged_on_the_first_cold_run():
    for seed in SEEDS:
        history = [
            run(i, {**r.figures, "cold": 0.0, "wake_total_s": 0.4, "delay_time_ms": 300.0}, "runpod")
            for i, r in enumerate(series(seed, "runpod"))
        ]
        bad = _then(history, {"cold": 1.0, "wake_total_s": 95.0, "delay_time_ms": 94000.0})
        flags = latest_regressions(bad, find_regressions(bad))
        assert [f.figure for f in flags] == ["cold"], seed
        assert "were warm" in flags[0].detail


@pytest.mark.parametrize("target", ["runpod", "local"])
def test_ttft_three_times_slower_is_flagged_on_the_first_bad_run(target):
    """On Runpod TTFT ×3 of ~0.2 s; in local mode localpod's injected TTFT raised to 1 s (a run of
    the injected regression the note measures): both beyond the 0.25 s floor and the noise."""
    for seed in SEEDS:
        history = series(seed, target)
        median = sorted(r.figures["ttft_s"] for r in history[-10:])[5]
        bad = _then(history, {"ttft_s": 3 * median if target == "runpod" else 1.0})
        assert [f.figure for f in latest_regressions(bad, find_regressions(bad))] == ["ttft_s"], seed


def test_too_few_runs_are_not_judged_and_the_spread_is_robust():
    history = series(1, "runpod", DEFAULT_MIN_RUNS)
    bad = _then(history, {"wake_total_s": 1000.0})
    assert find_regressions(bad, min_runs=DEFAULT_MIN_RUNS + 1) == []
    assert find_regressions(bad) != []
    # one wild value barely moves the MAD (a standard deviation would triple)
    assert robust_spread([10, 11, 9, 10, 10, 11, 9]) == pytest.approx(1.4826)
    assert robust_spread([10, 11, 9, 10, 10, 11, 90]) == pytest.approx(1.4826)


def test_a_change_inside_the_noise_of_a_noisy_figure_is_not_flagged():
    """A figure whose recent runs swing widely needs more than its floor to be flagged."""
    values = [60, 100, 70, 110, 65, 105, 80]
    history = [run(i, {"wake_total_s": v, "cold": 1.0}, "runpod") for i, v in enumerate(values)]
    spread = robust_spread([float(v) for v in values])
    inside = _then(history, {"wake_total_s": 80 + 0.9 * NOISE_SPREADS * spread})
    assert latest_regressions(inside, find_regressions(inside)) == []
    outside = _then(history, {"wake_total_s": 80 + 1.1 * NOISE_SPREADS * spread})
    assert [f.figure for f in latest_regressions(outside, find_regressions(outside))] == ["wake_total_s"]


def test_the_plot_shades_each_figures_band():
    report = history_report(_then(series(3, "local"), {"ttft_s": 1.0}))
    bands = report.bands("ttft_s")
    assert bands[:DEFAULT_MIN_RUNS] == [None] * DEFAULT_MIN_RUNS and all(bands[DEFAULT_MIN_RUNS:])
    assert bands[-1].low <= bands[-1].baseline < bands[-1].high < 1.0
    assert report.regressed and plot_html(report).startswith("<img")


def test_runbook_07_tables_the_rule_of_every_figure():
    """The markdown table of runbook 07 says what counts as a regression for each figure, with
    the same floors as DEFAULT_THRESHOLDS (so the two cannot drift apart)."""
    text = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "markdown")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", text, re.MULTILINE)}
    assert set(DEFAULT_THRESHOLDS) | {"cold"} <= set(rows)
    for name, limit in DEFAULT_THRESHOLDS.items():
        cells = [c.strip() for c in rows[name].strip("|").split("|")]
        assert f"×{limit.factor:g}" in cells[2] or f"÷{limit.factor:g}" in cells[2], rows[name]
        assert f"{limit.min_delta:g}" in cells[3], rows[name]
        assert ("not judged" in cells[4]) == limit.machine_bound, rows[name]
    assert f"{NOISE_SPREADS:g} robust spreads" in text and f"`min_runs` ({DEFAULT_MIN_RUNS})" in text


def test_over_many_series_false_alarms_are_rare_and_no_regression_is_missed():
    """The same noise over 150 seeds per target (9,000 healthy runs): at most one flagged run in
    500 (a daily check: one false alarm in well over a year), and every cold start ×2 and TTFT ×3
    after them is flagged. (A sweep of 300 seeds gave 16 flagged runs in 18,000, 0 missed.)"""
    seeds = range(150)
    false_alarms = sum(
        len({f.run_dir for f in find_regressions(series(s, t))}) for s in seeds for t in ("runpod", "local")
    )
    assert false_alarms <= 2 * len(seeds) * HEALTHY_RUNS / 500, false_alarms
    missed = 0
    for seed in seeds:
        history = series(seed, "runpod")
        for name, factor in (("wake_total_s", 2.0), ("ttft_s", 3.0)):
            median = sorted(r.figures[name] for r in history[-10:])[5]
            bad = _then(history, {name: factor * median})
            missed += name not in {f.figure for f in latest_regressions(bad, find_regressions(bad))}
    assert missed == 0
