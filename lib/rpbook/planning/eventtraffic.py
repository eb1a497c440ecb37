"""When requests arrive during an event: from a description, a load-test result or a trace.

Three sources, one result (:class:`Arrivals`: sorted arrival times plus prompt and answer tokens
per request), so the planner (``rpbook.planning.eventchoice``) does not care where traffic came from:

- **An event description** (:class:`EventShape`): attendees, duration, the share of attendees in a
  conversation at the peak, turns per conversation, think time, prompt and answer tokens.
  *Shape*: the number of open conversations follows a **trapezoid**: it ramps up linearly over
  ``ramp_up_s`` (people arrive, open the notebook, the first exercise starts), holds a plateau of
  ``attendees × peak_share`` conversations, and ramps down over ``ramp_down_s`` (people finish
  and leave). A trapezoid because a workshop has a start and an end that everybody shares but
  nobody starts on the same second; a flat line would hide the scale-up at the start (where cold
  starts hurt) and a bell curve has no plateau to size for. The shape is an assumption, not a
  measurement; change the ramps when you know better.
  *Conversations*: start as a Poisson process whose rate follows the trapezoid, scaled so that the
  open conversations reach the plateau (Little's law: open = start rate × conversation length). A
  conversation is ``turns`` requests; between two turns the user waits for the answer (its
  expected duration, ``answer_s``) and thinks (exponential, mean ``think_time_s``). Turns are
  therefore correlated, as in a real chat, and not independent Poisson arrivals.
  *Open loop*: arrival times do not depend on how fast the endpoint answers. When the endpoint is
  overloaded, real users would send fewer requests (they wait), so the plan is pessimistic there,
  which is the safe side for sizing.
  *Tokens*: prompt and answer tokens per request are lognormal around the stated means (sigma
  0.5: an assumption; a chat mixes short and long questions).
- **A load-test result** (runbook 05's ``05_loadtest.json``, :mod:`rpbook.endpoint.loadtest`): the send
  times of its measured requests (warm-up left out), with their output tokens.
- **A trace**: a CSV of arrival times, one per row (seconds, or ISO 8601 date-times), optionally
  with ``prompt_tokens`` and ``answer_tokens`` columns.

Every random draw goes through ``numpy.random.default_rng(seed)``: the same seed gives the same
requests.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from rpbook.core.errors import ConfigError

TOKEN_SIGMA = 0.5
"""Spread (sigma of the log) of prompt and answer tokens around their means: an assumption."""


@dataclass(frozen=True)
class Arrivals:
    """One event's requests, sorted by arrival (seconds from the event's start)."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    answer_tokens: np.ndarray
    duration_s: float
    """How long the event lasts (the simulation runs at least this long)."""
    source: str
    """Where the traffic came from, in words (shown in the runbook)."""

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if len(self.prompt_tokens) != n or len(self.answer_tokens) != n:
            raise ConfigError("arrivals: prompt_tokens and answer_tokens need one value per arrival")
        if n and np.any(np.diff(self.arrival_s) < 0):
            raise ConfigError("arrivals must be sorted by time")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def peak_rate_per_s(self, window_s: float = 60.0) -> float:
        """The highest request rate over any ``window_s`` window (requests per second)."""
        if len(self) == 0:
            return 0.0
        ends = np.searchsorted(self.arrival_s, self.arrival_s + window_s, side="left")
        return float(np.max(ends - np.arange(len(self)))) / window_s

    def rate_series(self, step_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
        """Requests per second in consecutive ``step_s`` bins: (bin starts, rates)."""
        edges = np.arange(0.0, max(self.duration_s, step_s) + step_s, step_s)
        counts, _ = np.histogram(self.arrival_s, bins=edges)
        return edges[:-1], counts / step_s

    def describe(self) -> str:
        return (
            f"{len(self):,} requests over {self.duration_s / 60:.0f} min ({self.source}); peak "
            f"{self.peak_rate_per_s():.2f} req/s over a minute; mean prompt "
            f"{np.mean(self.prompt_tokens) if len(self) else 0:.0f} tokens, mean answer "
            f"{np.mean(self.answer_tokens) if len(self) else 0:.0f} tokens"
        )

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class EventShape:
    """An event as its organiser describes it (see the module docstring for the shape and why)."""

    attendees: int = 300
    duration_s: float = 7200.0
    peak_share: float = 1 / 3
    """Share of attendees in a conversation at the peak."""
    ramp_up_s: float = 900.0
    ramp_down_s: float = 900.0
    turns: int = 6
    """Requests per conversation."""
    think_time_s: float = 30.0
    """Mean pause between reading an answer and sending the next turn."""
    answer_s: float = 5.0
    """Expected time a user waits for an answer (TTFT + streaming), between turns."""
    prompt_tokens: int = 400
    answer_tokens: int = 250

    def __post_init__(self) -> None:
        checks = [
            ("attendees", self.attendees >= 1, "at least 1"),
            ("duration_s", self.duration_s > 0, "positive"),
            ("peak_share", 0 < self.peak_share <= 1, "between 0 (excluded) and 1"),
            ("ramp_up_s", self.ramp_up_s >= 0, ">= 0"),
            ("ramp_down_s", self.ramp_down_s >= 0, ">= 0"),
            (
                "ramps",
                self.ramp_up_s + self.ramp_down_s <= self.duration_s,
                "ramp_up_s + ramp_down_s at most duration_s",
            ),
            ("turns", self.turns >= 1, "at least 1"),
            ("think_time_s", self.think_time_s >= 0, ">= 0"),
            ("answer_s", self.answer_s >= 0, ">= 0"),
            ("prompt_tokens", self.prompt_tokens >= 1, "at least 1"),
            ("answer_tokens", self.answer_tokens >= 1, "at least 1"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ConfigError(f"event: {name} must be {what}, got {getattr(self, name, None)!r}")

    @property
    def peak_conversations(self) -> float:
        return self.attendees * self.peak_share

    @property
    def turn_cycle_s(self) -> float:
        """One turn of a conversation: wait for the answer, then think."""
        return self.answer_s + self.think_time_s

    @property
    def conversation_s(self) -> float:
        return self.turns * self.turn_cycle_s

    @property
    def peak_rate_per_s(self) -> float:
        """Requests per second on the plateau: open conversations / turn cycle."""
        return self.peak_conversations / max(self.turn_cycle_s, 1e-9)

    def level(self, t: np.ndarray | float) -> np.ndarray:
        """The trapezoid, 0..1, at time ``t`` (seconds from the start)."""
        t = np.asarray(t, dtype=float)
        up = np.clip(t / self.ramp_up_s, 0, 1) if self.ramp_up_s > 0 else (t >= 0).astype(float)
        down_start = self.duration_s - self.ramp_down_s
        down = (
            np.clip((self.duration_s - t) / self.ramp_down_s, 0, 1)
            if self.ramp_down_s > 0
            else (t < self.duration_s).astype(float)
        )
        inside = (t >= 0) & (t < self.duration_s)
        return np.where(inside, np.minimum(up, np.where(t >= down_start, down, 1.0)), 0.0)

    def describe(self) -> str:
        return (
            f"{self.attendees} attendees, {self.duration_s / 3600:g} h, {self.peak_share:.0%} in a conversation "
            f"at the peak ({self.peak_conversations:.0f} conversations); {self.turns} turns each, "
            f"{self.think_time_s:g} s think time: about {self.peak_rate_per_s:.2f} requests/s on the plateau; "
            f"ramps {self.ramp_up_s / 60:g} min up, {self.ramp_down_s / 60:g} min down"
        )


def _tokens(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """Lognormal integers with the given mean (sigma ``TOKEN_SIGMA``), at least 1."""
    mu = math.log(mean) - TOKEN_SIGMA**2 / 2
    return np.maximum(1, np.rint(rng.lognormal(mu, TOKEN_SIGMA, n))).astype(np.int64)


def from_event(event: EventShape, *, seed: int = 0) -> Arrivals:
    """Requests of an event: conversations started on the trapezoid, turns spaced by think time."""
    rng = np.random.default_rng(seed)
    # Start rate at level 1: open conversations = start rate x conversation length (Little's law).
    start_rate = event.peak_conversations / max(event.conversation_s, 1e-9)
    # Thinning of a Poisson process with rate start_rate * level(t); conversations only start while
    # there is time left for them to matter (they may run past the end: ramps cover that).
    horizon = event.duration_s
    expected = start_rate * horizon
    candidates = rng.uniform(0.0, horizon, rng.poisson(expected)) if expected > 0 else np.empty(0)
    candidates.sort()
    # Start later so that the *open conversations* (not the starts) follow the trapezoid: shift the
    # level by half a conversation, the lag Little's law gives a conversation started at t.
    keep = rng.uniform(0.0, 1.0, candidates.size) < event.level(candidates + event.conversation_s / 2)
    starts = candidates[keep]
    if starts.size == 0:
        raise ConfigError(f"event: no conversation starts ({event.describe()}); raise attendees or peak_share")
    gaps = (
        event.answer_s + rng.exponential(event.think_time_s, (starts.size, event.turns))
        if event.think_time_s > 0
        else np.full((starts.size, event.turns), event.answer_s)
    )
    gaps[:, 0] = 0.0
    times = (starts[:, None] + np.cumsum(gaps, axis=1)).ravel()
    times = np.sort(times[times < event.duration_s])
    n = times.size
    return Arrivals(
        times,
        _tokens(rng, event.prompt_tokens, n),
        _tokens(rng, event.answer_tokens, n),
        event.duration_s,
        f"event: {event.describe()}; seed {seed}",
    )


def from_loadtest(path: str | Path, *, repeat_to_s: float | None = None) -> Arrivals:
    """Requests of runbook 05's load test (``<name>.json`` written by ``rpbook.endpoint.loadtest``): the
    send times of its measured requests, shifted to start at 0, with their output tokens (prompt
    tokens are not recorded there: 0). ``repeat_to_s`` tiles the pattern until that many seconds."""
    data = _read_json(path)
    rows = [r for r in data.get("requests", []) if not r.get("warmup")]
    if not rows:
        raise ConfigError(f"{path}: the load test has no measured requests; run runbook 05's load test first")
    sent = np.array(sorted(float(r["sent_s"]) for r in rows))
    order = np.argsort([float(r["sent_s"]) for r in rows], kind="stable")
    answers = np.array([max(1, int(rows[i].get("output_tokens") or data.get("max_tokens") or 1)) for i in order])
    sent -= sent[0]
    ends = [float(r["sent_s"]) + float(r.get("e2el_s") or 0.0) for r in rows]
    span = max(max(ends) - min(float(r["sent_s"]) for r in rows), float(sent[-1]), 1e-3)
    source = f"load test {Path(path).name}: {len(rows)} requests in {span:.1f} s"
    if repeat_to_s and repeat_to_s > span:
        copies = math.ceil(repeat_to_s / span)
        sent = np.concatenate([sent + k * span for k in range(copies)])
        answers = np.tile(answers, copies)
        keep = sent < repeat_to_s
        sent, answers = sent[keep], answers[keep]
        span = float(repeat_to_s)
        source += f", repeated to {repeat_to_s:g} s"
    return Arrivals(sent, np.zeros(sent.size, dtype=np.int64), answers, span, source)


def from_trace(
    path: str | Path, *, column: str | None = None, prompt_tokens: int = 400, answer_tokens: int = 250, seed: int = 0
) -> Arrivals:
    """Requests from a CSV of arrival times (seconds, or ISO 8601 date-times taken relative to the
    first). The times are read from ``column``, else ``arrival_s``, ``t_s``, ``time`` or
    ``timestamp``, else the first column. ``prompt_tokens`` / ``answer_tokens`` columns are used
    when present; otherwise tokens are drawn around the given means (seeded)."""
    file = Path(path)
    try:
        with file.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise ConfigError(f"trace file {file} does not exist") from None
    if not rows:
        raise ConfigError(f"trace file {file} has no rows (expected a header and one arrival time per row)")
    names = list(rows[0])
    name = column or next((c for c in ("arrival_s", "t_s", "time", "timestamp") if c in names), names[0])
    if name not in names:
        raise ConfigError(f"trace file {file} has no column {name!r}; columns: {', '.join(names)}")
    times = np.array([_seconds(row[name], file, i + 2) for i, row in enumerate(rows)])
    order = np.argsort(times, kind="stable")
    times = times[order] - times[order][0]
    rng = np.random.default_rng(seed)

    def tokens(col: str, mean: int) -> np.ndarray:
        if col in names:
            return np.array([max(1, int(float(rows[i][col]))) for i in order], dtype=np.int64)
        return _tokens(rng, mean, times.size)

    duration = float(times[-1]) if times.size > 1 else 1.0
    return Arrivals(
        times,
        tokens("prompt_tokens", prompt_tokens),
        tokens("answer_tokens", answer_tokens),
        duration,
        f"trace {file.name}: {times.size} arrivals",
    )


def _seconds(raw: str, file: Path, line: int) -> float:
    text = (raw or "").strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ConfigError(f"{file} line {line}: {text!r} is neither seconds nor an ISO 8601 date-time") from None


def _read_json(path: str | Path) -> dict[str, Any]:
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"load-test result {file} does not exist; run runbook 05 (it writes 05_loadtest.json "
            "beside its executed notebook)"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"load-test result {file} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"load-test result {file} is not a JSON object as rpbook.endpoint.loadtest writes it")
    return data
