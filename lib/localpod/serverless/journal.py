"""The job journal: an append-only JSON-lines file that makes the serverless queue survive a crash.

Runpod keeps a job for its ``policy.ttl`` (24 h by default) and a finished job's result for 30
minutes (``/run``) or 1 minute (``/runsync``) (runpod/docs serverless/endpoints/send-requests.mdx,
operation-reference.mdx "Job results expire after a set period"). A ``kill -9`` of localpod must
therefore lose neither the queue nor the retained results.

How: every change of a durable job (submitted, taken by a worker, finished, retried, deleted) is
one line written to the file with a plain ``write()`` before the change is visible to any client:
the event loop runs the change and the journal write in one step, and a response is only sent
after it. A killed process loses nothing the kernel already has, so a job whose id a client got,
or a result a client saw as COMPLETED, is on disk after ``kill -9`` (an operating-system crash
can lose up to the last ``fsync``, which :meth:`JobJournal.sync` does about once a second, off
the event loop). No per-change ``fsync`` keeps the queue's throughput.

On start the file is read, later lines overriding earlier ones, a torn last line skipped; then it
is rewritten (compacted) with one ``job`` line per job still alive, atomically (temporary file +
``os.replace``). It is compacted again while running once it grows well past its live content.

Record shapes (``t`` is the kind; times are wall-clock seconds):
``job`` (a whole job: on submit and in compacted files), ``start`` (a worker took it), ``end``
(final state and result), ``retry`` (``/retry`` or a requeue), ``drop`` (deleted: ttl, purge).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from localpod.http import JSON_OPTIONS
from localpod.serverless import jobs as J
from localpod.store import write_atomically

log = logging.getLogger("localpod.journal")

JOURNAL_SUFFIX = ".jobs"
"""The journal sits next to the ``--state`` file: ``state.json`` -> ``state.json.jobs``."""
COMPACT_MIN_BYTES = 16 * 1024 * 1024
"""Compact while running only once this much was appended since the last compaction..."""
COMPACT_GROWTH = 4
"""...and the file is this many times the size of its last compacted content."""


class JournalError(Exception):
    """A new job could not be recorded: it must not be acknowledged."""


def _wall_offset() -> float:
    """Add to a ``time.monotonic()`` reading to get wall-clock seconds (jobs time with monotonic)."""
    return time.time() - time.monotonic()


def _mono(wall: float | None, offset: float) -> float | None:
    return None if wall is None else wall - offset


def _wall(mono: float | None, offset: float) -> float | None:
    return None if mono is None else mono + offset


def _encode_fallback(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _chunks_mark(job: J.Job) -> Any:
    """How to rebuild ``job.chunks`` from the output without writing them twice: ``"out"`` when the
    chunks are the output's items (generator handlers), ``"one"`` when the only chunk is the output
    (plain handlers), else the chunks themselves."""
    chunks, output = job.chunks, job.output
    if not chunks:
        return None
    if (
        isinstance(output, list)
        and len(output) == len(chunks)
        and all(a is b for a, b in zip(output, chunks, strict=True))
    ):
        return "out"
    if len(chunks) == 1 and chunks[0] is output:
        return "one"
    return list(chunks)


def job_record(job: J.Job, offset: float | None = None) -> dict[str, Any]:
    """The whole job as one ``job`` record."""
    offset = _wall_offset() if offset is None else offset
    record: dict[str, Any] = {
        "t": "job",
        "id": job.id,
        "ep": job.endpoint_id,
        "in": job.input,
        "sync": job.sync,
        "xt": job.execution_timeout_s,
        "ttl": job.ttl_s,
        "st": job.status,
        "sub": _wall(job.submitted_at, offset),
        "r": job.retries,
    }
    if job.webhook:
        record["wh"] = job.webhook
    if job.low_priority:
        record["lp"] = True
    if job.started_at is not None:
        record["start"] = _wall(job.started_at, offset)
        record["w"] = job.worker_id
    if job.is_final:
        record.update(_end_fields(job, offset))
    return record


def _end_fields(job: J.Job, offset: float) -> dict[str, Any]:
    fields: dict[str, Any] = {"st": job.status, "fin": _wall(job.finished_at, offset)}
    if job.output is not None:
        fields["out"] = job.output
    if job.error is not None:
        fields["err"] = job.error
    if job.error_item is not None:
        fields["ei"] = job.error_item
    mark = _chunks_mark(job)
    if mark is not None:
        fields["ch"] = mark
    return fields


def job_from_record(record: dict[str, Any], offset: float | None = None) -> J.Job:
    """A :class:`~localpod.serverless.jobs.Job` in the state the record describes (not journaled)."""
    offset = _wall_offset() if offset is None else offset
    job = J.Job(
        id=record["id"],
        endpoint_id=record["ep"],
        input=record.get("in"),
        sync=bool(record.get("sync")),
        execution_timeout_s=float(record.get("xt", 600.0)),
        webhook=record.get("wh"),
        low_priority=bool(record.get("lp", False)),
        ttl_s=float(record.get("ttl", J.DEFAULT_TTL_S)),
    )
    job.status = record.get("st", J.IN_QUEUE)
    job.submitted_at = _mono(record.get("sub"), offset) or time.monotonic()
    job.started_at = _mono(record.get("start"), offset)
    job.worker_id = record.get("w")
    job.retries = int(record.get("r", 0))
    if job.status in J.FINAL_STATES:
        job.finished_at = _mono(record.get("fin"), offset)
        job.output = record.get("out")
        job.error = record.get("err")
        job.error_item = record.get("ei")
        mark = record.get("ch")
        if mark == "out" and isinstance(job.output, list):
            job.chunks = list(job.output)
        elif mark == "one":
            job.chunks = [job.output]
        elif isinstance(mark, list):
            job.chunks = mark
        job.done.set()
        job.changed.set()
    return job


def merge_records(lines: Iterable[bytes]) -> dict[str, dict[str, Any]]:
    """Replay journal lines into the last known record of each job, in first-submitted order.

    A line that is not JSON (a write torn by the crash) is skipped; a change to a job the journal
    never saw submitted is ignored."""
    jobs: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("job journal line %d is not JSON (a write cut short by a crash?); skipped", number)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            continue
        kind, job_id = record.get("t"), record["id"]
        if kind == "job":
            jobs[job_id] = record
            continue
        current = jobs.get(job_id)
        if current is None:
            continue
        if kind == "drop":
            del jobs[job_id]
        elif kind == "start":
            current.update(st=J.IN_PROGRESS, start=record.get("at"), w=record.get("w"))
        elif kind == "end":
            for key in ("out", "err", "ei", "ch"):
                current.pop(key, None)
            current.update({k: v for k, v in record.items() if k not in ("t", "id", "at")})
        elif kind == "retry":
            for key in ("start", "w", "fin", "out", "err", "ei", "ch"):
                current.pop(key, None)
            current.update(st=J.IN_QUEUE, sub=record.get("sub"), r=record.get("r", current.get("r", 0)))
    return jobs


class JobJournal:
    """The journal of one ``--state`` file; without a state file every method does nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self.appended = 0
        """Bytes appended since the last compaction."""
        self.compacted_size = 0
        self.records = 0

    @classmethod
    def beside(cls, state_file: Path | None) -> JobJournal:
        return cls(None if state_file is None else state_file.with_name(state_file.name + JOURNAL_SUFFIX))

    @property
    def enabled(self) -> bool:
        return self._fd is not None

    # -- start ---------------------------------------------------------------------------------

    def load(self) -> list[dict[str, Any]]:
        """Every job record the file holds (nothing is opened for writing yet)."""
        if self.path is None or not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            return list(merge_records(handle).values())

    def open(self, live: Iterable[J.Job]) -> None:
        """Rewrite the file with ``live`` jobs only, then append from there (call after :meth:`load`)."""
        if self.path is None:
            return
        self.compact(live)

    # -- writes --------------------------------------------------------------------------------

    def _append(self, record: dict[str, Any]) -> None:
        """Write one record. A failed write of a new job raises :class:`JournalError` (the job is
        then refused, never acknowledged); a failed write of a change is logged and the queue goes
        on, since the change already happened in memory."""
        if self._fd is None:
            return
        line = orjson.dumps(record, option=JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE, default=_encode_fallback)
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # a regular file takes it in one call; be exact anyway
                written += os.write(self._fd, line[written:])
        except OSError as exc:
            message = (
                f"cannot write the job journal {self.path}: {exc.strerror or exc}; free disk space or fix the "
                f"folder's permissions (jobs changed meanwhile are lost if localpod crashes)"
            )
            if record.get("t") == "job":
                raise JournalError(message) from exc
            log.error("%s", message)
            return
        self.appended += len(line)
        self.records += 1

    def submitted(self, job: J.Job) -> None:
        if self._fd is not None:
            self._append(job_record(job))

    def started(self, job: J.Job) -> None:
        self._append({"t": "start", "id": job.id, "w": job.worker_id, "at": _wall(job.started_at, _wall_offset())})

    def finished(self, job: J.Job) -> None:
        if self._fd is not None:
            self._append({"t": "end", "id": job.id, **_end_fields(job, _wall_offset())})

    def retried(self, job: J.Job) -> None:
        self._append({"t": "retry", "id": job.id, "r": job.retries, "sub": _wall(job.submitted_at, _wall_offset())})

    def dropped(self, job: J.Job) -> None:
        self._append({"t": "drop", "id": job.id})

    # -- upkeep --------------------------------------------------------------------------------

    def needs_compaction(self) -> bool:
        return self.enabled and self.appended >= max(COMPACT_MIN_BYTES, COMPACT_GROWTH * self.compacted_size)

    def compact(self, live: Iterable[J.Job]) -> None:
        """Replace the file by one ``job`` record per live job, atomically, and append after it."""
        if self.path is None:
            return
        offset = _wall_offset()
        payload = b"".join(
            orjson.dumps(
                job_record(job, offset), option=JSON_OPTIONS | orjson.OPT_APPEND_NEWLINE, default=_encode_fallback
            )
            for job in live
            if job.durable
        )
        write_atomically(self.path, payload, ".localpod-jobs-")
        self._close_fd()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.compacted_size = len(payload)
        self.appended = 0

    def sync(self) -> None:
        """``fsync`` what was appended (covers an operating-system crash; ``kill -9`` needs none)."""
        fd = self._fd
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError:  # closed by a concurrent compaction: that one was fsynced
            pass

    def close(self) -> None:
        """Stop recording (a graceful stop: what is still queued or running is kept for the next start)."""
        self.sync()
        self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
