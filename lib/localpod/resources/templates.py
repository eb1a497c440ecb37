"""Templates: reusable container settings, and how endpoints take them (template linking).

Rules, with the API that states them:

- an endpoint may only use a *serverless* template (both APIs refuse a pod template);
- a template an endpoint was created from (``Endpoint.template_id``) cannot be deleted (REST v2
  spec, ``deleteTemplate``: "Rejected if ... bound to a serverless endpoint"; GraphQL likewise);
- GraphQL ``saveTemplate``: names are unique per account, and an edit reaches every endpoint built
  from the template as a new endpoint version (:attr:`TemplateApi.edits_reach_endpoints`). In REST
  v2 names need not be unique and a template is a snapshot taken when an endpoint is created, so
  editing it changes no endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from localpod import limits
from localpod.resources.common import EndpointListener, copy_into
from localpod.resources.errors import ResourceError, Wording
from localpod.store import Endpoint, Store, Template

CONTAINER_FIELDS = ("image", "args", "disk", "ports", "registry")
"""Container settings an endpoint takes from its template, besides ``env`` (merged per key)."""


@dataclass(frozen=True)
class TemplateApi:
    """What differs between the APIs for templates: their wording and two GraphQL-only rules."""

    wording: Wording
    unique_names: bool
    edits_reach_endpoints: bool


REST = TemplateApi(
    Wording(
        "REST v2",
        {
            "not_found": ("templateId", "template {id!r} not found"),
            "not_serverless": (
                "templateId",
                "template {id!r} is a pod template; an endpoint needs a serverless template (serverless: true)",
            ),
            "in_use": (
                "",
                "template {id!r} is bound to serverless endpoint(s) {users}; delete them (or PATCH them onto "
                "another template) first",
            ),
        },
    ),
    unique_names=False,
    edits_reach_endpoints=False,
)

GRAPHQL = TemplateApi(
    Wording(
        "GraphQL",
        {
            "not_found": ("templateId", "Template {id} not found"),
            "not_serverless": ("templateId", "Template {id} is not a serverless template (isServerless: false)"),
            "in_use": (
                "templateName",
                'Template "{name}" is in use by endpoint(s) {users}; delete them or switch their template first',
            ),
            "name_taken": ("name", 'Template name "{name}" is already taken: template names must be unique'),
            "name_not_found": ("templateName", 'Template "{name}" not found'),
            "name_ambiguous": (
                "templateName",
                '{count} templates are named "{name}"; delete them by id through the REST API',
            ),
        },
    ),
    unique_names=True,
    edits_reach_endpoints=True,
)


def container_of(template: Template) -> dict[str, Any]:
    """The template's container settings as ``Endpoint`` fields (copies: the endpoint owns them)."""
    return {
        "image": template.image,
        "args": template.args,
        "disk": template.disk,
        "ports": list(template.ports),
        "registry": template.registry,
        "env": dict(template.env),
    }


def linked_container(template: Template | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Container settings from ``template`` with the request's own on top: each field the request
    sets wins, and ``env`` is merged per key (the request's value wins), as the REST v2 spec says
    for ``templateId`` ("body fields override the template's")."""
    container = container_of(template) if template is not None else {}
    for name in CONTAINER_FIELDS:
        if name in fields:
            container[name] = fields[name]
    if "env" in fields:
        container["env"] = {**container.get("env", {}), **fields["env"]}
    return container


def apply_template(endpoint: Endpoint, template: Template) -> bool:
    """Point ``endpoint`` at ``template`` and give it the template's container settings, in place;
    True when that is a new release (something workers run with changed)."""
    before = endpoint.release()
    endpoint.template_id = template.id
    for name, value in container_of(template).items():
        setattr(endpoint, name, value)
    return before != endpoint.release()


class Templates:
    """Every rule about templates, over the shared store, for one API."""

    def __init__(self, store: Store, listener: EndpointListener, api: TemplateApi) -> None:
        self.store = store
        self.listener = listener
        self.api = api

    def all(self) -> list[Template]:
        return list(self.store.templates.values())

    def get(self, template_id: str) -> Template:
        template = self.store.templates.get(template_id)
        if template is None:
            raise self.api.wording.error("not_found", "not_found", id=template_id)
        return template

    def serverless(self, template_id: str) -> Template:
        """The template an endpoint is to use: it must exist and be a serverless one."""
        template = self.get(template_id)
        if not template.serverless:
            raise self.api.wording.error("not_serverless", "unsupported", id=template_id)
        return template

    def by_name(self, name: str) -> Template:
        """The one template called ``name`` (GraphQL deletes by name; REST v2 allows twins)."""
        named = [t for t in self.store.templates.values() if t.name == name]
        if not named:
            raise self.api.wording.error("name_not_found", "not_found", name=name)
        if len(named) > 1:
            raise self.api.wording.error("name_ambiguous", "conflict", name=name, count=len(named))
        return named[0]

    def _check_name(self, name: str, template_id: str | None) -> None:
        too_long = limits.name_error(name)
        if too_long is not None:
            raise ResourceError("name", too_long)
        if self.api.unique_names and any(t.name == name and t.id != template_id for t in self.store.templates.values()):
            raise self.api.wording.error("name_taken", name=name)

    def create(self, fields: Mapping[str, Any]) -> Template:
        """A new template from ``Template`` field values (the id is the store's to give)."""
        template = Template(id=self.store.new_template_id(), **fields)
        self._check_name(template.name, None)
        with self.store.change():
            self.store.templates[template.id] = template
        return template

    def update(self, template_id: str, changes: Mapping[str, Any]) -> Template:
        """Change the given fields in place; under GraphQL the change reaches the endpoints built
        from the template, each as a new version when their release changes."""
        template = self.get(template_id)
        self._check_name(changes.get("name", template.name), template.id)
        candidate = Template(**{**vars(template), **changes})
        changed: list[Endpoint] = []
        with self.store.change():
            copy_into(template, candidate)
            if self.api.edits_reach_endpoints:
                for endpoint in self.store.endpoints.values():
                    if endpoint.template_id == template.id and apply_template(endpoint, template):
                        endpoint.version += 1
                        changed.append(endpoint)
        for endpoint in changed:  # told once the change is durable
            self.listener.endpoint_updated(endpoint)
        return template

    def delete(self, template_id: str) -> None:
        """Refused while an endpoint was created from the template (it is bound to it)."""
        template = self.get(template_id)
        users = sorted(e.id for e in self.store.endpoints.values() if e.template_id == template.id)
        if users:
            raise self.api.wording.error(
                "in_use", "conflict", id=template.id, name=template.name, users=", ".join(users)
            )
        with self.store.change():
            del self.store.templates[template.id]
