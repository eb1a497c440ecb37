"""Shared fixtures: one real localpod HTTP server per test session, reset before each test.

Also two session-wide services of the suite itself: a check that the tests left nothing in the
checkout's ``notebooks/`` (kernel sockets, a ``runs/`` folder: the next browser run copies that tree),
and one line per group of skipped tests, with the reason and the fix, at the end of the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from localpod.app import create_app
from localpod.config import Settings
from localpod.context import ServerContext
from localpod.profiles import FAST
from rpbook.runbook.local import stop_localpod

TEST_API_KEY = "rpa_TEST_KEY_NOT_REAL"
TEST_HF_TOKEN = "hf_test_token_not_real"
TEST_PROFILE = {
    "container_start_s": 0.05,
    "engine_init_s": 0.05,
    "download_bytes_per_s": 200e9,
    "volume_read_bytes_per_s": 400e9,
}


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_priority(increment: int) -> None:
    """``os.nice(increment)`` where allowed (a negative increment needs root or CAP_SYS_NICE);
    elsewhere the process keeps its priority."""
    try:
        os.nice(increment)
    except PermissionError:
        pass


@contextmanager
def localpod_process(env: dict[str, str], profile: str = "fast", nice: int = 0) -> Iterator[str]:
    """A localpod in a process of its own on a free port (its base URL), stopped on exit. Timing
    figures measured against the in-process test server would include the GIL the client shares
    with it. ``env`` adds to this process's environment (``LOCALPOD_API_KEY``, ...). ``nice`` < 0
    raises its CPU priority where the user may (:func:`raise_priority`)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "localpod", "serve", "--port", str(port), "--quiet", "--profile", profile],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=(lambda: raise_priority(nice)) if nice else None,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/_localpod/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "localpod did not start"
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class LocalpodServer:
    """A running localpod: base URLs per emulated host, the keys it accepts, its live context."""

    base_url: str
    api_key: str
    hf_token: str
    ctx: ServerContext

    @property
    def rest_url(self) -> str:
        """Runpod REST v2 base (append ``/v2/...``); also ``RUNPOD_API_BASE_URL`` for GraphQL."""
        return f"{self.base_url}/api.runpod.io"

    @property
    def queue_url(self) -> str:
        """Value for ``runpod.endpoint_url_base``."""
        return f"{self.base_url}/api.runpod.ai/v2"

    @property
    def hub_url(self) -> str:
        """Value for ``HfApi(endpoint=...)`` / ``HF_ENDPOINT``."""
        return f"{self.base_url}/huggingface.co"

    def openai_base(self, endpoint_id: str) -> str:
        return f"{self.queue_url}/{endpoint_id}/openai/v1"

    def control(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = httpx.request(
            method,
            f"{self.base_url}/_localpod/{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {self.api_key}"},
            **kwargs,
        )
        response.raise_for_status()
        return response


def start_server(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, ServerContext]:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("localpod test server did not start")
        time.sleep(0.02)
    return server, thread, app.state.ctx


@pytest.fixture(scope="session")
def localpod_session() -> Iterator[LocalpodServer]:
    settings = Settings(
        port=free_port(), profile=FAST, api_key=TEST_API_KEY, hf_token=TEST_HF_TOKEN, log_requests=False
    )
    server, thread, ctx = start_server(settings)
    try:
        yield LocalpodServer(settings.base_url, TEST_API_KEY, TEST_HF_TOKEN, ctx)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def localpod(localpod_session: LocalpodServer) -> LocalpodServer:
    """A clean localpod: no resources, no jobs, rate limits on, and the fast profile with cold
    starts shortened further (about 0.1 s) so that tests spend their time on behaviour."""
    localpod_session.control("POST", "reset")
    localpod_session.control(
        "PATCH", "config", json={"profile": "fast", "overrides": TEST_PROFILE, "rate_limits": True, "proxy_url": None}
    )
    return localpod_session


def call_in_server(server: LocalpodServer, fn, *args):  # type: ignore[no-untyped-def]
    """Run ``fn(*args)`` on the server's event loop thread and return its result."""
    import asyncio

    async def runner():  # type: ignore[no-untyped-def]
        result = fn(*args)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    assert server.ctx.loop is not None
    return asyncio.run_coroutine_threadsafe(runner(), server.ctx.loop).result(timeout=30)


@pytest.fixture
def plant_endpoint(localpod: LocalpodServer):  # type: ignore[no-untyped-def]
    """Create an endpoint directly in the store (no control-plane API involved) and return it."""
    from localpod.store import Endpoint

    def plant(image: str = "runpod/mock-worker:latest", **fields):  # type: ignore[no-untyped-def]
        def create() -> Endpoint:
            store = localpod.ctx.store
            endpoint = Endpoint(
                id=store.new_endpoint_id(), name=fields.pop("name", "test-endpoint"), image=image, **fields
            )
            store.endpoints[endpoint.id] = endpoint
            store.commit()
            localpod.ctx.platform.endpoint_created(endpoint)
            return endpoint

        return call_in_server(localpod, create)

    return plant


