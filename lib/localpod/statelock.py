"""One state file, one server: an exclusive ``fcntl`` lock held for the server's whole life.

Two localpods on one state file each keep their own copy of the resources in memory and overwrite
each other's file, so resources created through one vanish. So ``localpod serve --state FILE``
takes ``FILE.lock`` before it reads the state and holds it until the process exits (the kernel
drops it even on SIGKILL). The lock file holds ``{"pid": ..., "url": ...}`` of the holder, so a
second start can say which server to stop or which URL to use, and rpbook can find and stop the
server that serves a state folder even when its own pid file is missing.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, Any


class StateInUse(RuntimeError):
    """Another localpod holds the state file's lock."""

    def __init__(self, state_file: Path, holder: dict[str, Any]) -> None:
        pid, url = holder.get("pid"), holder.get("url")
        super().__init__(
            f"{state_file} is already served by another localpod (pid {pid or '?'}, at {url or '?'}): one state "
            f"file, one server. Use that one (LOCALPOD_URL={url or '<its URL>'}), stop it first (`make stop`, or "
            f"kill {pid or '<its pid>'}), or start this one with another --state file."
        )
        self.holder = holder


def lock_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".lock")


def read_holder(state_file: Path) -> dict[str, Any]:
    try:
        data = json.loads(lock_path(state_file).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def acquire(state_file: Path, url: str, wait_s: float = 1.0) -> IO[str]:
    """Take the state file's lock for this process and record who holds it; raises ``StateInUse``.

    Retries for ``wait_s``: a status probe (rpbook's) may hold the lock for a moment."""
    path = lock_path(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - the lock lives as long as this handle stays open
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise StateInUse(state_file, read_holder(state_file)) from None
            time.sleep(0.05)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "url": url}))
    handle.flush()
    return handle
