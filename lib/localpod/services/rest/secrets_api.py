"""``GET /v2/account/secrets``: the account's Runpod secrets, names and metadata, never values.

Runpod's docs (docs.runpod.io ``api-reference-v2/account/list-secrets``; runpod/docs 6bedc9af) list
secrets with an optional ``name`` filter (case-insensitive) as ``{"secrets": [...]}``; the rules
are :mod:`localpod.runpod_secrets`'. localpod's secrets are fixed at its start, so ``createdAt``
and ``valueLastUpdatedAt`` are the server's start time and ``description`` is null.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.runpod_secrets import account_secrets
from localpod.services.rest.common import resource
from localpod.store import utc_now_iso


def routes(ctx: ServerContext) -> list[BaseRoute]:
    started = utc_now_iso()

    async def list_secrets(request: Request) -> Response:
        names = [*ctx.settings.secrets, "hf_token"]  # hf_token: the seed account's token unless redefined
        found = account_secrets(names, started, request.query_params.get("name") or None)
        return JSONResponse(
            {
                "secrets": [
                    {
                        "id": s.id,
                        "name": s.name,
                        "description": None,
                        "createdAt": s.created_at,
                        "valueLastUpdatedAt": s.created_at,
                    }
                    for s in found
                ]
            }
        )

    return [resource(ctx, "/v2/account/secrets", {"GET": list_secrets})]
