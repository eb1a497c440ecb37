"""Nothing a user runs changes by accident: every runbook's parameters (names, declared types and
defaults, as papermill reads the ``parameters`` cell) are compared with a committed snapshot,
``tests/data/runbook_parameters.json``, first taken at 5da35fd (before the round that reorganised
rpbook into rooms).

A deliberate change (a new parameter, a new default, a new type) is recorded by editing that file in
the same commit: one line per parameter, ``"name": {"type": "...", "default": ...}``, the default as
its JSON value (``None`` is ``null``). The help comment is not compared: rewording it changes nothing
a user runs.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from rpbook.runbook.runner import discover_notebooks, notebook_parameters

SNAPSHOT = Path(__file__).parent / "data" / "runbook_parameters.json"


def _default(code: str) -> Any:
    """The default as a JSON value; code that is not a literal stays as its text, marked as such."""
    try:
        return ast.literal_eval(code)
    except (ValueError, SyntaxError):
        return {"code": code}


def current_parameters() -> dict[str, dict[str, dict[str, Any]]]:
    return {
        notebook.stem: {
            name: {"type": p.type_name, "default": _default(p.default)}
            for name, p in notebook_parameters(notebook).items()
        }
        for notebook in discover_notebooks()
    }


def _line(name: str, spec: dict[str, Any]) -> str:
    return f'"{name}": {json.dumps(spec, ensure_ascii=False)}'


def test_every_runbooks_parameters_match_the_snapshot():
    recorded = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    current = current_parameters()
    differences = []
    for notebook in sorted(set(recorded) | set(current)):
        if notebook not in current:
            differences.append(f"{notebook}: runbook gone (recorded in the snapshot)")
            continue
        if notebook not in recorded:
            differences.append(f"{notebook}: new runbook, not in the snapshot")
            continue
        was, now = recorded[notebook], current[notebook]
        for name in sorted(set(was) | set(now)):
            # json.dumps compares True with 1 and 15 with 15.0 as different, as a user would see them
            if json.dumps(was.get(name)) != json.dumps(now.get(name)):
                differences.append(
                    f"{notebook}: recorded {_line(name, was[name]) if name in was else 'nothing'}, "
                    f"the runbook has {_line(name, now[name]) if name in now else 'nothing'}"
                )
    assert not differences, (
        "runbook parameters changed; if on purpose, record the change in "
        f"{SNAPSHOT.relative_to(SNAPSHOT.parents[2])}:\n" + "\n".join(differences)
    )


def test_the_comparison_sees_a_changed_default_and_type():
    assert _default("[5, 8]") == [5, 8] and _default("None") is None and _default("f(x)") == {"code": "f(x)"}
    assert json.dumps(_default("15")) != json.dumps(_default("15.0"))
    assert json.dumps(_default("True")) != json.dumps(_default("1"))


def write_snapshot(parameters: dict[str, dict[str, dict[str, Any]]], path: Path = SNAPSHOT) -> None:
    """The snapshot's layout: one runbook per block, one parameter per line (diffs stay readable)."""
    blocks = []
    for notebook, params in parameters.items():
        lines = ",\n".join(f"    {_line(name, spec)}" for name, spec in params.items())
        blocks.append(f'  "{notebook}": {{\n{lines}\n  }}')
    path.write_text("{\n" + ",\n".join(blocks) + "\n}\n", encoding="utf-8")
