"""``/v2/templates``: reusable container configurations (create, list, get, patch, delete).

A template is a snapshot applied when an endpoint is created from it, so editing it changes no
endpoint. Deleting one that an endpoint was created from (``Endpoint.template_id``) is refused with a
400, as the spec says for templates bound to an endpoint. Names need not be unique: creating twice
gives two templates, so a runbook that wants idempotency must look its template up by name first.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.services.rest.common import ApiError, not_found, parse_body, resource
from localpod.services.rest.models import CreateTemplateRequest, TemplateMounts, UpdateTemplateRequest
from localpod.store import Template

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


def _apply_mounts(template: Template, mounts: TemplateMounts) -> None:
    """``mounts: {}`` leaves the mount unchanged; ``persistent`` sets it (store keeps both views)."""
    if mounts.persistent is not None:
        template.volume_in_gb = mounts.persistent.size
        template.volume_mount_path = mounts.persistent.path
        template.mounts = {"persistent": {"size": mounts.persistent.size, "path": mounts.persistent.path}}


_SIMPLE_FIELDS = ("name", "image", "args", "disk", "ports", "registry", "category", "public", "serverless",
                  "start_ssh", "start_jupyter")


def routes(ctx: ServerContext) -> list[BaseRoute]:
    store = ctx.store

    def get_template(request: Request) -> Template:
        template_id = request.path_params["id"]
        template = store.templates.get(template_id)
        if template is None:
            raise not_found("template", template_id)
        return template

    async def list_templates(request: Request) -> Response:
        return JSONResponse({"templates": [template_json(t) for t in store.templates.values()]})

    async def create_template(request: Request) -> Response:
        body = await parse_body(request, CreateTemplateRequest)
        template = Template(
            id=store.new_template_id(), name=body.name, image=body.image, args=body.args or "",
            disk=body.disk if body.disk is not None else DEFAULT_DISK_GB, env=dict(body.env or {}),
            ports=list(body.ports or []), registry=body.registry, serverless=body.serverless,
            public=body.public, category=body.category, start_ssh=body.start_ssh,
            start_jupyter=body.start_jupyter, allowed_cuda_versions=list(body.allowed_cuda_versions or []),
            volume_in_gb=0)
        if body.mounts is not None:
            _apply_mounts(template, body.mounts)
        store.templates[template.id] = template
        store.commit()
        return JSONResponse(template_json(template), status_code=201)

    async def get_one(request: Request) -> Response:
        return JSONResponse(template_json(get_template(request)))

    async def update_template(request: Request) -> Response:
        body = await parse_body(request, UpdateTemplateRequest)
        template = get_template(request)
        for name in _SIMPLE_FIELDS:
            if body.given(name):
                setattr(template, name, getattr(body, name))
        if body.env is not None:
            template.env = dict(body.env)
        if body.allowed_cuda_versions is not None:
            template.allowed_cuda_versions = list(body.allowed_cuda_versions)
        if body.mounts is not None:
            _apply_mounts(template, body.mounts)
        store.commit()
        return JSONResponse(template_json(template))

    async def delete_template(request: Request) -> Response:
        template = get_template(request)
        users = sorted(e.id for e in store.endpoints.values() if e.template_id == template.id)
        if users:
            raise ApiError(400, f"template {template.id!r} is bound to serverless endpoint(s) {', '.join(users)}; "
                                "delete them (or PATCH them onto another template) first")
        del store.templates[template.id]
        store.commit()
        return Response(status_code=204)

    return [
        resource(ctx, "/v2/templates", {"GET": list_templates, "POST": create_template}),
        resource(ctx, "/v2/templates/{id}", {"GET": get_one, "PATCH": update_template, "DELETE": delete_template}),
    ]
