"""How fast ``rpbook.planning.capacity`` simulates an event, against simpy, and how a grid sweep uses both cores.

Three measurements on one synthetic event (chat traffic whose rate swings between a trough and a
peak, like a workshop's sessions and breaks; 1,000,000 requests by default):

1. **The planner's event:** scale-from-zero with cold starts, FlashBoot, idle timeout and the
   QUEUE_DELAY scaler. Prints requests simulated per second and the time for the whole event
   (goal: at most 5 s for 1,000,000 requests on this 2-core machine), wall and CPU time, and the
   load average, since the machine is shared and a busy one stretches the wall time.
2. **The same event without cold starts** (a fixed pool of always-on workers: simpy has no model of
   cold starts or a scaler) in ``rpbook.planning.capacity`` and in simpy (``simpy.Resource`` with one slot per
   worker-concurrency, FIFO): the speed-up, and that both give the same mean wait within 2%.
3. **A 50-setting grid sweep** (workers max x idle timeout x scaler) on a smaller event, serially
   and with ``processes=2``: the wall-time ratio.

simpy is a benchmark dependency only (``pip install -e '.[bench]'``).

Run: ``python benchmarks/capacity_sim.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from rpbook.planning.capacity import ColdStart, Prices, Requests, Scaling, simulate, sweep  # noqa: E402

GOAL_S = 5.0
# localpod's ``realistic`` profile for a 7B model (lib/localpod/profiles.py): container 20 s,
# engine init 25 s, FlashBoot 3 s within 900 s, scaler tick 0.5 s; model load as a volume read
# of ~14.5 GB at 0.8 GB/s.
COLD = ColdStart(
    container_start_s=20.0,
    model_load_s=18.0,
    engine_init_s=25.0,
    flashboot_start_s=3.0,
    flashboot_window_s=900.0,
    scaler_tick_s=0.5,
)
PRICES = Prices(flex_usd_per_s=0.00031, active_usd_per_s=0.00024)  # illustrative 24 GB pool figures
CONCURRENCY = 8


def make_event(n: int, seed: int, mean_rate: float = 40.0) -> Requests:
    """``n`` chat requests: a Poisson process whose rate swings between 0.25x and 1.75x of
    ``mean_rate`` with a 20-minute period (time-rescaled unit-rate arrivals); TTFT 0.15-0.4 s,
    answers of ~120 tokens at 25 ms each (geometric lengths)."""
    rng = np.random.default_rng(seed)
    period = 1200.0
    horizon = n / mean_rate
    grid = np.linspace(0.0, horizon * 1.1, 200_001)
    rate = mean_rate * (1.0 + 0.75 * np.sin(2 * np.pi * grid / period))
    cumulative = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * np.diff(grid))])
    unit = np.cumsum(rng.exponential(1.0, n))
    arrivals = np.interp(unit, cumulative, grid)
    ttft = rng.uniform(0.15, 0.4, n)
    tokens = rng.geometric(1 / 120, n)
    return Requests(arrivals, ttft, ttft + tokens * 0.025)


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def simpy_waits(requests: Requests, slots: int) -> np.ndarray:
    """The fixed-pool event in simpy: every request a process that takes one of ``slots`` (FIFO)."""
    import simpy

    arrivals = requests.arrival_s.tolist()
    durations = requests.duration_s.tolist()
    waits = [0.0] * len(arrivals)
    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=slots)

    def job(k: int, arrived: float, duration: float):  # type: ignore[no-untyped-def]
        with pool.request() as slot:
            yield slot
            waits[k] = env.now - arrived
            yield env.timeout(duration)

    def source():  # type: ignore[no-untyped-def]
        for k, arrived in enumerate(arrivals):
            yield env.timeout(max(0.0, arrived - env.now))
            env.process(job(k, arrived, durations[k]))

    env.process(source())
    env.run()
    return np.asarray(waits)


def grid_50() -> list[Scaling]:
    return [
        Scaling(
            workers_max=m,
            idle_timeout_s=idle,
            scaler_type=scaler,
            scaler_value=value,  # type: ignore[arg-type]
            concurrency=CONCURRENCY,
        )
        for m in (10, 15, 20, 25, 30)
        for idle in (5.0, 30.0, 60.0, 120.0, 300.0)
        for scaler, value in (("QUEUE_DELAY", 4.0), ("REQUEST_COUNT", 8.0))
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests in the event (default 1,000,000)")
    parser.add_argument(
        "--sweep-requests", type=int, default=100_000, help="requests per sweep setting (default 100,000)"
    )
    parser.add_argument(
        "--fixed-workers",
        type=int,
        default=24,
        help="always-on workers in the simpy comparison (default 24: the peaks queue)",
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--no-simpy", action="store_true", help="skip the simpy comparison")
    parser.add_argument("--no-sweep", action="store_true", help="skip the grid sweep")
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared: wall time stretches "
        "with it; CPU time does not)"
    )
    event = make_event(args.requests, args.seed)
    n = len(event)
    print(
        f"event: {n:,} requests over {event.arrival_s[-1] / 3600:.1f} h, mean service "
        f"{event.duration_s.mean():.2f} s, concurrency {CONCURRENCY}"
    )

    # 1. the planner's event
    scaling = Scaling(
        workers_min=0,
        workers_max=30,
        idle_timeout_s=60.0,
        scaler_type="QUEUE_DELAY",
        scaler_value=4.0,
        concurrency=CONCURRENCY,
    )
    result, wall, cpu = timed(simulate, event, scaling, COLD, PRICES, seed=args.seed)
    s = result.summary()
    verdict = "meets" if wall <= GOAL_S * n / 1_000_000 else "misses"
    print(
        f"\n1. scale-from-zero event ({scaling.scaler_type} {scaling.scaler_value:g} s, max {scaling.workers_max} "
        f"workers, idle {scaling.idle_timeout_s:g} s, cold start {COLD.cold_s:g} s)"
    )
    print(
        f"   {n / wall:,.0f} requests simulated per second; the event took {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"({verdict} the {GOAL_S:g} s goal per 1,000,000 requests on wall time)"
    )
    print(
        f"   p50/p95/p99 TTFT {s['ttft_p50_s']:.2f}/{s['ttft_p95_s']:.2f}/{s['ttft_p99_s']:.2f} s, "
        f"cold starts {result.cold_starts}, FlashBoot {result.flashboot_starts}, "
        f"{s['worker_h']:.1f} worker-h, ${result.cost_usd:.2f}"
    )

    # 2. fixed pool: rpbook.planning.capacity against simpy
    fixed = Scaling(workers_min=args.fixed_workers, workers_max=args.fixed_workers, concurrency=CONCURRENCY)
    ours, our_wall, our_cpu = timed(simulate, event, fixed, COLD, PRICES, seed=args.seed)
    our_mean = float(ours.queue_wait_s.mean())
    print(f"\n2. the same event with {args.fixed_workers} always-on workers (no cold starts)")
    print(
        f"   rpbook.planning.capacity: {our_wall:.2f} s wall, {our_cpu:.2f} s CPU ({n / our_wall:,.0f} req/s), "
        f"mean wait {our_mean:.4f} s"
    )
    ok = True
    if not args.no_simpy:
        waits, simpy_wall, simpy_cpu = timed(simpy_waits, event, args.fixed_workers * CONCURRENCY)
        simpy_mean = float(waits.mean())
        rel = abs(our_mean - simpy_mean) / simpy_mean if simpy_mean > 0 else abs(our_mean)
        ok = rel <= 0.02
        print(
            f"   simpy {__import__('simpy').__version__}: {simpy_wall:.2f} s wall, {simpy_cpu:.2f} s CPU "
            f"({n / simpy_wall:,.0f} req/s), "
            f"mean wait {simpy_mean:.4f} s"
        )
        print(
            f"   speed-up x{simpy_wall / our_wall:.1f} wall, x{simpy_cpu / our_cpu:.1f} CPU; "
            f"mean waits differ by {rel:.3%} "
            f"({'within' if ok else 'NOT within'} 2%)"
        )

    # 3. sweep over 50 settings, serial against two processes
    if not args.no_sweep:
        small = make_event(args.sweep_requests, args.seed)
        grid = grid_50()
        serial, serial_wall, serial_cpu = timed(sweep, small, grid, COLD, PRICES, seed=args.seed, processes=1)
        before = os.times()
        parallel, parallel_wall, _ = timed(sweep, small, grid, COLD, PRICES, seed=args.seed, processes=2)
        after = os.times()
        child_cpu = after.children_user + after.children_system - before.children_user - before.children_system
        same = serial == parallel
        print(f"\n3. sweep of {len(grid)} settings x {len(small):,} requests")
        print(
            f"   serial {serial_wall:.2f} s wall ({serial_cpu:.2f} s CPU); processes=2 {parallel_wall:.2f} s wall "
            f"({child_cpu:.2f} s CPU in the two processes): ratio x{serial_wall / parallel_wall:.2f} "
            f"(load average now {os.getloadavg()[0]:.1f}); rows identical: {same}"
        )
        ok = ok and same
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
