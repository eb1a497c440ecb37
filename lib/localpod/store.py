"""The emulator's durable state: templates, endpoints, network volumes, billing usage.

Resources are plain dataclasses shared by every API that shows them (REST v2, GraphQL, the
serverless queue); each API module serialises them into its own shape. When a state file is
configured, every change is written atomically (temporary file + ``os.replace``) before the
request that made it returns, so a crash never loses a resource. Live workers are not stored
here; serverless jobs are kept by the job journal beside the state file
(:mod:`localpod.serverless.journal`).

Billing across a crash: a running localpod writes the time into ``<state>.alive`` a few times a
second (:meth:`Store.heartbeat`). Worker sessions still open when the state is loaded died with the
process; they end at its last sign of life (that time, or the state file's last commit), not at the
restart, so the outage is not billed.

A change that cannot be made durable (read-only or full state folder) is not made: resource
backends change the store inside :meth:`Store.change`, which puts every resource back as it was
when the state file refuses the write and raises :class:`StateWriteError` (the APIs answer 503).
Facts the platform records (a worker's billed session) stay in memory and are written with the next
commit that succeeds (:meth:`Store.commit_or_log`). Either way, a failing state folder is logged
once a minute, not once per write (:class:`ThrottledLog`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import string
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

STATE_FORMAT = 1
ALIVE_SUFFIX = ".alive"
_ALIVE_WIDTH = 24
"""The heartbeat is a fixed-width number rewritten in place: one small ``pwrite``, never torn."""

_ID_ALPHABET = string.ascii_lowercase + string.digits
log = logging.getLogger("localpod.state")


class StateWriteError(OSError):
    """The state file could not be written: the change that needed it was not made."""

    def __init__(self, path: Path, cause: OSError) -> None:
        reason = cause.strerror or type(cause).__name__
        super().__init__(
            cause.errno,
            f"localpod cannot write its state file {path} ({reason}); nothing was changed. Free disk space or "
            "make the folder writable, then send the request again",
        )
        self.path = path


class ThrottledLog:
    """One log line per ``interval_s`` for a repeating failure, saying how many were not shown."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last = -float("inf")
        self._hidden = 0

    def warning(self, message: str, *args: Any) -> bool:
        """Log unless a line went out less than ``interval_s`` ago; True when logged."""
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._hidden += 1
            return False
        hidden, self._hidden, self._last = self._hidden, 0, now
        suffix = f" ({hidden} more like it in the last minute)" if hidden else ""
        self.logger.warning(message + suffix, *args)
        return True


WRITE_FAILURES = ThrottledLog(log)
"""Every state and heartbeat write failure of this process goes through this one throttle."""


