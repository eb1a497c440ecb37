"""Packaging: the dependency lists (pyproject.toml for pip, environment.yml for conda) agree, each
package imports only what its install declares, there is one version, the console scripts are
declared, localpod never imports rpbook, and rpbook's local defaults are localpod's."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "runpod-runbooks"
OWN_PACKAGES = {"rpbook", "localpod"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _normalized(name: str) -> str:
    """PEP 503 name: ``PyYAML`` and ``pyyaml``, ``jupyter_client`` and ``jupyter-client`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))


def _requirements(extras: tuple[str, ...]) -> list[str]:
    """The core dependencies plus ``extras``, self-references (``runpod-runbooks[localpod,lab]``) expanded."""
    project = _project()
    found, todo, done = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in done:
            continue
        done.add(extra)
        for requirement in project["optional-dependencies"][extra]:
            if _requirement_name(requirement) == DISTRIBUTION:
                todo.extend(e.strip() for e in requirement.split("[", 1)[1].rstrip("]").split(","))
            else:
                found.append(requirement)
    return found


def test_console_scripts_are_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"localpod": "localpod.cli:main", "rpbook": "rpbook.runbook.cli:main"}


def _rpbook_imports(source: str, where: str) -> list[str]:
    """Where ``source`` imports rpbook (``where:line module``): ``import rpbook…``,
    ``from rpbook… import``, or ``importlib.import_module("rpbook…")`` / ``__import__("rpbook…")``."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [f"{where}:{node.lineno} {name}" for name in names if name == "rpbook" or name.startswith("rpbook.")]
    return found


def test_localpod_never_imports_rpbook():
    """localpod emulates Runpod for rpbook's tests and runs without it; if it used rpbook's code, a
    bug there could be emulated the same way and hide itself."""
    modules = sorted((ROOT / "lib" / "localpod").rglob("*.py"))
    assert len(modules) > 20
    hits = [hit for path in modules for hit in _rpbook_imports(path.read_text(), str(path.relative_to(ROOT)))]
    assert hits == []
    # and at run time, whatever is imported indirectly: the server app and the CLI load no rpbook module
    code = (
        "import sys, localpod.app, localpod.cli; "
        "print(sorted(m for m in sys.modules if m == 'rpbook' or m.startswith('rpbook.')))"
    )
    path = os.pathsep.join(filter(None, [str(ROOT / "lib"), os.environ.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_import_scan_finds_every_way_of_importing_rpbook():
    source = (
        "import rpbook\nfrom rpbook.core.settings import Settings\nimport importlib\n"
        "importlib.import_module('rpbook.endpoint.chat')\n__import__('rpbook')\n"
        "import rpbookish\nfrom . import rpbook\n"
    )
    assert _rpbook_imports(source, "probe.py") == [
        "probe.py:1 rpbook",
        "probe.py:2 rpbook.core.settings",
        "probe.py:4 rpbook.endpoint.chat",
        "probe.py:5 rpbook",
    ]


def test_rpbooks_local_defaults_are_localpods():
    """rpbook's local target uses localpod's documented default key and HF token when the user sets
    none (rpbook/core/settings.py, localpod/__init__.py); if they drifted apart, every local run would be
    refused with a 401."""
    import localpod
    from localpod import config
    from rpbook.core import settings

    assert settings.LOCAL_DEFAULT_API_KEY == localpod.DEFAULT_API_KEY == config.Settings().api_key
    assert settings.LOCAL_DEFAULT_HF_TOKEN == localpod.DEFAULT_HF_TOKEN == config.Settings().hf_token


def test_environment_yml_matches_pyproject():
    """environment.yml is the conda twin of a full working install: the core and every extra."""
    wanted = set(_requirements(tuple(_project()["optional-dependencies"])))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert not set(pip_section) - wanted, f"in environment.yml, not in pyproject.toml: {set(pip_section) - wanted}"
    assert not wanted - set(pip_section), f"in pyproject.toml, add to environment.yml: {wanted - set(pip_section)}"


def _optional(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``try: ... except ImportError`` (the code works without them)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = {
                n.id for h in node.handlers if h.type is not None for n in ast.walk(h.type) if isinstance(n, ast.Name)
            }
            if caught & {"ImportError", "ModuleNotFoundError"}:
                guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return guarded


def third_party_imports(package: Path) -> dict[str, dict[str, list[str]]]:
    """Every module of ``package`` (``rpbook.runbook.lab``, ...) -> third-party top-level name -> where
    (``file:line``), imports inside functions included, optional ones and stdlib left out."""
    found: dict[str, dict[str, list[str]]] = {}
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(), str(path))
        optional = _optional(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN_PACKAGES:
                    where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}"
                    found.setdefault(module, {}).setdefault(top, []).append(where)
    return found


def undeclared_imports(package: Path, extras_for: dict[str, tuple[str, ...]]) -> list[str]:
    """What ``package`` imports that its install does not declare: each module may use the core
    dependencies plus the extras ``extras_for`` gives its name or its nearest parent package
    (``{"localpod": ("localpod",)}``). Imports must be declared directly, not only arrive as the
    dependency of a dependency, which can drop them in any release."""
    providers = packages_distributions()
    problems = []
    for module, imports in third_party_imports(package).items():
        owner = max((m for m in extras_for if module == m or module.startswith(m + ".")), key=len, default=None)
        extras = extras_for.get(owner, ()) if owner else ()
        declared = {_requirement_name(r) for r in _requirements(extras)}
        for top, where in sorted(imports.items()):
            distributions = {_normalized(d) for d in providers.get(top, [])}
            if not distributions:
                problems.append(f"{top} (imported at {where[0]}) is not installed: declare and install it")
            elif not distributions & declared:
                problems.append(
                    f"{top} (imported at {where[0]}) comes from {sorted(distributions)}, which is not in "
                    f"pyproject's dependencies{' or extras ' + str(list(extras)) if extras else ''}"
                )
    return problems


def test_rpbook_imports_only_core_dependencies():
    """rpbook, the client library, installs without the emulator's server stack or JupyterLab. Only
    rpbook.runbook.lab, the contents hooks jupyter/jupyter_server_config.py loads into JupyterLab, needs [lab].
    rpbook starts localpod as ``python -m localpod serve``, a subprocess, so local mode needs
    [localpod] installed but rpbook imports none of it."""
    assert undeclared_imports(ROOT / "lib" / "rpbook", {"rpbook.runbook.lab": ("lab",)}) == []


def test_localpod_imports_only_core_and_its_extra():
    assert undeclared_imports(ROOT / "lib" / "localpod", {"localpod": ("localpod",)}) == []


def test_the_import_check_finds_an_undeclared_import(tmp_path):
    """The check above can fail: a client module importing the server stack, or a package that is
    only a dependency of a dependency, is reported with its file and line."""
    package = tmp_path / "client"
    package.mkdir()
    (package / "__init__.py").write_text("import json\n")
    (package / "server.py").write_text("def serve():\n    import starlette.applications\n")
    (package / "kernel.py").write_text("import traitlets\ntry:\n    import IPython\nexcept ImportError:\n    pass\n")
    problems = undeclared_imports(package, {})
    assert len(problems) == 1 and problems[0].startswith("starlette (imported at ") and "server.py:2" in problems[0]
    assert undeclared_imports(package, {"client.server": ("localpod",)}) == []


def test_test_extra_installs_the_emulator_jupyterlab_and_the_linters():
    """`make test` installs [test] only: the suite starts localpod, drives JupyterLab and lints."""
    names = {_requirement_name(r) for r in _requirements(("test",))}
    wanted = {_requirement_name(r) for r in _requirements(("localpod", "lab"))} | {"ruff", "mypy", "pytest"}
    assert wanted <= names, f"add to [test]: {sorted(wanted - names)}"


def test_one_version():
    """pyproject.toml's version is the only one written down; both packages report the installed one
    (a mismatch means the install is stale: `make setup` reinstalls when pyproject.toml changes)."""
    import localpod
    import rpbook

    assert rpbook.__version__ == localpod.__version__ == _project()["version"]
    for package in OWN_PACKAGES:
        text = (ROOT / "lib" / package / "__init__.py").read_text()
        assert not re.search(r"^__version__\s*=\s*[\"']", text, re.M), f"lib/{package}/__init__.py writes a version"
