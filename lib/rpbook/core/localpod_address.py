"""Which port this checkout's localpod listens on: one localpod per checkout, found by every entry point.

A fixed port (8765) made two checkouts, or a JupyterLab and a test run, fight over one server: the
second stopped in its first cell. So each localpod state folder (``.localpod/`` beside the env file,
or ``RPBOOK_LOCALPOD_DIR``) records its own port in ``.localpod/port``, picked once: the first free
port of a short sequence derived from the folder's path (so a checkout tends to keep the same port
even after ``.localpod/`` is deleted), else any free port. The runbooks (``rpbook.core.settings``),
``make serve|status|stop|lab`` and the tests read the same file; ``LOCALPOD_URL`` still overrides it.

Two processes picking at once agree: the record is created with ``os.link`` (atomic, fails when the
file exists), and the loser reads the winner's port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

PORT_FILE = "port"
SERVER_LOCK_FILE = "state.json.lock"
"""Written by localpod (``localpod.statelock``) while it serves the folder: its pid and URL."""
FIRST_PORT = 20000
PORT_SPAN = 20000
"""Derived ports lie in [20000, 40000): above the registered services most machines run, below
Linux's ephemeral range (32768-60999 overlaps; a port in use there is simply skipped)."""
CANDIDATES = 8


def recorded_port(state_dir: Path) -> int | None:
    """The port recorded in ``state_dir``, or None (no record, or not a port number)."""
    try:
        port = int((Path(state_dir) / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def localpod_url(state_dir: Path) -> str:
    """``http://127.0.0.1:<port>`` of the localpod serving ``state_dir``, recording a port if none is."""
    return f"http://127.0.0.1:{checkout_port(state_dir)}"


def checkout_port(state_dir: Path) -> int:
    """The recorded port, else a free one picked now and recorded (see the module docstring)."""
    state_dir = Path(state_dir).expanduser().absolute()
    port = recorded_port(state_dir)
    if port is not None:
        return port
    state_dir.mkdir(parents=True, exist_ok=True)
    ignore = state_dir / ".gitignore"
    if not ignore.exists():  # logs, ports and emulator state never belong in git
        ignore.write_text("*\n")
    picked = _last_served_port(state_dir) or _pick_port(state_dir)
    fd, tmp = tempfile.mkstemp(prefix=".port.", dir=state_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{picked}\n")
        with contextlib.suppress(FileExistsError):  # another process recorded one first: use its
            os.link(tmp, state_dir / PORT_FILE)
    finally:
        os.unlink(tmp)
    return recorded_port(state_dir) or picked


def _last_served_port(state_dir: Path) -> int | None:
    """The port of the localpod that served this folder before ports were recorded (its state lock
    file holds ``{"pid": ..., "url": ...}``): a server still running there keeps being the one."""
    try:
        data = json.loads((state_dir / SERVER_LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return None
    url = data.get("url") if isinstance(data, dict) else None
    try:
        port = urlsplit(url).port if isinstance(url, str) else None
    except ValueError:
        return None
    return port


def _pick_port(state_dir: Path) -> int:
    digest = int.from_bytes(hashlib.sha256(str(state_dir).encode()).digest()[:4], "big")
    for step in range(CANDIDATES):
        port = FIRST_PORT + (digest + step * 7919) % PORT_SPAN
        if _free(port):
            return port
    with socket.socket() as sock:  # every derived one is taken: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