@pytest.fixture
def settings(localpod: LocalpodServer, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """rpbook settings for the test localpod, with its keys in the environment (as a user's would be)."""
    from rpbook.core.settings import load_settings

    monkeypatch.setenv("RUNPOD_API_KEY", localpod.api_key)
    monkeypatch.setenv("HF_TOKEN", localpod.hf_token)
    return load_settings("local", env_file=tmp_path / ".env", localpod_url=localpod.base_url)


class Isolated:
    """A localpod of its own (free port, state folder) and an env file, for whole-runbook tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env_file = root / ".env"
        self.state_dir = root / ".localpod"

    def environ(self) -> dict[str, str]:
        return {
            "LOCALPOD_URL": self.url,
            "RPBOOK_ENV_FILE": str(self.env_file),
            "RPBOOK_LOCALPOD_DIR": str(self.state_dir),
            # figures of notebooks run without `rpbook run` (nbmake): here, not in notebooks/runs/latest
            "RPBOOK_RUN_DIR": str(self.root / "runs" / "latest"),
        }

    def process_env(self) -> dict[str, str]:
        """This process's environment without the user's keys, pointed at this localpod."""
        env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "HF_TOKEN")}
        env.update(self.environ())
        return env

    def resources(self) -> dict[str, list[str]]:
        """Resource ids in this localpod, read with the key rpbook started it with (local default)."""
        from localpod import DEFAULT_API_KEY

        key = os.environ.get("RUNPOD_API_KEY") or DEFAULT_API_KEY
        response = httpx.get(f"{self.url}/_localpod/state", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        response.raise_for_status()
        state = response.json()
        return {kind: sorted(item["id"] for item in state[kind]) for kind in ("templates", "endpoints", "volumes")}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Isolated]:
    box = Isolated(tmp_path)
    for key, value in box.environ().items():
        monkeypatch.setenv(key, value)
    for key in ("RUNPOD_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        yield box
    finally:
        stop_localpod(box.state_dir)


@pytest.fixture(autouse=True)
def rpbook_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's ledger, pin leases and event restore plans in its own ``.rpbook`` (beside its env
    file, where ``settings`` and ``isolated`` put it), never in the checkout's (``rpbook.core.paths``)."""
    monkeypatch.setenv("RPBOOK_STATE_DIR", str(tmp_path / ".rpbook"))
    return tmp_path / ".rpbook"


# -- the suite itself ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
LEFTOVERS = (
    "notebooks/kernel-ipc-*",
    "notebooks/runs",
    "notebooks/*.figures.json",
    "notebooks/.localpod",
    "build",  # a `pip install .` of the checkout itself
    "jupyter/migrated",  # jupyter_core's marker in a JupyterLab's config folder
)


_LEFTOVERS_BEFORE = pytest.StashKey[set[str]]()
_LEFT_BEHIND = pytest.StashKey[list[str]]()


def _leftovers() -> set[str]:
    return {str(path.relative_to(ROOT)) for pattern in LEFTOVERS for path in ROOT.glob(pattern)}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_LEFTOVERS_BEFORE] = _leftovers()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """``make test`` leaves no files beside the runbooks (a second ``make test`` must pass too).
    Judged once, by the process that started the run, after every test: with ``pytest -n`` (xdist)
    a worker that finishes early would see another worker's notebook kernel at work."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller judges
        return
    left = sorted(_leftovers() - session.config.stash[_LEFTOVERS_BEFORE])
    session.config.stash[_LEFT_BEHIND] = left
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line per group of skipped tests: how many, in which files, and the reason, which says the
    fix (install Chromium, point RUNPOD_OPENAPI_SPEC at the spec, ...); first, what the tests
    left in the checkout (:func:`pytest_sessionfinish` made that a failure)."""
    left = config.stash.get(_LEFT_BEHIND, [])
    if left:
        terminalreporter.write_sep("=", f"FAILED: the tests left these in the checkout: {', '.join(left)}", red=True)
    groups: dict[str, list[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if not isinstance(longrepr, tuple) or len(longrepr) != 3:
            continue
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        groups.setdefault(reason, []).append(report.nodeid.split("::", 1)[0])
    if not groups:
        return
    terminalreporter.write_sep("-", "skipped tests, and how to run them")
    for reason, files in sorted(groups.items(), key=lambda group: -len(group[1])):
        count = len(files)
        where = ", ".join(sorted(set(files)))
        terminalreporter.write_line(f"skipped {count} test{'' if count == 1 else 's'} ({where}): {reason}")
