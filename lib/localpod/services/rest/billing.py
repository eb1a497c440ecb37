"""``/v2/billing/serverless`` and ``/v2/billing/network-volumes``: parse the window, serialise the records.

The amounts come from the billing backend (:mod:`localpod.resources.billing`, which owns per-second
rounding, prices and proration); this module only turns a request into a bucket-aligned window and
the backend's amounts into the REST v2 ``ListServerlessBillingResponse`` /
``ListNetworkVolumeBillingResponse`` shapes.

Decisions: one record per endpoint (volume) per bucket that has a non-zero amount; buckets without
usage are omitted rather than reported as zeros. CPU, disk and platform-fee components are 0
(localpod emulates GPU workers only), so ``totalAmount == gpuAmount``. Buckets are UTC; weeks
start on Monday.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.resources import billing
from localpod.services.rest.common import bad_request, resource, unprocessable
from localpod.store import NetworkVolume, WorkerSession

BUCKET_SIZES = ("hour", "day", "week", "month", "year")
MAX_BUCKETS = 10_000
"""Refuse windows that would need more buckets than this (e.g. ``lastN=1000000&bucketSize=hour``)."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    bucket_size: str

    def buckets(self) -> list[tuple[float, float, datetime, datetime]]:
        """``(start_ts, end_ts, start, end)`` of every bucket in the window."""
        out = []
        cursor = self.start
        while cursor < self.end:
            nxt = next_bucket(cursor, self.bucket_size)
            out.append((cursor.timestamp(), nxt.timestamp(), cursor, nxt))
            cursor = nxt
        return out


