"""localpod's queue across ``kill -9``: jobs lost, jobs run twice, outage seconds billed; and what
the job journal costs in throughput.

1. Crash: ``localpod serve --state`` gets N jobs (default 1,000) submitted concurrently to a mock
   worker endpoint (each job sleeps ``--job-seconds`` and returns its own index). Once a share of
   them has finished, every job's status is read (what clients saw), the server is killed with
   SIGKILL, left down for ``--outage`` seconds, and restarted on the same state. Then every job is
   polled until it finishes. Printed:
   - jobs lost: ids that answer 404 after the restart, or never finish COMPLETED with their own
     output (goal 0);
   - results run twice: jobs a client saw COMPLETED before the crash whose result (output or
     worker) differs afterwards (goal 0);
   - jobs re-run after the crash: those that were IN_PROGRESS at the kill, requeued as automatic
     retries (``/health`` ``retried``): the at-least-once part, expected, not a loss;
   - seconds billed for the outage: worker sessions of the killed server overlapping
     [kill, restart] (goal 0), and how much billing stopped short of the kill (heartbeat step).
2. Throughput: warm ``/runsync`` jobs/s, 32 concurrent clients, against a server without
   ``--state`` (no journal: the baseline) and one with it, alternated, same run.

Run: ``python benchmarks/localpod_durability.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from localpod_process import free_port, start_localpod

KEY = "rpa_BENCH_KEY_NOT_REAL"
HF_TOKEN = "hf_bench_token_not_real"


def serve(port: int, state: Path | None) -> subprocess.Popen[bytes]:
    """A quiet ``localpod serve`` on ``port`` (with ``--state`` when given), once it answers."""
    return start_localpod(
        port,
        {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN},
        timeout_s=60,
        args=["--state", str(state)] if state is not None else [],
    )


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def create_endpoint(port: int, concurrency: int, workers_max: int) -> str:
    base = f"http://127.0.0.1:{port}"
    httpx.patch(f"{base}/_localpod/config", json={"rate_limits": False}, headers=headers()).raise_for_status()
    rest = httpx.Client(base_url=f"{base}/api.runpod.io", headers=headers(), timeout=30)
    template = rest.post(
        "/v2/templates",
        json={
            "name": "durability",
            "image": "runpod/mock-worker:latest",
            "serverless": True,
            "env": {"RUNPOD_MAX_CONCURRENCY": str(concurrency)},
        },
    )
    template.raise_for_status()
    endpoint = rest.post(
        "/v2/serverless",
        json={
            "name": "durability",
            "type": "QUEUE",
            "templateId": template.json()["id"],
            "gpu": {"pools": ["AMPERE_24"]},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 1},
            "workers": {"min": 1, "max": workers_max, "idleTimeout": 600},
        },
    )
    endpoint.raise_for_status()
    return str(endpoint.json()["id"])


async def submit_all(port: int, endpoint_id: str, n: int, job_seconds: float) -> list[str]:
    """Submit ``n`` jobs at once (64 connections); the ids the server acknowledged, by index."""
    url = f"http://127.0.0.1:{port}/api.runpod.ai/v2/{endpoint_id}/run"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), headers=headers()) as session:

        async def one(i: int) -> str:
            async with session.post(url, json={"input": {"mock_return": {"i": i}, "mock_delay": job_seconds}}) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"/run -> {r.status} {body}")
                return str(body["id"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def statuses(port: int, endpoint_id: str, ids: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """``(http status, body)`` of ``/status`` for every id."""
    base = f"http://127.0.0.1:{port}/api.runpod.ai/v2/{endpoint_id}/status/"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), headers=headers()) as session:

        async def one(job_id: str) -> tuple[int, dict[str, Any]]:
            async with session.get(base + job_id) as r:
                return r.status, await r.json()

        return list(await asyncio.gather(*(one(i) for i in ids)))


def health(port: int, endpoint_id: str) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{port}/api.runpod.ai/v2/{endpoint_id}/health", headers=headers()).json()


def sessions(port: int) -> list[dict[str, Any]]:
    response = httpx.get(f"http://127.0.0.1:{port}/_localpod/state", headers=headers(), timeout=30)
    response.raise_for_status()
    return list(response.json()["sessions"])


def crash(args: argparse.Namespace, workdir: Path) -> None:
    state = workdir / "state.json"
    port = free_port()
    proc = serve(port, state)
    try:
        endpoint_id = create_endpoint(port, args.concurrency, args.workers)
        t0 = time.perf_counter()
        ids = asyncio.run(submit_all(port, endpoint_id, args.jobs, args.job_seconds))
        submit_s = time.perf_counter() - t0
        while health(port, endpoint_id)["jobs"]["completed"] < args.kill_after * args.jobs:
            time.sleep(0.05)
        seen = asyncio.run(statuses(port, endpoint_id, ids))
    finally:
        proc.send_signal(signal.SIGKILL)
        killed_at = time.time()
        proc.wait(timeout=10)
    seen_counts: dict[str, int] = {}
    for _, body in seen:
        seen_counts[body.get("status", "?")] = seen_counts.get(body.get("status", "?"), 0) + 1
    completed_before = {
        job_id: body for job_id, (_, body) in zip(ids, seen, strict=True) if body.get("status") == "COMPLETED"
    }

    time.sleep(args.outage)
    restarted_at = time.time()
    port = free_port()
    proc = serve(port, state)
    try:
        restart_s = time.time() - restarted_at
        first = asyncio.run(statuses(port, endpoint_id, ids))
        missing = sum(1 for code, _ in first if code == 404)
        retried = health(port, endpoint_id)["jobs"]["retried"]
        deadline = time.monotonic() + args.timeout
        final = first
        while time.monotonic() < deadline:
            final = asyncio.run(statuses(port, endpoint_id, ids))
            if all(
                code == 200 and body.get("status") in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
                for code, body in final
            ):
                break
            time.sleep(0.5)
        old_sessions = [s for s in sessions(port) if s["started_at"] < killed_at]
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    wrong = sum(
        1
        for i, (code, body) in enumerate(final)
        if code != 200 or body.get("status") != "COMPLETED" or body.get("output") != {"i": i}
    )
    lost = max(missing, wrong)
    run_twice = sum(
        1
        for job_id, (_, body) in zip(ids, final, strict=True)
        if job_id in completed_before
        and (body.get("output"), body.get("workerId"))
        != (completed_before[job_id].get("output"), completed_before[job_id].get("workerId"))
    )
    outage_s = sum(
        max(0.0, min(s["stopped_at"] or restarted_at, restarted_at) - max(s["started_at"], killed_at))
        for s in old_sessions
    )
    short_s = max(
        (
            killed_at - s["stopped_at"]
            for s in old_sessions
            if s["stopped_at"] is not None and s["stopped_at"] <= killed_at
        ),
        default=0.0,
    )

    print(
        f"crash: {args.jobs} jobs submitted concurrently in {submit_s:.2f} s to 1 endpoint ({args.workers} mock "
        f"workers x {args.concurrency} slots, {args.job_seconds:g} s per job); kill -9 once "
        f"{args.kill_after:.0%} had finished; down {args.outage:g} s; restart took {restart_s:.2f} s"
    )
    print(
        "  seen by clients just before the kill: "
        + ", ".join(f"{count} {status}" for status, count in sorted(seen_counts.items()))
    )
    print(f"  {'jobs lost (404 after restart, or not COMPLETED with their own output)':<72}{lost:>6}   goal 0")
    print(f"  {'  of which 404 right after the restart':<72}{missing:>6}")
    print(f"  {'results seen COMPLETED before the kill that changed (run twice)':<72}{run_twice:>6}   goal 0")
    print(f"  {'jobs IN_PROGRESS at the kill, requeued and re-run (at-least-once)':<72}{retried:>6}")
    print(f"  {'worker sessions of the killed server':<72}{len(old_sessions):>6}")
    print(f"  {'seconds billed for the outage':<72}{outage_s:>9.3f}   goal 0")
    print(f"  {'seconds before the kill left unbilled (last heartbeat to kill, worst)':<72}{short_s:>9.3f}")


async def throughput(port: int, endpoint_id: str, seconds: float, concurrency: int) -> float:
    url = f"http://127.0.0.1:{port}/api.runpod.ai/v2/{endpoint_id}/runsync"
    body = {"input": {"mock_return": {"ok": True}}}
    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), headers=headers()) as session:

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"/runsync -> {response.status}")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def cost(args: argparse.Namespace, workdir: Path) -> None:
    servers = {}
    for name, state in (("no --state (baseline)", None), ("--state (journal)", workdir / "throughput.json")):
        port = free_port()
        proc = serve(port, state)
        endpoint_id = create_endpoint(port, 1000, 1)
        while health(port, endpoint_id)["workers"]["ready"] < 1:
            time.sleep(0.05)
        asyncio.run(throughput(port, endpoint_id, 1.0, 32))  # warm-up
        servers[name] = (proc, port, endpoint_id, [])
    try:
        for _ in range(args.rounds):
            for _name, (_, port, endpoint_id, rates) in servers.items():
                rates.append(asyncio.run(throughput(port, endpoint_id, args.seconds, 32)))
    finally:
        for proc, *_ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)
    print(
        f"\nthroughput: warm /runsync, 32 concurrent clients, {args.rounds} alternating rounds of {args.seconds:g} s "
        f"(client and servers share {os.cpu_count()} cores)"
    )
    base = sum(servers["no --state (baseline)"][3]) / args.rounds
    for name, (*_, rates) in servers.items():
        mean = sum(rates) / len(rates)
        print(
            f"  {name:<24}{mean:>8.0f} jobs/s   ({mean / base:.2f} of baseline)   rounds: "
            + " ".join(f"{r:.0f}" for r in rates)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs submitted before the kill")
    parser.add_argument("--job-seconds", type=float, default=1.0, help="mock_delay of each job")
    parser.add_argument("--workers", type=int, default=2, help="max workers of the endpoint")
    parser.add_argument("--concurrency", type=int, default=50, help="jobs one worker runs at once")
    parser.add_argument("--kill-after", type=float, default=0.3, help="share of jobs finished at the kill")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the server stays down")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every job after restart")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per server")
    parser.add_argument("--part", choices=("all", "crash", "throughput"), default="all", help="what to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localpod-durability-") as tmp:
        if args.part in ("all", "crash"):
            crash(args, Path(tmp))
        if args.part in ("all", "throughput"):
            cost(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
