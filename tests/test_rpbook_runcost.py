"""This run's own cost (issue 18 item 2) and failed runs' receipts (issue 20 item 4).

Runpod bills in hourly buckets per endpoint (REST v2 ``/v2/billing/serverless``), so two runs in one
hour share a bucket; the receipt attributes to each run its own workers' billed seconds × price
(``rpbook.records.runcost``: workers listed through ``GET /v2/serverless/{id}/workers`` while the run
ran; Runpod docs ``serverless/pricing.mdx``: per second, start to full stop, idle timeout included)
and shows the bucket's total beside it. The end-to-end tests run real notebooks through
``rpbook.runbook.runner`` against the test localpod and compare with localpod's own billing sessions.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from conftest import call_in_server
from rpbook.account.jobqueue import health
from rpbook.account.resources import GpuType
from rpbook.records.history import append_run, load_history
from rpbook.records.runcost import EndpointTerms, endpoint_names, own_cost
from rpbook.runbook.runner import run_notebooks

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
T0 = datetime(2026, 12, 7, 9, 10, tzinfo=UTC)
GPUS = [
    GpuType(id="a5000", name="A5000", pool="AMPERE_24", memory_gb=24, serverless_price_hr=0.72),
    GpuType(id="4090", name="4090", pool="ADA_24", memory_gb=24, serverless_price_hr=1.08),
]


def seen(worker_id: str, endpoint_id: str, started_s: float, last_s: float, gpu: str = "a5000") -> dict[str, object]:
    return {
        "endpoint_id": endpoint_id,
        "worker_id": worker_id,
        "started_at": (T0 + timedelta(seconds=started_s)).isoformat(),
        "first_seen": (T0 + timedelta(seconds=max(0.0, started_s))).isoformat(),
        "last_seen": (T0 + timedelta(seconds=last_s)).isoformat(),
        "gpu_type_id": gpu,
        "gpu_count": 1,
    }


def test_the_rule_counts_the_runs_own_worker_seconds():
    """A worker started during the run counts whole (per-second rounding up); one already up on an
    endpoint the run used counts from the run's start; one already up on an endpoint it never used
    is someone else's; a worker still up at the end gets the idle timeout after the run's end,
    except on an endpoint with active workers (those bill anyway). Each at its own GPU's price."""
    observation = {
        "still_listed": ["w-tail", "w-active"],
        "workers": [
            seen("w-new", "ep1", 10.2, 40.0),  # 29.8 s -> 30 billed s at $0.72/h
            seen("w-before", "ep1", -300, 20.0, gpu="4090"),  # from 0 s to 20 s at $1.08/h
            seen("w-other", "ep2", -300, 50.0),  # not the run's
            seen("w-tail", "ep1", 30.0, 60.0),  # still up: 30 s to 60 s (end) + 5 s idle timeout
            seen("w-active", "ep3", 5.0, 60.0),  # still up, but ep3 keeps active workers: no tail
        ],
    }
    terms = {
        "ep1": EndpointTerms(("AMPERE_24",), 5, 0),
        "ep2": EndpointTerms(("AMPERE_24",), 5, 0),
        "ep3": EndpointTerms(("AMPERE_24",), 5, 1),
    }
    own = own_cost(observation, T0, T0 + timedelta(seconds=60), terms, GPUS, used=["ep1"])
    assert {w["worker_id"]: w["billed_s"] for w in own.per_worker} == {
        "w-new": 30,
        "w-before": 20,
        "w-tail": 35,
        "w-active": 55,
    }
    assert own.usd == pytest.approx(round((30 + 35 + 55) * 0.72 / 3600 + 20 * 1.08 / 3600, 6))
    assert own.tail_s == 5 and "4 worker(s), 140 billed s, incl. 5 s of idle timeout" in own.describe()


def test_the_endpoints_a_run_names_are_watched():
    parameters = {"endpoint_name": "a", "embeddings_endpoint_name": "b", "template_name": "t", "x_endpoint_name": ""}
    assert endpoint_names(parameters) == ["a", "b"]


# -- end to end --------------------------------------------------------------------------------------

WAKE = """
import os
from rpbook.account import wakeup
from rpbook.account.controlplane import RunpodClient
from rpbook.account.plans import find_endpoint_id
from rpbook.core.settings import load_settings
from rpbook.records.figures import record_figures

settings = load_settings("local", env_file=os.environ["RPBOOK_ENV_FILE"])
key = settings.runpod_api_key()
endpoint_id = find_endpoint_id(RunpodClient(settings, key), endpoint_name)
wake = wakeup.wake(settings, key, endpoint_id, timeout_s=60, poll_s=0.05, progress=False)
if fail_after_wake:
    raise RuntimeError("the check failed after waking the endpoint")
record_figures("00_wake", {"endpoint_id": endpoint_id, **wake.figures})
"""


