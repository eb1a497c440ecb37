"""``/v2/network-volumes``: persistent storage in one data center.

Runpod's rules, which a runbook has to respect: size is 10-4096 GB and can only grow (a smaller
``size`` is a 400), the data center and the storage tier are fixed at creation (sending them in a
PATCH is a 422), the data center must exist and offer network storage (400 naming the valid ones),
and names need not be unique. localpod also refuses to delete a volume an endpoint still mounts
(400 naming the endpoints) instead of leaving the endpoint pointing at nothing; delete or PATCH
the endpoint first.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod import catalog
from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.services.rest.common import ApiError, bad_request, not_found, parse_body, resource
from localpod.services.rest.models import (VOLUME_PATCH_HINTS, CreateNetworkVolumeRequest,
                                           UpdateNetworkVolumeRequest)
from localpod.store import NetworkVolume


def volume_json(volume: NetworkVolume) -> dict[str, Any]:
    """A ``NetworkVolume`` exactly as the spec's schema has it."""
    return {"id": volume.id, "name": volume.name, "size": volume.size, "dataCenter": volume.data_center,
            "type": volume.type}


def _volume_data_centers() -> list[str]:
    return [dc.id for dc in catalog.data_centers() if dc.volume_types]


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    def get_volume(request: Request) -> NetworkVolume:
        volume_id = request.path_params["id"]
        volume = store.volumes.get(volume_id)
        if volume is None:
            raise not_found("network volume", volume_id)
        return volume

    async def list_volumes(request: Request) -> Response:
        return JSONResponse({"networkVolumes": [volume_json(v) for v in store.volumes.values()]})

    async def create_volume(request: Request) -> Response:
        body = await parse_body(request, CreateNetworkVolumeRequest)
        dc = catalog.data_center(body.data_center)
        if dc is None or not dc.volume_types:
            reason = "is not a data center" if dc is None else "offers no network volume storage"
            raise bad_request([f"dataCenter: {body.data_center!r} {reason}; data centers with network volumes: "
                               f"{', '.join(_volume_data_centers())}"])
        volume_type = body.type or dc.volume_types[0]  # the data center's primary tier when omitted
        if volume_type not in dc.volume_types:
            raise bad_request([f"type: {dc.id} offers {', '.join(dc.volume_types)} volumes, not {volume_type}"])
        volume = NetworkVolume(id=store.new_volume_id(), name=body.name, size=body.size, data_center=dc.id,
                               type=volume_type)
        store.volumes[volume.id] = volume
        store.commit()
        return JSONResponse(volume_json(volume), status_code=201)

    async def get_one(request: Request) -> Response:
        return JSONResponse(volume_json(get_volume(request)))

    async def update_volume(request: Request) -> Response:
        body = await parse_body(request, UpdateNetworkVolumeRequest, hints=VOLUME_PATCH_HINTS)
        volume = get_volume(request)
        if body.size is not None and body.size < volume.size:
            raise bad_request([f"size: network volume storage cannot be reduced (current {volume.size} GB, "
                               f"requested {body.size} GB)"])
        if body.name is not None:
            volume.name = body.name
        if body.size is not None:
            volume.size = body.size
        store.commit()
        return JSONResponse(volume_json(volume))

    async def delete_volume(request: Request) -> Response:
        volume = get_volume(request)
        users = sorted(e.id for e in store.endpoints.values() if volume.id in e.network_volume_ids)
        if users:
            raise ApiError(400, f"network volume {volume.id!r} is attached to serverless endpoint(s) "
                                f"{', '.join(users)}; detach it or delete them first")
        del store.volumes[volume.id]
        store.commit()
        return Response(status_code=204)

    return [
        resource(ctx, "/v2/network-volumes", {"GET": list_volumes, "POST": create_volume}),
        resource(ctx, "/v2/network-volumes/{id}", {"GET": get_one, "PATCH": update_volume, "DELETE": delete_volume}),
    ]
