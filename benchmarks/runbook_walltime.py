"""Wall time of the whole headless runbook, next to papermill's own cost for as many empty notebooks.

Both runs happen here, one after the other, with the same papermill and kernel: first N empty
notebooks (a parameters cell and nothing else), then the N runbooks with ``params/local.yaml``
against a fresh localpod. The difference is what the runbooks themselves cost (Hub checks, plans,
cold start, chats); the ratio shows how much of a run is papermill's kernel start-up.

Run: ``python benchmarks/runbook_walltime.py``. It uses its own localpod port, env file and state
folder in a temporary directory, and stops that localpod at the end.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nbformat

from localpod_process import free_port
from rpbook.runbook.local import stop_localpod
from rpbook.runbook.runner import discover_notebooks, load_parameters, run_notebooks

ROOT = Path(__file__).resolve().parent.parent


def empty_notebooks(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell('target: str = "local"  # unused')
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = folder / f"{i:02d}_empty.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def main() -> int:
    notebooks = discover_notebooks()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["LOCALPOD_URL"] = f"http://127.0.0.1:{free_port()}"
        os.environ["RPBOOK_ENV_FILE"] = str(work / ".env")
        os.environ["RPBOOK_LOCALPOD_DIR"] = str(work / ".localpod")
        for name in ("RUNPOD_API_KEY", "HF_TOKEN"):
            os.environ.pop(name, None)  # local mode's documented defaults

        empty_dir = work / "empty"
        empty_dir.mkdir()
        empties = empty_notebooks(empty_dir, len(notebooks))
        start = time.perf_counter()
        baseline = run_notebooks(empties, {"target": "local"}, out_dir=work / "run-empty")
        empty_s = time.perf_counter() - start
        if not baseline.ok:
            print(baseline)
            return 1

        parameters = load_parameters([ROOT / "params" / "local.yaml"])
        start = time.perf_counter()
        try:
            summary = run_notebooks(notebooks, parameters, out_dir=work / "run-runbooks")
        finally:
            stop_localpod(work / ".localpod")
        runbook_s = time.perf_counter() - start
        print(summary)
        if not summary.ok:
            return 1

    print(f"\nheadless runbook, {len(notebooks)} notebooks against a fresh localpod (fast profile)")
    rows = [
        (f"papermill, {len(notebooks)} empty notebooks", f"{empty_s:8.2f} s"),
        (f"runbooks {notebooks[0].name[:2]}-{notebooks[-1].name[:2]} (params/local.yaml)", f"{runbook_s:8.2f} s"),
        ("ratio runbooks / empty", f"{runbook_s / empty_s:8.2f}"),
        ("runbook work beyond papermill", f"{runbook_s - empty_s:8.2f} s"),
    ]
    for label, value in rows:
        print(f"  {label:<40}{value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
