"""Runbook 06's planner: traffic, service times, the grid, the SLO choice, the Pareto front, the plans.

The simulation engine itself (``rpbook.planning.capacity``) is checked in tests/test_rpbook_capacity.py and
against localpod in tests/test_capacity_localpod.py; here: what feeds it and what is made of its rows.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rpbook.account.controlplane import RunpodClient
from rpbook.account.quota import AccountQuota, PlannedMax, check_quota
from rpbook.account.resources import Endpoint, GpuType
from rpbook.core.errors import ConfigError, WorkerQuotaError
from rpbook.endpoint.loadtest_result import SLO as LoadSLO
from rpbook.endpoint.loadtest_result import LoadShape, LoadTestResult, RequestRecord
from rpbook.planning import capacity, eventchoice, eventgrid, eventinputs, eventsettings, eventtraffic, servicetimes

SMALL = eventtraffic.EventShape(
    attendees=60,
    duration_s=1800.0,
    peak_share=0.5,
    ramp_up_s=300.0,
    ramp_down_s=300.0,
    turns=4,
    think_time_s=20.0,
    answer_s=4.0,
    prompt_tokens=200,
    answer_tokens=100,
)


# -- traffic ------------------------------------------------------------------------------------


def test_event_traffic_is_seeded_and_follows_the_trapezoid() -> None:
    event = eventtraffic.EventShape()  # the runbook's question: 300 people, 2 h, a third at the peak
    a, b, c = (eventtraffic.from_event(event, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.answer_tokens, b.answer_tokens)
    assert not np.array_equal(a.arrival_s, c.arrival_s)
    assert np.all(np.diff(a.arrival_s) >= 0) and a.arrival_s[0] >= 0 and a.arrival_s[-1] < event.duration_s
    # Plateau (minutes 30-90): open conversations / (answer + think) requests per second, within 5 %.
    plateau = np.mean((a.arrival_s >= 1800) & (a.arrival_s < 5400)) * len(a) / 3600
    assert plateau == pytest.approx(event.peak_rate_per_s, rel=0.05)
    # Ramps: the first and last five minutes carry far less than the plateau.
    first = np.sum(a.arrival_s < 300) / 300
    last = np.sum(a.arrival_s >= event.duration_s - 300) / 300
    assert first < 0.5 * plateau and last < 0.5 * plateau
    # Tokens: lognormal around the stated means.
    assert np.mean(a.prompt_tokens) == pytest.approx(event.prompt_tokens, rel=0.05)
    assert np.mean(a.answer_tokens) == pytest.approx(event.answer_tokens, rel=0.05)
    assert a.peak_rate_per_s() >= plateau


@pytest.mark.parametrize(
    "field,value",
    [
        ("attendees", 0),
        ("peak_share", 0.0),
        ("peak_share", 1.5),
        ("turns", 0),
        ("ramp_up_s", 7000.0),
        ("think_time_s", -1.0),
    ],
)
def test_bad_event_descriptions_say_what_to_fix(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field.split("_s")[0] if field != "ramp_up_s" else "ramp"):
        eventtraffic.EventShape(**{field: value})


def _loadtest_json(tmp_path, records):  # type: ignore[no-untyped-def]
    """A load-test result written by rpbook.endpoint.loadtest itself, so the format is the real one."""
    result = LoadTestResult(
        "ep1",
        "chat",
        LoadShape("closed", concurrency=4, num_requests=len(records)),
        LoadSLO(),
        64,
        records,
        [],
        0.01,
        {"rpbook": "test"},
        0.0,
    )
    return result.save(tmp_path, "05_loadtest")["json"]


def _record(i, sent, conc, ttft, tpot, **kw):  # type: ignore[no-untyped-def]
    return RequestRecord(
        index=i,
        route="chat",
        warmup=kw.pop("warmup", False),
        sent_s=sent,
        concurrency_at_send=conc,
        cold=kw.pop("cold", False),
        e2el_s=ttft + 63 * tpot,
        ttft_s=ttft,
        tpot_s=tpot,
        output_tokens=64,
        **kw,
    )


def test_load_test_gives_arrivals_and_measured_service_levels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = [_record(0, 0.0, 1, 9.0, 9.0, warmup=True)]
    records += [_record(i, 1.0 + 0.1 * i, 4, 0.2 + 0.01 * i, 0.02) for i in range(1, 9)]
    records += [_record(i, 2.0 + 0.1 * i, 8, 0.5, 0.04) for i in range(9, 13)]
    records += [_record(13, 3.0, 8, 30.0, 0.04, cold=True), _record(14, 3.1, 8, 0.5, 0.04, error="5xx")]
    path = _loadtest_json(tmp_path, records)

    arrivals = eventtraffic.from_loadtest(path)
    assert len(arrivals) == 14 and arrivals.arrival_s[0] == 0.0  # the warm-up is left out, times shifted to 0
    assert set(arrivals.answer_tokens) == {64}
    tiled = eventtraffic.from_loadtest(path, repeat_to_s=60.0)
    # The load test lasted 34.4 s (its slowest request ends then): two copies fit in 60 s.
    assert len(tiled) == 2 * len(arrivals) and tiled.arrival_s[-1] < 60.0 and tiled.duration_s == 60.0

    model = servicetimes.from_loadtest(path)
    assert [lv.concurrency for lv in model.levels] == [4, 8]
    assert model.level(8).ttft_p50_s == pytest.approx(0.5)  # the cold 30 s and the failed one are left out
    assert model.level(5).concurrency == 4 and model.level(7).concurrency == 8
    requests = model.draw(arrivals, 4, seed=3)
    assert set(np.round(requests.ttft_s, 6)) <= set(np.round(model.level(4).ttft_s, 6))  # resampled, not invented
    assert np.allclose(requests.duration_s, requests.ttft_s + 63 * 0.02)
    assert "measured by runbook 05" in model.describe(4)


def test_missing_or_empty_inputs_say_where_to_get_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="run runbook 05"):
        eventtraffic.from_loadtest(tmp_path / "none.json")
    with pytest.raises(ConfigError, match="fewer than 3"):
        servicetimes.from_loadtest(_loadtest_json(tmp_path, [_record(0, 0.0, 1, 0.1, 0.01, cold=True)]))
    with pytest.raises(ConfigError, match="no prior for GPU pool"):
        servicetimes.prior("TPU_V5")
    with pytest.raises(ConfigError, match="does not exist"):
        eventinputs.find_loadtest(str(tmp_path / "missing.json"))
    assert eventinputs.find_loadtest("", run_dir=tmp_path / "empty") is None
    assert eventinputs.find_loadtest("", run_dir=tmp_path) == tmp_path / "05_loadtest.json"


def test_trace_of_seconds_or_date_times(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seconds = tmp_path / "s.csv"
    seconds.write_text("arrival_s,answer_tokens\n5.0,10\n1.0,20\n3.5,30\n")
    trace = eventtraffic.from_trace(seconds)
    assert list(trace.arrival_s) == [0.0, 2.5, 4.0] and list(trace.answer_tokens) == [20, 30, 10]
    stamps = tmp_path / "t.csv"
    stamps.write_text("timestamp\n2026-11-30T09:00:00Z\n2026-11-30T09:00:01.5Z\n")
    assert list(eventtraffic.from_trace(stamps).arrival_s) == [0.0, 1.5]
    bad = tmp_path / "b.csv"
    bad.write_text("time\nsoon\n")
    with pytest.raises(ConfigError, match="line 2"):
        eventtraffic.from_trace(bad)


def test_priors_state_their_source_and_draw_tokens_times_tpot() -> None:
    published = servicetimes.prior("ADA_24")
    assert "mushfiqrahman.dev" in published.source and "ASSUMPTION" not in published.source
    assert published.level(8).ttft_p50_s == pytest.approx(0.055) and published.level(8).tpot_p50_s == pytest.approx(
        8 / 377
    )
    assumed = servicetimes.prior("AMPERE_80")
    assert "ASSUMPTION" in assumed.source
    arrivals = eventtraffic.from_event(SMALL, seed=0)
    requests = published.draw(arrivals, 8, seed=0)
    assert len(requests.arrival_s) == len(arrivals)
    implied_tpot = (requests.duration_s - requests.ttft_s) / np.maximum(arrivals.answer_tokens - 1, 1)
    assert np.median(implied_tpot[arrivals.answer_tokens > 1]) == pytest.approx(8 / 377, rel=0.1)
    assert "much longer" in published.describe(
        8, eventtraffic.from_event(eventtraffic.EventShape(prompt_tokens=2000), seed=0)
    )


def test_cold_start_from_a_localpod_profile_or_the_stated_assumptions() -> None:
    prior = servicetimes.cold_start(weights_bytes=16e9)
    assert prior.model_load_s == pytest.approx(20.0) and prior.container_start_s == 20.0
    local = servicetimes.cold_start(
        {
            "container_start_s": 0.2,
            "engine_init_s": 0.25,
            "flashboot_start_s": 0.03,
            "flashboot_window_s": 900.0,
            "scaler_tick_s": 0.02,
            "volume_read_bytes_per_s": 80e9,
        },
        weights_bytes=16e9,
    )
    assert local.model_load_s == pytest.approx(0.2) and local.scaler_tick_s == 0.02


# -- grid, prices, choice -----------------------------------------------------------------------


def test_grid_skips_more_active_than_max_and_refuses_bad_values() -> None:
    settings = eventgrid.grid(workers_max=[1, 3], workers_min=[0, 2], idle_timeout_s=[5], scaler_value=[4, 15])
    assert len(settings) == 6 and all(s.workers_min <= s.workers_max for s in settings)
    with pytest.raises(ConfigError, match="scaler_type"):
        eventgrid.grid(workers_max=[1], scaler_type="GPU_UTIL")
    # each grid parameter is checked as a whole; the error names the runbook's parameter and the bad values
    for kwargs, message in [
        ({"workers_max": [0]}, "grid_workers_max: 0; give a list of int values, each at least 1"),
        ({"workers_max": [-1, 3]}, "grid_workers_max: -1;"),
        ({"workers_max": [2.5]}, "grid_workers_max: 2.5;"),
        ({"workers_max": ["5"]}, "grid_workers_max: '5';"),
        ({"workers_max": [True]}, "grid_workers_max: True;"),
        ({"workers_max": []}, "grid_workers_max: no value;"),
        ({"workers_max": [3], "workers_min": [-1]}, "grid_workers_min: -1;"),
        ({"workers_max": [3], "idle_timeout_s": [math.nan]}, "grid_idle_timeout_s: nan;"),
        # the API's bounds (REST v2 spec, rpbook.account.endpointscaling): idle timeout 1-3600 whole
        # seconds, queue delay >= 0.5 s, request count a whole number >= 1
        ({"workers_max": [3], "idle_timeout_s": [0]}, "grid_idle_timeout_s: 0; give a list of int values, each from 1"),
        ({"workers_max": [3], "idle_timeout_s": [3601]}, "grid_idle_timeout_s: 3601;"),
        ({"workers_max": [3], "idle_timeout_s": [2.5]}, "grid_idle_timeout_s: 2.5;"),
        (
            {"workers_max": [3], "scaler_value": [0]},
            "grid_scaler_value: 0; give a list of float values, each at least 0.5",
        ),
        ({"workers_max": [3], "scaler_value": [0.4, 4]}, "grid_scaler_value: 0.4;"),
        (
            {"workers_max": [3], "scaler_value": [1.5], "scaler_type": "REQUEST_COUNT"},
            "grid_scaler_value: 1.5; give a list of int values, each at least 1",
        ),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            eventgrid.grid(**kwargs)


def test_prices_take_the_dearest_pool_times_gpus() -> None:
    gpus = [
        GpuType("a", "A", "AMPERE_24", 24, 0.684),
        GpuType("b", "B", "ADA_24", 24, 1.116),
        GpuType("c", "C", "AMPERE_80", 80, 2.736),
    ]
    quote = eventinputs.prices_from_catalog(gpus, ["AMPERE_24", "ADA_24"], 2)
    assert quote.pool == "ADA_24" and quote.prices.flex_usd_per_s == pytest.approx(2 * 1.116 / 3600)
    assert quote.prices.active_usd_per_s == quote.prices.flex_usd_per_s  # upper bound: no discount in the catalog
    discounted = eventinputs.prices_from_catalog(gpus, ["ADA_24"], 1, active_discount=0.2)
    assert discounted.prices.active_usd_per_s == pytest.approx(0.8 * 1.116 / 3600)
    with pytest.raises(ConfigError, match="no serverless price"):
        eventinputs.prices_from_catalog(gpus, ["HOPPER_141"])


def _row(cost: float, ttft: float, wait: float = 0.0, timed_out: int = 0) -> dict:  # type: ignore[type-arg]
    return {"cost_usd": cost, "ttft_p95_s": ttft, "wait_p95_s": wait, "timed_out": timed_out}


def test_pareto_front_and_the_cheapest_setting_meeting_the_slos() -> None:
    rows = [_row(10, 0.5), _row(4, 9.0), _row(6, 1.5), _row(7, 2.0), _row(6, 1.8), _row(12, 0.4), _row(5, 1.9, 3.0)]
    front = eventchoice.pareto_front(rows)
    assert [(r["cost_usd"], r["ttft_p95_s"]) for r in front] == [(4, 9.0), (5, 1.9), (6, 1.5), (10, 0.5), (12, 0.4)]
    chosen, ok = eventchoice.choose(rows, eventchoice.SLO(p95_ttft_s=2.0, p95_wait_s=1.0))
    assert ok and chosen["cost_usd"] == 6 and chosen["ttft_p95_s"] == 1.5  # the $5 one waits 3 s in the queue
    timed_out = [_row(1, 0.1, timed_out=1), _row(3, 0.2)]
    assert eventchoice.choose(timed_out, eventchoice.SLO())[0]["cost_usd"] == 3
    closest, ok = eventchoice.choose(rows, eventchoice.SLO(p95_ttft_s=0.1, p95_wait_s=0.0))
    assert not ok and closest["ttft_p95_s"] == 0.4


def test_plan_end_to_end_on_a_small_event() -> None:
    arrivals = eventtraffic.from_event(SMALL, seed=4)
    requests = servicetimes.prior("ADA_24").draw(arrivals, 4, seed=4)
    cold = servicetimes.cold_start()
    prices = capacity.Prices(flex_usd_per_s=0.00031, active_usd_per_s=0.00031)
    candidates = eventgrid.grid(
        workers_max=[1, 2, 4], workers_min=[0, 1], idle_timeout_s=[5, 120], scaler_value=[4], concurrency=4
    )
    slo = eventchoice.SLO(p95_ttft_s=2.0, p95_wait_s=1.0)
    result = eventchoice.plan(requests, candidates, cold, prices, slo=slo, processes=1, timeline_step_s=60.0)
    assert len(result.rows) == len(candidates)
    assert result.meets_slo and slo.met(result.chosen)
    budget = eventchoice.budget_usd
    cheaper = [r for r in result.rows if budget(r) < budget(result.chosen)]
    assert not any(slo.met(r) for r in cheaper)  # nothing cheaper (at the higher of its two costs) meets the SLOs
    for row in result.rows:  # every metric is filled in from the engine's row
        assert all(np.isfinite(row[k]) or np.isinf(row[k]) for k in eventchoice.METRIC_KEYS)
        assert row["worker_hours"] > 0 and row["cost_usd"] > 0
    # Active workers bill the whole event at least.
    active = [r for r in result.rows if r["workers_min"] == 1]
    assert all(r["worker_hours"] >= SMALL.duration_s / 3600 * 0.99 for r in active)
    assert result.chosen in result.front or not any(
        r["cost_usd"] <= result.chosen["cost_usd"] and r["ttft_p95_s"] < result.chosen["ttft_p95_s"]
        for r in result.rows
    )
    assert result.timeline is not None and result.timeline.cost_so_far[-1] == pytest.approx(
        result.chosen["cost_usd"], rel=0.05
    )
    html = result._repr_html_()
    assert "◀ chosen" in html and "cheapest setting meeting" in html
    assert "<img" in result.pareto_plot()._repr_html_() and "<img" in result.timeline_plot()._repr_html_()
    # text/plain, which a headless run also records: words, not the dataclass dump or the PNG's base64
    assert repr(result) == result.headline() and "rows=" not in repr(result)
    assert repr(result.pareto_plot()).startswith("cost vs p95 time to first token") and "base64" not in repr(
        result.timeline_plot()
    )
    figures = result.figures
    assert figures["event_meets_slo"] is True and figures["event_requests"] == len(arrivals)
    json.dumps(figures)


# -- the endpoint plans -------------------------------------------------------------------------

EVENT_SETTINGS = {
    "workers_min": 1,
    "workers_max": 8,
    "idle_timeout_s": 5.0,
    "scaler_type": "QUEUE_DELAY",
    "scaler_value": 4.0,
}
"""The event's settings both endpoint-plan tests apply to an endpoint planted with min 0, max 5,
idle 120 s and a 15 s queue delay."""


def test_a_stop_signal_while_the_event_settings_go_in_sets_the_pre_event_ones_back(
    localpod,
    plant_endpoint,
    settings,  # type: ignore[no-untyped-def]
    monkeypatch,
):
    """Issue 20 item 1: SIGTERM/SIGHUP during phase "event" restores the endpoint before the process
    ends (``rpbook.core.restore`` runs what ``apply_event`` registered). The signal is played as the
    handler would run it, right after the event's update went in."""
    from rpbook.core import restore

    ep = plant_endpoint(gpu_pools=["ADA_24"], workers_min=0, workers_max=5, idle_timeout=120, scaler_value=15)
    key = settings.runpod_api_key()
    chosen = dict(EVENT_SETTINGS)
    restore_file = eventsettings.restore_file_for(settings, ep.name)
    real_apply = eventsettings.apply_plan
    seen: list[list[str]] = []

    def apply_then_signal(client, plan):  # type: ignore[no-untyped-def]
        real_apply(client, plan)
        if plan is plans.during:
            seen.append(restore.pending())
            restore.run_all("SIGTERM")

    monkeypatch.setattr(eventsettings, "apply_plan", apply_then_signal)
    with RunpodClient(settings, key) as client:
        plans = eventsettings.event_plans(client.get_endpoint(ep.id), chosen, restore_file=restore_file)
        eventsettings.apply_event(client, plans, do_apply=True)
        back = client.get_endpoint(ep.id)
    assert seen == [[f"runbook 06's event settings on endpoint {ep.name}"]]
    assert (back.workers_min, back.workers_max, back.idle_timeout_s, back.scaler_value) == (0, 5, 120, 15)
    assert not restore_file.exists() and restore.pending() == []


