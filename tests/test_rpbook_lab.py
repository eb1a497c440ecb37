"""The project's JupyterLab config: save hook, read hook, and the config folder ``make lab`` uses.

The browser suite (tests/browser) checks the same things in a real page; these run in milliseconds
and say precisely which rule broke.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from rpbook.runbook.lab import RunbookContentsManager, clear_outputs, is_record, local_kernel_metadata, strip_outputs

ROOT = Path(__file__).resolve().parent.parent


def executed_notebook() -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell(
            "print(1)",
            execution_count=3,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")],
            metadata={"execution": {"iopub.status.busy": "2026-01-01"}},
        ),
    ]
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python", "version": "3.11.7", "file_extension": ".py"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
    }
    return json.loads(json.dumps(nb))


def test_saved_runbook_loses_outputs_counts_timings_widgets_and_python_version():
    model = {"type": "notebook", "content": executed_notebook()}
    strip_outputs(model=model, path="notebooks/03_wake_and_sanity_chat.ipynb", contents_manager=None)
    cell = model["content"]["cells"][1]
    assert cell["outputs"] == [] and cell["execution_count"] is None and "execution" not in cell["metadata"]
    assert cell["source"] == "print(1)"
    assert "widgets" not in model["content"]["metadata"]
    assert model["content"]["metadata"]["language_info"] == {"name": "python"}
    nbformat.validate(nbformat.from_dict(model["content"]))


def test_records_under_runs_and_other_files_are_saved_as_they_are():
    for path, kind in (
        ("runs/2026-11-30T02-00-00Z/03_wake_and_sanity_chat.ipynb", "notebook"),
        ("project/runs/lab/x.ipynb", "notebook"),
        ("notebooks/README.md", "file"),
    ):
        model = {"type": kind, "content": executed_notebook() if kind == "notebook" else "text"}
        before = json.dumps(model)
        strip_outputs(model=model, path=path)
        assert json.dumps(model) == before, path
    assert is_record("runs/a.ipynb") and not is_record("notebooks/runs.ipynb") and not is_record("a.ipynb")


def test_clear_outputs_tolerates_odd_notebooks():
    odd = {"cells": [{"cell_type": "raw", "source": "x"}], "metadata": {"language_info": "python"}}
    clear_outputs(odd)
    assert odd == {"cells": [{"cell_type": "raw", "source": "x"}], "metadata": {"language_info": "python"}}


def test_read_hook_gives_the_kernels_metadata_so_opening_changes_nothing():
    from ipykernel.ipkernel import IPythonKernel

    nb = {
        "cells": [],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    }
    local_kernel_metadata(nb, {"python3": "Python 3 (ipykernel)"})
    assert nb["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert nb["metadata"]["language_info"] == IPythonKernel.language_info
    other = {
        "cells": [],
        "metadata": {"kernelspec": {"name": "ir", "display_name": "R"}, "language_info": {"name": "R"}},
    }
    local_kernel_metadata(other, {"python3": "Python 3 (ipykernel)"})
    assert other["metadata"]["kernelspec"]["display_name"] == "R"


def test_contents_manager_reads_runbooks_with_kernel_metadata_and_saves_them_without_outputs(tmp_path: Path):
    asyncio.run(_read_then_save(tmp_path))


async def _read_then_save(tmp_path: Path) -> None:
    manager = RunbookContentsManager(root_dir=str(tmp_path), config=Config())  # the hook needs no config
    assert strip_outputs in manager._pre_save_hooks
    (tmp_path / "notebooks").mkdir()
    source = executed_notebook()
    source["metadata"]["language_info"] = {"name": "python"}
    (tmp_path / "notebooks" / "a.ipynb").write_text(json.dumps(source))
    model = await manager.get("notebooks/a.ipynb")
    assert model["content"]["metadata"]["language_info"]["version"]  # filled in for the page
    await manager.save({"type": "notebook", "content": model["content"]}, "notebooks/a.ipynb")
    on_disk = json.loads((tmp_path / "notebooks" / "a.ipynb").read_text())
    assert on_disk["cells"][1]["outputs"] == [] and on_disk["metadata"]["language_info"] == {"name": "python"}


def test_project_config_roots_lab_at_the_project_and_sets_the_hooks(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RPBOOK_RUN_DIR", "kept")  # the config only sets it when unset
    loader = PyFileConfigLoader("jupyter_server_config.py", path=str(ROOT / "jupyter"))
    config = loader.load_config()
    assert config.ServerApp.root_dir == str(ROOT)
    assert config.ServerApp.ip == "127.0.0.1"
    assert config.ServerApp.contents_manager_class is RunbookContentsManager
    assert "pre_save_hook" not in config.ContentsManager  # registered by the contents manager itself
    assert config.LabApp.default_url == "/lab/tree/notebooks/README.md"
    assert config.LabApp.app_settings_dir == str(ROOT / "jupyter" / "lab-settings")
    overrides = json.loads((ROOT / "jupyter" / "lab-settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Markdown Preview"
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert (ROOT / "notebooks" / "README.md").is_file()
    import os

    assert os.environ["RPBOOK_RUN_DIR"] == "kept"
    page_config = json.loads((ROOT / "jupyter" / "labconfig" / "page_config.json").read_text())
    assert page_config["disabledExtensions"]["@jupyterlab/apputils-extension:announcements"] is True
