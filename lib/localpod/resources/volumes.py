"""Network volumes: persistent storage in one data center.

Runpod's rules (REST v2 spec, ``CreateNetworkVolumeRequest`` / ``updateNetworkVolume``), which a
runbook has to respect: the data center must exist and offer network storage, the storage tier must
be one it offers (its primary tier when none is asked for), and a volume can only grow. Size bounds,
and that the data center and tier are fixed after creation, are the request schema's (the REST
handler checks those). localpod also refuses to delete a volume an endpoint still mounts instead of
leaving the endpoint pointing at nothing: delete or change the endpoint first.
"""

from __future__ import annotations

from localpod import catalog, limits
from localpod.resources.errors import ResourceError, Wording
from localpod.store import NetworkVolume, Store

WORDING = Wording(
    "REST v2",
    {
        "not_found": ("id", "network volume {id!r} not found"),
        "bad_data_center": ("dataCenter", "{dc!r} {reason}; data centers with network volumes: {valid}"),
        "bad_type": ("type", "{dc} offers {offered} volumes, not {type}"),
        "shrink": ("size", "network volume storage cannot be reduced (current {current} GB, requested {requested} GB)"),
        "in_use": (
            "",
            "network volume {id!r} is attached to serverless endpoint(s) {users}; detach it or delete them first",
        ),
    },
)
"""Only REST v2 manages volumes in localpod (GraphQL lists them, through ``myself``)."""


def volume_data_centers() -> list[str]:
    """Data centers that offer network volume storage at all."""
    return [dc.id for dc in catalog.data_centers() if dc.volume_types]


class Volumes:
    """Every rule about network volumes, over the shared store."""

    def __init__(self, store: Store, wording: Wording = WORDING) -> None:
        self.store = store
        self.wording = wording

    def all(self) -> list[NetworkVolume]:
        return list(self.store.volumes.values())

    def get(self, volume_id: str) -> NetworkVolume:
        volume = self.store.volumes.get(volume_id)
        if volume is None:
            raise self.wording.error("not_found", "not_found", id=volume_id)
        return volume

    def create(self, name: str, size: int, data_center: str, volume_type: str | None = None) -> NetworkVolume:
        _check_name(name)
        dc = catalog.data_center(data_center)
        if dc is None or not dc.volume_types:
            reason = "is not a data center" if dc is None else "offers no network volume storage"
            raise self.wording.error(
                "bad_data_center", dc=data_center, reason=reason, valid=", ".join(volume_data_centers())
            )
        chosen = volume_type or dc.volume_types[0]  # the data center's primary tier when omitted
        if chosen not in dc.volume_types:
            raise self.wording.error("bad_type", dc=dc.id, offered=", ".join(dc.volume_types), type=chosen)
        volume = NetworkVolume(id=self.store.new_volume_id(), name=name, size=size, data_center=dc.id, type=chosen)
        with self.store.change():
            self.store.volumes[volume.id] = volume
        return volume

    def update(self, volume_id: str, *, name: str | None = None, size: int | None = None) -> NetworkVolume:
        volume = self.get(volume_id)
        _check_name(name)
        if size is not None and size < volume.size:
            raise self.wording.error("shrink", current=volume.size, requested=size)
        with self.store.change():
            if name is not None:
                volume.name = name
            if size is not None:
                volume.size = size
        return volume

    def delete(self, volume_id: str) -> None:
        volume = self.get(volume_id)
        users = sorted(e.id for e in self.store.endpoints.values() if volume.id in e.network_volume_ids)
        if users:
            raise self.wording.error("in_use", "conflict", id=volume.id, users=", ".join(users))
        with self.store.change():
            del self.store.volumes[volume.id]


def _check_name(name: str | None) -> None:
    too_long = limits.name_error(name)
    if too_long is not None:
        raise ResourceError("name", too_long)
