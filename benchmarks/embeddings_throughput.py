"""Embeddings/s through localpod's Infinity endpoint against the same model called directly.

Both sides embed the same texts with the same model (wordllama, what localpod's
``runpod/worker-infinity-embedding`` emulation runs), for batches of 1, 16 and 64 texts:

- direct: ``WordLlama.load(cache_dir=<wordllama package dir>, disable_download=True)`` in this
  process, ``model.embed(texts, norm=True)`` in a loop, one caller: once on one thread
  (``TOKENIZERS_PARALLELISM=false``, how localpod's model process runs it; the target's baseline)
  and once with the tokenizer's thread pool (the library's default; it keeps ~1.3 cores busy);
- localpod: ``POST /{endpoint_id}/openai/v1/embeddings`` (HTTP, queue job, worker, JSON floats back)
  on a warm endpoint (workers min 1, ``RUNPOD_MAX_CONCURRENCY`` 50, ``BATCH_SIZES`` 32: the worker
  merges concurrent requests into model calls of up to 32 texts, as Infinity does, and runs them in
  its model process on one thread), from several concurrent clients. Each client parses its first
  answer in full and checks every later one by counting its vectors in the bytes: parsing all of
  them (``--parse-all``) costs the load generator about a fifth of a core at batch 64, taken from
  the cores it shares with the server (the answers' shape is checked by the tests).

localpod runs as a subprocess (``python -m localpod serve``) with rate limits off; client and
server share this machine's cores. Each batch size is measured in ``--rounds`` alternating
direct/localpod rounds, so a slow spell of a shared machine hits every side; the table shows the
medians, the median and range of the per-round ratios (localpod against the direct run just before
it), and the cores the server (with its model process) and the client used while localpod served.
The target is localpod >= 70% of direct at batch 64.

The HTTP client is aiohttp by default. ``--client httpx`` uses ``httpx.AsyncClient`` instead,
which costs the *client* about 2-3 ms of CPU per request (measured here at batch 1: the client
process at ~100% CPU for ~700-1,000 requests/s, against ~2,000 requests/s and ~50% CPU with
aiohttp), so at small batches it measures httpx rather than localpod.

``--py-spy PATH`` samples the server with py-spy (not a project dependency; install it anywhere,
e.g. in a throwaway virtualenv) after the batch-64 rounds and prints where its CPU time goes.

Run: ``python benchmarks/embeddings_throughput.py`` (``--help`` for durations, rounds and clients).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from localpod_process import free_port, start_localpod

KEY = "rpa_BENCH_EMBEDDINGS_KEY_NOT_REAL"
MODEL = "BAAI/bge-small-en-v1.5"
IMAGE = "runpod/worker-infinity-embedding:1.1.4"
BATCHES = (1, 16, 64)
DIMENSION = 256
TARGET_RATIO = 0.70

_WHO = (
    "The support team",
    "A new customer",
    "Our billing system",
    "The mobile app",
    "The warehouse robot",
    "A junior engineer",
    "The night shift",
    "The search index",
    "A delivery driver",
    "The finance report",
)
_WHAT = (
    "answered every ticket about password resets",
    "asked why the invoice was charged twice",
    "lost the connection during the nightly backup",
    "showed a blank screen after the last update",
    "moved three pallets of coffee to the loading dock",
    "fixed the flaky test in the payment service",
    "found a leak in the cooling pipes",
    "returned stale results for the holiday catalogue",
    "waited an hour at the closed gate",
    "shows revenue up eight percent this quarter",
)
_WHEN = (
    "on Monday morning",
    "before the audit",
    "after the storm",
    "during the product launch",
    "last night",
    "at the end of the month",
    "while the manager was away",
    "in the first week of spring",
)


def corpus(size: int = 640) -> list[str]:
    """Distinct sentences of 10-20 words, like the chunks a retrieval pipeline embeds."""
    return [f"{_WHO[i % 10]} {_WHAT[(i // 10) % 10]} {_WHEN[(i // 100 + i) % 8]} (case {i})." for i in range(size)]


def warm_endpoint(base: str) -> str:
    """Template + endpoint through REST v2 (workers min 1), rate limits off, one worker ready."""
    http = httpx.Client(base_url=f"{base}/api.runpod.io", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    httpx.patch(
        f"{base}/_localpod/config", json={"rate_limits": False}, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    ).raise_for_status()
    template = http.post(
        "/v2/templates",
        json={
            "name": "bench-infinity",
            "image": IMAGE,
            "serverless": True,
            "env": {"MODEL_NAMES": MODEL, "RUNPOD_MAX_CONCURRENCY": "50"},
        },
    )
    template.raise_for_status()
    endpoint = http.post(
        "/v2/serverless",
        json={
            "name": "bench-embeddings",
            "type": "QUEUE",
            "templateId": template.json()["id"],
            "gpu": {"pools": ["AMPERE_16"]},
            "workers": {"min": 1, "max": 1, "idleTimeout": 600},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
        },
    )
    endpoint.raise_for_status()
    endpoint_id = str(endpoint.json()["id"])
    health = f"{base}/api.runpod.ai/v2/{endpoint_id}/health"
    deadline = time.monotonic() + 60
    while httpx.get(health, headers={"Authorization": f"Bearer {KEY}"}).json()["workers"]["ready"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the embeddings worker never became ready")
        time.sleep(0.05)
    return endpoint_id


def load_model() -> Any:
    """WordLlama exactly as localpod's Infinity worker loads it (offline, weights from the wheel)."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)  # wordllama calls logging.basicConfig on import
    try:
        import wordllama
        from wordllama import WordLlama
    finally:
        root.removeHandler(guard)
    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def direct_rate(model: Any, texts: list[str], batch: int, seconds: float, *, tokenizer_threads: bool) -> float:
    """``model.embed`` in a loop. ``tokenizer_threads``: the tokenizers library's own thread pool on
    (its default, ~1.3 cores busy here) or off (one thread, as localpod's model process runs it)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if tokenizer_threads else "false"  # read on every call
    done, i = 0, 0
    for _ in range(20):  # warm-up
        model.embed(texts[:batch], norm=True)
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        chunk = [texts[(i + k) % len(texts)] for k in range(batch)]
        vectors = model.embed(chunk, norm=True)
        if len(vectors) != batch:
            raise RuntimeError("the model returned the wrong number of vectors")
        done += batch
        i += batch
    return done / (time.perf_counter() - start)


Post = Callable[[bytes], Awaitable[bytes]]


async def _aiohttp_session(
    url: str, headers: dict[str, str], clients: int, body: Callable[[Post], Awaitable[float]]
) -> float:
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def post(payload: bytes) -> bytes:
            async with session.post(url, data=payload) as response:
                content = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {content[:200]!r}")
                return content

        return await body(post)


async def _httpx_session(
    url: str, headers: dict[str, str], clients: int, body: Callable[[Post], Awaitable[float]]
) -> float:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as http:

        async def post(payload: bytes) -> bytes:
            response = await http.post(url, content=payload)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            return response.content

        return await body(post)


async def localpod_rate(
    base: str,
    endpoint_id: str,
    texts: list[str],
    batch: int,
    seconds: float,
    clients: int,
    client_kind: str = "aiohttp",
    parse_all: bool = False,
) -> float:
    """Embeddings/s from ``clients`` concurrent request loops. Each loop parses its first answer in
    full (indexes in order, 256 floats each) and counts the vectors of every later one in its bytes,
    unless ``parse_all``: parsing every 345 KB answer costs the client about a fifth of a core at
    batch 64, taken from the two cores it shares with the server."""
    url = f"{base}/api.runpod.ai/v2/{endpoint_id}/openai/v1/embeddings"
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def run(post: Post) -> float:
        async def one(offset: int, parse: bool = parse_all) -> None:
            chunk = [texts[(offset + k) % len(texts)] for k in range(batch)]
            content = await post(orjson.dumps({"model": MODEL, "input": chunk, "encoding_format": "float"}))
            if parse:
                data = orjson.loads(content)["data"]
                if [item["index"] for item in data] != list(range(batch)) or not all(
                    len(item["embedding"]) == DIMENSION for item in data
                ):
                    raise RuntimeError(f"asked for {batch} embeddings of {DIMENSION} dims, got {len(data)}")
            elif content.count(b'"embedding":[') != batch:
                raise RuntimeError(f"asked for {batch} embeddings, got {content.count(b'embedding')}")

        for n in range(clients):  # warm-up: open the connections; parse these answers in full
            await one(n, parse=True)
        done = 0
        start = time.perf_counter()
        deadline = start + seconds

        async def loop(n: int) -> None:
            nonlocal done
            offset = n * 97
            while time.perf_counter() < deadline:
                await one(offset)
                done += batch
                offset += batch

        await asyncio.gather(*(loop(n) for n in range(clients)))
        return done / (time.perf_counter() - start)

    session = _aiohttp_session if client_kind == "aiohttp" else _httpx_session
    return await session(url, headers, clients, run)


def child_pids(pid: int) -> list[str]:
    """Children of every thread of a process (the model process is started from a worker thread)."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += (task / "children").read_text().split()
    return children


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children (Linux): the server and its model process."""
    total = 0.0
    try:
        for each in [str(pid), *child_pids(pid)]:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    except OSError:
        return None
    return total


def summarize_py_spy(raw: Path, top: int = 15) -> list[str]:
    """Self and inclusive shares of the sampled frames (py-spy's ``--format raw`` output)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return ["  (no samples)"]
    lines = [f"  {total} samples; self time:"]
    lines += [f"  {n / total:6.1%}  {frame[:110]}" for frame, n in own.most_common(top)]
    lines.append("  inclusive (frames under localpod/ and wordllama/):")
    picked = [(f, n) for f, n in inclusive.most_common() if "localpod/" in f or "wordllama/" in f][:top]
    lines += [f"  {n / total:6.1%}  {frame[:110]}" for frame, n in picked]
    return lines


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process and its children so far (Linux ``/proc``), to show how
    many cores the server and its model process used while they served."""
    total = 0.0
    try:
        for each in [str(pid), *child_pids(pid)]:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None
    return total


def served_rate(
    base: str,
    endpoint_id: str,
    texts: list[str],
    batch: int,
    seconds: float,
    clients: int,
    client_kind: str,
    server_pid: int,
    parse_all: bool,
) -> tuple[float, float | None, float]:
    """Embeddings/s through localpod, and the cores the server and this client used meanwhile."""
    server_before, client_before, wall_before = process_cpu_s(server_pid), time.process_time(), time.perf_counter()
    rate = asyncio.run(localpod_rate(base, endpoint_id, texts, batch, seconds, clients, client_kind, parse_all))
    wall = time.perf_counter() - wall_before
    server_after = process_cpu_s(server_pid)
    server_cores = None if server_before is None or server_after is None else (server_after - server_before) / wall
    return rate, server_cores, (time.process_time() - client_before) / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="direct and localpod measured alternately this many times per batch; medians are shown",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients on the localpod side")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp", help="HTTP client library")
    parser.add_argument(
        "--parse-all",
        action="store_true",
        help="parse every answer's JSON in the client (default: the first per connection)",
    )
    parser.add_argument("--py-spy", metavar="PATH", help="py-spy executable: profile the server at batch 64")
    args = parser.parse_args()

    texts = corpus()
    model = load_model()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_localpod(port, {"LOCALPOD_API_KEY": KEY})
    profile: list[str] = []
    try:
        endpoint_id = warm_endpoint(base)
        rows = []
        for batch in BATCHES:
            asyncio.run(localpod_rate(base, endpoint_id, texts, batch, 0.5, args.clients, args.client))  # warm-up
            one_thread, threaded, served_runs, server_cores, client_cores = [], [], [], [], []
            for _ in range(args.rounds):  # alternate, so that a slow spell of the machine hits every side
                one_thread.append(direct_rate(model, texts, batch, args.seconds, tokenizer_threads=False))
                threaded.append(direct_rate(model, texts, batch, args.seconds, tokenizer_threads=True))
                rate, server, client = served_rate(
                    base, endpoint_id, texts, batch, args.seconds, args.clients, args.client, proc.pid, args.parse_all
                )
                served_runs.append(rate)
                client_cores.append(client)
                if server is not None:
                    server_cores.append(server)
            if args.py_spy and batch == BATCHES[-1]:
                raw = Path(tempfile.mkdtemp(prefix="embeddings-bench-")) / "server.raw"
                spy = subprocess.Popen(
                    [
                        args.py_spy,
                        "record",
                        "-p",
                        str(proc.pid),
                        "-d",
                        str(int(args.seconds)),
                        "-r",
                        "200",
                        "-f",
                        "raw",
                        "-o",
                        str(raw),
                        "--nonblocking",
                        "--subprocesses",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                asyncio.run(localpod_rate(base, endpoint_id, texts, batch, args.seconds, args.clients, args.client))
                spy.wait(timeout=60)
                profile = summarize_py_spy(raw) if raw.exists() else ["  py-spy wrote no profile (ptrace allowed?)"]
            ratios = [r / d for r, d in zip(served_runs, one_thread, strict=True)]  # each localpod round against the
            threaded_ratios = [
                r / d for r, d in zip(served_runs, threaded, strict=True)
            ]  # direct rounds just before it
            rows.append(
                {
                    "batch": batch,
                    "direct": statistics.median(one_thread),
                    "threaded": statistics.median(threaded),
                    "served": statistics.median(served_runs),
                    "ratio": statistics.median(ratios),
                    "threaded_ratio": statistics.median(threaded_ratios),
                    "low": min(ratios),
                    "high": max(ratios),
                    "client": statistics.median(client_cores),
                    "server": statistics.median(server_cores) if server_cores else None,
                }
            )
        memory = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    checks = (
        "every answer parsed" if args.parse_all else "first answer per connection parsed, vectors counted in the rest"
    )
    print(
        f"embeddings/s, {MODEL} served by wordllama (256 dims); localpod: warm endpoint (BATCH_SIZES 32, "
        f"RUNPOD_MAX_CONCURRENCY 50), {args.clients} concurrent {args.client} clients ({checks}), "
        f"/openai/v1/embeddings with float vectors; medians of {args.rounds} alternating rounds of {args.seconds:g} s; "
        f"{os.cpu_count()} cores "
        f"shared by client, server and model process"
    )
    print(
        "  direct: model.embed in this process, one thread (as localpod's model process runs it) and with the "
        "tokenizer's thread pool (its default)"
    )
    print(
        f"  {'batch':>5}  {'direct emb/s':>12}  {'localpod emb/s':>14}  {'ratio':>6}  {'range':>11}  "
        f"{'direct+threads':>14}  {'ratio':>6}  {'server cores':>12}  {'client cores':>12}"
    )
    for row in rows:
        server_text = f"{row['server']:.2f}" if row["server"] is not None else "n/a"
        print(
            f"  {row['batch']:>5}  {row['direct']:>12,.0f}  {row['served']:>14,.0f}  "
            f"{row['ratio']:>6.1%}  {row['low']:>4.0%} - {row['high']:>4.0%}  "
            f"{row['threaded']:>14,.0f}  {row['threaded_ratio']:>6.1%}  {server_text:>12}  "
            f"{row['client']:>12.2f}"
        )
    print("  ratio: median over the rounds of localpod against the direct run just before it")
    last = rows[-1]
    verdict = "met" if last["ratio"] >= TARGET_RATIO else "NOT met"
    print(
        f"  target: localpod >= {TARGET_RATIO:.0%} of direct (one thread) at batch {last['batch']}: {verdict} "
        f"({last['ratio']:.1%}; {last['threaded_ratio']:.1%} of direct with tokenizer threads)"
    )
    if memory is not None:
        print(f"  localpod resident memory after the run (server + model process): {memory:,.0f} MB")
    if profile:
        print(f"\nserver profile at batch {BATCHES[-1]} (py-spy, {args.seconds:g} s):")
        print("\n".join(profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
