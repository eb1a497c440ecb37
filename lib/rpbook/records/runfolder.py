"""Reading a run folder: the one place that knows what ``rpbook run`` and the runbooks leave in it.

A run folder holds ``summary.json`` (written by ``rpbook.runbook.runner``: times, parameters, results, the
receipt) and one ``<notebook>.figures.json`` per runbook (written by ``rpbook.records.figures``). The
receipt, the history and the records all read these files; reading them here means one file
layout, one set of error messages, and one rule for damaged files: a single figures file asked for
by name must be valid (``load_figures`` raises), while a whole folder's figures skip a broken file,
so a damaged record loses its own figures, not the run (``run_figures``).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from rpbook.core.errors import ConfigError

SUMMARY_FILE = "summary.json"
FIGURES_SUFFIX = ".figures.json"

Scalar = float | int | str | bool | None


def figures_path(run_dir: str | os.PathLike[str], name: str) -> Path:
    """Where the figures of the notebook ``name`` (its stem) live in ``run_dir``."""
    return Path(run_dir) / f"{name}{FIGURES_SUFFIX}"


def load_figures(path: str | os.PathLike[str]) -> dict[str, Scalar]:
    """One figures file written by ``rpbook.records.figures.record_figures``; a missing or damaged file
    raises ``ConfigError`` saying what to do."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no figures file at {file}: run the notebook that records it first") from None
    except ValueError as exc:
        raise ConfigError(f"{file} is not valid JSON ({exc}); delete it and run the notebook again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} does not hold a JSON object of figures; delete it and run again")
    return data


def run_figures(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Scalar]]:
    """Every figures file of the run, by notebook stem, in file-name order (the runbooks' order).
    A file that cannot be read or is not a JSON object is left out: it loses its own figures, not
    the run's."""
    out: dict[str, dict[str, Scalar]] = {}
    for path in sorted(Path(run_dir).glob(f"*{FIGURES_SUFFIX}")):
        try:
            out[path.name.removesuffix(FIGURES_SUFFIX)] = load_figures(path)
        except (ConfigError, OSError):
            continue
    return out


def read_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``summary.json`` as a dict; ``ConfigError`` when the folder holds none (it was not
    written by ``rpbook run``) or it is damaged."""
    folder = Path(run_dir)
    path = folder / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no {SUMMARY_FILE} in {folder}: give a folder that `rpbook run` wrote (runs/<time>/)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a run summary")
    return data


def run_times(run_dir: str | os.PathLike[str], summary: dict[str, Any]) -> tuple[datetime, datetime]:
    """When the run started and ended (``started_at`` and ``ended_at`` of its summary)."""
    try:
        return datetime.fromisoformat(summary["started_at"]), datetime.fromisoformat(summary["ended_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{Path(run_dir) / SUMMARY_FILE} is not the summary of an rpbook run with its times "
            f"({exc}); give the folder `rpbook run` wrote (runs/<time>/)"
        ) from None
