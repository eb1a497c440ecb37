"""Is a person at the kernel? The one answer every part of rpbook asks for.

It decides whether a progress bar is drawn live or printed once in its final state (a headless run
keeps only final states) and whether a missing secret may be asked for with a hidden prompt (a
headless run has nobody to answer, and must fail with an error that says where the secret goes).

A Jupyter frontend that accepts input sends ``allow_stdin`` with each execute request, and ipykernel
keeps it as ``kernel._allow_stdin``: JupyterLab sends true, papermill and nbmake false (ipykernel's
``getpass`` then raises ``StdinNotImplementedError``). Outside a kernel, a TTY on stdin means a
person. ``RPBOOK_HEADLESS=1`` says nobody is there, whatever the rest says.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def ipython_shell() -> Any | None:
    """The IPython shell this code runs in (a kernel, or IPython in a terminal), or None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return None
    return get_ipython()


def person_at_kernel() -> bool:
    """True when a person runs this code and can answer a prompt (see the module docstring)."""
    if os.environ.get("RPBOOK_HEADLESS"):
        return False
    shell = ipython_shell()
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    return sys.stdin is not None and sys.stdin.isatty()
