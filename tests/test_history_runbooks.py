"""Issue 13's done-when: ten scheduled runs of runbook 03 against localpod, one with a slower cold
start, make a history in which exactly that run is flagged, and a plot.

Each run is made cold the way a daily check finds the endpoint (no worker up): scale to zero,
wait until no worker bills, then give the workers back. After the first run the workers
start from a FlashBoot snapshot (localpod keeps it for its FlashBoot window, as Runpod does); the
slow run's worker start takes 10 s, FlashBoot restore or full start alike, through localpod's
profile overrides (``PATCH /_localpod/config``), as a slower image would. Runs are taken without
a cost receipt (``tests/test_rpbook_runcost.py`` covers the run's own cost in the history).

Independent of machine speed (issue 18): the figures that measure the machine (tokens/s through
localpod) are not judged in local mode, and the judged ones sit far from their floors on a busy
machine — measured with two CPU-bound processes beside runbook 03 (``benchmarks/history_false_alarms.py``):
cold starts ~0.5 s against a 5 s floor, TTFT ~0.02-0.04 s against 0.25 s — while the slow run adds
20 s to its cold start.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import Isolated
from rpbook.account.billing_now import scale_to_zero
from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import health
from rpbook.account.plans import find_endpoint_id
from rpbook.core.localpod_control import set_profile_overrides
from rpbook.core.settings import load_settings
from rpbook.records.history import append_run, load_history
from rpbook.records.history_report import history_report, plot_html
from rpbook.runbook.cli import main
from rpbook.runbook.runner import discover_notebooks, load_parameters, run_notebooks

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PARAMS = ROOT / "params" / "local.yaml"
RUNS, SLOW = 10, 6

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_ten_scheduled_runs_flag_exactly_the_slow_cold_start(isolated: Isolated):
    parameters = load_parameters([LOCAL_PARAMS])
    books = {p.name[:2]: p for p in discover_notebooks()}
    setup = run_notebooks(
        [books["00"], books["01"], books["02"]], parameters, out_dir=isolated.root / "setup", receipt=False
    )
    assert setup.ok, str(setup)
    settings = load_settings("local", env_file=isolated.env_file)
    key = settings.runpod_api_key()
    with RunpodClient(settings, key) as client:
        endpoint_id = find_endpoint_id(client, parameters["endpoint_name"])
        workers_max = client.get_endpoint(endpoint_id).workers_max
    history_file = isolated.root / "runs" / "history.sqlite"
    run_dirs = []
    for index in range(RUNS):
        previous = (
            set_profile_overrides(settings, key, {"flashboot_start_s": 10.0, "engine_init_s": 10.0})
            if index == SLOW
            else None
        )
        scale_to_zero(settings, key, endpoint_id)
        deadline = time.monotonic() + 60
        while health(settings, key, endpoint_id).billing_workers and time.monotonic() < deadline:
            time.sleep(0.1)
        with RunpodClient(settings, key) as client:
            client.update_endpoint(endpoint_id, {"workers": {"min": 0, "max": workers_max}})
        try:
            summary = run_notebooks(
                [books["03"]], parameters, out_dir=isolated.root / "runs" / f"run{index:02d}", receipt=False
            )
        finally:
            if previous is not None:
                set_profile_overrides(settings, key, previous)
        assert summary.ok, str(summary)
        append_run(history_file, summary.run_dir)
        run_dirs.append(str(Path(summary.run_dir).resolve()))

    history = load_history(history_file)
    assert [r.run_dir for r in history] == run_dirs
    assert all(r.figure("cold") == 1.0 for r in history), [r.figure("cold") for r in history]
    report = history_report(history)
    assert "tokens_per_s" in report.not_judged  # it measures this machine in local mode
    assert {f.run_dir for f in report.flags} == {run_dirs[SLOW]}, str(report)
    assert "wake_total_s" in {f.figure for f in report.flags}
    assert not report.regressed  # the newest run is fine again
    assert plot_html(report).startswith("<img")
    assert main(["history", "--check", str(history_file)]) == 0
