"""Runbook 05's clock on localpod (rpbook.endpoint.timings): pauses, idle timeouts and cold starts
played on one scaled clock, and localpod's own profile back whatever ends the runbook.

The cold start played is a 7B model's on Runpod (``RUNPOD_7B_COLD_START``, localpod's ``realistic``
profile) times the runbook's ``time_scale``; localpod sleeps its phases (serverless/coldstart.py), so
the played container start + engine start is a floor of every cold turn's TTFT, however busy the
machine: the figures below are lower bounds only.
"""

from __future__ import annotations

import nbformat
import pytest

from rpbook.account.wakeup import wake
from rpbook.core.settings import load_settings
from rpbook.endpoint.conversation import compare_strategies
from rpbook.endpoint.timings import RUNPOD_7B_COLD_START, LocalTimings, scaled_profile

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
SCALE = 0.01


@pytest.fixture
def key(settings):  # type: ignore[no-untyped-def]
    return settings.runpod_api_key()


def profile(localpod) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return dict(localpod.control("GET", "config").json()["profile"])


def test_the_scaled_profile_scales_waiting_and_keeps_token_times_real() -> None:
    p = scaled_profile(SCALE, ttft_s=0.15, itl_s=0.025)
    assert p["container_start_s"] == pytest.approx(20.0 * SCALE) and p["engine_init_s"] == pytest.approx(25.0 * SCALE)
    assert p["volume_read_bytes_per_s"] == pytest.approx(0.8e9 / SCALE)
    assert p["idle_timeout_scale"] == SCALE and p["flashboot_window_s"] == 0.0
    assert (p["time_to_first_token_s"], p["inter_token_s"]) == (0.15, 0.025)
    with pytest.raises(ValueError, match="time_scale"):
        scaled_profile(0, ttft_s=0.15, itl_s=0.025)


def test_keepalive_strategies_differ_as_on_runpod(localpod, plant_endpoint, settings, key):  # type: ignore[no-untyped-def]
    """Two-minute pauses against a 120 s idle timeout, all on the 0.01 clock: without keep-alive every
    turn after a pause waits a (scaled) 7B cold start; ping and pin keep every turn warm."""
    ep = plant_endpoint(
        image=VLLM_IMAGE,
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": localpod.hf_token},
        idle_timeout=120,
        gpu_pools=["ADA_24"],
        workers_max=2,
        flashboot="FLASHBOOT",
    )
    before = profile(localpod)
    with LocalTimings(settings, key, time_scale=SCALE, ttft_s=0.05, itl_s=0.005) as timings:
        assert profile(localpod)["container_start_s"] == pytest.approx(0.2)
        wake(settings, key, ep.id, poll_s=0.02, progress=False)
        comparison = compare_strategies(
            settings, key, ep.id, MISTRAL, pause_s=150, prompts=("a", "b", "c"), max_tokens=4, time_scale=SCALE
        )
    assert profile(localpod) == before and not timings.active
    off, ping, pin = comparison.reports
    floor_s = (RUNPOD_7B_COLD_START["container_start_s"] + RUNPOD_7B_COLD_START["engine_init_s"]) * SCALE
    assert [t.cold for t in off.turns] == [False, True, True]
    assert all(t.ttft_s >= floor_s for t in off.turns[1:])  # no FlashBoot hit played: the full start
    assert [t.cold for t in ping.turns] == [False, False, False] and len(ping.keepalive.pings) >= 1
    assert [t.cold for t in pin.turns] == [False, False, False] and pin.keepalive.pinned_s > 0


def test_timings_are_restored_when_the_with_block_raises(localpod, settings, key):  # type: ignore[no-untyped-def]
    before = profile(localpod)

    def failing_step() -> None:
        with LocalTimings(settings, key, time_scale=SCALE, ttft_s=0.2, itl_s=0.02):
            assert profile(localpod)["idle_timeout_scale"] == SCALE
            raise RuntimeError("a step failed")

    with pytest.raises(RuntimeError, match="a step failed"):
        failing_step()
    assert profile(localpod) == before


def test_the_first_failing_cell_restores_and_cells_that_pass_do_not(localpod, settings, key):  # type: ignore[no-untyped-def]
    """IPython's ``post_run_cell`` hook, in a real (in-process) IPython shell: cells that pass keep
    the runbook's clock; the first that raises puts localpod's profile back, and the hook is gone."""
    from IPython.core.interactiveshell import InteractiveShell

    before = profile(localpod)
    shell = InteractiveShell.instance()
    try:
        shell.user_ns.update(settings=settings, key=key)
        shell.run_cell(
            "from rpbook.endpoint.timings import local_timings\n"
            "timings = local_timings(settings, key, time_scale=0.01, ttft_s=0.2, itl_s=0.02)"
        )
        assert shell.run_cell("x = 1").success and profile(localpod)["idle_timeout_scale"] == SCALE
        assert not shell.run_cell("raise RuntimeError('a cell fails')").success
        assert profile(localpod) == before and not shell.user_ns["timings"].active
        assert shell.user_ns["timings"]._forget_cells is None and not shell.events.callbacks["post_run_cell"]
    finally:
        InteractiveShell.clear_instance()


def test_timings_change_nothing_on_runpod(tmp_path, key) -> None:  # type: ignore[no-untyped-def]
    runpod = load_settings("runpod", env_file=tmp_path / ".env")
    with LocalTimings(runpod, key, time_scale=SCALE, ttft_s=0.2, itl_s=0.02) as timings:
        assert timings.time_scale == 1.0 and not timings.active
    assert str(timings) == "timings: real (no scaling)"


def test_a_failing_notebook_cell_restores_localpod_own_timings(localpod, settings, key, tmp_path):  # type: ignore[no-untyped-def]
    """The way runbook 05 uses it: entered in one cell, restored by the last; a cell in between that
    raises (papermill stops there) restores localpod's profile by itself."""
    import papermill

    before = profile(localpod)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from rpbook.core.settings import load_settings\n"
            "from rpbook.endpoint.timings import local_timings\n"
            f"settings = load_settings('local', env_file={str(settings.env_file)!r}, "
            f"localpod_url={settings.localpod_url!r})\n"
            "timings = local_timings(settings, settings.runpod_api_key(), time_scale=0.01, ttft_s=0.2, itl_s=0.02)\n"
            "assert timings.active"
        ),
        nbformat.v4.new_code_cell("raise RuntimeError('a runbook cell fails')"),
        nbformat.v4.new_code_cell("timings.restore()"),
    ]
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(papermill.PapermillExecutionError, match="a runbook cell fails"):
        papermill.execute_notebook(str(source), str(executed), kernel_name="python3", progress_bar=False)
    assert profile(localpod) == before
