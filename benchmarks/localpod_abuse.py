"""localpod's memory under the 50 MiB-name attack (issue 20), against its own idle memory.

One localpod process with a state file is started here. Idle: its resident memory after a few
ordinary requests (a template created, listed). Attack: eight concurrent ``POST /v2/templates``
whose ``name`` is 50 MiB, once with ``Content-Length`` and once streamed (chunked, no length), then
the peak resident memory of the process (``VmHWM`` in ``/proc/<pid>/status``), the state file's
size and what the attack got stored. Goal: peak within 2x of idle (before the bound: 1.7 GB peak,
a 419 MB state file).

Run: ``python benchmarks/localpod_abuse.py`` (``--mib`` and ``--clients`` change the attack).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from localpod_process import free_port, start_localpod

KEY = "rpa_BENCH_KEY_NOT_REAL"


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


async def attack(base: str, mib: int, clients: int, streamed: bool) -> list[int]:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    prefix, suffix = b'{"name": "', b'", "image": "runpod/mock-worker:latest"}'

    async def body() -> AsyncIterator[bytes]:
        yield prefix
        for _ in range(mib):
            yield b"n" * (1 << 20)
        yield suffix

    async with httpx.AsyncClient(timeout=300) as client:

        async def one() -> int:
            url = f"{base}/api.runpod.io/v2/templates"
            if streamed:
                response = await client.post(url, content=body(), headers=headers)
            else:
                payload = prefix + b"n" * (mib << 20) + suffix
                response = await client.post(url, content=payload, headers=headers)
            return response.status_code

        return list(await asyncio.gather(*(one() for _ in range(clients))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=50, help="size of each name in MiB (default 50)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent requests (default 8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state.json"
        port = free_port()
        proc = start_localpod(
            port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": "hf_bench"}, args=["--state", str(state)]
        )
        base = f"http://127.0.0.1:{port}"
        try:
            headers = {"Authorization": f"Bearer {KEY}"}
            for i in range(20):
                httpx.post(
                    f"{base}/api.runpod.io/v2/templates",
                    json={"name": f"warm-{i}", "image": "runpod/mock-worker:latest"},
                    headers=headers,
                ).raise_for_status()
                httpx.get(f"{base}/api.runpod.io/v2/templates", headers=headers).raise_for_status()
            idle = memory_kib(proc.pid, "VmRSS")
            before_peak = memory_kib(proc.pid, "VmHWM")
            statuses = asyncio.run(attack(base, args.mib, args.clients, streamed=False))
            statuses += asyncio.run(attack(base, args.mib, args.clients, streamed=True))
            peak = memory_kib(proc.pid, "VmHWM")
            stored = httpx.get(f"{base}/api.runpod.io/v2/templates", headers=headers).json()["templates"]
            figures = {
                "attack": f"{args.clients} x {args.mib} MiB names, with Content-Length then streamed",
                "answers": sorted(set(statuses)),
                "idle_rss_mib": round(idle / 1024, 1),
                "peak_rss_mib_before_attack": round(before_peak / 1024, 1),
                "peak_rss_mib_after_attack": round(peak / 1024, 1),
                "peak_over_idle": round(peak / idle, 2),
                "templates_stored_by_the_attack": len(stored) - 20,
                "state_file_kib": round(state.stat().st_size / 1024, 1),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(figures, indent=1))
    print(f"peak memory under the attack: {figures['peak_over_idle']}x idle (goal: within 2x)")


if __name__ == "__main__":
    main()
