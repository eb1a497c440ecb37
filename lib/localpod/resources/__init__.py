"""The rules of localpod's durable resources, one backend per family, apart from the APIs.

As in moto (``models.py`` owns the rules, ``responses.py`` translates), each family has one module
that owns its state in the shared :class:`~localpod.store.Store` and every rule about it: create,
update, validate, template linking, delete guards. Each raises one error type,
:class:`~localpod.resources.errors.ResourceError` (the field and the message). The REST v2 and
GraphQL handlers in :mod:`localpod.services` only parse requests into field values, call a backend
and serialise the result or the error, so a rule lives in exactly one place.

- :mod:`~localpod.resources.endpoints`: serverless endpoints (GPU selection, volumes, CUDA, timeout,
  versions, deletion);
- :mod:`~localpod.resources.templates`: templates and how endpoints take their settings from one;
- :mod:`~localpod.resources.volumes`: network volumes;
- :mod:`~localpod.resources.errors`: the error type and each API's wording of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from localpod.resources import endpoints, templates
from localpod.resources.common import EndpointListener
from localpod.resources.endpoints import Endpoints
from localpod.resources.errors import ResourceError
from localpod.resources.templates import Templates
from localpod.resources.volumes import Volumes
from localpod.store import Store

__all__ = ["Backends", "Endpoints", "ResourceError", "Templates", "Volumes", "backends"]


@dataclass(frozen=True)
class Backends:
    """The backends one API works through."""

    endpoints: Endpoints
    templates: Templates
    volumes: Volumes


def backends(store: Store, listener: EndpointListener, api: Literal["rest", "graphql"]) -> Backends:
    """The backends for ``api``, worded as that API words its refusals and with its own rules."""
    template_api = templates.REST if api == "rest" else templates.GRAPHQL
    endpoint_api = endpoints.REST if api == "rest" else endpoints.GRAPHQL
    template_backend = Templates(store, listener, template_api)
    return Backends(
        endpoints=Endpoints(store, listener, endpoint_api, template_backend),
        templates=template_backend,
        volumes=Volumes(store),
    )
