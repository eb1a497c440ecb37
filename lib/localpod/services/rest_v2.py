"""(being written)"""

from __future__ import annotations

from starlette.routing import BaseRoute

from localpod.context import ServerContext


def routes(ctx: ServerContext) -> list[BaseRoute]:
    return []
