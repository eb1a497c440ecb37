"""The emulated account: its balance, and the worker quota that balance buys.

Source: Runpod's docs, ``serverless/workers/overview.mdx`` ("Max worker limits", runpod/docs at
a900806): "Account balance determines your maximum workers (flex + active combined)": 5 by default,
10 from $100, 20 from $200, 30 from $300, 40 from $500, 50 from $700, 60 from $900; "Need more
capacity? Contact support." So the quota caps the sum of ``workersMax`` over *every* endpoint of
the account (max workers counts flex and active workers alike, since active workers are the
``workersMin`` part of it).

The refusal's wording is Runpod's own, as its docs quote it (``tutorials/flash/
build-rest-api-with-load-balancer.mdx``, "Worker quota exceeded"): ``Max workers across all
endpoints must not exceed your workers quota (30)``. Which HTTP status REST v2 answers it with is
not documented; localpod treats it as a broken rule (400, like ``workers.max`` below
``workers.min``). That tutorial also says "standard Runpod accounts have a total quota of 30
workers"; the balance table is the specific source, so localpod follows the table.

Also localpod's own assumption, since no source says: a change that does not raise an endpoint's
``workersMax`` is never refused, so an account over its quota (the balance fell, or the override
below was lowered) can still scale down and delete.

``Account.max_workers_quota`` overrides the table (``PATCH /_localpod/config``
``{"max_workers_quota": 40}``): an account whose quota support raised, or a test.
"""

from __future__ import annotations

import time

from localpod.resources import billing
from localpod.store import Endpoint, Store

DEFAULT_QUOTA = 5
QUOTA_BY_BALANCE: tuple[tuple[float, int], ...] = (
    (900.0, 60),
    (700.0, 50),
    (500.0, 40),
    (300.0, 30),
    (200.0, 20),
    (100.0, 10),
)
"""(lowest balance in $, max workers), highest first; below $100 the quota is ``DEFAULT_QUOTA``."""

QUOTA_MESSAGE = "Max workers across all endpoints must not exceed your workers quota ({quota})"
"""Runpod's sentence (docs ``tutorials/flash/build-rest-api-with-load-balancer.mdx``)."""


def quota_for_balance(balance: float) -> int:
    """Max workers (all endpoints together) that ``balance`` dollars buy, per the docs' table."""
    for floor, quota in QUOTA_BY_BALANCE:
        if balance >= floor:
            return quota
    return DEFAULT_QUOTA


def max_workers_quota(store: Store) -> int:
    """The account's quota: the override when set, else what its balance buys."""
    override = store.account.max_workers_quota
    return override if override is not None else quota_for_balance(billing.client_balance(store, time.time()))


def quota_exceeded(store: Store, candidate: Endpoint, previous_max: int) -> int | None:
    """The quota ``candidate`` would break (None when it fits): the sum of ``workers_max`` over every
    other endpoint plus ``candidate``'s, when ``candidate`` raises its max above ``previous_max``
    (0 for a new endpoint)."""
    if candidate.workers_max <= previous_max:
        return None
    others = sum(e.workers_max for e in store.endpoints.values() if e.id != candidate.id)
    quota = max_workers_quota(store)
    return quota if others + candidate.workers_max > quota else None
