"""Timing profiles: how long the emulated serverless platform takes for each step.

A cold start on Runpod is container start + model load, and model load is either a download from
the Hub (first worker on an empty network volume, or every start without a volume), a read from
the volume, or a read from the host's model cache (cached models), followed by the engine's own
initialisation. ``realistic`` is in the range users see on
Runpod for a 7B model (about two minutes for the first start); ``fast`` keeps the same shape in
about a second so tests and notebooks in CI stay quick. Every duration can be overridden at run time
through ``/_localpod/config``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

GB = 1_000_000_000

QUEUE_DELAY_READINGS = ("one_per_decision", "whole_queue")
"""How many workers one QUEUE_DELAY scaler decision starts. Runpod's docs do not say: today's
endpoint-configurations page says only that workers are added "if requests spend more than X seconds
in the queue"; an older text said "With zero workers initially, the first request adds one worker.
Subsequent requests add workers only after waiting in the queue" (runpod/docs, endpoint settings).
``one_per_decision`` (the default, the pessimistic reading): one worker per decision, at most one
decision per delay, and a starting worker counts as free capacity. ``whole_queue``: once the oldest
job has waited the delay, the scaler starts enough workers for every queued and running job at once
(``ceil((in queue + in progress) / concurrency)``). rpbook.planning.capacity plays both."""


@dataclass(frozen=True)
class Profile:
    """Durations (seconds) and bandwidths (bytes/second) of the emulated platform."""

    name: str
    container_start_s: float
    """Schedule a GPU, start the (cached) image."""
    flashboot_start_s: float
    """Restore a FlashBoot snapshot instead of a container start + model load."""
    flashboot_window_s: float
    """How long after a worker stops its FlashBoot snapshot stays usable."""
    engine_init_s: float
    """Engine start once weights are local (vLLM profiling, CUDA graphs, Infinity warm-up)."""
    download_bytes_per_s: float
    """Hub -> worker bandwidth for a model download."""
    volume_read_bytes_per_s: float
    """Network volume -> GPU read bandwidth for cached weights."""
    host_cache_read_bytes_per_s: float
    """Host model cache -> GPU read bandwidth for a cached model (``modelReferences``). Runpod's
    docs (serverless/endpoints/model-caching.mdx) say only that it loads "significantly faster than
    the same model loaded from a network volume": localpod assumes 2.5x the volume's bandwidth."""
    time_to_first_token_s: float
    """Prefill latency of the emulated text model."""
    inter_token_s: float
    """Decode latency per generated token."""
    scaler_tick_s: float
    """How often the autoscaler looks at the queue."""
    idle_timeout_scale: float = 1.0
    """Factor on every endpoint's idle timeout, so a runbook can play a conversation whose pauses
    outlast a 120 s idle timeout in seconds (0.01: 120 s become 1.2 s). Not a Runpod setting."""
    parking_step1_s: float = 3 * 86400.0
    """Idle parking, step 1: an endpoint without requests this long gets max workers lowered to 2
    (Runpod docs, serverless/endpoints/endpoint-configurations "Idle endpoint scale-down": 3 days).
    Tests scale it to seconds through ``/_localpod/config`` overrides."""
    parking_step2_s: float = 7 * 86400.0
    """Idle parking, step 2: max workers set to 0 (same docs page: 7 days); stays until raised."""
    queue_delay_reading: str = "one_per_decision"
    """How many workers a QUEUE_DELAY decision starts: one of :data:`QUEUE_DELAY_READINGS` (an
    assumption; Runpod's docs are silent). Not a duration: the one profile field that is a name."""
    unhealthy_retry_s: float = 7 * 86400.0
    """How long an UNHEALTHY worker keeps retrying before Runpod gives up on it (runpod/docs
    serverless/workers/overview.mdx, "Worker states": "auto-retries for up to 7 days")."""
    unhealthy_scale_down_s: float = 600.0
    """How long an endpoint may go on producing unhealthy workers (at least one UNHEALTHY, none
    ready) before Runpod scales it down (max workers to 0). The docs (serverless/troubleshooting.mdx,
    "My endpoint was scaled down unexpectedly") say Runpod does this when an endpoint "consistently
    produces unhealthy (crashing) workers" but give no threshold: 10 minutes is localpod's assumption."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, overrides: dict[str, Any]) -> Profile:
        """Return a copy with some durations replaced; unknown names are an error."""
        known = {f.name for f in fields(self)} - {"name"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        # every field but `name` (refused above) and the scaler reading is a duration in seconds; Any,
        # because mypy pairs a dict[str, float] with every field of Profile, `name: str` included
        clean: dict[str, Any] = {}
        for key, value in overrides.items():
            if key == "queue_delay_reading":
                if value not in QUEUE_DELAY_READINGS:
                    raise ValueError(
                        f"queue_delay_reading must be one of {', '.join(QUEUE_DELAY_READINGS)}, got {value!r}"
                    )
                clean[key] = str(value)
                continue
            clean[key] = float(value)
            if clean[key] < 0:
                raise ValueError(f"profile field {key} must be >= 0, got {value}")
        return replace(self, **clean)


REALISTIC = Profile(
    name="realistic",
    container_start_s=20.0,
    flashboot_start_s=3.0,
    flashboot_window_s=900.0,
    engine_init_s=25.0,
    download_bytes_per_s=0.2 * GB,
    volume_read_bytes_per_s=0.8 * GB,
    host_cache_read_bytes_per_s=2.0 * GB,
    time_to_first_token_s=0.15,
    inter_token_s=0.025,
    scaler_tick_s=0.5,
)

FAST = Profile(
    name="fast",
    container_start_s=0.2,
    flashboot_start_s=0.03,
    flashboot_window_s=900.0,
    engine_init_s=0.25,
    download_bytes_per_s=20 * GB,
    volume_read_bytes_per_s=80 * GB,
    host_cache_read_bytes_per_s=200 * GB,
    time_to_first_token_s=0.01,
    inter_token_s=0.001,
    scaler_tick_s=0.02,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (REALISTIC, FAST)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
