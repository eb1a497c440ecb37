"""Worker logs as Runpod serves them: ``GET /v2/serverless/{id}/workers/{workerId}/logs``.

Each emulated worker writes what its real image would print (see :mod:`worker_output`) into a
:class:`WorkerLog`: timestamped lines with a ``source``, ``container`` (the image's stdout/stderr)
or ``system`` (host lifecycle), the two sources of the REST v2 spec's ``LogSource``. The route
streams them as Server-Sent Events whose ``id`` is ``<ts>/<sequence>``, the shape of the spec's
own example (``id: 2026-06-01T12:05:04Z/000000000042``), so a reconnect with ``Last-Event-ID``
resumes after the last line seen.

Retention: Runpod keeps worker logs for 90 days (its ``serverless/development/logs.mdx``) while
``/workers`` lists only active workers. localpod keeps logs in memory only (they are not worth a
write of the durable state per line): the logs of the :data:`RETAINED_WORKERS` most recent
workers of each endpoint, stopped ones included, each capped at :data:`MAX_LINES` lines.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

CONTAINER = "container"
SYSTEM = "system"
SOURCES = (CONTAINER, SYSTEM)
MAX_LINES = 2000
"""Lines kept per worker: a vLLM start is about ten lines, a job one or two."""
RETAINED_WORKERS = 20
"""Workers per endpoint whose logs stay readable, the most recent first to be kept."""


def iso_utc(ts: float) -> str:
    """RFC 3339 in UTC with milliseconds (``2026-06-01T12:05:04.123Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_cursor(value: str) -> tuple[float, int | None]:
    """A resume cursor: an event id (``<ts>/<seq>``) or a bare RFC 3339 timestamp. Raises
    ``ValueError`` with what was wrong."""
    stamp, _, seq = value.strip().partition("/")
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an RFC 3339 timestamp (like 2026-06-01T12:05:04Z) or a log event id"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if seq and not seq.isdigit():
        raise ValueError(f"{value!r}: the part after '/' must be the event's sequence number")
    return moment.timestamp(), int(seq) if seq else None


@dataclass(frozen=True)
class LogLine:
    """One line a worker printed."""

    seq: int
    ts: float
    source: str
    line: str

    @property
    def event_id(self) -> str:
        return f"{iso_utc(self.ts)}/{self.seq:012d}"

    def payload(self) -> dict[str, str]:
        """The SSE ``data`` object of the spec: ``{"ts", "source", "line"}``."""
        return {"ts": iso_utc(self.ts), "source": self.source, "line": self.line}


class WorkerLog:
    """The bounded log of one worker; followers wait on :meth:`wait` for new lines."""

    def __init__(self, endpoint_id: str, worker_id: str, max_lines: int = MAX_LINES) -> None:
        self.endpoint_id = endpoint_id
        self.worker_id = worker_id
        self.lines: collections.deque[LogLine] = collections.deque(maxlen=max_lines)
        self.closed = False
        self._seq = 0
        self._changed = asyncio.Event()

    def write(self, source: str, text: str, ts: float) -> None:
        """Append one line per text line (a multi-line print is several log lines, as on a console)."""
        for part in text.splitlines() or [""]:
            self._seq += 1
            self.lines.append(LogLine(self._seq, ts, source, part))
        self._wake()

    def close(self) -> None:
        """The worker stopped: no more lines; followers finish their stream."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, after_seq: int) -> None:
        """Return once a line after ``after_seq`` exists or the log is closed."""
        while not self.closed and (not self.lines or self.lines[-1].seq <= after_seq):
            await self._changed.wait()

    def select(
        self,
        *,
        source: str | None = None,
        tail: int = 100,
        since: float | None = None,
        after: tuple[float, int | None] | None = None,
    ) -> list[LogLine]:
        """The backfill: lines after the ``after`` cursor (Last-Event-ID), else from ``since``, else
        the last ``tail`` lines; only ``source``'s lines when given. Precedence as the spec's
        ``LogLastEventID``, ``LogSince`` and ``LogTail`` parameters describe."""
        lines = [line for line in self.lines if source is None or line.source == source]
        if after is not None:
            ts, seq = after
            return [line for line in lines if (line.seq > seq if seq is not None else line.ts > ts)]
        if since is not None:
            return [line for line in lines if line.ts >= since]
        return lines[-tail:] if tail > 0 else []

    def after(self, seq: int, source: str | None = None) -> list[LogLine]:
        return [line for line in self.lines if line.seq > seq and (source is None or line.source == source)]

    def text(self) -> Iterator[str]:
        """Every kept line's text (tests search them for secrets)."""
        return (line.line for line in self.lines)


class WorkerLogBook:
    """Logs of every endpoint's recent workers, in memory."""

    def __init__(self, retained: int = RETAINED_WORKERS) -> None:
        self.retained = retained
        self._logs: dict[str, collections.OrderedDict[str, WorkerLog]] = {}

    def open(self, endpoint_id: str, worker_id: str) -> WorkerLog:
        """A new worker's log; the oldest stopped workers' logs go beyond ``retained``."""
        logs = self._logs.setdefault(endpoint_id, collections.OrderedDict())
        log = logs[worker_id] = WorkerLog(endpoint_id, worker_id)
        for old_id, old in list(logs.items()):
            if len(logs) <= self.retained:
                break
            if old.closed:
                del logs[old_id]
        return log

    def get(self, endpoint_id: str, worker_id: str) -> WorkerLog | None:
        logs = self._logs.get(endpoint_id)
        return None if logs is None else logs.get(worker_id)

    def worker_ids(self, endpoint_id: str) -> list[str]:
        """Workers with a kept log, oldest first (stopped ones included)."""
        return list(self._logs.get(endpoint_id, {}))

    def all_logs(self) -> list[WorkerLog]:
        return [log for logs in self._logs.values() for log in logs.values()]

    def drop_endpoint(self, endpoint_id: str) -> None:
        for log in self._logs.pop(endpoint_id, {}).values():
            log.close()

    def clear(self) -> None:
        for endpoint_id in list(self._logs):
            self.drop_endpoint(endpoint_id)
