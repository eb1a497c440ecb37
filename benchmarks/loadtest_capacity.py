"""How many concurrent streams one ``rpbook.endpoint.loadtest`` client process sustains on this machine.

A load generator that cannot keep up measures itself: its event loop reads chunks late, and the
inter-token latency (ITL) it reports grows above what the server sends. So the ITL is injected
through localpod's profile (``inter_token_s``, with ``time_to_first_token_s``), and the client runs
closed loops of rising concurrency against a warm ``runpod/worker-v1-vllm`` endpoint (one worker,
``MAX_CONCURRENCY`` above the largest step, rate limits off). A step is *sustained* when the client's
p50 ITL stays within 5% of the injected value. The table shows each step's p50/p99 ITL, p50 TTFT,
the client's CPU use (its own process time over wall time: 100% is one core) and the server's.

localpod runs as a subprocess (``python -m localpod serve``); client and server share this
machine's cores, so a busy machine lowers the figure. The goal is at least 200 streams.

Run: ``python benchmarks/loadtest_capacity.py`` (``--help`` for the steps and timings).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx

from localpod_process import free_port, start_localpod

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from rpbook.core.settings import load_settings  # noqa: E402
from rpbook.endpoint.loadtest import run_load_test  # noqa: E402
from rpbook.endpoint.loadtest_result import LoadShape  # noqa: E402

KEY = "rpa_BENCH_LOADTEST_KEY_NOT_REAL"
HF_TOKEN = "hf_bench_loadtest_not_real"
MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
IMAGE = "runpod/worker-v1-vllm:v2.25.2"
GOAL = 200
TOLERANCE = 0.05


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux ``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def warm_endpoint(base: str, ttft_s: float, itl_s: float, max_concurrency: int) -> str:
    auth = {"Authorization": f"Bearer {KEY}"}
    httpx.patch(
        f"{base}/_localpod/config",
        headers=auth,
        timeout=10,
        json={
            "profile": "fast",
            "rate_limits": False,
            "overrides": {"time_to_first_token_s": ttft_s, "inter_token_s": itl_s},
        },
    ).raise_for_status()
    http = httpx.Client(base_url=f"{base}/api.runpod.io", headers=auth, timeout=30)
    template = http.post(
        "/v2/templates",
        json={
            "name": "bench-vllm",
            "image": IMAGE,
            "serverless": True,
            "env": {"MODEL_NAME": MODEL, "HUGGING_FACE_HUB_TOKEN": HF_TOKEN, "MAX_CONCURRENCY": str(max_concurrency)},
        },
    )
    template.raise_for_status()
    endpoint = http.post(
        "/v2/serverless",
        json={
            "name": "bench-vllm",
            "type": "QUEUE",
            "templateId": template.json()["id"],
            "gpu": {"pools": ["ADA_24"], "allowedCudaVersions": ["13.0"]},
            "workers": {"min": 1, "max": 1, "idleTimeout": 600},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        },
    )
    endpoint.raise_for_status()
    endpoint_id = str(endpoint.json()["id"])
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/api.runpod.ai/v2/{endpoint_id}/health", headers=auth).json()["workers"]["ready"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the vLLM worker never became ready")
        time.sleep(0.05)
    return endpoint_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="50,100,200,300,400", help="concurrency steps (comma-separated)")
    parser.add_argument("--itl", type=float, default=0.25, help="injected inter-token time, seconds")
    parser.add_argument("--ttft", type=float, default=0.2, help="injected time to first token, seconds")
    parser.add_argument("--tokens", type=int, default=24, help="output tokens per request")
    parser.add_argument("--rounds", type=int, default=2, help="requests per stream at each step")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    port = free_port()
    server = start_localpod(port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN})
    base = f"http://127.0.0.1:{port}"
    try:
        endpoint_id = warm_endpoint(base, args.ttft, args.itl, max(steps) + 16)
        os.environ["RUNPOD_API_KEY"] = KEY
        settings = load_settings("local", env_file=Path("/nonexistent/.env"), localpod_url=base)
        print(
            f"injected ITL {args.itl * 1000:.0f} ms, TTFT {args.ttft * 1000:.0f} ms, {args.tokens} tokens per "
            f"request; sustained = p50 ITL within {TOLERANCE:.0%}; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'streams':>8} {'p50 ITL ms':>11} {'p99 ITL ms':>11} {'p50 TTFT ms':>12} {'errors':>7} "
            f"{'client CPU':>11} {'server CPU':>11}  sustained"
        )
        best = 0
        for concurrency in steps:
            cpu0, srv0, wall0 = time.process_time(), proc_cpu_s(server.pid), time.monotonic()
            result = run_load_test(
                settings,
                KEY,
                endpoint_id,
                MODEL,
                route="chat",
                max_tokens=args.tokens,
                progress=False,
                health_interval_s=1.0,
                timeout_s=120,
                shape=LoadShape("closed", concurrency=concurrency, num_requests=concurrency * args.rounds),
            )
            wall = time.monotonic() - wall0
            client_cpu = (time.process_time() - cpu0) / wall
            server_cpu = (proc_cpu_s(server.pid) - srv0) / wall
            s = result.summary()
            errors = sum(s["errors"].values())
            ok = errors == 0 and abs(s.get("p50_itl_ms", 1e9) - args.itl * 1000) <= TOLERANCE * args.itl * 1000
            if ok:
                best = concurrency
            print(
                f"{concurrency:>8} {s.get('p50_itl_ms', float('nan')):>11.1f} "
                f"{s.get('p99_itl_ms', float('nan')):>11.1f} "
                f"{s.get('p50_ttft_ms', float('nan')):>12.1f} {errors:>7} {client_cpu:>10.0%} {server_cpu:>10.0%}  "
                f"{'yes' if ok else 'NO'}"
            )
            if not ok:
                break
        verdict = "meets" if best >= GOAL else "misses"
        print(f"most concurrent streams sustained by one client process: {best} ({verdict} the goal of {GOAL})")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