@pytest.fixture
def wake_notebook(tmp_path: Path, settings, localpod, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOCALPOD_URL", localpod.base_url)
    monkeypatch.setenv("RPBOOK_ENV_FILE", str(tmp_path / ".env"))
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'target: str = "local"  # where\nendpoint_name: str = ""  # which\nfail_after_wake: bool = False  # fail'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(WAKE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book = tmp_path / "00_wake.ipynb"
    nbformat.write(nb, book)
    return book


def _wait_until_stopped(settings, endpoint_id: str) -> None:  # type: ignore[no-untyped-def]
    key = settings.runpod_api_key()
    deadline = time.monotonic() + 60
    while health(settings, key, endpoint_id).billing_workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not health(settings, key, endpoint_id).billing_workers


def _sessions_cost(localpod, endpoint_id: str, since: float, until: float) -> float:  # type: ignore[no-untyped-def]
    """localpod's own billing of the sessions that started in [since, until): whole seconds × price."""
    state = localpod.control("GET", "state").json()
    return sum(
        math.ceil(round(s["stopped_at"] - s["started_at"], 6)) * s["price_per_gpu_s"] * s["gpu_count"]
        for s in state["sessions"]
        if s["endpoint_id"] == endpoint_id and since <= s["started_at"] < until
    )


def test_two_runs_in_one_bucket_each_cost_their_own_workers(
    tmp_path, settings, localpod, plant_endpoint, wake_notebook
):
    """The first run's worker idles 15 s after it, the second's 3 s: the bucket holds both, the
    second run's figure only its own (its projected idle tail overshoots by at most the idle
    timeout, its sampling by a second)."""
    endpoint = plant_endpoint(
        image=VLLM_IMAGE, name="cost-check", idle_timeout=15, env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token}
    )
    runs = []
    for name, idle_timeout in (("run1", 15), ("run2", 3)):
        call_in_server(localpod, setattr, localpod.ctx.store.endpoints[endpoint.id], "idle_timeout", idle_timeout)
        summary = run_notebooks([wake_notebook], {"endpoint_name": "cost-check"}, out_dir=tmp_path / name)
        assert summary.ok, str(summary)
        _wait_until_stopped(settings, endpoint.id)
        runs.append(summary)
    first, second = runs
    started = [datetime.fromisoformat(r.started_at).timestamp() for r in runs]
    receipt = second.receipt or {}
    own = _sessions_cost(localpod, endpoint.id, started[1], math.inf)
    first_cost = _sessions_cost(localpod, endpoint.id, started[0], started[1])
    price_s = own / max(1, sum(w["billed_s"] for w in receipt["run_workers"]))
    assert first_cost > 10 * price_s  # the first run's worker billed at least its 15 s idle timeout
    assert receipt["run_workers"] and {w["endpoint_id"] for w in receipt["run_workers"]} == {endpoint.id}
    assert own - 2 * price_s <= receipt["run_usd"] <= own + 4 * price_s, (receipt["run_usd"], own)
    assert f"this run: ${receipt['run_usd']:.4f} (its own workers: 1 worker(s)" in receipt["line"]
    assert "billing 20" in receipt["line"]
    if (first.receipt or {})["window_start"] == receipt["window_start"]:
        # one bucket: its total holds the first run too (and the second's billed part so far)
        assert receipt["endpoints_usd"][endpoint.id] >= first_cost - 1e-6
        assert "of which this run ≈" in receipt["line"] or "idle tail still to come" in receipt["line"]
    # the history keeps the run's own figure
    stored = append_run(tmp_path / "history.sqlite", second.run_dir)
    assert stored.cost_usd == receipt["run_usd"]
    assert json.loads((Path(second.run_dir) / "receipt.json").read_text())["run_usd"] == receipt["run_usd"]
    assert [r.cost_usd for r in load_history(tmp_path / "history.sqlite")] == [receipt["run_usd"]]


def test_a_failed_run_has_what_it_woke_in_its_receipt(tmp_path, settings, localpod, plant_endpoint, wake_notebook):
    """Issue 20 item 4: a run that fails after waking workers (before recording any figure) used to
    say "this run: $0 (it recorded no endpoint or volume)"."""
    endpoint = plant_endpoint(
        image=VLLM_IMAGE, name="cost-fail", idle_timeout=10, env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token}
    )
    summary = run_notebooks(
        [wake_notebook], {"endpoint_name": "cost-fail", "fail_after_wake": True}, out_dir=tmp_path / "failed"
    )
    assert not summary.ok and "the check failed after waking" in str(summary)
    receipt = summary.receipt or {}
    assert "$0 (" not in receipt["line"], receipt["line"]
    assert endpoint.id in receipt["endpoints_usd"]
    assert receipt["run_usd"] > 0 and receipt["run_workers"][0]["endpoint_id"] == endpoint.id
    _wait_until_stopped(settings, endpoint.id)
    assert _sessions_cost(localpod, endpoint.id, 0, math.inf) > 0
