"""rpbook's rooms and the direction of their imports.

rpbook is grouped by concern into rooms (subpackages), layered so that imports point one way: the
notebook side (``runbook``) may use everything; ``planning`` uses ``records``, ``endpoint``,
``account`` and ``core``; ``records`` and ``endpoint`` use ``account`` and ``core`` (never each
other); ``account`` uses ``core``; ``core`` uses no room. An import that points up (type-only ones
included) fails here, and so does a module left outside the rooms.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RPBOOK = ROOT / "lib" / "rpbook"

LAYER = {"core": 0, "account": 1, "endpoint": 2, "records": 2, "planning": 3, "runbook": 4}
TOP_LEVEL_FILES = {"__init__.py", "__main__.py"}


def _imported_rooms(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "rpbook" else [f"rpbook.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "rpbook" and len(parts) > 1 and parts[1] in LAYER:
                found.append((node.lineno, parts[1]))
    return found


def test_every_module_lives_in_a_room():
    loose = sorted(p.name for p in RPBOOK.glob("*.py") if p.name not in TOP_LEVEL_FILES)
    assert loose == []
    rooms = sorted(p.name for p in RPBOOK.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert rooms == sorted(LAYER)


def test_imports_point_down_the_rooms():
    upward = []
    for path in sorted(RPBOOK.rglob("*.py")):
        room = path.relative_to(RPBOOK).parts[0]
        if room not in LAYER:
            continue
        for line, other in _imported_rooms(path):
            if other != room and LAYER[other] >= LAYER[room]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports rpbook.{other}")
    assert upward == []


def test_the_guard_sees_an_upward_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from rpbook.runbook.local import ensure_localpod\nfrom rpbook import endpoint\nimport os\n")
    assert _imported_rooms(probe) == [(1, "runbook"), (2, "endpoint")]
