"""A history of scheduled checks: every run's figures in one SQLite file, and its regressions.

A daily ``rpbook run`` answers "does it still work today?"; only a history answers "is it getting
worse?" (a cold start twice as slow after an image bump, a FlashBoot hit lost, a check that costs
more). So each run's figures (the ``*.figures.json`` its notebooks recorded) and its summary (when,
which target, ok or not, cost, image tags, worker count) are appended to a real database, SQLite in
WAL mode (readers such as runbook 07 never block the next run's writer), keyed by the run folder so
that appending the same run twice replaces it instead of counting it twice.

Regressions compare each run's key figures with the median of the runs before it (a median, not a
mean: one bad day must not move the baseline) and their robust spread (the MAD), and flag only a
change beyond the noise and beyond a per-figure floor (the rule is written out above
``NOISE_SPREADS``). Cold-start figures are compared only with earlier cold wake-ups (a warm wake
answers at once and would make every cold one look slow); figures that measure the machine running
the check (tokens/s through localpod) are not judged in local mode.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rpbook.core.errors import ConfigError
from rpbook.records.runfolder import read_summary, run_figures

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_dir     TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    ended_at    TEXT NOT NULL,
    target      TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    cost_usd    REAL,
    image_tags  TEXT NOT NULL,
    workers_max INTEGER
);
CREATE TABLE IF NOT EXISTS figures (
    run_dir  TEXT NOT NULL REFERENCES runs(run_dir) ON DELETE CASCADE,
    notebook TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    REAL,
    text     TEXT,
    PRIMARY KEY (run_dir, notebook, name)
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(started_at);
"""


@dataclass(frozen=True)
class HistoryRun:
    """One run as the history holds it; ``figures`` maps ``notebook/name`` to a number (bools as
    0/1) and ``texts`` the same for strings (endpoint ids, finish reasons)."""

    run_dir: str
    started_at: str
    ended_at: str
    target: str
    ok: bool
    cost_usd: float | None
    image_tags: dict[str, str]
    workers_max: int | None
    figures: dict[str, float] = field(default_factory=dict, hash=False)
    texts: dict[str, str] = field(default_factory=dict, hash=False)

    def figure(self, name: str) -> float | None:
        """A figure by its bare name (``ttft_s``) from whichever notebook recorded it, or by
        ``notebook/name``; ``cost_usd`` is the run's cost from its receipt."""
        if name == "cost_usd":
            return self.cost_usd
        if name in self.figures:
            return self.figures[name]
        for key, value in self.figures.items():
            if key.rsplit("/", 1)[-1] == name:
                return value
        return None


def connect(history_file: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the history database in WAL mode."""
    path = Path(history_file).expanduser()
    if path.is_dir():
        raise ConfigError(f"history file {path} is a folder; give a file such as runs/history.sqlite")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"{path} is not an rpbook history (SQLite said: {exc}); give another --history file"
        ) from None
    return db


def _run_figures(run_dir: Path) -> list[tuple[str, str, float | None, str | None]]:
    """The run's figures as (notebook, name, number, text) rows; other values are not kept."""
    rows: list[tuple[str, str, float | None, str | None]] = []
    for notebook, data in run_figures(run_dir).items():
        for name, value in data.items():
            if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
                rows.append((notebook, str(name), float(value), None))
            elif isinstance(value, str):
                rows.append((notebook, str(name), None, value))
    return rows


def append_run(history_file: str | Path, run_dir: str | Path) -> HistoryRun:
    """Add the run in ``run_dir`` (its ``summary.json`` and figures) to the history, replacing an
    earlier copy of the same run (``rpbook receipt`` then append again updates its cost)."""
    folder = Path(run_dir)
    summary = read_summary(folder)
    parameters = summary.get("parameters") or {}
    receipt = summary.get("receipt") or {}
    # the run's own workers' cost (``rpbook.records.runcost``), not its billing buckets' total, which
    # includes every other run in the same hours; older receipts have only the total
    cost = receipt.get("run_usd", receipt.get("total_usd")) if isinstance(receipt, dict) else None
    tags = {k: str(v) for k, v in parameters.items() if k.endswith("image_tag")}
    workers = parameters.get("workers_max")
    key = str(folder.resolve())
    started = str(summary.get("started_at") or "")
    if not started:
        raise ConfigError(f"{folder}/summary.json has no started_at: it was not written by `rpbook run`")
    with closing(connect(history_file)) as db, db:
        db.execute("DELETE FROM runs WHERE run_dir = ?", (key,))
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                started,
                str(summary.get("ended_at") or started),
                str(parameters.get("target", "local")),
                int(bool(summary.get("ok"))),
                float(cost) if isinstance(cost, (int, float)) else None,
                json.dumps(tags, sort_keys=True),
                int(workers) if isinstance(workers, int) else None,
            ),
        )
        db.executemany(
            "INSERT INTO figures VALUES (?, ?, ?, ?, ?)",
            [(key, nb, name, value, text) for nb, name, value, text in _run_figures(folder)],
        )
    return next(r for r in load_history(history_file) if r.run_dir == key)


