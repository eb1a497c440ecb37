"""Teardown: remove what the runbooks created, in the order Runpod needs, and prove nothing bills.

Input: the ledger (:mod:`rpbook.account.ledger`, every create written down before it was sent) and the
runbooks' names (a resource adopted by name, or created before the ledger existed, is found too).
Both are reconciled with what the account really lists, so a tool's memory drifting from Runpod's
state (dstack#1551) cannot hide a resource, and a ledger row whose resource is gone is closed.

Order, and why:

1. endpoints are scaled to zero (``workers.min = workers.max = 0``): GraphQL's ``deleteEndpoint``
   refuses an endpoint with workers (Runpod's docs, ``sdks/graphql/manage-endpoints.mdx``), and it
   stops a crash-looping worker from restarting while we wait; queued jobs are purged (they would
   otherwise start workers again) and the workers are awaited until ``/health`` shows none;
2. endpoints are deleted (REST v2 ``DELETE /v2/serverless/{id}``: "all workers are terminated and
   any queued or in-progress jobs are cancelled");
3. templates, which Runpod refuses to delete while an endpoint is bound to them (``400``, spec
   ``DELETE /v2/templates/{id}``). The spec's ``DELETE /v2/serverless/{id}`` "deletes a serverless
   endpoint and its bound template", so the templates are listed before and after the endpoints'
   deletes: one that vanished went with its endpoint (said so, no second call); one still there is
   deleted on its own (a Runpod that keeps it, or a template no deleted endpoint was bound to); a
   404 then counts as done;
4. network volumes only with ``delete_volumes``: deleting one deletes the weights on it (a later
   cold start downloads them again); a volume still attached to an endpoint teardown does not
   delete is kept and said so (Runpod refuses that delete too).

Afterwards :func:`prove_nothing_bills` reads the account again: none of the runbooks' endpoints or
templates left, and serverless billing of the deleted endpoints flat over the next interval (a
worker left running would keep adding to it, worker-vllm#190).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rpbook.account.controlplane import RunpodClient
from rpbook.account.jobqueue import Health, call_sdk, health, sdk_endpoint
from rpbook.account.ledger import Ledger, LedgerEntry
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ControlPlaneError, TeardownError
from rpbook.core.pending import Skipped
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings

Kind = Literal["endpoint", "template", "volume"]
ORDER: tuple[Kind, ...] = ("endpoint", "template", "volume")
_LABEL = {"endpoint": "serverless endpoint", "template": "template", "volume": "network volume"}


@dataclass(frozen=True)
class Step:
    """One resource on the account and what teardown does with it."""

    kind: Kind
    name: str
    resource_id: str
    action: Literal["delete", "keep"]
    found_by: str
    """``ledger``, ``name`` or ``ledger + name``: why teardown considers it the runbooks'."""
    note: str = ""


