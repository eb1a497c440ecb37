"""Idle parking days-left and warnings (``rpbook.records.parking``), from the history of scheduled checks.

Rule: Runpod docs serverless/endpoints/endpoint-configurations, "Idle endpoint scale-down" (runpod/docs
PR #674): 3 days without requests -> max workers 2, 7 days -> 0, until raised.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rpbook.records.history import load_history
from rpbook.records.history_report import history_report
from rpbook.records.parking import parking_from_history, parking_status
from test_rpbook_history import NB, fake_run

NOW = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)


def test_days_left_before_each_step_from_a_last_request():
    status = parking_status("ep1", NOW - timedelta(days=1, hours=12), now=NOW)
    assert [(w, round(d, 2)) for w, d in status.days_left()] == [(2, 1.5), (0, 5.5)]
    assert status.parked_to is None and status.warning is None
    assert "1.5 d to max workers 2" in str(status) and "5.5 d to max workers 0" in str(status)


def test_passed_steps_say_what_runpod_set_and_how_to_undo_it():
    step1 = parking_status("ep1", "2026-11-06T00:00:00", now=NOW)  # naive = UTC, 4.25 days
    assert step1.parked_to == 2 and step1.days_left()[0][1] == 0.0
    assert "max workers to 2" in (step1.warning or "") and "PATCH workers.max" in (step1.warning or "")
    step2 = parking_status("ep1", NOW - timedelta(days=8), now=NOW)
    assert step2.parked_to == 0 and [d for _, d in step2.days_left()] == [0.0, 0.0]


def test_history_per_endpoint_and_warning_when_only_the_check_pings(tmp_path):
    from rpbook.records.history import append_run

    file = tmp_path / "history.sqlite"
    append_run(file, fake_run(tmp_path / "runs", 7, endpoint_id="epA"))
    append_run(file, fake_run(tmp_path / "runs", 8, ok=False, endpoint_id="epA"))  # failed runs still ping
    append_run(file, fake_run(tmp_path / "runs", 5, endpoint_id="epB"))
    append_run(file, fake_run(tmp_path / "runs", 2, endpoint_id="epOld"))
    runs = load_history(file)
    runs = [r if r.texts.get(f"{NB}/endpoint_id") != "epB" else replace(r, target="runpod") for r in runs]
    statuses = {s.endpoint: s for s in parking_from_history(runs, now=NOW)}
    assert set(statuses) == {"epA", "epB"}  # epOld: not woken by its target's newest run any more
    a, b = statuses["epA"], statuses["epB"]
    assert a.last_request_at == datetime(2026, 11, 8, 6, 0, tzinfo=UTC)
    assert round(a.days_left()[0][1], 2) == 1.0 and round(b.days_left()[0][1], 2) == 0.0
    assert a.only_scheduled and "only the scheduled check's own pings" in (a.warning or "")
    assert b.parked_to == 2  # epB's last ping was 5 days ago

    recent = parking_from_history(runs, now=NOW, other_requests={"epA": NOW - timedelta(hours=5)})
    a = next(s for s in recent if s.endpoint == "epA")
    assert not a.only_scheduled and a.warning is None
    assert round(a.days_left()[0][1], 2) == round(3 - 5 / 24, 2)
    stale = parking_from_history(runs, now=NOW, other_requests={"epA": NOW - timedelta(days=4)})
    assert next(s for s in stale if s.endpoint == "epA").only_scheduled


def test_history_report_shows_parking(tmp_path):
    from rpbook.records.history import append_run

    file = tmp_path / "history.sqlite"
    append_run(file, fake_run(tmp_path / "runs", 1, endpoint_id="epA"))
    report = history_report(load_history(file))
    assert [p.endpoint for p in report.parking] == ["epA"]
    assert "idle parking" in str(report) and "epA" in str(report)
    assert "Idle parking" in report._repr_html_()