def test_event_plan_is_a_diff_applied_only_with_apply_and_restored_after(
    localpod,
    plant_endpoint,
    settings,  # type: ignore[no-untyped-def]
    tmp_path,
):
    ep = plant_endpoint(gpu_pools=["ADA_24"], workers_min=0, workers_max=5, idle_timeout=120, scaler_value=15)
    key = settings.runpod_api_key()
    chosen = dict(EVENT_SETTINGS)
    restore_file = eventsettings.restore_file_for(settings, ep.name)
    with RunpodClient(settings, key) as client:
        facts = eventinputs.endpoint_facts(
            client,
            ep.name,
            gpu_pools=["AMPERE_24"],
            gpu_count=1,
            max_concurrency=3,
            execution_timeout_s=600,
            flashboot=True,
        )
        assert facts.endpoint is not None and facts.gpu_pools == ("ADA_24",)
        plans = eventsettings.event_plans(facts.endpoint, chosen, restore_file=restore_file)
        assert plans.during.action == "update"
        # display() records repr as text/plain in a headless run: the plans, not a dataclass dump
        assert repr(plans) == str(plans) and "PosixPath(" not in repr(plans) and "saved=" not in repr(plans)
        assert {c.field: (c.actual, c.wanted) for c in plans.during.changes} == {
            "workers_min": (0, 1),
            "workers_max": (5, 8),
            "idle_timeout_s": (120, 5),
            "scaler_value": (15, 4.0),
        }
        assert {c.field: c.wanted for c in plans.restore.changes} == {
            "workers_min": 0,
            "workers_max": 5,
            "idle_timeout_s": 120,
            "scaler_value": 15,
        }

        assert "not applied" in eventsettings.apply_event(client, plans, do_apply=False)
        assert client.get_endpoint(ep.id).workers_max == 5 and not restore_file.exists()

        assert "applied" in eventsettings.apply_event(client, plans, do_apply=True)
        now = client.get_endpoint(ep.id)
        assert (now.workers_min, now.workers_max, now.idle_timeout_s, now.scaler_value) == (1, 8, 5, 4)
        # Planning again during the event keeps the pre-event settings as the ones to restore.
        again = eventsettings.event_plans(now, chosen, restore_file=restore_file)
        assert again.during.action == "none" and {c.field for c in again.restore.changes} == {
            "workers_min",
            "workers_max",
            "idle_timeout_s",
            "scaler_value",
        }

        plan, message = eventsettings.restore_saved(client, restore_file, do_apply=True)
        assert "restored" in message and plan.action == "update"
        back = client.get_endpoint(ep.id)
        assert (back.workers_min, back.workers_max, back.idle_timeout_s, back.scaler_value) == (0, 5, 120, 15)
        assert not restore_file.exists()
        with pytest.raises(ConfigError, match="phase"):
            eventsettings.restore_saved(client, restore_file, do_apply=True)
        missing = eventinputs.endpoint_facts(
            client,
            "no-such-endpoint",
            gpu_pools=["AMPERE_24"],
            gpu_count=2,
            max_concurrency=3,
            execution_timeout_s=600,
            flashboot=True,
        )
        assert missing.endpoint is None and missing.gpu_count == 2 and missing.concurrency == 3


