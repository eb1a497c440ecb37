"""Secrets (HF token, Runpod API key): where they come from and how they never leak.

They are read from the process environment first, then from the env file (``.env`` by default),
never from papermill parameters, because papermill writes every parameter into each output
notebook. A ``Secret`` prints masked everywhere (repr, str, f-strings, notebook display), and
``scrub`` removes known secret values from any text before it reaches an error message or log.

Env maps (a template's or an endpoint's ``env``) follow one rule, kept here: a key named like a
secret (``HF_TOKEN``, ``*_API_KEY``, ...) holds a secret unless its value is a Runpod secret
reference (``{{ RUNPOD_SECRET_name }}``, substituted by Runpod at boot and safe to show).
"""

from __future__ import annotations

import getpass
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from rpbook.core import person
from rpbook.core.errors import SecretMissingError

_KNOWN: set[str] = set()
_LOCK = threading.Lock()

_SECRET_KEY = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL)", re.IGNORECASE
)
_SECRET_REFERENCE = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z_][A-Za-z0-9_.\-/]*\s*\}\}$")


def register_secret(value: str) -> None:
    """Make :func:`scrub` mask ``value`` from now on. Every ``Secret`` registers itself; values that
    arrive as plain strings (a literal token in an env map read back from the API) come here."""
    if value:
        with _LOCK:
            _KNOWN.add(value)


@dataclass(frozen=True, repr=False)
class Secret:
    """A secret value that never shows itself unless ``reveal()`` is called."""

    name: str
    _value: str
    source: str
    """Where it came from: ``environment``, the env file's path, ``prompt`` or ``local default``."""

    def __post_init__(self) -> None:
        register_secret(self._value)

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
    register_secret(str(api_key))
    return str(api_key)


def mask(value: str) -> str:
    """``hf_…(37 chars)``: the prefix tells which kind of secret it is, nothing more."""
    prefix = value.split("_", 1)[0] + "_" if "_" in value[:5] else ""
    return f"{prefix}…({len(value)} chars)"


def scrub(text: str) -> str:
    """Replace every secret value rpbook has seen, and every string shaped like a Runpod key or an HF
    token (:data:`SECRET_SHAPES`), with its masked form."""
    with _LOCK:
        known = sorted(_KNOWN, key=len, reverse=True)
    for value in known:
        if value and value in text:
            text = text.replace(value, mask(value))
    return mask_secret_like(text)


SECRET_SHAPES = re.compile(r"(?<![A-Za-z0-9_])(?:hf_[A-Za-z0-9]{30,}|rpa_[A-Za-z0-9]{20,})(?![A-Za-z0-9_])")
"""Strings shaped like a Hugging Face user access token (``hf_`` + 34 letters and digits today) or a
Runpod API key (``rpa_`` + letters and digits). Neither format is documented by its vendor; the
shapes are what both consoles hand out, loose enough for a longer future token. Runpod's legacy
keys (before 2024-11) have no prefix and are not recognised by shape, only by value once read."""


def mask_secret_like(text: str) -> str:
    """``text`` with every :data:`SECRET_SHAPES` match masked (a second line of defence)."""
    return SECRET_SHAPES.sub(lambda m: mask(m.group(0)), text)


def looks_like_secret(value: Any) -> str | None:
    """The first string in ``value`` (text, or nested lists and mappings, keys included) shaped
    like a Runpod key or an HF token, or a secret rpbook has read; None when there is none."""
    if isinstance(value, str):
        match = SECRET_SHAPES.search(value)
        if match:
            return match.group(0)
        with _LOCK:
            known = [k for k in _KNOWN if len(k) >= 8]
        return next((k for k in known if k in value), None)
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = looks_like_secret(key) or looks_like_secret(item)
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for item in value:
            found = looks_like_secret(item)
            if found:
                return found
    return None


# -- secrets in env maps -----------------------------------------------------------------------


def is_secret_env_key(key: str) -> bool:
    """Whether an env var's value should be treated as a secret (``HF_TOKEN``, ``*_API_KEY``, ...)."""
    return bool(_SECRET_KEY.search(key))


def is_secret_reference(value: str) -> bool:
    """``{{ RUNPOD_SECRET_name }}``: Runpod substitutes the secret at boot; the string itself is safe."""
    return bool(_SECRET_REFERENCE.match(value.strip()))


def display_env_value(key: str, value: Any) -> str:
    """How an env value may be shown: secrets masked, references and ordinary values as they are."""
    if isinstance(value, Secret):
        return value.masked
    text = "" if value is None else str(value)
    if text and is_secret_env_key(key) and not is_secret_reference(text):
        return mask(text)
    return scrub(text)


def redact_env(env: Mapping[str, Any]) -> dict[str, str]:
    """A copy of an env map that is safe to print."""
    return {key: display_env_value(key, value) for key, value in env.items()}


def register_env_secrets(env: Mapping[str, Any]) -> None:
    """Register the secret values of an env map read from the API (e.g. a literal HF token in a
    template made in the console), so that ``scrub`` masks them in anything shown later."""
    for key, value in env.items():
        if isinstance(value, str) and value and is_secret_env_key(key) and not is_secret_reference(value):
            register_secret(value)


def reveal_secrets(value: Any) -> Any:
    """A JSON-ready copy of a request body with every ``Secret`` revealed (the HTTP boundary only)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, Mapping):
        return {key: reveal_secrets(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [reveal_secrets(item) for item in value]
    return value


def read_secret(
    name: str, env_file: Path | None, *, default: str | None = None, interactive: bool = False, hint: str = ""
) -> Secret:
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
        value = prompt_hidden(f"{name} (input hidden; an empty answer stops with an error that says where to put it): ")
        if value:
            return Secret(name, value, "prompt")
    if default is not None:
        return Secret(name, default, "local default")
    where = f"the environment or {env_file}" if env_file is not None else "the environment"
    raise SecretMissingError(f"{name} is not set: put it in {where} (never in a parameters file). {hint}".strip())


def prompt_hidden(question: str) -> str | None:
    """Ask a person for a hidden value; None when nobody can answer.

    Whether anybody can answer is ``rpbook.core.person``'s one answer; a frontend that still fails
    to read (ipykernel's ``StdinNotImplementedError``, a closed stdin) counts as nobody."""
    if not person.person_at_kernel():
        return None
    try:
        return getpass.getpass(question).strip() or None
    except (NotImplementedError, EOFError, OSError):
        return None