def new_id(length: int) -> str:
    """Runpod-style resource id: lowercase letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Account:
    id: str = "user_localpod"
    email: str = "dev@localpod.invalid"
    client_balance: float = 250.0
    spend_limit: float = 80.0
    pub_key: str = ""
    max_workers_quota: int | None = None
    """Max workers over all endpoints, set directly (support raised it, or a test); None: what the
    balance buys (:mod:`localpod.resources.account`)."""


@dataclass
class Template:
    id: str
    name: str
    image: str
    args: str = ""
    disk: int = 50
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    registry: str | None = None
    serverless: bool = False
    public: bool = False
    category: str = "NVIDIA"
    start_ssh: bool = True
    start_jupyter: bool = True
    allowed_cuda_versions: list[str] = field(default_factory=list)
    mounts: dict[str, Any] = field(default_factory=dict)
    volume_in_gb: int = 0
    volume_mount_path: str = "/workspace"
    created_at: str = field(default_factory=utc_now_iso)


RELEASE_FIELDS = (
    "image",
    "args",
    "disk",
    "env",
    "ports",
    "registry",
    "gpu_pools",
    "gpu_excluded_types",
    "gpu_count",
    "allowed_cuda_versions",
    "min_cuda_version",
    "timeout_ms",
    "flashboot",
    "network_volume_ids",
    "data_center_ids",
)
"""Endpoint fields workers run with: changing any of them is a new release (``version`` + 1), in
every API; name, scaling and worker counts are not part of a release."""


@dataclass
class Endpoint:
    id: str
    name: str
    image: str
    type: str = "QUEUE"
    template_id: str | None = None
    args: str = ""
    disk: int = 50
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    registry: str | None = None
    gpu_pools: list[str] = field(default_factory=lambda: ["AMPERE_16"])
    gpu_excluded_types: list[str] = field(default_factory=list)
    gpu_count: int = 1
    allowed_cuda_versions: list[str] = field(default_factory=list)
    min_cuda_version: str | None = None
    workers_min: int = 0
    workers_max: int = 3
    idle_timeout: int = 5
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: float = 4
    data_center_ids: list[str] = field(default_factory=list)
    network_volume_ids: list[str] = field(default_factory=list)
    timeout_ms: int = 600_000
    flashboot: str = "OFF"
    model_references: list[str] = field(default_factory=list)
    """Cached models (GraphQL ``saveEndpoint.modelReferences``, e.g.
    ``https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct:main``): workers start on hosts that already
    hold them (:mod:`localpod.resources.modelrefs`, :mod:`localpod.serverless.coldstart`). Not in
    REST v2 (the spec has no field for it)."""
    version: int = 1
    created_at: str = field(default_factory=utc_now_iso)
    last_request_at: float = field(default_factory=time.time)
    """Wall-clock time of the last job submitted (any route); idle parking counts from here. Not
    in any API response: Runpod does not expose it either."""
    parked_step: int = 0
    """Idle-parking steps already applied since the last request (0, 1 or 2), so that raising max
    workers by hand after a step is not undone by the next scaler tick."""
    unhealthy_scale_down_at: float | None = None
    """Wall-clock time Runpod last scaled this endpoint down for producing unhealthy workers
    (max workers set to 0; Runpod emails the account). Not in any API response."""

    def release(self) -> tuple[Any, ...]:
        """What workers run with; compare two of these to know whether a change is a new release."""
        return tuple(getattr(self, name) for name in RELEASE_FIELDS)

    @property
    def max_concurrency(self) -> int:
        """Jobs one worker takes at once, as the worker images read it from their env."""
        for key in ("RUNPOD_MAX_CONCURRENCY", "MAX_CONCURRENCY"):
            raw = self.env.get(key)
            if raw:
                try:
                    return max(1, int(raw))
                except ValueError:
                    continue
        image = self.image.lower()
        if "infinity" in image:
            return 300
        if "vllm" in image:
            return 30
        return 1


@dataclass
class NetworkVolume:
    id: str
    name: str
    size: int
    data_center: str
    type: str = "STANDARD"
    cached_models: list[str] = field(default_factory=list)
    """Model repos whose weights a worker has already downloaded onto this volume."""
    created_at: str = field(default_factory=utc_now_iso)


@dataclass
class WorkerSession:
    """One stretch of a worker's life that bills (:mod:`localpod.serverless.workers` opens and closes
    them by state; :mod:`localpod.resources.billing` turns them into money)."""

    endpoint_id: str
    worker_id: str
    gpu_type_id: str
    gpu_count: int
    price_per_gpu_s: float
    started_at: float
    stopped_at: float | None = None


T = TypeVar("T")


def write_atomically(path: Path, payload: bytes, prefix: str) -> None:
    """Replace ``path`` with ``payload`` so that a crash leaves the old file or the new one, never a
    mix: a temporary file (mode 0600) in the same folder, fsynced, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in known})


