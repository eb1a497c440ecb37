"""Start localpod as a subprocess for a benchmark: a free loopback port, then ``python -m localpod
serve`` with the benchmark's keys, waited for until ``/_localpod/health`` answers.

The benchmarks run as scripts (``python benchmarks/<name>.py``), so this folder is on ``sys.path``
and they import this module by its name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_localpod(
    port: int, env: Mapping[str, str], timeout_s: float = 30, args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """A quiet localpod on ``port`` with ``env`` added to this process's environment (its keys:
    ``LOCALPOD_API_KEY``, ``LOCALPOD_HF_TOKEN``) and ``args`` added to ``serve`` (e.g. ``--state``),
    once it answers its health route."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "localpod", "serve", "--port", str(port), "--quiet", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"localpod exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_localpod/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"localpod did not start within {timeout_s:g} s")
