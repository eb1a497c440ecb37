"""A worker built on a small fake host, without a platform, store or server: the narrow interface
of :mod:`localpod.serverless.worker_host` is all a :class:`~localpod.serverless.workers.Worker` uses."""

from __future__ import annotations

import ast
import asyncio
import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path

from localpod.config import Settings
from localpod.profiles import FAST, Profile
from localpod.serverless import jobs as J
from localpod.serverless import workers
from localpod.serverless.platform import EndpointRuntime
from localpod.serverless.worker_host import WorkerHost, WorkerSettings
from localpod.serverless.worker_logs import WorkerLog
from localpod.serverless.worker_protocol import WorkerProtocolHub
from localpod.serverless.workers import IDLE, STOPPED, UNHEALTHY, Worker
from localpod.store import Endpoint, NetworkVolume, WorkerSession

QUICK = replace(FAST, container_start_s=0.0, engine_init_s=0.0, scaler_tick_s=0.005)


@dataclass
class FakeSettings:
    hf_token: str = "hf_seed"
    proxy_url: str | None = None
    proxy_api_key: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    worker_base_url: str = "http://127.0.0.1:9"
    worker_processes: bool = False

    def secret(self, name: str) -> str | None:
        return self.secrets.get(name)

    def handler_for(self, image: str) -> str | None:
        return None


@dataclass
class FakeHost:
    """Records what the worker asks of its endpoint."""

    endpoint: Endpoint
    settings: FakeSettings = field(default_factory=FakeSettings)
    profile: Profile = QUICK
    sessions: list[WorkerSession] = field(default_factory=list)
    commits: int = 0
    logs: list[WorkerLog] = field(default_factory=list)
    finished: list[J.Job] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dispatches: int = 0
    remembered: list[int] = field(default_factory=list)
    worker_protocol: WorkerProtocolHub = field(default_factory=WorkerProtocolHub)

    def volume(self) -> NetworkVolume | None:
        return None

    def allowed_data_centers(self) -> list[str]:
        return list(self.endpoint.data_center_ids)

    def flashboot_ready(self, version: int) -> bool:
        return False

    def remember_flashboot(self, version: int) -> None:
        self.remembered.append(version)

    def open_log(self, worker_id: str) -> WorkerLog:
        log = WorkerLog(self.endpoint.id, worker_id)
        self.logs.append(log)
        return log

    def add_session(self, session: WorkerSession) -> None:
        self.sessions.append(session)
        self.commits += 1

    def commit(self) -> None:
        self.commits += 1

    def dispatch(self) -> None:
        self.dispatches += 1

    def worker_ready(self, worker: Worker) -> None:
        self.ready.set()

    def job_finished(self, job: J.Job) -> None:
        self.finished.append(job)


def _host(env: dict[str, str] | None = None, secrets: dict[str, str] | None = None) -> FakeHost:
    endpoint = Endpoint(id="ep-fake", name="fake", image="runpod/mock-worker:latest", env=env or {}, flashboot="ON")
    return FakeHost(endpoint, FakeSettings(secrets=secrets or {}))


def test_a_worker_boots_runs_a_job_and_stops_on_a_fake_host() -> None:
    async def scenario() -> tuple[FakeHost, Worker, J.Job]:
        host = _host()
        worker = Worker(host)
        worker.start()
        await asyncio.wait_for(host.ready.wait(), 5)
        assert worker.status == IDLE and worker.free_slots == 1
        job = J.Job(id="job-1", endpoint_id="ep-fake", input={"mock_return": "pong"}, sync=False, execution_timeout_s=5)
        worker.assign(job)
        await asyncio.wait_for(job.done.wait(), 5)
        await worker.stop()
        return host, worker, job

    host, worker, job = asyncio.run(scenario())
    assert job.status == J.COMPLETED and job.output == "pong" and job.worker_id == worker.id
    assert host.finished == [job]
    [session] = host.sessions
    assert session.worker_id == worker.id and session.gpu_type_id == worker.gpu_type_id
    assert session.stopped_at is not None  # the stop ended billing ...
    assert host.commits >= 2  # ... and was persisted, as the session's start was
    assert host.remembered == [host.endpoint.version]  # a full start leaves a FlashBoot snapshot
    assert worker.status == STOPPED
    [log] = host.logs
    lines = [line.line for line in log.lines]
    assert any("placed on" in line for line in lines) and lines[-1] == f"worker {worker.id} stopped"


def test_secrets_come_from_the_hosts_settings() -> None:
    """Runpod secret references resolve through ``host.settings.secret``; a missing one leaves the
    worker unhealthy, naming the secret."""
    env = {"GREETING": "{{ RUNPOD_SECRET_greeting }}"}

    async def boot(secrets: dict[str, str]) -> tuple[str, Worker]:
        worker = Worker(_host(env, secrets))
        worker.start()
        for _ in range(500):
            if worker.status in (IDLE, UNHEALTHY):
                break
            await asyncio.sleep(0.01)
        status = worker.status
        await worker.stop()  # also ends an unhealthy worker's crash loop
        return status, worker

    status, ok = asyncio.run(boot({"greeting": "hello"}))
    assert status == IDLE and ok.backend is not None and ok.backend.spec.env["GREETING"] == "hello"
    status, missing = asyncio.run(boot({}))
    assert status == UNHEALTHY and missing.unhealthy_reason is not None
    assert "greeting" in missing.unhealthy_reason


def _members(protocol: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(protocol) if not name.startswith("_")}


def test_the_platform_runtime_and_settings_provide_the_whole_interface() -> None:
    """Every member of the protocols exists on what the platform passes (mypy checks the types)."""
    assert _members(WorkerHost) and _members(WorkerSettings)
    assert not {name for name in _members(WorkerHost) if not hasattr(EndpointRuntime, name)}
    settings = Settings()
    assert not {name for name in _members(WorkerSettings) if not hasattr(settings, name)}


def test_the_worker_module_does_not_reach_into_the_platform() -> None:
    tree = ast.parse(Path(inspect.getfile(workers)).read_text())
    reached = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "platform"]
    imports = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("serverless.platform")
    ]
    assert reached == [] and imports == [], f"workers.py lines {reached + imports} use the platform directly"
