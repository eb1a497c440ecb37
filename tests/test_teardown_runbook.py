"""Issue 13's done-when for teardown: a run is ``kill -9``ed half-way (during runbook 03, after 00-02
created the volume, the vLLM template and endpoint), then runbook 99 tears down: localpod is left
with none of the runbooks' resources and no open worker session (billing stops), and a second
teardown has nothing to do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import Isolated
from rpbook.records.runfolder import load_figures
from rpbook.runbook.local import running_localpod

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PARAMS = ROOT / "params" / "local.yaml"
TEARDOWN = ROOT / "notebooks" / "99_teardown.ipynb"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _descendants(pid: int) -> list[int]:
    """Processes started (directly or not) by ``pid``: the run's kernels, found through /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _state(box: Isolated) -> dict:
    from localpod import DEFAULT_API_KEY

    response = httpx.get(
        f"{box.url}/_localpod/state", headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}, timeout=10
    )
    response.raise_for_status()
    return response.json()


def _run(box: Isolated, out: Path, *files: Path, notebook: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rpbook", "run", *([str(notebook)] if notebook else [])]
    for file in files:
        command += ["-f", str(file)]
    return subprocess.run(
        [*command, "--out", str(out)], env=box.process_env(), cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_kill_9_half_way_then_teardown_leaves_nothing_billing(isolated: Isolated, tmp_path: Path) -> None:
    box = isolated
    out = tmp_path / "killed"
    run = subprocess.Popen(
        [sys.executable, "-m", "rpbook", "run", "-f", str(LOCAL_PARAMS), "--out", str(out)],
        env=box.process_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not (
            (out / "02_vllm_endpoint.figures.json").exists() and (out / "03_wake_and_sanity_chat.ipynb").exists()
        ):
            assert run.poll() is None, "the run ended before notebook 03"
            assert time.monotonic() < deadline, "notebook 03 never started"
            time.sleep(0.2)
        while not any(s["stopped_at"] is None for s in _state(box)["sessions"]):  # notebook 03 woke a worker
            assert run.poll() is None, "the run ended before a worker started"
            assert time.monotonic() < deadline, "notebook 03 started no worker"
            time.sleep(0.1)
        server = running_localpod(box.state_dir)
        spare = {server[0]} if server and server[0] else set()
        victims = [p for p in _descendants(run.pid) if p not in spare]
        os.kill(run.pid, signal.SIGKILL)
        for pid in victims:  # its kernels: the whole run dies at once, as with a killed terminal
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        if run.poll() is None:
            run.kill()
        run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert not (out / "summary.json").exists() and not (out / "04_embeddings_endpoint.ipynb").exists()
    assert any(s["stopped_at"] is None for s in _state(box)["sessions"])  # a worker bills now
    made = box.resources()
    assert {kind: len(ids) for kind, ids in made.items()} == {"templates": 1, "endpoints": 1, "volumes": 1}

    settings = tmp_path / "teardown.yaml"
    settings.write_text("teardown: true\ndelete_volumes: true\nbilling_interval_s: 2\n")
    first = _run(box, tmp_path / "teardown1", LOCAL_PARAMS, settings, notebook=TEARDOWN)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    state = _state(box)
    assert (state["templates"], state["endpoints"], state["volumes"]) == ([], [], [])
    assert state["sessions"]
    assert all(s["stopped_at"] is not None for s in state["sessions"])  # no worker left billing
    figures = load_figures(tmp_path / "teardown1" / "99_teardown.figures.json")
    assert figures["deleted_endpoints"] == 1 and figures["deleted_templates"] == 1
    assert figures["deleted_volumes"] == 1 and figures["nothing_bills"] is True
    assert figures["billing_delta_usd"] == 0

    second = _run(box, tmp_path / "teardown2", LOCAL_PARAMS, settings, notebook=TEARDOWN)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = load_figures(tmp_path / "teardown2" / "99_teardown.figures.json")
    assert again["nothing_to_do"] is True and again["planned_deletes"] == 0 and again["planned_kept"] == 0
