"""How much the QUEUE_DELAY reading moves runbook 06's figures (issue 17 item 4).

Runpod's docs do not say how many workers one QUEUE_DELAY decision starts
(``rpbook.planning.capacity``'s docstring has the sources). This prints the mean and p95 queue wait,
p95 TTFT, cold starts and cost of one setting (concurrency 2, max 10 workers, idle 30 s, queue delay
2 s) under both readings, for runbook 06's default event and for the same event with a one-minute
ramp, on the same requests (seed 0), with the stated Runpod cold-start assumptions
(``servicetimes.cold_start(None)``: 14.5 GB from the volume) and the ADA_24 service prior.

Run: ``python benchmarks/queue_delay_readings.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

from rpbook.planning import capacity, eventtraffic, servicetimes  # noqa: E402

SCALING = capacity.Scaling(
    workers_min=0, workers_max=10, idle_timeout_s=30, scaler_type="QUEUE_DELAY", scaler_value=2, concurrency=2
)
PRICES = capacity.Prices(1.116 / 3600, 1.116 / 3600)  # ADA_24's serverless price in localpod's catalog


def main() -> None:
    service = servicetimes.prior("ADA_24")
    cold = servicetimes.cold_start(None, weights_bytes=14.5e9)
    print(f"setting: {SCALING}; cold start {cold.cold_s:.1f} s")
    for name, shape in (
        ("runbook 06's default event (15 min ramps)", eventtraffic.EventShape()),
        ("the same with 1 min ramps", eventtraffic.EventShape(ramp_up_s=60, ramp_down_s=60)),
    ):
        requests = service.draw(eventtraffic.from_event(shape, seed=0), SCALING.concurrency, seed=0)
        print(f"{name}: {len(requests):,} requests")
        for reading in capacity.QUEUE_DELAY_READINGS:
            r = capacity.simulate(requests, SCALING, cold, PRICES, queue_delay_reading=reading).summary()
            print(
                f"  {reading:17s} mean wait {r['wait_mean_s']:6.2f} s, p95 wait {r['wait_p95_s']:6.2f} s, "
                f"p95 TTFT {r['ttft_p95_s']:6.2f} s, cold starts {r['cold_starts']:.0f}, cost ${r['cost_usd']:.2f}"
            )


if __name__ == "__main__":
    main()
