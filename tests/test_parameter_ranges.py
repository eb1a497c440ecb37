"""Every runbook parameter bounded, checked before anything costs (issue 20, successor of
``test_bad_inputs.py`` for parameter ranges).

Each parameter's range is declared once, beside its type in its runbook's ``parameters`` cell
(``rpbook.runbook.paramcheck``). The walk below takes every declared parameter of every runbook
through values outside its range and proves ``rpbook run``'s check refuses each one, naming the
parameter, the range and what to set; that check runs before any notebook starts, so nothing can be
created. A few representative cases then run through real notebook execution, the way JupyterLab and
nbmake run a runbook (papermill, no ``rpbook run`` in front), against a running localpod: the
runbook's first cell refuses, no resource appears and no worker starts (no billed second).
"""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from rpbook.core.errors import ConfigError
from rpbook.runbook.paramcheck import Declared, Spec, declared_parameters, parse_spec, split_help
from rpbook.runbook.runner import check_parameters, discover_notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = discover_notebooks(ROOT / "notebooks")
DECLARED: dict[Path, dict[str, Declared]] = {nb: declared_parameters(nb) for nb in NOTEBOOKS}
RUNPOD_KEY = "rpa_" + "K3Y" * 14
HF_TOKEN = "hf_" + "T0k" * 12


def _bad_scalars(spec: Spec, tmp: Path) -> list[Any]:
    """Values outside ``spec``."""
    if spec.kind == "range":
        assert spec.low is not None and spec.high is not None
        width = max(spec.high - spec.low, 1.0)
        values: list[Any] = [spec.low - width, spec.high + width, spec.high * 10**6 + 1, math.nan, math.inf, "1"]
        if spec.low > -1:
            values.append(-1)
        return values
    if spec.kind == "choice":
        return ["bogus", "", 1, [spec.choices[0]]] if "" not in spec.choices else ["bogus", 1]
    if spec.kind == "text":
        assert spec.high is not None
        return ["x" * (int(spec.high) + 1), *([""] if spec.low and spec.low > 0 else []), 7]
    if spec.kind == "file":
        return [str(tmp), str(tmp / "missing-folder" / "x.env"), 3]
    examples = {
        "name": ["x" * 192, "a\nb", " padded ", *([""] if not spec.empty_ok else [])],
        "repo": ["no-slash", "a/b/c", "x" * 300 + "/y"],
        "tag": ["latest", "LATEST", "has space"],
        "pool": ["ampere 24", "", "x" * 64],
        "data-center": ["nowhere", "eu-ro-1"],
        "secret-ref": ["{{ nope }}", "RUNPOD_SECRET_x"],
    }
    return [*examples[spec.name], 42]


def bad_values(d: Declared, tmp: Path) -> list[Any]:
    """Out-of-range values for one declared parameter (its type, then its range)."""
    base = d.type_name.removeprefix("Optional[").rstrip("]")
    values: list[Any] = [HF_TOKEN] if base == "str" else []
    if base == "bool":
        return ["yes", 1, None] if not d.type_name.startswith("Optional") else ["yes", 1]
    if d.spec is None:
        return values
    spec = d.spec
    if spec.kind == "list" and spec.item is not None:
        assert spec.low is not None and spec.high is not None
        good = ast.literal_eval(d.default)
        values += [[good[0]] * (int(spec.high) + 1), "not a list", {"a": 1}]
        if spec.low > 0:
            values.append([])
        values += [[item] for item in _bad_scalars(spec.item, tmp) if not isinstance(item, list)]
        values.append([RUNPOD_KEY])
        return values
    if spec.kind == "dict" and spec.item is not None:
        return [{"bogus_key": 2.0}, {spec.choices[0]: 1.0}, {spec.choices[0]: "x"}, [], {RUNPOD_KEY: 2.0}]
    return values + _bad_scalars(spec, tmp)


CASES = [(nb, d) for nb, params in DECLARED.items() for d in params.values()]


def test_every_parameter_declares_a_range_or_is_a_boolean() -> None:
    unbounded = [
        f"{nb.stem}.{d.name}"
        for nb, d in CASES
        if d.spec is None and "bool" not in d.type_name.removeprefix("Optional[")
    ]
    assert unbounded == []


