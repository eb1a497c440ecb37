"""What a run cost: its own workers' cost, beside Runpod's billing for its endpoints and volumes.

Two figures, because Runpod bills in hourly buckets per endpoint:

- **this run**: its own workers' billed seconds × price, from what the run observed of them
  (``rpbook.records.runcost``: worker listings while it ran, the endpoints it recorded); this is the
  figure the history keeps, so two checks in the same hour do not each carry both;
- **billing**: REST v2 billing (``/v2/billing/serverless`` and ``/v2/billing/network-volumes``) for
  the hour buckets that contain the run, which is what the invoice will say and includes any other
  use of the same endpoints in those hours, and the volumes' storage: the cross-check ("billing
  09:00–10:00 UTC: $0.0258, of which this run ≈ $0.0126").

Which endpoints and volumes: the ids the runbooks recorded in the run's figures (``endpoint_id``,
``volume_id``) and the endpoints whose workers the run saw start, so a failed run that woke workers
before recording anything still has them in its receipt.

"Of which cold starts" is an estimate (billing does not split it): the seconds from submit to a
ready worker in each cold wake-up the run recorded, at the endpoint's dearest pool price.

A receipt taken at the end of a run is provisional: workers stay up for their idle timeout after
the last request and go on billing, and Runpod's billing lags behind usage. ``rpbook receipt
RUN_DIR`` takes it again later; it is final once no worker of the run's endpoints runs and, on
Runpod, an hour has passed since the run ended.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rpbook.account import pricing
from rpbook.account.controlplane import RunpodClient
from rpbook.account.resources import Endpoint
from rpbook.core.errors import ConfigError, EndpointNotFound
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings
from rpbook.records.runcost import EndpointTerms, load_observation, own_cost
from rpbook.records.runfolder import read_summary, run_figures, run_times

BILLING_LAG = timedelta(hours=1)
RECEIPT_FILE = "receipt.json"


@dataclass
class Receipt:
    run_dir: str
    window_start: str
    window_end: str
    endpoints_usd: dict[str, float] = field(default_factory=dict)
    volumes_usd: dict[str, float] = field(default_factory=dict)
    cold_start_usd: float = 0.0
    provisional: bool = True
    why_provisional: str = ""
    run_usd: float | None = None
    """This run's own workers' cost (``rpbook.records.runcost``); None when the run was not watched."""
    run_basis: str = ""
    """How ``run_usd`` was counted (workers, billed seconds, projected idle tail)."""
    run_workers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        """The billing buckets' total for the run's endpoints and volumes (other use included)."""
        return round(sum(self.endpoints_usd.values()) + sum(self.volumes_usd.values()), 6)

    def _bucket_text(self) -> str:
        start = datetime.fromisoformat(self.window_start.replace("Z", "+00:00"))
        end = datetime.fromisoformat(self.window_end.replace("Z", "+00:00"))
        day = "" if (end - start) <= timedelta(days=1) else f"{end:%Y-%m-%d} "
        return f"{start:%Y-%m-%d %H:%M}–{day}{end:%H:%M} UTC"

    def line(self) -> str:
        if not self.endpoints_usd and not self.volumes_usd:
            return "this run: $0 (it recorded no endpoint or volume, and no worker of the endpoints it names ran)"
        so_far = " so far" if self.provisional else ""
        billing = f"billing {self._bucket_text()}: ${self.total_usd:.4f}{so_far} for its endpoints and volumes"
        if self.run_usd is None:
            text = f"this run: not observed (taken without `rpbook run`); {billing}, other use in those hours included"
        else:
            own = f"this run: ${self.run_usd:.4f} (its own workers: {self.run_basis})"
            if self.run_usd <= self.total_usd:
                text = f"{own}; {billing}, of which this run ≈ ${self.run_usd:.4f}"
            else:  # the projected idle tail is not billed yet
                text = f"{own}; {billing}, its idle tail still to come"
        text += f"; cold starts ≈ ${self.cold_start_usd:.4f}"
        if self.provisional:
            text += f"; provisional ({self.why_provisional}): run `rpbook receipt {self.run_dir}` later"
            text += " for the final figure"
        return text

    __str__ = line

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_usd": self.total_usd, "line": self.line()}


def _during(worker: dict[str, Any], started: datetime) -> bool:
    """A watched worker that started while the run ran (the run woke or started it)."""
    try:
        begun = datetime.fromisoformat(str(worker["started_at"]))
    except (KeyError, ValueError):
        return False
    return begun >= started


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_receipt(
    settings: Settings,
    api_key: Secret,
    run_dir: Path,
    started: datetime,
    ended: datetime,
    *,
    now: datetime | None = None,
) -> Receipt:
    """The receipt of the run in ``run_dir`` that ran from ``started`` to ``ended`` (UTC)."""
    now = now or datetime.now(UTC)
    figures = list(run_figures(run_dir).values())
    recorded = sorted({str(f["endpoint_id"]) for f in figures if f.get("endpoint_id")})
    observation = load_observation(run_dir)
    seen = {str(w["endpoint_id"]) for w in (observation or {}).get("workers") or () if _during(w, started)}
    endpoint_ids = sorted(set(recorded) | seen)
    volume_ids = sorted({str(f["volume_id"]) for f in figures if f.get("volume_id")})
    start = _hour_floor(started)
    end = _hour_floor(ended) + timedelta(hours=1)
    receipt = Receipt(run_dir=str(run_dir), window_start=_rfc3339(start), window_end=_rfc3339(end))
    if not endpoint_ids and not volume_ids:
        receipt.provisional = False
        return receipt
    still_running: list[str] = []
    with RunpodClient(settings, api_key) as client:
        gpu_types = client.gpu_types(serverless_availability=False)
        endpoints: dict[str, Endpoint] = {}
        for endpoint_id in endpoint_ids:
            try:
                endpoints[endpoint_id] = client.get_endpoint(endpoint_id)
            except EndpointNotFound:  # deleted since (runbook 99): its billing stays
                pass
            billing = client.serverless_billing(
                endpoint_id, bucket_size="hour", start=receipt.window_start, end=receipt.window_end
            )
            receipt.endpoints_usd[endpoint_id] = round(billing.total_usd, 6)
        for volume_id in volume_ids:
            data = client._json(
                "GET",
                "/v2/billing/network-volumes",
                params={
                    "bucketSize": "hour",
                    "networkVolumeId": volume_id,
                    "startTime": receipt.window_start,
                    "endTime": receipt.window_end,
                },
            )
            total = ((data.get("metadata") or {}).get("totals") or {}).get("totalAmount") or 0.0
            receipt.volumes_usd[volume_id] = round(float(total), 6)
        if observation is not None:
            terms = {
                i: EndpointTerms(tuple(e.gpu_pools), int(e.idle_timeout_s or 0), e.workers_min)
                for i, e in endpoints.items()
            }
            own = own_cost(observation, started, ended, terms, gpu_types, used=recorded)
            receipt.run_usd, receipt.run_basis, receipt.run_workers = own.usd, own.describe(), own.per_worker
        cold = 0.0
        for recorded_figures in figures:
            woken, ready_s = recorded_figures.get("endpoint_id"), recorded_figures.get("ready_s")
            if recorded_figures.get("cold") is True and woken in endpoints and isinstance(ready_s, (int, float)):
                endpoint = endpoints[str(woken)]
                price = pricing.worker_usd_per_hour(gpu_types, endpoint.gpu_pools, endpoint.gpu_count) or 0.0
                cold += float(ready_s) / 3600 * price
        receipt.cold_start_usd = round(cold, 6)
    from rpbook.account.jobqueue import health  # the queue client; imported here to keep this module light

    for endpoint_id in endpoint_ids:
        try:
            if health(settings, api_key, endpoint_id).billing_workers:
                still_running.append(endpoint_id)
        except (ConfigError, EndpointNotFound):  # a rejected key or a deleted endpoint: nothing to ask
            continue
    reasons = []
    if still_running:
        reasons.append(f"workers of {', '.join(still_running)} still run and bill until their idle timeout")
    if settings.target == "runpod" and now - ended < BILLING_LAG:
        reasons.append("Runpod's billing lags usage by up to an hour")
    receipt.provisional = bool(reasons)
    receipt.why_provisional = "; ".join(reasons)
    return receipt


def write_receipt(receipt: Receipt) -> Path:
    path = Path(receipt.run_dir) / RECEIPT_FILE
    path.write_text(json.dumps(receipt.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def receipt_for_run_dir(run_dir: Path) -> Receipt:
    """``rpbook receipt RUN_DIR``: take the receipt again from the run's summary.json."""
    from rpbook.core.paths import resolve_env_file
    from rpbook.core.settings import load_settings

    summary = read_summary(run_dir)
    started, ended = run_times(run_dir, summary)
    target = (summary.get("parameters") or {}).get("target", "local")
    settings = load_settings(target, env_file=resolve_env_file(""))
    receipt = make_receipt(settings, settings.runpod_api_key(), run_dir, started, ended)
    write_receipt(receipt)
    return receipt
