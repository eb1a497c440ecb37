"""Keep-alive scoped to a conversation: warm while a person chats, never longer.

A Runpod worker stops ``idleTimeout`` seconds after its last job ends (runpod/docs
endpoint-configurations.mdx), so a user who pauses longer than that mid-conversation meets a cold
start again. Static fixes (``workers.min`` left at 1) bill around the clock; this module ties the
warmth to the conversation instead. It lives exactly as long as the conversation: it stops by
itself after ``conversation_idle_s`` without a turn, after ``max_session_s``, or when its cost cap
is reached, whichever comes first.

Two strategies:

- ``ping``: the smallest job the worker accepts (worker-vllm: one token; worker-infinity-embedding:
  one short text), sent ``margin_s`` before the idle timeout would stop the last worker and only
  when no turn ran since. Every ping buys up to one idle timeout of billed worker time. Pings are
  recorded with their job ids (``KeepAliveReport.pings``) so figures tell them from real traffic.
- ``pin``: raise the endpoint's ``workers.min`` through REST v2 for the conversation and restore
  the previous value afterwards. A pinned worker bills for the whole conversation. The pin's lease
  (:mod:`rpbook.endpoint.pins`) is written before the change and restores it whatever ends the
  conversation.

Its neighbours: :mod:`rpbook.endpoint.pins` (leases), :mod:`rpbook.endpoint.keepalive_report`
(cost estimate and report), :mod:`rpbook.endpoint.turns` (clients that report user turns).
"""

from __future__ import annotations

import atexit
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from rpbook.account.billing_now import price_per_worker_hour
from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import _as_secret, run_job
from rpbook.core import restore
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ConfigError, RpbookError
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings
from rpbook.endpoint.keepalive_report import CostEstimate, KeepAliveReport, PingRecord
from rpbook.endpoint.pins import (
    LEASE_GRACE_S,
    Lease,
    lease_dir,
    lease_path,
    read_leases,
    recover_stale_pins,
    restore_pin,
    write_lease,
)
from rpbook.endpoint.turns import langchain_callbacks, wrap_client

Strategy = Literal["off", "ping", "pin"]
STRATEGIES = ("off", "ping", "pin")


def ping_input(image: str, model: str) -> dict[str, Any]:
    """The smallest job each worker image accepts. worker-vllm (src/handler.py, job input with
    ``prompt`` + ``sampling_params``) generates one token; worker-infinity-embedding (src/handler.py:
    ``input`` + ``model``) embeds one word. Any other image gets an empty input (mock-worker)."""
    if "worker-infinity-embedding" in image:
        return {"model": model, "input": ["ping"]}
    if "vllm" in image:
        return {"prompt": "ping", "sampling_params": {"max_tokens": 1}}
    return {}


# -- the keep-alive -----------------------------------------------------------------------------