def test_a_phase_typo_is_refused_before_any_call():
    """Runbook 06 checks ``phase`` in its first cell: "evnet" must not fall through to a plan-only run
    that looks like success, nor reach the endpoint."""
    from rpbook.planning.eventsettings import PHASES, check_phase

    assert [check_phase(p) for p in PHASES] == list(PHASES)
    with pytest.raises(ConfigError, match="phase must be one of 'plan', 'event', 'restore', got 'evnet'"):
        check_phase("evnet")


def _small_plan(**kw):  # type: ignore[no-untyped-def]
    arrivals = eventtraffic.from_event(SMALL, seed=4)
    requests = servicetimes.prior("ADA_24").draw(arrivals, 4, seed=4)
    prices = capacity.Prices(flex_usd_per_s=0.00031, active_usd_per_s=0.00031)
    grid_kw = {"workers_max": [1, 2, 4], "idle_timeout_s": [5, 120], "scaler_value": [4], "concurrency": 4}
    grid_kw.update(kw.pop("grid", {}))
    candidates = eventgrid.grid(**grid_kw)
    slo = kw.pop("slo", eventchoice.SLO(p95_ttft_s=2.0, p95_wait_s=1.0))
    return eventchoice.plan(
        requests, candidates, servicetimes.cold_start(), prices, slo=slo, processes=1, timeline_step_s=60.0, **kw
    )


