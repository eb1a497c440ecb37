"""Load test of one endpoint: its OpenAI routes (streamed chat or completions) or its queue route.

Metrics follow ``vllm bench serve`` (read in vllm-project/vllm ``benchmarks/backend_request_func.py``,
``async_request_openai_completions`` / ``async_request_openai_chat_completions``, and
``benchmarks/benchmark_serving.py`` ``calculate_metrics``):

- **TTFT**: from sending the request to the first streamed chunk that carries text;
- **ITL** (inter-token latency): the gaps between successive text-carrying chunks after the first;
- **TPOT** (time per output token): ``(E2EL - TTFT) / (output tokens - 1)``, per request, for
  requests with more than one output token (output tokens from the stream's ``usage``);
- **E2EL**: from sending the request to the stream's ``[DONE]`` (or, on the queue route, to the
  ``/status`` poll that saw the job final);
- **queue delay**: Runpod's ``delayTime`` of the job (queue route only; the OpenAI route does not
  expose it);
- **goodput**: requests that met every SLO given (TTFT, TPOT, E2EL, in ms) per second of the run;
- request throughput = completed requests / run duration, output-token throughput = output tokens
  / run duration, where the run lasts from the first request sent (after warm-up) to the last one
  finished; mean, p50, p90, p95 and p99 of each latency.

Errors are counted by kind: ``429``, ``5xx``, ``4xx``, ``timeout``, ``connection``, and the final
job states ``FAILED``, ``TIMED_OUT``, ``CANCELLED`` of the queue route. A request counts as a cold
start seen when the last ``/health`` sample before it showed no ready worker (``/health`` is
sampled every ``health_interval_s`` for the timeline; it is not a job and keeps no worker warm).

Load shapes: ``closed`` (``concurrency`` requests in flight at all times), ``open`` (requests sent
at ``rate`` per second, Poisson or ``fixed`` intervals; ``burstiness`` < 1 makes it burstier, as the
gamma shape of ``vllm bench serve``), and ``ramp`` (open loop whose rate goes linearly from
``ramp_start_rate`` to ``rate``). Each run is bounded by ``num_requests`` and ``duration_s``;
``warmup_requests`` are sent first and left out of every figure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import json
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from rpbook import __version__
from rpbook.core.display import html_table, progress_bar, rich_output
from rpbook.core.errors import ConfigError
from rpbook.core.pending import NotCreated, Skipped, skip
from rpbook.core.secrets import Secret, reveal_api_key
from rpbook.core.settings import Settings

Route = Literal["chat", "completions", "queue"]
ROUTES = ("chat", "completions", "queue")
SHAPES = ("closed", "open", "ramp")
PERCENTILES = (50, 90, 95, 99)
FINAL_JOB_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


@dataclass(frozen=True)
class LoadShape:
    """How requests arrive and when the run ends (see the module docstring)."""

    kind: str = "closed"
    concurrency: int = 8
    """closed: requests in flight; open/ramp: the most in flight at once (0: no limit)."""
    rate: float = 1.0
    """open: requests per second; ramp: the final rate."""
    distribution: str = "poisson"
    burstiness: float = 1.0
    ramp_start_rate: float = 0.5
    num_requests: int = 100
    duration_s: float = 300.0
    warmup_requests: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SHAPES:
            raise ConfigError(f"load shape must be one of {', '.join(SHAPES)}, got {self.kind!r}")
        if self.distribution not in ("poisson", "fixed"):
            raise ConfigError(f"distribution must be 'poisson' or 'fixed', got {self.distribution!r}")
        if self.kind == "closed" and self.concurrency < 1:
            raise ConfigError(f"a closed loop needs concurrency >= 1, got {self.concurrency}")
        if self.kind != "closed" and self.rate <= 0:
            raise ConfigError(f"an open loop needs rate > 0 requests/s, got {self.rate}")
        if self.burstiness <= 0:
            raise ConfigError(f"burstiness must be > 0 (1 = Poisson), got {self.burstiness}")
        if self.num_requests < 1 or self.duration_s <= 0:
            raise ConfigError("num_requests must be >= 1 and duration_s > 0")

    def interval_s(self, index: int, rng: random.Random) -> float:
        """Wait before request ``index`` of an open loop (vllm bench serve: gamma with shape
        ``burstiness`` and mean ``1/rate``; shape 1 is exponential, i.e. Poisson arrivals)."""
        rate = self.rate
        if self.kind == "ramp":
            progress = index / max(self.num_requests - 1, 1)
            rate = self.ramp_start_rate + (self.rate - self.ramp_start_rate) * progress
        if self.distribution == "fixed":
            return 1.0 / rate
        return rng.gammavariate(self.burstiness, 1.0 / (rate * self.burstiness))


@dataclass(frozen=True)
class SLO:
    """Service-level objectives for goodput, in milliseconds (None: not checked)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def met(self, r: RequestRecord) -> bool:
        if r.error:
            return False
        checks = [(self.ttft_ms, r.ttft_s), (self.tpot_ms, r.tpot_s), (self.e2el_ms, r.e2el_s)]
        return all(limit is None or (value is not None and value * 1000 <= limit) for limit, value in checks)


