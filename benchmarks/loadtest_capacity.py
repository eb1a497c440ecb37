"""Does ``rpbook.endpoint.loadtest`` measure the server, not itself? And how many streams does one client sustain?

A load generator that cannot keep up measures itself: its event loop reads chunks late, and the TTFT
and inter-token latency (ITL) it reports grow above what the server sends. So both are injected
through localpod's profile (``time_to_first_token_s``, ``inter_token_s``; defaults: the project's
``realistic`` profile, 150 ms and 25 ms) and, at each step of concurrent streams, the same closed
loop runs against a warm ``runpod/worker-v1-vllm`` endpoint (one worker, ``MAX_CONCURRENCY`` above
the largest step, rate limits off) from three clients, one after the other:

- **rpbook**: ``run_load_test`` (chat route), one warm-up request per stream left out;
- **reference**: a minimal aiohttp client (one session, clock started before the POST as in
  ``vllm bench serve``, the same staggered lanes and warm-up), the floor of what a client adds;
- **GuideLLM** (``--guidellm PATH`` to a ``guidellm`` 0.8.1 executable in a venv of its own):
  ``guidellm run`` with a concurrent profile; its ITL is a per-request mean (i.e. TPOT, see
  docs/metrics.md), its CPU is its whole process tree's.

Each client runs twice per step, with ``--rounds`` and twice as many requests per stream: latencies
are the second run's, CPU per output token the difference of the two runs' CPU over the difference of
their output tokens (steady state: start-up, imports and connections are not counted; a small throwaway
run of each in-process client comes first, so that the first step does not pay for the imports).

A step is *sustained* by rpbook when, against the injected values, its p50 TTFT and p50 ITL are
within 5% (``--tolerance``) and its p99 ITL at most 50% above (``--p99-tolerance``), all together.
The reference client is judged the same way: when it misses too, the machine (a starved server), not
the load tester, is the limit. The server's CPU share is printed beside them: client and server
share this machine's cores, so a busy machine lowers every figure.

Run: ``python benchmarks/loadtest_capacity.py`` (``--help``); the goals of issue 18 item 4:
``python benchmarks/loadtest_capacity.py --ttft 0.2 --itl 0.02 --tokens 32 --steps 8,64,200
--guidellm /path/to/venv/bin/guidellm``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
PROMPT = "Write a short story about a lighthouse."


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


@dataclass
class Figures:
    """One client's figures at one step (milliseconds; CPU in microseconds per output token)."""

    ttft: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0
    cpu_s: float = 0.0

    def p(self, name: str, q: float) -> float:
        values = sorted(getattr(self, name))
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(q / 100 * len(values)))] if q != 50 else statistics.median(values)

    @property
    def cpu_us_per_token(self) -> float:
        """NaN (printed "nan") when the larger run did not cost more CPU than the smaller one: at
        small steps a process's start-up noise (GuideLLM's own start, several CPU-seconds) can
        exceed the CPU its extra tokens cost, and the difference says nothing."""
        return self.cpu_s / self.tokens * 1e6 if self.tokens and self.cpu_s > 0 else float("nan")


def run_rpbook(settings: object, endpoint_id: str, streams: int, rounds: int, tokens: int, stagger_s: float) -> Figures:
    cpu0 = time.process_time()
    result = run_load_test(
        settings,  # type: ignore[arg-type]
        KEY,
        endpoint_id,
        MODEL,
        route="chat",
        max_tokens=tokens,
        prompt=PROMPT,
        progress=False,
        health_interval_s=1.0,
        timeout_s=120,
        shape=LoadShape(
            "closed",
            concurrency=streams,
            num_requests=streams * rounds,
            warmup_requests=streams,
            stagger_s=stagger_s,
        ),
    )
    out = Figures(cpu_s=time.process_time() - cpu0)
    assert not isinstance(result, str)
    for r in result.measured:  # type: ignore[union-attr]
        if r.error:
            out.errors += 1
            continue
        if r.ttft_s is not None:
            out.ttft.append(r.ttft_s * 1000)
        out.itl.extend(x * 1000 for x in r.itl_s)
        out.tokens += r.output_tokens
    return out