def load_history(history_file: str | Path) -> list[HistoryRun]:
    """Every run in the history, oldest first; an absent file is an empty history."""
    if not Path(history_file).expanduser().exists():
        return []
    with closing(connect(history_file)) as db:
        runs = db.execute(
            "SELECT run_dir, started_at, ended_at, target, ok, cost_usd, image_tags, workers_max "
            "FROM runs ORDER BY started_at, run_dir"
        ).fetchall()
        figures: dict[str, dict[str, float]] = {}
        texts: dict[str, dict[str, str]] = {}
        for run_dir, notebook, name, value, text in db.execute(
            "SELECT run_dir, notebook, name, value, text FROM figures"
        ):
            if value is not None:
                figures.setdefault(run_dir, {})[f"{notebook}/{name}"] = value
            elif text is not None:
                texts.setdefault(run_dir, {})[f"{notebook}/{name}"] = text
    return [
        HistoryRun(
            r[0], r[1], r[2], r[3], bool(r[4]), r[5], json.loads(r[6]), r[7], figures.get(r[0], {}), texts.get(r[0], {})
        )
        for r in runs
    ]


# -- regressions -----------------------------------------------------------------------------------
#
# The rule (runbook 07's table shows it per figure). A figure of a run is judged against the runs
# before it, of the same target, that passed, at most ``window`` of them (cold-start figures: only
# earlier cold wake-ups). It is judged only when ``min_runs`` earlier values exist. The baseline is
# their median; the noise is their spread, 1.4826 × the median absolute deviation (MAD), which
# equals the standard deviation for normal noise and ignores a few wild values (NIST/SEMATECH
# e-Handbook 1.3.5.17; Leys et al. 2013, "Detecting outliers: do not use standard deviation around
# the mean, use absolute deviation around the median", who call 3 MADs very conservative; rpbook
# takes NOISE_SPREADS = 3, with the floors below as a second guard). A figure regressed when it is
# worse than the baseline by more than all three of:
#   - NOISE_SPREADS × the spread (the recent runs' own noise),
#   - the figure's relative floor (``factor``: 1.5 = 50 % worse; for lower-is-worse figures,
#     baseline / factor),
#   - the figure's absolute floor (``min_delta``, in its own unit).
# Figures that mostly measure the machine running the check (``machine_bound``: tokens/s and
# embeddings/s through localpod, where the "GPU" is this machine's CPU shared with everything else)
# are shown with their band but left out of the verdict in local mode.

NOISE_SPREADS = 3.0
"""How many robust spreads (1.4826 × MAD) a change must exceed to be more than noise."""
MAD_TO_SIGMA = 1.4826
DEFAULT_WINDOW = 10
DEFAULT_MIN_RUNS = 5
"""Earlier runs a figure needs before it is judged: with fewer, a median and a MAD say little."""


