"""The runbooks end to end against localpod: ``rpbook run``, idempotency, nbmake, secrets, receipts.

One true end-to-end run builds the stack: ``rpbook run -f params/local.yaml`` as a user types it (a
process of its own, which starts its own localpod on a free port with its own state folder and env
file, through the variables ``rpbook.runbook.session`` honours), with canary secrets in the
environment. The tests below read what that run left (its executed notebooks, figures, summary,
env file, localpod's logs and state) and then run again against the same stack, in the order of
this file: a failing run (no secret in any output), a second run of the runbooks that create
(nothing new), nbmake over the notebooks (their own defaults adopt the stack), and last the
receipt, which first scales the endpoints to zero. Each test also passes alone (the fixture builds the stack for it).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from rpbook.records.receipt import receipt_for_run_dir
from rpbook.records.runfolder import load_figures
from rpbook.runbook.local import stop_localpod
from rpbook.runbook.runner import discover_notebooks, load_parameters, run_notebooks
from test_lab_first_contact import check_executed_outputs

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PARAMS = ROOT / "params" / "local.yaml"
RPBOOK = [sys.executable, "-m", "rpbook"]
NBMAKE = [sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # whole runbooks; the machine may be shared

EXPECTED = {"templates": 2, "endpoints": 2, "volumes": 1}
CREATORS = ("01", "02", "04")
"""The runbooks that create resources (the others read, wake, plan, or tear down only when asked)."""
NBMAKE_SKIPS = ("05", "06")
"""Left out of the nbmake run: the conversation and load test (05) and the event simulation (06)
are the two slowest runbooks and create nothing; they run headless in the build above and with
their own defaults from nothing in the browser suite (tests/browser)."""
CANARY_KEY = "rpa_CANARY_runpod_key_do_not_leak_4f1c"
CANARY_TOKEN = "hf_CANARY_token_do_not_leak_9b2e"


@dataclass
class Stack:
    """The stack one ``rpbook run`` built: its localpod and env file (``box``), the run's folder and
    what the command printed, and the resources it left."""

    box: Isolated
    run_dir: Path
    run: subprocess.CompletedProcess[str]
    created: dict[str, list[str]] = field(default_factory=dict)

    def resources(self) -> dict[str, list[str]]:
        """Resource ids in the stack's localpod, read with the key it was started with."""
        response = httpx.get(
            f"{self.box.url}/_localpod/state", headers={"Authorization": f"Bearer {CANARY_KEY}"}, timeout=10
        )
        response.raise_for_status()
        state = response.json()
        return {kind: sorted(item["id"] for item in state[kind]) for kind in ("templates", "endpoints", "volumes")}

    def env(self) -> dict[str, str]:
        """The environment every later step runs with: this stack, and the same canary secrets."""
        return {**self.box.process_env(), "RUNPOD_API_KEY": CANARY_KEY, "HF_TOKEN": CANARY_TOKEN}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    box = Isolated(tmp_path_factory.mktemp("stack"))
    run_dir = box.root / "runs" / "good"
    env = {**box.process_env(), "RUNPOD_API_KEY": CANARY_KEY, "HF_TOKEN": CANARY_TOKEN}
    try:
        run = subprocess.run(
            [*RPBOOK, "run", "-f", str(LOCAL_PARAMS), "--out", str(run_dir)],
            env=env,
            cwd=box.root,
            capture_output=True,
            text=True,
            timeout=900,
        )
        stack = Stack(box, run_dir, run)
        if run.returncode == 0:
            stack.created = stack.resources()
        yield stack
    finally:
        stop_localpod(box.state_dir)


