"""Runbook 06's endpoint settings for the event window, and the restore plan for afterwards.

The chosen settings become a field-by-field plan of the endpoint (``rpbook.account.plan.Plan``,
applied with ``rpbook.account.plans.apply`` only when ``apply`` is true), and the settings the
endpoint has now become the restore plan, saved as JSON beside the env file before the endpoint
changes so that it survives the kernel: active workers bill around the clock until they are restored.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rpbook.account.controlplane import RunpodClient
from rpbook.account.endpointscaling import ScalerSettings, WorkerSettings, check_scaler_type, scaling_body
from rpbook.account.plan import FieldChange, Plan
from rpbook.account.plans import apply as apply_plan
from rpbook.account.quota import QuotaCheck
from rpbook.account.resources import Endpoint
from rpbook.core import restore
from rpbook.core.display import rich_output
from rpbook.core.errors import ConfigError


def _actual(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "workers_min": endpoint.workers_min,
        "workers_max": endpoint.workers_max,
        "idle_timeout_s": endpoint.idle_timeout_s,
        "scaler_type": endpoint.scaler_type,
        "scaler_value": endpoint.scaler_value,
    }


def settings_plan(endpoint: Endpoint, wanted: Mapping[str, Any], note: str) -> Plan:
    """A ``rpbook.account.plan.Plan`` that PATCHes only the scaling fields that differ, its body
    built by ``rpbook.account.endpointscaling`` (the spec's bounds checked) as runbooks 02/04's are,
    and applied by ``rpbook.account.plans.apply`` as theirs are."""
    if wanted.get("scaler_type") == "REQUEST_COUNT":
        # REST v2 EndpointWorkers.idleTimeout: rejected with REQUEST_COUNT, omitted from its responses.
        wanted = {**wanted, "idle_timeout_s": None}
    actual = _actual(endpoint)
    changes = [
        FieldChange(k, wanted[k], actual[k])
        for k in actual
        if k in wanted and wanted[k] is not None and _differs(wanted[k], actual[k])
    ]
    changed = {c.field for c in changes}
    workers = WorkerSettings(
        wanted["workers_min"] if "workers_min" in changed else None,
        wanted["workers_max"] if "workers_max" in changed else None,
        wanted["idle_timeout_s"] if "idle_timeout_s" in changed else None,
    )
    scaler = (
        ScalerSettings(check_scaler_type("scaler_type", wanted["scaler_type"]), wanted["scaler_value"])
        if changed & {"scaler_type", "scaler_value"}
        else None
    )
    return Plan(
        "endpoint",
        endpoint.name,
        "update" if changes else "none",
        changes,
        endpoint.id,
        [note],
        scaling_body(workers, scaler),
        current=endpoint,
    )


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) > 1e-9
    return a != b


@rich_output
@dataclass
class EventPlans:
    """The plan for the event window and the restore plan for afterwards."""

    during: Plan
    restore: Plan
    restore_file: Path | None = None
    saved: dict[str, Any] = field(default_factory=dict)
    """What :func:`apply_event` writes to ``restore_file`` before it changes the endpoint."""

    def _repr_html_(self) -> str:
        where = (
            f"<p>the restore plan is saved to <code>{html.escape(str(self.restore_file))}</code> when the event "
            "plan is applied</p>"
            if self.restore_file
            else ""
        )
        return (
            "<p><b>During the event</b></p>"
            + self.during._repr_html_()
            + "<p><b>After the event</b></p>"
            + self.restore._repr_html_()
            + where
        )

    def __str__(self) -> str:
        where = (
            f"\nthe restore plan is saved to {self.restore_file} when the event plan is applied"
            if self.restore_file
            else ""
        )
        return f"during the event:\n{self.during}\nafter the event:\n{self.restore}{where}"

    __repr__ = __str__  # the text a headless run records: no dataclass repr with paths and saved values


def event_plans(endpoint: Endpoint, chosen: Mapping[str, Any], *, restore_file: str | Path | None = None) -> EventPlans:
    """The chosen settings as a plan for the event, and the endpoint's current settings as the
    restore plan (what runbook 02 also sets back on its next run). With ``restore_file``, pre-event
    settings saved there by an applied, not yet restored event plan stay the ones to restore;
    :func:`apply_event` writes the file, :func:`restore_saved` applies and removes it."""
    wanted = {
        "workers_min": int(chosen["workers_min"]),
        "workers_max": int(chosen["workers_max"]),
        "idle_timeout_s": round(float(chosen["idle_timeout_s"])),
        "scaler_type": chosen["scaler_type"],
        "scaler_value": float(chosen["scaler_value"]),
    }
    during = settings_plan(endpoint, wanted, "settings chosen by runbook 06 for the event window")
    restore_values = _actual(endpoint)
    path = Path(restore_file) if restore_file is not None else None
    kept = _saved_restore(path, endpoint.id) if path is not None else None
    if kept is not None:
        # An event plan was applied and not restored yet: the endpoint's settings now are the
        # event's, so the pre-event ones saved then stay the ones to restore.
        restore_values = kept
    after = _restore_plan(endpoint, {**_actual(endpoint), **wanted}, restore_values)
    if kept is not None:
        after = replace(after, notes=[*after.notes, f"pre-event settings kept from {path} (not restored yet)"])
    return EventPlans(
        during, after, path, {"endpoint_id": endpoint.id, "endpoint_name": endpoint.name, "restore": restore_values}
    )


def _saved_restore(path: Path, endpoint_id: str) -> dict[str, Any] | None:
    """The pre-event settings saved for this endpoint and not restored yet, else None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(saved, dict)
        or saved.get("endpoint_id") != endpoint_id
        or not isinstance(saved.get("restore"), dict)
    ):
        return None
    return dict(saved["restore"])


