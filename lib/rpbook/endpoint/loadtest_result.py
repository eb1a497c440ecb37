"""What a load test asks for (load shape, SLOs) and what it measured (every request, ``/health``
samples), with the summary figures, files and table. The metrics are defined in docs/metrics.md
and in :mod:`rpbook.endpoint.loadtest`."""

from __future__ import annotations

import csv
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ConfigError

SHAPES = ("closed", "open", "ramp")
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LoadShape:
    """How requests arrive and when the run ends (see the module docstring)."""

    kind: str = "closed"
    concurrency: int = 8
    """closed: requests in flight; open/ramp: the most in flight at once (0: no limit)."""
    rate: float = 1.0
    """open: requests per second; ramp: the final rate."""
    distribution: str = "poisson"
    burstiness: float = 1.0
    ramp_start_rate: float = 0.5
    num_requests: int = 100
    duration_s: float = 300.0
    warmup_requests: int = 0
    stagger_s: float = 0.5
    """closed: each lane starts at a random offset within this many seconds, so streams do not run
    in lock-step (a server that paces every stream alike would keep them so for the whole run)."""

    def __post_init__(self) -> None:
        if self.kind not in SHAPES:
            raise ConfigError(f"load shape must be one of {', '.join(SHAPES)}, got {self.kind!r}")
        if self.distribution not in ("poisson", "fixed"):
            raise ConfigError(f"distribution must be 'poisson' or 'fixed', got {self.distribution!r}")
        if self.kind == "closed" and self.concurrency < 1:
            raise ConfigError(f"a closed loop needs concurrency >= 1, got {self.concurrency}")
        if self.kind != "closed" and self.rate <= 0:
            raise ConfigError(f"an open loop needs rate > 0 requests/s, got {self.rate}")
        if self.burstiness <= 0:
            raise ConfigError(f"burstiness must be > 0 (1 = Poisson), got {self.burstiness}")
        if self.stagger_s < 0:
            raise ConfigError(f"stagger_s must be >= 0 seconds, got {self.stagger_s}")
        if self.num_requests < 1 or self.duration_s <= 0:
            raise ConfigError("num_requests must be >= 1 and duration_s > 0")

    def interval_s(self, index: int, rng: random.Random) -> float:
        """Wait before request ``index`` of an open loop (vllm bench serve: gamma with shape
        ``burstiness`` and mean ``1/rate``; shape 1 is exponential, i.e. Poisson arrivals)."""
        rate = self.rate
        if self.kind == "ramp":
            progress = index / max(self.num_requests - 1, 1)
            rate = self.ramp_start_rate + (self.rate - self.ramp_start_rate) * progress
        if self.distribution == "fixed":
            return 1.0 / rate
        return rng.gammavariate(self.burstiness, 1.0 / (rate * self.burstiness))