@dataclass
class RequestRecord:
    """One request, as one CSV row."""

    index: int
    route: str
    warmup: bool
    sent_s: float
    """Seconds since the run started."""
    concurrency_at_send: int
    cold: bool
    e2el_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    output_tokens: int = 0
    error: str = ""
    """Kind: 429, 5xx, 4xx, timeout, connection, FAILED, TIMED_OUT, CANCELLED; empty when fine."""
    detail: str = ""
    queue_delay_s: float | None = None
    execution_s: float | None = None
    job_id: str = ""

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["itl_s"] = ";".join(f"{x:.6f}" for x in self.itl_s)
        out["itl_mean_s"] = float(np.mean(self.itl_s)) if self.itl_s else None
        return out


@dataclass
class HealthSample:
    t_s: float
    in_queue: int
    in_progress: int
    ready: int
    running: int
    initializing: int


@rich_output
@dataclass
class LoadTestResult:
    endpoint_id: str
    route: str
    shape: LoadShape
    slo: SLO
    max_tokens: int
    requests: list[RequestRecord]
    health: list[HealthSample]
    transport_overhead_s: float
    """p50 round trip of a request that generates nothing through the same route (see
    ``_Runner._transport_overhead``): what network, queue and worker hand-off add to every TTFT."""
    versions: dict[str, str]
    started_wall: float
    files: dict[str, str] = field(default_factory=dict)

    @property
    def measured(self) -> list[RequestRecord]:
        return [r for r in self.requests if not r.warmup]

    @property
    def duration_s(self) -> float:
        rows = self.measured
        if not rows:
            return 0.0
        ends = [r.sent_s + (r.e2el_s or 0.0) for r in rows]
        return max(ends) - min(r.sent_s for r in rows)

    def summary(self) -> dict[str, Any]:
        rows = self.measured
        ok = [r for r in rows if not r.error]
        duration = self.duration_s or float("nan")
        errors: dict[str, int] = {}
        for r in rows:
            if r.error:
                errors[r.error] = errors.get(r.error, 0) + 1
        out: dict[str, Any] = {
            "requests": len(rows),
            "completed": len(ok),
            "errors": errors,
            "cold_starts_seen": sum(1 for r in rows if r.cold),
            "duration_s": duration,
            "request_throughput_per_s": len(ok) / duration if duration else 0.0,
            "output_token_throughput_per_s": sum(r.output_tokens for r in ok) / duration if duration else 0.0,
            "goodput_per_s": sum(1 for r in ok if self.slo.met(r)) / duration if duration else 0.0,
            "max_concurrency_seen": max((r.concurrency_at_send for r in rows), default=0),
            "transport_overhead_ms": self.transport_overhead_s * 1000,
        }
        series: dict[str, list[float | None]] = {
            "ttft_ms": [r.ttft_s for r in ok],
            "tpot_ms": [r.tpot_s for r in ok],
            "itl_ms": [x for r in ok for x in r.itl_s],
            "e2el_ms": [r.e2el_s for r in ok],
            "queue_delay_ms": [r.queue_delay_s for r in ok],
        }
        for name, values in series.items():
            clean = np.array([v * 1000 for v in values if v is not None], dtype=np.float64)
            if clean.size == 0:
                continue
            out[f"mean_{name}"] = float(clean.mean())
            for p in PERCENTILES:
                out[f"p{p}_{name}"] = float(np.percentile(clean, p))
        return out

    @property
    def figures(self) -> dict[str, float | int]:
        s = self.summary()
        keys = (
            "requests",
            "completed",
            "cold_starts_seen",
            "request_throughput_per_s",
            "output_token_throughput_per_s",
            "goodput_per_s",
            "p50_ttft_ms",
            "p99_ttft_ms",
            "p50_itl_ms",
            "p99_itl_ms",
            "p50_e2el_ms",
            "p99_e2el_ms",
            "p50_queue_delay_ms",
            "transport_overhead_ms",
        )
        out = {f"load_{k}": round(s[k], 3) if isinstance(s[k], float) else s[k] for k in keys if k in s}
        out["load_errors"] = sum(s["errors"].values())
        return out

    def save(self, out_dir: str | Path, name: str = "loadtest") -> dict[str, str]:
        """``<name>.json`` (summary, exact load shape, SLOs, versions, every request) and
        ``<name>.csv`` (one row per request)."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = folder / f"{name}.json", folder / f"{name}.csv"
        rows = [r.row() for r in self.requests]
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["index"])
            writer.writeheader()
            writer.writerows(rows)
        json_path.write_text(
            json.dumps(
                {
                    "endpoint_id": self.endpoint_id,
                    "route": self.route,
                    "shape": asdict(self.shape),
                    "slo": asdict(self.slo),
                    "max_tokens": self.max_tokens,
                    "versions": self.versions,
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
                    "summary": self.summary(),
                    "health": [asdict(h) for h in self.health],
                    "requests": rows,
                },
                indent=1,
                default=str,
            )
        )
        self.files = {"json": str(json_path), "csv": str(csv_path)}
        return self.files

    def __str__(self) -> str:
        s = self.summary()
        errs = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "none"
        ttft = f"p50 TTFT {s['p50_ttft_ms']:.1f} ms" if "p50_ttft_ms" in s else "TTFT n/a"
        itl = f"p50 ITL {s['p50_itl_ms']:.2f} ms" if "p50_itl_ms" in s else "ITL n/a"
        return (
            f"{s['completed']}/{s['requests']} requests ok in {s['duration_s']:.2f} s ({self.shape.kind}); {ttft}, "
            f"{itl}, p50 E2EL {s.get('p50_e2el_ms', float('nan')):.1f} ms; {s['request_throughput_per_s']:.2f} req/s, "
            f"{s['output_token_throughput_per_s']:.1f} tok/s; cold starts seen {s['cold_starts_seen']}; "
            f"errors: {errs}"
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = []
        for name, label in (
            ("ttft_ms", "TTFT"),
            ("tpot_ms", "TPOT"),
            ("itl_ms", "ITL"),
            ("e2el_ms", "E2EL"),
            ("queue_delay_ms", "queue delay"),
        ):
            if f"mean_{name}" in s:
                rows.append([label] + [f"{s[f'{k}_{name}']:.2f}" for k in ("mean", "p50", "p90", "p95", "p99")])
        table = html_table(["ms", "mean", "p50", "p90", "p95", "p99"], rows, right=(1, 2, 3, 4, 5))
        return f"<p>{self}</p>{table}"


# -- the run ------------------------------------------------------------------------------------


class _Runner:
    def __init__(
        self,
        settings: Settings,
        api_key: str,
        endpoint_id: str,
        model: str,
        route: str,
        shape: LoadShape,
        max_tokens: int,
        prompt: str,
        timeout_s: float,
        health_interval_s: float,
        poll_s: float,
        progress: bool,
    ) -> None:
        self.base = f"{settings.queue_url}/{endpoint_id}"
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.model, self.route, self.shape = model, route, shape
        self.max_tokens, self.prompt, self.timeout_s = max_tokens, prompt, timeout_s
        self.health_interval_s, self.poll_s, self.progress = health_interval_s, poll_s, progress
        self.in_flight = 0
        self.records: list[RequestRecord] = []
        self.health: list[HealthSample] = []
        self.ready_now = True
        self.t0 = 0.0

    async def run(self) -> tuple[list[RequestRecord], list[HealthSample], float]:
        limit = max(self.shape.concurrency, 1) + 16
        limits = httpx.Limits(
            max_connections=None if self.shape.kind != "closed" else limit, max_keepalive_connections=limit
        )
        async with httpx.AsyncClient(
            headers=self.headers, limits=limits, timeout=httpx.Timeout(self.timeout_s, connect=30)
        ) as client:
            self.client = client
            self.t0 = time.monotonic()
            await self._sample_health()
            sampler = asyncio.create_task(self._health_loop())
            try:
                if self.shape.warmup_requests:
                    await self._closed(self.shape.warmup_requests, warmup=True, deadline=None)
                overhead = await self._transport_overhead()
                bar = progress_bar(
                    self.shape.num_requests,
                    "load test",
                    enabled=self.progress,
                    bar_format="{desc}: {n_fmt}/{total_fmt} requests [{elapsed}, {rate_fmt}]",
                )
                self.bar = bar
                deadline = time.monotonic() + self.shape.duration_s
                try:
                    if self.shape.kind == "closed":
                        await self._closed(self.shape.num_requests, warmup=False, deadline=deadline)
                    else:
                        await self._open(deadline)
                finally:
                    bar.close()
            finally:
                sampler.cancel()
                await self._sample_health()
        return self.records, self.health, overhead

    async def _transport_overhead(self, n: int = 7) -> float:
        """p50 round trip of a request that takes the same path as a generation but generates
        nothing: ``GET /openai/v1/models`` (a job the worker answers from vLLM's model list) on the
        OpenAI routes, ``GET /health`` on the queue route. Measured after the warm-up, so on a warm
        worker when there is one."""
        path = "/health" if self.route == "queue" else "/openai/v1/models"
        times = []
        for _ in range(n):
            start = time.perf_counter()
            try:
                response = await self.client.get(f"{self.base}{path}")
            except httpx.HTTPError:
                continue
            if response.status_code < 400:
                times.append(time.perf_counter() - start)
        return float(np.median(times)) if times else 0.0

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await self._sample_health()

    async def _sample_health(self) -> None:
        try:
            response = await self.client.get(f"{self.base}/health")
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return
        jobs, workers = body.get("jobs") or {}, body.get("workers") or {}
        ready = int(workers.get("ready") or 0) or int(workers.get("idle") or 0) + int(workers.get("running") or 0)
        self.ready_now = ready > 0
        self.health.append(
            HealthSample(
                time.monotonic() - self.t0,
                int(jobs.get("inQueue") or 0),
                int(jobs.get("inProgress") or 0),
                ready,
                int(workers.get("running") or 0),
                int(workers.get("initializing") or 0),
            )
        )

    async def _closed(self, count: int, *, warmup: bool, deadline: float | None) -> None:
        next_index = iter(range(len(self.records), len(self.records) + count))

        async def lane() -> None:
            for index in next_index:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                await self._one(index, warmup)

        await asyncio.gather(*(lane() for _ in range(min(self.shape.concurrency, count))))

    async def _open(self, deadline: float) -> None:
        rng = random.Random(0)
        gate = asyncio.Semaphore(self.shape.concurrency) if self.shape.concurrency > 0 else None
        tasks = []
        start = len(self.records)

        async def guarded(index: int) -> None:
            if gate is None:
                await self._one(index, False)
                return
            async with gate:
                await self._one(index, False)

        for i in range(self.shape.num_requests):
            if time.monotonic() >= deadline:
                break
            tasks.append(asyncio.create_task(guarded(start + i)))
            await asyncio.sleep(self.shape.interval_s(i, rng))
        await asyncio.gather(*tasks)

    async def _one(self, index: int, warmup: bool) -> None:
        self.in_flight += 1
        record = RequestRecord(
            index=index,
            route=self.route,
            warmup=warmup,
            sent_s=time.monotonic() - self.t0,
            concurrency_at_send=self.in_flight,
            cold=not self.ready_now,
        )
        self.records.append(record)
        start = time.perf_counter()
        try:
            if self.route == "queue":
                await self._queue(record, start)
            else:
                await self._stream(record, start)
        except httpx.TimeoutException as exc:
            record.error, record.detail = "timeout", type(exc).__name__
        except httpx.HTTPError as exc:
            record.error, record.detail = "connection", f"{type(exc).__name__}: {exc}"[:200]
        finally:
            if record.e2el_s is None:
                record.e2el_s = time.perf_counter() - start
            self.in_flight -= 1
            if not warmup:
                self.bar.n += 1
                self.bar.refresh()

    @staticmethod
    def _http_error(record: RequestRecord, status: int, text: str) -> None:
        record.error = "429" if status == 429 else "5xx" if status >= 500 else "4xx"
        record.detail = f"HTTP {status}: {text[:200]}"

    async def _stream(self, record: RequestRecord, start: float) -> None:
        if self.route == "chat":
            url = f"{self.base}/openai/v1/chat/completions"
            body: dict[str, Any] = {"messages": [{"role": "user", "content": self.prompt}]}
        else:
            url = f"{self.base}/openai/v1/completions"
            body = {"prompt": self.prompt}
        body.update(
            model=self.model,
            max_tokens=self.max_tokens,
            stream=True,
            ignore_eos=True,
            stream_options={"include_usage": True},
        )
        last: float | None = None
        done: float | None = None
        chunks = 0
        usage_tokens: int | None = None
        async with self.client.stream("POST", url, json=body) as response:
            if response.status_code >= 400:
                self._http_error(record, response.status_code, (await response.aread()).decode(errors="replace"))
                return
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = time.perf_counter()
                    break
                now = time.perf_counter()
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if event.get("error"):
                    record.error, record.detail = "5xx", str(event["error"])[:200]
                    break
                if event.get("usage"):
                    usage_tokens = event["usage"].get("completion_tokens")
                choices = event.get("choices") or []
                if not choices:
                    continue
                choice = choices[0]
                text = (choice.get("delta") or {}).get("content") if self.route == "chat" else choice.get("text")
                if not text:
                    continue
                chunks += 1
                if last is None:
                    record.ttft_s = now - start
                else:
                    record.itl_s.append(now - last)
                last = now
        record.e2el_s = (done if done is not None else time.perf_counter()) - start
        record.output_tokens = usage_tokens if usage_tokens is not None else chunks
        if record.ttft_s is not None and record.output_tokens > 1:
            record.tpot_s = (record.e2el_s - record.ttft_s) / (record.output_tokens - 1)

    async def _queue(self, record: RequestRecord, start: float) -> None:
        job = {"input": {"prompt": self.prompt, "sampling_params": {"max_tokens": self.max_tokens, "ignore_eos": True}}}
        response = await self.client.post(f"{self.base}/run", json=job)
        if response.status_code >= 400:
            self._http_error(record, response.status_code, response.text)
            return
        job_id = str(response.json().get("id", ""))
        record.job_id = job_id
        deadline = start + self.timeout_s
        while True:
            await asyncio.sleep(self.poll_s)
            status = await self.client.get(f"{self.base}/status/{job_id}")
            if status.status_code >= 400:
                self._http_error(record, status.status_code, status.text)
                return
            body = status.json()
            if body.get("status") in FINAL_JOB_STATES:
                break
            if time.perf_counter() >= deadline:
                await self.client.post(f"{self.base}/cancel/{job_id}")
                record.error, record.detail = "timeout", f"job {job_id} still {body.get('status')}; cancelled"
                return
        record.e2el_s = time.perf_counter() - start
        if body.get("delayTime") is not None:
            record.queue_delay_s = float(body["delayTime"]) / 1000
        if body.get("executionTime") is not None:
            record.execution_s = float(body["executionTime"]) / 1000
        if body["status"] != "COMPLETED":
            record.error, record.detail = body["status"], str(body.get("error", ""))[:200]
            return
        output = body.get("output")
        usage = _find_usage(output)
        record.output_tokens = usage if usage is not None else 0


def _find_usage(output: Any) -> int | None:
    """completion_tokens from worker-vllm's output (a list of vLLM answers)."""
    items = output if isinstance(output, list) else [output]
    for item in items:
        if isinstance(item, dict):
            usage = item.get("usage")
            if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
                return int(usage["completion_tokens"])
    return None


def _versions(settings: Settings, api_key: Secret, endpoint_id: str) -> dict[str, str]:
    from rpbook.account.controlplane import RunpodClient

    out = {
        "rpbook": __version__,
        "httpx": httpx.__version__,
        "python": platform.python_version(),
        "target": settings.target,
    }
    try:
        with RunpodClient(settings, api_key) as client:
            endpoint = client.get_endpoint(endpoint_id)
        out.update(
            image=str(endpoint.image),
            workers=f"{endpoint.workers_min}-{endpoint.workers_max}",
            idle_timeout_s=str(endpoint.idle_timeout_s),
            gpu_pools=",".join(endpoint.gpu_pools),
        )
    except Exception as exc:  # noqa: BLE001 - versions are informative; the run itself matters
        out["endpoint"] = f"unreadable: {type(exc).__name__}"
    return out


def run_load_test(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str | NotCreated,
    model: str,
    *,
    route: Route = "chat",
    shape: LoadShape | None = None,
    slo: SLO | None = None,
    max_tokens: int = 64,
    prompt: str = "Write a short story about a lighthouse.",
    timeout_s: float = 600.0,
    health_interval_s: float = 0.5,
    poll_s: float = 0.2,
    progress: bool = True,
    out_dir: str | Path | None = None,
    name: str = "loadtest",
) -> LoadTestResult | Skipped:
    """Run one load test and return every request and the summary; with ``out_dir`` also write
    ``<name>.json`` and ``<name>.csv`` there. Safe to call from a notebook (runs its own event loop
    in a thread)."""
    if isinstance(endpoint_id, NotCreated):
        return skip("load-test", endpoint_id)
    if route not in ROUTES:
        raise ConfigError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    shape = shape or LoadShape()
    secret = api_key if isinstance(api_key, Secret) else Secret("RUNPOD_API_KEY", reveal_api_key(api_key), "argument")
    runner = _Runner(
        settings,
        secret.reveal(),
        endpoint_id,
        model,
        route,
        shape,
        max_tokens,
        prompt,
        timeout_s,
        health_interval_s,
        poll_s,
        progress,
    )
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        records, samples, overhead = pool.submit(asyncio.run, runner.run()).result()
    result = LoadTestResult(
        endpoint_id,
        route,
        shape,
        slo or SLO(),
        max_tokens,
        records,
        samples,
        overhead,
        _versions(settings, secret, endpoint_id),
        started,
    )
    if out_dir is not None:
        result.save(out_dir, name)
    return result


# -- plots --------------------------------------------------------------------------------------


class Chart:
    """A matplotlib figure drawn with the object API (no pyplot: no global figure left open, nothing
    shown twice) that a notebook shows as one PNG, its cell's result."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure

    def png(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def __repr__(self) -> str:
        return f"<chart: {len(self.figure.axes)} plot(s)>"


def new_figure(width_in: float, height_in: float, columns: int, **kw: Any) -> tuple[Any, Any]:
    """A figure with ``columns`` side-by-side axes, matplotlib's INFO logs (font cache) kept quiet."""
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in))
    return figure, figure.subplots(1, columns, **kw)


