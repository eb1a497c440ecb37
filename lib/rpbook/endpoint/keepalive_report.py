"""What a keep-alive may cost (shown before it starts) and what it did (accounted after).

Prices come from the catalog (``price.serverless`` of the endpoint's dearest pool times its GPUs
per worker). Runpod's discounted "active worker" rate is not in the REST v2 catalog, so a pin is
accounted at the flex price: an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CostEstimate:
    """What a keep-alive may cost, shown before it starts."""

    strategy: str
    usd_per_worker_hour: float | None
    idle_timeout_s: float
    ping_interval_s: float | None
    usd_per_ping: float | None
    max_pings: int
    worst_case_usd: float | None
    cost_cap_usd: float | None

    def __str__(self) -> str:
        if self.strategy == "off":
            return "keep-alive off: nothing extra is billed; a pause longer than the idle timeout means a cold start"
        price = "unknown price" if self.usd_per_worker_hour is None else f"${self.usd_per_worker_hour:.4f}/h per worker"
        cap = "no cost cap" if self.cost_cap_usd is None else f"cost cap ${self.cost_cap_usd:.4f}"
        worst = "unknown" if self.worst_case_usd is None else f"${self.worst_case_usd:.4f}"
        if self.strategy == "ping":
            each = "unknown" if self.usd_per_ping is None else f"${self.usd_per_ping:.5f}"
            return (
                f"keep-alive ping every {self.ping_interval_s:.3g} s of silence ({price}): each ping buys up to "
                f"{self.idle_timeout_s:g} s of worker time = {each}; at most {self.max_pings} pings, worst case "
                f"{worst}; {cap}"
            )
        return f"keep-alive pin: one worker billed for the whole conversation ({price}), worst case {worst}; {cap}"


@dataclass
class PingRecord:
    """One keep-alive ping (tagged so figures tell it from real traffic)."""

    job_id: str | None
    sent_at: float
    """Seconds since the keep-alive started."""
    duration_s: float
    ok: bool
    error: str = ""


@dataclass
class KeepAliveReport:
    """What a keep-alive did and what it cost (upper bounds from catalog prices)."""

    strategy: str
    endpoint_id: str
    started_wall: float
    duration_s: float
    stop_reason: str
    pings: list[PingRecord] = field(default_factory=list)
    pinned_s: float = 0.0
    usd: float | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def figures(self) -> dict[str, float | int | str]:
        return {
            "keepalive_strategy": self.strategy,
            "keepalive_pings": len(self.pings),
            "keepalive_pinned_s": round(self.pinned_s, 3),
            "keepalive_usd": round(self.usd or 0.0, 6),
            "keepalive_stop_reason": self.stop_reason,
        }

    def __str__(self) -> str:
        cost = "unknown" if self.usd is None else f"${self.usd:.5f}"
        what = f"{len(self.pings)} ping(s)" if self.strategy == "ping" else f"pinned {self.pinned_s:.1f} s"
        return (
            f"keep-alive {self.strategy} on {self.endpoint_id}: {what} over {self.duration_s:.1f} s, cost at most "
            f"{cost}; stopped: {self.stop_reason}"
        )
