"""One emulated serverless worker: its Runpod states, its cold start, the jobs it runs, what bills.

States as Runpod reports them (REST v2 ``WorkerStatus``): THROTTLED (no GPU free in the allowed
pools and data centers), INITIALIZING (container start + model load), IDLE (ready and polling for
jobs, within the idle timeout), RUNNING (at least one job, up to the endpoint's per-worker
concurrency), UNHEALTHY (the handler cannot start, e.g. a gated model without an accepted licence,
a Runpod secret the account does not have, or an image built for a newer CUDA than its host
reports; it keeps retrying, as a crash-looping container does). Runpod's "Outdated" is REST v2's
``isStale``: a stale worker finishes its jobs (billed while it does) and is then stopped.

What bills follows the state table of runpod/docs ``serverless/workers/overview.mdx`` ("Worker
states": Initializing, Idle, Running, Throttled, Outdated, Unhealthy and their billing column),
read with ``serverless/pricing.mdx`` where the table is silent:

- THROTTLED: not billed (table: "No"); no GPU is held.
- INITIALIZING: billed from the container start. The table's Initializing row ("Downloading image,
  loading code, and downloading cached models", billing "No") is the image and cached-model pull,
  which localpod does not emulate (its images are on the host already); pricing.mdx bills the
  "start time" (initializing the container, loading models into GPU memory) and overview.mdx's
  "Model deployment" says reading weights from a network volume happens "after a worker starts
  running and billing begins".
- IDLE: billed. pricing.mdx bills the idle timeout ("the time a worker remains active (running)
  after completing a request"); the table's Idle row ("Scaled down, waiting for requests", "No")
  is a worker already scaled down, which localpod removes from every listing.
- RUNNING: billed (table: "Yes"). Outdated: billed while it processes jobs (table), then stopped.
- UNHEALTHY: **not billed** (table: "Crashed; auto-retries for up to 7 days", billing "No").
  pricing.mdx's "from when a worker starts until it fully stops" would bill every restart of a
  crash loop; where the two pages disagree localpod follows the state table. The retries belong to
  the Unhealthy state: the worker stays UNHEALTHY (unbilled) while it retries, bills again from
  the moment it is ready, and stops retrying after ``profile.unhealthy_retry_s`` (7 days).

A :class:`~localpod.store.WorkerSession` is one billed stretch: opened when the worker starts
billing, closed when it turns UNHEALTHY or stops; :mod:`localpod.resources.billing` prices them.
Runpod's automatic scale-down of endpoints that keep producing unhealthy workers is the
platform's (:meth:`localpod.serverless.platform.EndpointRuntime.scale_down_if_unhealthy`).

Placement honours the endpoint's ``gpu.allowedCudaVersions`` / ``minCudaVersion``: no host
matching them anywhere allowed leaves the worker THROTTLED. Without them a worker may land on a
host too old for its image (:mod:`localpod.serverless.imagecuda`) and crash-loops there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from localpod import catalog, hubdata
from localpod.http import JSON_OPTIONS, dumps
from localpod.resources import modelrefs
from localpod.runpod_secrets import resolve_env
from localpod.serverless import jobs as J
from localpod.serverless.backends import backend_kind, create_backend
from localpod.serverless.backends.base import JobContext, WorkerBackend, WorkerCrash, WorkerSpec
from localpod.serverless.backends.process_worker import ProcessWorker
from localpod.serverless.coldstart import ColdStartPlan, plan_cold_start
from localpod.serverless.imagecuda import image_min_cuda
from localpod.serverless.worker_output import WorkerOutput
from localpod.store import WorkerSession, new_id

if TYPE_CHECKING:
    from localpod.serverless.worker_host import WorkerHost

log = logging.getLogger("localpod.workers")

THROTTLED = "THROTTLED"
INITIALIZING = "INITIALIZING"
IDLE = "IDLE"
RUNNING = "RUNNING"
UNHEALTHY = "UNHEALTHY"
STOPPED = "STOPPED"  # internal: gone from every listing

PROCESS_KIND = "process"
"""The log kind of a real worker process: its container lines are what the process prints."""

RUNPOD_SDK_VERSION = "1.12.0"


def hub_token(env: dict[str, str]) -> str | None:
    """The token huggingface_hub inside the worker uses: ``HF_TOKEN``, else ``HUGGING_FACE_HUB_TOKEN``,
    stripped, empty meaning none (huggingface_hub ``utils/_auth.py``, ``_get_token_from_environment``
    and ``_clean_token``)."""
    token = (env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    return token or None


class Worker:
    """A worker's life, driven by its own asyncio task (``run``). Everything it needs from its
    endpoint and the server comes through ``host`` (:class:`~localpod.serverless.worker_host.WorkerHost`)."""

    def __init__(self, host: WorkerHost) -> None:
        endpoint = host.endpoint
        self.host = host
        self.id = new_id(14)
        self.version = endpoint.version
        self.image = endpoint.image
        self.gpu_count = endpoint.gpu_count
        self.concurrency = endpoint.max_concurrency
        self.status = THROTTLED
        self.gpu_type_id: str | None = None
        self.data_center_id: str | None = None
        self.host_cuda: str | None = None
        self.started_wall: float | None = None
        self.ready_at: float | None = None
        self.idle_since = time.monotonic()
        self.running: set[J.Job] = set()
        self.orphaned: set[J.Job] = set()
        """Jobs whose result the SDK could not send: still IN_PROGRESS for the platform, no slot used."""
        self.backend: WorkerBackend | None = None
        self.session: WorkerSession | None = None
        self.plan: ColdStartPlan | None = None
        self.unhealthy_reason: str | None = None
        self.unhealthy_since: float | None = None
        """``time.monotonic()`` when the worker last turned UNHEALTHY from a healthy state."""
        self.placement: catalog.Placement | None = None
        self.events: list[tuple[float, str]] = []
        self.task: asyncio.Task[None] | None = None
        self.log = host.open_log(self.id)
        self.output = WorkerOutput(self.log, backend_kind(endpoint.image), {})
        self._set(THROTTLED)

    # -- views ---------------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        return self.status in (IDLE, RUNNING)

    @property
    def free_slots(self) -> int:
        if not self.is_ready or self.stale:
            return 0
        if isinstance(self.backend, ProcessWorker):
            # A worker process pulls: as many jobs as its SDK asked for in the job-take it holds
            # open (its own concurrency minus the jobs it holds), whatever the platform thinks it runs.
            return self.backend.demand
        return self.concurrency - len(self.running)

    @property
    def stale(self) -> bool:
        return self.version != self.host.endpoint.version

    def uptime_s(self) -> int | None:
        return None if self.started_wall is None else int(time.time() - self.started_wall)

    def started_iso(self) -> str | None:
        if self.started_wall is None:
            return None
        return datetime.fromtimestamp(self.started_wall, UTC).isoformat().replace("+00:00", "Z")

    def _set(self, status: str) -> None:
        self.status = status
        self.events.append((time.monotonic(), status))

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"worker-{self.id}")

    async def run(self) -> None:
        try:
            await self._place()
            await self._boot_until_ready()
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - a bug here must not kill the platform
            log.exception("worker %s failed", self.id)
            self._set(UNHEALTHY)

    async def _place(self) -> None:
        endpoint = self.host.endpoint
        while True:
            placement = catalog.place_worker(
                endpoint.gpu_pools,
                endpoint.gpu_excluded_types,
                self.host.allowed_data_centers(),
                endpoint.allowed_cuda_versions,
                endpoint.min_cuda_version,
            )
            if placement is not None:
                break
            await asyncio.sleep(max(self.host.profile.scaler_tick_s, 0.05))
        self.placement = placement
        self.gpu_type_id = placement.gpu_type_id
        self.data_center_id = placement.data_center_id
        self.host_cuda = placement.cuda_version
        self.started_wall = time.time()
        self.output.system(f"worker {self.id} placed on {placement.gpu_type_id} in {placement.data_center_id}")
        self._bill()

    # -- billing -------------------------------------------------------------------------------

    def _bill(self) -> None:
        """Open a billed stretch (a session) unless one is open: the worker holds a GPU and runs."""
        if self.session is not None and self.session.stopped_at is None:
            return
        assert self.placement is not None
        self.session = WorkerSession(
            endpoint_id=self.host.endpoint.id,
            worker_id=self.id,
            gpu_type_id=self.placement.gpu_type_id,
            gpu_count=self.gpu_count,
            price_per_gpu_s=self.placement.price_per_gpu_s,
            started_at=time.time(),
        )
        self.host.add_session(self.session)

    def _unbill(self) -> None:
        """Close the open billed stretch, if any (the worker turned UNHEALTHY or stopped)."""
        if self.session is not None and self.session.stopped_at is None:
            self.session.stopped_at = time.time()
            self.host.commit()

    @property
    def billing(self) -> bool:
        return self.session is not None and self.session.stopped_at is None

    def unhealthy_for(self) -> float:
        return 0.0 if self.unhealthy_since is None else time.monotonic() - self.unhealthy_since

    def gave_up_retrying(self) -> bool:
        return self.status == UNHEALTHY and self.unhealthy_for() >= self.host.profile.unhealthy_retry_s

    def _turn_unhealthy(self, reason: str) -> None:
        """The container could not start: stop billing, say why in the log, keep retrying."""
        self.unhealthy_reason = reason
        self.output.start_failed(reason)
        self._unbill()
        if self.status != UNHEALTHY or self.unhealthy_since is None:
            self.unhealthy_since = time.monotonic()
        self._set(UNHEALTHY)

    async def _boot(self) -> bool:
        """Start the container and load the model. True once the worker is IDLE. A retry of an
        UNHEALTHY worker stays UNHEALTHY (and unbilled) until it is ready."""
        if self.status != UNHEALTHY:
            self._set(INITIALIZING)
        host = self.host
        endpoint = host.endpoint
        settings = host.settings
        # Runpod substitutes {{ RUNPOD_SECRET_name }} when the container starts (localpod.runpod_secrets).
        env, missing = resolve_env(endpoint.env, settings.secret)
        spec = WorkerSpec(
            endpoint_id=endpoint.id,
            image=endpoint.image,
            env=env,
            profile=host.profile,
            proxy_url=settings.proxy_url,
            proxy_api_key=settings.proxy_api_key,
            worker_id=self.id,
            gpu_type_id=self.gpu_type_id,
            base_url=settings.worker_base_url,
            protocol=host.worker_protocol,
            handler=settings.handler_for(endpoint.image),
            sdk_process=settings.worker_processes,
            log=self._process_line,
            on_demand=host.dispatch,
            live_profile=lambda: self.host.profile,
            concurrency=self.concurrency,
        )
        backend = create_backend(spec)
        repos = backend.model_repos
        volume = host.volume()
        cached = set(volume.cached_models) if volume is not None else None
        plan = plan_cold_start(
            host.profile,
            repos,
            cached,
            host.flashboot_ready(self.version),
            modelrefs.cached_repos(endpoint.model_references),
        )
        self.plan = plan
        await asyncio.sleep(plan.container_s)
        # A user's handler prints its own lines; localpod's emulations in a real SDK process keep
        # their image's emulated lines, and the SDK prints its own.
        kind = PROCESS_KIND if spec.handler is not None else backend_kind(endpoint.image)
        self.output = WorkerOutput(self.log, kind, env, real_sdk=isinstance(backend, ProcessWorker))
        self.output.system(f"container started: {endpoint.image}")
        self.output.container_started()
        if missing:  # Runpod docs: a template using a deleted secret makes its deployments fail
            # localpod's wording (Runpod's own log line for this is not documented); it names each
            # reference as written, so a reader of the log can search the template for it.
            references = ", ".join("{{ RUNPOD_SECRET_" + name + " }}" for name in missing)
            denial: str | None = (
                f"the env references Runpod secret(s) {references} that this account does not have "
                "(create it under Secrets in the Runpod console, or fix the reference; localpod: "
                "`localpod serve --secret NAME=ENVVAR` or LOCALPOD_SECRET_<NAME>)"
            )
        else:
            denial = self._cuda_denial(endpoint.image) or self._download_denial(env, plan)
        if denial is not None:
            self._turn_unhealthy(denial)
            log.info("worker %s unhealthy: %s", self.id, denial)
            return False
        await asyncio.sleep(plan.download_s + plan.model_read_s + plan.engine_s)
        try:
            await backend.load()
        except WorkerCrash as exc:
            self._turn_unhealthy(str(exc))
            return False
        if volume is not None and plan.downloaded:
            for repo in plan.downloaded:
                if repo not in volume.cached_models:
                    volume.cached_models.append(repo)
            host.commit()
        self.backend = backend
        self.unhealthy_reason = None
        self.unhealthy_since = None
        self._bill()  # ready again after unhealthy retries: billed from now
        self.ready_at = time.monotonic()
        self.idle_since = self.ready_at
        self.output.ready()
        self._set(IDLE)
        host.worker_ready(self)
        return True

    def _process_line(self, line: str) -> None:
        """A line the worker process printed: the container's own log."""
        self.output.process_line(line)

    def _cuda_denial(self, image: str) -> str | None:
        """Why the container cannot start on this host's CUDA, or None when it can (or is unknown)."""
        need = image_min_cuda(image)
        if need is None or self.host_cuda is None:
            return None
        if catalog.cuda_version_key(self.host_cuda) >= catalog.cuda_version_key(need.min_cuda):
            return None
        return (
            f"{image} needs CUDA >= {need.min_cuda} ({need.source}) but host {self.gpu_type_id} in "
            f"{self.data_center_id} reports CUDA {self.host_cuda}: the container cannot start and restarts "
            f"(crash loop, billed); set the endpoint's gpu.allowedCudaVersions or gpu.minCudaVersion"
        )

    def _download_denial(self, env: dict[str, str], plan: ColdStartPlan) -> str | None:
        """What the Hub would refuse this worker, for the repos it downloads in this start, with
        the token huggingface_hub finds in the container's (secret-resolved) env."""
        token = hub_token(env)
        default_token = self.host.settings.hf_token
        for repo in plan.downloaded:
            reason = hubdata.download_denial(repo, token, default_token)
            if reason is not None:
                return f"cannot download {repo}: {reason}"
        # A gated cached model needs a token too (model-caching.mdx: "Gated models ... provide a Hugging
        # Face access token"); localpod assumes Runpod fetches it with the token the workers get.
        for repo in plan.from_host_cache:
            reason = hubdata.download_denial(repo, token, default_token)
            if reason is not None:
                return f"cannot cache {repo} on the host: {reason}"
        return None

    async def stop(self) -> None:
        """Stop the worker: cancel its lifecycle and jobs, end its billing session."""
        if self.status == STOPPED:
            return
        self._set(STOPPED)
        current = asyncio.current_task()
        if self.task is not None and self.task is not current:
            self.task.cancel()
        for job in list(self.running) + list(self.orphaned):
            if job.task is not None:
                job.task.cancel()
        # Billing ends and FlashBoot remembers the worker when it is stopped, before its backend is
        # closed: a worker process may take a few seconds to exit (the SDK drains its jobs on SIGTERM).
        self._unbill()
        if self.plan is not None and not self.plan.flashboot and self.ready_at is not None:
            self.host.remember_flashboot(self.version)
        if self.backend is not None:
            try:
                await self.backend.close()
            except Exception:  # pragma: no cover
                log.exception("closing backend of worker %s", self.id)
        self.output.system(f"worker {self.id} stopped")
        self.log.close()

    # -- jobs ----------------------------------------------------------------------------------

    def assign(self, job: J.Job) -> None:
        """Start a job on this worker (the platform checked ``free_slots``)."""
        job.start(self.id)
        if isinstance(self.backend, ProcessWorker):
            self.backend.reserve()
        self.running.add(job)
        if self.status != RUNNING:
            self._set(RUNNING)
        self.output.job_started(job.id)
        job.task = asyncio.get_running_loop().create_task(self._execute(job))

    async def _execute(self, job: J.Job) -> None:
        """Run one job as the runpod SDK's worker loop does (runpod-python ``rp_job.handle_job``,
        ``run_job``, ``run_job_generator`` and ``rp_http._handle_result``), with the platform's
        execution timeout around it."""
        backend = self.backend
        assert backend is not None
        ctx = JobContext(job_id=job.id, profile=self.host.profile)
        crashed: WorkerCrash | None = None
        timed_out = False
        refresh = False
        try:
            async with asyncio.timeout(job.execution_timeout_s if job.execution_timeout_s > 0 else None):
                if isinstance(backend, ProcessWorker):
                    # The SDK in the worker process decides what the job's result is; it sends
                    # nothing at all for a result it cannot serialise, and the job then waits here.
                    posted = await backend.run_job(job.id, job.input, job.add_chunk, job.set_progress)
                    refresh = bool(posted["body"].get("stopPod"))
                    self._deliver_posted(job, posted["body"], posted["is_stream"])
                    result = None
                elif backend.generator:
                    result = await self._run_generator(backend, job, ctx)
                else:
                    result = await self._run_plain(backend, job, ctx)
                undeliverable = None if result is None else _undeliverable(result)
                if undeliverable is not None:
                    # rp_http._handle_result: json.dumps raises, the SDK logs it and sends nothing,
                    # then frees its slot. The platform never hears back: the job stays IN_PROGRESS
                    # (and the worker busy, billed) until the execution timeout.
                    log.error(
                        "worker %s job %s: Error while returning job result. | %s", self.id, job.id, undeliverable
                    )
                    self.running.discard(job)
                    self.orphaned.add(job)
                    self.host.dispatch()
                    await asyncio.Event().wait()
                if result is not None:
                    self._deliver(job, result)
        except TimeoutError:
            ctx.cancelled.set()
            timed_out = True
            job.finish(J.TIMED_OUT, error=f"Job timed out after {job.execution_timeout_s:g} s (execution timeout).")
        except asyncio.CancelledError:
            ctx.cancelled.set()
            if not job.is_final:
                job.finish(J.CANCELLED)
        except WorkerCrash as exc:
            crashed = exc
            job.finish(J.FAILED, error=self._error_text(exc))
        except Exception as exc:  # noqa: BLE001 - as rp_job.run_job: any handler error fails the job, not the worker
            job.finish(J.FAILED, error=self._error_text(exc))
        finally:
            self.output.job_finished(job.id, failed=job.status == J.FAILED)
            self.running.discard(job)
            self.orphaned.discard(job)
            if not self.running and not self.orphaned and self.status == RUNNING:
                self.idle_since = time.monotonic()
                self._set(IDLE)
            self.host.job_finished(job)
        if timed_out and self.status != STOPPED:
            # runpod/docs endpoint-configurations.mdx: "When exceeded, the job fails and the worker stops."
            # What becomes of other jobs on that worker is not documented: they end FAILED, saying why.
            log.info("worker %s stopped: job %s hit the execution timeout", self.id, job.id)
            self.output.system(
                f"job {job.id} hit the execution timeout ({job.execution_timeout_s:g} s): worker stopped"
            )
            for other in list(self.running) + list(self.orphaned):
                other.finish(
                    J.FAILED, error=f"worker {self.id} was stopped: job {job.id} on it hit the execution timeout"
                )
            await self.stop()
            return
        if refresh and self.status != STOPPED:
            # rp_job.handle_job: refresh_worker sends "stopPod": true; Runpod stops the worker after
            # the job and the scaler starts a fresh one when jobs need it.
            log.info("worker %s stopped after job %s: the handler asked for refresh_worker", self.id, job.id)
            await self.stop()
            return
        if crashed is not None and self.status != STOPPED:
            log.info("worker %s crashed: %s; restarting", self.id, crashed)
            self.output.system(f"worker crashed during job {job.id}: {crashed}; restarting")
            if isinstance(backend, ProcessWorker):
                await backend.close()
            self.backend = None
            for other in list(self.running):
                if other.task is not None:
                    other.task.cancel()
            self.task = asyncio.get_running_loop().create_task(self._restart(), name=f"worker-{self.id}-restart")

    async def _run_generator(self, backend: WorkerBackend, job: J.Job, ctx: JobContext) -> dict[str, Any]:
        """``handle_job`` for a generator handler: items stream as they come; the first item that is
        a dict with a truthy ``error`` ends the job as ``{"error": str(item["error"])}`` (a Python
        ``repr`` string when it is a dict), which the platform shows as a FAILED job."""
        items: list[Any] = []
        generator: Any = backend.handle(job.input, ctx)  # an async generator: closed early on an error item
        try:
            async for item in generator:
                if isinstance(item, dict) and item.get("error"):
                    return {"error": str(item["error"]), "error_item": item["error"]}
                items.append(item)
                job.add_chunk(item)
        except WorkerCrash:
            raise
        except Exception as exc:  # noqa: BLE001 - run_job_generator yields any exception as the job's error
            return {"error": f"handler: {exc} \ntraceback: {''.join(traceback.format_exception(exc))}"}
        finally:
            await generator.aclose()
        return {"output": items}

    async def _run_plain(self, backend: WorkerBackend, job: J.Job, ctx: JobContext) -> dict[str, Any]:
        """``run_job`` for a plain handler: an exception becomes the SDK's JSON error; a dict output
        loses its ``error`` key to the job's error (the job then FAILED)."""
        items = [item async for item in backend.handle(job.input, ctx)]
        output = items[0] if items else None
        if isinstance(output, dict) and "error" in output:
            output = dict(output)
            error = output.pop("error")
            if error:
                return {
                    "output": output,
                    "error": error if isinstance(error, str) else dumps(error).decode(),
                    "error_item": error,
                }
        return {"output": output}

    def _deliver_posted(self, job: J.Job, body: dict[str, Any], is_stream: bool) -> None:
        """What the queue does with a job-done body the SDK posted: an ``error`` makes the job
        FAILED with that error (a non-string error, e.g. worker-vllm's ``{"message", "type",
        "code"}`` from a plain handler, as its JSON text); else COMPLETED with ``output``. A plain
        handler's output is also its one ``/stream`` item (generators streamed theirs already)."""
        if "error" in body:
            error = body["error"]
            job.error_item = error
            job.finish(J.FAILED, error=error if isinstance(error, str) else dumps(error).decode())
            return
        output = body.get("output")
        if not is_stream:
            job.add_chunk(output)
        job.finish(J.COMPLETED, output=output)

    def _deliver(self, job: J.Job, result: dict[str, Any]) -> None:
        """What the platform does with the result the worker sent: ``error`` makes the job FAILED."""
        if "error" in result:
            job.error_item = result.get("error_item")
            job.finish(J.FAILED, error=result["error"])
            return
        output = result.get("output")
        if not self.backend or not self.backend.generator:
            job.add_chunk(output)
        job.finish(J.COMPLETED, output=output)

    async def _restart(self) -> None:
        await self._boot_until_ready()

    async def _boot_until_ready(self) -> None:
        """Boot; when the handler cannot start, crash-loop (UNHEALTHY, unbilled) until it starts, the
        endpoint changes, Runpod gives up after ``profile.unhealthy_retry_s``, or the worker is stopped."""
        while not await self._boot():  # noqa: ASYNC110 - boots again after a pause: a retry, no event to wait for
            await asyncio.sleep(max(self.host.profile.container_start_s, 0.05))
            if self.gave_up_retrying():
                log.info("worker %s: unhealthy for %.0f s, no more retries", self.id, self.unhealthy_for())
                self.output.system(f"worker {self.id} unhealthy too long: Runpod stops retrying it")
                await self.stop()
                return

    def _error_text(self, exc: BaseException) -> str:
        """The ``error`` field as the runpod SDK's worker reports a handler exception."""
        return json.dumps(
            {
                "error_type": str(type(exc)),
                "error_message": str(exc),
                "error_traceback": "".join(traceback.format_exception(exc)),
                "hostname": self.id,
                "worker_id": self.id,
                "runpod_version": RUNPOD_SDK_VERSION,
            }
        )


def _undeliverable(result: dict[str, Any]) -> str | None:
    """Why the SDK could not send ``result`` (``json.dumps`` raises), or None when it can.

    localpod keeps numpy rows in embedding outputs (its encoder writes them directly; the real
    worker converts them with ``tolist()``), so numpy arrays count as serialisable."""
    try:
        # orjson would write a dataclass as an object; json.dumps, which the SDK uses, refuses it
        orjson.dumps(
            {k: v for k, v in result.items() if k != "error_item"},
            option=JSON_OPTIONS | orjson.OPT_PASSTHROUGH_DATACLASS,
        )
        return None
    except TypeError:
        pass

    def default(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    try:
        json.dumps(result.get("output"), default=default)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None