async def _reference(url: str, streams: int, rounds: int, tokens: int, stagger_s: float) -> Figures:
    """A minimal streaming client: aiohttp, one session, the clock before the POST."""
    import aiohttp

    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "stream": True,
        "ignore_eos": True,
    }
    out = Figures()
    connector = aiohttp.TCPConnector(limit=streams + 16)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:

        async def one(measured: bool) -> None:
            start = time.perf_counter()
            last = None
            async with session.post(url, json=body) as response:
                if response.status >= 400:
                    out.errors += measured
                    await response.read()
                    return
                async for line in response.content:
                    if not line.startswith(b"data:") or line.startswith(b"data: [DONE]"):
                        continue
                    choices = json.loads(line[5:]).get("choices")
                    if not choices or not (choices[0].get("delta") or {}).get("content"):
                        continue
                    now = time.perf_counter()
                    if measured:
                        out.tokens += 1
                        if last is None:
                            out.ttft.append((now - start) * 1000)
                        else:
                            out.itl.append((now - last) * 1000)
                    last = now

        async def lane(offset: float) -> None:
            await asyncio.sleep(offset)
            await one(False)
            for _ in range(rounds):
                await one(True)

        rng = random.Random(0)
        cpu0 = time.process_time()
        await asyncio.gather(*(lane(rng.uniform(0.0, stagger_s)) for _ in range(streams)))
        out.cpu_s = time.process_time() - cpu0
    return out


def run_reference(url: str, streams: int, rounds: int, tokens: int, stagger_s: float) -> Figures:
    return asyncio.run(_reference(url, streams, rounds, tokens, stagger_s))