@rich_output
class KeepAlive:
    """Keeps an endpoint warm for one conversation (see the module docstring).

    Use it as a context manager (``with`` or ``async with``); call :meth:`touch` at every user turn,
    or let :meth:`wrap` (an ``openai.OpenAI`` client) or :meth:`langchain_callbacks` (``ChatOpenAI``)
    do it."""

    def __init__(
        self,
        settings: Settings,
        api_key: Secret | str,
        endpoint_id: str,
        *,
        strategy: Strategy = "ping",
        conversation_idle_s: float = 600.0,
        max_session_s: float = 3600.0,
        cost_cap_usd: float | None = None,
        model: str = "",
        margin_s: float | None = None,
        pin_workers: int = 1,
        job_input: Mapping[str, Any] | None = None,
        leases: Path | None = None,
        install_signal_handlers: bool = True,
        time_scale: float = 1.0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"keep-alive strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        for name, value in (("conversation_idle_s", conversation_idle_s), ("max_session_s", max_session_s)):
            if not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if cost_cap_usd is not None and cost_cap_usd < 0:
            raise ConfigError(f"cost_cap_usd must be >= 0 or None, got {cost_cap_usd}")
        self.settings = settings
        self.api_key = _as_secret(api_key)
        self.endpoint_id = endpoint_id
        self.strategy: str = strategy
        self.conversation_idle_s = float(conversation_idle_s)
        self.max_session_s = float(max_session_s)
        self.cost_cap_usd = cost_cap_usd
        self.pin_workers = max(1, int(pin_workers))
        self.leases = leases or lease_dir(settings)
        self.install_signal_handlers = install_signal_handlers
        with RunpodClient(settings, self.api_key) as client:
            endpoint = client.get_endpoint(endpoint_id)
            hourly = price_per_worker_hour(client, endpoint)
        # time_scale: localpod's idle_timeout_scale, when a runbook plays a conversation faster
        self.idle_timeout_s = float(endpoint.idle_timeout_s or 5) * time_scale
        self.price_per_s = None if hourly is None else hourly / 3600
        self.margin_s = float(margin_s) if margin_s is not None else min(10.0, self.idle_timeout_s / 4)
        if not 0 < self.margin_s < self.idle_timeout_s:
            raise ConfigError(
                f"margin_s must be between 0 and the idle timeout ({self.idle_timeout_s:g} s), got {self.margin_s:g}"
            )
        self.job_input = dict(job_input) if job_input is not None else ping_input(endpoint.image or "", model)
        self._lock = threading.RLock()  # re-entrant: a SIGTERM restore may run while the main thread holds it
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._t0 = 0.0
        self._last_turn = 0.0
        self._last_activity = 0.0
        self._lease: Lease | None = None
        self._pin_since: float | None = None
        self._on_signal: restore.Registration | None = None
        self.report = KeepAliveReport(
            strategy=strategy, endpoint_id=endpoint_id, started_wall=0.0, duration_s=0.0, stop_reason="not started"
        )
        self.estimate = self._estimate()

    # -- cost

    @property
    def ping_interval_s(self) -> float:
        return self.idle_timeout_s - self.margin_s

    @property
    def usd_per_ping(self) -> float | None:
        return None if self.price_per_s is None else self.price_per_s * self.idle_timeout_s

    def _estimate(self) -> CostEstimate:
        hourly = None if self.price_per_s is None else self.price_per_s * 3600
        max_pings = 0
        worst: float | None = 0.0
        if self.strategy == "ping":
            max_pings = math.floor(self.max_session_s / self.ping_interval_s)
            worst = None if self.usd_per_ping is None else max_pings * self.usd_per_ping
        elif self.strategy == "pin":
            worst = None if self.price_per_s is None else self.max_session_s * self.price_per_s * self.pin_workers
        if worst is not None and self.cost_cap_usd is not None:
            worst = min(worst, self.cost_cap_usd)
        return CostEstimate(
            self.strategy,
            hourly,
            self.idle_timeout_s,
            self.ping_interval_s if self.strategy == "ping" else None,
            self.usd_per_ping,
            max_pings,
            worst,
            self.cost_cap_usd,
        )

    def _spent(self, now: float) -> float:
        if self.price_per_s is None:
            return 0.0
        if self.strategy == "ping":
            return len(self.report.pings) * (self.usd_per_ping or 0.0)
        if self.strategy == "pin":
            pinned = self.report.pinned_s + (now - self._pin_since if self._pin_since is not None else 0.0)
            return pinned * self.price_per_s * self.pin_workers
        return 0.0

    # -- turns

    def touch(self) -> None:
        """A user turn happened (call at its start and end): the conversation is alive and the
        worker's idle timer restarts when the turn's job ends."""
        with self._lock:
            now = time.monotonic()
            self._last_turn = now
            self._last_activity = now
        self._wake.set()

    def turn_started(self) -> None:
        with self._lock:
            self._in_flight += 1
        self.touch()

    def turn_ended(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
        self.touch()

    @property
    def active(self) -> bool:
        return self._thread is not None and not self._stopped.is_set()

    # -- lifecycle

    def start(self) -> KeepAlive:
        if self._thread is not None:
            raise RpbookError("this keep-alive was already started; create a new one per conversation")
        for message in recover_stale_pins(self.settings, self.api_key, self.leases):
            print(message)
            self.report.messages.append(message)
        self._t0 = self._last_turn = self._last_activity = time.monotonic()
        self.report.started_wall = time.time()
        self.report.stop_reason = "running"
        if self.install_signal_handlers:  # SIGTERM/SIGHUP restore the pin before the process ends
            what = "the keep-alive pin" if self.strategy == "pin" else "the keep-alive"
            self._on_signal = restore.register(f"{what} of endpoint {self.endpoint_id}", lambda: self._finish("signal"))
        if self.strategy == "pin":
            self._pin()
        atexit.register(self._atexit)
        self._thread = threading.Thread(target=self._run, name=f"keepalive-{self.endpoint_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, reason: str = "conversation closed") -> KeepAliveReport:
        """Stop (idempotent): no more pings; a pin is restored and its lease removed."""
        self._finish(reason)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self._on_signal is not None:
            restore.unregister(self._on_signal)
            self._on_signal = None
        atexit.unregister(self._atexit)
        return self.report

    def _finish(self, reason: str) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self._wake.set()
        now = time.monotonic()
        if self.strategy == "pin":
            self._unpin(now)
        self.report.stop_reason = reason
        self.report.duration_s = now - self._t0 if self._t0 else 0.0
        self.report.usd = None if self.price_per_s is None else self._spent(now)

    def _atexit(self) -> None:  # pragma: no cover - interpreter exit
        self._finish("interpreter exit")

    def _pin(self) -> None:
        with RunpodClient(self.settings, self.api_key) as client:
            endpoint = client.get_endpoint(self.endpoint_id)
            for _, lease in read_leases(self.leases):
                if lease.endpoint_id == self.endpoint_id and lease.rest_url == self.settings.rest_url:
                    raise RpbookError(
                        f"endpoint {self.endpoint_id} is already pinned by pid {lease.pid} on "
                        f"{lease.host} until {time.ctime(lease.expires_at)}; use strategy 'ping' "
                        "or wait for that conversation to end"
                    )
            target = max(endpoint.workers_min, min(self.pin_workers, endpoint.workers_max))
            if target == endpoint.workers_min:
                self.report.messages.append(f"workers.min is already {endpoint.workers_min}: nothing to pin")
                return
            now = time.time()
            self._lease = Lease(
                self.endpoint_id,
                self.settings.rest_url,
                endpoint.workers_min,
                target,
                os.getpid(),
                socket.gethostname(),
                now,
                now + self.max_session_s + LEASE_GRACE_S,
            )
            write_lease(self.leases, self._lease)  # before the change: a crash in between is recoverable
            client.set_workers(self.endpoint_id, workers_min=target)
        self._pin_since = time.monotonic()

    def _unpin(self, now: float) -> None:
        if self._lease is None:
            return
        lease, self._lease = self._lease, None
        if self._pin_since is not None:
            self.report.pinned_s += now - self._pin_since
            self._pin_since = None
        try:
            with RunpodClient(self.settings, self.api_key) as client:
                self.report.messages.append(restore_pin(client, lease))
        except RpbookError as exc:
            self.report.messages.append(
                f"could not restore workers.min of {lease.endpoint_id} ({exc}); the lease "
                "stays and the next runbook restores it"
            )
            return
        lease_path(self.leases, lease.endpoint_id).unlink(missing_ok=True)

    def _stop_reason(self, now: float) -> str | None:
        if now - self._last_turn >= self.conversation_idle_s and self._in_flight == 0:
            return f"no turn for {self.conversation_idle_s:g} s (conversation_idle_s)"
        if now - self._t0 >= self.max_session_s:
            return f"max_session_s ({self.max_session_s:g} s) reached"
        if self.cost_cap_usd is not None and self.price_per_s is not None:
            step = (self.usd_per_ping or 0.0) if self.strategy == "ping" else 0.0
            if self._spent(now) + step > self.cost_cap_usd:
                return f"cost cap ${self.cost_cap_usd:g} reached"
        return None

    def _next_deadline(self, now: float) -> float:
        times = [self._last_turn + self.conversation_idle_s, self._t0 + self.max_session_s]
        if self.strategy == "ping":
            times.append(self._last_activity + self.ping_interval_s)
        if self.strategy == "pin" and self.cost_cap_usd is not None and self.price_per_s:
            times.append(now + max(0.0, (self.cost_cap_usd - self._spent(now)) / (self.price_per_s * self.pin_workers)))
        return min(times)

    def _run(self) -> None:
        while not self._stopped.is_set():
            now = time.monotonic()
            reason = self._stop_reason(now)
            if reason is not None:
                self._finish(reason)
                return
            with self._lock:
                due = (
                    self.strategy == "ping"
                    and self._in_flight == 0
                    and now >= self._last_activity + self.ping_interval_s
                )
            if due:
                self._ping(now)
                continue
            self._wake.clear()
            self._wake.wait(timeout=max(0.0, self._next_deadline(now) - now))

    def _ping(self, now: float) -> None:
        started = time.monotonic()
        record = PingRecord(job_id=None, sent_at=started - self._t0, duration_s=0.0, ok=False)
        try:
            result = run_job(
                self.settings,
                self.api_key,
                self.endpoint_id,
                self.job_input,
                timeout_s=max(self.idle_timeout_s, 30.0),
                poll_s=min(0.5, self.margin_s / 4),
            )
            record.job_id, record.ok = result.job_id, True
        except RpbookError as exc:
            record.error = str(exc)
            record.job_id = getattr(exc, "job_id", None)
        record.duration_s = time.monotonic() - started
        self.report.pings.append(record)
        with self._lock:
            self._last_activity = time.monotonic()

    # -- context managers

    def __enter__(self) -> KeepAlive:
        print(self.estimate)
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        reason = "conversation closed" if exc_type is None else f"conversation ended by {exc_type.__name__}"
        self.stop(reason)

    async def __aenter__(self) -> KeepAlive:
        import asyncio

        print(self.estimate)
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import asyncio

        reason = "conversation closed" if exc_type is None else f"conversation ended by {exc_type.__name__}"
        await asyncio.to_thread(self.stop, reason)

    # -- client wrappers

    def wrap(self, client: Any) -> Any:
        """An ``openai.OpenAI`` (or ``AsyncOpenAI``) client whose every call is a user turn
        (:func:`rpbook.endpoint.turns.wrap_client`)."""
        return wrap_client(client, self)

    def langchain_callbacks(self) -> list[Any]:
        """Callbacks for LangChain's ``ChatOpenAI`` whose every model call is a user turn
        (:func:`rpbook.endpoint.turns.langchain_callbacks`)."""
        return langchain_callbacks(self)

    def __str__(self) -> str:
        lines = [
            f"keep-alive {self.strategy} on endpoint {self.endpoint_id} (idle timeout {self.idle_timeout_s:g} s)",
            f"  estimate: {self.estimate}",
        ]
        if self.report.stop_reason not in ("not started", "running"):
            lines.append(f"  report: {self.report}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [
            ["strategy", self.strategy],
            ["endpoint", self.endpoint_id],
            ["idle timeout", f"{self.idle_timeout_s:g} s"],
            ["estimate", str(self.estimate)],
        ]
        if self.report.stop_reason not in ("not started", "running"):
            rows.append(["report", str(self.report)])
        return html_table(None, rows, row_headers=True)
