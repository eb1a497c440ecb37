"""Is a person at the kernel? The one answer every part of rpbook asks for.

It decides whether a progress bar is drawn live or printed once in its final state (a headless run
keeps only final states) and whether a missing secret may be asked for with a hidden prompt (a
headless run has nobody to answer, and must fail with an error that says where the secret goes).

A Jupyter frontend that accepts input sends ``allow_stdin`` with each execute request, and ipykernel
keeps it as ``kernel._allow_stdin``: JupyterLab sends true, papermill and nbmake false (ipykernel's
``getpass`` then raises ``StdinNotImplementedError``). Outside a kernel, a TTY on stdin means a
person. ``RPBOOK_HEADLESS=1`` says nobody is there, whatever the rest says.

It is also the one module that talks to the IPython shell: :func:`on_failed_cell` lets a change that
spans notebook cells (runbook 05's scaled localpod clock) be set back by the first cell that fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def person_at_kernel() -> bool:
    """True when a person runs this code and can answer a prompt (see the module docstring)."""
    if os.environ.get("RPBOOK_HEADLESS"):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    return sys.stdin is not None and sys.stdin.isatty()


def on_failed_cell(action: Callable[[], object]) -> Callable[[], None] | None:
    """In an IPython shell (a kernel), run ``action`` at the end of the first cell that raises, then
    forget it; return the function that forgets it sooner (None outside IPython). A headless run
    (papermill, nbmake) stops at that cell, so the action runs before the run ends."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return None
    shell = get_ipython()
    if shell is None:
        return None

    def after_cell(result: Any) -> None:
        if getattr(result, "error_in_exec", None) is None and getattr(result, "error_before_exec", None) is None:
            return
        forget()
        action()

    def forget() -> None:
        try:
            shell.events.unregister("post_run_cell", after_cell)
        except ValueError:  # already forgotten
            pass

    shell.events.register("post_run_cell", after_cell)
    return forget