def _guidellm_once(exe: str, base: str, streams: int, requests: int, tokens: int, out_dir: Path) -> tuple[dict, float]:
    data = out_dir / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": PROMPT}) + "\n" for _ in range(requests)))
    report = out_dir / f"guidellm-{streams}-{requests}.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            exe,
            "run",
            "--backend",
            f"kind=openai_http,target={base},api_key={KEY},model={MODEL},max_tokens={tokens},"
            "extras.body.ignore_eos=true,validate_backend=false",
            "--profile",
            f"kind=concurrent,streams={streams}",
            "--constraint",
            f"kind=max_requests,count={requests}",
            "--data",
            f"kind=json_file,path={data}",
            "--output",
            f"kind=json,path={report}",
            "--disable-console",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "GUIDELLM__LOGGING__CONSOLE_LOG_LEVEL": "ERROR"},
    )
    if done.returncode:
        raise RuntimeError(f"guidellm failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(report.read_text()), cpu


def run_guidellm(exe: str, base: str, streams: int, rounds: int, tokens: int) -> Figures:
    """GuideLLM's p50 TTFT and p50 of its per-request ITL (its definition) from its JSON report; CPU
    of its whole process tree."""
    with tempfile.TemporaryDirectory() as tmp:
        report, cpu = _guidellm_once(exe, base, streams, streams * rounds, tokens, Path(tmp))
    metrics = report["benchmarks"][0]["metrics"]
    out = Figures(cpu_s=cpu, tokens=streams * rounds * tokens)
    out.ttft = [float(metrics["time_to_first_token_ms"]["successful"]["median"])]
    out.itl = [float(metrics["inter_token_latency_ms"]["successful"]["median"])]
    return out


def steady(small: Figures, large: Figures) -> Figures:
    """The large run's latencies, with CPU per token at steady state: the extra CPU of the large run
    over its extra tokens, so that start-up (imports, processes, connections) is not counted."""
    large.cpu_s, large.tokens = large.cpu_s - small.cpu_s, large.tokens - small.tokens
    return large


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="8,64,200,400", help="concurrent streams per step (comma-separated)")
    parser.add_argument("--itl", type=float, default=0.025, help="injected inter-token time, s (realistic)")
    parser.add_argument("--ttft", type=float, default=0.15, help="injected TTFT, s (realistic)")
    parser.add_argument("--tokens", type=int, default=32, help="output tokens per request")
    parser.add_argument("--rounds", type=int, default=3, help="measured requests per stream at each step")
    parser.add_argument("--stagger", type=float, default=0.5, help="lanes start within this many seconds")
    parser.add_argument("--tolerance", type=float, default=0.05, help="p50 TTFT and ITL: allowed relative error")
    parser.add_argument("--p99-tolerance", type=float, default=0.5, help="p99 ITL: allowed excess over injected")
    parser.add_argument("--guidellm", default="", help="path to a guidellm 0.8.1 executable (its own venv)")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    port = free_port()
    server = start_localpod(port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN})
    base = f"http://127.0.0.1:{port}"
    try:
        endpoint_id = warm_endpoint(base, args.ttft, args.itl, max(steps) + 16)
        os.environ["RUNPOD_API_KEY"] = KEY
        settings = load_settings("local", env_file=Path("/nonexistent/.env"), localpod_url=base)
        openai_base = f"{base}/api.runpod.ai/v2/{endpoint_id}/openai"
        ttft_ms, itl_ms = args.ttft * 1000, args.itl * 1000
        print(
            f"injected TTFT {ttft_ms:.0f} ms, ITL {itl_ms:.0f} ms, {args.tokens} tokens per request, "
            f"{args.rounds} measured requests per stream; sustained = p50 TTFT and p50 ITL "
            f"within {args.tolerance:.0%}, p99 ITL <= +{args.p99_tolerance:.0%}; {os.cpu_count()} cores, load "
            f"average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"{'streams':>7} {'client':>9} {'p50 TTFT':>9} {'p50 ITL':>8} {'p99 ITL':>8} {'errors':>6} "
            f"{'CPU us/tok':>10} {'server CPU':>10}  sustained"
        )
        # One small throwaway run of each in-process client first: the first run in this process pays
        # for imports and first-use caches, which would otherwise count as CPU of the first step.
        run_rpbook(settings, endpoint_id, 2, 1, args.tokens, 0.0)
        run_reference(f"{openai_base}/v1/chat/completions", 2, 1, args.tokens, 0.0)
        best, sustained_so_far = 0, True
        for streams in steps:
            rows: list[tuple[str, Figures, float]] = []
            for name in ("rpbook", "reference", "guidellm"):
                if name == "guidellm" and not args.guidellm:
                    continue
                srv0, wall0 = proc_cpu_s(server.pid), time.monotonic()
                runs = []
                for rounds in (args.rounds, 2 * args.rounds):
                    if name == "rpbook":
                        runs.append(run_rpbook(settings, endpoint_id, streams, rounds, args.tokens, args.stagger))
                    elif name == "reference":
                        url = f"{openai_base}/v1/chat/completions"
                        runs.append(run_reference(url, streams, rounds, args.tokens, args.stagger))
                    else:
                        runs.append(run_guidellm(args.guidellm, openai_base, streams, rounds, args.tokens))
                figures = steady(*runs)
                rows.append((name, figures, (proc_cpu_s(server.pid) - srv0) / (time.monotonic() - wall0)))
            for name, f, server_cpu in rows:
                verdict = ""
                if name != "guidellm":  # GuideLLM reports no gap percentiles (its ITL is a per-request mean)
                    ok = (
                        f.errors == 0
                        and abs(f.p("ttft", 50) - ttft_ms) <= ttft_ms * args.tolerance
                        and abs(f.p("itl", 50) - itl_ms) <= itl_ms * args.tolerance
                        and f.p("itl", 99) <= itl_ms * (1 + args.p99_tolerance)
                    )
                    verdict = "yes" if ok else "NO"
                if name == "rpbook":
                    sustained_so_far = sustained_so_far and verdict == "yes"
                    best = streams if sustained_so_far else best
                p99 = f"{f.p('itl', 99):>8.1f}" if name != "guidellm" else f"{'n/a':>8}"
                print(
                    f"{streams:>7} {name:>9} {f.p('ttft', 50):>9.1f} {f.p('itl', 50):>8.2f} {p99} {f.errors:>6} "
                    f"{f.cpu_us_per_token:>10.0f} {server_cpu:>9.0%}  {verdict}"
                )
            rpbook_row = rows[0][1]
            ref_row = rows[1][1]
            ratio = rpbook_row.cpu_us_per_token / ref_row.cpu_us_per_token
            line = f"{streams:>7} rpbook/reference: TTFT {rpbook_row.p('ttft', 50) - ref_row.p('ttft', 50):+.1f} ms"
            line += f", CPU per token x{ratio:.2f}"
            if len(rows) == 3:
                line += (
                    f"; rpbook/GuideLLM CPU per token x{rpbook_row.cpu_us_per_token / rows[2][1].cpu_us_per_token:.2f}"
                )
            print(line)
        print(f"most concurrent streams sustained by one rpbook client process: {best}")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
