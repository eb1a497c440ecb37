"""Pin leases: a keep-alive's raised ``workers.min`` written down before the change, so that it is
restored even when its holder dies.

A lease file (owner pid, host, expiry) lives in the project's ``.rpbook/pins/``
(``rpbook.core.paths``). The keep-alive restores its pin on normal exit, exceptions, interpreter exit
and SIGTERM/SIGHUP (through ``rpbook.core.restore``); after a
``kill -9`` the next :func:`recover_stale_pins` does (called by ``session.start``, i.e. every
runbook, and by every new pin).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import _as_secret
from rpbook.core.errors import RpbookError
from rpbook.core.paths import pins_dir
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings

LEASE_GRACE_S = 60.0
"""A lease expires this long after the session's ``max_session_s`` ran out."""


def lease_dir(settings: Settings) -> Path:
    """Where pin leases live: ``<project>/.rpbook/pins`` (``rpbook.core.paths``), so every runbook
    of a project sees them whatever its ``env_file``."""
    return pins_dir()


@dataclass(frozen=True)
class Lease:
    """A pin in force: what to restore, and who holds it until when."""

    endpoint_id: str
    rest_url: str
    previous_min: int
    pinned_min: int
    pid: int
    host: str
    created_at: float
    expires_at: float
    """Wall-clock time (``time.time()``) after which anyone may restore the pin."""

    def holder_alive(self) -> bool:
        if self.host != socket.gethostname():
            return True  # cannot tell: only the expiry frees it
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stale(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at or not self.holder_alive()


def lease_path(directory: Path, endpoint_id: str) -> Path:
    return directory / f"{endpoint_id}.json"


def write_lease(directory: Path, lease: Lease) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = lease_path(directory, lease.endpoint_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(lease)))
    os.replace(tmp, path)
    return path


def read_leases(directory: Path) -> list[tuple[Path, Lease]]:
    out = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            out.append((path, Lease(**json.loads(path.read_text()))))
        except (ValueError, TypeError):
            continue
    return out


def restore_pin(client: RunpodClient, lease: Lease) -> str:
    endpoint = client.get_endpoint(lease.endpoint_id)
    if endpoint.workers_min != lease.pinned_min:
        return (
            f"endpoint {lease.endpoint_id}: workers.min is {endpoint.workers_min}, not the pinned "
            f"{lease.pinned_min}: someone changed it since, left as is"
        )
    client.set_workers(lease.endpoint_id, workers_min=lease.previous_min)
    return f"endpoint {lease.endpoint_id}: workers.min restored {lease.pinned_min} -> {lease.previous_min}"


def recover_stale_pins(settings: Settings, api_key: Secret | str, directory: Path | None = None) -> list[str]:
    """Restore ``workers.min`` of every pin whose holder died (same host, pid gone) or whose lease
    expired, for this target; say what was done. Live pins are left alone."""
    directory = directory or lease_dir(settings)
    messages: list[str] = []
    stale = [(p, lease) for p, lease in read_leases(directory) if lease.rest_url == settings.rest_url and lease.stale()]
    if not stale:
        return messages
    with RunpodClient(settings, _as_secret(api_key)) as client:
        for path, lease in stale:
            try:
                messages.append("stale keep-alive pin: " + restore_pin(client, lease))
            except RpbookError as exc:
                messages.append(
                    f"stale keep-alive pin on endpoint {lease.endpoint_id} could not be restored "
                    f"({exc}); set its workers.min back to {lease.previous_min} by hand"
                )
                continue
            path.unlink(missing_ok=True)
    return messages
