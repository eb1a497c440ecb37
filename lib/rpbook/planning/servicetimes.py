"""How long one request takes on a worker: measured by runbook 05, or a stated prior per GPU pool.

The planner's engine (``rpbook.planning.capacity``) takes a service time per request: the time to first
token once a slot is free (prefill, ``ttft_s``) and the whole service (``duration_s = ttft +
(answer tokens - 1) × TPOT``). This module draws them:

- **Measured** (:func:`from_loadtest`): runbook 05's ``05_loadtest.json`` (:mod:`rpbook.endpoint.loadtest`)
  holds every request's TTFT and TPOT (as ``vllm bench serve`` defines them) and the number of
  requests in flight when it was sent. Requests are grouped by that concurrency; cold ones (the
  simulator adds cold starts itself) and failed ones are left out. For an endpoint serving
  ``concurrency`` requests per worker the level measured nearest to it is used, and its samples
  are resampled (the empirical distribution, tails included). The load test's TTFT includes the
  route's transport and hand-off overhead, which users also see; it was measured at the load
  test's prompt length, and the note says so when the event's prompts are much longer.
- **Priors** (:data:`PRIORS`, :func:`prior`): when nothing was measured yet. Only one pool has a
  published source that this project read:

  - ``ADA_24`` (RTX 4090): M. Rahman, "Benchmarking Mistral-7B on RTX 4090: vLLM Concurrency,
    Latency, and Capacity Planning" (mushfiqrahman.dev), Mistral-7B-Instruct-v0.3 on vLLM,
    256 input → 128 output tokens, Poisson arrivals: median TTFT 53 / 55 / 97 / 277 ms and output
    throughput 210 / 377 / 644 / 975 tokens/s at 4 / 8 / 16 / 32 concurrent requests. TPOT is
    derived here as concurrency / output throughput (each stream gets an equal share of the
    tokens; this ignores the prefill share, about 5 %), i.e. 19 / 21 / 25 / 33 ms.
  - every other pool is an **assumption**: the ADA_24 figures times a factor on TPOT and TTFT,
    a rough guess from the pools' memory bandwidth (decoding a 7B model is memory-bound); no
    source was read for these factors. Measure with runbook 05 before relying on them.

  A prior gives medians only; TTFT and TPOT are drawn lognormal around them with sigma 0.3 (an
  assumption: the measured p99/p50 TTFT of the source is about 3 at concurrency 8).

Cold starts are not service times; :func:`cold_start` gives the engine's ``ColdStart`` from
localpod's timing profile (local target: exactly what localpod will do) or from localpod's
``realistic`` profile figures (Runpod: container 20 s, weights read from a volume at 0.8 GB/s,
engine 25 s, FlashBoot 3 s: localpod's stated range of what users see; runpod-workers/worker-vllm
issue #111, as summarised in /work/shared/reference/serverless-llm-peers.md section 3, reports one to
two minutes), which are assumptions until runbook 03 measures a wake.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rpbook.core.errors import ConfigError
from rpbook.endpoint.timings import RUNPOD_7B_COLD_START
from rpbook.planning.capacity import ColdStart, Requests
from rpbook.planning.eventtraffic import Arrivals

PRIOR_SIGMA = 0.3
"""Spread (sigma of the log) of TTFT and TPOT drawn around a prior's medians: an assumption."""

_ADA_24 = {4: (0.053, 4 / 210), 8: (0.055, 8 / 377), 16: (0.097, 16 / 644), 32: (0.277, 32 / 975)}
ADA_24_SOURCE = (
    "RTX 4090, Mistral-7B-Instruct-v0.3 on vLLM, 256 in / 128 out tokens (mushfiqrahman.dev, "
    "'Benchmarking Mistral-7B on RTX 4090'); TPOT derived as concurrency / output tokens/s"
)
_ASSUMED_FACTOR = {
    "AMPERE_16": 1.6,
    "AMPERE_24": 1.25,
    "ADA_32_PRO": 0.9,
    "AMPERE_48": 1.3,
    "ADA_48_PRO": 1.1,
    "AMPERE_80": 0.6,
    "ADA_80_PRO": 0.45,
    "BLACKWELL_96": 0.45,
    "HOPPER_141": 0.35,
    "BLACKWELL_180": 0.3,
}
PRIOR_PROMPT_TOKENS = 256

