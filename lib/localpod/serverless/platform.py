"""(being written) The serverless platform: per-endpoint queues, workers, autoscaling."""

from __future__ import annotations

from dataclasses import dataclass

from localpod.config import Settings
from localpod.store import Endpoint, Store


@dataclass
class WorkerInfo:
    """A worker as the control plane shows it (REST v2 ``Worker``)."""

    id: str
    status: str  # RUNNING | IDLE | INITIALIZING | THROTTLED | UNHEALTHY
    version: int
    gpu_count: int
    image: str
    uptime_seconds: int | None
    gpu_type_id: str | None
    data_center_id: str | None
    started_at: str | None


class Platform:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def endpoint_created(self, endpoint: Endpoint) -> None:
        pass

    def endpoint_updated(self, endpoint: Endpoint) -> None:
        pass

    def endpoint_deleted(self, endpoint_id: str) -> None:
        pass

    def list_workers(self, endpoint_id: str) -> list[WorkerInfo]:
        return []

    def snapshot(self) -> dict:
        return {}

    async def reset(self) -> None:
        pass
