"""What a crash-looping endpoint bills in localpod, and when Runpod's scale-down stops it.

The case of issue 20 item 3: an endpoint whose env references a Runpod secret the account lacks
(``{{ RUNPOD_SECRET_nope }}``) and one always-on worker. Its worker cannot start and retries. Per the
state table of runpod/docs ``serverless/workers/overview.mdx`` an unhealthy worker does not bill;
``serverless/troubleshooting.mdx`` says Runpod scales such an endpoint down (threshold undocumented;
localpod's ``unhealthy_scale_down_s``). Prints the billed worker-seconds against the seconds the
loop ran, and the endpoint's max workers at the end. Run it against another checkout's localpod with
``PYTHONPATH=<checkout>/lib`` to compare.

    PYTHONPATH=lib python benchmarks/crash_loop_billing.py --seconds 20 --scale-down-s 10
"""

from __future__ import annotations

import argparse
import time

import httpx

from localpod_process import free_port, start_localpod

KEY = "rpa_BENCHMARK_KEY_NOT_REAL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the crash loop runs")
    parser.add_argument("--scale-down-s", type=float, default=None, help="override unhealthy_scale_down_s")
    args = parser.parse_args()

    port = free_port()
    proc = start_localpod(port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": "hf_benchmark_not_real"})
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        if args.scale_down_s is not None:
            httpx.patch(
                f"{base}/_localpod/config",
                json={"overrides": {"unhealthy_scale_down_s": args.scale_down_s}},
                headers=headers,
            ).raise_for_status()
        created = httpx.post(
            f"{base}/api.runpod.io/v2/serverless",
            json={
                "name": "crash-loop",
                "type": "QUEUE",
                "image": "runpod/mock-worker:latest",
                "env": {"GREETING": "{{ RUNPOD_SECRET_nope }}"},
                "gpu": {"pools": ["ADA_24", "AMPERE_24"]},
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
                "workers": {"min": 1, "max": 1},
            },
            headers=headers,
        )
        if created.status_code >= 400:
            raise SystemExit(f"endpoint create refused: {created.text}")
        endpoint_id = created.json()["id"]
        started = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        state = httpx.get(f"{base}/_localpod/state", headers=headers).json()
        sessions = [s for s in state["sessions"] if s["endpoint_id"] == endpoint_id]
        now = time.time()
        billed = sum(
            max(0.0, (s["stopped_at"] if s["stopped_at"] is not None else now) - s["started_at"]) for s in sessions
        )
        endpoint = httpx.get(f"{base}/api.runpod.io/v2/serverless/{endpoint_id}", headers=headers).json()
        usd = httpx.get(f"{base}/api.runpod.io/v2/billing/serverless", params={"lastN": 1}, headers=headers).json()[
            "metadata"
        ]["totals"]["totalAmount"]
        print(f"crash loop ran        {elapsed:8.1f} s")
        print(f"worker sessions       {len(sessions):8d}")
        print(f"billed worker-seconds {billed:8.2f} s  ({billed / elapsed:.1%} of the loop)")
        print(f"billed (REST v2)      {usd:8.6f} USD")
        print(f"max workers at end    {endpoint['workers']['max']:8d}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