REALISTIC_COLD = {**RUNPOD_7B_COLD_START, "flashboot_window_s": 900.0, "scaler_tick_s": 0.5}
"""A 7B cold start on Runpod as :data:`rpbook.endpoint.timings.RUNPOD_7B_COLD_START` states it (localpod's
``realistic`` profile, lib/localpod/profiles.py), with that profile's FlashBoot window and scaler tick.
An assumption for planning until a wake is measured."""


@dataclass(frozen=True)
class Level:
    """Service at one per-worker concurrency: TTFT and TPOT samples (seconds)."""

    concurrency: int
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    measured: bool

    @property
    def ttft_p50_s(self) -> float:
        return float(np.median(self.ttft_s))

    @property
    def tpot_p50_s(self) -> float:
        return float(np.median(self.tpot_s))


@dataclass(frozen=True)
class ServiceModel:
    """Service times at one or more concurrencies, and where they come from."""

    levels: tuple[Level, ...]
    source: str
    prompt_tokens: int = 0
    """Prompt length the TTFT was measured or published with (0: unknown)."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def level(self, concurrency: int) -> Level:
        """The level measured nearest to ``concurrency`` (on a log scale; ties: the higher, the safe side)."""
        if not self.levels:
            raise ConfigError(f"service model {self.source!r} has no level")
        return min(self.levels, key=lambda lv: (abs(math.log(lv.concurrency / max(concurrency, 1))), -lv.concurrency))

    def draw(self, arrivals: Arrivals, concurrency: int, *, seed: int = 0) -> Requests:
        """Per-request service times for the engine, at the per-worker ``concurrency`` (the
        endpoint's ``MAX_CONCURRENCY``: a worker at its limit is the pessimistic case)."""
        rng = np.random.default_rng(seed)
        lv = self.level(concurrency)
        n = len(arrivals)
        if lv.measured:
            ttft = rng.choice(lv.ttft_s, n)
            tpot = rng.choice(lv.tpot_s, n)
        else:
            ttft = _lognormal(rng, lv.ttft_p50_s, n)
            tpot = _lognormal(rng, lv.tpot_p50_s, n)
        duration = ttft + np.maximum(arrivals.answer_tokens - 1, 0) * tpot
        return Requests(
            arrival_s=np.asarray(arrivals.arrival_s, dtype=np.float64),
            ttft_s=ttft.astype(np.float64),
            duration_s=duration.astype(np.float64),
        )

    def describe(self, concurrency: int, arrivals: Arrivals | None = None) -> str:
        lv = self.level(concurrency)
        how = "measured" if lv.measured else "prior"
        text = (
            f"{how} at {lv.concurrency} concurrent requests per worker (wanted {concurrency}): TTFT p50 "
            f"{lv.ttft_p50_s * 1000:.0f} ms, TPOT p50 {lv.tpot_p50_s * 1000:.1f} ms; {self.source}"
        )
        notes = list(self.notes)
        if lv.concurrency != concurrency:
            notes.append(f"nothing was measured at {concurrency}; {lv.concurrency} is the nearest level")
        if (
            arrivals is not None
            and self.prompt_tokens
            and len(arrivals)
            and np.mean(arrivals.prompt_tokens) > 2 * self.prompt_tokens
        ):
            notes.append(
                f"the event's prompts (mean {np.mean(arrivals.prompt_tokens):.0f} tokens) are much longer "
                f"than the {self.prompt_tokens} the TTFT was measured with: prefill will take longer"
            )
        return text + "".join(f"\nnote: {n}" for n in notes)

    def __str__(self) -> str:
        return self.source


def _lognormal(rng: np.random.Generator, median: float, n: int) -> np.ndarray:
    return median * np.exp(rng.normal(0.0, PRIOR_SIGMA, n))


def prior(pool: str) -> ServiceModel:
    """The stated prior for Mistral-7B-class models on a GPU pool (see the module docstring)."""
    if pool == "ADA_24":
        factor, source = 1.0, f"prior for ADA_24 from a published benchmark: {ADA_24_SOURCE}"
    elif pool in _ASSUMED_FACTOR:
        factor = _ASSUMED_FACTOR[pool]
        source = (
            f"prior for {pool}: an ASSUMPTION (ADA_24's published figures × {factor:g}, a guess from memory "
            "bandwidth; no source read): measure with runbook 05"
        )
    else:
        raise ConfigError(
            f"no prior for GPU pool {pool!r}; known: ADA_24, {', '.join(sorted(_ASSUMED_FACTOR))}, "
            "or pass runbook 05's load-test result"
        )
    levels = tuple(
        Level(c, np.array([ttft * factor]), np.array([tpot * factor]), measured=False)
        for c, (ttft, tpot) in sorted(_ADA_24.items())
    )
    return ServiceModel(levels, source, PRIOR_PROMPT_TOKENS)


def from_loadtest(path: str | Path) -> ServiceModel:
    """Measured levels from runbook 05's load-test JSON (warm, successful requests only)."""
    file = Path(path)
    try:
        data: Mapping[str, Any] = json.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"load-test result {file} does not exist; run runbook 05 first or use a prior") from None
    except ValueError as exc:
        raise ConfigError(f"load-test result {file} is not JSON: {exc}") from None
    groups: dict[int, tuple[list[float], list[float]]] = {}
    for r in data.get("requests", []):
        if r.get("warmup") or r.get("error") or r.get("cold") or r.get("ttft_s") in (None, ""):
            continue
        conc = max(1, int(r.get("concurrency_at_send") or 1))
        ttfts, tpots = groups.setdefault(conc, ([], []))
        ttfts.append(float(r["ttft_s"]))
        if r.get("tpot_s") not in (None, ""):
            tpots.append(float(r["tpot_s"]))
    levels = tuple(
        Level(c, np.array(t), np.array(p if p else [0.0]), measured=True)
        for c, (t, p) in sorted(groups.items())
        if len(t) >= 3
    )
    if not levels:
        raise ConfigError(
            f"{file}: fewer than 3 warm, successful requests with a TTFT at any concurrency; "
            "rerun runbook 05's load test (route chat or completions) or use a prior"
        )
    shape = data.get("shape") or {}
    source = (
        f"measured by runbook 05 ({file.name}: {shape.get('kind', '?')} load, "
        f"{sum(len(lv.ttft_s) for lv in levels)} warm requests, route {data.get('route', '?')})"
    )
    return ServiceModel(levels, source)


def cold_start(
    profile: Mapping[str, float] | None = None, *, weights_bytes: float = 14.5e9, from_volume: bool = True
) -> ColdStart:
    """The engine's cold start from a localpod profile (``GET /_localpod/config``'s ``profile``),
    or from :data:`REALISTIC_COLD` when None. ``model_load_s`` is the weights read from the
    network volume (or downloaded, ``from_volume=False``)."""
    p = dict(REALISTIC_COLD if profile is None else profile)
    rate_key = "volume_read_bytes_per_s" if from_volume else "download_bytes_per_s"
    rate = float(p.get(rate_key) or REALISTIC_COLD["volume_read_bytes_per_s"])
    return ColdStart(
        container_start_s=float(p["container_start_s"]),
        model_load_s=weights_bytes / rate,
        engine_init_s=float(p["engine_init_s"]),
        flashboot_start_s=float(p["flashboot_start_s"]),
        flashboot_window_s=float(p["flashboot_window_s"]),
        scaler_tick_s=float(p["scaler_tick_s"]),
    )