@rich_output
@dataclass(frozen=True)
class TeardownPlan:
    """What :func:`apply_teardown` would do, in order; ``stale`` ledger rows name resources the
    account no longer has (they are closed as ``gone`` when applied)."""

    target: str
    base_url: str
    steps: tuple[Step, ...]
    stale: tuple[LedgerEntry, ...] = ()
    delete_volumes: bool = False

    @property
    def deletes(self) -> list[Step]:
        return [s for s in self.steps if s.action == "delete"]

    @property
    def figures(self) -> dict[str, int | bool]:
        return {
            "planned_deletes": len(self.deletes),
            "planned_kept": len(self.steps) - len(self.deletes),
            "stale_ledger_rows": len(self.stale),
            "nothing_to_do": self.nothing_to_do,
        }

    @property
    def nothing_to_do(self) -> bool:
        """True when applying would change nothing (kept volumes are not work)."""
        return not self.deletes and not self.stale

    def rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = [
            (str(i), s.action.upper(), _LABEL[s.kind], s.name, s.resource_id, s.found_by, s.note)
            for i, s in enumerate(self.steps, 1)
        ]
        rows += [
            (
                "-",
                "CLOSE",
                _LABEL.get(e.kind, e.kind),
                e.name,
                e.resource_id or "(no id)",
                "ledger",
                f"ledger row {e.seq} ({e.status}, run {e.run_dir or 'interactive'}): not on the account",
            )
            for e in self.stale
        ]
        return rows

    @property
    def headline(self) -> str:
        if self.nothing_to_do:
            kept = f"; {len(self.steps)} kept" if self.steps else ""
            return f"teardown of {self.target} ({self.base_url}): nothing to do{kept}"
        counts = ", ".join(
            f"{sum(1 for s in self.deletes if s.kind == k)} {k}(s)"
            for k in ORDER
            if any(s.kind == k for s in self.deletes)
        )
        return f"teardown of {self.target} ({self.base_url}): delete {counts or 'nothing'}" + (
            f", close {len(self.stale)} stale ledger row(s)" if self.stale else ""
        )

    def __str__(self) -> str:
        header = ("#", "action", "kind", "name", "id", "found by", "note")
        rows = self.rows()
        if not rows:
            return self.headline
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join([self.headline, fmt.format(*header), *(fmt.format(*r).rstrip() for r in rows)])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        table = (
            html_table(["#", "action", "kind", "name", "id", "found by", "note"], self.rows(), code={4})
            if self.steps or self.stale
            else ""
        )
        return f"<div><b>{html.escape(self.headline)}</b>{table}</div>"


def _names(values: Iterable[str]) -> set[str]:
    return {v for v in values if isinstance(v, str) and v}


def plan_teardown(
    client: RunpodClient,
    *,
    endpoints: Iterable[str] = (),
    templates: Iterable[str] = (),
    volumes: Iterable[str] = (),
    delete_volumes: bool = False,
) -> TeardownPlan:
    """Reconcile the ledger and the given names with what the account lists; change nothing.

    A resource is the runbooks' when the ledger has its id, or a ledger row still ``creating``
    (the answer to its POST was never seen) has its kind and name, or its name is one given here.
    """
    settings = client.settings
    ledger = Ledger.for_settings(settings)
    entries = ledger.entries()
    given: dict[Kind, set[str]] = {
        "endpoint": _names(endpoints),
        "template": _names(templates),
        "volume": _names(volumes),
    }
    listed: dict[str, list[Any]] = {
        "endpoint": client.list_endpoints(),
        "template": client.list_templates(),
        "volume": client.list_network_volumes(),
    }
    steps: list[Step] = []
    matched: set[int] = set()
    deleted_endpoints: set[str] = set()
    for kind in ORDER:
        for resource in listed[kind]:
            by_ledger = [
                e
                for e in entries
                if e.kind == kind
                and (e.resource_id == resource.id or (e.resource_id is None and e.name == resource.name))
            ]
            by_name = resource.name in given[kind]
            if not by_ledger and not by_name:
                continue
            matched.update(e.seq for e in by_ledger)
            found = " + ".join(w for w, hit in (("ledger", by_ledger), ("name", by_name)) if hit)
            action: Literal["delete", "keep"] = "delete"
            note = ""
            if kind == "endpoint":
                deleted_endpoints.add(resource.id)
                note = f"scale to zero (workers {resource.workers_min}-{resource.workers_max} now), drain, delete"
            elif kind == "volume":
                users = [
                    e.id
                    for e in listed["endpoint"]
                    if resource.id in e.network_volume_ids and e.id not in deleted_endpoints
                ]
                if not delete_volumes:
                    action, note = (
                        "keep",
                        (
                            "kept: delete_volumes is false (deleting it deletes the weights; "
                            f"{resource.size_gb} GB keep billing as storage)"
                        ),
                    )
                elif users:
                    action, note = (
                        "keep",
                        (
                            f"kept: attached to endpoint(s) {', '.join(users)} that teardown does "
                            "not delete; Runpod refuses to delete it"
                        ),
                    )
                else:
                    note = "deletes the weights stored on it"
            steps.append(Step(kind, resource.name, resource.id, action, found, note))
    stale = tuple(e for e in entries if e.seq not in matched)
    return TeardownPlan(settings.target, settings.rest_url, tuple(steps), stale, delete_volumes)


