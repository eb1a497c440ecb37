"""What this run's own workers cost, from what the run saw of them (issue 18 item 2, issue 20 item 4).

Runpod bills serverless in hourly buckets per endpoint (REST v2 ``/v2/billing/serverless``), so the
bucket's total counts every use of the endpoint in that hour: a second ``make demo`` in the same
hour would "cost" both runs. This module attributes to a run what its own workers billed.

What the run observes: while ``rpbook run`` executes the notebooks, a :class:`WorkerWatch` lists the
workers of the endpoints the run may wake or start (those its parameters name, ``*endpoint_name``,
and those its notebooks record, ``endpoint_id``) every few seconds through
``GET /v2/serverless/{id}/workers``, which gives each active worker's ``startedAt``, ``gpuTypeId``
and ``gpuCount`` (REST v2 spec, ``listEndpointWorkers``; scaled-down workers are not listed, hence
the sampling). Failed runs are watched the same way, so whatever a run woke or started is in its
receipt, failed or not.

The rule (Runpod docs ``serverless/pricing.mdx``: a worker bills per second from start until it is
fully stopped, cold start, execution and idle timeout included):

- a worker's billed span runs from its ``startedAt`` until it was last listed, or, for a worker still
  up when the run ends, until the run's end plus the endpoint's idle timeout (the worker idles that
  long after the run's last request; an upper bound, since the last request ended before the run
  did; endpoints with active workers, ``workers.min`` > 0, get no tail: those bill anyway);
- the run owns the workers that started while it ran (it woke or started them; someone else's
  traffic on the same endpoint in the same minutes cannot be told apart), and the workers already up
  when it started on the endpoints it recorded using, from its start on (their earlier time is
  whoever woke them): two runs closer together than the idle timeout both count the first run's tail;
- each part is rounded up to a whole second and priced by ``rpbook.account.pricing`` (the worker's
  own GPU type × its GPUs).

Workers that start and stop between two samples are missed (``interval_s``: 1 s locally, 10 s on
Runpod, where a worker lives at least its idle timeout).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from rpbook.account import pricing
from rpbook.account.controlplane import RunpodClient
from rpbook.account.resources import GpuType, Worker
from rpbook.core.errors import RpbookError
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings
from rpbook.records.runfolder import run_figures

WATCH_FILE = "workers.json"


@dataclass
class SeenWorker:
    """One worker as the run saw it."""

    endpoint_id: str
    worker_id: str
    started_at: str
    first_seen: str
    last_seen: str
    gpu_type_id: str | None
    gpu_count: int


def endpoint_names(parameters: Mapping[str, Any]) -> list[str]:
    """The endpoints a run's parameters name (``endpoint_name``, ``embeddings_endpoint_name``, …)."""
    return sorted({str(v) for k, v in parameters.items() if k.endswith("endpoint_name") and isinstance(v, str) and v})