def test_every_runbook_checks_its_parameters_in_its_first_code_cell() -> None:
    import nbformat

    for nb in NOTEBOOKS:
        cells = [c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code"]
        params = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        first = cells[params + 1].source
        assert f'session.check_parameters("{nb.stem}", globals())' in first, nb.name
        before = first.split("session.check_parameters", 1)[0]
        assert all(line.startswith(("from ", "import ")) or not line.strip() for line in before.splitlines()), nb.name


@pytest.mark.parametrize("notebook, declared", CASES, ids=[f"{nb.stem[:2]}-{d.name}" for nb, d in CASES])
def test_every_out_of_range_value_is_refused_before_anything_runs(
    notebook: Path, declared: Declared, tmp_path: Path
) -> None:
    values = bad_values(declared, tmp_path)
    assert values, f"no bad value generated for {declared.name}"
    accepted = []
    for value in values:
        try:
            check_parameters({declared.name: value}, [notebook])
        except ConfigError as exc:
            message = str(exc)
            assert declared.name in message, message
            assert HF_TOKEN not in message and RUNPOD_KEY not in message, message
            continue
        accepted.append(value)
    assert accepted == [], f"{declared.name} accepted {accepted!r}"


def test_the_defaults_and_the_shipped_parameter_files_pass() -> None:
    import yaml

    for params in sorted((ROOT / "params").glob("*.yaml")):
        check_parameters(yaml.safe_load(params.read_text()) or {}, NOTEBOOKS)
    for nb, d in CASES:
        default = None if d.default == "None" else ast.literal_eval(d.default)
        check_parameters({d.name: default}, [nb])


def test_errors_name_the_parameter_the_range_and_what_to_set() -> None:
    cases = [
        (("05_conversation_and_load", "load_route", "bogus"), "set one of 'chat', 'completions', 'queue'"),
        (("03_wake_and_sanity_chat", "wake_timeout_s", 0), "outside 10..7200; set a whole number from 10 to 7200"),
        (("04_embeddings_endpoint", "embedding_dimension", -1), "set a whole number from 0 to 65536"),
        (("01_network_volume", "vllm_image_tag", "latest"), "not 'latest'"),
        (("05_conversation_and_load", "conversation_turns", 0), "from 1 to 50"),
        (("05_conversation_and_load", "load_max_tokens", 0), "from 1 to 32768"),
        (("00_huggingface_token", "max_model_len", 10**12), "from 128 to 1048576"),
        (("06_plan_an_event", "grid_idle_timeout_s", [0]), "item 1"),
        (("99_teardown", "drain_timeout_s", -5), "from 1 to 3600"),
        (("07_health_history", "thresholds", {"bogus": 2.0}), "unknown key 'bogus'"),
        (("02_vllm_endpoint", "target", "bogus"), "set one of 'local', 'runpod'"),
        (("05_conversation_and_load", "local_time_scale", 0), "from 0.001 to 1"),
        (("06_plan_an_event", "event_attendees", 10**9), "from 1 to 50000"),
        (("02_vllm_endpoint", "env_file", str(ROOT)), "is a folder"),
    ]
    for (stem, name, value), expected in cases:
        with pytest.raises(ConfigError) as caught:
            check_parameters({name: value}, [ROOT / "notebooks" / f"{stem}.ipynb"])
        assert f"{name}: " in str(caught.value) and expected in str(caught.value), str(caught.value)


def test_the_range_format_is_read_from_the_help_and_papermill_still_reads_every_parameter() -> None:
    spec, rest = split_help("[1..3600] seconds a worker waits")
    assert spec is not None and (spec.low, spec.high, rest) == (1.0, 3600.0, "seconds a worker waits")
    assert parse_spec("1..8 of int 0..100").item == Spec("int 0..100", "range", 0.0, 100.0, whole=True)
    assert parse_spec('"" | local | runpod').choices == ("", "local", "runpod")
    assert parse_spec("name?").empty_ok
    with pytest.raises(ValueError, match="is empty"):
        parse_spec("5..1")
    import papermill

    for nb in NOTEBOOKS:  # papermill's own reading: every parameter with its type, nothing lost
        found = papermill.inspect_notebook(str(nb))
        assert set(found) == set(DECLARED[nb]) and all(p["inferred_type_name"] != "None" for p in found.values())


def test_a_huge_parameters_file_is_refused_at_once(tmp_path: Path, capsys: Any) -> None:
    from rpbook.runbook.cli import main

    big = tmp_path / "big.yaml"
    big.write_text("prompt: '" + "x" * (6 * 1024 * 1024) + "'\n")
    assert main(["run", str(NOTEBOOKS[0]), "-f", str(big), "--out", str(tmp_path / "out")]) == 2
    assert "at most 1048576 bytes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


REAL_CASES = [
    ("05_conversation_and_load", {"load_route": "bogus"}, "load_route"),
    ("04_embeddings_endpoint", {"embedding_dimension": -1}, "embedding_dimension"),
    ("01_network_volume", {"vllm_image_tag": "latest"}, "vllm_image_tag"),
]


def test_real_runbooks_refuse_in_their_first_cell_and_nothing_is_created_or_billed(
    isolated: Any, tmp_path: Path
) -> None:
    """Through papermill as JupyterLab and nbmake run a runbook (no ``rpbook run`` in front), with
    the runbooks' localpod running: the first cell refuses (the error is the parameter check's, not a
    later step's), no resource appears, no worker starts and no billed session opens."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from rpbook.runbook import session

    session.start("local")  # the running localpod the bad runbooks would talk to
    key = "rpa_LOCALPOD_DEV_KEY"

    def state() -> dict[str, Any]:
        answer = httpx.get(f"{isolated.url}/_localpod/state", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        answer.raise_for_status()
        return answer.json()

    before = state()
    for stem, parameters, name in REAL_CASES:
        with pytest.raises(PapermillExecutionError) as caught:
            papermill.execute_notebook(
                str(ROOT / "notebooks" / f"{stem}.ipynb"),
                str(tmp_path / f"{stem}.ipynb"),
                parameters=parameters,
                cwd=str(ROOT / "notebooks"),
                progress_bar=False,
                kernel_name="python3",
            )
        assert caught.value.ename == "ConfigError" and name in caught.value.evalue, caught.value.evalue
        assert "nothing was called or created" in caught.value.evalue
    after = state()
    for kind in ("templates", "endpoints", "volumes", "sessions"):
        assert after[kind] == before[kind], kind
    assert sum(len(runtime["workers"]) for runtime in after["live"].values()) == 0
    print(f"\nreal runbooks refused in their first cell: {len(REAL_CASES)}; worker sessions opened: 0", file=sys.stderr)
