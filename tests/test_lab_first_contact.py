"""What a newcomer meets in JupyterLab and on a first day (issue 19): money that reads as money, short
text outputs, committed notebooks that Lab saves unchanged, prerequisites checked before anything is
created, one localpod per checkout, Ctrl+C, a curl that works when pasted, a suite that leaves
nothing behind and explains its skips, and the small things (a cut-off plot title, a warning on
every ``make lab``, an install on the first ``make stop``).

The browser suite (tests/browser) checks the same claims on the rendered page.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest

import rpbook
from conftest import Isolated, wait_for
from rpbook.account.envfile import update_env_file
from rpbook.core.settings import load_settings
from rpbook.runbook.lab import RunbookContentsManager, clear_outputs, local_kernel_metadata
from rpbook.runbook.local import running_localpod, stop_localpod
from rpbook.runbook.runner import discover_notebooks, run_notebooks
from test_rpbook_runner import make_notebook

ROOT = Path(__file__).resolve().parent.parent
MAX_TEXT_BYTES = 2000
NO_MATH_CLASS = "mathjax_ignore tex2jax_ignore"
DOLLAR_PAIR = re.compile(r"(\$|&#36;)[^\n]*?(\$|&#36;)")
"""Two dollar signs on one line: what MathJax typesets as inline math. Escaped (``\\$``) or as an
entity (``&#36;``), JupyterLab typeset them all the same in runbook 02 (the browser suite saw it):
the runbooks' Markdown writes amounts as "USD 100"."""


# -- 1 and 8: every displayed object: no math, a short text -----------------------------------------


def _displayed_classes() -> list[type]:
    found: dict[str, type] = {}
    for module in pkgutil.walk_packages(rpbook.__path__, "rpbook."):
        if module.name.endswith("__main__"):
            continue
        for _, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if cls.__module__.startswith("rpbook.") and hasattr(cls, "_repr_html_"):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


def test_every_class_a_runbook_displays_goes_through_rich_output():
    from rpbook.core.display import RICH_OUTPUT_MARK

    classes = _displayed_classes()
    assert len(classes) >= 15, [c.__name__ for c in classes]
    unmarked = [
        c.__qualname__
        for c in classes
        if not getattr(c._repr_html_, RICH_OUTPUT_MARK, False) or not getattr(c.__repr__, RICH_OUTPUT_MARK, False)
    ]
    assert unmarked == [], f"displayed without rpbook.core.display.rich_output: {unmarked}"


def test_rich_output_keeps_dollars_from_mathjax_and_text_short():
    from rpbook.core.display import clip_text, rich_output

    @rich_output
    class Report:
        def __str__(self) -> str:
            return "\n".join(f"line {i}: 5 workers × $1.12/h = $5.58/h" for i in range(500))

        def _repr_html_(self) -> str:
            return "<p>5 workers × $1.12/h = $5.58/h</p>"

    report = Report()
    assert report._repr_html_() == f'<div class="{NO_MATH_CLASS}"><p>5 workers × $1.12/h = $5.58/h</p></div>'
    assert "mathjax_ignore" in NO_MATH_CLASS.split()  # MathJax 3's ignoreHtmlClass (JupyterLab 4)
    text = repr(report)
    assert len(text.encode()) <= MAX_TEXT_BYTES and text.startswith("line 0: 5 workers")
    assert text.endswith("more line(s) in the HTML output)")
    assert clip_text("short") == "short"
    assert len(clip_text("x" * 10_000).encode()) <= MAX_TEXT_BYTES


def test_a_displayed_dataclass_without_a_text_summary_is_refused():
    from dataclasses import dataclass

    from rpbook.core.display import rich_output

    with pytest.raises(TypeError, match="needs a __str__"):

        @rich_output
        @dataclass
        class Raw:
            value: int

            def _repr_html_(self) -> str:
                return "<b>raw</b>"


def test_no_markdown_of_the_runbooks_holds_a_pair_of_dollars():
    """A Markdown cell is typeset too: "$80/h ... $0.07" on one line would become a formula."""
    found = []
    for path in [*discover_notebooks(), ROOT / "notebooks" / "README.md"]:
        texts = (
            [path.read_text()]
            if path.suffix == ".md"
            else [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
        )
        for text in texts:
            prose = re.sub(r"`[^`]*`", "", text)  # code spans are not typeset
            found += [f"{path.name}: {m.group(0)}" for m in DOLLAR_PAIR.finditer(prose)]
    assert found == []


def check_executed_outputs(run_dir: Path) -> None:
    """What every executed notebook of a run must hold (used by the whole-runbook tests): text/plain
    outputs short and not dataclass reprs, and HTML with a dollar amount kept from MathJax."""
    problems = []
    for path in sorted(run_dir.glob("[0-9][0-9]_*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                plain = data.get("text/plain", "")
                where = f"{path.name} cell {index}"
                if len(plain.encode()) > MAX_TEXT_BYTES:
                    problems.append(f"{where}: text/plain of {len(plain.encode())} bytes")
                if re.match(r"[A-Z]\w*\(\w+=[^\n]*, \w+=", plain):
                    problems.append(f"{where}: a dataclass repr: {plain[:80]}")
                page = data.get("text/html", "")
                if "$" in re.sub(r"<[^>]*>", "", page) and NO_MATH_CLASS not in page:
                    problems.append(f"{where}: HTML with $ and no {NO_MATH_CLASS}")
    assert problems == [], "\n".join(problems)


# -- 3: committed notebooks are what Lab writes --------------------------------------------------------


def test_committed_notebook_metadata_is_what_jupyterlab_saves():
    """Lab opens a runbook with this machine's kernel metadata (RunbookContentsManager) and saves it
    through strip_outputs: the committed file must already be that, or a Ctrl+S changes git."""
    from jupyter_client.kernelspec import KernelSpecManager

    names = {name: spec["spec"]["display_name"] for name, spec in KernelSpecManager().get_all_specs().items()}
    changed = []
    for path in discover_notebooks():
        committed = json.loads(path.read_text())
        saved = json.loads(path.read_text())
        local_kernel_metadata(saved, names)  # opening in Lab
        clear_outputs(saved)  # saving from Lab
        if saved["metadata"] != committed["metadata"]:
            changed.append(f"{path.name}: {committed['metadata']} -> {saved['metadata']}")
        if (saved["nbformat"], saved["nbformat_minor"]) != (4, 5):
            changed.append(f"{path.name}: nbformat {saved['nbformat']}.{saved['nbformat_minor']}")
    assert changed == []


# -- 4: prerequisites in the preflight ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_runbook_02_alone_on_an_empty_account_creates_nothing_and_names_runbook_01(isolated: Isolated):
    book = ROOT / "notebooks" / "02_vllm_endpoint.ipynb"
    summary = run_notebooks([book], {}, out_dir=isolated.root / "run", receipt=False)
    [result] = summary.results
    assert result.status == "failed", str(summary)
    assert "runbook 01" in (result.error or "") and "01_network_volume.ipynb" in (result.error or "")
    assert "ensure_" not in (result.error or "")  # a runbook to run, never an internal function
    assert isolated.resources() == {"templates": [], "endpoints": [], "volumes": []}


def test_no_message_tells_a_user_to_run_an_internal_function():
    offenders = []
    for path in (ROOT / "lib" / "rpbook").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""["'].*\brun ensure_\w+""", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# -- 5: one localpod per checkout -----------------------------------------------------------------------


def test_a_checkout_records_one_port_and_every_entry_point_finds_it(tmp_path, monkeypatch):
    from rpbook.core.localpod_address import recorded_port

    monkeypatch.delenv("LOCALPOD_URL", raising=False)
    monkeypatch.delenv("RPBOOK_LOCALPOD_DIR", raising=False)
    one, two = tmp_path / "one", tmp_path / "two"
    first = load_settings("local", env_file=one / ".env").localpod_url
    assert first == f"http://127.0.0.1:{recorded_port(one / '.localpod')}"
    assert load_settings("local", env_file=one / ".env").localpod_url == first  # read back, not picked again
    assert (one / ".localpod" / ".gitignore").read_text() == "*\n"
    second = load_settings("local", env_file=two / ".env").localpod_url
    assert second != first  # another checkout, another port
    monkeypatch.setenv("LOCALPOD_URL", "http://127.0.0.1:9")
    assert load_settings("local", env_file=one / ".env").localpod_url == "http://127.0.0.1:9"  # still overrides


def test_processes_picking_at_once_agree_on_the_port(tmp_path):
    from rpbook.core.localpod_address import checkout_port

    state = tmp_path / ".localpod"
    code = f"from rpbook.core.localpod_address import checkout_port; print(checkout_port({str(state)!r}))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        for _ in range(4)
    ]
    ports = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert ports == {str(checkout_port(state))}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_serve_status_stop_and_the_runbooks_use_the_same_localpod(tmp_path):
    """``make serve|status|stop`` run ``rpbook localpod ...`` in the project; a runbook's session finds the
    served localpod (no second start), a second serve says so in one line, Ctrl+C stops it in one."""
    from rpbook.core.localpod_address import PORT_FILE

    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("LOCALPOD_URL", "RPBOOK_LOCALPOD_DIR", "RPBOOK_ENV_FILE")}
    rpbook_cmd = [sys.executable, "-m", "rpbook", "localpod"]

    def rpbook(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*rpbook_cmd, *args], cwd=project, env=env, capture_output=True, text=True, timeout=60)

    assert rpbook("status").stdout.startswith("not running")
    serve = subprocess.Popen(
        [*rpbook_cmd, "serve"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        state = project / ".localpod"
        running = wait_for(lambda: running_localpod(state), timeout=60, interval=0.1)
        url = f"http://127.0.0.1:{(state / PORT_FILE).read_text().strip()}"
        assert running[1] == url
        assert rpbook("status").stdout.startswith(f"running: pid {running[0]} at {url}")
        again = rpbook("serve")
        assert again.returncode == 1 and again.stdout.count("\n") == 1 and "already running" in again.stdout
        session = subprocess.run(
            [sys.executable, "-c", "from rpbook.runbook import session; session.start('local')"],
            cwd=project / "notebooks",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"localpod already running at {url}" in session.stdout, session.stdout + session.stderr
        serve.send_signal(signal.SIGINT)  # what Ctrl+C in the terminal sends
        out, _ = serve.communicate(timeout=30)
        assert serve.returncode == 0
        assert out.splitlines()[-1] == "localpod stopped (Ctrl+C)"
        assert "Traceback" not in out and "KeyboardInterrupt" not in out
        assert rpbook("status").stdout.startswith("not running")
        assert rpbook("stop").stdout.startswith("not running")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=10)
        stop_localpod(project / ".localpod")


# -- 6: Ctrl+C -----------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_ctrl_c_during_a_run_says_one_line_exits_130_and_the_summary_names_the_notebook(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    started = tmp_path / "started"
    make_notebook(books / "00_quick.ipynb", "x: int = 1  # x", "print(x)")
    make_notebook(
        books / "01_slow.ipynb",
        "y: int = 1  # y",
        f"import pathlib, time\npathlib.Path({str(started)!r}).write_text('1')\ntime.sleep(120)",
    )
    make_notebook(books / "02_after.ipynb", "z: int = 1  # z", "print(z)")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rpbook",
            "run",
            str(books / "00_quick.ipynb"),
            str(books / "01_slow.ipynb"),
            str(books / "02_after.ipynb"),
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl+C comes from a terminal, where SIGINT has its default action. A test run started in
        # the background (`make test &`, a CI runner's job) ignores SIGINT, its children inherit
        # that, and Python then installs no KeyboardInterrupt handler: the run would sleep on.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_for(started.exists, timeout=120, interval=0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == [
        f"rpbook: interrupted (Ctrl+C) in 01_slow.ipynb; the run so far is in {out}"
    ], stderr
    assert "Traceback" not in stdout + stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "01_slow.ipynb" and summary["ok"] is False
    assert [r["status"] for r in summary["results"]] == ["ok", "interrupted", "skipped"]
    names = sorted(p.name for p in out.iterdir())
    assert "00_quick.ipynb" in names and "summary.json" in names
    # nothing half-written: no partial record of the interrupted notebook, no temporary file
    assert [n for n in names if n.startswith(("01_", "02_", ".")) or n.endswith(".tmp")] == [], names


def test_a_clean_kernel_shutdown_sends_no_interrupt(tmp_path, monkeypatch):
    """jupyter_client interrupts (SIGINT) every kernel before shutting it down; an idle ipykernel then
    logs "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel" into a successful run."""
    from rpbook.runbook import runner

    sent: list[int] = []
    manager_class = runner._ipc_kernel_manager()
    original = manager_class._async_signal_kernel

    async def record(self, signum):  # type: ignore[no-untyped-def]
        sent.append(signum)
        await original(self, signum)

    monkeypatch.setattr(manager_class, "_async_signal_kernel", record)
    monkeypatch.setattr(runner, "_ipc_kernel_manager", lambda: manager_class)
    book = make_notebook(tmp_path / "00_one.ipynb", "x: int = 1  # x", "print(x)")
    assert run_notebooks([book], {}, out_dir=tmp_path / "run", receipt=False).ok
    assert signal.SIGINT not in sent


def test_kernels_leave_no_ipc_sockets_beside_the_notebooks(tmp_path):
    """A kernel that exits cleanly removes its sockets itself; one that dies (killed, crashed) leaves
    them to the manager, which looked for them in its own working folder, not the notebook's."""
    book = make_notebook(tmp_path / "00_one.ipynb", "x: int = 1  # x", "print(x)")
    dying = make_notebook(tmp_path / "01_dies.ipynb", "y: int = 1  # y", "import os\nos._exit(1)")
    summary = run_notebooks([book, dying], {}, out_dir=tmp_path / "run", receipt=False)
    assert [r.status for r in summary.results] == ["ok", "failed"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00_one.ipynb", "01_dies.ipynb", "run"]


# -- 7: the curl example works when pasted ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed: apt-get install curl")
def test_the_printed_curl_works_in_a_fresh_shell(localpod, settings, plant_endpoint, tmp_path):
    from rpbook.account.wakeup import wake
    from rpbook.endpoint.chat import curl_example

    key = settings.runpod_api_key()
    endpoint = plant_endpoint(
        image="runpod/worker-v1-vllm:v2.25.2",
        env={"MODEL_NAME": "mistralai/Mistral-7B-Instruct-v0.3", "HF_TOKEN": localpod.hf_token},
    )
    wake(settings, key, endpoint.id, timeout_s=30, poll_s=0.02, progress=False)
    update_env_file(settings.env_file, {"VLLM_API_KEY": key})  # what runbook 02's publish_endpoint writes
    printed = curl_example(settings, endpoint.id, "mistralai/Mistral-7B-Instruct-v0.3", "Hi there", max_tokens=8)
    shell_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # a user's shell: no key of its own
    done = subprocess.run(["bash", "-c", printed], env=shell_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["choices"][0]["message"]["content"], answer
    assert key.reveal() not in printed


# -- 9 and 10: the suite leaves nothing behind and explains its skips ----------------------------------


def test_skipped_groups_are_explained_in_one_line_each(tmp_path):
    env = {**os.environ, "RUNPOD_OPENAPI_SPEC": str(tmp_path / "no-spec.json"), "CI": ""}
    if (ROOT.parent / "shared" / "runpod" / "openapi-v2.json").is_file():
        pytest.skip("the spec sits beside this checkout, so the spec tests cannot be made to skip here")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_rest_v2.py", "-k", "spec"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("skipped ")]
    assert len(lines) == 1, done.stdout[-3000:]
    assert "Runpod OpenAPI v2 spec not found" in lines[0] and "RUNPOD_OPENAPI_SPEC" in lines[0]  # reason and fix
    assert re.match(r"skipped \d+ tests? \(tests/test_rest_v2\.py\): ", lines[0]), lines[0]


# -- 11: the small things ----------------------------------------------------------------------------------


def test_the_keepalive_cost_title_fits_in_its_figure():
    from rpbook.endpoint.conversation import ConversationReport, Turn, compare_plot

    reports = [
        ConversationReport(s, 1.5, [Turn(i, i * 1.5, i == 0, 0.2, 0.5, 10) for i in range(3)]) for s in ("off", "pin")
    ]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = compare_plot(reports).figure
    canvas = FigureCanvasAgg(figure)  # the canvas the PNG in the notebook is drawn on
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in figure.axes:
        box = ax.title.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= figure.bbox.x1, f"title {ax.title.get_text()!r} is cut off"
        for other in figure.axes:
            if other is not ax:
                assert not box.overlaps(other.title.get_window_extent(renderer)), "titles overlap"


def test_the_project_config_sets_no_hook_twice():
    """``jupyter lab`` applies its config to the contents manager twice; a ``pre_save_hook`` set there
    printed "UserWarning: Overriding existing pre_save_hook" on every ``make lab``."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("jupyter_server_config.py", path=str(ROOT / "jupyter")).load_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager = RunbookContentsManager(root_dir=str(ROOT), config=config)
        manager.update_config(config)
    from rpbook.runbook.lab import strip_outputs

    assert manager._pre_save_hooks == [strip_outputs]


def test_make_stop_and_status_install_nothing_after_any_install(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed: apt-get install make")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()  # the virtualenv exists
    for stamp in (".installed-localpod", ".installed-localpod,lab"):
        for old in venv.glob(".installed-*"):
            old.unlink()
        (venv / stamp).touch()  # newer than pyproject.toml: the install `make demo` (or `make lab`) made
        for target in ("stop", "status"):
            plan = subprocess.run(
                ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"], capture_output=True, text=True, timeout=30
            )
            assert plan.returncode == 0, plan.stderr
            assert "pip install" not in plan.stdout, f"make {target} after {stamp}: {plan.stdout}"
            assert f"rpbook localpod {target}" in plan.stdout
