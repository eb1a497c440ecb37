"""``/v2/network-volumes``: persistent storage in one data center.

Parsing and serialising only; the rules are the volumes backend's (:mod:`localpod.resources.volumes`).
The request schema holds the rest: size is 10-4096 GB, and the data center and the storage tier
are fixed at creation (sending them in a PATCH is a 422 saying why, :data:`VOLUME_PATCH_HINTS`).
Names need not be unique.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.services.rest.common import parse_body, resource, rest_backends
from localpod.services.rest.models import VOLUME_PATCH_HINTS, CreateNetworkVolumeRequest, UpdateNetworkVolumeRequest
from localpod.store import NetworkVolume


def volume_json(volume: NetworkVolume) -> dict[str, Any]:
    """A ``NetworkVolume`` exactly as the spec's schema has it."""
    return {
        "id": volume.id,
        "name": volume.name,
        "size": volume.size,
        "dataCenter": volume.data_center,
        "type": volume.type,
    }


def routes(ctx: ServerContext) -> list[BaseRoute]:
    volumes = rest_backends(ctx).volumes

    async def list_volumes(request: Request) -> Response:
        return JSONResponse({"networkVolumes": [volume_json(v) for v in volumes.all()]})

    async def create_volume(request: Request) -> Response:
        body = await parse_body(request, CreateNetworkVolumeRequest)
        volume = volumes.create(body.name, body.size, body.data_center, body.type)
        return JSONResponse(volume_json(volume), status_code=201)

    async def get_one(request: Request) -> Response:
        return JSONResponse(volume_json(volumes.get(request.path_params["id"])))

    async def update_volume(request: Request) -> Response:
        body = await parse_body(request, UpdateNetworkVolumeRequest, hints=VOLUME_PATCH_HINTS)
        volume = volumes.update(request.path_params["id"], name=body.name, size=body.size)
        return JSONResponse(volume_json(volume))

    async def delete_volume(request: Request) -> Response:
        volumes.delete(request.path_params["id"])
        return Response(status_code=204)

    return [
        resource(ctx, "/v2/network-volumes", {"GET": list_volumes, "POST": create_volume}),
        resource(ctx, "/v2/network-volumes/{id}", {"GET": get_one, "PATCH": update_volume, "DELETE": delete_volume}),
    ]
