"""The job journal and what a restart takes back from it (no HTTP, no worker: platform objects only).

Runpod's rules these tests hold localpod to: a job lives for its ``policy.ttl`` (24 h default) and a
finished job's result stays readable 30 min after ``/run`` and 1 min after ``/runsync``
(runpod/docs serverless/endpoints/send-requests.mdx and operation-reference.mdx); a job whose
worker vanished mid-run is retried automatically with the same id and input, its previous output
removed (serverless/load-balancing/overview.mdx "Automatic retries"; operation-reference.mdx
/retry; runpod-python 1.12.0 rp_ping.py reports each worker's job ids in its heartbeat).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from localpod.config import Settings
from localpod.serverless import jobs as J
from localpod.serverless.journal import JobJournal, job_from_record, job_record, merge_records
from localpod.serverless.platform import Platform
from localpod.store import Endpoint, Store, WorkerSession


def make_job(endpoint_id: str = "ep1", **fields: object) -> J.Job:
    job = J.Job(
        id=J.new_job_id(bool(fields.pop("sync", False))),
        endpoint_id=endpoint_id,
        input=fields.pop("input", {"n": 1}),
        sync=False,
        execution_timeout_s=600.0,
    )
    for key, value in fields.items():
        setattr(job, key, value)
    return job


def lines(*records: dict) -> list[bytes]:
    return [orjson.dumps(r) + b"\n" for r in records]


# -- records ----------------------------------------------------------------------------------------


def test_replay_applies_changes_in_order_and_forgets_dropped_jobs():
    a, b, c = make_job(), make_job(), make_job()
    merged = merge_records(
        lines(
            job_record(a),
            job_record(b),
            job_record(c),
            {"t": "start", "id": a.id, "w": "worker1", "at": 100.0},
            {"t": "end", "id": a.id, "st": J.COMPLETED, "fin": 101.5, "out": {"ok": 1}, "ch": "one"},
            {"t": "start", "id": b.id, "w": "worker1", "at": 100.0},
            {"t": "drop", "id": c.id},
            {"t": "end", "id": "never-submitted", "st": J.COMPLETED},
        )
    )
    assert list(merged) == [a.id, b.id]
    assert merged[a.id]["st"] == J.COMPLETED and merged[a.id]["out"] == {"ok": 1} and merged[a.id]["w"] == "worker1"
    assert merged[b.id]["st"] == J.IN_PROGRESS and merged[b.id]["start"] == 100.0


def test_a_retry_clears_the_previous_run():
    job = make_job()
    merged = merge_records(
        lines(
            job_record(job),
            {"t": "start", "id": job.id, "w": "w1", "at": 10.0},
            {"t": "end", "id": job.id, "st": J.FAILED, "fin": 11.0, "err": "boom"},
            {"t": "retry", "id": job.id, "r": 1, "sub": 12.0},
        )
    )[job.id]
    assert merged["st"] == J.IN_QUEUE and merged["r"] == 1 and merged["sub"] == 12.0
    assert not {"start", "w", "fin", "err", "out"} & merged.keys()


def test_a_torn_last_line_is_skipped_not_fatal():
    job = make_job()
    raw = [*lines(job_record(job)), b'{"t": "end", "id": "' + job.id.encode() + b'", "st": "COMPL']
    merged = merge_records(raw)
    assert merged[job.id]["st"] == J.IN_QUEUE


def test_a_finished_job_reads_the_same_after_a_round_trip():
    job = make_job(input={"prompt": "hi"}, webhook="http://127.0.0.1:9/hook", low_priority=True, ttl_s=60.0)
    job.submitted_at = time.monotonic() - 3.0
    job.start("worker7")
    job.started_at = job.submitted_at + 1.0
    output = [{"token": "a"}, {"token": "b"}]
    for item in output:
        job.add_chunk(item)
    job.finish(J.COMPLETED, output=output)
    job.finished_at = job.started_at + 1.5
    record = merge_records(lines(job_record(job)))[job.id]
    back = job_from_record(record)
    assert back.view() == job.view()
    assert back.chunks == output and back.done.is_set()
    assert (back.webhook, back.low_priority, back.ttl_s, back.input) == (job.webhook, True, 60.0, {"prompt": "hi"})


def test_numpy_outputs_are_written_as_lists(tmp_path: Path):
    journal = JobJournal(tmp_path / "s.jobs")
    journal.open([])
    job = make_job()
    job.journal = journal
    journal.submitted(job)
    job.start("w")
    job.finish(J.COMPLETED, output={"data": [{"embedding": np.arange(3, dtype=np.float32)}]})
    journal.close()
    record = journal.load()[0]
    assert record["out"] == {"data": [{"embedding": [0.0, 1.0, 2.0]}]}


def test_compaction_keeps_only_live_jobs_and_appends_after_them(tmp_path: Path):
    journal = JobJournal(tmp_path / "s.jobs")
    journal.open([])
    keep, gone = make_job(), make_job()
    for job in (keep, gone):
        journal.submitted(job)
    journal.dropped(gone)
    journal.compact([keep])
    assert (tmp_path / "s.jobs").read_bytes().count(b"\n") == 1
    later = make_job()
    journal.submitted(later)
    journal.close()
    assert [r["id"] for r in journal.load()] == [keep.id, later.id]
    assert not list(tmp_path.glob(".localpod-jobs-*")), "a temporary journal was left behind"


def test_without_a_state_file_nothing_is_written(tmp_path: Path):
    journal = JobJournal.beside(None)
    journal.open([])
    journal.submitted(make_job())
    assert not journal.enabled and journal.load() == []


# -- restart ----------------------------------------------------------------------------------------


def _platform(state: Path) -> Platform:
    return Platform(Settings(state_file=state), Store(state))


def _endpoint(store: Store, **fields: object) -> Endpoint:
    endpoint = Endpoint(
        id=store.new_endpoint_id(), name="e", image="runpod/mock-worker:latest", workers_min=0, workers_max=0, **fields
    )  # no worker: jobs wait where they are put
    store.endpoints[endpoint.id] = endpoint
    store.commit()
    return endpoint


def test_a_restart_keeps_the_queue_requeues_running_jobs_and_serves_retained_results(tmp_path: Path):
    state = tmp_path / "state.json"

    async def before_crash() -> dict[str, str]:
        platform = _platform(state)
        endpoint = _endpoint(platform.store)
        doomed = _endpoint(platform.store)
        await platform.start()
        runtime = platform.runtime(endpoint.id)
        ids: dict[str, str] = {}
        for name in ("done", "running", "failed", "queued", "low", "old", "short_ttl"):
            job = make_job(endpoint.id, input={"name": name}, low_priority=name == "low")
            runtime.submit(job)
            ids[name] = job.id
        platform.runtime(doomed.id).submit(make_job(doomed.id))
        jobs = runtime.jobs
        for name, status in (("done", J.COMPLETED), ("running", None), ("failed", J.FAILED), ("old", J.COMPLETED)):
            job = jobs[ids[name]]
            runtime.queue.remove(job)
            job.start("w-before")
            if status == J.COMPLETED:
                job.add_chunk({"name": name})
                job.finish(status, output={"name": name})
            elif status == J.FAILED:
                job.finish(status, error="handler raised")
        # A result older than its 30-minute retention, and a job whose 10 s ttl is over.
        jobs[ids["old"]].finished_at = time.monotonic() - J.RUN_RETENTION_S - 5
        platform.journal.finished(jobs[ids["old"]])
        short = jobs[ids["short_ttl"]]
        short.ttl_s, short.submitted_at = 10.0, time.monotonic() - 11
        platform.journal.submitted(short)
        del platform.store.endpoints[doomed.id]
        platform.store.commit()
        platform._loop_task.cancel()  # a crash: no stop(), nothing more is written
        return ids

    ids = asyncio.run(before_crash())

    async def after_restart() -> None:
        platform = _platform(state)
        await platform.start()
        try:
            [runtime] = platform.runtimes.values()
            jobs = runtime.jobs
            assert set(jobs) == {ids[n] for n in ("done", "running", "failed", "queued", "low")}
            done = jobs[ids["done"]]
            assert done.view()["status"] == J.COMPLETED and done.view()["output"] == {"name": "done"}
            assert done.view()["workerId"] == "w-before" and done.take_stream() == [{"output": {"name": "done"}}]
            assert jobs[ids["failed"]].view()["error"] == "handler raised"
            running = jobs[ids["running"]]
            assert (running.status, running.retries, running.worker_id) == (J.IN_QUEUE, 1, None)
            assert [j.input["name"] for j in runtime.queue] == ["running", "queued", "low"]
            assert runtime.health()["jobs"]["retried"] == 1
            assert list(runtime.finished) == [done, jobs[ids["failed"]]]
            await platform.stop()
        finally:
            platform.journal.close()
        # The compacted journal holds exactly the live jobs.
        assert {r["id"] for r in JobJournal.beside(state).load()} == set(jobs)

    asyncio.run(after_restart())


def test_a_graceful_stop_keeps_queued_jobs_instead_of_cancelling_them(tmp_path: Path):
    state = tmp_path / "state.json"

    async def first() -> str:
        platform = _platform(state)
        endpoint = _endpoint(platform.store)
        await platform.start()
        job = make_job(endpoint.id)
        platform.runtime(endpoint.id).submit(job)
        await platform.stop()
        return job.id

    job_id = asyncio.run(first())

    async def second() -> None:
        platform = _platform(state)
        await platform.start()
        [runtime] = platform.runtimes.values()
        assert runtime.jobs[job_id].status == J.IN_QUEUE
        await platform.stop()

    asyncio.run(second())


def test_openai_route_jobs_are_not_journaled(tmp_path: Path):
    state = tmp_path / "state.json"

    async def run() -> None:
        platform = _platform(state)
        endpoint = _endpoint(platform.store)
        await platform.start()
        job = make_job(endpoint.id, durable=False)
        platform.runtime(endpoint.id).submit(job)
        platform.journal.close()
        assert job.journal is None and platform.journal.load() == []
        await platform.stop()

    asyncio.run(run())


# -- billing ----------------------------------------------------------------------------------------


def test_sessions_open_at_a_crash_end_at_the_last_heartbeat_not_at_the_restart(tmp_path: Path):
    state = tmp_path / "state.json"
    store = Store(state)
    started = time.time() - 100
    store.sessions.append(
        WorkerSession(
            endpoint_id="e", worker_id="w", gpu_type_id="g", gpu_count=1, price_per_gpu_s=0.001, started_at=started
        )
    )
    store.commit()
    os.utime(state, (started + 10, started + 10))  # the state's last commit: 90 s ago
    store.heartbeat(started + 40)  # last sign of life: 60 s ago; the crash follows
    reloaded = Store(state)
    assert reloaded.sessions[0].stopped_at == pytest.approx(started + 40)
    reloaded.heartbeat()  # the new process beats: the dead session's end must not move
    assert Store(state).sessions[0].stopped_at == pytest.approx(started + 40)


def test_without_a_heartbeat_the_state_commit_time_ends_open_sessions(tmp_path: Path):
    state = tmp_path / "state.json"
    store = Store(state)
    started = time.time() - 100
    store.sessions.append(
        WorkerSession(
            endpoint_id="e", worker_id="w", gpu_type_id="g", gpu_count=1, price_per_gpu_s=0.001, started_at=started
        )
    )
    store.commit()
    os.utime(state, (started + 5, started + 5))
    assert Store(state).sessions[0].stopped_at == pytest.approx(started + 5)


def test_a_job_that_cannot_be_recorded_is_refused_and_later_changes_are_only_logged(tmp_path: Path, caplog):
    from localpod.serverless.journal import JournalError

    journal = JobJournal(tmp_path / "s.jobs")
    journal.open([])
    job = make_job()
    journal.submitted(job)
    os.close(journal._fd)
    journal._fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails, as on a full disk
    with pytest.raises(JournalError, match="free disk space"):
        journal.submitted(make_job())
    job.journal = journal
    job.start("w")
    job.finish(J.COMPLETED, output=1)  # the change stands in memory; the failure is logged
    assert job.status == J.COMPLETED and "cannot write the job journal" in caplog.text
    journal.close()


def test_the_journal_is_compacted_while_running_once_it_outgrows_its_live_jobs(tmp_path: Path, monkeypatch):
    from localpod.serverless import journal as journal_module

    monkeypatch.setattr(journal_module, "COMPACT_MIN_BYTES", 2000)
    state = tmp_path / "state.json"

    async def run() -> None:
        platform = _platform(state)
        endpoint = _endpoint(platform.store)
        await platform.start()
        runtime = platform.runtime(endpoint.id)
        kept = make_job(endpoint.id)
        runtime.submit(kept)
        runtime.queue.remove(kept)
        kept.start("w")
        kept.finish(J.COMPLETED, output={"kept": True})  # a retained result: purge leaves it
        for _ in range(40):  # submitted and purged: nothing of them is live
            runtime.submit(make_job(endpoint.id))
            assert runtime.purge() == 1
        assert platform.journal.needs_compaction()
        platform._last_beat = 0.0
        platform.beat()
        assert not platform.journal.needs_compaction()
        assert [(r["id"], r["out"]) for r in platform.journal.load()] == [(kept.id, {"kept": True})]
        platform._loop_task.cancel()

    asyncio.run(run())
