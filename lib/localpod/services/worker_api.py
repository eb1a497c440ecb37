"""The worker side of the serverless queue (``api.runpod.ai/v2/{endpoint_id}/job-take/...``).

The routes a worker process running the ``runpod`` SDK calls (job-take, job-take-batch, job-done,
job-stream, ping, job-stop); :mod:`localpod.serverless.worker_protocol` describes the protocol, names
its sources and owns its state. These handlers only parse and serialise. Each worker authenticates
with its own ``RUNPOD_AI_API_KEY``, sent bare in ``Authorization`` as the SDK does
(``runpod/http_client.py``, ``get_auth_header``); a user's API key opens none of these routes.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.serverless.worker_protocol import WorkerMailbox

BATCH_MAX = 1000


def routes(ctx: ServerContext) -> list[BaseRoute]:
    hub = ctx.platform.worker_protocol

    def mailbox_for(request: Request) -> WorkerMailbox | None:
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hub.find(request.path_params["endpoint_id"], request.path_params["worker_id"], key)

    def unauthorized() -> Response:
        return JSONResponse({"error": "Unauthorized: not a worker of this endpoint"}, status_code=401)

    async def job_take(request: Request) -> Response:
        mailbox = mailbox_for(request)
        if mailbox is None:
            return unauthorized()
        jobs = await mailbox.take(1)
        return JSONResponse(jobs[0]) if jobs else Response(status_code=204)

    async def job_take_batch(request: Request) -> Response:
        mailbox = mailbox_for(request)
        if mailbox is None:
            return unauthorized()
        try:
            wanted = int(request.query_params.get("batch_size", "1"))
        except ValueError:
            return JSONResponse({"error": "batch_size must be an integer"}, status_code=400)
        if not 1 <= wanted <= BATCH_MAX:
            return JSONResponse({"error": f"batch_size must be between 1 and {BATCH_MAX}"}, status_code=400)
        jobs = await mailbox.take(wanted)
        return JSONResponse(jobs) if jobs else Response(status_code=204)

    async def posted(request: Request) -> tuple[WorkerMailbox | None, Any, Response | None]:
        mailbox = mailbox_for(request)
        if mailbox is None:
            return None, None, unauthorized()
        raw = await request.body()  # bounded like a /runsync answer (localpod.bodylimit)
        try:
            # The SDK sends json.dumps(...) labelled application/x-www-form-urlencoded (rp_http._transmit).
            return mailbox, json.loads(raw), None
        except ValueError:
            return None, None, JSONResponse({"error": "body is not JSON"}, status_code=400)

    async def job_done(request: Request) -> Response:
        mailbox, payload, problem = await posted(request)
        if problem is not None or mailbox is None:
            return problem or unauthorized()
        is_stream = request.query_params.get("isStream", "false") == "true"
        if not mailbox.done(request.path_params["job_id"], payload, is_stream=is_stream):
            return JSONResponse({"error": "no such job in progress on this worker"}, status_code=404)
        return JSONResponse({})

    async def job_stream(request: Request) -> Response:
        mailbox, payload, problem = await posted(request)
        if problem is not None or mailbox is None:
            return problem or unauthorized()
        if not mailbox.stream(request.path_params["job_id"], payload):
            return JSONResponse({"error": "no such job in progress on this worker"}, status_code=404)
        return JSONResponse({})

    async def ping(request: Request) -> Response:
        mailbox = mailbox_for(request)
        if mailbox is None:
            return unauthorized()
        ids = [i for i in request.query_params.get("job_id", "").split(",") if i]
        unhealthy = None
        if request.query_params.get("status") == "unhealthy":
            unhealthy = f"{request.query_params.get('check', '?')}: {request.query_params.get('reason', '')}"
        mailbox.ping(ids, unhealthy)
        return JSONResponse({})

    async def job_stop(request: Request) -> Response:
        mailbox = mailbox_for(request)
        if mailbox is None:
            return unauthorized()
        ids = await mailbox.stops()
        return JSONResponse({"jobsToStop": ids}) if ids else Response(status_code=204)

    return [
        Route("/v2/{endpoint_id}/job-take/{worker_id}", job_take, methods=["GET"]),
        Route("/v2/{endpoint_id}/job-take-batch/{worker_id}", job_take_batch, methods=["GET"]),
        Route("/v2/{endpoint_id}/job-done/{worker_id}/{job_id}", job_done, methods=["POST"]),
        Route("/v2/{endpoint_id}/job-stream/{worker_id}/{job_id}", job_stream, methods=["POST"]),
        Route("/v2/{endpoint_id}/ping/{worker_id}", ping, methods=["GET"]),
        Route("/v2/{endpoint_id}/job-stop/{worker_id}", job_stop, methods=["GET"]),
    ]
