"""Idle parking: how many days an endpoint has before Runpod lowers its max workers.

Runpod parks idle serverless endpoints (docs page serverless/endpoints/endpoint-configurations,
"Idle endpoint scale-down", added by runpod/docs PR #674): after 3 days without requests max
workers drops to 2 (with an email), after 7 days to 0, and it stays there until raised by hand. A
parked endpoint makes the next scheduled check (or the next real user) wait in the queue forever,
so the daily report says how close each endpoint is to each step.

The other side of the rule: a scheduled check's wake job *is* a request, so a daily check alone
keeps an endpoint out of parking. That is fine while the endpoint serves real traffic too, but
when the check's pings are the only requests anyone knows of, the check is quietly paying to keep
an unused endpoint alive; the report warns about that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rpbook.records.history import HistoryRun

DAY_S = 86400.0
PARKING_STEPS: tuple[tuple[float, int], ...] = ((3.0, 2), (7.0, 0))
"""(days without requests, max workers after the step), from Runpod's endpoint-configurations page."""


@dataclass(frozen=True)
class ParkingStatus:
    """One endpoint: its last known request and the days left before each parking step."""

    endpoint: str
    last_request_at: datetime
    now: datetime
    only_scheduled: bool
    """True when the scheduled check's own pings are what keeps the endpoint out of parking: no
    other request known, or none within the first step's 3 days."""

    @property
    def idle_days(self) -> float:
        return max(0.0, (self.now - self.last_request_at).total_seconds() / DAY_S)

    def days_left(self) -> list[tuple[int, float]]:
        """(max workers after the step, days left before it; 0 once passed) for each step."""
        return [(workers, max(0.0, days - self.idle_days)) for days, workers in PARKING_STEPS]

    @property
    def parked_to(self) -> int | None:
        """Max workers Runpod has set by now (None: not parked yet)."""
        passed = [workers for days, workers in PARKING_STEPS if self.idle_days >= days]
        return passed[-1] if passed else None

    @property
    def warning(self) -> str | None:
        """Why a human should look, or None."""
        if self.parked_to is not None:
            return (
                f"{self.endpoint}: no request for {self.idle_days:.1f} days, so Runpod has lowered max workers "
                f"to {self.parked_to}; raise it again (PATCH workers.max) before the next check or it will "
                "wait in the queue"
            )
        if self.only_scheduled:
            return (
                f"{self.endpoint}: only the scheduled check's own pings keep it out of idle parking (no other "
                "request in the last 3 days is known; 3 days -> max workers 2, 7 days -> 0); if nobody else "
                "uses it, consider deleting it instead of paying for daily wake-ups"
            )
        return None

    def __str__(self) -> str:
        steps = ", ".join(f"{left:.1f} d to max workers {workers}" for workers, left in self.days_left())
        line = f"{self.endpoint}: last request {self.last_request_at:%Y-%m-%d %H:%M} UTC; {steps}"
        return line + (f"\n  WARNING {self.warning}" if self.warning else "")


def _utc(moment: datetime | str) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parking_status(
    endpoint: str, last_request_at: datetime | str, *, now: datetime | None = None, only_scheduled: bool = False
) -> ParkingStatus:
    """Days left before each parking step from a known last-request time (naive times are UTC)."""
    return ParkingStatus(endpoint, _utc(last_request_at), _utc(now or datetime.now(UTC)), only_scheduled)


def _endpoint_of(run: HistoryRun) -> str:
    """The endpoint a run woke: an ``endpoint_id`` text figure, else the run's target."""
    for key, value in sorted(run.texts.items()):
        if key.rsplit("/", 1)[-1] == "endpoint_id" and value:
            return value
    return run.target


def parking_from_history(
    runs: Sequence[HistoryRun], *, now: datetime | None = None, other_requests: dict[str, datetime | str] | None = None
) -> list[ParkingStatus]:
    """One status per endpoint the newest run of each target woke, the newest run's start that woke
    it as its last request (older endpoint ids were torn down or replaced and are left out).

    ``other_requests`` maps an endpoint id to the last request *not* made by the scheduled check
    (from your own logs); without one, the check's pings are the only requests known and the
    status warns. Every run counts as a request, failed ones too: its wake job was submitted.
    """
    last: dict[str, datetime] = {}
    newest: dict[str, HistoryRun] = {}
    for run in runs:
        endpoint, started = _endpoint_of(run), _utc(run.started_at)
        if endpoint not in last or started > last[endpoint]:
            last[endpoint] = started
        if run.target not in newest or started > _utc(newest[run.target].started_at):
            newest[run.target] = run
    # Only endpoints the newest run of their target still woke: older ids were torn down or replaced.
    current = {_endpoint_of(run) for run in newest.values()}
    last = {endpoint: moment for endpoint, moment in last.items() if endpoint in current}
    others = {k: _utc(v) for k, v in (other_requests or {}).items()}
    statuses = []
    for endpoint, pinged in sorted(last.items()):
        other = others.get(endpoint)
        latest = max(pinged, other) if other is not None else pinged
        # The check is what keeps it alive when, without its pings, the endpoint would be parked.
        reference = now or datetime.now(UTC)
        kept_by_check = other is None or (_utc(reference) - other).total_seconds() >= PARKING_STEPS[0][0] * DAY_S
        statuses.append(parking_status(endpoint, latest, now=now, only_scheduled=kept_by_check))
    return statuses