def recorded_endpoint_ids(run_dir: str | Path) -> list[str]:
    """Endpoint ids the run's notebooks recorded (``endpoint_id`` in their figures)."""
    return sorted({str(f["endpoint_id"]) for f in run_figures(run_dir).values() if f.get("endpoint_id")})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WorkerWatch:
    """Lists the workers of the run's endpoints every ``interval_s`` in a background thread.

    Every problem (localpod not started yet, a rejected key, a network blip) is skipped quietly: the
    watch informs the receipt, it never fails a run."""

    def __init__(
        self,
        settings: Settings,
        api_key: Secret,
        run_dir: Path,
        names: Iterable[str],
        *,
        interval_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.api_key = api_key
        self.run_dir = run_dir
        self.names = set(names)
        self.interval_s = interval_s if interval_s is not None else (1.0 if settings.target == "local" else 10.0)
        self.workers: dict[str, SeenWorker] = {}
        self.endpoint_ids: set[str] = set()
        self.listed_now: set[str] = set()
        """Workers listed by the latest sample."""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rpbook-worker-watch", daemon=True)

    def start(self) -> WorkerWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling, take one last sample (what still runs as the run ends) and save it."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.sample()
        self.save()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        """One look at the workers of every endpoint the run names or recorded."""
        try:
            with RunpodClient(self.settings, self.api_key, max_attempts=1, timeout=10) as client:
                ids = set(recorded_endpoint_ids(self.run_dir))
                if self.names:
                    ids |= {e.id for e in client.list_endpoints() if e.name in self.names}
                now = datetime.now(UTC)
                listed: set[str] = set()
                for endpoint_id in sorted(ids):
                    for worker in client.endpoint_workers(endpoint_id).workers:
                        listed.add(worker.id)
                        self._note(endpoint_id, worker, now)
        except (RpbookError, httpx.HTTPError, OSError, ValueError):
            return
        with self._lock:
            self.endpoint_ids |= ids
            self.listed_now = listed

    def _note(self, endpoint_id: str, worker: Worker, now: datetime) -> None:
        with self._lock:
            seen = self.workers.get(worker.id)
            if seen is None:
                started = worker.started_at or _iso(now - timedelta(seconds=worker.uptime_seconds or 0))
                self.workers[worker.id] = SeenWorker(
                    endpoint_id,
                    worker.id,
                    _iso(_parse(started)),
                    _iso(now),
                    _iso(now),
                    worker.gpu_type_id,
                    worker.gpu_count,
                )
            else:
                seen.last_seen = _iso(now)

    def observation(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoint_ids": sorted(self.endpoint_ids),
                "still_listed": sorted(self.listed_now),
                "workers": [asdict(w) for w in self.workers.values()],
            }

    def save(self) -> Path:
        import json

        path = self.run_dir / WATCH_FILE
        path.write_text(json.dumps(self.observation(), indent=2) + "\n", encoding="utf-8")
        return path


def load_observation(run_dir: str | Path) -> dict[str, Any] | None:
    """What the run's watch saved (``workers.json``), or None when the run was not watched."""
    import json

    path = Path(run_dir) / WATCH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class OwnCost:
    """The run's own workers: billed seconds after the run started and their price."""

    usd: float = 0.0
    workers: int = 0
    billed_s: int = 0
    tail_s: int = 0
    """Of ``billed_s``, the idle timeout still to come after the run ended (projected)."""
    per_worker: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        if not self.workers:
            return "no worker of its endpoints ran during it"
        tail = f", incl. {self.tail_s} s of idle timeout after it ended" if self.tail_s else ""
        return f"{self.workers} worker(s), {self.billed_s} billed s{tail}"


@dataclass(frozen=True)
class EndpointTerms:
    """What the rule needs to know of an endpoint at the run's end."""

    gpu_pools: tuple[str, ...]
    idle_timeout_s: int
    workers_min: int


def own_cost(
    observation: Mapping[str, Any],
    started: datetime,
    ended: datetime,
    terms: Mapping[str, EndpointTerms],
    gpu_types: list[GpuType],
    used: Iterable[str] = (),
) -> OwnCost:
    """The run's own cost by the rule in this module's docstring; ``used`` are the endpoints the
    run's notebooks recorded (``endpoint_id``)."""
    used = set(used)
    out = OwnCost()
    still = set(observation.get("still_listed") or ())
    for raw in observation.get("workers") or ():
        worker = SeenWorker(**raw)
        if _parse(worker.started_at) < started and worker.endpoint_id not in used:
            continue  # up before the run, on an endpoint the run did not record using: not its worker
        endpoint = terms.get(worker.endpoint_id, EndpointTerms((), 0, 0))
        begin = max(_parse(worker.started_at), started)
        stop = _parse(worker.last_seen)
        tail = 0.0
        if worker.worker_id in still and endpoint.workers_min == 0:
            projected = ended + timedelta(seconds=endpoint.idle_timeout_s)
            tail = max(0.0, (projected - max(stop, ended)).total_seconds())
            stop = max(stop, projected)
        seconds = pricing.billed_seconds((stop - begin).total_seconds())
        if seconds <= 0:
            continue
        hourly = pricing.ran_worker_usd_per_hour(gpu_types, worker.gpu_type_id, worker.gpu_count, endpoint.gpu_pools)
        usd = seconds * (hourly or 0.0) / 3600
        out.workers += 1
        out.billed_s += seconds
        out.tail_s += min(seconds, round(tail))
        out.usd += usd
        out.per_worker.append(
            {
                "endpoint_id": worker.endpoint_id,
                "worker_id": worker.worker_id,
                "billed_s": seconds,
                "usd": round(usd, 6),
            }
        )
    out.usd = round(out.usd, 6)
    return out
