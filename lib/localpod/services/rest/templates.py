"""``/v2/templates``: reusable container configurations (create, list, get, patch, delete).

Parsing and serialising only; the rules are the templates backend's
(:mod:`localpod.resources.templates`). In REST v2 a template is a snapshot applied when an endpoint
is created from it, so editing it changes no endpoint; deleting one an endpoint was created from is
refused with a 400. Names need not be unique: creating twice gives two templates, so a runbook that
wants idempotency must look its template up by name first.

``/v2/catalog/templates`` serves the public catalog (:mod:`localpod.template_catalog`); its
``source`` is ``official`` (default), ``verified`` or ``community`` (anything else: 422). An
official template can be read through ``GET /v2/templates/{id}`` too ("fetch any individual
template — catalog or owned — via ``/v2/templates/{id}``", the spec), not changed or deleted.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.resources.errors import ResourceError
from localpod.services.rest.common import parse_body, resource, rest_backends, unprocessable
from localpod.services.rest.models import CreateTemplateRequest, TemplateMounts, UpdateTemplateRequest
from localpod.store import Template
from localpod.template_catalog import SOURCES, public_template, public_templates

DEFAULT_DISK_GB = 20
"""Container disk when the body sets none (the value in the spec's examples)."""


def template_json(template: Template) -> dict[str, Any]:
    """A ``Template`` exactly as the spec's schema has it."""
    mounts: dict[str, Any] = {}
    if template.volume_in_gb > 0:
        mounts["persistent"] = {"size": template.volume_in_gb, "path": template.volume_mount_path}
    return {
        "id": template.id,
        "name": template.name,
        "image": template.image,
        "args": template.args,
        "disk": template.disk,
        "mounts": mounts,
        "ports": list(template.ports),
        "env": dict(template.env),
        "registry": template.registry,
        "serverless": template.serverless,
        "public": template.public,
        "category": template.category,
        "startSsh": template.start_ssh,
        "startJupyter": template.start_jupyter,
        "allowedCudaVersions": list(template.allowed_cuda_versions),
    }


def _mount_fields(mounts: TemplateMounts) -> dict[str, Any]:
    """``mounts: {}`` leaves the mount unchanged; ``persistent`` sets it (store keeps both views)."""
    if mounts.persistent is None:
        return {}
    size, path = mounts.persistent.size, mounts.persistent.path
    return {"volume_in_gb": size, "volume_mount_path": path, "mounts": {"persistent": {"size": size, "path": path}}}


_SIMPLE_FIELDS = (
    "name",
    "image",
    "args",
    "disk",
    "ports",
    "registry",
    "category",
    "public",
    "serverless",
    "start_ssh",
    "start_jupyter",
)


def update_fields(body: UpdateTemplateRequest) -> dict[str, Any]:
    """The fields a PATCH body changes, as ``Template`` fields."""
    changes = {name: getattr(body, name) for name in _SIMPLE_FIELDS if body.given(name)}
    if body.env is not None:
        changes["env"] = dict(body.env)
    if body.allowed_cuda_versions is not None:
        changes["allowed_cuda_versions"] = list(body.allowed_cuda_versions)
    if body.mounts is not None:
        changes.update(_mount_fields(body.mounts))
    return changes


def routes(ctx: ServerContext) -> list[BaseRoute]:
    templates = rest_backends(ctx).templates

    async def list_templates(request: Request) -> Response:
        return JSONResponse({"templates": [template_json(t) for t in templates.all()]})

    async def create_template(request: Request) -> Response:
        body = await parse_body(request, CreateTemplateRequest)
        fields = dict(
            name=body.name,
            image=body.image,
            args=body.args or "",
            disk=body.disk if body.disk is not None else DEFAULT_DISK_GB,
            env=dict(body.env or {}),
            ports=list(body.ports or []),
            registry=body.registry,
            serverless=body.serverless,
            public=body.public,
            category=body.category,
            start_ssh=body.start_ssh,
            start_jupyter=body.start_jupyter,
            allowed_cuda_versions=list(body.allowed_cuda_versions or []),
            volume_in_gb=0,
        )
        if body.mounts is not None:
            fields.update(_mount_fields(body.mounts))
        return JSONResponse(template_json(templates.create(fields)), status_code=201)

    async def get_one(request: Request) -> Response:
        try:
            return JSONResponse(template_json(templates.get(request.path_params["id"])))
        except ResourceError:
            public = public_template(request.path_params["id"])
            if public is None:
                raise
            return JSONResponse(template_json(public))

    async def list_public(request: Request) -> Response:
        source = request.query_params.get("source", "official")
        if source not in SOURCES:
            raise unprocessable([f"source: {source!r} is not one of {', '.join(SOURCES)}"])
        return JSONResponse({"templates": [template_json(t) for t in public_templates(ctx.store, source)]})

    async def update_template(request: Request) -> Response:
        body = await parse_body(request, UpdateTemplateRequest)
        template = templates.get(request.path_params["id"])
        return JSONResponse(template_json(templates.update(template.id, update_fields(body))))

    async def delete_template(request: Request) -> Response:
        templates.delete(request.path_params["id"])
        return Response(status_code=204)

    return [
        resource(ctx, "/v2/templates", {"GET": list_templates, "POST": create_template}),
        resource(ctx, "/v2/templates/{id}", {"GET": get_one, "PATCH": update_template, "DELETE": delete_template}),
        resource(ctx, "/v2/catalog/templates", {"GET": list_public}),
    ]
