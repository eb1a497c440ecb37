"""Runbook 05's clock on localpod: pauses, idle timeouts and cold starts played faster, restored after.

Runbook 05 shows what keep-alive is worth: a conversation whose pauses outlast the endpoint's idle
timeout meets a cold start at every turn unless something keeps a worker warm. Played at Runpod's
speed that takes minutes, so on localpod every *waiting* part of Runpod's clock is played
``time_scale`` times as long: the pauses, the idle timeout (localpod's ``idle_timeout_scale``) and
the cold start. The cold start played is :data:`RUNPOD_7B_COLD_START` times ``time_scale``; without
it a worker would come back in localpod's own (fast) time and a cold turn would look barely slower
than a warm one. What a person waits for *inside* a turn, the time to first token and between
tokens, is injected at its real value (``ttft_s``, ``itl_s``): it is what the load test measures.

:class:`LocalTimings` is one context manager that sets all of it and puts localpod's own values
back: at ``with``'s end, at :meth:`LocalTimings.restore`, at the end of the first notebook cell
that fails (:func:`rpbook.core.person.on_failed_cell`, so a failed cell of runbook 05 cannot leave a
persistent localpod on the runbook's clock), on SIGTERM/SIGHUP (:mod:`rpbook.core.restore`) and at
interpreter exit. On Runpod it changes nothing.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from types import TracebackType

from rpbook.account.jobqueue import _as_secret
from rpbook.core import restore
from rpbook.core.person import on_failed_cell
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings

RUNPOD_7B_COLD_START: dict[str, float] = {
    "container_start_s": 20.0,
    "engine_init_s": 25.0,
    "volume_read_bytes_per_s": 0.8e9,
    "download_bytes_per_s": 0.2e9,
    "flashboot_start_s": 3.0,
}
"""A 7B model's cold start on Runpod, by phase: schedule and start the cached image (20 s), read the
weights from the network volume (0.8 GB/s: Mistral-7B-Instruct-v0.3's 14.5 GB in about 18 s; from
the Hub at 0.2 GB/s when the volume does not hold them), start vLLM (25 s, profiling and CUDA
graphs): about a minute. These are localpod's ``realistic`` profile (lib/localpod/profiles.py), an
assumption: Runpod's docs give no figure (serverless/overview.mdx: container start, model load and
runtime init; model-caching.mdx: "seconds instead of minutes" with cached models), and
runpod-workers/worker-vllm issue #111 reports one to two minutes for an 8B model with FlashBoot on.
A FlashBoot restore (3 s, same source) is kept in the table, but runbook 05 plays no FlashBoot hit
(``flashboot_window_s`` 0): Runpod restores a snapshot only on a host that holds one, and the start
a keep-alive insures against is the full one."""

WEIGHTS_7B_BYTES = 14.5e9
"""Mistral-7B-Instruct-v0.3's weights (bf16), the model of the runbooks, for the figure shown."""

_SCALED_DURATIONS = ("container_start_s", "engine_init_s", "flashboot_start_s")
_SCALED_BANDWIDTHS = ("volume_read_bytes_per_s", "download_bytes_per_s")


def scaled_profile(time_scale: float, ttft_s: float, itl_s: float) -> dict[str, float]:
    """The localpod profile overrides that play Runpod's waiting ``time_scale`` times as long:
    idle timeout and cold start scaled (bandwidths divided), no FlashBoot hit, TTFT and
    inter-token time at their real values."""
    if not 0 < time_scale <= 1:
        raise ValueError(f"time_scale must be in (0, 1], got {time_scale}")
    overrides = {name: RUNPOD_7B_COLD_START[name] * time_scale for name in _SCALED_DURATIONS}
    overrides.update({name: RUNPOD_7B_COLD_START[name] / time_scale for name in _SCALED_BANDWIDTHS})
    overrides.update(
        idle_timeout_scale=time_scale, flashboot_window_s=0.0, time_to_first_token_s=ttft_s, inter_token_s=itl_s
    )
    return overrides


class LocalTimings:
    """Runbook 05's clock (see the module docstring): a context manager, entered once.

    ``with LocalTimings(...) as timings:`` in a script; in a notebook, :func:`local_timings` enters
    it in one cell and the last cell calls :meth:`restore`, while a failing cell in between restores
    it by itself."""

    def __init__(
        self, settings: Settings, api_key: Secret | str, *, time_scale: float, ttft_s: float, itl_s: float
    ) -> None:
        self.settings = settings
        self.api_key = _as_secret(api_key)
        self.local = settings.target == "local"
        self.time_scale = float(time_scale) if self.local else 1.0
        self.overrides = scaled_profile(time_scale, ttft_s, itl_s) if self.local else {}
        self.previous: dict[str, float] = {}
        self._entered = False
        self._on_signal: restore.Registration | None = None
        self._forget_cells: Callable[[], None] | None = None

    def __enter__(self) -> LocalTimings:
        if self._entered or not self.local:
            return self
        from rpbook.core.localpod_control import set_profile_overrides

        self.previous = set_profile_overrides(self.settings, self.api_key, self.overrides)
        self._entered = True
        atexit.register(self.restore)
        self._on_signal = restore.register("localpod's own timings (runbook 05's scaled clock)", self.restore)
        self._forget_cells = on_failed_cell(self._after_failed_cell)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()

    @property
    def active(self) -> bool:
        """True while localpod plays the runbook's clock."""
        return bool(self.previous)

    def restore(self) -> None:
        """Put localpod's own timings back (idempotent)."""
        forget, self._forget_cells = self._forget_cells, None
        if forget is not None:
            forget()
        if self._on_signal is not None:
            restore.unregister(self._on_signal)
            self._on_signal = None
        atexit.unregister(self.restore)
        if not self.previous:
            return
        from rpbook.core.localpod_control import set_profile_overrides

        previous, self.previous = self.previous, {}
        set_profile_overrides(self.settings, self.api_key, previous)

    def _after_failed_cell(self) -> None:
        self.restore()
        print("a cell failed: localpod's own timings are restored (the runbook's scaled clock is off)")

    def __str__(self) -> str:
        if not self.local:
            return "timings: real (no scaling)"
        c = RUNPOD_7B_COLD_START
        full_s = c["container_start_s"] + WEIGHTS_7B_BYTES / c["volume_read_bytes_per_s"] + c["engine_init_s"]
        return (
            f"timings: localpod plays Runpod's waiting {1 / self.time_scale:g}x faster: pauses, idle timeouts and "
            f"cold starts (a 7B cold start on Runpod, container {c['container_start_s']:g} s + "
            f"{WEIGHTS_7B_BYTES / 1e9:g} GB of weights from the volume + vLLM start {c['engine_init_s']:g} s = "
            f"{full_s:.0f} s, plays in {full_s * self.time_scale:.2g} s; no FlashBoot hit). Time to first token "
            f"{self.overrides['time_to_first_token_s'] * 1000:g} ms and between tokens "
            f"{self.overrides['inter_token_s'] * 1000:g} ms play at real speed. Durations and costs below are of "
            "the scaled run."
        )


def local_timings(
    settings: Settings, api_key: Secret | str, *, time_scale: float, ttft_s: float, itl_s: float
) -> LocalTimings:
    """Enter runbook 05's clock for the rest of a notebook and return it (see :class:`LocalTimings`);
    on Runpod nothing changes."""
    timings = LocalTimings(settings, api_key, time_scale=time_scale, ttft_s=ttft_s, itl_s=itl_s).__enter__()
    print(timings)
    return timings