# -- apply ------------------------------------------------------------------------------------


@dataclass
class TeardownReport:
    """What :func:`apply_teardown` did."""

    plan: TeardownPlan
    applied: bool = True
    deleted: list[Step] = field(default_factory=list)
    already_gone: list[Step] = field(default_factory=list)
    kept: list[Step] = field(default_factory=list)
    with_endpoint: list[Step] = field(default_factory=list)
    """Templates that the endpoints' deletes removed (REST v2: "and its bound template"); also in
    ``deleted``."""
    purged_jobs: int = 0
    drain_s: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def deleted_endpoint_ids(self) -> list[str]:
        return [s.resource_id for s in self.deleted + self.already_gone if s.kind == "endpoint"]

    @property
    def figures(self) -> dict[str, int | float | bool]:
        return {
            "teardown_applied": self.applied,
            "deleted_endpoints": sum(s.kind == "endpoint" for s in self.deleted),
            "deleted_templates": sum(s.kind == "template" for s in self.deleted),
            "templates_deleted_with_endpoint": len(self.with_endpoint),
            "deleted_volumes": sum(s.kind == "volume" for s in self.deleted),
            "kept_volumes": sum(s.kind == "volume" for s in self.kept),
            "already_gone": len(self.already_gone),
            "purged_jobs": self.purged_jobs,
            "drain_s": round(self.drain_s, 2),
            "stale_ledger_rows_closed": len(self.plan.stale) if self.applied else 0,
        }

    def __str__(self) -> str:
        return "\n".join(self.log) or "nothing done"

    __repr__ = __str__


def _purge(settings: Settings, api_key: Secret, endpoint_id: str) -> int:
    endpoint = sdk_endpoint(settings, api_key, endpoint_id)
    answer = call_sdk("purge queue", endpoint_id, lambda: endpoint.purge_queue(timeout=10))
    removed = answer.get("removed", 0) if isinstance(answer, dict) else 0
    return int(removed) if isinstance(removed, (int, float)) else 0


def drain(
    settings: Settings,
    api_key: Secret,
    endpoint_ids: Sequence[str],
    *,
    timeout_s: float = 300,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, float]:
    """Wait until no endpoint in ``endpoint_ids`` has a worker or a job (already scaled to zero);
    purge queued jobs on the way. Returns (jobs purged, seconds waited); raises ``TeardownError``
    naming what still runs after ``timeout_s``."""
    start = time.monotonic()
    purged = 0
    last: dict[str, Health] = {}
    while True:
        busy: dict[str, Health] = {}
        for endpoint_id in endpoint_ids:
            now = health(settings, api_key, endpoint_id)
            if now.in_queue:
                purged += _purge(settings, api_key, endpoint_id)
                now = health(settings, api_key, endpoint_id)
            if now.workers_total or now.in_queue or now.in_progress:
                busy[endpoint_id] = now
        if not busy:
            return purged, time.monotonic() - start
        last = busy
        if time.monotonic() - start >= timeout_s:
            detail = "; ".join(f"{eid}: {h.summary()}" for eid, h in last.items())
            raise TeardownError(
                f"endpoints scaled to zero but not drained after {timeout_s:g} s ({detail}). Nothing was deleted "
                "yet and no new worker starts (workers max is 0); a job in progress runs until it ends or hits "
                "the execution timeout. Run the teardown again later, or raise drain_timeout_s."
            )
        sleep(poll_s)


def _delete(client: RunpodClient, step: Step) -> bool:
    """Delete one resource; False when it was already gone (404)."""
    call = {
        "endpoint": client.delete_endpoint,
        "template": client.delete_template,
        "volume": client.delete_network_volume,
    }[step.kind]
    try:
        call(step.resource_id)
    except ControlPlaneError as exc:
        if exc.status == 404:
            return False
        raise TeardownError(
            f"could not delete {_LABEL[step.kind]} {step.name!r} ({step.resource_id}): {exc}. "
            "What was deleted before it stays deleted; fix this and run the teardown again "
            "(it plans only what is left)."
        ) from None
    return True