def test_every_setting_is_simulated_under_both_queue_delay_readings() -> None:
    """Issue 17 item 4: the main columns are the one-worker-per-decision reading, the whole-queue
    reading sits beside them, the choice meets the SLOs under both, and the assumption is stated."""
    result = _small_plan()
    for row in result.rows:
        other = row["whole_queue"]
        assert set(eventchoice.METRIC_KEYS) <= set(other)
        # more workers at once never makes people wait longer on these requests (no throttling)
        assert other["wait_p95_s"] <= row["wait_p95_s"] + 1e-9
    assert any(r["whole_queue"]["wait_p95_s"] < r["wait_p95_s"] for r in result.rows)  # the readings differ
    assert result.meets_slo and result.slo.met_by(result.chosen) and result.slo.met_by(result.chosen["whole_queue"])
    html = result._repr_html_()
    assert "whole queue: TTFT p95" in html and "Runpod&#x27;s docs do not say how many workers" in html
    assert "pessimistic reading" in result.headline()
    figures = result.figures
    assert figures["event_budget_usd"] == round(
        max(result.chosen["cost_usd"], result.chosen["whole_queue"]["cost_usd"]), 4
    )
    # REQUEST_COUNT follows the docs' formula: both readings are the same simulation
    counted = _small_plan(grid={"scaler_type": "REQUEST_COUNT", "scaler_value": [2]})
    assert all(r["whole_queue"] == {k: r[k] for k in r["whole_queue"]} for r in counted.rows)


