"""A worker that is a real OS process running the ``runpod`` SDK's worker loop.

On Runpod a serverless worker is a container whose entry point calls
``runpod.serverless.start({"handler": ...})``. This backend starts that process (a user's handler
file or module, or localpod's own handlers in :mod:`localpod.serverless.sdk_handler`) with the
variables Runpod gives a worker container, and speaks :mod:`localpod.serverless.worker_protocol` with
it. What the SDK does with a job (FAILED on ``{"error": ...}``, the JSON error of a handler that
raises, streaming, ``return_aggregate_stream``, ``refresh_worker``, results it cannot serialise and
never sends) is then the SDK's own code, not a rule localpod wrote.

The platform around it is unchanged: placement, cold-start timing, billing, the execution timeout
and the scaler are the platform's; the process only adds its real start-up time (Python, the SDK
import, the handler module) to the simulated cold start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec
from localpod.serverless.worker_protocol import WorkerMailbox

START_TIMEOUT_S = 120.0
"""How long a handler process may take from exec to its first job-take before it counts as
crashed (an import that hangs). Runpod's own limit is not documented."""
STOP_GRACE_S = 5.0
"""SIGTERM, then SIGKILL after this long: the SDK handles SIGTERM by finishing its loop
(``rp_scale.JobScaler.handle_shutdown``)."""
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
"""The only variables a worker process inherits from localpod's own environment: enough to find
Python and its packages. A Runpod container sees its template's env and Runpod's variables, never
the caller's shell, so localpod's keys and tokens stay out of the handler's reach."""


def worker_environment(spec: WorkerSpec, mailbox: WorkerMailbox) -> dict[str, str]:
    """The variables of a worker container: inherited basics, the template's env (secrets resolved),
    and what Runpod sets for the SDK (names as runpod-python reads them: ``worker_state.py``,
    ``rp_job.py``, ``rp_http.py``, ``rp_ping.py``, ``rp_fitness.py``)."""
    assert spec.base_url is not None and spec.worker_id is not None
    gpu = quote(spec.gpu_type_id or "CPU", safe="")
    base = f"{spec.base_url}/api.runpod.ai/v2/{spec.endpoint_id}"
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.update(spec.env)
    env.update(
        {
            "RUNPOD_ENDPOINT_ID": spec.endpoint_id,
            "RUNPOD_POD_ID": spec.worker_id,
            "RUNPOD_POD_HOSTNAME": f"{spec.worker_id}-localpod",
            "RUNPOD_AI_API_KEY": mailbox.key,
            "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?gpu={gpu}",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?gpu={gpu}",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID?gpu={gpu}",
            "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?gpu={gpu}",
            "RUNPOD_PING_INTERVAL": "10000",
            # The SDK's start-up fitness checks (rp_fitness.py) probe the GPU and dial 8.8.8.8:53:
            # an emulated host has neither, so they are off, as the SDK's own tests turn them off.
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if spec.sdk_process and spec.handler is None:  # what localpod.serverless.sdk_handler reads
        env["LOCALPOD_IMAGE"] = spec.image
        env["LOCALPOD_PROFILE"] = json.dumps(asdict(spec.profile))
        env["LOCALPOD_CONCURRENCY"] = str(spec.concurrency)
        if spec.proxy_url:
            env["LOCALPOD_PROXY_URL"] = spec.proxy_url
        if spec.proxy_api_key:
            env["LOCALPOD_PROXY_API_KEY"] = spec.proxy_api_key
    return env


def handler_command(handler: str) -> list[str]:
    """``python FILE`` for a handler file, ``python -m MODULE`` for a module name."""
    if handler.endswith(".py") or os.sep in handler or Path(handler).is_file():
        return [sys.executable, str(Path(handler).expanduser().resolve())]
    return [sys.executable, "-m", handler]


class ProcessWorker(WorkerBackend):
    """One worker process; its jobs go through the SDK's worker loop, which pulls them
    (:attr:`demand`), instead of through :meth:`handle`."""

    def __init__(self, spec: WorkerSpec, command: list[str]) -> None:
        super().__init__(spec)
        self.command = command
        self.mailbox: WorkerMailbox | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.tail: deque[str] = deque(maxlen=20)
        self._reader: asyncio.Task[None] | None = None
        self._log: Callable[[str], None] = spec.log or (lambda line: None)

    async def load(self) -> None:
        """Start the process and wait for its first job-take (the SDK's loop is up)."""
        hub = self.spec.protocol
        assert hub is not None and self.spec.worker_id is not None
        self.mailbox = hub.open(self.spec.endpoint_id, self.spec.worker_id)
        self.mailbox.on_demand = self.spec.on_demand or (lambda: None)
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            env=worker_environment(self.spec, self.mailbox),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read_output(self.process))
        started = asyncio.ensure_future(self.mailbox.first_take.wait())
        exited = asyncio.ensure_future(self.process.wait())
        try:
            done, _ = await asyncio.wait(
                {started, exited}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in (started, exited):
                waiter.cancel()
        if started not in done:
            code = self.process.returncode
            await self.close()
            if code is None:
                raise WorkerCrash(f"the handler process did not start its worker loop within {START_TIMEOUT_S:g} s")
            reported = self.mailbox.last_ping.unhealthy if self.mailbox.last_ping is not None else None
            why = f"a fitness check failed ({reported})" if reported else self.last_lines()
            raise WorkerCrash(f"the handler process exited with code {code} before taking a job: {why}")

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.tail.append(line)
                self._log(line)

    def last_lines(self, count: int = 3) -> str:
        return " | ".join(list(self.tail)[-count:]) or "(no output)"

    def reserve(self) -> None:
        assert self.mailbox is not None
        self.mailbox.reserve()

    @property
    def demand(self) -> int:
        return self.mailbox.demand if self.mailbox is not None else 0

    async def run_job(
        self,
        job_id: str,
        job_input: Any,
        on_chunk: Callable[[Any], None],
        on_progress: Callable[[Any], None],
    ) -> dict[str, Any]:
        """The job through the process: ``{"body": <job-done body>, "is_stream": bool}``. A process
        that exits meanwhile is a :class:`WorkerCrash` (the job FAILS and the worker restarts)."""
        assert self.mailbox is not None and self.process is not None
        body: dict[str, Any] = {"id": job_id, "input": job_input}
        if self.spec.sdk_process and self.spec.handler is None and self.spec.live_profile is not None:
            from localpod.serverless.sdk_handler import PROFILE_KEY

            body[PROFILE_KEY] = asdict(self.spec.live_profile())
        result = asyncio.ensure_future(self.mailbox.run(job_id, body, on_chunk, on_progress))
        exited = asyncio.ensure_future(self.process.wait())
        try:
            await asyncio.wait({result, exited}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            result.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await result
            raise
        finally:
            exited.cancel()
        if result.done():
            return result.result()
        result.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await result
        raise WorkerCrash(
            f"the handler process exited with code {self.process.returncode} during job {job_id}: {self.last_lines()}"
        )

    def handle(self, job_input: Any, ctx: JobContext) -> AsyncIterator[Any]:
        raise NotImplementedError("a process worker runs jobs through run_job (the worker protocol)")

    async def close(self) -> None:
        """SIGTERM the process group (the SDK finishes its loop), SIGKILL after a grace period."""
        if self.spec.protocol is not None and self.spec.worker_id is not None:
            self.spec.protocol.close(self.spec.worker_id)
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if process is not None:
            # The SDK's heartbeat is a multiprocessing child in the same group: gone with the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, timeout=1)
