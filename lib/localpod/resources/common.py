"""What the resource backends share: how a stored object changes, and whom they tell.

Stored objects are changed *in place*: the serverless platform holds references to the very
``Endpoint`` objects in the store, so a copy would leave it running the old settings.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Protocol

from localpod.store import Endpoint


class EndpointListener(Protocol):
    """What runs endpoints (the serverless platform) and must hear of every change to one."""

    def endpoint_created(self, endpoint: Endpoint) -> None: ...

    def endpoint_updated(self, endpoint: Endpoint) -> None: ...

    def endpoint_deleted(self, endpoint_id: str) -> None: ...


def copy_into(target: Any, source: Any) -> None:
    """Give ``target`` every field of ``source`` (same dataclass), keeping ``target``'s identity."""
    for field in fields(source):
        setattr(target, field.name, getattr(source, field.name))
