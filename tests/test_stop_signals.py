"""SIGTERM and SIGHUP restore every temporary change before the process ends (issue 20, item 1).

The kernel's changes register a restore action in ``rpbook.core.restore``; ``rpbook run`` passes the
signal on to its kernel (kernels run in a session of their own, so ``timeout``'s or a CI runner's
signal to the process group never reaches them). A real ``rpbook run`` subprocess, a real kernel, a
real signal; the proof is a file the restore action writes, and the exit code 128 + the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rpbook.core import restore
from test_rpbook_runner import make_notebook

WAIT_S = 120.0
"""Generous: a kernel start takes seconds on a busy machine; the test ends as soon as the file shows."""


def _wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"rpbook run ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the notebook never reached its change")
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_rpbook_run_restores_the_kernels_change_and_stops_the_run(tmp_path: Path, sig: int) -> None:
    changed, restored = tmp_path / "changed", tmp_path / "restored"
    book = make_notebook(
        tmp_path / "00_pin.ipynb",
        "seconds: int = 600  # how long the change lasts",
        textwrap.dedent(f"""
            import pathlib, time
            from rpbook.core import restore
            with restore.on_signal("the test's change", lambda: pathlib.Path({str(restored)!r}).write_text("done")):
                pathlib.Path({str(changed)!r}).write_text("in force")
                time.sleep(seconds)
        """),
    )
    later = make_notebook(tmp_path / "01_later.ipynb", "x: int = 1  # x", "raise SystemExit('must not run')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", "import sys; from rpbook.runbook.cli import main; sys.exit(main())"]
    command += ["run", str(book), str(later), "--out", str(tmp_path / "run"), "--no-history"]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(changed, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=WAIT_S)
    assert restored.read_text() == "done", err
    assert proc.returncode == 128 + sig, (out, err)
    assert f"stopped by {signal.Signals(sig).name}" in err
    summary = (tmp_path / "run" / "summary.json").read_text()
    assert '"skipped"' in summary and signal.Signals(sig).name in summary


def test_actions_run_newest_first_once_and_a_failure_does_not_stop_the_others() -> None:
    done: list[str] = []
    first = restore.register("first", lambda: done.append("first"))
    restore.register("broken", lambda: 1 / 0)
    restore.register("third", lambda: done.append("third"))
    lines = restore.run_all("test")
    assert done == ["third", "first"]
    assert any("could not restore broken: ZeroDivisionError" in line for line in lines)
    assert restore.run_all("again") == []
    restore.unregister(first)  # idempotent after running


def test_a_signal_to_a_plain_python_process_restores_then_ends_it(tmp_path: Path) -> None:
    restored = tmp_path / "restored"
    script = textwrap.dedent(f"""
        import pathlib, time
        from rpbook.core import restore
        restore.register("the change", lambda: pathlib.Path({str(restored)!r}).write_text("done"))
        print("ready", flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT_S) == -signal.SIGTERM  # ended by the signal itself, as without rpbook
    assert restored.read_text() == "done"