def _restore_plan(endpoint: Endpoint, during_values: Mapping[str, Any], restore_values: Mapping[str, Any]) -> Plan:
    """The restore plan as it will read after the event plan is applied."""
    event_view = replace(
        endpoint,
        workers_min=int(during_values["workers_min"]),
        workers_max=int(during_values["workers_max"]),
        idle_timeout_s=during_values["idle_timeout_s"],
        scaler_type=during_values["scaler_type"],
        scaler_value=float(during_values["scaler_value"]),
    )
    plan_ = settings_plan(event_view, restore_values, "restores the settings the endpoint had before the event")
    return replace(plan_, current=endpoint)


PHASES = ("plan", "event", "restore")
"""Runbook 06's ``phase``: show the plans; set the event's settings; set the saved ones back."""


def check_phase(phase: str) -> str:
    """``phase`` if it is one of :data:`PHASES`; checked in the runbook's first cell, before any call."""
    if phase not in PHASES:
        raise ConfigError(
            f"phase must be one of {', '.join(repr(p) for p in PHASES)}, got {phase!r}: "
            '"plan" shows the plans, "event" sets the event\'s settings, "restore" sets them back'
        )
    return phase


def apply_event(client: RunpodClient, plans: EventPlans, *, do_apply: bool, quota: QuotaCheck | None = None) -> str:
    """Apply the event plan when ``do_apply``; say what happened and how to restore. ``quota``, the
    chosen setting's worker-quota check (``EventPlan.quota``), is enforced before anything is written:
    Runpod would refuse a max over it (``rpbook.account.quota``)."""
    if plans.during.action == "none":
        return "the endpoint already has the chosen settings: nothing to apply"
    if quota is not None:
        quota.raise_if_over()
    if not do_apply:
        return "not applied (apply is false): read the plan, then rerun with apply = True before the event"
    if plans.restore_file is not None:  # written before the change, so no crash can lose it
        plans.restore_file.parent.mkdir(parents=True, exist_ok=True)
        plans.restore_file.write_text(json.dumps(plans.saved, indent=1))

    def undo() -> None:
        # A SIGTERM/SIGHUP while the event's settings go in (rpbook.core.restore): set the pre-event
        # ones back, so a half-applied change never outlives the process. Once applied, the event's
        # settings are meant to last until phase "restore", so nothing is registered after that.
        apply_plan(client, plans.restore)
        if plans.restore_file is not None:
            plans.restore_file.unlink(missing_ok=True)

    with restore.on_signal(f"runbook 06's event settings on endpoint {plans.during.name}", undo):
        apply_plan(client, plans.during)
    where = f" (saved in {plans.restore_file})" if plans.restore_file else ""
    return (
        f"applied: endpoint {plans.during.name} now has the event's settings. After the event apply the restore "
        f'plan{where}: rerun this runbook with phase = "restore", or runbook 02'
    )


def restore_saved(client: RunpodClient, restore_file: str | Path, *, do_apply: bool) -> tuple[Plan, str]:
    """The restore plan saved by :func:`event_plans`, against the endpoint as it is now; applied
    when ``do_apply``."""
    path = Path(restore_file)
    try:
        saved = json.loads(path.read_text())
        endpoint = client.get_endpoint(str(saved["endpoint_id"]))
        values = dict(saved["restore"])
    except FileNotFoundError:
        raise ConfigError(f'no saved restore plan at {path}: run this runbook with phase = "event" first') from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a restore plan written by runbook 06 ({exc})") from None
    restore = settings_plan(endpoint, values, "restores the settings the endpoint had before the event")
    if restore.action == "none":
        path.unlink(missing_ok=True)
        return restore, "nothing to restore: the endpoint has its pre-event settings"
    if not do_apply:
        return restore, "not applied (apply is false)"
    apply_plan(client, restore)
    path.unlink(missing_ok=True)  # restored: the next event saves the settings of its own time
    return restore, f"restored endpoint {endpoint.name} to its pre-event settings"


def restore_file_for(settings: Any, endpoint_name: str) -> Path:
    """Where the restore plan of ``endpoint_name`` is kept: ``<project>/.rpbook/events``
    (``rpbook.core.paths``), so the run after the event finds it whatever its run folder."""
    from rpbook.core.paths import events_dir

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in endpoint_name) or "endpoint"
    return events_dir() / f"{safe}.restore.json"
