"""``rpbook run``: strict parameters, ordered runs, failures that name the cell."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from rpbook.core.errors import ConfigError
from rpbook.runbook.cli import main
from rpbook.runbook.runner import check_parameters, discover_notebooks, notebook_parameters, run_notebooks


def make_notebook(path: Path, parameters: str, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), params, *[nbformat.v4.new_code_cell(c) for c in cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def books(tmp_path: Path) -> list[Path]:
    first = make_notebook(
        tmp_path / "00_first.ipynb",
        'greeting: str = "hi"  # what to say\ncount: int = 1  # how often',
        "import os, pathlib\npathlib.Path(os.environ['RPBOOK_RUN_DIR'], 'first.txt').write_text(greeting * count)",
    )
    second = make_notebook(
        tmp_path / "01_second.ipynb",
        "ratio: float = 0.5  # a share\nfail: bool = False  # x",
        "assert not fail, 'asked to fail'",
    )
    return [first, second]


def test_parameters_are_read_from_the_parameters_cell(books):
    params = notebook_parameters(books[0])
    assert params["count"].type_name == "int" and params["count"].help == "how often"


def test_unknown_name_is_an_error_with_a_suggestion(books):
    with pytest.raises(ConfigError, match=r"greting: no runbook has this parameter \(did you mean 'greeting'"):
        check_parameters({"greting": "x"}, books)


def test_secret_looking_names_and_wrong_types_are_refused(books):
    with pytest.raises(ConfigError) as info:
        check_parameters({"hf_token": "x", "runpod_api_key": "y", "count": "three", "ratio": 1}, books)
    message = str(info.value)
    assert "hf_token: looks like a secret" in message and "runpod_api_key: looks like a secret" in message
    assert "count: expected int, got str 'three'" in message
    assert "ratio" not in message  # an int is a fine float


def test_each_notebook_gets_only_its_parameters(books):
    split = check_parameters({"count": 2, "ratio": 0.1}, books)
    assert split[books[0]] == {"count": 2} and split[books[1]] == {"ratio": 0.1}


def test_a_parameter_of_an_unselected_runbook_is_known_but_not_passed(books):
    # One parameters file serves the whole collection: running a single runbook with it is fine.
    assert check_parameters({"count": 2, "ratio": 0.1}, books[:1]) == {books[0]: {"count": 2}}


@pytest.mark.slow
def test_run_in_order_writes_outputs_and_summary(books, tmp_path):
    summary = run_notebooks(books, {"greeting": "ho", "count": 3}, out_dir=tmp_path / "run")
    assert summary.ok
    assert (tmp_path / "run" / "first.txt").read_text() == "hohoho"
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["status"] for r in written["results"]] == ["ok", "ok"]
    executed = nbformat.read(tmp_path / "run" / "00_first.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)


@pytest.mark.slow
def test_failure_names_the_cell_and_skips_the_rest(books, tmp_path, capsys):
    third = make_notebook(tmp_path / "02_third.ipynb", "x: int = 1  # x", "print(x)")
    params = tmp_path / "p.yaml"
    params.write_text("fail: true\n")
    code = main(["run", str(books[0]), str(books[1]), str(third), "-f", str(params), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "01_second.ipynb failed in cell" in err and "asked to fail" in err
    written = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert [r["status"] for r in written["results"]] == ["ok", "failed", "skipped"]


def test_bad_parameters_exit_2_and_run_nothing(books, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text("colour: red\n")
    assert main(["run", *map(str, books), "-f", str(params), "--out", str(tmp_path / "o")]) == 2
    assert "colour: no runbook has this parameter" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_repository_runbooks_are_discovered_in_order():
    names = [p.name for p in discover_notebooks()]
    assert names == sorted(names)
    assert names[:4] == [
        "00_huggingface_token.ipynb",
        "01_network_volume.ipynb",
        "02_vllm_endpoint.ipynb",
        "03_wake_and_sanity_chat.ipynb",
    ]


@pytest.mark.parametrize(
    "path", discover_notebooks(Path(__file__).resolve().parent.parent / "notebooks"), ids=lambda p: p.name
)
def test_papermill_reads_every_parameter_of_the_real_runbooks(path: Path):
    """papermill parses a parameters cell line by line and silently drops a line it cannot read (an ``=``
    inside a help comment did it: "Unable to parse line 30"); the dropped parameter would
    then be unknown to ``rpbook run`` and missing from ``rpbook params``."""
    import ast

    nb = nbformat.read(path, as_version=4)
    [cell] = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    declared = [
        node.target.id
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]
    assert declared and list(notebook_parameters(path)) == declared
