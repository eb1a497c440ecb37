"""``/v2/billing/serverless`` and ``/v2/billing/network-volumes``: what the emulated account spent.

Serverless spend comes from ``store.sessions``: each :class:`~localpod.store.WorkerSession` is one
worker's billable life, from start until fully stopped, **rounded up to a whole second** as Runpod
bills, times ``price_per_gpu_s`` times ``gpu_count``. A worker still running is billed up to now.
The rounded-up life is split across the time buckets it overlaps, so the buckets add up to exactly
what the whole session costs. Sessions of deleted endpoints stay billable (as on Runpod).

Network-volume spend is storage: STANDARD $0.07/GB/month for the first 1,000 GB and $0.05 beyond,
HIGH_PERFORMANCE $0.14/GB/month (localpod's assumption: Runpod only says "a premium"), a month being
30 days, prorated per second from the volume's creation to now. localpod forgets deleted volumes and
bills a resized volume at its current size for its whole life.

Decisions: one record per endpoint (volume) per bucket that has a non-zero amount; buckets without
usage are omitted rather than reported as zeros. CPU, disk and platform-fee components are 0
(localpod emulates GPU workers only), so ``totalAmount == gpuAmount``. Amounts are rounded to
micro-dollars. Buckets are UTC; weeks start on Monday.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.services.rest.common import bad_request, resource, unprocessable
from localpod.store import NetworkVolume, WorkerSession

BUCKET_SIZES = ("hour", "day", "week", "month", "year")
MAX_BUCKETS = 10_000
"""Refuse windows that would need more buckets than this (e.g. ``lastN=1000000&bucketSize=hour``)."""

SECONDS_PER_MONTH = 30 * 24 * 3600
STANDARD_GB_MONTH = 0.07
STANDARD_GB_MONTH_OVER_1TB = 0.05
HIGH_PERFORMANCE_GB_MONTH = 0.14


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


def billed_interval(session: WorkerSession, now: float) -> tuple[float, float]:
    """A session's billed span: its start plus its life rounded up to a whole second."""
    stop = session.stopped_at if session.stopped_at is not None else now
    seconds = math.ceil(round(max(0.0, stop - session.started_at), 6))  # round() absorbs float noise
    return session.started_at, session.started_at + seconds


def _overlap(span: tuple[float, float], start: float, end: float) -> float:
    return max(0.0, min(span[1], end) - max(span[0], start))


def _bucketed(
    window: Window, items: Iterable[tuple[str, tuple[float, float], Callable[[float], float]]]
) -> dict[tuple[int, str], float]:
    """Sum ``cost(seconds)`` of each item's span per (bucket index, id)."""
    buckets = window.buckets()
    totals: dict[tuple[int, str], float] = {}
    for item_id, span, cost in items:
        for index, (b_start, b_end, _, _) in enumerate(buckets):
            seconds = _overlap(span, b_start, b_end)
            if seconds > 0:
                totals[(index, item_id)] = totals.get((index, item_id), 0.0) + cost(seconds)
    return totals


def _money(amount: float) -> float:
    return round(amount, 6)


def serverless_billing(
    sessions: Iterable[WorkerSession], window: Window, now: float, serverless_id: str | None
) -> dict[str, Any]:
    """A ``ListServerlessBillingResponse`` for the window."""
    items = []
    for session in sessions:
        if serverless_id is not None and session.endpoint_id != serverless_id:
            continue
        rate = session.price_per_gpu_s * session.gpu_count
        items.append((session.endpoint_id, billed_interval(session, now), lambda s, r=rate: s * r))
    buckets = window.buckets()
    records: list[dict[str, Any]] = []
    for (index, endpoint_id), amount in sorted(_bucketed(window, items).items()):
        gpu = _money(amount)
        if gpu <= 0:
            continue
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
    total = _money(sum(r["gpuAmount"] for r in records))
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


def volume_monthly_cost(volume: NetworkVolume) -> float:
    """USD per 30-day month for a volume at its current size and tier."""
    if volume.type == "HIGH_PERFORMANCE":
        return volume.size * HIGH_PERFORMANCE_GB_MONTH
    return min(volume.size, 1000) * STANDARD_GB_MONTH + max(0, volume.size - 1000) * STANDARD_GB_MONTH_OVER_1TB


def volume_billing(
    volumes: Iterable[NetworkVolume], window: Window, now: float, volume_id: str | None
) -> dict[str, Any]:
    """A ``ListNetworkVolumeBillingResponse`` for the window."""
    by_id = {}
    items = []
    for volume in volumes:
        if volume_id is not None and volume.id != volume_id:
            continue
        by_id[volume.id] = volume
        created = datetime.fromisoformat(volume.created_at).timestamp()
        rate = volume_monthly_cost(volume) / SECONDS_PER_MONTH
        items.append((volume.id, (created, now), lambda s, r=rate: s * r))
    buckets = window.buckets()
    records: list[dict[str, Any]] = []
    for (index, vid), amount in sorted(_bucketed(window, items).items()):
        total = _money(amount)
        if total <= 0:
            continue
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
    standard = _money(sum(r["standardAmount"] for r in records))
    high_perf = _money(sum(r["highPerformanceAmount"] for r in records))
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
                "totalAmount": _money(standard + high_perf),
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
