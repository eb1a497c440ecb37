"""What the emulated account is billed: the one place localpod turns worker time and storage into money.

Every figure an API shows about spend — REST v2 ``/v2/billing/serverless`` and
``/v2/billing/network-volumes``, GraphQL ``myself { clientBalance currentSpendPerHr }`` — is computed
here; the handlers in :mod:`localpod.services` only parse the request and serialise these numbers
(moto's pattern, as for the other resources). ``tests/test_billing_backend.py`` guards that no other
module rounds worker time or multiplies a price.

Serverless workers. Each :class:`~localpod.store.WorkerSession` is one stretch of a worker's life
that bills: Runpod bills "from when a worker starts until it fully stops, rounded up to the nearest
second" (runpod/docs ``serverless/pricing.mdx``), so a session costs its length **rounded up to a
whole second** times ``price_per_gpu_s`` times ``gpu_count``; a session still open bills up to now.
Which worker states open and close sessions is the worker's rule
(:mod:`localpod.serverless.workers`, after the state table of ``serverless/workers/overview.mdx``).
Sessions of deleted endpoints stay billable (as on Runpod).

Network volumes are storage: STANDARD $0.07/GB/month for the first 1,000 GB and $0.05 beyond
(``serverless/pricing.mdx``), HIGH_PERFORMANCE $0.14/GB/month (localpod's assumption: Runpod only
says "a premium"), a month being 30 days, prorated per second from the volume's creation to now.
localpod forgets deleted volumes and bills a resized volume at its current size for its whole life.

Amounts are rounded to micro-dollars (:func:`money`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime

from localpod.store import NetworkVolume, Store, WorkerSession

SECONDS_PER_MONTH = 30 * 24 * 3600
STANDARD_GB_MONTH = 0.07
STANDARD_GB_MONTH_OVER_1TB = 0.05
HIGH_PERFORMANCE_GB_MONTH = 0.14

Span = tuple[float, float]
"""A time span as two epoch seconds, start inclusive, end exclusive."""


def money(amount: float) -> float:
    """An amount as the APIs show it: micro-dollars."""
    return round(amount, 6)


# -- serverless workers -----------------------------------------------------------------------------


def billed_seconds(session: WorkerSession, now: float) -> int:
    """A session's length rounded up to a whole second (``round`` first absorbs float noise, so
    2.0000000001 s bills 2 s, not 3)."""
    stop = session.stopped_at if session.stopped_at is not None else now
    return math.ceil(round(max(0.0, stop - session.started_at), 6))


def billed_span(session: WorkerSession, now: float) -> Span:
    """A session's billed span: its start plus its rounded-up length."""
    return session.started_at, session.started_at + billed_seconds(session, now)


def session_rate(session: WorkerSession) -> float:
    """USD per second the session bills: its GPUs times the price per GPU-second at placement."""
    return session.price_per_gpu_s * session.gpu_count


def session_cost(session: WorkerSession, now: float) -> float:
    return billed_seconds(session, now) * session_rate(session)


def spent(sessions: Iterable[WorkerSession], now: float) -> float:
    """Everything the sessions billed up to ``now``."""
    return sum(session_cost(s, now) for s in sessions)


def client_balance(store: Store, now: float) -> float:
    """The account's credit minus every billed worker second (GraphQL ``clientBalance``)."""
    return money(store.account.client_balance - spent(store.sessions, now))


def current_spend_per_hr(sessions: Iterable[WorkerSession], endpoint_ids: Collection[str]) -> float:
    """What the account's workers bill per hour right now (GraphQL ``currentSpendPerHr``): the
    open sessions of its endpoints. Workers that do not bill (throttled, unhealthy) have none open;
    a deleted endpoint's workers are being stopped and no longer count."""
    return money(
        sum(session_rate(s) * 3600 for s in sessions if s.stopped_at is None and s.endpoint_id in endpoint_ids)
    )


def serverless_amounts(
    sessions: Iterable[WorkerSession], spans: Sequence[Span], now: float, endpoint_id: str | None
) -> dict[tuple[int, str], float]:
    """USD per (index of span, endpoint id), each session's rounded-up life split across the spans
    it overlaps, so the spans add up to exactly what the whole session costs. Zero amounts are
    left out; ``endpoint_id`` keeps one endpoint's."""
    items = [
        (s.endpoint_id, billed_span(s, now), _per_second(session_rate(s)))
        for s in sessions
        if endpoint_id is None or s.endpoint_id == endpoint_id
    ]
    return _by_span(spans, items)


# -- network volumes --------------------------------------------------------------------------------


def volume_monthly_cost(volume: NetworkVolume) -> float:
    """USD per 30-day month for a volume at its current size and tier."""
    if volume.type == "HIGH_PERFORMANCE":
        return volume.size * HIGH_PERFORMANCE_GB_MONTH
    return min(volume.size, 1000) * STANDARD_GB_MONTH + max(0, volume.size - 1000) * STANDARD_GB_MONTH_OVER_1TB


def volume_amounts(
    volumes: Iterable[NetworkVolume], spans: Sequence[Span], now: float, volume_id: str | None
) -> dict[tuple[int, str], float]:
    """USD per (index of span, volume id), prorated per second from each volume's creation to now."""
    items = [
        (
            v.id,
            (datetime.fromisoformat(v.created_at).timestamp(), now),
            _per_second(volume_monthly_cost(v) / SECONDS_PER_MONTH),
        )
        for v in volumes
        if volume_id is None or v.id == volume_id
    ]
    return _by_span(spans, items)


# -- arithmetic -------------------------------------------------------------------------------------


def _per_second(rate: float) -> Callable[[float], float]:
    return lambda seconds: seconds * rate


def _by_span(
    spans: Sequence[Span], items: Iterable[tuple[str, Span, Callable[[float], float]]]
) -> dict[tuple[int, str], float]:
    totals: dict[tuple[int, str], float] = {}
    for item_id, (start, end), cost in items:
        for index, (s_start, s_end) in enumerate(spans):
            seconds = max(0.0, min(end, s_end) - max(start, s_start))
            if seconds > 0:
                totals[(index, item_id)] = totals.get((index, item_id), 0.0) + cost(seconds)
    return {key: money(amount) for key, amount in sorted(totals.items()) if money(amount) > 0}
