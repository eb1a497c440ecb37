"""What a run cost: a receipt from Runpod's own billing, for the run's endpoints and volumes.

The figures come from REST v2 billing (``/v2/billing/serverless`` and
``/v2/billing/network-volumes``), never from rpbook's own estimates, so the receipt is what the
invoice will say. Billing is bucketed (here by hour, UTC), so the window is the hour buckets that
contain the run, and it includes any other use of the same endpoints in those hours. Which
endpoints and volumes: the ids the runbooks recorded in the run's figures (``endpoint_id``,
``volume_id``).

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

from rpbook.account.billing_now import price_per_worker_hour
from rpbook.account.controlplane import RunpodClient
from rpbook.core.errors import ConfigError, EndpointNotFound
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings
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

    @property
    def total_usd(self) -> float:
        return round(sum(self.endpoints_usd.values()) + sum(self.volumes_usd.values()), 6)

    def line(self) -> str:
        if not self.endpoints_usd and not self.volumes_usd:
            return "this run: $0 (it recorded no endpoint or volume)"
        text = (
            f"this run: ${self.total_usd:.4f} (billing {self.window_start} to {self.window_end}), of which "
            f"cold starts ≈ ${self.cold_start_usd:.4f}"
        )
        if self.provisional:
            text += f"; provisional ({self.why_provisional}): run `rpbook receipt {self.run_dir}` later"
            text += " for the final figure"
        return text

    __str__ = line

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_usd": self.total_usd, "line": self.line()}


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
    endpoint_ids = sorted({str(f["endpoint_id"]) for f in figures if f.get("endpoint_id")})
    volume_ids = sorted({str(f["volume_id"]) for f in figures if f.get("volume_id")})
    start = _hour_floor(started)
    end = _hour_floor(ended) + timedelta(hours=1)
    receipt = Receipt(run_dir=str(run_dir), window_start=_rfc3339(start), window_end=_rfc3339(end))
    if not endpoint_ids and not volume_ids:
        receipt.provisional = False
        return receipt
    still_running: list[str] = []
    with RunpodClient(settings, api_key) as client:
        for endpoint_id in endpoint_ids:
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
        cold = 0.0
        for recorded in figures:
            woken, ready_s = recorded.get("endpoint_id"), recorded.get("ready_s")
            if recorded.get("cold") is True and woken in endpoint_ids and isinstance(ready_s, (int, float)):
                price = price_per_worker_hour(client, client.get_endpoint(str(woken))) or 0.0
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
