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
import json
import platform
import random
import time
from pathlib import Path
from typing import Any, Literal

import httpx
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