def _quota(max_workers: int, others: dict[str, int]):  # type: ignore[no-untyped-def]
    """The quota check runbook 06 builds (``eventinputs.quota_checker``), over a stated quota and
    the account's other endpoints."""
    quota = AccountQuota(max_workers, f"account_max_workers = {max_workers}", stated=True)
    endpoints = [Endpoint.from_api({"id": f"id{n}", "name": n, "workers": {"max": m}}) for n, m in others.items()]
    return lambda wmax: check_quota(quota, endpoints, [PlannedMax("mistral-7b-vllm", wmax, "grid_workers_max")])


def test_settings_over_the_worker_quota_are_marked_and_never_chosen() -> None:
    """Issue 17 item 1 (runbook 06's part): with another endpoint holding 2 of a quota of 5, max 4
    needs 6 and is marked; the plan states the quota it needs."""
    result = _small_plan(quota=_quota(5, {"bge-small-embeddings": 2}))
    by_max = {r["workers_max"]: r for r in result.rows}
    assert by_max[4]["quota_ok"] is False and by_max[4]["quota_needed"] == 6
    assert by_max[2]["quota_ok"] is True and by_max[2]["quota_needed"] == 4
    assert result.chosen["workers_max"] <= 3
    assert result.quota is not None and result.quota.ok
    line = result.quota_line()
    assert f"needs {2 + result.chosen['workers_max']} max workers across all endpoints" in line
    assert "the quota is 5 (account_max_workers = 5)" in line
    assert "✗ quota (6)" in result.all_settings_html()
    assert result.figures["event_quota_needed"] == 2 + result.chosen["workers_max"]


