"""How long a worker takes to become ready, and why.

Runpod's cold start is container start plus model load. The weights come from the Hub on the
first start on an empty network volume (and on every start without one), from the volume after
that; FlashBoot restores a recent snapshot instead. Keeping the arithmetic here, apart from the
worker's state machine, lets tests and the benchmark check the figures against the profile.
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
    engine_s: float = 0.0
    flashboot: bool = False
    downloaded: list[str] = field(default_factory=list)
    """Repos fetched from the Hub in this start (they land on the volume, if any)."""

    @property
    def total_s(self) -> float:
        return self.container_s + self.download_s + self.volume_read_s + self.engine_s

    def describe(self) -> str:
        if self.flashboot:
            return f"FlashBoot restore {self.container_s:.2f}s"
        parts = [f"container {self.container_s:.2f}s"]
        if self.download_s:
            parts.append(f"download {self.download_s:.2f}s ({', '.join(self.downloaded)})")
        if self.volume_read_s:
            parts.append(f"volume read {self.volume_read_s:.2f}s")
        parts.append(f"engine init {self.engine_s:.2f}s")
        return ", ".join(parts)


def plan_cold_start(
    profile: Profile, repos: list[str], cached_on_volume: set[str] | None, flashboot_snapshot: bool
) -> ColdStartPlan:
    """Plan a start. ``cached_on_volume`` is None without a network volume."""
    if flashboot_snapshot:
        return ColdStartPlan(container_s=profile.flashboot_start_s, flashboot=True)
    plan = ColdStartPlan(container_s=profile.container_start_s, engine_s=profile.engine_init_s)
    for repo in repos:
        if cached_on_volume is not None and repo in cached_on_volume:
            # The engine reads only the weights it loads.
            plan.volume_read_s += (hubdata.weights_size_bytes(repo) or 0) / profile.volume_read_bytes_per_s
        else:
            # The download fetches every file matching the server's pattern.
            plan.download_s += (hubdata.download_size_bytes(repo) or 0) / profile.download_bytes_per_s
            plan.downloaded.append(repo)
    return plan
