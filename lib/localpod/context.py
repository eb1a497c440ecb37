"""What every service module gets: settings, the durable store and the serverless platform."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from localpod.config import Settings
from localpod.store import Store

if TYPE_CHECKING:
    from localpod.serverless.platform import Platform


@dataclass
class ServerContext:
    settings: Settings
    store: Store
    platform: "Platform"

    def is_valid_api_key(self, key: str | None) -> bool:
        return bool(key) and (key == self.settings.api_key or key in self.settings.extra_api_keys)
