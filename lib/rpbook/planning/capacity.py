"""Capacity planner: a discrete-event simulation of one Runpod serverless endpoint.

What a planner must answer before an event ("300 people for two hours: which settings, what will it
cost, what will they wait?") depends on how the platform queues, scales, cold-starts and bills, so
the simulation plays the same rules localpod emulates, each traced to its source:

- **Queue and dispatch.** One FIFO queue; a job goes to the ready worker with the fewest running
  jobs, up to the worker's concurrency (``MAX_CONCURRENCY`` / ``RUNPOD_MAX_CONCURRENCY``), as
  ``localpod.serverless.platform.EndpointRuntime.dispatch`` does. Ties go to the lowest worker slot
  (active workers hold the lowest slots; localpod prefers the oldest worker).
- **Scaler** (``EndpointRuntime.scale``, evaluated on every submit and on every scaler tick, ticks
  at ``k * scaler_tick_s`` from the event start): target = ``workers_min``; with ``REQUEST_COUNT``
  at least ``ceil((queued + in progress) / scaler_value)``, the docs' formula (runpod/docs
  endpoint-configurations.mdx "Request count": ``Math.ceil((requestsInQueue + requestsInProgress) /
  scalerValue)``; the REST v2 spec makes the value an integer >= 1); capped at ``workers_max``. The
  scaler never stops workers.
- **QUEUE_DELAY: two readings, because Runpod's docs do not say how many workers one decision
  starts.** Today's endpoint-configurations page says only that workers are added "if requests spend
  more than X seconds in the queue"; an older text said "With zero workers initially, the first
  request adds one worker. Subsequent requests add workers only after waiting in the queue for the
  defined number of delay seconds" (/work/shared/reference/checked-facts.md, 2026-12-07).
  ``queue_delay_reading`` picks one; localpod plays the same two (its profile's
  ``queue_delay_reading``, ``localpod.profiles.QUEUE_DELAY_READINGS``):

  - ``"one_per_decision"`` (the default; the pessimistic one): with jobs queued, one worker when none
    exists, else one more when every live worker's slots are taken (starting and throttled workers
    count as free slots), the oldest job has waited ``scaler_value`` seconds and the last scale-up is
    ``scaler_value`` seconds old;
  - ``"whole_queue"``: with jobs queued and none live, or once the oldest job has waited
    ``scaler_value`` seconds, enough workers for every queued and running job at once:
    ``ceil((queued + in progress) / concurrency)`` (starting and throttled workers' slots counted).
- **Throttling** (``localpod.serverless.workers.Worker._place``): a starting worker that finds no
  GPU stays ``THROTTLED``, unbilled, and retries every ``max(scaler_tick_s, 0.05)`` seconds; it
  counts as a live worker (so it holds the scaler back) and never idles out. Here each attempt
  finds no GPU with probability ``p_throttle``.
- **Cold start** (``localpod.serverless.coldstart.plan_cold_start``): container start + model load
  (download or volume read) + engine init; with FlashBoot on, a start within
  ``flashboot_window_s`` after a cold-started worker stopped restores its snapshot in
  ``flashboot_start_s`` instead (``EndpointRuntime.remember_flashboot`` is called only when a
  worker that had cold-started and become ready stops, so a FlashBoot-restored worker stopping
  does not extend the window).
- **Idle timeout** (``EndpointRuntime.tick``): a flex worker with no job, when the queue is empty,
  stops at the first scaler tick at least ``idle_timeout_s`` after it became idle, while more than
  ``workers_min`` workers are live.
- **Execution timeout** (``Worker._execute``, Runpod docs endpoint-configurations.mdx: "When
  exceeded, the job fails and the worker stops"): a job running longer than
  ``execution_timeout_s`` is cut (``timed_out``), the other jobs on that worker fail (``failed``)
  and the worker stops; the scaler replaces it on its next tick or submit.
- **Billing.** Flex workers bill per second, from placement (container start) until fully stopped,
  rounded up per worker session, cold start and idle timeout included (Runpod docs
  ``serverless/pricing.mdx`` via /work/shared/reference/runpod-api.md "Pricing / limits";
  localpod's ``graphql_schema`` rounds each ``WorkerSession`` up the same way). Throttled time is
  not billed (localpod opens the session only once placed). Active workers (``workers_min``) are
  "always on", billed as soon as they are enabled, at the active price (runpod/docs PR #224,
  ``docs/glossary.md`` "Active (Min) Workers"): here they are ready at the event start (the plan
  applies them ahead of it) and billed for the whole horizon.

Service times come per request (``Requests``), so the engine does not care whether they were
measured by runbook 05's load test or drawn from priors. The hot loop is plain Python over lists
with ``heapq``; scaler ticks are scheduled only when one can change something (a queued job that
may trigger ``QUEUE_DELAY``, a worker to replace), idle timeouts as one event per idle spell.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import shared_memory
from typing import Any, Literal

import numpy as np

from rpbook.account.endpointscaling import ScalerType, check_idle_timeout, check_scaler_type, check_scaler_value

__all__ = [
    "QUEUE_DELAY_READINGS",
    "ColdStart",
    "Prices",
    "QueueDelayReading",
    "Requests",
    "ScalerType",
    "Scaling",
    "SimResult",
    "Timeline",
    "quantile",
    "simulate",
    "sweep",
]

QueueDelayReading = Literal["one_per_decision", "whole_queue"]
QUEUE_DELAY_READINGS: tuple[QueueDelayReading, ...] = ("one_per_decision", "whole_queue")
"""How many workers one QUEUE_DELAY decision starts (see the module docstring); the first is the
pessimistic one. The same names as ``localpod.profiles.QUEUE_DELAY_READINGS``."""

THROTTLE_RETRY_MIN_S = 0.05
"""A throttled worker retries placement every ``max(scaler_tick_s, 0.05)`` s (localpod ``Worker._place``)."""


@dataclass(frozen=True)
class Scaling:
    """One candidate setting of the endpoint (the fields Runpod's endpoint settings name)."""

    workers_min: int = 0
    workers_max: int = 3
    idle_timeout_s: float = 5.0
    scaler_type: ScalerType = "QUEUE_DELAY"
    scaler_value: float = 4.0
    concurrency: int = 1
    execution_timeout_s: float = 600.0
    flashboot: bool = True

    def check(self) -> None:
        """Raise ValueError naming the field to fix when the setting is one Runpod would refuse."""
        if self.workers_min < 0 or self.workers_max < 0:
            raise ValueError(f"workers_min and workers_max must be >= 0, got {self.workers_min} and {self.workers_max}")
        if self.workers_min > self.workers_max:
            raise ValueError(
                f"workers_min ({self.workers_min}) is above workers_max ({self.workers_max}); "
                "raise workers_max or lower workers_min"
            )
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        # The API's bounds (rpbook.account.endpointscaling, from the REST v2 spec): a setting Runpod
        # refuses is not simulated.
        check_idle_timeout("Scaling.idle_timeout_s", self.idle_timeout_s)
        check_scaler_value(
            "Scaling.scaler_value", check_scaler_type("Scaling.scaler_type", self.scaler_type), self.scaler_value
        )
        if self.execution_timeout_s < 0:
            raise ValueError(f"execution_timeout_s must be >= 0 (0 = no limit), got {self.execution_timeout_s}")


@dataclass(frozen=True)
class ColdStart:
    """Start-up durations in seconds; the fields mirror ``localpod.profiles.Profile``."""

    container_start_s: float
    model_load_s: float
    engine_init_s: float
    flashboot_start_s: float
    flashboot_window_s: float
    scaler_tick_s: float = 0.5

    @property
    def cold_s(self) -> float:
        """A full cold start: container + model load + engine init."""
        return self.container_start_s + self.model_load_s + self.engine_init_s

    def check(self) -> None:
        for name, value in asdict(self).items():
            if not value >= 0:
                raise ValueError(f"ColdStart.{name} must be >= 0 seconds, got {value}")
        if not self.scaler_tick_s > 0:
            raise ValueError(f"ColdStart.scaler_tick_s must be > 0, got {self.scaler_tick_s}")


@dataclass(frozen=True)
class Prices:
    """Dollars per worker-second, flex and active (Runpod lists both per GPU pool)."""

    flex_usd_per_s: float
    active_usd_per_s: float


@dataclass(frozen=True, eq=False)  # arrays: compare them with numpy, not ==
class Requests:
    """One event's requests, sorted by arrival; service times as a free worker slot would serve them."""

    arrival_s: np.ndarray
    ttft_s: np.ndarray
    duration_s: np.ndarray

    def __post_init__(self) -> None:
        arrival = np.ascontiguousarray(self.arrival_s, dtype=np.float64)
        ttft = np.ascontiguousarray(self.ttft_s, dtype=np.float64)
        duration = np.ascontiguousarray(self.duration_s, dtype=np.float64)
        if not (arrival.ndim == ttft.ndim == duration.ndim == 1):
            raise ValueError("Requests: arrival_s, ttft_s and duration_s must be 1-D arrays")
        if not (len(arrival) == len(ttft) == len(duration)):
            raise ValueError(
                f"Requests: arrays differ in length (arrival {len(arrival)}, ttft {len(ttft)}, "
                f"duration {len(duration)})"
            )
        if len(arrival):
            if not np.all(np.isfinite(arrival)) or arrival[0] < 0 or np.any(np.diff(arrival) < 0):
                raise ValueError("Requests.arrival_s must be finite, >= 0 and sorted (non-decreasing); sort the trace")
            if np.any(ttft < 0) or not np.all(np.isfinite(duration)) or np.any(duration < ttft):
                raise ValueError("Requests: need 0 <= ttft_s <= duration_s (finite) for every request")
        object.__setattr__(self, "arrival_s", arrival)
        object.__setattr__(self, "ttft_s", ttft)
        object.__setattr__(self, "duration_s", duration)

    def __len__(self) -> int:
        return len(self.arrival_s)


@dataclass(eq=False)
class Timeline:
    """The endpoint sampled every ``timeline_step_s``: queue, workers and money so far."""

    t: np.ndarray
    queued: np.ndarray
    workers_running: np.ndarray
    """Ready workers (idle or busy), active ones included."""
    workers_starting: np.ndarray
    """Placed workers in their cold start or FlashBoot restore (billed)."""
    workers_throttled: np.ndarray
    """Workers waiting for a GPU (not billed)."""
    cost_so_far: np.ndarray


@dataclass(eq=False)
class SimResult:
    """What one simulated event cost and what its users waited."""

    queue_wait_s: np.ndarray
    """Per request: submit -> start on a worker slot (inf when it never started)."""
    ttft_s: np.ndarray
    """Per request: queue wait + service TTFT (inf when no first token came: never started, or cut first)."""
    timed_out: int
    cold_starts: int
    flashboot_starts: int
    throttled: int
    """Worker starts whose first placement found no GPU."""
    flex_worker_s: float
    active_worker_s: float
    cost_usd: float
    timeline: Timeline | None = None
    failed: int = 0
    """Jobs that failed because another job on their worker hit the execution timeout."""
    unserved: int = 0
    """Requests that never reached a worker (e.g. every start throttled)."""
    horizon_s: float = 0.0
    end_s: float = 0.0
    """When the simulation ended: the last flex worker stopped (or the last event happened)."""

    def summary(self) -> dict[str, float]:
        """Percentiles of TTFT and queue wait, counts, worker-hours and cost, as one flat row."""
        wait, ttft = self.queue_wait_s, self.ttft_s
        out: dict[str, float] = {"requests": float(len(wait))}
        for name, values in (("ttft", ttft), ("wait", wait)):
            ordered = np.sort(values)
            for q in (50, 95, 99):
                out[f"{name}_p{q}_s"] = _sorted_quantile(ordered, q / 100)
            finite = ordered[np.isfinite(ordered)]
            out[f"{name}_mean_s"] = float(finite.mean()) if len(finite) else math.inf
        out["p_wait"] = float(np.mean(wait > 0)) if len(wait) else 0.0
        out.update(
            timed_out=float(self.timed_out),
            failed=float(self.failed),
            unserved=float(self.unserved),
            cold_starts=float(self.cold_starts),
            flashboot_starts=float(self.flashboot_starts),
            throttled=float(self.throttled),
            flex_worker_h=self.flex_worker_s / 3600,
            active_worker_h=self.active_worker_s / 3600,
            worker_h=(self.flex_worker_s + self.active_worker_s) / 3600,
            cost_usd=self.cost_usd,
        )
        return out


def quantile(values: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile that stays honest with ``inf`` (unserved) values: inf when the
    rank falls among them, instead of numpy's nan."""
    return _sorted_quantile(np.sort(values), q)


def _sorted_quantile(ordered: np.ndarray, q: float) -> float:
    n = len(ordered)
    if n == 0:
        return math.nan
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a, b = float(ordered[lo]), float(ordered[hi])
    if math.isinf(b):
        return math.inf if (pos > lo or math.isinf(a)) else a
    return a + (b - a) * (pos - lo)


# Event kinds, in the order they are handled at the same instant: jobs end and workers become
# ready first, then idle stops, then the scaler tick (localpod's tick stops idle workers before
# it scales), then throttle retries.
_DONE, _CUT, _READY, _IDLE, _TICK, _RETRY, _END = 0, 1, 2, 3, 4, 5, 6
_FREE, _THROTTLED, _BOOTING, _READY_ST = 0, 1, 2, 3


def simulate(
    requests: Requests,
    scaling: Scaling,
    cold: ColdStart,
    prices: Prices,
    *,
    p_throttle: float = 0.0,
    seed: int = 0,
    horizon_s: float | None = None,
    timeline_step_s: float | None = None,
    queue_delay_reading: QueueDelayReading = "one_per_decision",
) -> SimResult:
    """Play ``requests`` against one endpoint with ``scaling`` and return waits, counts and cost.

    ``horizon_s`` is the event window: active workers bill for it (default: until the last request
    ends); the simulation itself runs until every request has ended and every flex worker has
    stopped. ``seed`` drives the throttling draws (nothing else is random: arrivals and service
    times are given), so the same inputs and seed give the same result. ``queue_delay_reading``: how
    many workers one QUEUE_DELAY decision starts (an assumption: see the module docstring).
    """
    scaling.check()
    cold.check()
    if not 0.0 <= p_throttle <= 1.0:
        raise ValueError(f"p_throttle is a probability in [0, 1], got {p_throttle}")
    if queue_delay_reading not in QUEUE_DELAY_READINGS:
        raise ValueError(
            f"queue_delay_reading must be one of {', '.join(QUEUE_DELAY_READINGS)}, got {queue_delay_reading!r}"
        )
    if horizon_s is not None and horizon_s < 0:
        raise ValueError(f"horizon_s must be >= 0, got {horizon_s}")
    if timeline_step_s is not None and not timeline_step_s > 0:
        raise ValueError(f"timeline_step_s must be > 0, got {timeline_step_s}")
    if not (prices.flex_usd_per_s >= 0 and prices.active_usd_per_s >= 0):
        raise ValueError(f"prices must be >= 0 dollars per second, got {prices}")
    core = _run(
        requests.arrival_s.tolist(),
        requests.ttft_s.tolist(),
        requests.duration_s.tolist(),
        scaling,
        cold,
        p_throttle,
        seed,
        queue_delay_reading == "whole_queue",
    )
    n = len(requests)
    wait = np.asarray(core["wait"], dtype=np.float64) if n else np.zeros(0)
    got_token = np.asarray(core["got_token"], dtype=bool) if n else np.zeros(0, dtype=bool)
    ttft = np.where(got_token & np.isfinite(wait), wait + requests.ttft_s, np.inf)
    ends = requests.arrival_s + wait + np.minimum(requests.duration_s, scaling.execution_timeout_s or np.inf)
    finite = np.isfinite(ends)
    last_end = max(float(ends[finite].max()) if finite.any() else 0.0, float(requests.arrival_s[-1]) if n else 0.0)
    if horizon_s is None:
        horizon_s = last_end
    sessions: list[tuple[float, float, float, float, bool]] = core["sessions"]
    end_s = max([last_end] + [stop for _, _, _, stop, _ in sessions if stop < math.inf])
    flex_s = sum(_billed(place, stop) for _, place, _, stop, active in sessions if not active and not math.isnan(place))
    active_s = scaling.workers_min * float(horizon_s)
    cost = flex_s * prices.flex_usd_per_s + active_s * prices.active_usd_per_s
    result = SimResult(
        queue_wait_s=wait,
        ttft_s=ttft,
        timed_out=core["timed_out"],
        cold_starts=core["cold"],
        flashboot_starts=core["flash"],
        throttled=core["throttled"],
        flex_worker_s=float(flex_s),
        active_worker_s=active_s,
        cost_usd=float(cost),
        failed=core["failed"],
        unserved=int(np.sum(~np.isfinite(wait))),
        horizon_s=float(horizon_s),
        end_s=end_s,
    )
    if timeline_step_s is not None:
        result.timeline = _timeline(
            requests.arrival_s,
            wait,
            sessions,
            scaling.workers_min,
            float(horizon_s),
            max(end_s, float(horizon_s)),
            timeline_step_s,
            prices,
        )
    return result


def _billed(place: float, stop: float) -> int:
    """Billed seconds of one flex session: rounded up per second (a hair of float noise forgiven)."""
    return max(0, math.ceil(stop - place - 1e-9))


def _run(
    arr: list[float],
    ttft: list[float],
    dur: list[float],
    scaling: Scaling,
    cold: ColdStart,
    p_throttle: float,
    seed: int,
    whole_queue: bool = False,
) -> dict[str, Any]:
    """The event loop. Returns per-request waits and the worker sessions.

    Kept fast on purpose (a 1,000,000-request event in a few seconds): Python floats in lists
    (several times faster to touch one by one than numpy scalars), ``heapq`` of plain tuples
    ``(time, kind, slot, generation, request)`` (a stopped worker's events go stale by generation),
    the common paths (arrival, job end) inline, the rare ones (scaling, starts, stops) in closures.
    Scaler ticks are scheduled only when one can start a worker; idle timeouts as at most one
    pending event per worker, re-armed when it fires early."""
    n = len(arr)
    wmin, wmax, conc = scaling.workers_min, scaling.workers_max, scaling.concurrency
    request_count = scaling.scaler_type == "REQUEST_COUNT"
    sval = float(scaling.scaler_value)
    per_worker = sval  # REQUEST_COUNT: the docs' ceil((queued + in progress) / value)
    idle_to = float(scaling.idle_timeout_s)
    exec_to = float(scaling.execution_timeout_s) if scaling.execution_timeout_s > 0 else math.inf
    tick = float(cold.scaler_tick_s)
    retry_s = max(tick, THROTTLE_RETRY_MIN_S)
    cold_s = cold.cold_s
    flash_s = float(cold.flashboot_start_s)
    flash_window = float(cold.flashboot_window_s)
    flashboot = scaling.flashboot
    may_cut = n > 0 and max(dur) > exec_to
    rng = np.random.default_rng(seed)
    draws: list[float] = []
    inf = math.inf
    ceil = math.ceil

    nslots = max(wmax, 1)
    big = (conc + 1) << 20  # the load of a slot that cannot take a job, so min(load) skips it
    state = [_FREE] * nslots
    load = [big] * nslots
    gen = [0] * nslots
    idle_since = [0.0] * nslots
    idle_ev = [inf] * nslots  # time of the worker's pending idle check
    place_t = [math.nan] * nslots
    ready_t = [math.nan] * nslots
    throttle_t = [math.nan] * nslots
    flashed = [False] * nslots
    jobs_on: list[set[int]] = [set() for _ in range(nslots)] if may_cut else []
    started = [0.0] * n if may_cut else []

    wait = [inf] * n
    got_token = [True] * n
    sessions: list[tuple[float, float, float, float, bool]] = []  # (throttled since, placed, ready, stopped, active)
    heap: list[tuple[float, int, int, int, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    queue: deque[int] = deque()
    qappend, qpopleft = queue.append, queue.popleft
    counters = {"cold": 0, "flash": 0, "throttled": 0, "timed_out": 0, "failed": 0}
    flash_until = -inf
    last_up = -inf
    n_live = 0
    in_prog = 0
    ready_slots = 0  # slots of ready workers: a job waits only when in_prog fills them
    tick_at = inf  # the earliest scaler tick already scheduled

    # Active workers: ready at the event start, never idle out.
    for w in range(wmin):
        state[w] = _READY_ST
        load[w] = 0
        place_t[w] = ready_t[w] = 0.0
        n_live += 1
        ready_slots += conc

    def next_tick_after(t: float) -> float:
        k = math.floor(t / tick) + 1
        at = k * tick
        return at if at > t else (k + 1) * tick

    def tick_at_or_after(t: float) -> float:
        k = ceil(t / tick)
        at = k * tick
        return at if at >= t else (k + 1) * tick

    def arm_idle(w: int, at: float) -> None:
        idle_ev[w] = at
        push(heap, (at, _IDLE, w, gen[w], 0))

    def place(w: int, t: float) -> None:
        place_t[w] = t
        if flashboot and flash_until > t:
            flashed[w] = True
            counters["flash"] += 1
            boot = flash_s
        else:
            flashed[w] = False
            counters["cold"] += 1
            boot = cold_s
        state[w] = _BOOTING
        push(heap, (t + boot, _READY, w, gen[w], 0))

    def throttled_now() -> bool:
        if p_throttle <= 0.0:
            return False
        if p_throttle >= 1.0:
            return True
        if not draws:
            draws.extend(rng.random(4096).tolist())
            draws.reverse()
        return draws.pop() < p_throttle

    def start_worker(t: float) -> None:
        w = state.index(_FREE)
        gen[w] += 1
        load[w] = big
        idle_ev[w] = inf
        place_t[w] = ready_t[w] = throttle_t[w] = math.nan
        if throttled_now():
            counters["throttled"] += 1
            state[w] = _THROTTLED
            throttle_t[w] = t
            if p_throttle < 1.0:
                push(heap, (t + retry_s, _RETRY, w, gen[w], 0))
            return
        place(w, t)

    def scale(t: float) -> None:
        """localpod ``EndpointRuntime.scale``."""
        nonlocal n_live, last_up
        target = wmin
        if request_count:
            target = max(target, ceil((len(queue) + in_prog) / per_worker))
        elif whole_queue:
            if queue and (n_live == 0 or t - arr[queue[0]] >= sval):
                target = max(target, ceil((len(queue) + in_prog) / conc))
        elif queue:
            if n_live == 0:
                target = max(target, 1)
            elif n_live * conc - in_prog <= 0 and t - arr[queue[0]] >= sval and t - last_up >= sval:
                target = max(target, n_live + 1)
        if target > wmax:
            target = wmax
        while n_live < target:
            start_worker(t)
            last_up = t
            n_live += 1

    def stop(w: int, t: float) -> None:
        nonlocal n_live, flash_until, ready_slots
        active = w < wmin
        sessions.append((throttle_t[w], place_t[w], ready_t[w], t, active))
        if state[w] == _READY_ST:
            ready_slots -= conc
            if not flashed[w]:
                flash_until = t + flash_window
        state[w] = _FREE
        load[w] = big
        gen[w] += 1
        idle_ev[w] = inf
        n_live -= 1

    def need_tick(t: float, after_tick: bool = False) -> None:
        """Schedule the next scaler tick when one can start a worker; otherwise ticks are skipped.
        Events at a tick's instant are handled before the tick, so the next tick may be now,
        unless this is the tick itself (``after_tick``)."""
        nonlocal tick_at
        due = inf
        soonest = next_tick_after(t) if after_tick else tick_at_or_after(t)
        if n_live < wmin:
            due = soonest
        elif n_live < wmax:
            if request_count:
                if ceil((len(queue) + in_prog) / per_worker) > n_live:
                    due = soonest
            elif whole_queue:
                if queue and ceil((len(queue) + in_prog) / conc) > n_live:
                    due = soonest if n_live == 0 else max(tick_at_or_after(arr[queue[0]] + sval), soonest)
            elif queue and (n_live == 0 or n_live * conc - in_prog <= 0):
                if n_live == 0:
                    due = soonest
                else:
                    due = max(tick_at_or_after(max(arr[queue[0]] + sval, last_up + sval)), soonest)
        if due < tick_at:
            tick_at = due
            push(heap, (due, _TICK, 0, 0, 0))

    def dispatch(t: float) -> int:
        """Hand queued jobs to free slots, least busy worker first; returns jobs in progress."""
        ip = in_prog
        while queue:
            m = min(load)
            if m >= conc:
                break
            v = load.index(m)
            j = qpopleft()
            wait[j] = t - arr[j]
            load[v] = m + 1
            ip += 1
            d = dur[j]
            if d > exec_to:
                push(heap, (t + exec_to, _CUT, v, gen[v], j))
            else:
                push(heap, (t + d, _DONE, v, gen[v], j))
            if may_cut:
                jobs_on[v].add(j)
                started[j] = t
        return ip

    i = 0
    t = 0.0
    arrivals = [*arr, inf]  # sentinels: no test for the end in the hot loop
    push(heap, (inf, _END, 0, 0, 0))
    nxt = arrivals[0]
    while True:
        if heap[0][0] <= nxt:
            t, kind, w, g, r = pop(heap)
            if kind == _DONE:
                if may_cut:  # only a cut stops a worker with jobs on it, leaving them stale
                    if g != gen[w]:
                        continue
                    jobs_on[w].discard(r)
                if queue:
                    # Jobs wait only while every ready worker is full, so the slot just freed is
                    # the only free one: the oldest queued job takes it.
                    j = qpopleft()
                    wait[j] = t - arr[j]
                    d = dur[j]
                    if d > exec_to:
                        push(heap, (t + exec_to, _CUT, w, g, j))
                    else:
                        push(heap, (t + d, _DONE, w, g, j))
                    if may_cut:
                        jobs_on[w].add(j)
                        started[j] = t
                    continue
                in_prog -= 1
                lw = load[w] - 1
                load[w] = lw
                if lw:
                    continue
                idle_since[w] = t
                if w >= wmin and idle_ev[w] == inf:
                    x = t + idle_to
                    at = ceil(x / tick) * tick
                    if at < x:
                        at += tick
                    idle_ev[w] = at
                    push(heap, (at, _IDLE, w, g, 0))
                continue
            if kind == _IDLE:
                if g != gen[w]:
                    continue
                idle_ev[w] = inf
                if load[w] != 0:
                    continue  # busy again; armed anew when it next goes idle
                if t - idle_since[w] < idle_to - 1e-9:
                    arm_idle(w, tick_at_or_after(idle_since[w] + idle_to))
                    continue
                if n_live <= wmin:  # localpod keeps it while only workers_min are live; look again next tick
                    arm_idle(w, next_tick_after(t))
                    continue
                stop(w, t)
                scale(t)
                need_tick(t)
                continue
            if kind == _TICK:
                if t == tick_at:
                    tick_at = inf
                scale(t)
                need_tick(t, True)
                continue
            if kind == _READY:
                if g != gen[w]:
                    continue
                state[w] = _READY_ST
                ready_t[w] = t
                load[w] = 0
                ready_slots += conc
                idle_since[w] = t
                in_prog = dispatch(t)
                if load[w] == 0 and w >= wmin:
                    arm_idle(w, tick_at_or_after(t + idle_to))
                need_tick(t)
                continue
            if kind == _CUT:
                if g != gen[w]:
                    continue
                counters["timed_out"] += 1
                if ttft[r] >= exec_to:
                    got_token[r] = False
                others = jobs_on[w]
                others.discard(r)
                for j in others:
                    counters["failed"] += 1
                    if t - started[j] <= ttft[j]:
                        got_token[j] = False
                in_prog -= 1 + len(others)
                others.clear()
                stop(w, t)
                need_tick(t)
                continue
            if kind == _END:
                break
            # _RETRY: a throttled worker tries to get a GPU again
            if g != gen[w] or state[w] != _THROTTLED:
                continue
            if throttled_now():
                push(heap, (t + retry_s, _RETRY, w, g, 0))
            else:
                place(w, t)
            continue
        # arrival of request i
        t = nxt
        j = i
        i += 1
        nxt = arrivals[i]
        if not queue:
            if in_prog < ready_slots:
                m = min(load)
                v = load.index(m)
                wait[j] = 0.0
                load[v] = m + 1
                in_prog += 1
                d = dur[j]
                if d > exec_to:
                    push(heap, (t + exec_to, _CUT, v, gen[v], j))
                else:
                    push(heap, (t + d, _DONE, v, gen[v], j))
                if may_cut:
                    jobs_on[v].add(j)
                    started[j] = t
                if request_count:
                    if n_live < wmax and in_prog > n_live * per_worker:
                        scale(t)
                elif n_live < wmin:
                    scale(t)
                continue
            qappend(j)
            scale(t)  # a new oldest job
            need_tick(t)
            continue
        qappend(j)
        if n_live < wmax:  # the scaler on submit; nothing else changed what it would decide
            if request_count:
                if len(queue) + in_prog > n_live * per_worker:
                    scale(t)
            elif whole_queue:
                if len(queue) + in_prog > n_live * conc:
                    if n_live == 0 or t - arr[queue[0]] >= sval:
                        scale(t)
                    need_tick(t)
            elif n_live == 0 or (n_live * conc <= in_prog and t - arr[queue[0]] >= sval and t - last_up >= sval):
                scale(t)
                need_tick(t)

    # Nothing is pending: what still lives are active workers and workers throttled for good.
    for w in range(nslots):
        if state[w] != _FREE:
            stop(w, inf)
    return {"wait": wait, "got_token": got_token, "sessions": sessions, **counters}


def _timeline(
    arrival: np.ndarray,
    wait: np.ndarray,
    sessions: list[tuple[float, float, float, float, bool]],
    workers_min: int,
    horizon_s: float,
    end_s: float,
    step: float,
    prices: Prices,
) -> Timeline:
    """Sample the run every ``step`` seconds from its records (nothing is recorded in the hot loop)."""
    t = np.arange(0.0, end_s + step, step)
    start = np.sort(arrival + wait)  # inf for never started: never counted as started
    queued = np.searchsorted(arrival, t, side="right") - np.searchsorted(start, t, side="right")
    if sessions:
        thr, placed, ready, stopped, active_column = (
            np.array(c, dtype=np.float64) for c in zip(*sessions, strict=True)
        )
        active = active_column.astype(bool)
    else:
        thr = placed = ready = stopped = np.zeros(0)
        active = np.zeros(0, dtype=bool)
    tt = t[:, None]
    running = np.sum((ready <= tt) & (tt < stopped), axis=1)
    starting = np.sum((placed <= tt) & (tt < np.where(np.isnan(ready), stopped, ready)), axis=1)
    throttled = np.sum((thr <= tt) & (tt < np.where(np.isnan(placed), stopped, placed)), axis=1)
    flex = ~active
    billed_final = np.ceil(np.maximum(stopped - placed - 1e-9, 0.0))
    so_far = np.where(tt >= stopped, billed_final, np.clip(tt - placed, 0.0, None))
    so_far = np.where(np.isnan(placed), 0.0, so_far)
    flex_s = np.sum(np.where(flex, so_far, 0.0), axis=1)
    cost = flex_s * prices.flex_usd_per_s + workers_min * np.minimum(t, horizon_s) * prices.active_usd_per_s
    return Timeline(
        t=t,
        queued=queued,
        workers_running=running,
        workers_starting=starting,
        workers_throttled=throttled,
        cost_so_far=cost,
    )


# -- sweeps ---------------------------------------------------------------------------------------

_SHARED: dict[str, Any] = {}


def _attach(names: tuple[str, ...], n: int) -> None:
    """Pool initializer: map the parent's request arrays (shared memory, no copy, no pickling)."""
    blocks = [shared_memory.SharedMemory(name=name) for name in names]
    arrays = [np.ndarray((n,), dtype=np.float64, buffer=b.buf) for b in blocks]
    _SHARED["blocks"] = blocks
    _SHARED["requests"] = Requests(*arrays)


def _row(
    requests: Requests,
    scaling: Scaling,
    cold: ColdStart,
    prices: Prices,
    p_throttle: float,
    seed: int,
    reading: QueueDelayReading,
) -> dict[str, float | int | str]:
    result = simulate(requests, scaling, cold, prices, p_throttle=p_throttle, seed=seed, queue_delay_reading=reading)
    row: dict[str, float | int | str] = dict(asdict(scaling))
    row["flashboot"] = int(scaling.flashboot)
    row["queue_delay_reading"] = reading
    row.update(result.summary())
    return row


def _row_shared(
    scaling: Scaling, cold: ColdStart, prices: Prices, p_throttle: float, seed: int, reading: QueueDelayReading
) -> dict[str, float | int | str]:
    return _row(_SHARED["requests"], scaling, cold, prices, p_throttle, seed, reading)


def sweep(
    requests: Requests,
    grid: Sequence[Scaling],
    cold: ColdStart,
    prices: Prices,
    *,
    p_throttle: float = 0.0,
    seed: int = 0,
    processes: int = 2,
    queue_delay_reading: QueueDelayReading = "one_per_decision",
) -> list[dict[str, float | int | str]]:
    """One summary row per setting of ``grid`` (in order), the setting's fields first.

    With ``processes`` > 1 the settings run in that many processes; the request arrays are placed
    once in shared memory and mapped by each process, so a million requests are not pickled per
    setting. Every setting uses the same ``seed``, so settings are compared on the same draws.
    ``queue_delay_reading`` as in :func:`simulate`; each row names it.
    """
    if queue_delay_reading not in QUEUE_DELAY_READINGS:
        raise ValueError(
            f"queue_delay_reading must be one of {', '.join(QUEUE_DELAY_READINGS)}, got {queue_delay_reading!r}"
        )
    for scaling in grid:
        scaling.check()
    if processes <= 1 or len(grid) <= 1:
        return [_row(requests, s, cold, prices, p_throttle, seed, queue_delay_reading) for s in grid]
    arrays = (requests.arrival_s, requests.ttft_s, requests.duration_s)
    n = len(requests)
    blocks = [shared_memory.SharedMemory(create=True, size=max(1, a.nbytes)) for a in arrays]
    try:
        for block, array in zip(blocks, arrays, strict=True):
            np.ndarray((n,), dtype=np.float64, buffer=block.buf)[:] = array
        with ProcessPoolExecutor(
            max_workers=min(processes, len(grid)), initializer=_attach, initargs=(tuple(b.name for b in blocks), n)
        ) as pool:
            futures = [pool.submit(_row_shared, s, cold, prices, p_throttle, seed, queue_delay_reading) for s in grid]
            return [f.result() for f in futures]
    finally:
        for block in blocks:
            block.close()
            block.unlink()
