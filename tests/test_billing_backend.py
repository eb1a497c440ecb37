"""localpod's one billing backend (issue 21 item 2, "money"): :mod:`localpod.resources.billing`.

Runpod bills serverless workers "from when a worker starts until it fully stops, rounded up to the
nearest second" (runpod/docs ``serverless/pricing.mdx``). That rounding, the price arithmetic and
the proration of volumes live in the backend only; REST v2 ``/v2/billing/*`` and GraphQL
``myself { clientBalance currentSpendPerHr }`` serialise its numbers. The guard below fails when a
handler (or any other module) starts doing its own money arithmetic again, as ``graphql_schema.py``
did with its own ``math.ceil`` over sessions.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from localpod.resources import billing
from localpod.store import WorkerSession

LOCALPOD = Path(__file__).resolve().parent.parent / "lib" / "localpod"
BACKEND = LOCALPOD / "resources" / "billing.py"


def _money_arithmetic(path: Path) -> list[str]:
    """Places in ``path`` that compute with a worker session's times or a price per GPU-second: a
    ``math.ceil``/``round`` or an arithmetic operator reading ``price_per_gpu_s``, ``stopped_at``
    or a session's ``started_at``. Copying a price into a new ``WorkerSession(...)`` (a keyword
    value, no arithmetic) or setting ``stopped_at`` is allowed."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def money_attribute(node: ast.AST) -> bool:
        if not isinstance(node, ast.Attribute):
            return False
        owner = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
        return node.attr in ("price_per_gpu_s", "stopped_at") or (node.attr == "started_at" and "session" in owner)

    def reads(node: ast.AST) -> bool:
        return any(money_attribute(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and reads(node):
            found.append(f"{path.relative_to(LOCALPOD)}:{node.lineno}")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("ceil", "round") and any(reads(a) for a in node.args):
                found.append(f"{path.relative_to(LOCALPOD)}:{node.lineno}")
    return found


def test_only_the_billing_backend_turns_worker_time_into_money() -> None:
    offenders = [
        place
        for path in sorted(LOCALPOD.rglob("*.py"))
        if path != BACKEND and path.name != "catalog.py"  # catalog.py defines the prices per pool
        for place in _money_arithmetic(path)
    ]
    assert offenders == [], f"money arithmetic outside localpod/resources/billing.py: {offenders}"
    assert _money_arithmetic(BACKEND), "the guard no longer sees the backend's own arithmetic"


def test_rounding_is_per_second_and_absorbs_float_noise() -> None:
    def session(seconds: float) -> WorkerSession:
        return WorkerSession("ep", "w", "gpu", 2, 0.0001, 1000.0, 1000.0 + seconds)

    assert [billing.billed_seconds(session(s), 0) for s in (0.0, 0.2, 1.0, 2.0000000001, 2.01)] == [0, 1, 1, 2, 3]
    assert billing.session_cost(session(100.2), 0) == pytest.approx(101 * 0.0001 * 2)
    open_session = WorkerSession("ep", "w", "gpu", 1, 0.0001, 1000.0)
    assert billing.billed_seconds(open_session, now=1010.5) == 11  # still running: billed up to now


def test_rest_billing_graphql_balance_and_spend_rate_agree(localpod: Any) -> None:
    """The three views of money read the same sessions the same way: what REST v2 bills for the
    window equals what GraphQL takes off the balance, and the rate is the open sessions'."""
    now = time.time()
    sessions = [
        WorkerSession("epA", "w1", "gpu", 1, 0.00019, now - 3000.4, now - 2000.0),  # 1001 s
        WorkerSession("epA", "w2", "gpu", 2, 0.00016, now - 500.0, now - 499.9),  # 1 s
        WorkerSession("epB", "w3", "gpu", 1, 0.00076, now - 60.0),  # open: bills up to now
    ]
    localpod.ctx.store.sessions.extend(sessions)
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    rest = httpx.get(f"{localpod.rest_url}/v2/billing/serverless", params={"lastN": 2}, headers=headers).json()
    query = "{ myself { clientBalance currentSpendPerHr } }"
    me = httpx.post(f"{localpod.rest_url}/graphql", json={"query": query}, headers=headers).json()["data"]["myself"]
    later = time.time()

    billed = rest["metadata"]["totals"]["totalAmount"]
    closed = 1001 * 0.00019 + 1 * 0.00016 * 2
    assert closed + 60 * 0.00076 <= billed + 1e-6 <= closed + (61 + later - now) * 0.00076
    taken = localpod.ctx.store.account.client_balance - me["clientBalance"]
    assert taken == pytest.approx(billed, abs=(later - now + 1) * 0.00076)
    # The open session's endpoint does not exist in the store: a deleted endpoint bills no more per hour.
    assert me["currentSpendPerHr"] == 0
    assert billing.current_spend_per_hr(sessions, {"epB"}) == pytest.approx(0.00076 * 3600)
