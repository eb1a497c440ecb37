"""Dry runs: resources a plan would create but did not, and the steps that then have nothing to do.

``rpbook run -f params/runpod-mistral-7b.yaml`` with ``apply: false`` shows every plan and creates
nothing, so runbook 03 finds no endpoint to wake. That is the expected end of a dry run, not a
failure: the plan that was not applied leaves a note (in the run folder, ``pending.json``, and in
this process), and a later step that finds the resource missing *and* noted returns
:class:`NotCreated` instead of raising. Each step given a ``NotCreated`` returns :class:`Skipped`,
one plain line ("nothing to wake: endpoint `mistral-7b-vllm` is not created yet (apply is
false)"). Without the note (a scheduled check of an endpoint someone deleted) a missing
resource stays an error.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rpbook.core.errors import ConfigError
from rpbook.core.paths import RUN_DIR_ENV

PENDING_FILE = "pending.json"
_IN_PROCESS: dict[str, str] = {}


@dataclass(frozen=True)
class NotCreated:
    """A resource a plan would create, in place of its id, for the steps after a dry run."""

    kind: str
    """``volume``, ``template`` or ``endpoint``."""
    name: str
    reason: str = "apply is false"

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.kind} `{self.name}` is not created yet ({self.reason})"

    __repr__ = __str__


@dataclass(frozen=True)
class Skipped:
    """A step that had nothing to act on: shown as one plain line, recorded as ``skipped``."""

    line: str
    ok: bool = True
    figures: dict[str, bool | str] = field(default_factory=lambda: {"skipped": True})

    def __str__(self) -> str:
        return self.line

    __repr__ = __str__


def skip(verb: str, missing: NotCreated) -> Skipped:
    """``nothing to <verb>: endpoint `x` is not created yet (apply is false)``."""
    return Skipped(f"nothing to {verb}: {missing}")


def _key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def _run_file() -> Path | None:
    run_dir = os.environ.get(RUN_DIR_ENV)
    return Path(run_dir) / PENDING_FILE if run_dir else None


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON: delete it and run again") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_pending(kind: str, name: str, reason: str = "apply is false") -> None:
    """Note that ``kind`` ``name`` was planned but not created, for the rest of this run."""
    _IN_PROCESS[_key(kind, name)] = reason
    path = _run_file()
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = _read(path)
    notes[_key(kind, name)] = reason
    fd, tmp = tempfile.mkstemp(prefix=".pending.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(notes, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def clear_pending(kind: str, name: str) -> None:
    """The resource exists now (applied): later steps must not skip it."""
    _IN_PROCESS.pop(_key(kind, name), None)
    path = _run_file()
    if path is not None and path.exists():
        notes = _read(path)
        if notes.pop(_key(kind, name), None) is not None:
            path.write_text(json.dumps(notes, indent=2, sort_keys=True), encoding="utf-8")


def pending(kind: str, name: str) -> NotCreated | None:
    """The note left by a plan of this run that did not create ``kind`` ``name``, if any."""
    reason = _IN_PROCESS.get(_key(kind, name))
    path = _run_file()
    if reason is None and path is not None:
        reason = _read(path).get(_key(kind, name))
    return NotCreated(kind, name, reason) if reason is not None else None