def test_the_cheapest_setting_over_the_quota_is_named_not_taken_and_none_fitting_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Only max 4 meets a tight SLO; the quota does not allow it: the plan says what it passed over.
    tight = eventchoice.SLO(p95_ttft_s=1.2, p95_wait_s=0.3)
    unlimited = _small_plan(slo=tight)
    best = unlimited.chosen
    assert unlimited.meets_slo
    limited = _small_plan(slo=tight, quota=_quota(int(best["workers_max"]) - 1, {}))
    assert limited.chosen["workers_max"] < best["workers_max"]
    assert limited.quota_passed_over is not None
    assert "not chosen (raise the quota to use it)" in limited.quota_line()
    # Nothing fits (another endpoint already holds the whole quota): said loudly, and never applied.
    none = _small_plan(quota=_quota(3, {"other": 3}))
    assert none.quota is not None and not none.quota.ok
    assert none.headline().startswith("NO setting of the grid fits the account's worker quota (3)")
    assert "lower max workers of the account's other endpoints" in none.quota_line()
    endpoint = Endpoint.from_api(
        {
            "id": "ep1",
            "name": "mistral-7b-vllm",
            "workers": {"min": 0, "max": 1, "idleTimeout": 120},
            "scaling": {"type": "QUEUE_DELAY", "queueDelay": 15},
        }
    )
    plans = eventsettings.event_plans(endpoint, none.chosen, restore_file=tmp_path / "restore.json")
    assert plans.during.action == "update"
    with pytest.raises(WorkerQuotaError, match="Max workers across all endpoints must not exceed your workers quota"):
        eventsettings.apply_event(None, plans, do_apply=True, quota=none.quota)  # type: ignore[arg-type]
    assert not (tmp_path / "restore.json").exists()  # refused before anything was written
