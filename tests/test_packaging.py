"""Packaging rules: the two dependency lists (pyproject.toml for pip, environment.yml for conda)
agree, the console scripts are declared, localpod never imports rpbook, and rpbook's local defaults
are localpod's."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert set(pip_section) == wanted


def test_console_scripts_are_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"localpod": "localpod.cli:main", "rpbook": "rpbook.cli:main"}



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
    code = ("import sys, localpod.app, localpod.cli; "
            "print(sorted(m for m in sys.modules if m == 'rpbook' or m.startswith('rpbook.')))")
    path = os.pathsep.join(filter(None, [str(ROOT / "lib"), os.environ.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": path})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_import_scan_finds_every_way_of_importing_rpbook():
    source = ("import rpbook\nfrom rpbook.settings import Settings\nimport importlib\n"
              "importlib.import_module('rpbook.chat')\n__import__('rpbook')\nimport rpbookish\nfrom . import rpbook\n")
    assert _rpbook_imports(source, "probe.py") == ["probe.py:1 rpbook", "probe.py:2 rpbook.settings",
                                                   "probe.py:4 rpbook.chat", "probe.py:5 rpbook"]


def test_rpbooks_local_defaults_are_localpods():
    """rpbook's local target uses localpod's documented default key and HF token when the user sets
    none (rpbook/settings.py, localpod/__init__.py); if they drifted apart, every local run would be
    refused with a 401."""
    import localpod
    from localpod import config
    from rpbook import settings

    assert settings.LOCAL_DEFAULT_API_KEY == localpod.DEFAULT_API_KEY == config.Settings().api_key
    assert settings.LOCAL_DEFAULT_HF_TOKEN == localpod.DEFAULT_HF_TOKEN == config.Settings().hf_token
