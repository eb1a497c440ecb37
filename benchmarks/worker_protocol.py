"""What the worker protocol costs: warm ``runsync`` through a real SDK worker process against
localpod's in-process worker and the bare route, jobs/s, and a process worker's cold start.

Two localpod processes are started here, in the same run: one with the default in-process workers,
one with ``--worker-processes`` (localpod's mock-worker emulation as a handler in the runpod SDK
loop) and ``--handler`` for ``tests/handlers/behaviours.py`` (a user's handler; ``CONCURRENCY`` set
on its template). Figures, each against a baseline measured in the same run:

1. Warm ``runsync`` latency, one request at a time over a keep-alive connection: p50/p95 of the bare
   route (``/_localpod/echo``), the in-process mock worker, the SDK process (concurrency 1, as the
   SDK's default and runpod/mock-worker) and the user's handler at concurrency 50; the added p50 is
   the difference from the in-process worker.
2. Jobs/s with 32 clients: in-process, SDK process at concurrency 1, the user's handler at 50.
3. Cold start of a process worker (Python + SDK import + handler module) next to the profile's
   simulated cold start: the first ``runsync`` to a fresh endpoint, in-process and SDK process.

Run: ``python benchmarks/worker_protocol.py`` (``--help`` for sizes). Rate limits are off.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from localpod_process import free_port, start_localpod

KEY = "rpa_BENCH_KEY_NOT_REAL"
HF_TOKEN = "hf_bench_token_not_real"
HANDLER = Path(__file__).resolve().parents[1] / "tests" / "handlers" / "behaviours.py"


class Server:
    def __init__(self, args: list[str]) -> None:
        self.port = free_port()
        self.proc = start_localpod(self.port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN}, args=args)
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        self.http.patch("/_localpod/config", json={"rate_limits": False}).raise_for_status()

    def endpoint(self, name: str, image: str, env: dict[str, str] | None = None) -> str:
        template = self.http.post(
            "/api.runpod.io/v2/templates",
            json={"name": f"{name}-template", "image": image, "serverless": True, "env": env or {}},
        )
        template.raise_for_status()
        body = {
            "name": name,
            "type": "QUEUE",
            "templateId": template.json()["id"],
            "gpu": {"pools": ["AMPERE_24"]},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            "workers": {"min": 0, "max": 1, "idleTimeout": 600},
        }
        response = self.http.post("/api.runpod.io/v2/serverless", json=body)
        response.raise_for_status()
        return str(response.json()["id"])

    def runsync(self, endpoint_id: str, job_input: Any) -> dict[str, Any]:
        response = self.http.post(f"/api.runpod.ai/v2/{endpoint_id}/runsync?wait=120000", json={"input": job_input})
        response.raise_for_status()
        result = response.json()
        assert result["status"] == "COMPLETED", result
        return result  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def warm_latency(server: Server, path: str, body: Any, count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = server.http.post(path, json=body)
        response.raise_for_status()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


async def jobs_per_second(server: Server, endpoint_id: str, job_input: Any, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=server.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                url = f"/api.runpod.ai/v2/{endpoint_id}/runsync?wait=120000"
                response = await c.post(url, json={"input": job_input})
                if response.json().get("status") == "COMPLETED":
                    done += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=60, help="sequential warm jobs per path (default 60)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()

    inproc = Server([])
    sdk = Server(["--worker-processes", "--handler", f"bench/behaviours={HANDLER}"])
    try:
        print("cold start (first runsync to a fresh endpoint, fast profile):")
        cold: dict[str, str] = {}
        for label, server, image, env in (
            ("in-process mock-worker", inproc, "runpod/mock-worker:1.0", None),
            ("SDK process mock-worker", sdk, "runpod/mock-worker:1.0", None),
            ("SDK process user handler, concurrency 50", sdk, "bench/behaviours:1", {"CONCURRENCY": "50"}),
        ):
            endpoint_id = server.endpoint(label.replace(" ", "-").replace(",", ""), image, env)
            cold[label] = endpoint_id
            start = time.perf_counter()
            result = server.runsync(endpoint_id, {"mode": "echo"} if "user" in label else {})
            print(f"  {label:<44} {time.perf_counter() - start:6.2f} s  (delayTime {result['delayTime']} ms)")
        profile = inproc.http.get("/_localpod/config").json()["profile"]
        print(f"  profile's simulated container start: {profile['container_start_s']:.2f} s")

        print(f"\nwarm runsync, {options.jobs} jobs one at a time (p50 / p95 ms):")
        rows = [
            ("bare route /_localpod/echo", inproc, "/_localpod/echo", {"input": {}}),
            ("in-process mock-worker", inproc, f"/api.runpod.ai/v2/{cold['in-process mock-worker']}/runsync", None),
            ("SDK process mock-worker", sdk, f"/api.runpod.ai/v2/{cold['SDK process mock-worker']}/runsync", None),
            (
                "SDK process user handler, concurrency 50",
                sdk,
                f"/api.runpod.ai/v2/{cold['SDK process user handler, concurrency 50']}/runsync",
                {"input": {"mode": "echo"}},
            ),
        ]
        baseline = None
        for label, server, path, body in rows:
            p50, p95 = warm_latency(server, path, body or {"input": {}}, options.jobs)
            if label.startswith("in-process"):
                baseline = p50
            added = ""
            if baseline is not None and not label.startswith("in-process"):
                added = f"  added p50 {p50 - baseline:+8.1f} ms"
            print(f"  {label:<44} {p50:8.1f} / {p95:8.1f}{added}")

        print(f"\njobs/s with {options.clients} clients for {options.seconds:g} s:")
        rates = {}
        for label, server, job_input in (
            ("in-process mock-worker", inproc, {}),
            ("SDK process mock-worker", sdk, {}),
            ("SDK process user handler, concurrency 50", sdk, {"mode": "echo"}),
        ):
            rate = jobs_per_second(server, cold[label], job_input, options.clients, options.seconds)
            rates[label] = asyncio.run(rate)
        base_rate = rates["in-process mock-worker"]
        for label, rate in rates.items():
            print(f"  {label:<44} {rate:8.1f}  (×{rate / base_rate:.3f} of in-process)")
    finally:
        inproc.stop()
        sdk.stop()


if __name__ == "__main__":
    main()