def plot(result: LoadTestResult | Skipped, pings_s: list[float] | None = None) -> Any:
    """Latency CDFs, requests in flight against workers over time (``/health`` samples), and TTFT
    against the concurrency each request met. ``pings_s`` (keep-alive pings, seconds since the
    run started) are drawn as markers so they are told apart from real traffic. A skipped run
    prints its line and draws nothing."""
    if not isinstance(result, LoadTestResult):
        print(result)
        return None

    ok = [r for r in result.measured if not r.error]
    fig, axes = new_figure(14, 3.8, 3)
    ax = axes[0]
    for label, values in (
        ("TTFT", [r.ttft_s for r in ok]),
        ("ITL", [x for r in ok for x in r.itl_s]),
        ("E2EL", [r.e2el_s for r in ok]),
        ("queue delay", [r.queue_delay_s for r in ok]),
    ):
        clean = np.sort([v * 1000 for v in values if v is not None])
        if clean.size:
            ax.step(clean, np.arange(1, clean.size + 1) / clean.size, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of requests (CDF)")
    ax.set_title("latency CDFs")
    ax.legend()

    ax = axes[1]
    events = sorted(
        [(r.sent_s, 1) for r in result.requests] + [(r.sent_s + (r.e2el_s or 0.0), -1) for r in result.requests]
    )
    times, level, levels = [], 0, []
    for t, delta in events:
        level += delta
        times.append(t)
        levels.append(level)
    ax.step(times, levels, where="post", label="requests in flight (client)")
    if result.health:
        hs = result.health
        ax.step([h.t_s for h in hs], [h.ready for h in hs], where="post", label="workers ready (/health)")
        ax.step(
            [h.t_s for h in hs],
            [h.initializing for h in hs],
            where="post",
            label="workers initializing",
            linestyle="--",
        )
        ax.step([h.t_s for h in hs], [h.in_queue for h in hs], where="post", label="jobs in queue", linestyle=":")
    for t in pings_s or []:
        ax.axvline(t, color="gray", alpha=0.4, linewidth=1)
    ax.set_xlabel("seconds since start")
    ax.set_title("in flight vs workers")
    ax.legend(fontsize="small")

    ax = axes[2]
    pairs = [(r.concurrency_at_send, r.ttft_s * 1000) for r in ok if r.ttft_s is not None]
    if pairs:
        ax.scatter(*zip(*pairs, strict=True), s=8, alpha=0.6)
    ax.set_xlabel("requests in flight at send")
    ax.set_ylabel("TTFT (ms)")
    ax.set_title("TTFT vs concurrency")
    fig.tight_layout()
    return Chart(fig)