@dataclass(frozen=True)
class Threshold:
    """When a figure has regressed (see the rule above): worse than ``factor`` times the baseline
    (divided by it when lower is worse), by at least ``min_delta`` in its own unit (a 10 ms TTFT
    becoming 20 ms is jitter), and by more than ``NOISE_SPREADS`` robust spreads of the recent runs."""

    factor: float
    min_delta: float = 0.0
    higher_is_worse: bool = True
    cold_only: bool = False
    """Compare only cold wake-ups with cold wake-ups."""
    machine_bound: bool = False
    """In local mode the figure measures this machine more than the endpoint: shown, not judged."""
    meaning: str = ""
    """What a regression of this figure usually means (runbook 07's table)."""

    def allowed_change(self, baseline: float, spread: float) -> float:
        """How far (in the figure's unit, in the bad direction) a value may move from ``baseline``
        before it is a regression: the largest of the three floors."""
        relative = baseline * (self.factor - 1) if self.higher_is_worse else baseline * (1 - 1 / self.factor)
        return max(NOISE_SPREADS * spread, abs(relative), self.min_delta)

    def judged(self, target: str) -> bool:
        """Whether runs of ``target`` are judged on this figure (machine-bound ones not in local mode)."""
        return not (self.machine_bound and target == "local")


DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    "wake_total_s": Threshold(
        1.75, 5.0, cold_only=True, meaning="slower cold start: a bigger image or model, no cached weights, a slow pool"
    ),
    "delay_time_ms": Threshold(
        1.75, 5000.0, cold_only=True, meaning="Runpod's own queue wait of the wake-up job, cold start included"
    ),
    "ttft_s": Threshold(2.5, 0.25, meaning="slower first token: engine settings, a smaller GPU, a busier worker"),
    "tokens_per_s": Threshold(
        1.5, 5.0, higher_is_worse=False, machine_bound=True, meaning="slower generation (a smaller GPU, new engine)"
    ),
    "embeddings_per_s": Threshold(
        1.5, 5.0, higher_is_worse=False, machine_bound=True, meaning="slower embeddings (a smaller GPU, new image)"
    ),
    "cost_usd": Threshold(1.5, 0.01, meaning="the check costs more: workers stay up longer or start more often"),
}
"""Cold start x1.75 and at least 5 s slower (a real one takes a minute or two and varies by a fifth
from host to host; seconds of jitter on a busy machine are not a regression), TTFT x2.5 and 0.25 s
(one request's TTFT through Runpod's proxy varies by a quarter), throughput down by a third, cost x1.5 (and a
cent); every change also beyond 3 robust spreads of the recent runs."""


@dataclass(frozen=True)
class Band:
    """What a figure of one run was judged against: the baseline and how far it could move."""

    baseline: float
    spread: float
    allowed: float
    higher_is_worse: bool
    runs: int

    @property
    def low(self) -> float:
        return self.baseline - (0.0 if self.higher_is_worse else self.allowed)

    @property
    def high(self) -> float:
        return self.baseline + (self.allowed if self.higher_is_worse else 0.0)


@dataclass(frozen=True)
class Flag:
    run_dir: str
    started_at: str
    figure: str
    value: float
    baseline: float
    detail: str


def _cold(run: HistoryRun) -> bool | None:
    value = run.figure("cold")
    return None if value is None else bool(value)


def robust_spread(values: Sequence[float]) -> float:
    """1.4826 × the median absolute deviation: the standard deviation of normal noise, robust to a
    few wild values."""
    center = statistics.median(values)
    return MAD_TO_SIGMA * statistics.median(abs(v - center) for v in values)


