"""localpod's own cost: warm ``runsync`` overhead, jobs/s, and a cold-start timeline.

Everything is measured in one run against one localpod process started here, so the figures are
ratios against a baseline from the same server:

1. Latency: warm ``POST /runsync`` (queue + job + worker + mock handler) against ``POST
   /_localpod/echo`` (same HTTP and JSON work, no queue), interleaved one-for-one over keep-alive
   connections; the overhead is the difference of the percentiles.
2. Throughput: concurrent ``runsync`` jobs per second against the echo route's requests per second.
3. Cold start: an OpenAI streaming chat to a fresh vLLM endpoint whose network volume is empty:
   request -> worker INITIALIZING -> ready -> first token, observed from outside through
   ``/health`` and the SSE stream, next to the durations the profile predicts.

Run: ``python benchmarks/localpod_overhead.py`` (``--help`` for sizes). Rate limits are switched
off for the run (Runpod allows 2000 runsync per 10 s; the load test goes past that).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import threading
import time
from typing import Any

import aiohttp
import httpx

from localpod_process import free_port, start_localpod

KEY = "rpa_BENCH_KEY_NOT_REAL"
HF_TOKEN = "hf_bench_token_not_real"
MODEL = "mistralai/Mistral-7B-Instruct-v0.3"


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.request(method, f"/api.runpod.io{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else {}

    def endpoint(self, name: str, image: str, env: dict[str, str], **extra: Any) -> str:
        template = self.rest(
            "POST", "/v2/templates", {"name": f"{name}-template", "image": image, "serverless": True, "env": env}
        )
        body = {
            "name": name,
            "type": "QUEUE",
            "templateId": template["id"],
            "gpu": {"pools": ["AMPERE_24"]},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            **extra,
        }
        return str(self.rest("POST", "/v2/serverless", body)["id"])

    def health(self, endpoint_id: str) -> dict[str, Any]:
        return self.http.get(f"/api.runpod.ai/v2/{endpoint_id}/health").json()

    def wait_ready(self, endpoint_id: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.health(endpoint_id)["workers"]["ready"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("worker never became ready")
            time.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency(port: int, endpoint_id: str, n: int) -> tuple[list[float], list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    job = json.dumps({"input": {"mock_return": {"ok": True}}})
    bare_path, job_path = "/_localpod/echo", f"/api.runpod.ai/v2/{endpoint_id}/runsync"

    def once(path: str) -> float:
        start = time.perf_counter()
        conn.request("POST", path, body=job, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"{path} -> {response.status} {body[:200]!r}")
        return elapsed * 1000

    for _ in range(200):
        once(bare_path)
        once(job_path)
    bare, jobs = [], []
    for _ in range(n):
        bare.append(once(bare_path))
        jobs.append(once(job_path))
    conn.close()
    return bare, jobs


async def throughput(base: str, path: str, seconds: float, concurrency: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"input": {"mock_return": {"ok": True}}}
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(path, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path} -> {response.status}")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def cold_start(api: Api, base: str, profile: dict[str, float]) -> None:
    volume = api.rest("POST", "/v2/network-volumes", {"name": "bench-weights", "size": 50, "dataCenter": "EU-RO-1"})
    endpoint_id = api.endpoint(
        "bench-cold",
        "runpod/worker-v1-vllm:v2.25.2",
        {"MODEL_NAME": MODEL, "HF_TOKEN": HF_TOKEN},
        networkVolumes=[volume["id"]],
        workers={"min": 0, "max": 1, "idleTimeout": 60},
    )
    size = httpx.get(
        f"{base}/huggingface.co/api/models/{MODEL}",
        params={"blobs": "true"},
        headers={"Authorization": f"Bearer {HF_TOKEN}"},
    ).json()
    # vLLM downloads every top-level *.safetensors file (for Mistral also consolidated.safetensors).
    weights = sum(
        s.get("size", 0)
        for s in size["siblings"]
        if s["rfilename"].endswith(".safetensors") and "/" not in s["rfilename"]
    )
    expect_ready = profile["container_start_s"] + weights / profile["download_bytes_per_s"] + profile["engine_init_s"]
    expect_first = expect_ready + profile["time_to_first_token_s"]

    # A warmed-up keep-alive client, so the clock starts when the request leaves, not at client set-up.
    client = httpx.Client(
        base_url=f"{base}/api.runpod.ai/v2/{endpoint_id}/openai/v1",
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    client.get(f"{base}/_localpod/health")
    marks: dict[str, float] = {}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8, "stream": True}
    t0 = time.perf_counter()

    def chat() -> None:
        with client.stream("POST", "/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                delta = json.loads(line[5:])["choices"][0]["delta"]
                if delta.get("content") and "first token" not in marks:
                    marks["first token"] = time.perf_counter() - t0

    thread = threading.Thread(target=chat)
    thread.start()
    while thread.is_alive():
        workers = api.health(endpoint_id)["workers"]
        now = time.perf_counter() - t0
        if workers["initializing"] and "initializing" not in marks:
            marks["initializing"] = now
        if workers["ready"] and "ready" not in marks:
            marks["ready"] = now
        time.sleep(0.005)
    thread.join()
    print(f"\ncold-start timeline (profile fast, {weights / 1e9:.2f} GB of weights onto an empty volume)")
    print(f"  {'stage':<14}{'measured s':>12}{'expected s':>12}{'ratio':>8}")
    rows = [
        ("request", 0.0, 0.0),
        ("initializing", marks.get("initializing", float("nan")), 0.0),
        ("ready", marks.get("ready", float("nan")), expect_ready),
        ("first token", marks.get("first token", float("nan")), expect_first),
    ]
    for stage, measured, expected in rows:
        ratio = f"{measured / expected:.3f}" if expected else "-"
        print(f"  {stage:<14}{measured:>12.3f}{expected:>12.3f}{ratio:>8}")
    within = all(abs(m / e - 1) <= 0.05 for _, m, e in rows if e)
    print(f"  within 5% of the profile: {'yes' if within else 'NO'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="interleaved latency pairs")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients in the throughput run")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_localpod(port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN})
    try:
        api = Api(base)
        config = httpx.patch(
            f"{base}/_localpod/config", json={"rate_limits": False}, headers={"Authorization": f"Bearer {KEY}"}
        ).json()
        endpoint_id = api.endpoint(
            "bench-warm",
            "runpod/mock-worker:latest",
            {"RUNPOD_MAX_CONCURRENCY": "1000"},
            workers={"min": 1, "max": 1, "idleTimeout": 600},
        )
        api.wait_ready(endpoint_id)

        bare, jobs = latency(port, endpoint_id, args.requests)
        print(f"warm runsync vs bare route, {args.requests} interleaved pairs on one keep-alive connection")
        print(f"  {'':<10}{'bare ms':>10}{'runsync ms':>12}{'overhead ms':>13}")
        for q in (50, 90, 99):
            b, j = pct(bare, q), pct(jobs, q)
            print(f"  p{q:<9}{b:>10.3f}{j:>12.3f}{j - b:>13.3f}")
        print(
            f"  mean      {statistics.fmean(bare):>10.3f}{statistics.fmean(jobs):>12.3f}"
            f"{statistics.fmean(jobs) - statistics.fmean(bare):>13.3f}"
        )

        bare_rps = asyncio.run(throughput(base, "/_localpod/echo", args.seconds, args.concurrency))
        jobs_rps = asyncio.run(
            throughput(base, f"/api.runpod.ai/v2/{endpoint_id}/runsync", args.seconds, args.concurrency)
        )
        print(
            f"\nthroughput, {args.concurrency} concurrent clients for {args.seconds:g} s each (client and server "
            f"share {os.cpu_count()} cores)"
        )
        print(f"  bare route      {bare_rps:>8.0f} req/s")
        print(f"  runsync jobs    {jobs_rps:>8.0f} jobs/s   ({jobs_rps / bare_rps:.2f} of bare)")

        cold_start(api, base, config["profile"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
