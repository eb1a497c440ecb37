"""What a plan is: the field-by-field changes to one volume, template or endpoint, what blocks it,
and how it reads (a "wanted vs actual" table as text, and HTML in JupyterLab, secrets masked).

``rpbook.account.plans`` makes plans against the account and applies them; the event plans of
runbook 06 (``rpbook.planning``) are plans of the same kind.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from rpbook.account.resources import Endpoint, NetworkVolume, Template
from rpbook.core.display import html_table, rich_output
from rpbook.core.pending import NotCreated
from rpbook.core.secrets import Secret, display_env_value, scrub

Kind = Literal["volume", "template", "endpoint"]
Action = Literal["create", "update", "none"]
Resource = NetworkVolume | Template | Endpoint

KIND_LABEL = {"volume": "network volume", "template": "template", "endpoint": "serverless endpoint"}


def _show(field_name: str, value: Any) -> str:
    """A value as a person may see it: absent as an em dash, secrets masked, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, Secret):
        return value.masked
    if field_name.startswith("env."):
        return display_env_value(field_name[4:], value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(field_name, v) for v in value) if value else "(none)"
    return scrub(str(value))


@dataclass(frozen=True, repr=False)
class FieldChange:
    """One field whose wanted value differs from the actual one (``actual`` None: not there yet)."""

    field: str
    wanted: Any
    actual: Any

    @property
    def wanted_text(self) -> str:
        return _show(self.field, self.wanted)

    @property
    def actual_text(self) -> str:
        return _show(self.field, self.actual)

    def __repr__(self) -> str:
        return f"FieldChange({self.field}: {self.actual_text} -> {self.wanted_text})"

    __str__ = __repr__


class BlockerKind(Enum):
    """Why a plan cannot be applied yet."""

    TEMPLATE_MISSING = "template missing"
    """The endpoint's template does not exist yet (the same runbook creates it just before)."""
    VOLUME_MISSING = "volume missing"
    """The endpoint's network volume does not exist yet (runbook 01 creates it)."""

    @property
    def awaits_prerequisite(self) -> bool:
        """A resource the same runbook creates in an earlier step: the block lifts when its turn comes.
        A missing volume does not: another runbook (01) creates it, so the preflight stops on it
        unless a dry run of this run planned it (``rpbook.core.pending``)."""
        return self is BlockerKind.TEMPLATE_MISSING


@dataclass(frozen=True)
class Blocker:
    """One reason a plan cannot be applied yet; ``message`` says what to run first."""

    kind: BlockerKind
    message: str
    resource: str = ""
    """The name of the missing resource."""

    def __str__(self) -> str:
        return self.message


@rich_output
@dataclass(frozen=True, repr=False)
class Plan:
    """What ``apply`` would do to one resource, and why."""

    kind: Kind
    name: str
    action: Action
    changes: list[FieldChange] = field(default_factory=list)
    resource_id: str | None = None
    notes: list[str] = field(default_factory=list)
    request: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The body ``apply`` sends (create: whole; update: only changed fields). Secrets stay ``Secret``."""
    blocked: list[Blocker] = field(default_factory=list)
    """Why it cannot be applied yet (a template or volume it needs does not exist)."""
    current: Resource | None = field(default=None, compare=False)
    """The resource as it is now (None when it is to be created)."""
    model_references: tuple[str, ...] | None = field(default=None, compare=False)
    """Endpoint only: cached models ``apply`` sets through GraphQL after the REST write (None: no change)."""

    @property
    def changed_fields(self) -> list[str]:
        return [c.field for c in self.changes]

    @property
    def title(self) -> str:
        where = f" ({self.resource_id})" if self.resource_id else ""
        verb = {"create": "CREATE", "update": "UPDATE", "none": "no change"}[self.action]
        return f"{KIND_LABEL[self.kind]} {self.name!r}{where}: {verb}"

    def rows(self) -> list[tuple[str, str, str]]:
        return [(c.field, c.wanted_text, c.actual_text) for c in self.changes]

    def __str__(self) -> str:
        lines = [self.title]
        rows = self.rows()
        if rows:
            header = ("field", "wanted", "actual")
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
            fmt = f"  {{:<{widths[0]}}}  {{:<{widths[1]}}}  {{}}"
            lines.append(fmt.format(*header))
            lines.append(fmt.format("-" * widths[0], "-" * widths[1], "-" * widths[2]))
            lines += [fmt.format(*row) for row in rows]
        elif self.action == "none":
            lines.append("  nothing to change")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  blocked: {b}" for b in self.blocked]
        return scrub("\n".join(lines))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        color = {"create": "#1a7f37", "update": "#9a6700", "none": "#57606a"}[self.action]
        esc = html.escape
        parts = [f'<div class="rpbook-plan"><b style="color:{color}">{esc(self.title)}</b>']
        rows = self.rows()
        if rows:
            parts.append(html_table(["field", "wanted", "actual"], rows, code={0}))
        elif self.action == "none":
            parts.append("<div>nothing to change</div>")
        if self.notes or self.blocked:
            parts.append("<ul>")
            parts += [f"<li>{esc(n)}</li>" for n in self.notes]
            parts += [f"<li><b>blocked:</b> {esc(str(b))}</li>" for b in self.blocked]
            parts.append("</ul>")
        parts.append("</div>")
        return scrub("".join(parts))


@rich_output
@dataclass(frozen=True)
class EnsureResult:
    """A plan, and the resource: after ``apply`` the applied one; without it the current one (None
    when it does not exist yet), which may still differ from the plan's wanted values."""

    plan: Plan
    resource: Resource | None
    applied: bool = False

    @property
    def id_or_pending(self) -> str | NotCreated:
        """The resource's id, or (a dry run that would create it) what the next steps skip on."""
        if self.resource is not None:
            return self.resource.id
        return NotCreated(self.plan.kind, self.plan.name)

    def __str__(self) -> str:
        return str(self.plan) + ("\n  applied" if self.applied else "\n  not applied (apply=False)")

    def _repr_html_(self) -> str:
        state = "applied" if self.applied else "not applied (apply=False)"
        return self.plan._repr_html_() + f"<div><i>{html.escape(state)}</i></div>"