def floor_bucket(moment: datetime, size: str) -> datetime:
    """Start of the UTC bucket containing ``moment``."""
    moment = moment.astimezone(UTC)
    if size == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if size == "day":
        return day
    if size == "week":
        return day - timedelta(days=day.weekday())
    if size == "month":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def next_bucket(start: datetime, size: str) -> datetime:
    if size == "hour":
        return start + timedelta(hours=1)
    if size == "day":
        return start + timedelta(days=1)
    if size == "week":
        return start + timedelta(weeks=1)
    if size == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def previous_bucket(start: datetime, size: str) -> datetime:
    if size == "month":
        return start.replace(year=start.year - (start.month == 1), month=(start.month - 2) % 12 + 1)
    if size == "year":
        return start.replace(year=start.year - 1)
    return start - (next_bucket(start, size) - start)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(name: str, raw: str, errors: list[str]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        errors.append(f"{name}: {raw!r} is not an RFC 3339 date-time")
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_window(request: Request, now: datetime) -> Window:
    """The resolved, bucket-aligned window of a billing request (spec: ``BillingStartTime`` etc.)."""
    params = request.query_params
    errors: list[str] = []
    size = params.get("bucketSize", "day")
    if size not in BUCKET_SIZES:
        errors.append(f"bucketSize: {size!r} is not one of {', '.join(BUCKET_SIZES)}")
        size = "day"
    last_n = None
    if "lastN" in params:
        raw = params["lastN"]
        if not raw.isdigit() or int(raw) < 1:
            errors.append("lastN: must be an integer >= 1")
        else:
            last_n = int(raw)
    start = _parse_time("startTime", params["startTime"], errors) if "startTime" in params else None
    end = _parse_time("endTime", params["endTime"], errors) if "endTime" in params else None
    if errors:
        raise unprocessable(errors)
    if "lastN" in params and ("startTime" in params or "endTime" in params):
        raise bad_request(["lastN: mutually exclusive with startTime/endTime; send one or the other"])
    if last_n is not None:
        if last_n > MAX_BUCKETS:
            raise bad_request([f"lastN: at most {MAX_BUCKETS} buckets"])
        current = floor_bucket(now, size)
        first = current
        for _ in range(last_n - 1):
            first = previous_bucket(first, size)
        return Window(first, next_bucket(current, size), size)
    start = floor_bucket(start or now - timedelta(days=30), size)
    end = end or now
    end_floor = floor_bucket(end, size)
    end = end_floor if end_floor == end else next_bucket(end_floor, size)
    if start >= end:
        raise bad_request(["startTime: must be before endTime"])
    window = Window(start, end, size)
    if len(window.buckets()) > MAX_BUCKETS:
        raise bad_request([f"startTime, endTime: the window spans more than {MAX_BUCKETS} {size} buckets"])
    return window


def serverless_billing(
    sessions: Iterable[WorkerSession], window: Window, now: float, serverless_id: str | None
) -> dict[str, Any]:
    """A ``ListServerlessBillingResponse`` for the window (amounts: :mod:`localpod.resources.billing`)."""
    buckets = window.buckets()
    amounts = billing.serverless_amounts(sessions, [(b[0], b[1]) for b in buckets], now, serverless_id)
    records: list[dict[str, Any]] = []
    for (index, endpoint_id), gpu in amounts.items():
        _, _, b_start, b_end = buckets[index]
        records.append(
            {
                "startTime": rfc3339(b_start),
                "endTime": rfc3339(b_end),
                "serverlessId": endpoint_id,
                "totalAmount": gpu,
                "gpuAmount": gpu,
                "cpuAmount": 0.0,
                "diskAmount": 0.0,
                "feeAmount": 0.0,
            }
        )
    total = billing.money(sum(r["gpuAmount"] for r in records))
    return {
        "records": records,
        "metadata": {
            "query": {
                "startTime": rfc3339(window.start),
                "endTime": rfc3339(window.end),
                "bucketSize": window.bucket_size,
                "serverlessId": serverless_id,
            },
            "recordCount": len(records),
            "uniqueServerlessCount": len({r["serverlessId"] for r in records}),
            "totals": {"totalAmount": total, "gpuAmount": total, "cpuAmount": 0.0, "diskAmount": 0.0, "feeAmount": 0.0},
        },
    }


def volume_billing(
    volumes: Iterable[NetworkVolume], window: Window, now: float, volume_id: str | None
) -> dict[str, Any]:
    """A ``ListNetworkVolumeBillingResponse`` for the window (amounts: :mod:`localpod.resources.billing`)."""
    by_id = {v.id: v for v in volumes}
    buckets = window.buckets()
    amounts = billing.volume_amounts(by_id.values(), [(b[0], b[1]) for b in buckets], now, volume_id)
    records: list[dict[str, Any]] = []
    for (index, vid), total in amounts.items():
        _, _, b_start, b_end = buckets[index]
        high = by_id[vid].type == "HIGH_PERFORMANCE"
        records.append(
            {
                "startTime": rfc3339(b_start),
                "endTime": rfc3339(b_end),
                "networkVolumeId": vid,
                "totalAmount": total,
                "standardAmount": 0.0 if high else total,
                "highPerformanceAmount": total if high else 0.0,
            }
        )
    standard = billing.money(sum(r["standardAmount"] for r in records))
    high_perf = billing.money(sum(r["highPerformanceAmount"] for r in records))
    return {
        "records": records,
        "metadata": {
            "query": {
                "startTime": rfc3339(window.start),
                "endTime": rfc3339(window.end),
                "bucketSize": window.bucket_size,
                "networkVolumeId": volume_id,
            },
            "recordCount": len(records),
            "uniqueNetworkVolumeCount": len({r["networkVolumeId"] for r in records}),
            "totals": {
                "totalAmount": billing.money(standard + high_perf),
                "standardAmount": standard,
                "highPerformanceAmount": high_perf,
            },
        },
    }


def routes(ctx: ServerContext) -> list[BaseRoute]:

    async def serverless(request: Request) -> Response:
        now = datetime.now(UTC)
        window = parse_window(request, now)
        body = serverless_billing(
            list(ctx.store.sessions), window, now.timestamp(), request.query_params.get("serverlessId") or None
        )
        return JSONResponse(body)

    async def network_volumes(request: Request) -> Response:
        now = datetime.now(UTC)
        window = parse_window(request, now)
        body = volume_billing(
            list(ctx.store.volumes.values()),
            window,
            now.timestamp(),
            request.query_params.get("networkVolumeId") or None,
        )
        return JSONResponse(body)

    return [
        resource(ctx, "/v2/billing/serverless", {"GET": serverless}),
        resource(ctx, "/v2/billing/network-volumes", {"GET": network_volumes}),
    ]
