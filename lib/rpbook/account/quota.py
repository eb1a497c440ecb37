"""The account's worker quota: how many max workers all endpoints together may have.

Source: Runpod's docs, ``serverless/workers/overview.mdx`` ("Max worker limits", runpod/docs at
a900806): "Account balance determines your maximum workers (flex + active combined)" — 5 by default,
10 at $100+, 20 at $200+, 30 at $300+, 40 at $500+, 50 at $700+, 60 at $900+ — "Need more
capacity? Contact support." Runpod refuses an endpoint create or update that would take the sum of
``workers.max`` over *all* the account's endpoints above it, with "Max workers across all endpoints
must not exceed your workers quota (30)" (docs ``tutorials/flash/build-rest-api-with-load-balancer
.mdx``), so a runbook that only learns this from the refusal may already have created its template.

No REST v2 route returns the quota or the balance (openapi-v2.json has neither); GraphQL
``myself { clientBalance }`` gives the balance (the field runpod-python 1.12 reads in
``runpod/api/queries/user.py`` and localpod serves). A quota support raised cannot be read from any
API: the parameter ``account_max_workers`` states it, and then wins over the balance.

The typed API other modules use (runbooks 02 and 04 through :mod:`rpbook.account.preflight`,
runbook 06's grid through :func:`check_quota` with its candidate maxima):

- :func:`account_quota` — the quota in force and where it comes from;
- :func:`workers_in_use` / :func:`workers_max_total` — every endpoint listed and its max;
- :func:`check_quota` — a planned change against the quota: a :class:`QuotaCheck` with the table
  (endpoint, max workers, total, quota) and what to change; ``raise_if_over()`` raises
  :class:`WorkerQuotaError` carrying it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from rpbook.account.controlplane import RunpodClient
from rpbook.account.resources import Endpoint
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ConfigError, ControlPlaneError, WorkerQuotaError
from rpbook.core.secrets import Secret, scrub
from rpbook.core.settings import Settings

DEFAULT_QUOTA = 5
QUOTA_BY_BALANCE: tuple[tuple[float, int], ...] = (
    (900.0, 60),
    (700.0, 50),
    (500.0, 40),
    (300.0, 30),
    (200.0, 20),
    (100.0, 10),
)
"""(lowest balance in $, max workers), highest first; below $100: ``DEFAULT_QUOTA`` (the docs' table)."""
DOCS_PAGE = "docs.runpod.io/serverless/workers/overview (Max worker limits)"
SUPPORT_URL = "https://www.runpod.io/contact"
BALANCE_QUERY = "query { myself { clientBalance } }"
GRAPHQL_TIMEOUT_S = 15.0


def quota_for_balance(balance_usd: float) -> int:
    """Max workers over all endpoints that a balance buys, per the docs' table."""
    for floor, quota in QUOTA_BY_BALANCE:
        if balance_usd >= floor:
            return quota
    return DEFAULT_QUOTA


def balance_for_quota(workers: int) -> float | None:
    """The lowest balance whose quota covers ``workers`` (0.0: the default quota does); None when
    no balance in the table does (above 60: only support can raise it)."""
    if workers <= DEFAULT_QUOTA:
        return 0.0
    fitting = [floor for floor, quota in QUOTA_BY_BALANCE if quota >= workers]
    return min(fitting) if fitting else None


@dataclass(frozen=True)
class AccountQuota:
    """The quota in force: ``max_workers``, and ``source`` in words (the parameter, or the balance)."""

    max_workers: int
    source: str
    balance_usd: float | None = None
    stated: bool = False
    """True when ``account_max_workers`` set it (support may have raised it; rpbook cannot read that)."""


def check_account_max_workers(value: object) -> int | None:
    """``account_max_workers`` as given: None (derive it from the balance) or a whole number >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"account_max_workers: {value!r}; give the account's worker quota as a whole number (at least 1, "
            f"e.g. 5 for a new account, see {DOCS_PAGE}), or None to derive it from the balance"
        )
    return value


def account_balance(settings: Settings, api_key: Secret, *, transport: httpx.BaseTransport | None = None) -> float:
    """The account's balance in $, from GraphQL ``myself { clientBalance }`` at ``{rest_url}/graphql``
    (``Authorization: Bearer``, as runpod-python 1.12's ``api/graphql.py`` sends it). Raises
    ``ControlPlaneError`` saying how to go on without it (``account_max_workers``)."""
    url = settings.rest_url.rstrip("/") + "/graphql"
    fallback = "set account_max_workers to the quota the Runpod console shows (Serverless) to go on without it"
    try:
        with httpx.Client(timeout=GRAPHQL_TIMEOUT_S, transport=transport) as http:
            response = http.post(
                url, json={"query": BALANCE_QUERY}, headers={"Authorization": f"Bearer {api_key.reveal()}"}
            )
    except httpx.HTTPError as exc:
        raise ControlPlaneError(
            scrub(f"could not read the account balance at {url} ({type(exc).__name__}: {exc}); {fallback}")
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    balance = None
    if response.status_code == 200 and isinstance(body, dict) and not body.get("errors"):
        me = (body.get("data") or {}).get("myself") or {}
        balance = me.get("clientBalance") if isinstance(me, dict) else None
    if isinstance(balance, bool) or not isinstance(balance, (int, float)):
        errors = body.get("errors") if isinstance(body, dict) else None
        detail = errors[0].get("message") if isinstance(errors, list) and errors and isinstance(errors[0], dict) else ""
        raise ControlPlaneError(
            scrub(
                f"could not read the account balance (GraphQL myself.clientBalance, HTTP {response.status_code}"
                f"{': ' + str(detail) if detail else ''}); {fallback}"
            ),
            status=response.status_code,
        )
    return float(balance)


def account_quota(
    settings: Settings,
    api_key: Secret,
    account_max_workers: int | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> AccountQuota:
    """The quota in force: ``account_max_workers`` when given, else what the balance buys."""
    stated = check_account_max_workers(account_max_workers)
    if stated is not None:
        return AccountQuota(stated, f"account_max_workers = {stated}", stated=True)
    balance = account_balance(settings, api_key, transport=transport)
    quota = quota_for_balance(balance)
    return AccountQuota(quota, f"balance ${balance:,.2f} buys {quota} ({DOCS_PAGE})", balance_usd=balance)


@dataclass(frozen=True)
class WorkerRow:
    """One endpoint's share of the quota: what it has now, and what the plan gives it."""

    endpoint: str
    max_workers: int
    current: int | None
    """Its max on the account today (None: the plan creates it)."""
    endpoint_id: str | None = None
    parameter: str = ""
    """The runbook parameter that sets this max (empty for an endpoint no plan here changes)."""

    @property
    def change(self) -> Literal["new", "changed", "unchanged"]:
        if self.current is None:
            return "new"
        return "changed" if self.current != self.max_workers else "unchanged"


@dataclass(frozen=True)
class PlannedMax:
    """An endpoint a runbook creates or changes, by name, with the max workers it will have."""

    name: str
    workers_max: int
    parameter: str = "workers_max"


def workers_in_use(client: RunpodClient) -> list[WorkerRow]:
    """Every endpoint on the account (found by listing, not only the runbooks'), with its max."""
    return [WorkerRow(e.name, e.workers_max, e.workers_max, e.id) for e in client.list_endpoints()]


def workers_max_total(client: RunpodClient) -> int:
    """The sum of ``workers.max`` over every endpoint on the account now."""
    return sum(row.max_workers for row in workers_in_use(client))


@rich_output
@dataclass(frozen=True)
class QuotaCheck:
    """A planned change against the quota: one row per endpoint after the change, the total, and
    what to change when it does not fit."""

    quota: AccountQuota
    rows: tuple[WorkerRow, ...]

    @property
    def total(self) -> int:
        return sum(row.max_workers for row in self.rows)

    @property
    def over_by(self) -> int:
        return max(0, self.total - self.quota.max_workers)

    @property
    def ok(self) -> bool:
        """Fits, or the plan raises nothing (Runpod refuses only what raises a max, as localpod)."""
        return self.over_by == 0 or not any(
            row.current is None or row.max_workers > row.current for row in self.rows if row.parameter
        )

    def fixes(self) -> list[str]:
        """What would make the plan fit: lower a max (never a planned one to 0, which would leave an
        endpoint that cannot run), or raise the quota."""
        need = self.over_by
        out: list[str] = []
        for row in self.rows:
            if row.parameter and row.max_workers - need >= 1:
                out.append(
                    f"set {row.parameter} to at most {row.max_workers - need} (endpoint {row.endpoint!r}, "
                    f"now {row.max_workers})"
                )
        others = [r for r in self.rows if not r.parameter and r.max_workers > 0]
        if others:
            listed = ", ".join(f"{r.endpoint!r} ({r.max_workers})" for r in others)
            out.append(f"lower max workers of the account's other endpoints by {need} in total: {listed}")
        balance = balance_for_quota(self.total)
        credit = (
            f"add credit (a balance of ${balance:,.0f}+ gives {quota_for_balance(balance)})"
            if balance
            else "no balance in the table gives that many"
        )
        then = (
            "then set account_max_workers to the new quota"
            if self.quota.stated
            else "a quota support raised cannot be read by any API: then set account_max_workers to it"
        )
        out.append(
            f"or raise the quota to at least {self.total}: {credit}, or ask Runpod support ({SUPPORT_URL}); "
            f"{then} ({DOCS_PAGE})"
        )
        return out

    def problem(self) -> str:
        return (
            f"the plan needs {self.total} max workers across all endpoints, but the account's worker quota is "
            f'{self.quota.max_workers} ({self.quota.source}); Runpod would refuse it ("Max workers across all '
            f'endpoints must not exceed your workers quota ({self.quota.max_workers})"). Fix one: '
            + "; ".join(self.fixes())
        )

    def describe(self) -> str:
        """One line for a preflight row."""
        if not self.ok:
            return self.problem()
        line = f"{self.total} of {self.quota.max_workers} max workers across all endpoints ({self.quota.source})"
        if self.over_by:
            line += (
                f"; the account is over its quota by {self.over_by} already, but this plan raises no max, which "
                "Runpod does not refuse (localpod's reading: only a raise is checked)"
            )
        return line

    def raise_if_over(self) -> QuotaCheck:
        if not self.ok:
            raise WorkerQuotaError(self)
        return self

    def table_rows(self) -> list[tuple[str, str, str, str]]:
        """(endpoint, max workers, total, quota), one row per endpoint plus the total row."""
        rows: list[tuple[str, str, str, str]] = []
        running = 0
        for row in self.rows:
            running += row.max_workers
            shown = str(row.max_workers)
            if row.change == "new":
                shown += " (new)"
            elif row.change == "changed":
                shown += f" (now {row.current})"
            rows.append((row.endpoint, shown, str(running), ""))
        verdict = "fits" if self.ok else f"over by {self.over_by}"
        rows.append(("all endpoints", "", str(self.total), f"{self.quota.max_workers} ({verdict})"))
        return rows

    def __str__(self) -> str:
        header = ("endpoint", "max workers", "total", "quota")
        body = self.table_rows()
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]
        note = "" if self.quota.stated else "\n(support can raise the quota: then set account_max_workers to it)"
        return "\n".join(lines) + f"\nquota: {self.quota.source}" + note

    __repr__ = __str__

    def _repr_html_(self) -> str:
        table = html_table(["endpoint", "max workers", "total", "quota"], self.table_rows())
        return f"<div><b>Worker quota</b> ({html.escape(self.quota.source)}){table}</div>"


def check_quota(quota: AccountQuota, endpoints: Iterable[Endpoint], planned: Sequence[PlannedMax]) -> QuotaCheck:
    """The account's endpoints with ``planned`` applied (an endpoint of the same name is adopted,
    as the plans do, and takes the planned max), against ``quota``. Writes nothing."""
    wanted = {p.name: p for p in planned}
    rows: list[WorkerRow] = []
    seen: set[str] = set()
    for endpoint in endpoints:
        plan = wanted.get(endpoint.name)
        if plan is not None and endpoint.name not in seen:
            seen.add(endpoint.name)
            rows.append(WorkerRow(endpoint.name, plan.workers_max, endpoint.workers_max, endpoint.id, plan.parameter))
        else:
            rows.append(WorkerRow(endpoint.name, endpoint.workers_max, endpoint.workers_max, endpoint.id))
    rows += [WorkerRow(p.name, p.workers_max, None, None, p.parameter) for p in planned if p.name not in seen]
    return QuotaCheck(quota, tuple(rows))