def band_for(
    runs: Sequence[HistoryRun],
    index: int,
    name: str,
    limit: Threshold,
    *,
    window: int = DEFAULT_WINDOW,
    min_runs: int = DEFAULT_MIN_RUNS,
) -> Band | None:
    """The band run ``index`` is judged in for figure ``name``, or None when it is not judged
    (too few earlier runs, or a cold-start figure of a warm wake-up)."""
    run = runs[index]
    earlier = [r for r in runs[:index] if r.ok and r.target == run.target]
    if limit.cold_only:
        if _cold(run) is not True:
            return None
        earlier = [r for r in earlier if _cold(r) is True]
    values = [v for v in (r.figure(name) for r in earlier) if v is not None][-window:]
    if len(values) < min_runs:
        return None
    baseline = statistics.median(values)
    spread = robust_spread(values)
    return Band(baseline, spread, limit.allowed_change(baseline, spread), limit.higher_is_worse, len(values))


def find_regressions(
    runs: Sequence[HistoryRun],
    *,
    window: int = DEFAULT_WINDOW,
    min_runs: int = DEFAULT_MIN_RUNS,
    thresholds: Mapping[str, Threshold] | None = None,
) -> list[Flag]:
    """Flags for every run whose figures moved beyond their band (the rule above). A FlashBoot hit
    lost is a cold wake-up where most of the ``min_runs`` or more earlier runs were warm."""
    if window < 1 or min_runs < 1:
        raise ConfigError(f"window ({window}) and min_runs ({min_runs}) must be at least 1")
    limits = dict(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    flags: list[Flag] = []
    for index, run in enumerate(runs):
        for name, limit in limits.items():
            value = run.figure(name)
            if value is None or not limit.judged(run.target):
                continue
            band = band_for(runs, index, name, limit, window=window, min_runs=min_runs)
            if band is None:
                continue
            change = value - band.baseline if limit.higher_is_worse else band.baseline - value
            if change <= band.allowed:
                continue
            if band.baseline > 0:
                how = (
                    f"{value / band.baseline:.1f}x" if limit.higher_is_worse else f"down to {value / band.baseline:.0%}"
                )
            else:
                how = "up" if limit.higher_is_worse else "down"
            flags.append(
                Flag(
                    run.run_dir,
                    run.started_at,
                    name,
                    value,
                    band.baseline,
                    f"{name} {value:g} is {how} the median {band.baseline:g} of the {band.runs} runs before "
                    f"(noise band ±{band.allowed:.3g})",
                )
            )
        earlier = [r for r in runs[:index] if r.ok and r.target == run.target]
        states = [c for c in (_cold(r) for r in earlier[-window:]) if c is not None]
        if _cold(run) is True and len(states) >= min_runs and states.count(False) > len(states) / 2:
            flags.append(
                Flag(
                    run.run_dir,
                    run.started_at,
                    "cold",
                    1.0,
                    0.0,
                    f"cold start where {states.count(False)} of the {len(states)} runs before were warm "
                    "(a FlashBoot hit or an active worker lost?)",
                )
            )
    return flags


def latest_regressions(runs: Sequence[HistoryRun], flags: Sequence[Flag]) -> list[Flag]:
    """The flags of the newest run only: what a cron job or CI should fail on."""
    if not runs:
        return []
    return [f for f in flags if f.run_dir == runs[-1].run_dir]


def parse_thresholds(spec: Mapping[str, Any]) -> dict[str, Threshold]:
    """Defaults with some factors changed (``{"ttft_s": 2.0}``), as a notebook parameter gives them;
    a figure not in the defaults is compared higher-is-worse with no minimum change."""
    out = dict(DEFAULT_THRESHOLDS)
    for name, factor in spec.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1:
            raise ConfigError(f"threshold for {name!r} must be a factor above 1 (e.g. 1.5), got {factor!r}")
        base = out.get(name, Threshold(float(factor)))
        out[name] = replace(base, factor=float(factor))
    return out