@pytest.fixture
def stack(built: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The built stack, with this process pointed at it (in-process calls and the kernels they start)."""
    assert built.run.returncode == 0, built.run.stdout[-3000:] + built.run.stderr[-3000:]
    for key, value in {**built.box.environ(), "RUNPOD_API_KEY": CANARY_KEY, "HF_TOKEN": CANARY_TOKEN}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(built.box.root)
    return built


def test_one_run_builds_the_whole_stack(stack: Stack):
    assert "without encryption" not in stack.run.stderr  # rpbook run's kernels talk over IPC, not TCP
    assert {kind: len(ids) for kind, ids in stack.created.items()} == EXPECTED, stack.created
    env_file = stack.box.env_file
    env_lines = env_file.read_text().splitlines()
    for name in ("VLLM_API_URL", "VLLM_API_KEY", "EMBEDDINGS_API_URL"):
        assert any(line.startswith(f"{name}=") for line in env_lines), name
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    chat = load_figures(stack.run_dir / "03_wake_and_sanity_chat.figures.json")
    assert chat["cold"] is True and chat["chat_completion_tokens"] > 0
    executed = sorted(stack.run_dir.glob("*.ipynb"))
    assert len(executed) == len(discover_notebooks())
    # The runpod SDK turns on INFO logging when imported; the HTTP clients' per-request lines must
    # still stay out of the executed notebooks a newcomer reads.
    assert [path.name for path in executed if "HTTP Request:" in path.read_text()] == []
    # Executed notebooks are the run's record: final states only (no widget bar saved in its first
    # state, no 0% download bar, no intermediate redraws), no PosixPath reprs.
    for path in executed:
        text = path.read_text()
        for residue in ("application/vnd.jupyter.widget-view+json", " 0%|", "PosixPath(", "\\r", "submitting"):
            assert residue not in text, (path.name, residue)
    wake = nbformat.read(stack.run_dir / "03_wake_and_sanity_chat.ipynb", as_version=4)
    streams = [
        o["text"] for c in wake.cells if c.cell_type == "code" for o in c.outputs if o["output_type"] == "stream"
    ]
    wake_lines = [line for text in streams for line in text.splitlines() if "4/4" in line]
    assert len(wake_lines) == 1 and "first token (awake)" in wake_lines[0]
    # Every run ends with a cost receipt, printed, in summary.json and in the last executed notebook.
    summary = json.loads((stack.run_dir / "summary.json").read_text())
    assert summary["ok"] is True and summary["receipt"]["line"].startswith("this run: $")
    last = [r["output"] for r in summary["results"] if r["status"] == "ok"][-1]
    # Markdown: "\$" shows a dollar sign where "$...$" would be typeset as math
    assert nbformat.read(last, as_version=4).cells[-1].source.startswith("**Cost receipt.** this run: \\$")
    assert "this run: $" in stack.run.stdout + stack.run.stderr
    check_executed_outputs(stack.run_dir)  # money kept from MathJax, short text outputs


def test_no_secret_reaches_outputs_logs_or_errors(stack: Stack):
    root, env = stack.box.root, stack.env()
    # A run that fails half-way: notebook 02's budget guard stops it after 00 and 01 ran (an unpinned
    # image tag no longer gets that far: its declared range refuses it before anything runs).
    broken = root / "broken.yaml"
    broken.write_text("max_hourly_usd: 3\n")
    books = [str(p) for p in discover_notebooks()[:3]]
    bad = subprocess.run(
        [*RPBOOK, "run", *books, "-f", str(LOCAL_PARAMS), "-f", str(broken), "--out", str(root / "runs" / "bad")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 1
    assert "02_vllm_endpoint.ipynb failed in cell" in bad.stderr
    # A parameter that tries to carry a secret is refused before anything runs.
    sneaky = root / "sneaky.yaml"
    sneaky.write_text(f"hf_token: {CANARY_TOKEN}\n")
    refused = subprocess.run(
        [*RPBOOK, "run", "-f", str(sneaky), "--out", str(root / "runs" / "x")],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "looks like a secret" in refused.stderr

    outputs = [stack.run, bad, refused]
    texts = {"rpbook stdout/stderr": "".join(o.stdout + o.stderr for o in outputs)}
    for path in (root / "runs").rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    for path in stack.box.state_dir.glob("*.log"):
        texts[str(path)] = path.read_text(errors="replace")
    assert len([p for p in texts if p.endswith(".ipynb")]) >= len(discover_notebooks()) + 2  # + the failing run's
    leaks = [where for where, text in texts.items() if CANARY_KEY in text or CANARY_TOKEN in text]
    assert leaks == []
    # The secrets did work (localpod accepted them) and the env file, their one allowed home, has the key.
    assert read_env_file(stack.box.env_file)["VLLM_API_KEY"] == CANARY_KEY


def test_second_run_creates_nothing_new(stack: Stack):
    """Running the runbooks that create (01, 02, 04) again changes nothing: every plan is "none"."""
    books = {p.name[:2]: p for p in discover_notebooks()}
    again = run_notebooks(
        [books[n] for n in CREATORS],
        load_parameters([LOCAL_PARAMS]),
        out_dir=stack.box.root / "runs" / "again",
        receipt=False,
    )
    assert again.ok, str(again)
    assert stack.resources() == stack.created
    run = stack.box.root / "runs" / "again"
    assert load_figures(run / "01_network_volume.figures.json")["action"] == "none"
    endpoint = load_figures(run / "02_vllm_endpoint.figures.json")
    assert endpoint["template_action"] == "none" and endpoint["endpoint_action"] == "none"
    embeddings = load_figures(run / "04_embeddings_endpoint.figures.json")
    assert embeddings["template_action"] == "none" and embeddings["endpoint_action"] == "none"


def test_the_runbooks_own_defaults_plan_no_change_after_the_demo(stack: Stack):
    """JupyterLab runs each runbook with its own defaults: after `make demo` they must describe the same
    stack as params/local.yaml, or Lab and the demo undo each other (on Runpod a new release each time)."""
    books = {p.name[:2]: p for p in discover_notebooks()}
    run = stack.box.root / "runs" / "defaults"
    defaults = run_notebooks([books[n] for n in CREATORS], {}, out_dir=run, receipt=False)
    assert defaults.ok, str(defaults)
    for name in ("01_network_volume", "02_vllm_endpoint", "04_embeddings_endpoint"):
        figures = load_figures(run / f"{name}.figures.json")
        actions = {k: v for k, v in figures.items() if k == "action" or k.endswith("_action")}
        assert set(actions.values()) == {"none"}, (name, actions)
        assert "UPDATE" not in (run / f"{name}.ipynb").read_text(), name
    assert stack.resources() == stack.created


def test_nbmake_runs_the_notebooks_with_their_own_defaults(stack: Stack):
    """nbmake (CI's check) runs each notebook's own defaults, no parameters and no stdin (a prompt
    would fail): apply unset means true for the local target, and the defaults name the same
    resources as ``params/local.yaml``, so they adopt the stack instead of creating another. (Each
    runbook built from nothing with its defaults and no keys at all is the browser suite's Run All
    Cells, tests/browser; ``NBMAKE_SKIPS`` says which two are left out here and why.)"""
    books = [p for p in discover_notebooks() if p.name[:2] not in NBMAKE_SKIPS]
    done = subprocess.run(
        [*NBMAKE, *map(str, books)],
        env=stack.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{len(books)} passed" in done.stdout
    assert stack.resources() == stack.created


def test_the_receipt_equals_the_workers_own_accounting(stack: Stack):
    """Taken again once no worker bills, the run's receipt (localpod's REST v2 billing) equals the
    workers' own accounting (billed seconds, rounded up per session, x price) in the same window.
    Last in this file: it scales the stack's endpoints to zero."""
    summary = json.loads((stack.run_dir / "summary.json").read_text())
    settings = load_settings("local", env_file=stack.box.env_file)
    key = settings.runpod_api_key()
    endpoint_ids = sorted(summary["receipt"]["endpoints_usd"])
    assert len(endpoint_ids) == 2
    for endpoint_id in endpoint_ids:  # stop every worker so that no session is still growing
        scale_to_zero(settings, key, endpoint_id)
    deadline = time.monotonic() + 60
    while any(health(settings, key, e).billing_workers for e in endpoint_ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    final = receipt_for_run_dir(stack.run_dir)
    assert not final.provisional, final.why_provisional
    state = httpx.get(
        f"{stack.box.url}/_localpod/state", timeout=10, headers={"Authorization": f"Bearer {key.reveal()}"}
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
