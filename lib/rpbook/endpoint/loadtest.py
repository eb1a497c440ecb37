"""Load test of one endpoint: its OpenAI routes (streamed chat or completions) or its queue route.

Metrics follow ``vllm bench serve`` (read in vllm-project/vllm ``benchmarks/backend_request_func.py``,
``async_request_openai_completions`` / ``async_request_openai_chat_completions``, and
``benchmarks/benchmark_serving.py`` ``calculate_metrics``):

- **TTFT**: from sending the request to the first streamed chunk that carries text. The clock
  starts when the request's first byte is written on its connection (httpcore's
  ``send_request_headers`` trace event), not when the client begins building it: connections are
  opened before the run, so time spent inside this client waiting for a pooled connection or for
  its event loop is not counted as the server's;
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
``warmup_requests`` are sent first and left out of every figure. The lanes of a closed loop start at
seeded random offsets within ``LoadShape.stagger_s``: started together against a server that paces
every stream alike, they would stay in lock-step for the whole run, all their tokens arriving in the
same millisecond, and the client would measure its own queue.

Chunks are read raw (``aiter_raw``) and split into server-sent events here: one timestamp per
network read, and no per-line decoding layer, so that the client's own CPU per token stays small
(``benchmarks/loadtest_capacity.py`` measures it against a minimal client and GuideLLM).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import platform
import random
import time
from pathlib import Path
from typing import Any, Literal

import aiohttp
import numpy as np

from rpbook import __version__
from rpbook.core.display import progress_bar
from rpbook.core.errors import ConfigError
from rpbook.core.pending import NotCreated, Skipped, skip
from rpbook.core.secrets import Secret, reveal_api_key
from rpbook.core.settings import Settings
from rpbook.endpoint.loadtest_result import SLO, HealthSample, LoadShape, LoadTestResult, RequestRecord

Route = Literal["chat", "completions", "queue"]
ROUTES = ("chat", "completions", "queue")
FINAL_JOB_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


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
        limit = max(self.shape.concurrency, 1) + 16 if self.shape.kind == "closed" else 0  # 0: no limit
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_headers_sent)
        async with aiohttp.ClientSession(
            headers={**self.headers, "Accept-Encoding": "identity"},
            connector=aiohttp.TCPConnector(limit=limit),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s, connect=30),
            trace_configs=[trace],
            auto_decompress=False,
        ) as session:
            self.session = session
            self.t0 = time.monotonic()
            await self._open_connections()
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

    async def _get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` of the endpoint: status and JSON body (None when it is not JSON)."""
        async with self.session.get(f"{self.base}{path}") as response:
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, None

    async def _open_connections(self) -> None:
        """Open one pooled connection per stream before any request is timed (concurrent
        ``/health`` calls each take a connection of their own), so no measured request pays for a
        TCP handshake or waits for a connection."""
        n = min(self.shape.concurrency, self.shape.num_requests + self.shape.warmup_requests)
        if n > 0:
            await asyncio.gather(*(self._get("/health") for _ in range(n)), return_exceptions=True)

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
                status, _ = await self._get(path)
            except (aiohttp.ClientError, TimeoutError):
                continue
            if status < 400:
                times.append(time.perf_counter() - start)
        return float(np.median(times)) if times else 0.0

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await self._sample_health()

    async def _sample_health(self) -> None:
        try:
            status, body = await self._get("/health")
        except (aiohttp.ClientError, TimeoutError):
            return
        if status != 200 or not isinstance(body, dict):
            body = {}
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

        lanes = min(self.shape.concurrency, count)
        rng = random.Random(len(self.records))
        offsets = sorted(rng.uniform(0.0, self.shape.stagger_s) for _ in range(lanes)) if lanes > 1 else [0.0]

        async def lane(offset: float) -> None:
            if offset:
                await asyncio.sleep(offset)
            for index in next_index:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                await self._one(index, warmup)

        await asyncio.gather(*(lane(offset) for offset in offsets))

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
        except TimeoutError as exc:
            record.error, record.detail = "timeout", type(exc).__name__
        except aiohttp.ClientError as exc:
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
        sent: dict[str, float] = {}
        last: float | None = None
        done: float | None = None
        chunks = 0
        usage_tokens: int | None = None
        chat = self.route == "chat"
        async with self.session.post(url, json=body, trace_request_ctx=sent) as response:
            start = sent.get("headers_sent", start)
            if response.status >= 400:
                self._http_error(record, response.status, (await response.read()).decode(errors="replace"))
                return
            pending = b""
            async for raw in response.content.iter_any():
                now = time.perf_counter()
                *lines, pending = (pending + raw).split(b"\n")
                for line in lines:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = now
                        break
                    try:
                        event = json.loads(data)
                    except ValueError:
                        continue
                    if event.get("error"):
                        record.error, record.detail = "5xx", str(event["error"])[:200]
                        done = now
                        break
                    if event.get("usage"):
                        usage_tokens = event["usage"].get("completion_tokens")
                    choices = event.get("choices")
                    if not choices:
                        continue
                    choice = choices[0]
                    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    if not text:
                        continue
                    chunks += 1
                    if last is None:
                        record.ttft_s = now - start
                    else:
                        record.itl_s.append(now - last)
                    last = now
                if done is not None:
                    break
        record.e2el_s = (done if done is not None else time.perf_counter()) - start
        record.output_tokens = usage_tokens if usage_tokens is not None else chunks
        if record.ttft_s is not None and record.output_tokens > 1:
            record.tpot_s = (record.e2el_s - record.ttft_s) / (record.output_tokens - 1)

    async def _queue(self, record: RequestRecord, start: float) -> None:
        job = {"input": {"prompt": self.prompt, "sampling_params": {"max_tokens": self.max_tokens, "ignore_eos": True}}}
        async with self.session.post(f"{self.base}/run", json=job) as response:
            if response.status >= 400:
                self._http_error(record, response.status, await response.text())
                return
            job_id = str((await response.json(content_type=None)).get("id", ""))
        record.job_id = job_id
        deadline = start + self.timeout_s
        while True:
            await asyncio.sleep(self.poll_s)
            async with self.session.get(f"{self.base}/status/{job_id}") as status:
                if status.status >= 400:
                    self._http_error(record, status.status, await status.text())
                    return
                body = await status.json(content_type=None)
            if body.get("status") in FINAL_JOB_STATES:
                break
            if time.perf_counter() >= deadline:
                async with self.session.post(f"{self.base}/cancel/{job_id}"):
                    pass
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


async def _headers_sent(session: Any, context: Any, params: Any) -> None:
    """aiohttp's trace hook: the request's headers are written on its connection; the clock of the
    request whose ``trace_request_ctx`` is a dict starts here."""
    if isinstance(context.trace_request_ctx, dict):
        context.trace_request_ctx["headers_sent"] = time.perf_counter()


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
        "aiohttp": aiohttp.__version__,
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
