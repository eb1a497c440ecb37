"""The ledger: every resource the runbooks create, written down *before* the create call is sent.

Why: a tool that forgets what it created leaves it billing (dstack#1551: a pod marked terminated
after a network blip kept billing; worker-vllm#190: workers still running an hour after a request).
Runbook 99 tears down from this ledger plus the runbooks' names, and reconciles both with what the
account really has, so nothing a run created can be lost:

- an *intent* row (kind, name, target, REST base URL, run folder, time, ``status = creating``) is
  committed before the POST leaves, so a ``kill -9`` between the POST and its answer leaves a row
  that names the resource; teardown then finds it by name;
- when the POST returns, the row gets the resource's id (``created``); a refused POST (an HTTP 4xx:
  nothing was created) is marked ``refused``; a POST that got no answer stays ``creating`` (it may
  exist on Runpod);
- teardown marks rows ``deleted`` (or ``gone``: not on the account any more).

Money safety: when the ledger cannot be written, nothing is created (``LedgerError``): a resource
the ledger does not know about is exactly what this exists to prevent.

Storage: SQLite (standard library), WAL journal and ``synchronous=FULL`` so a committed row survives
a crash of the process, and several kernels (one per notebook) may write at once. The file sits
in the project, ``<project>/.rpbook/ledger.sqlite`` (git-ignored; ``rpbook.core.paths``), or at ``$RPBOOK_LEDGER``.
Rows are keyed by target and REST base URL, so localpod's entries and real Runpod's never mix (two
localpods on different ports are two accounts, as they are).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from rpbook.core.errors import ControlPlaneError, LedgerError
from rpbook.core.paths import LEDGER_ENV, RUN_DIR_ENV, ledger_file
from rpbook.core.settings import Settings

Status = Literal["creating", "created", "refused", "deleted", "gone"]
ACTIVE: tuple[Status, ...] = ("creating", "created")
"""Rows that may stand for a resource on the account (teardown's input)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    target      TEXT NOT NULL,
    base_url    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    resource_id TEXT,
    status      TEXT NOT NULL,
    run_dir     TEXT NOT NULL DEFAULT '',
    pid         INTEGER,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS resources_account ON resources (target, base_url, status);
"""

T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ledger_path(settings: Settings) -> Path:
    """``$RPBOOK_LEDGER``, else ``<project>/.rpbook/ledger.sqlite`` (``rpbook.core.paths``): never
    beside the ``env_file`` parameter, which can be wrong. One file for every account; rows are
    keyed by ``settings``' target and REST base URL."""
    return ledger_file()


@dataclass(frozen=True)
class LedgerEntry:
    """One row: a resource a runbook created (or was about to create)."""

    seq: int
    target: str
    base_url: str
    kind: str
    name: str
    resource_id: str | None
    status: str
    run_dir: str
    created_at: str
    updated_at: str
    note: str = ""


class Ledger:
    """The ledger file of one account (``target`` + REST base URL). Open it per use: a connection
    is cheap, and a notebook kernel should not hold the file between cells."""

    def __init__(self, path: Path, target: str, base_url: str) -> None:
        self.path = path
        self.target = target
        self.base_url = base_url.rstrip("/")

    @classmethod
    def for_settings(cls, settings: Settings) -> Ledger:
        return cls(ledger_path(settings), settings.target, settings.rest_url)

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(
                f"cannot open the ledger {self.path} ({type(exc).__name__}: {exc}), so nothing was created: every "
                f"resource must be recorded before it is created, or a crash could leave it billing unseen. Make "
                f"the folder writable, or set {LEDGER_ENV} to a writable file, and run the cell again."
            ) from None
        return conn

    def _write(self, sql: str, args: tuple[object, ...]) -> int:
        try:
            with closing(self._connect()) as conn:
                cursor = conn.execute(sql, args)
                return int(cursor.lastrowid or 0)
        except sqlite3.Error as exc:
            raise LedgerError(
                f"cannot write the ledger {self.path} ({type(exc).__name__}: {exc}). Make it "
                f"writable (or set {LEDGER_ENV}) and run the cell again."
            ) from None

    def intend(self, kind: str, name: str, *, run_dir: str | None = None) -> int:
        """Commit a ``creating`` row before the create call; return its number."""
        run = run_dir if run_dir is not None else os.environ.get(RUN_DIR_ENV, "")
        stamp = _now()
        return self._write(
            "INSERT INTO resources (target, base_url, kind, name, resource_id, status, run_dir, pid, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, NULL, 'creating', ?, ?, ?, ?)",
            (self.target, self.base_url, kind, name, run, os.getpid(), stamp, stamp),
        )

    def mark(self, seq: int, status: Status, *, resource_id: str | None = None, note: str = "") -> None:
        """Set a row's status (and its id when it becomes known)."""
        self._write(
            "UPDATE resources SET status = ?, resource_id = COALESCE(?, resource_id), updated_at = ?, "
            "note = ? WHERE seq = ?",
            (status, resource_id, _now(), note, seq),
        )

    def entries(self, *, statuses: tuple[str, ...] | None = ACTIVE) -> list[LedgerEntry]:
        """This account's rows, oldest first (``statuses`` None: all of them)."""
        if not self.path.exists():
            return []
        sql = (
            "SELECT seq, target, base_url, kind, name, resource_id, status, run_dir, created_at, updated_at, "
            "note FROM resources WHERE target = ? AND base_url = ?"
        )
        args: list[object] = [self.target, self.base_url]
        if statuses is not None:
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args += list(statuses)
        try:
            with closing(self._connect()) as conn:
                rows = conn.execute(sql + " ORDER BY seq", args).fetchall()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger {self.path} ({type(exc).__name__}: {exc})") from None
        return [LedgerEntry(*row) for row in rows]

    def record_create(self, kind: str, name: str, create: Callable[[], T], id_of: Callable[[T], str]) -> T:
        """Write the intent, call ``create``, then fill in the id; a refused call (HTTP 4xx) is
        marked ``refused``, any other failure leaves ``creating`` (the resource may exist)."""
        seq = self.intend(kind, name)
        try:
            resource = create()
        except ControlPlaneError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                self.mark(seq, "refused", note=f"HTTP {exc.status}")
            raise
        self.mark(seq, "created", resource_id=id_of(resource))
        return resource


def record_create(settings: Settings, kind: str, name: str, create: Callable[[], T], id_of: Callable[[T], str]) -> T:
    """What ``rpbook.account.plans.apply`` calls around every create: see :meth:`Ledger.record_create`."""
    return Ledger.for_settings(settings).record_create(kind, name, create, id_of)
