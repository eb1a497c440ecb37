"""The runbooks end to end against localpod: nbmake, papermill via ``rpbook run``, idempotency, secrets.

Each test gets its own localpod (free port, its own state folder) and env file, through the
variables ``rpbook.runbook.session`` honours, so nothing touches a developer's real ``.env``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import nbformat
import pytest

from conftest import Isolated
from rpbook.account.billing_now import scale_to_zero
from rpbook.account.envfile import read_env_file
from rpbook.account.jobqueue import health
from rpbook.core.settings import load_settings
from rpbook.records.figures import load_figures
from rpbook.records.receipt import receipt_for_run_dir
from rpbook.runbook.runner import discover_notebooks, load_parameters, run_notebooks
from test_lab_first_contact import check_executed_outputs

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PARAMS = ROOT / "params" / "local.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # whole runbooks; the machine may be shared

EXPECTED = {"templates": 2, "endpoints": 2, "volumes": 1}


def test_nbmake_runs_every_notebook_against_localpod(isolated: Isolated):
    env = {k: v for k, v in os.environ.items() if k not in ("RUNPOD_API_KEY", "HF_TOKEN")}
    env.update(isolated.environ())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbmake",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            str(ROOT / "notebooks"),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{len(discover_notebooks())} passed" in done.stdout
    # nbmake runs each notebook's own defaults with no environment, as JupyterLab's "run from the
    # top" does, and no stdin (a prompt would fail): apply unset means true for the local target, so
    # the vLLM and the Infinity template and endpoint and the weights volume exist.
    assert {kind: len(ids) for kind, ids in isolated.resources().items()} == EXPECTED


def test_second_run_creates_nothing_new(isolated: Isolated):
    parameters = load_parameters([LOCAL_PARAMS])
    first = run_notebooks(discover_notebooks(), parameters, out_dir=isolated.root / "run1")
    assert first.ok, str(first)
    created = isolated.resources()
    assert {kind: len(ids) for kind, ids in created.items()} == EXPECTED, created
    env_lines = isolated.env_file.read_text().splitlines()
    assert any(line.startswith("VLLM_API_URL=") for line in env_lines)
    assert any(line.startswith("VLLM_API_KEY=") for line in env_lines)
    assert any(line.startswith("EMBEDDINGS_API_URL=") for line in env_lines)
    assert oct(isolated.env_file.stat().st_mode & 0o777) == "0o600"
    chat = load_figures(isolated.root / "run1" / "03_wake_and_sanity_chat.figures.json")
    assert chat["cold"] is True and chat["chat_completion_tokens"] > 0
    # The runpod SDK turns on INFO logging when imported; the HTTP clients' per-request lines must
    # still stay out of the executed notebooks a newcomer reads.
    chatty = [path.name for path in (isolated.root / "run1").glob("*.ipynb") if "HTTP Request:" in path.read_text()]
    assert chatty == []
    # Executed notebooks are the run's record: final states only (no widget bar saved in its first
    # state, no 0% download bar, no intermediate redraws), no PosixPath reprs.
    for path in (isolated.root / "run1").glob("*.ipynb"):
        text = path.read_text()
        for residue in ("application/vnd.jupyter.widget-view+json", " 0%|", "PosixPath(", "\\r", "submitting"):
            assert residue not in text, (path.name, residue)
    executed = nbformat.read(isolated.root / "run1" / "03_wake_and_sanity_chat.ipynb", as_version=4)
    streams = [
        o["text"] for c in executed.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "stream"
    ]
    wake_lines = [line for text in streams for line in text.splitlines() if "4/4" in line]
    assert len(wake_lines) == 1 and "first token (awake)" in wake_lines[0]
    check_executed_outputs(isolated.root / "run1")  # money kept from MathJax, short text outputs

    # JupyterLab runs each runbook with its own defaults: after `make demo` they must describe the same
    # stack as params/local.yaml, or Lab and the demo undo each other (a new release each time).
    creators = [p for p in discover_notebooks() if p.name[:2] in ("01", "02", "04")]
    defaults = run_notebooks(creators, {}, out_dir=isolated.root / "defaults", receipt=False)
    assert defaults.ok, str(defaults)
    for name in ("01_network_volume", "02_vllm_endpoint", "04_embeddings_endpoint"):
        figures = load_figures(isolated.root / "defaults" / f"{name}.figures.json")
        actions = {k: v for k, v in figures.items() if k == "action" or k.endswith("_action")}
        assert set(actions.values()) == {"none"}, (name, actions)
        assert "UPDATE" not in (isolated.root / "defaults" / f"{name}.ipynb").read_text(), name
    assert isolated.resources() == created

    second = run_notebooks(discover_notebooks(), parameters, out_dir=isolated.root / "run2")
    assert second.ok, str(second)
    assert isolated.resources() == created
    assert load_figures(isolated.root / "run2" / "01_network_volume.figures.json")["action"] == "none"
    endpoint = load_figures(isolated.root / "run2" / "02_vllm_endpoint.figures.json")
    assert endpoint["template_action"] == "none" and endpoint["endpoint_action"] == "none"
    # Runbook 05 plays localpod's idle timeouts 100x faster, so by run 2 the endpoint may have gone
    # cold again: the wake says which, and run 2 still woke it and chatted.
    again = load_figures(isolated.root / "run2" / "03_wake_and_sanity_chat.figures.json")
    assert isinstance(again["cold"], bool) and again["chat_completion_tokens"] > 0
    embeddings = load_figures(isolated.root / "run2" / "04_embeddings_endpoint.figures.json")
    assert embeddings["template_action"] == "none" and embeddings["endpoint_action"] == "none"

    # The cost receipt: every run ends with one, from localpod's REST v2 billing, and it equals the
    # workers' own accounting (billed seconds, rounded up per session, x price) in the same window.
    summary = json.loads((isolated.root / "run1" / "summary.json").read_text())
    assert summary["receipt"]["line"].startswith("this run: $")
    last = [r["output"] for r in summary["results"] if r["status"] == "ok"][-1]
    # Markdown: "\$" shows a dollar sign where "$...$" would be typeset as math
    assert nbformat.read(last, as_version=4).cells[-1].source.startswith("**Cost receipt.** this run: \\$")
    settings = load_settings("local", env_file=isolated.env_file)
    key = settings.runpod_api_key()
    endpoint_ids = sorted(summary["receipt"]["endpoints_usd"])
    assert len(endpoint_ids) == 2
    for endpoint_id in endpoint_ids:  # stop every worker so that no session is still growing
        scale_to_zero(settings, key, endpoint_id)
    deadline = time.monotonic() + 60
    while any(health(settings, key, e).billing_workers for e in endpoint_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    final = receipt_for_run_dir(isolated.root / "run1")
    assert not final.provisional, final.why_provisional
    state = httpx.get(
        f"{isolated.url}/_localpod/state", timeout=10, headers={"Authorization": f"Bearer {key.reveal()}"}
    ).json()
    start = datetime.fromisoformat(final.window_start.replace("Z", "+00:00")).timestamp()
    end = datetime.fromisoformat(final.window_end.replace("Z", "+00:00")).timestamp()
    for endpoint_id in endpoint_ids:
        sessions = [x for x in state["sessions"] if x["endpoint_id"] == endpoint_id]
        assert sessions
        own = sum(
            max(
                0.0,
                min(x["started_at"] + math.ceil(round(x["stopped_at"] - x["started_at"], 6)), end)
                - max(x["started_at"], start),
            )
            * x["price_per_gpu_s"]
            * x["gpu_count"]
            for x in sessions
        )
        assert final.endpoints_usd[endpoint_id] == pytest.approx(own, abs=2e-6), endpoint_id


CANARY_KEY = "rpa_CANARY_runpod_key_do_not_leak_4f1c"
CANARY_TOKEN = "hf_CANARY_token_do_not_leak_9b2e"


def test_no_secret_reaches_outputs_logs_or_errors(isolated: Isolated):
    env = dict(os.environ)
    env.update(isolated.environ(), RUNPOD_API_KEY=CANARY_KEY, HF_TOKEN=CANARY_TOKEN)
    rpbook = [sys.executable, "-m", "rpbook"]
    good = subprocess.run(
        [*rpbook, "run", "-f", str(LOCAL_PARAMS), "--out", str(isolated.root / "runs" / "good")],
        env=env,
        cwd=isolated.root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    assert "without encryption" not in good.stderr  # rpbook run's kernels talk over IPC, not TCP
    # A run that fails half-way: notebook 02 refuses an unpinned image tag after 00 and 01 ran.
    broken = isolated.root / "broken.yaml"
    broken.write_text("vllm_image_tag: latest\n")
    bad = subprocess.run(
        [*rpbook, "run", "-f", str(LOCAL_PARAMS), "-f", str(broken), "--out", str(isolated.root / "runs" / "bad")],
        env=env,
        cwd=isolated.root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert bad.returncode == 1
    assert "02_vllm_endpoint.ipynb failed in cell" in bad.stderr
    # A parameter that tries to carry a secret is refused before anything runs.
    sneaky = isolated.root / "sneaky.yaml"
    sneaky.write_text(f"hf_token: {CANARY_TOKEN}\n")
    refused = subprocess.run(
        [*rpbook, "run", "-f", str(sneaky), "--out", str(isolated.root / "runs" / "x")],
        env=env,
        cwd=isolated.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "looks like a secret" in refused.stderr

    texts = {
        "rpbook stdout/stderr": good.stdout + good.stderr + bad.stdout + bad.stderr + refused.stdout + refused.stderr
    }
    for path in (isolated.root / "runs").rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    for path in isolated.state_dir.glob("*.log"):
        texts[str(path)] = path.read_text(errors="replace")
    assert len([p for p in texts if p.endswith(".ipynb")]) >= 6  # 4 good + the failing run's executed notebooks
    leaks = [where for where, text in texts.items() if CANARY_KEY in text or CANARY_TOKEN in text]
    assert leaks == []
    # The secrets did work (localpod accepted them) and the env file, their one allowed home, has the key.
    assert json.loads((isolated.root / "runs" / "good" / "summary.json").read_text())["ok"] is True
    assert read_env_file(isolated.env_file)["VLLM_API_KEY"] == CANARY_KEY
