"""The history of scheduled checks (``rpbook.records.history``): appending runs, flags, the report, the CLI."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import nbformat
import pytest

from rpbook.core.errors import ConfigError
from rpbook.records.history import (
    Threshold,
    append_run,
    find_regressions,
    latest_regressions,
    load_history,
    parse_thresholds,
)
from rpbook.records.history_report import history_report
from rpbook.runbook.cli import main

NB = "03_wake_and_sanity_chat"


def fake_run(
    root: Path,
    day: int,
    *,
    ok: bool = True,
    cost: float | None = 0.02,
    image: str = "v2.25.2",
    target: str = "local",
    **figures: object,
) -> Path:
    """A run folder as ``rpbook run`` writes it: summary.json and one figures file (``day`` counts
    days from 2026-11-01, so long series run into December)."""
    from datetime import date, timedelta

    when = (date(2026, 11, 1) + timedelta(days=day - 1)).isoformat()
    run = root / when
    run.mkdir(parents=True)
    summary = {
        "run_dir": str(run),
        "ok": ok,
        "started_at": f"{when}T06:00:00+00:00",
        "ended_at": f"{when}T06:01:00+00:00",
        "parameters": {"target": target, "vllm_image_tag": image, "workers_max": 5},
        "receipt": None if cost is None else {"total_usd": cost, "line": "this run: ..."},
        "results": [],
    }
    (run / "summary.json").write_text(json.dumps(summary))
    base = {
        "cold": True,
        "wake_total_s": 60.0,
        "delay_time_ms": 58000,
        "ttft_s": 0.2,
        "tokens_per_s": 40.0,
        "endpoint_id": "abc123",
    }
    base.update(figures)
    (run / f"{NB}.figures.json").write_text(json.dumps(base))
    return run


def history_of(tmp_path: Path, runs: list[dict[str, object]]) -> Path:
    file = tmp_path / "history.sqlite"
    for day, figures in enumerate(runs, start=1):
        append_run(file, fake_run(tmp_path / "runs", day, **figures))  # type: ignore[arg-type]
    return file


def test_append_stores_run_and_figures_and_is_idempotent(tmp_path):
    file = tmp_path / "h" / "history.sqlite"
    run = fake_run(tmp_path, 1)
    first = append_run(file, run)
    assert first.ok and first.cost_usd == 0.02 and first.image_tags == {"vllm_image_tag": "v2.25.2"}
    assert first.workers_max == 5 and first.target == "local"
    assert first.figure("wake_total_s") == 60.0 and first.figure("cold") == 1.0
    assert first.texts[f"{NB}/endpoint_id"] == "abc123"
    append_run(file, run)  # a second append (after `rpbook receipt`, say) replaces, never duplicates
    assert len(load_history(file)) == 1
    with sqlite3.connect(file) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM figures").fetchone()[0] == 6


def test_append_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("no summary.json")):
        append_run(tmp_path / "h.sqlite", tmp_path)
    (tmp_path / "not.sqlite").write_text("plain text, not a database " * 20)
    with pytest.raises(ConfigError, match="not an rpbook history"):
        append_run(tmp_path / "not.sqlite", fake_run(tmp_path, 2))


def test_missing_history_is_empty_and_not_enough_runs_is_said(tmp_path):
    assert load_history(tmp_path / "none.sqlite") == []
    report = history_report([])
    assert not report.regressed and "not enough runs yet" in str(report)
    short = history_report(load_history(history_of(tmp_path, [{}, {"wake_total_s": 500.0}])))
    assert not short.regressed and "not enough runs yet" in short.headline()
    assert "<img" in short._repr_html_()


def test_slower_cold_start_is_flagged_only_in_that_run(tmp_path):
    runs = [{"wake_total_s": 60.0 + d % 3} for d in range(8)]
    runs[6] = {"wake_total_s": 130.0, "delay_time_ms": 128000}
    history = load_history(history_of(tmp_path, runs))
    flags = find_regressions(history)
    assert {f.run_dir for f in flags} == {history[6].run_dir}
    assert {f.figure for f in flags} == {"wake_total_s", "delay_time_ms"}
    assert "2.1x the median 61 of the 6 runs before" in next(f.detail for f in flags if f.figure == "wake_total_s")
    # the newest run is fine, so a cron check passes; the report still shows the old flag
    assert latest_regressions(history, flags) == []
    report = history_report(history)
    assert not report.regressed and "⚠" in report._repr_html_() and "2 flag(s) in the history" in str(report)


def test_warm_wakes_are_not_a_baseline_for_cold_starts(tmp_path):
    runs = [{"cold": False, "wake_total_s": 0.5, "delay_time_ms": 10}] * 5 + [{}]
    history = load_history(history_of(tmp_path, runs))
    flags = find_regressions(history)
    # 60 s against a 0.5 s warm median is no slow cold start; a cold start after warm runs is a lost hit
    assert [(f.run_dir, f.figure) for f in flags] == [(history[5].run_dir, "cold")]
    assert "were warm" in flags[0].detail


def test_throughput_down_ttft_and_cost_up_are_flagged(tmp_path):
    runs = [{"target": "runpod"}] * 5 + [{"target": "runpod", "tokens_per_s": 20.0, "ttft_s": 0.6, "cost": 0.05}]
    history = load_history(history_of(tmp_path, runs))
    report = history_report(history)
    assert report.regressed
    assert {f.figure for f in report.latest_flags} == {"tokens_per_s", "ttft_s", "cost_usd"}


def test_tokens_per_s_through_localpod_measures_the_machine_and_is_not_judged(tmp_path):
    """Issue 18: "tokens_per_s 747.9 is down to 47% the median 1591" after healthy local runs on a
    busy machine. Through localpod the "GPU" is this machine's CPU, so the figure is shown with
    its band and said to be left out of the verdict, never flagged in local mode."""
    runs = [{"tokens_per_s": 1591.0}] * 5 + [{"tokens_per_s": 747.9, "embeddings_per_s": 10.0}]
    report = history_report(load_history(history_of(tmp_path, runs)))
    assert report.flags == [] and not report.regressed
    assert report.not_judged == ["tokens_per_s", "embeddings_per_s"]
    assert "not judged in local mode (they measure this machine" in str(report)
    assert report.bands("tokens_per_s")[-1] is not None  # the band is still drawn


def test_small_absolute_changes_and_failed_baselines_are_ignored(tmp_path):
    # TTFT 10 ms -> 40 ms is x4 but below the 0.25 s minimum change: jitter, not a regression
    runs = [{"ttft_s": 0.01}] * 5 + [{"ttft_s": 0.04}]
    assert find_regressions(load_history(history_of(tmp_path / "a", runs))) == []
    # failed runs do not make the baseline: three fast failures then normal runs flag nothing
    runs2 = [{"ok": False, "wake_total_s": 5.0}] * 3 + [{}] * 6
    assert find_regressions(load_history(history_of(tmp_path / "b", runs2))) == []


def test_thresholds_and_window_are_parameters(tmp_path):
    runs = [{}] * 5 + [{"wake_total_s": 120.0}]
    history = load_history(history_of(tmp_path, runs))
    assert {f.figure for f in find_regressions(history)} == {"wake_total_s"}
    assert find_regressions(history, thresholds=parse_thresholds({"wake_total_s": 2.5})) == []
    assert find_regressions(history, min_runs=6) == []
    assert parse_thresholds({"tokens_per_s": 2.0})["tokens_per_s"].machine_bound
    custom = {"wake_total_s": Threshold(1.2, 0.0, cold_only=True)}
    assert len(find_regressions(history, thresholds=custom)) == 1
    with pytest.raises(ConfigError, match="factor above 1"):
        parse_thresholds({"ttft_s": 0.5})
    with pytest.raises(ConfigError, match="at least 1"):
        find_regressions(history, window=0)


def test_history_cli_check_exits_1_only_when_the_newest_run_regressed(tmp_path, capsys):
    good = history_of(tmp_path / "good", [{}] * 6)
    assert main(["history", "--check", str(good)]) == 0
    assert "in line with the recent median" in capsys.readouterr().out
    bad = history_of(tmp_path / "bad", [{}] * 5 + [{"wake_total_s": 200.0}])
    assert main(["history", str(bad)]) == 0
    assert main(["history", "--check", "--min-runs", "6", str(bad)]) == 0
    assert main(["history", "--check", str(bad)]) == 1
    assert "REGRESSION in the newest run: wake_total_s 200" in capsys.readouterr().out
    assert main(["history", str(tmp_path / "absent.sqlite")]) == 2


def test_rpbook_run_appends_to_the_history_beside_the_run(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('target: str = "local"  # where')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from rpbook.records.figures import record_figures\nrecord_figures('00_t', {'ttft_s': 0.1, 'cold': True})"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book = tmp_path / "00_t.ipynb"
    nbformat.write(nb, book)
    out = tmp_path / "runs" / "one"
    assert main(["run", str(book), "--out", str(out)]) == 0
    history = load_history(tmp_path / "runs" / "history.sqlite")
    assert [r.figure("ttft_s") for r in history] == [0.1]
    assert "appended to the history" in capsys.readouterr().out
    assert main(["run", str(book), "--out", str(tmp_path / "runs" / "two"), "--no-history"]) == 0
    assert len(load_history(tmp_path / "runs" / "history.sqlite")) == 1


NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "07_health_history.ipynb"


def test_runbook_07_says_not_enough_runs_and_fails_on_a_regression_when_asked(tmp_path):
    from rpbook.runbook.runner import run_notebooks

    empty = run_notebooks(
        [NOTEBOOK], {"history_file": str(tmp_path / "none.sqlite")}, out_dir=tmp_path / "a", receipt=False
    )
    assert empty.ok, str(empty)
    assert "not enough runs yet" in (tmp_path / "a" / NOTEBOOK.name).read_text()
    assert not (tmp_path / "none.sqlite").exists()  # reading never creates a history
    bad = history_of(tmp_path / "h", [{}] * 5 + [{"wake_total_s": 200.0}])
    shown = run_notebooks([NOTEBOOK], {"history_file": str(bad)}, out_dir=tmp_path / "b", receipt=False)
    assert shown.ok, str(shown)
    text = (tmp_path / "b" / NOTEBOOK.name).read_text()
    assert "REGRESSION in the newest run" in text and "image/png" in text
    failing = run_notebooks(
        [NOTEBOOK], {"history_file": str(bad), "fail_on_regression": True}, out_dir=tmp_path / "c", receipt=False
    )
    assert not failing.ok and "RegressionError: REGRESSION in the newest run: wake_total_s 200" in str(
        failing.results[0].error
    )


def test_run_folder_is_read_in_one_place_by_records_history_and_receipt(tmp_path):
    """rpbook.records.runfolder reads what rpbook run leaves: a figures file asked for by name must be valid,
    a folder's figures skip a damaged file (it loses its own figures, not the run), and the summary
    gives the run's times."""
    from datetime import datetime

    from rpbook.records import figures as records
    from rpbook.records import receipt, runfolder

    run = fake_run(tmp_path, 1)
    (run / "05_broken.figures.json").write_text("{not json")
    (run / "06_list.figures.json").write_text("[1, 2]")
    assert list(runfolder.run_figures(run)) == [NB]
    assert records.load_figures is runfolder.load_figures
    with pytest.raises(ConfigError, match="not valid JSON"):
        runfolder.load_figures(run / "05_broken.figures.json")
    with pytest.raises(ConfigError, match=r"not a|JSON object"):
        runfolder.load_figures(run / "06_list.figures.json")
    assert records.record_figures("07_new", {"x": 1}, run_dir=run) == runfolder.figures_path(run.resolve(), "07_new")
    assert runfolder.run_figures(run)["07_new"] == {"x": 1}
    summary = runfolder.read_summary(run)
    assert runfolder.run_times(run, summary) == (
        datetime.fromisoformat("2026-11-01T06:00:00+00:00"),
        datetime.fromisoformat("2026-11-01T06:01:00+00:00"),
    )
    with pytest.raises(ConfigError, match="with its times"):
        runfolder.run_times(run, {"started_at": "yesterday"})
    with pytest.raises(ConfigError, match=re.escape("no summary.json")):
        receipt.receipt_for_run_dir(tmp_path / "empty")
    # the history keeps what the folder's figures hold, the damaged files left out
    stored = append_run(tmp_path / "h.sqlite", run)
    assert stored.figures[f"{NB}/ttft_s"] == 0.2 and stored.figures["07_new/x"] == 1.0
    assert not any(key.startswith(("05_broken/", "06_list/")) for key in stored.figures)
