"""Secrets (HF token, Runpod API key): where they come from and how they never leak.

They are read from the process environment first, then from the env file (``.env`` by default),
never from papermill parameters, because papermill writes every parameter into each output
notebook. A ``Secret`` prints masked everywhere (repr, str, f-strings, notebook display), and
``scrub`` removes known secret values from any text before it reaches an error message or log.
"""

from __future__ import annotations

import getpass
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from rpbook.errors import SecretMissingError

_KNOWN: set[str] = set()
_LOCK = threading.Lock()


@dataclass(frozen=True, repr=False)
class Secret:
    """A secret value that never shows itself unless ``reveal()`` is called."""

    name: str
    _value: str
    source: str
    """Where it came from: ``environment``, the env file's path, ``prompt`` or ``local default``."""

    def __post_init__(self) -> None:
        with _LOCK:
            _KNOWN.add(self._value)

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.name}={self.masked}, from {self.source})"

    __str__ = __repr__

    def _repr_pretty_(self, printer, cycle) -> None:  # type: ignore[no-untyped-def]  # IPython display
        printer.text(repr(self))


def reveal_api_key(api_key: Secret | str) -> str:
    """The key's value for a client library; a plain string is registered first, so that
    :func:`scrub` masks it in anything rpbook shows later."""
    if isinstance(api_key, Secret):
        return api_key.reveal()
    return Secret("RUNPOD_API_KEY", str(api_key), "argument").reveal()


def mask(value: str) -> str:
    """``hf_…(37 chars)``: the prefix tells which kind of secret it is, nothing more."""
    prefix = value.split("_", 1)[0] + "_" if "_" in value[:5] else ""
    return f"{prefix}…({len(value)} chars)"


def scrub(text: str) -> str:
    """Replace every secret value rpbook has seen with its masked form."""
    with _LOCK:
        known = sorted(_KNOWN, key=len, reverse=True)
    for value in known:
        if value and value in text:
            text = text.replace(value, mask(value))
    return text


def read_secret(name: str, env_file: Path | None, *, default: str | None = None, interactive: bool = False,
                hint: str = "") -> Secret:
    """Find a secret: environment, then env file, then a hidden prompt (only when a person runs the
    notebook), then ``default`` (local mode's documented values). Raises ``SecretMissingError``."""
    value = os.environ.get(name)
    if value:
        return Secret(name, value.strip(), "environment")
    if env_file is not None and env_file.exists():
        value = dotenv_values(env_file).get(name)
        if value:
            return Secret(name, value.strip(), str(env_file))
    if interactive:
        value = prompt_hidden(f"{name} (input hidden; an empty answer stops with an error that says where to "
                              f"put it): ")
        if value:
            return Secret(name, value, "prompt")
    if default is not None:
        return Secret(name, default, "local default")
    where = f"the environment or {env_file}" if env_file is not None else "the environment"
    raise SecretMissingError(f"{name} is not set: put it in {where} (never in a parameters file). {hint}".strip())


def prompt_hidden(question: str) -> str | None:
    """Ask a person for a hidden value; None when nobody can answer.

    papermill and nbmake run kernels without stdin, where ipykernel's getpass raises
    ``StdinNotImplementedError`` (a ``NotImplementedError``): that is how a headless run is told
    apart from a person in JupyterLab. Outside a kernel, a TTY on stdin means a person.
    ``RPBOOK_HEADLESS=1`` forces headless behaviour."""
    if os.environ.get("RPBOOK_HEADLESS"):
        return None
    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None
    except ImportError:
        in_kernel = False
    if not in_kernel and not (sys.stdin is not None and sys.stdin.isatty()):
        return None
    try:
        return getpass.getpass(question).strip() or None
    except (NotImplementedError, EOFError, OSError):
        return None
