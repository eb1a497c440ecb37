"""What every service module gets: settings, the durable store and the serverless platform."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from localpod.config import Settings
from localpod.store import Store

if TYPE_CHECKING:
    from localpod.serverless.platform import Platform


@dataclass
class ServerContext:
    settings: Settings
    store: Store
    platform: Platform
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    """The server's event loop, set at start-up (tests use it to act inside the server)."""

    def is_valid_api_key(self, key: str | None) -> bool:
        return bool(key) and (key == self.settings.api_key or key in self.settings.extra_api_keys)
