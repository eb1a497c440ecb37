"""How long a worker takes to become ready, and why.

Runpod's cold start is container start plus model load. The weights come from the Hub on the
first start on an empty network volume (and on every start without one), from the volume after
that; FlashBoot restores a recent snapshot instead. A cached model (the endpoint's
``modelReferences``) comes from the host's own model cache: Runpod's docs
(``serverless/endpoints/model-caching.mdx``) start workers "on hosts that already contain the
selected model", and when none is free they delay the start "until the model is downloaded onto the
machine where your workers will run, ensuring you still won't be charged for the download time".
So a cached model never adds download seconds to a worker's (billed) start: localpod plays the
first case, a host that holds it (the unbilled wait of the second is not emulated).

Keeping the arithmetic here, apart from the worker's state machine, lets tests and the benchmark
check the figures against the profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localpod import hubdata
from localpod.profiles import Profile


@dataclass
class ColdStartPlan:
    """The phases of one worker start, in seconds, with what each one reads."""

    container_s: float = 0.0
    download_s: float = 0.0
    volume_read_s: float = 0.0
    host_cache_read_s: float = 0.0
    engine_s: float = 0.0
    flashboot: bool = False
    downloaded: list[str] = field(default_factory=list)
    """Repos fetched from the Hub in this start (they land on the volume, if any)."""
    from_host_cache: list[str] = field(default_factory=list)
    """Repos read from the host's model cache (cached models): never downloaded in this start."""

    @property
    def model_read_s(self) -> float:
        """Seconds reading weights that are already on the host or its volume."""
        return self.volume_read_s + self.host_cache_read_s

    @property
    def total_s(self) -> float:
        return self.container_s + self.download_s + self.model_read_s + self.engine_s

    def describe(self) -> str:
        if self.flashboot:
            return f"FlashBoot restore {self.container_s:.2f}s"
        parts = [f"container {self.container_s:.2f}s"]
        if self.download_s:
            parts.append(f"download {self.download_s:.2f}s ({', '.join(self.downloaded)})")
        if self.volume_read_s:
            parts.append(f"volume read {self.volume_read_s:.2f}s")
        if self.host_cache_read_s:
            parts.append(f"cached model read {self.host_cache_read_s:.2f}s ({', '.join(self.from_host_cache)})")
        parts.append(f"engine init {self.engine_s:.2f}s")
        return ", ".join(parts)


def plan_cold_start(
    profile: Profile,
    repos: list[str],
    cached_on_volume: set[str] | None,
    flashboot_snapshot: bool,
    cached_on_host: set[str] | None = None,
) -> ColdStartPlan:
    """Plan a start. ``cached_on_volume`` is None without a network volume; ``cached_on_host`` are
    the endpoint's cached models (repo ids from its ``modelReferences``), which win over the volume."""
    if flashboot_snapshot:
        return ColdStartPlan(container_s=profile.flashboot_start_s, flashboot=True)
    plan = ColdStartPlan(container_s=profile.container_start_s, engine_s=profile.engine_init_s)
    for repo in repos:
        if cached_on_host and repo in cached_on_host:
            plan.host_cache_read_s += (hubdata.weights_size_bytes(repo) or 0) / profile.host_cache_read_bytes_per_s
            plan.from_host_cache.append(repo)
        elif cached_on_volume is not None and repo in cached_on_volume:
            # The engine reads only the weights it loads.
            plan.volume_read_s += (hubdata.weights_size_bytes(repo) or 0) / profile.volume_read_bytes_per_s
        else:
            # The download fetches every file matching the server's pattern.
            plan.download_s += (hubdata.download_size_bytes(repo) or 0) / profile.download_bytes_per_s
            plan.downloaded.append(repo)
    return plan