def apply_teardown(
    client: RunpodClient,
    api_key: Secret,
    plan: TeardownPlan,
    *,
    enabled: bool = True,
    drain_timeout_s: float = 300,
    poll_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> TeardownReport:
    """Execute ``plan``: scale endpoints to zero, purge and drain, delete endpoints, templates, then
    volumes (only those the plan deletes), and close the ledger's rows. ``enabled`` False (runbook
    99's default) changes nothing and says so."""
    if not enabled:
        line = (
            "nothing deleted: teardown is False (the plan above is what teardown = True would do)"
            if not plan.nothing_to_do
            else "nothing to do"
        )
        return TeardownReport(plan, applied=False, log=[line])
    settings = client.settings
    ledger = Ledger.for_settings(settings)
    report = TeardownReport(plan)
    if plan.nothing_to_do:
        report.log.append("nothing to do")
    endpoints = [s for s in plan.deletes if s.kind == "endpoint"]
    present: list[Step] = []
    for step in endpoints:
        try:
            client.set_workers(step.resource_id, workers_min=0, workers_max=0)
            present.append(step)
            report.log.append(f"scaled endpoint {step.name} ({step.resource_id}) to zero")
        except ControlPlaneError as exc:
            if exc.status != 404:
                raise
            report.already_gone.append(step)
    if present:
        report.purged_jobs, report.drain_s = drain(
            settings, api_key, [s.resource_id for s in present], timeout_s=drain_timeout_s, poll_s=poll_s, sleep=sleep
        )
        report.log.append(
            f"drained in {report.drain_s:.1f} s: no worker, no job"
            + (f" ({report.purged_jobs} queued job(s) purged)" if report.purged_jobs else "")
        )
    entries = ledger.entries()
    template_steps = [s for s in plan.deletes if s.kind == "template"]
    templates_before = {t.id for t in client.list_templates()} if template_steps and present else set()
    templates_after: set[str] | None = None
    for kind in ORDER:
        if kind == "template" and templates_before:
            templates_after = {t.id for t in client.list_templates()}
        for step in plan.steps:
            if step.kind != kind:
                continue
            if step.action == "keep":
                report.kept.append(step)
                report.log.append(f"kept {_LABEL[kind]} {step.name} ({step.resource_id}): {step.note}")
                continue
            went_with_endpoint = (
                templates_after is not None
                and step.resource_id in templates_before
                and step.resource_id not in templates_after
            )
            if step in report.already_gone:
                done = False
                line = f"already gone: {_LABEL[kind]} {step.name} ({step.resource_id})"
            elif went_with_endpoint:
                done = True
                report.deleted.append(step)
                report.with_endpoint.append(step)
                line = (
                    f"deleted {_LABEL[kind]} {step.name} ({step.resource_id}) with its endpoint (REST v2 deletes an "
                    "endpoint's bound template)"
                )
            else:
                done = _delete(client, step)
                (report.deleted if done else report.already_gone).append(step)
                line = f"{'deleted' if done else 'already gone:'} {_LABEL[kind]} {step.name} ({step.resource_id})"
                if kind == "template" and done and templates_before:
                    line += " (the endpoints' deletes had left it)"
            report.log.append(line)
            for entry in entries:
                if entry.kind == kind and (
                    entry.resource_id == step.resource_id or (entry.resource_id is None and entry.name == step.name)
                ):
                    ledger.mark(entry.seq, "deleted" if done else "gone", resource_id=step.resource_id)
    for entry in plan.stale:
        ledger.mark(entry.seq, "gone", note="not on the account at teardown")
    if plan.stale:
        report.log.append(f"closed {len(plan.stale)} ledger row(s) whose resource was not on the account")
    return report


# -- proof ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    """After teardown: what is left, and whether billing of the deleted endpoints stayed flat."""

    leftover: tuple[str, ...]
    endpoint_ids: tuple[str, ...]
    billed_before_usd: float
    billed_after_usd: float
    interval_s: float
    kept: tuple[str, ...] = ()

    @property
    def billing_delta_usd(self) -> float:
        return round(self.billed_after_usd - self.billed_before_usd, 6)

    @property
    def ok(self) -> bool:
        return not self.leftover and self.billing_delta_usd <= 0

    @property
    def figures(self) -> dict[str, float | int | bool]:
        return {
            "leftover": len(self.leftover),
            "billed_before_usd": self.billed_before_usd,
            "billed_after_usd": self.billed_after_usd,
            "billing_delta_usd": self.billing_delta_usd,
            "billing_interval_s": self.interval_s,
            "nothing_bills": self.ok,
        }

    def __str__(self) -> str:
        lines = [("nothing left billing" if self.ok else "STILL BILLING OR LEFT OVER") + ":"]
        lines.append(
            f"  left on the account: {', '.join(self.leftover) or 'none of the runbooks’ endpoints or templates'}"
        )
        if self.endpoint_ids:
            lines.append(
                f"  serverless billing of the {len(self.endpoint_ids)} deleted endpoint(s): "
                f"${self.billed_before_usd:.6f}, then ${self.billed_after_usd:.6f} {self.interval_s:g} s "
                f"later (change ${self.billing_delta_usd:.6f})"
            )
        else:
            lines.append("  no endpoint was deleted, so there is no billing to watch")
        if self.kept:
            lines.append(f"  kept on purpose (storage still bills): {', '.join(self.kept)}")
        return "\n".join(lines)

    __repr__ = __str__


def _billed(client: RunpodClient, endpoint_ids: Sequence[str], start: str) -> float:
    if not endpoint_ids:
        return 0.0
    billing = client.serverless_billing(bucket_size="hour", start=start)
    return round(sum(r.total_usd for r in billing.records if r.endpoint_id in endpoint_ids), 6)


def prove_nothing_bills(
    client: RunpodClient,
    report: TeardownReport,
    *,
    interval_s: float = 10,
    raise_if_billing: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Proof | Skipped:
    """Plan the teardown again (it must find nothing to delete) and read serverless billing of the
    deleted endpoints twice, ``interval_s`` apart: a worker still running would add to it. Raises
    ``TeardownError`` with the figures when something is left or billing grew (``raise_if_billing``).
    A teardown that was not applied has nothing to prove (:class:`Skipped`).

    Runpod's billing API may report with a delay; a flat figure here is necessary, and the console's
    billing page the final word. localpod bills from worker sessions up to now, so there it is exact."""
    if not report.applied:
        return Skipped(
            "nothing to prove: teardown is False, nothing was deleted",
            figures={"skipped": True, "nothing_bills": "not checked"},
        )
    plan = report.plan
    again = plan_teardown(
        client,
        endpoints=[s.name for s in plan.steps if s.kind == "endpoint"],
        templates=[s.name for s in plan.steps if s.kind == "template"],
        volumes=[s.name for s in plan.steps if s.kind == "volume"],
        delete_volumes=plan.delete_volumes,
    )
    leftover = tuple(f"{_LABEL[s.kind]} {s.name} ({s.resource_id})" for s in again.deletes)
    kept = tuple(f"{_LABEL[s.kind]} {s.name} ({s.resource_id})" for s in again.steps if s.action == "keep")
    ids = tuple(report.deleted_endpoint_ids)
    start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:00:00Z")
    before = _billed(client, ids, start)
    if ids:
        sleep(interval_s)
    after = _billed(client, ids, start)
    proof = Proof(leftover, ids, before, after, interval_s, kept)
    if raise_if_billing and not proof.ok:
        raise TeardownError(
            f"{proof}\nRun the teardown again; if billing still grows, scale the endpoint to zero "
            "or delete it in the Runpod console and check the billing page."
        )
    return proof
