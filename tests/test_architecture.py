"""rpbook's rooms and the direction of their imports.

rpbook is grouped by concern into rooms (subpackages), layered so that imports point one way: the
notebook side (``runbook``) may use everything; ``planning`` uses ``records``, ``endpoint``,
``account`` and ``core``; ``records`` and ``endpoint`` use ``account`` and ``core`` (never each
other); ``account`` uses ``core``; ``core`` uses no room. An import that points up (type-only ones
included) fails here, and so does a module left outside the rooms.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RPBOOK = ROOT / "lib" / "rpbook"

LAYER = {"core": 0, "account": 1, "endpoint": 2, "records": 2, "planning": 3, "runbook": 4}
TOP_LEVEL_FILES = {"__init__.py", "__main__.py"}


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once for all the tests here."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported_rooms(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(_tree(path)):
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


# -- one home per rule ------------------------------------------------------------------------------


def _rpbook_modules() -> list[Path]:
    return sorted(RPBOOK.rglob("*.py"))


def test_error_classes_live_in_core_errors():
    """Every error rpbook raises is declared in ``rpbook.core.errors`` (one hierarchy a runbook can
    catch and read); a private control-flow exception (``_Name``) may stay where it is used."""
    stray = []
    for path in _rpbook_modules():
        if path == RPBOOK / "core" / "errors.py":
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if any(base.endswith(("Error", "Exception", "Failed")) for base in bases):
                    stray.append(f"{path.relative_to(ROOT)}:{node.lineno} class {node.name}")
    assert stray == []


def test_is_a_person_at_the_kernel_is_answered_in_one_place():
    """Whether anybody can answer (live progress bars, hidden prompts) is ``rpbook.core.person``'s
    question alone: nobody else reads ipykernel's ``allow_stdin``, the IPython shell or stdin's TTY."""
    elsewhere = []
    for path in _rpbook_modules():
        if path == RPBOOK / "core" / "person.py":
            continue
        text = path.read_text(encoding="utf-8")
        for marker in ("_allow_stdin", "get_ipython", "isatty(", "RPBOOK_HEADLESS"):
            if marker in text:
                elsewhere.append(f"{path.relative_to(ROOT)}: {marker}")
    assert elsewhere == []


def _defined_names(module: str) -> set[str]:
    """What ``module`` itself defines at top level (functions, classes, assignments, also under a
    top-level ``if`` or ``try``) and, for a package, its submodules: the names an import from it may
    ask for."""
    target = ROOT / "lib" / Path(*module.split("."))
    names: set[str] = set()
    if target.is_dir():
        names |= {p.stem for p in target.glob("*.py")} | {p.name for p in target.iterdir() if p.is_dir()}
        target = target / "__init__.py"
    else:
        target = target.with_suffix(".py")
    statements = list(_tree(target).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.If | ast.Try):
            statements += node.body + node.orelse + [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def _importing_sources() -> list[tuple[Path, ast.Module]]:
    python = [*_rpbook_modules(), *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]
    found = [(p, _tree(p)) for p in python]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        code = [s for s in sources if not s.lstrip().startswith(("%", "!"))]
        found.append((path, ast.parse("\n".join(code))))
    return found


def test_every_import_names_the_home_of_what_it_imports():
    """No shims: ``from rpbook.x import name`` finds ``name`` defined in ``rpbook.x`` itself, not
    re-exported from the module it moved to (notebooks, tests and benchmarks included)."""
    defined: dict[str, set[str]] = {}
    borrowed = []
    for path, tree in _importing_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("rpbook"):
                module = str(node.module)
                if module not in defined:
                    defined[module] = _defined_names(module)
                names = defined[module]
                borrowed += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {module}.{a.name}"
                    for a in node.names
                    if a.name not in names
                ]
    assert borrowed == []


def test_the_import_guard_sees_a_re_export():
    assert "load_figures" not in _defined_names("rpbook.records.figures")  # imported there, defined in runfolder
    assert {"load_figures", "Scalar"} <= _defined_names("rpbook.records.runfolder")
    assert "core" in _defined_names("rpbook")


def test_the_layout_page_names_every_module_and_only_modules_that_exist():
    """docs/layout.md's table of rpbook is the newcomer's map: every module is on it, in its room's
    rows, and it names no module that is gone."""
    import re

    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    section = text.split("## `lib/rpbook/`", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    room = ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.startswith("|") or cells[1] in ("Module", "---"):
            continue
        found = re.match(r"`(\w+)/`", cells[0])
        room = found.group(1) if found else room
        rows.setdefault(room, set()).update(re.findall(r"`(\w+\.py)`", cells[1]))
    actual = {r: {p.name for p in (RPBOOK / r).glob("*.py")} - {"__init__.py"} for r in LAYER}
    assert rows == actual