class Store:
    """All durable resources, with optional atomic persistence to one JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.account = Account()
        self.templates: dict[str, Template] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.volumes: dict[str, NetworkVolume] = {}
        self.sessions: list[WorkerSession] = []
        self._alive_fd: int | None = None
        if path is not None and path.exists():
            self._load(path)

    # -- persistence -------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: unsupported localpod state format {data.get('format')!r}")
        self.account = _from_dict(Account, data.get("account", {}))
        self.templates = {t["id"]: _from_dict(Template, t) for t in data.get("templates", [])}
        self.endpoints = {e["id"]: _from_dict(Endpoint, e) for e in data.get("endpoints", [])}
        self.volumes = {v["id"]: _from_dict(NetworkVolume, v) for v in data.get("volumes", [])}
        self.sessions = [_from_dict(WorkerSession, s) for s in data.get("sessions", [])]
        open_sessions = [s for s in self.sessions if s.stopped_at is None]
        if open_sessions:
            # A worker that was running when the server died died with it, at its last sign of life.
            last_alive = self.last_alive()
            for session in open_sessions:
                session.stopped_at = max(session.started_at, last_alive)
            # Written now: this process's own heartbeats must never move these ends.
            self.commit()

    @property
    def alive_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ALIVE_SUFFIX)

    def last_alive(self) -> float:
        """When the process that wrote the state was last known alive: its last heartbeat or the
        state file's last commit, whichever is later (now, when neither can be read)."""
        times: list[float] = []
        for candidate in (self.alive_path, self.path):
            if candidate is None:
                continue
            try:
                if candidate == self.alive_path:
                    times.append(float(candidate.read_text(encoding="ascii").strip()))
                else:
                    times.append(candidate.stat().st_mtime)
            except (OSError, ValueError):
                continue
        return max(times) if times else time.time()

    def heartbeat(self, now: float | None = None) -> None:
        """Note that this process is alive (called a few times a second by the platform). A folder
        that refuses the write is logged once a minute (one line, no traceback)."""
        alive = self.alive_path
        if alive is None:
            return
        try:
            if self._alive_fd is None:
                alive.parent.mkdir(parents=True, exist_ok=True)
                self._alive_fd = os.open(alive, os.O_WRONLY | os.O_CREAT, 0o600)
            stamp = f"{time.time() if now is None else now:.6f}".rjust(_ALIVE_WIDTH).encode("ascii")
            os.pwrite(self._alive_fd, stamp, 0)
        except OSError as exc:
            WRITE_FAILURES.warning("cannot write the heartbeat %s: %s", alive, exc.strerror or exc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "account": asdict(self.account),
            "templates": [asdict(t) for t in self.templates.values()],
            "endpoints": [asdict(e) for e in self.endpoints.values()],
            "volumes": [asdict(v) for v in self.volumes.values()],
            "sessions": [asdict(s) for s in self.sessions],
        }

    def commit(self) -> None:
        """Write the state file atomically, if one is configured; ``StateWriteError`` when it cannot."""
        if self.path is None:
            return
        payload = json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()
        try:
            write_atomically(self.path, payload, ".localpod-state-")
        except OSError as exc:
            error = StateWriteError(self.path, exc)
            WRITE_FAILURES.warning("%s", error.strerror)
            raise error from None

    def commit_or_log(self) -> bool:
        """Commit what the platform recorded (it happened: it stays in memory and goes out with the
        next commit that succeeds); a failure is logged once a minute. True when written."""
        try:
            self.commit()
        except StateWriteError:
            return False
        return True

    @contextmanager
    def change(self) -> Iterator[None]:
        """Resource changes made in the block are kept only if the state file takes them: on a failed
        write every template, endpoint and volume is put back as it was (the same objects, in place:
        the platform holds references to them) and ``StateWriteError`` is raised."""
        kinds = ("templates", "endpoints", "volumes")
        members = {kind: dict(getattr(self, kind)) for kind in kinds}
        saved = {id(obj): copy.deepcopy(obj) for kind in kinds for obj in members[kind].values()}
        account = copy.deepcopy(self.account)
        yield
        try:
            self.commit()
        except StateWriteError:
            for kind in kinds:
                live: dict[str, Any] = getattr(self, kind)
                live.clear()
                live.update(members[kind])
                for obj in live.values():
                    before = saved[id(obj)]
                    for f in fields(before):
                        setattr(obj, f.name, getattr(before, f.name))
            for f in fields(self.account):
                setattr(self.account, f.name, getattr(account, f.name))
            raise

    def reset(self) -> None:
        self.account = Account()
        self.templates.clear()
        self.endpoints.clear()
        self.volumes.clear()
        self.sessions.clear()
        self.commit()

    # -- ids -----------------------------------------------------------------------------------

    def new_endpoint_id(self) -> str:
        return self._unique(14, self.endpoints)

    def new_template_id(self) -> str:
        return self._unique(10, self.templates)

    def new_volume_id(self) -> str:
        return self._unique(10, self.volumes)

    @staticmethod
    def _unique(length: int, taken: dict[str, Any]) -> str:
        while True:
            candidate = new_id(length)
            if candidate not in taken:
                return candidate
