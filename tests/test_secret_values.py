"""Secret-looking values in declared parameters (issue 20): refused with exit 2 and masked in the
message; and scrubbed from every output path of a run (``summary.json``, the executed notebook,
``pending.json``) as a second line of defence, should one get past the check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpbook.core import secrets as secrets_module
from rpbook.core.secrets import looks_like_secret, mask_secret_like, scrub
from rpbook.runbook.cli import main
from rpbook.runbook.runner import run_notebooks, scrub_file
from test_rpbook_runner import make_notebook

RUNPOD_KEY = "rpa_" + "Q7ZX" * 10
HF_TOKEN = "hf_" + "aBcD" * 8 + "xy"
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "name, value",
    [
        ("hf_token_ref", HF_TOKEN),
        ("prompt", f"my key is {RUNPOD_KEY}, keep it"),
        ("endpoint_name", HF_TOKEN),
        ("gpu_pools", ["AMPERE_24", RUNPOD_KEY]),
        ("thresholds", {RUNPOD_KEY: 2.0}),
    ],
)
def test_a_secret_shaped_value_in_any_parameter_exits_2_masked(
    tmp_path: Path, capsys: Any, name: str, value: Any
) -> None:
    params = tmp_path / "p.yaml"
    params.write_text(json.dumps({name: value}))  # JSON is YAML
    notebooks = [str(p) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
    assert main(["run", *notebooks, "-f", str(params), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{name}: the value" in err and "looks like a Runpod API key or a Hugging Face token" in err
    assert RUNPOD_KEY not in err and HF_TOKEN not in err
    assert "…(" in err  # masked: the prefix and the length only
    assert not (tmp_path / "out").exists()


def test_the_shapes_and_what_is_not_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shapes only: secrets an earlier test registered (localpod's dev defaults, once read as the
    # session's keys) are "known" and refused on their own account.
    monkeypatch.setattr(secrets_module, "_KNOWN", set())
    assert looks_like_secret(HF_TOKEN) == HF_TOKEN and looks_like_secret({"a": [RUNPOD_KEY]}) == RUNPOD_KEY
    for harmless in ("hf_localpod_dev_token", "rpa_LOCALPOD_DEV_KEY", "mistralai/Mistral-7B-Instruct-v0.3", "hf_x"):
        assert looks_like_secret(harmless) is None, harmless
    assert mask_secret_like(f"a {HF_TOKEN} b") == "a hf_…(37 chars) b"
    assert RUNPOD_KEY not in scrub(f"key={RUNPOD_KEY}")


def test_every_output_of_a_run_is_scrubbed_even_if_a_secret_got_past_the_check(tmp_path: Path) -> None:
    """The notebook writes the secret itself (as a bug in a runbook would): summary.json, the
    executed notebook and pending.json still never hold it."""
    book = make_notebook(
        tmp_path / "00_leak.ipynb",
        'label: str = "x"  # a label',
        "import os\n"
        "from rpbook.core.pending import record_pending\n"
        f"print('oops {HF_TOKEN}')\n"
        f"record_pending('endpoint', '{RUNPOD_KEY}')\n"
        f"raise RuntimeError('failed with {RUNPOD_KEY}')",
    )
    summary = run_notebooks([book], {}, out_dir=tmp_path / "run", receipt=False)
    assert not summary.ok
    for written in (tmp_path / "run").iterdir():
        text = written.read_text(encoding="utf-8")
        assert HF_TOKEN not in text and RUNPOD_KEY not in text, written.name
    assert (tmp_path / "run" / "pending.json").exists() and (tmp_path / "run" / "summary.json").exists()
    assert "hf_…(37 chars)" in (tmp_path / "run" / "00_leak.ipynb").read_text()


def test_scrub_file_leaves_other_files_alone(tmp_path: Path) -> None:
    clean = tmp_path / "clean.txt"
    clean.write_text("nothing secret")
    before = clean.stat().st_mtime_ns
    scrub_file(clean)
    scrub_file(tmp_path / "missing")
    assert clean.stat().st_mtime_ns == before
