"""Local mode: make sure localpod, the local Runpod + HF Hub emulator, is running at
``settings.localpod_url``, starting it when it is not and reusing it when it is.

Why a detached process: the runbooks run in separate kernels, one after the other, and share one
localpod (the endpoint runbook 02 creates must still exist for runbook 03). So localpod runs in its
own session (``start_new_session=True``), outlives the kernel that started it, logs to
``<state_dir>/localpod.log``, keeps its resources in ``<state_dir>/state.json`` and leaves its pid in
``<state_dir>/localpod.pid`` for ``stop_localpod``. An ``fcntl`` lock on ``<state_dir>/lock`` keeps
two notebooks started at the same moment from both spawning one.

One state folder, one server: localpod itself holds ``state.json.lock`` for its whole life and
writes its pid and URL into it. A second localpod on the same folder (``LOCALPOD_URL`` pointed at
another port) would keep its own copy of the resources and overwrite the first one's file, so
``ensure_localpod`` refuses to start one and names the running server instead, and
``stop_localpod`` / ``running_localpod`` find the server through that lock even when the pid file is
gone. A start that fails writes only ``localpod.start.log``: localpod opens ``localpod.log`` once it
holds the lock, so it never touches the running server's log or pid file.

It is started with ``LOCALPOD_API_KEY`` / ``LOCALPOD_HF_TOKEN`` set to the ``RUNPOD_API_KEY`` /
``HF_TOKEN`` rpbook finds (environment, then env file, then the documented local defaults), so the
keys the notebooks use are the keys localpod accepts, and with the Runpod secret ``hf_token`` set to
that HF token (``LOCALPOD_SECRET_hf_token``), so local templates reference
``{{ RUNPOD_SECRET_hf_token }}`` exactly as production ones do. rpbook never imports localpod: it
runs ``python -m localpod serve`` and talks to it over HTTP.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from rpbook.core.errors import ConfigError, RpbookError
from rpbook.core.localpod_address import PORT_FILE
from rpbook.core.paths import LOCALPOD_FOLDER
from rpbook.core.secrets import scrub
from rpbook.core.settings import Settings

DEFAULT_STATE_DIR = Path(LOCALPOD_FOLDER)
PID_FILE = "localpod.pid"
LOG_FILE = "localpod.log"
START_LOG_FILE = "localpod.start.log"
STATE_FILE = "state.json"
SERVER_LOCK_FILE = STATE_FILE + ".lock"
"""Held by the localpod serving ``state.json`` for its life; holds ``{"pid": ..., "url": ...}``."""
LOCK_FILE = "lock"
HF_SECRET_NAME = "hf_token"
"""The Runpod secret local mode defines for the HF token: ``{{ RUNPOD_SECRET_hf_token }}``."""
EXIT_STATE_IN_USE = 75
"""EX_TEMPFAIL: not 3, which uvicorn exits with when it cannot start (a port in use)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Processes this interpreter started, kept so they can be reaped (no zombie, no ResourceWarning)."""


@dataclass(frozen=True)
class LocalpodStatus:
    """Where localpod answers and whether this call started it."""

    url: str | None
    """Root URL of localpod; None when the target is not local (nothing to do)."""
    started: bool
    pid: int | None
    """The server's pid when known (started here, or recorded in the state folder's pid file)."""
    log_file: Path | None


# -------------------------------------------------------------------------------------- public API


def ensure_localpod(
    settings: Settings, *, state_dir: Path = DEFAULT_STATE_DIR, profile: str = "fast", timeout_s: float = 30
) -> LocalpodStatus:
    """Reuse the localpod at ``settings.localpod_url`` or start one there; a no-op for target runpod.

    A running localpod must accept our ``RUNPOD_API_KEY``; one started with another key raises
    ``ConfigError`` saying how to stop it or which key to set. Start failures raise ``RpbookError``
    with the last lines of the log."""
    if settings.target != "local" or not settings.localpod_url:
        return LocalpodStatus(url=None, started=False, pid=None, log_file=None)
    url = settings.localpod_url.rstrip("/")
    state_dir = Path(state_dir).expanduser().absolute()
    log_file = state_dir / LOG_FILE
    if _health(url):
        _verify_key(settings, url, state_dir)
        return LocalpodStatus(url=url, started=False, pid=_recorded_pid(state_dir), log_file=log_file)
    host, port = _loopback_port(url)
    _prepare_state_dir(state_dir)
    with _state_lock(state_dir):
        if _health(url):  # another notebook started it while we waited for the lock
            _verify_key(settings, url, state_dir)
            return LocalpodStatus(url=url, started=False, pid=_recorded_pid(state_dir), log_file=log_file)
        holder = running_localpod(state_dir)
        if holder is not None:
            raise _state_in_use(state_dir, url, holder)
        proc = _spawn(settings, host, port, profile, state_dir)
        try:
            _wait_healthy(url, proc, log_file, timeout_s)
        except BaseException:
            _terminate(proc.pid)
            raise
        if proc.poll() is not None:
            # It exited, yet something healthy answers: another localpod took the port first.
            _CHILDREN.pop(proc.pid, None)
            _verify_key(settings, url, state_dir)
            return LocalpodStatus(url=url, started=False, pid=None, log_file=log_file)
        (state_dir / PID_FILE).write_text(f"{proc.pid}\n")
    _verify_key(settings, url, state_dir)
    return LocalpodStatus(url=url, started=True, pid=proc.pid, log_file=log_file)


def stop_localpod(state_dir: Path = DEFAULT_STATE_DIR, timeout_s: float = 10) -> bool:
    """Stop the localpod that serves ``state_dir`` (SIGTERM, then SIGKILL after ``timeout_s``): the one
    holding its state lock, else the one in its pid file. True if a running localpod was stopped; the
    pid file is removed either way."""
    state_dir = Path(state_dir).expanduser().absolute()
    pid_file = state_dir / PID_FILE
    if not pid_file.exists() and not (state_dir / SERVER_LOCK_FILE).exists():
        return False
    with _state_lock(state_dir):
        pid = _recorded_pid(state_dir)
        stopped = False
        if pid is not None and _is_localpod(pid):
            stopped = _terminate(pid, timeout_s)
        pid_file.unlink(missing_ok=True)
    return stopped


def running_localpod(state_dir: Path = DEFAULT_STATE_DIR) -> tuple[int | None, str | None] | None:
    """``(pid, url)`` of the localpod serving ``state_dir`` (the process holding its state lock), or
    None when no localpod serves it. Honest even when the pid file is gone or belongs to another start."""
    path = Path(state_dir).expanduser().absolute() / SERVER_LOCK_FILE
    try:
        handle = open(path)  # noqa: SIM115 - closed by the `with` below, after the OSError check
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                data = json.loads(handle.read() or "{}")
            except ValueError:
                data = {}
            pid = data.get("pid") if isinstance(data, dict) else None
            url = data.get("url") if isinstance(data, dict) else None
            return (pid if isinstance(pid, int) else None, url if isinstance(url, str) else None)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def serve_localpod(settings: Settings, *, state_dir: Path = DEFAULT_STATE_DIR, profile: str = "fast") -> int:
    """``make serve``: this checkout's localpod in the foreground (its log on the terminal), on the
    port and state folder the runbooks use, with the keys :func:`ensure_localpod` would give it.
    Returns the exit code: 0 after Ctrl+C or a clean stop (one line said), 1 when another
    localpod already serves the folder or the port is taken (one line says which)."""
    if settings.target != "local" or not settings.localpod_url:
        print("rpbook: localpod serves the local target only")
        return 2
    url = settings.localpod_url.rstrip("/")
    state_dir = Path(state_dir).expanduser().absolute()
    holder = running_localpod(state_dir)
    if holder is not None:
        pid, running_url = holder
        print(
            f"localpod is already running for {state_dir}: pid {pid or '?'} at {running_url or url} "
            "(`make stop` stops it)"
        )
        return 1
    if _health(url):
        print(f"another localpod already answers at {url}; stop it, or set LOCALPOD_URL to another port")
        return 1
    host, port = _loopback_port(url)
    _prepare_state_dir(state_dir)
    command, env = _serve_command(settings, host, port, profile, state_dir)
    print(f"localpod for {state_dir} at {url} (Ctrl+C stops it)", flush=True)
    interrupted: list[int] = []
    children: list[subprocess.Popen[bytes]] = []

    def on_interrupt(signum: int, frame: Any) -> None:
        # A terminal's Ctrl+C reaches localpod too (same process group); a SIGINT sent to this process
        # alone is passed on, so localpod shuts down cleanly either way.
        interrupted.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        children.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL))
        code = children[0].wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print("localpod stopped (Ctrl+C)")
        return 0
    return 0 if code in (0, -signal.SIGTERM) else code


def localpod_running(settings: Settings) -> bool:
    """True when a localpod answers its health route at ``settings.localpod_url``."""
    url = settings.localpod_url
    if not url:
        return False
    return _health(url.rstrip("/"))


# ---------------------------------------------------------------------------------------- helpers


def _health(url: str, timeout_s: float = 2) -> bool:
    try:
        response = httpx.get(f"{url}/_localpod/health", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    try:
        return response.json().get("status") == "ok"
    except ValueError:
        return False


def _verify_key(settings: Settings, url: str, state_dir: Path) -> None:
    """A localpod started with another key answers 401 to ours: say so before any notebook step fails."""
    key = settings.runpod_api_key()
    try:
        response = httpx.get(
            f"{settings.rest_url}/v2/serverless", headers={"Authorization": f"Bearer {key.reveal()}"}, timeout=10
        )
    except httpx.HTTPError as err:
        raise RpbookError(
            f"localpod at {url} answers its health check but not its REST API: {scrub(str(err)) or type(err).__name__}"
        ) from None
    if response.status_code == 401:
        port = urlsplit(url).port
        raise ConfigError(
            f"A localpod is already running at {url}, but it was started with another Runpod API key: it "
            f"refuses RUNPOD_API_KEY {key.masked} (from {key.source}). Either stop it — "
            f"`make stop` (or `rpbook localpod stop`) in the project if these notebooks started it, else stop "
            f"the process listening on port {port} (e.g. `lsof -i :{port}`) — and run again, or set "
            f"RUNPOD_API_KEY (environment or {settings.env_file}) to the key it was started with "
            f"(its LOCALPOD_API_KEY), or point LOCALPOD_URL at another port."
        )


def _state_in_use(state_dir: Path, url: str, holder: tuple[int | None, str | None]) -> RpbookError:
    pid, running_url = holder
    if running_url and running_url.rstrip("/") != url:
        return ConfigError(
            f"The localpod state folder {state_dir} is already served by the localpod at {running_url} (pid "
            f"{pid or '?'}), and one folder takes one server (a second would lose the first one's resources). "
            f"Either set LOCALPOD_URL={running_url} to use it, or stop it (`make stop`, or "
            f"`rpbook localpod stop`) and run again to start one at {url}, "
            f"or use another state folder (RPBOOK_LOCALPOD_DIR)."
        )
    return RpbookError(
        f"The localpod serving {state_dir} (pid {pid or '?'}, {running_url or url}) holds its state lock but does not "
        f"answer its health check. Look at {state_dir / LOG_FILE}; stop it (`make stop`) and run again."
    )


def _loopback_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"localpod is not answering at {url}, and rpbook only starts it on this machine "
            "(http://127.0.0.1:<port>). Start it where it should run (`localpod serve`) or set "
            "LOCALPOD_URL to http://127.0.0.1:<port>."
        )
    return "127.0.0.1", parts.port or 80


def _prepare_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    ignore = state_dir / ".gitignore"
    if not ignore.exists():  # logs and emulator state never belong in git
        ignore.write_text("*\n")


@contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _serve_command(
    settings: Settings, host: str, port: int, profile: str, state_dir: Path, *, log_file: bool = False
) -> tuple[list[str], dict[str, str]]:
    """``python -m localpod serve`` for ``state_dir`` and its environment: the keys rpbook uses."""
    hf_token = settings.hf_token().reveal()
    env = {
        **os.environ,
        "LOCALPOD_API_KEY": settings.runpod_api_key().reveal(),
        "LOCALPOD_HF_TOKEN": hf_token,
        f"LOCALPOD_SECRET_{HF_SECRET_NAME}": hf_token,
    }
    command = [
        sys.executable,
        "-m",
        "localpod",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--profile",
        profile,
        "--state",
        str(state_dir / STATE_FILE),
    ]
    if log_file:
        command += ["--log-file", str(state_dir / LOG_FILE)]
    return command, env


def _spawn(settings: Settings, host: str, port: int, profile: str, state_dir: Path) -> subprocess.Popen[bytes]:
    command, env = _serve_command(settings, host, port, profile, state_dir, log_file=True)
    # Until it holds the state lock, localpod writes only here; then it switches to localpod.log.
    with open(state_dir / START_LOG_FILE, "wb") as log:
        proc = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_file: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is None and _health(url, timeout_s=0.5):
            return
        if code is not None:
            if _health(url, timeout_s=0.5):
                return  # exited because another localpod holds the port: the caller checks that one
            if code == EXIT_STATE_IN_USE:
                raise ConfigError(_log_tail(log_file.with_name(START_LOG_FILE), lines=5))
            tail = _log_tail(log_file)
            hint = ""
            if "address already in use" in tail.lower():
                hint = (
                    f" Port {urlsplit(url).port} is taken by another program: free it, delete "
                    f"{log_file.parent / PORT_FILE} (this checkout then picks another port), or set LOCALPOD_URL "
                    "to http://127.0.0.1:<free port>."
                )
            elif "ModuleNotFoundError" in tail:
                # rpbook installs without the emulator's server stack (pyproject's [localpod] extra).
                hint = " The emulator's packages are missing: pip install 'runpod-runbooks[localpod]' (or make demo)."
            raise RpbookError(
                f"localpod exited (code {code}) before answering at {url}.{hint} Last lines of {log_file}:\n{tail}"
            )
        if time.monotonic() > deadline:
            raise RpbookError(
                f"localpod did not answer at {url} within {timeout_s:g} s. Last lines of "
                f"{log_file}:\n{_log_tail(log_file)}"
            )
        time.sleep(0.1)


def _log_tail(log_file: Path, lines: int = 20) -> str:
    """The last lines of ``log_file`` (for ``localpod.log``: after what the start wrote before it)."""
    texts: list[str] = []
    start_log = log_file.with_name(START_LOG_FILE)
    for path in ([start_log] if log_file.name == LOG_FILE else []) + [log_file]:
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError:
            continue
    if not texts:
        return "(no log)"
    return scrub("\n".join("\n".join(texts).splitlines()[-lines:])) or "(empty log)"


def _recorded_pid(state_dir: Path) -> int | None:
    """The pid of the server holding the state lock, else the pid file's (if that process lives)."""
    holder = running_localpod(state_dir)
    if holder is not None and holder[0] is not None:
        return holder[0]
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def _is_localpod(pid: int) -> bool:
    """Guard against a stale pid file whose pid now belongs to another program."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        try:
            cmdline = subprocess.run(
                ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, timeout=5
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return True
    return "localpod" in cmdline and "serve" in cmdline


def _terminate(pid: int, timeout_s: float = 10) -> bool:
    """SIGTERM, wait, SIGKILL; True if the process was running."""
    if not _alive(pid):
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return True
