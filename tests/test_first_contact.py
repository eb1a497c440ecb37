"""What a new user meets first: the dry run, local mode without prompts, parameter files that fail
with exit 2, runbook records a reader can trust, the KV-cache advice and a non-editable install."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from rpbook.account import hub
from rpbook.account.controlplane import RunpodClient
from rpbook.account.readiness import kv_cache_fit
from rpbook.account.resources import GpuType
from rpbook.core import secrets
from rpbook.core.display import FinalStateBar, html_table
from rpbook.core.errors import ConfigError, ControlPlaneError, EndpointNotFound
from rpbook.core.paths import notebook_dir
from rpbook.core.pending import NotCreated, Skipped, pending, record_pending
from rpbook.core.secrets import Secret
from rpbook.core.settings import LOCAL_DEFAULT_API_KEY, load_settings
from rpbook.runbook import session
from rpbook.runbook.cli import main
from rpbook.runbook.runner import check_parameters, discover_notebooks, load_parameters
from test_rpbook_runner import make_notebook

ROOT = Path(__file__).resolve().parent.parent
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"


# -- local mode: no prompt, say which key ----------------------------------------------------------


def test_local_mode_never_prompts_and_uses_the_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def no_prompt(question: str) -> str:
        raise AssertionError(f"prompted in local mode: {question}")

    monkeypatch.setattr(secrets, "prompt_hidden", no_prompt)
    local = load_settings("local", env_file=tmp_path / ".env")
    key = local.runpod_api_key(interactive=True)
    assert key.reveal() == LOCAL_DEFAULT_API_KEY and key.source == "local default"
    assert local.hf_token(interactive=True).source == "local default"


def test_runpod_target_prompts_and_says_what_an_empty_answer_does(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    asked: list[str] = []
    monkeypatch.setattr(secrets, "prompt_hidden", lambda question: asked.append(question))
    remote = load_settings("runpod", env_file=tmp_path / ".env")
    with pytest.raises(ConfigError, match="RUNPOD_API_KEY is not set"):
        remote.runpod_api_key(interactive=True)
    assert asked and "empty answer stops" in asked[0]


def test_session_says_which_keys_local_mode_uses(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment_for_a_test")
    line = session.describe(
        load_settings("local", env_file=tmp_path / ".env"),
        session.LocalpodStatus(url="http://127.0.0.1:1", started=False, pid=None, log_file=None),
    )
    assert "RUNPOD_API_KEY rpa_…(20 chars) (local default)" in line
    assert "HF_TOKEN hf_…(34 chars) (environment)" in line and "hf_from_the" not in line


def test_a_refused_key_gets_localpods_advice_not_the_consoles(settings, localpod):
    with (
        RunpodClient(settings, Secret("RUNPOD_API_KEY", "rpa_wrong_key_for_localpod", "test")) as client,
        pytest.raises(ControlPlaneError) as info,
    ):
        client.list_endpoints()
    assert info.value.status == 401
    assert "localpod refuses this key" in str(info.value) and "console.runpod.io" not in str(info.value)


# -- apply: true for local, false for runpod --------------------------------------------------------


def test_apply_defaults_to_the_targets_choice(tmp_path, capsys):
    local = load_settings("local", env_file=tmp_path / ".env")
    remote = load_settings("runpod", env_file=tmp_path / ".env")
    assert session.resolve_apply(None, local) is True
    assert session.resolve_apply(None, remote) is False
    assert "read the plans" in capsys.readouterr().out
    assert session.resolve_apply(False, local) is False and session.resolve_apply(True, remote) is True
    with pytest.raises(ConfigError, match="apply must be"):
        session.resolve_apply("yes", local)  # type: ignore[arg-type]


def test_every_runbook_that_creates_declares_apply_as_optional():
    from rpbook.runbook.runner import notebook_parameters

    for notebook in discover_notebooks():
        params = notebook_parameters(notebook)
        if "apply" in params:
            assert params["apply"].type_name == "Optional[bool]" and params["apply"].default == "None", notebook


# -- the dry run -------------------------------------------------------------------------------------


def test_a_plan_not_applied_lets_the_next_steps_skip_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RPBOOK_RUN_DIR", str(tmp_path))
    assert pending("endpoint", "never-planned") is None
    record_pending("endpoint", "planned-only")
    monkeypatch.setattr("rpbook.core.pending._IN_PROCESS", {})  # as a later notebook's kernel sees it
    missing = pending("endpoint", "planned-only")
    assert isinstance(missing, NotCreated) and not missing
    from rpbook.account import wakeup
    from rpbook.endpoint import chat

    settings = load_settings("local", env_file=tmp_path / ".env")
    wake = wakeup.wake(settings, "rpa_unused", missing)
    assert isinstance(wake, Skipped)
    assert str(wake) == "nothing to wake: endpoint `planned-only` is not created yet (apply is false)"
    assert chat.sanity_checks(settings, "rpa_unused", missing, MISTRAL).figures == {"skipped": True}
    assert chat.curl_example(settings, missing, MISTRAL).startswith("nothing to show with curl")


def test_find_endpoint_id_fails_when_nothing_planned_it(settings, localpod, tmp_path, monkeypatch):
    """A scheduled check of an endpoint someone deleted is a failure, not a skip."""
    from rpbook.account.plans import find_endpoint_id

    monkeypatch.setenv("RPBOOK_RUN_DIR", str(tmp_path))
    with RunpodClient(settings, settings.runpod_api_key()) as client:
        with pytest.raises(EndpointNotFound, match="no serverless endpoint is named 'gone'"):
            find_endpoint_id(client, "gone")
        record_pending("endpoint", "gone")
        assert isinstance(find_endpoint_id(client, "gone"), NotCreated)


def _outputs(path: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    return [output for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]


def _text(output: dict) -> str:
    if output["output_type"] == "stream":
        return output["text"]
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/html", ""))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_dry_run_exits_0_shows_every_plan_and_creates_nothing(isolated, tmp_path):
    box = isolated
    dry = tmp_path / "dry.yaml"
    dry.write_text("apply: false\n")
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpbook",
            "run",
            "-f",
            str(ROOT / "params" / "local.yaml"),
            "-f",
            str(dry),
            "--out",
            str(out),
        ],
        env=box.process_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "without encryption" not in done.stderr + done.stdout
    texts = {path.name: [_text(o) for o in _outputs(path)] for path in sorted(out.glob("*.ipynb"))}
    assert len(texts) == len(discover_notebooks())
    errors = [path.name for path in out.glob("*.ipynb") for o in _outputs(path) if o["output_type"] == "error"]
    assert errors == []
    plans = "\n".join(
        t
        for name in ("01_network_volume.ipynb", "02_vllm_endpoint.ipynb", "04_embeddings_endpoint.ipynb")
        for t in texts[name]
    )
    for title in (
        "network volume 'llm-weights': CREATE",
        "template 'vllm-mistral-7b': CREATE",
        "serverless endpoint 'mistral-7b-vllm': CREATE",
        "template 'infinity-bge-small': CREATE",
        "serverless endpoint 'bge-small-embeddings': CREATE",
    ):
        assert title in plans
    assert "nothing to wake: endpoint `mistral-7b-vllm` is not created yet (apply is false)" in "\n".join(
        texts["03_wake_and_sanity_chat.ipynb"]
    )
    assert "nothing to check: endpoint `bge-small-embeddings` is not created yet (apply is false)" in "\n".join(
        texts["04_embeddings_endpoint.ipynb"]
    )
    assert box.resources() == {"templates": [], "endpoints": [], "volumes": []}


# -- records a reader can trust ----------------------------------------------------------------------


def test_headless_progress_bar_prints_only_its_final_state(capsys, monkeypatch):
    monkeypatch.setenv("RPBOOK_HEADLESS", "1")
    bar = FinalStateBar(4, "submitting", "{desc:<20} {n}/{total}")
    bar.n = 1
    bar.refresh()
    assert capsys.readouterr().out == ""
    bar.n = 4
    bar.set_description_str("first token (awake)")
    bar.close()
    bar.close()
    assert capsys.readouterr().out == "first token (awake)  4/4\n"


def test_html_tables_align_every_cell(capsys):
    table = html_table(["check", "seconds"], [("a <b>", "1.00")], right={1}, code={0})
    assert "<code>a &lt;b&gt;</code>" in table
    assert table.count("text-align:left") == 2 and table.count("text-align:right") == 2


def test_record_figures_cells_print_a_line_not_a_path_object():
    for notebook in discover_notebooks():
        nb = nbformat.read(notebook, as_version=4)
        for cell in nb.cells:
            if "record_figures(" in cell.source and cell.cell_type == "code":
                assert cell.source.rstrip().endswith('print(f"figures recorded in {figures_file}")'), notebook


# -- parameter files ---------------------------------------------------------------------------------


@pytest.fixture
def book(tmp_path: Path) -> list[Path]:
    return [
        make_notebook(
            tmp_path / "00_x.ipynb",
            "from typing import Optional\n\napply: Optional[bool] = None  # h\ncount: int = 1  # h\n"
            "save_token: bool = False  # h",
        )
    ]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"apply: [unclosed\n", "is not valid YAML at line"),
        (b"apply: true\napply: false\n", "'apply' is given twice"),
        (b"count: \xff\xfe\n", "is not UTF-8"),
        (b"- a list\n", "must be a YAML mapping"),
    ],
)
def test_bad_parameter_files_exit_2(tmp_path, book, capsys, content, message):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    assert main(["run", str(book[0]), "-f", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_as_parameter_file_exits_2(tmp_path, book, capsys):
    assert main(["run", str(book[0]), "-f", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_null_only_where_declared_optional_and_declared_names_are_not_secrets(book):
    assert check_parameters({"apply": None, "save_token": True}, book)[book[0]] == {"apply": None, "save_token": True}
    with pytest.raises(ConfigError, match="count: expected int, got null"):
        check_parameters({"count": None}, book)
    with pytest.raises(ConfigError, match=r"count: expected a finite number|count: expected int"):
        check_parameters({"count": float("nan")}, book)
    with pytest.raises(ConfigError, match="hf_token: looks like a secret"):
        check_parameters({"hf_token": "x"}, book)


def test_the_real_parameter_files_load_and_check():
    for path in sorted((ROOT / "params").glob("*.yaml")):
        check_parameters(load_parameters([path]), discover_notebooks())


# -- notebooks are found from the project folder -----------------------------------------------------


def test_notebook_dir_is_found_from_the_working_folder(tmp_path):
    make_notebook((tmp_path / "notebooks").mkdir() or tmp_path / "notebooks" / "00_a.ipynb", "x: int = 1  # h")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    assert notebook_dir(tmp_path / "deep" / "er") == tmp_path / "notebooks"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_non_editable_install_runs_from_the_project_folder(tmp_path):
    """``pip install .`` puts rpbook in site-packages, away from notebooks/: it must look where it runs."""
    target = tmp_path / "site"
    source = tmp_path / "source"  # a copy: a build in the checkout would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "lib", source / "lib", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    code = "import rpbook.runbook.runner as r, sys; print(r.__file__); sys.exit(r.__name__ and 0)"
    where = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "rpbook", "params"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "02_vllm_endpoint.ipynb" in listed.stdout, listed.stderr
    elsewhere = subprocess.run(
        [sys.executable, "-m", "rpbook", "params"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert elsewhere.returncode == 2 and "no runbooks found" in elsewhere.stderr


# -- the team's vLLM settings against the KV cache ---------------------------------------------------


def test_kv_cache_fit_on_24_gb_for_mistral(settings):
    estimate = hub.min_gpu_memory_gb(settings, settings.hf_token(), MISTRAL, 8192, 0.9)
    gpus = [
        GpuType(id="NVIDIA RTX A5000", name="A5000", pool="AMPERE_24", memory_gb=24, serverless_price_hr=0.0),
        GpuType(id="NVIDIA A40", name="A40", pool="AMPERE_48", memory_gb=48, serverless_price_hr=0.0),
    ]
    team = kv_cache_fit(estimate, gpus, ["AMPERE_24", "AMPERE_48"], max_concurrency=8)
    fits = {pool: count for pool, _, count in team.fits}
    assert 5 <= fits["AMPERE_24"] <= 6  # "about five" (issue 8): 24 GiB x 0.9 - 13.5 weights - 1.5 overhead
    assert fits["AMPERE_48"] > 2 * fits["AMPERE_24"]
    assert team.warnings == ()
    worker_default = kv_cache_fit(estimate, gpus, ["AMPERE_24"], max_concurrency=30)
    assert len(worker_default.warnings) == 1 and "far above" in worker_default.warnings[0]
    too_long = kv_cache_fit(
        hub.min_gpu_memory_gb(settings, settings.hf_token(), MISTRAL, 200_000, 0.9),
        gpus,
        ["AMPERE_24"],
        max_concurrency=8,
    )
    assert "cannot hold one sequence" in too_long.warnings[0]


def test_production_params_use_the_teams_vllm_settings():
    mistral = load_parameters([ROOT / "params" / "runpod-mistral-7b.yaml"])
    assert mistral["max_concurrency"] == 8 and mistral["gpu_memory_utilization"] == 0.9
    assert (
        mistral["workers_min"],
        mistral["workers_max"],
        mistral["idle_timeout_s"],
        mistral["execution_timeout_s"],
        mistral["flashboot"],
        mistral["queue_delay_s"],
    ) == (0, 5, 120, 600, True, 15)


# -- CI never skips the contract tests ---------------------------------------------------------------


def test_missing_spec_fails_in_ci_and_skips_elsewhere(monkeypatch):
    import spec

    monkeypatch.setattr(spec, "_find_spec", lambda: (None, "not here"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must check localpod against the spec"):
        spec.load_spec()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        spec.load_spec()


def test_rpbook_errors_render_as_one_line_in_a_notebook(monkeypatch):
    monkeypatch.delenv("RPBOOK_TRACEBACK", raising=False)
    lines = ConfigError("fix this")._render_traceback_()
    assert len(lines) == 1 and "ConfigError" in lines[0] and "fix this" in lines[0]
