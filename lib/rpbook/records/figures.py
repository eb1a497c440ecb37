"""Machine-readable figures of a run, written beside the executed notebook.

A runbook measures things (cold start, time to first token, tokens/s, the 16-token trap); people
read them in the notebook, but CI, benchmarks and the next runbook need them as data. Each runbook
writes ``<name>.figures.json`` into the run directory: ``run_dir``, else ``$RPBOOK_RUN_DIR`` (set it
to where papermill writes the output notebook), else ``runs/latest``. Files hold one flat JSON object
of scalars; repeated calls merge, so a notebook can record as it goes. Every string is scrubbed
(known secrets and anything shaped like an HF token or Runpod key), because these files are shared.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rpbook.core.errors import ConfigError
from rpbook.core.paths import current_run_dir
from rpbook.core.secrets import mask, scrub
from rpbook.records.runfolder import Scalar, figures_path, load_figures

__all__ = ["clean_text", "figures_dir", "record_figures"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TOKEN_SHAPED = re.compile(r"\b(?:hf|rpa|rps)_[A-Za-z0-9_]{8,}")
"""HF tokens (``hf_…``) and Runpod keys (``rpa_…``/``rps_…``) that ``scrub`` has not seen yet."""


def figures_dir(run_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where this run's records go (not created here)."""
    if run_dir is not None:
        return Path(run_dir).expanduser()
    return current_run_dir()


def clean_text(text: str) -> str:
    """Remove known secrets, then mask anything token-shaped."""
    return _TOKEN_SHAPED.sub(lambda m: mask(m.group(0)), scrub(text))


def _clean_value(key: str, value: Any) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"figure {key!r} is {value}: JSON has no NaN/infinity; record a number or None")
        return value
    if isinstance(value, str):
        return clean_text(value)
    # numpy scalars and the like: accept what converts cleanly to a Python number
    item = getattr(value, "item", None)
    if callable(item):
        converted = item()
        if isinstance(converted, (bool, int, float, str)) or converted is None:
            return _clean_value(key, converted)
    raise ConfigError(
        f"figure {key!r} is a {type(value).__name__}; figures must be JSON scalars "
        "(number, string, bool or None): record one figure per key"
    )


def record_figures(
    name: str, figures: Mapping[str, float | int | str | bool], *, run_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Merge ``figures`` into ``<run dir>/<name>.figures.json`` (atomically) and return its path."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"record name {name!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(e.g. the notebook's stem, '03_wake_and_sanity_chat')"
        )
    clean: dict[str, Scalar] = {}
    for key, value in figures.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"figure names must be non-empty strings, got {key!r}")
        clean[clean_text(key)] = _clean_value(key, value)
    directory = _resolve_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = figures_path(directory, name)
    merged = load_figures(path) if path.exists() else {}
    merged.update(clean)
    text = json.dumps(merged, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _resolve_dir(value: str | os.PathLike[str] | None) -> Path:
    return figures_dir(value).resolve()
