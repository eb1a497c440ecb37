"""Temporary changes that must be set back when the process is told to stop (SIGTERM, SIGHUP).

Some steps change something that bills until it is set back: runbook 05's pin (``workers.min``
raised), runbook 06's event phase (the event's settings), runbook 05's sped-up localpod timings.
Each registers its restore action here while the change is in force:

    with restore.on_signal("workers.min of abc123 back to 0", unpin):
        ...  # the change is in force; a SIGTERM or SIGHUP now runs unpin() before the process exits

or ``token = restore.register(description, action)`` ... ``restore.unregister(token)``. The normal
way out (the ``with`` block's end, an exception, Ctrl+C's ``KeyboardInterrupt``) is the caller's own
restore; this registry covers the signals that would otherwise end the process at once: ``timeout``,
a CI cancel and ``docker stop`` send SIGTERM, a closed terminal SIGHUP. On one of them every
registered action runs (newest first, each once, a failure of one does not stop the others, one line
each on stderr), then the signal's default action ends the process as it would have.

``rpbook run`` forwards SIGTERM and SIGHUP to the kernel it runs (``rpbook.runbook.runner``), so the
kernel's registry runs before the run stops. A ``kill -9`` runs nothing; the lease files the pin
writes let the next runbook restore it.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Registration:
    """A restore action in force; give it back to :func:`unregister` once the change is undone."""

    number: int
    description: str
    action: Callable[[], object]


_LOCK = threading.RLock()
_ACTIONS: dict[int, Registration] = {}
_COUNTER = itertools.count(1)
_INSTALLED: dict[int, object] = {}


def register(description: str, action: Callable[[], object]) -> Registration:
    """Run ``action`` if SIGTERM or SIGHUP arrives before :func:`unregister`. Installs the signal
    handlers on first use (only the main thread may; from another thread the handlers are those
    installed before, so call :func:`install` early in such programs)."""
    registration = Registration(next(_COUNTER), description, action)
    with _LOCK:
        _ACTIONS[registration.number] = registration
    install()
    return registration


def unregister(registration: Registration) -> None:
    """The change was undone the normal way: nothing to run on a signal (idempotent)."""
    with _LOCK:
        _ACTIONS.pop(registration.number, None)


@contextmanager
def on_signal(description: str, action: Callable[[], object]) -> Iterator[Registration]:
    """``register`` for the ``with`` block; the block's own exit is the caller's restore."""
    registration = register(description, action)
    try:
        yield registration
    finally:
        unregister(registration)


def pending() -> list[str]:
    """Descriptions of the restore actions in force, newest first."""
    with _LOCK:
        return [r.description for r in sorted(_ACTIONS.values(), key=lambda r: -r.number)]


def run_all(reason: str) -> list[str]:
    """Run every registered action, newest first, each once; one line per action (also on stderr)."""
    with _LOCK:
        todo = sorted(_ACTIONS.values(), key=lambda r: -r.number)
        _ACTIONS.clear()
    lines: list[str] = []
    for registration in todo:
        try:
            registration.action()
            line = f"rpbook: {reason}: restored {registration.description}"
        except Exception as exc:  # noqa: BLE001 - every action gets its turn; the failure is said
            line = f"rpbook: {reason}: could not restore {registration.description}: {type(exc).__name__}: {exc}"
        from rpbook.core.secrets import scrub

        line = scrub(line)
        lines.append(line)
        print(line, file=sys.stderr, flush=True)
    return lines


def install() -> bool:
    """Install the SIGTERM/SIGHUP handlers (idempotent); False when not on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return False
    with _LOCK:
        for sig in SIGNALS:
            if sig in _INSTALLED:
                continue
            try:
                _INSTALLED[sig] = signal.signal(sig, _on_signal)
            except (ValueError, OSError):  # pragma: no cover - not allowed in this process
                return False
    return True


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Restore, then let the signal do what it would have done without us."""
    name = signal.Signals(signum).name
    run_all(f"{name} received")
    previous = _INSTALLED.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