@dataclass(frozen=True)
class SLO:
    """Service-level objectives for goodput, in milliseconds (None: not checked)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None

    def met(self, r: RequestRecord) -> bool:
        if r.error:
            return False
        checks = [(self.ttft_ms, r.ttft_s), (self.tpot_ms, r.tpot_s), (self.e2el_ms, r.e2el_s)]
        return all(limit is None or (value is not None and value * 1000 <= limit) for limit, value in checks)


@dataclass
class RequestRecord:
    """One request, as one CSV row."""

    index: int
    route: str
    warmup: bool
    sent_s: float
    """Seconds since the run started."""
    concurrency_at_send: int
    cold: bool
    e2el_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    output_tokens: int = 0
    error: str = ""
    """Kind: 429, 5xx, 4xx, timeout, connection, FAILED, TIMED_OUT, CANCELLED; empty when fine."""
    detail: str = ""
    queue_delay_s: float | None = None
    execution_s: float | None = None
    job_id: str = ""

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["itl_s"] = ";".join(f"{x:.6f}" for x in self.itl_s)
        out["itl_mean_s"] = float(np.mean(self.itl_s)) if self.itl_s else None
        return out


@dataclass
class HealthSample:
    t_s: float
    in_queue: int
    in_progress: int
    ready: int
    running: int
    initializing: int


@rich_output
@dataclass
class LoadTestResult:
    endpoint_id: str
    route: str
    shape: LoadShape
    slo: SLO
    max_tokens: int
    requests: list[RequestRecord]
    health: list[HealthSample]
    transport_overhead_s: float
    """p50 round trip of a request that generates nothing through the same route (see
    ``_Runner._transport_overhead``): what network, queue and worker hand-off add to every TTFT."""
    versions: dict[str, str]
    started_wall: float
    files: dict[str, str] = field(default_factory=dict)

    @property
    def measured(self) -> list[RequestRecord]:
        return [r for r in self.requests if not r.warmup]

    @property
    def duration_s(self) -> float:
        rows = self.measured
        if not rows:
            return 0.0
        ends = [r.sent_s + (r.e2el_s or 0.0) for r in rows]
        return max(ends) - min(r.sent_s for r in rows)

    def summary(self) -> dict[str, Any]:
        rows = self.measured
        ok = [r for r in rows if not r.error]
        duration = self.duration_s or float("nan")
        errors: dict[str, int] = {}
        for r in rows:
            if r.error:
                errors[r.error] = errors.get(r.error, 0) + 1
        out: dict[str, Any] = {
            "requests": len(rows),
            "completed": len(ok),
            "errors": errors,
            "cold_starts_seen": sum(1 for r in rows if r.cold),
            "duration_s": duration,
            "request_throughput_per_s": len(ok) / duration if duration else 0.0,
            "output_token_throughput_per_s": sum(r.output_tokens for r in ok) / duration if duration else 0.0,
            "goodput_per_s": sum(1 for r in ok if self.slo.met(r)) / duration if duration else 0.0,
            "max_concurrency_seen": max((r.concurrency_at_send for r in rows), default=0),
            "transport_overhead_ms": self.transport_overhead_s * 1000,
        }
        series: dict[str, list[float | None]] = {
            "ttft_ms": [r.ttft_s for r in ok],
            "tpot_ms": [r.tpot_s for r in ok],
            "itl_ms": [x for r in ok for x in r.itl_s],
            "e2el_ms": [r.e2el_s for r in ok],
            "queue_delay_ms": [r.queue_delay_s for r in ok],
        }
        for name, values in series.items():
            clean = np.array([v * 1000 for v in values if v is not None], dtype=np.float64)
            if clean.size == 0:
                continue
            out[f"mean_{name}"] = float(clean.mean())
            for p in PERCENTILES:
                out[f"p{p}_{name}"] = float(np.percentile(clean, p))
        return out

    @property
    def figures(self) -> dict[str, float | int]:
        s = self.summary()
        keys = (
            "requests",
            "completed",
            "cold_starts_seen",
            "request_throughput_per_s",
            "output_token_throughput_per_s",
            "goodput_per_s",
            "p50_ttft_ms",
            "p99_ttft_ms",
            "p50_itl_ms",
            "p99_itl_ms",
            "p50_e2el_ms",
            "p99_e2el_ms",
            "p50_queue_delay_ms",
            "transport_overhead_ms",
        )
        out = {f"load_{k}": round(s[k], 3) if isinstance(s[k], float) else s[k] for k in keys if k in s}
        out["load_errors"] = sum(s["errors"].values())
        return out

    def save(self, out_dir: str | Path, name: str = "loadtest") -> dict[str, str]:
        """``<name>.json`` (summary, exact load shape, SLOs, versions, every request) and
        ``<name>.csv`` (one row per request)."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = folder / f"{name}.json", folder / f"{name}.csv"
        rows = [r.row() for r in self.requests]
        with csv_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["index"])
            writer.writeheader()
            writer.writerows(rows)
        json_path.write_text(
            json.dumps(
                {
                    "endpoint_id": self.endpoint_id,
                    "route": self.route,
                    "shape": asdict(self.shape),
                    "slo": asdict(self.slo),
                    "max_tokens": self.max_tokens,
                    "versions": self.versions,
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
                    "summary": self.summary(),
                    "health": [asdict(h) for h in self.health],
                    "requests": rows,
                },
                indent=1,
                default=str,
            )
        )
        self.files = {"json": str(json_path), "csv": str(csv_path)}
        return self.files

    def __str__(self) -> str:
        s = self.summary()
        errs = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "none"
        ttft = f"p50 TTFT {s['p50_ttft_ms']:.1f} ms" if "p50_ttft_ms" in s else "TTFT n/a"
        itl = f"p50 ITL {s['p50_itl_ms']:.2f} ms" if "p50_itl_ms" in s else "ITL n/a"
        return (
            f"{s['completed']}/{s['requests']} requests ok in {s['duration_s']:.2f} s ({self.shape.kind}); {ttft}, "
            f"{itl}, p50 E2EL {s.get('p50_e2el_ms', float('nan')):.1f} ms; {s['request_throughput_per_s']:.2f} req/s, "
            f"{s['output_token_throughput_per_s']:.1f} tok/s; cold starts seen {s['cold_starts_seen']}; "
            f"errors: {errs}"
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = []
        for name, label in (
            ("ttft_ms", "TTFT"),
            ("tpot_ms", "TPOT"),
            ("itl_ms", "ITL"),
            ("e2el_ms", "E2EL"),
            ("queue_delay_ms", "queue delay"),
        ):
            if f"mean_{name}" in s:
                rows.append([label] + [f"{s[f'{k}_{name}']:.2f}" for k in ("mean", "p50", "p90", "p95", "p99")])
        table = html_table(["ms", "mean", "p50", "p90", "p95", "p99"], rows, right=(1, 2, 3, 4, 5))
        return f"<p>{self}</p>{table}"
