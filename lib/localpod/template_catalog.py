"""Runpod's public template catalog as localpod serves it (``/v2/catalog/templates``).

The spec (openapi-v2.json, ``listPublicTemplates``): ``source`` picks a slice, ``official`` (the
default: "Runpod-curated templates"), ``verified`` ("community templates Runpod has verified") or
``community`` ("everything else other users have shared publicly"); pod and serverless templates
both appear; "``registry`` is always null for templates you don't own"; at most 100, no pagination;
and any of them can be read by id through ``/v2/templates/{id}``.

localpod's official slice is three templates of Runpod's own images (the spec's example PyTorch
template with its id, the vLLM and the Infinity embedding workers; the latter two ids are
invented). No verified template is emulated. localpod has a single account, so nobody else shares
anything: its ``community`` slice is the account's own templates marked ``public`` (localpod's
choice; the spec does not say whether one's own public templates appear there).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from localpod.store import Store, Template

Source = Literal["official", "verified", "community"]
SOURCES: tuple[Source, ...] = ("official", "verified", "community")
MAX_TEMPLATES = 100

_OFFICIAL: tuple[Template, ...] = (
    Template(
        id="30zmvf89kd",
        name="PyTorch 2.8",
        image="runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
        disk=50,
        ports=["8888/http", "22/tcp"],
        public=True,
        created_at="2025-09-01T00:00:00.000Z",
    ),
    Template(
        id="rpvllmwrk1",
        name="vLLM (worker-v1-vllm)",
        image="runpod/worker-v1-vllm:v2.25.2",
        disk=20,
        serverless=True,
        public=True,
        start_ssh=False,
        start_jupyter=False,
        created_at="2026-10-01T00:00:00.000Z",
    ),
    Template(
        id="rpinfinity",
        name="Infinity Vector Embeddings",
        image="runpod/worker-infinity-embedding:1.1.4",
        disk=20,
        serverless=True,
        public=True,
        start_ssh=False,
        start_jupyter=False,
        created_at="2026-10-01T00:00:00.000Z",
    ),
)


def public_templates(store: Store, source: Source) -> list[Template]:
    """One slice of the catalog, at most ``MAX_TEMPLATES``; ``registry`` cleared (not the reader's)."""
    if source == "official":
        found = list(_OFFICIAL)
    elif source == "community":
        found = [t for t in store.templates.values() if t.public]
    else:
        found = []
    return [dataclasses.replace(t, registry=None) for t in found[:MAX_TEMPLATES]]


def public_template(template_id: str) -> Template | None:
    """An official template by id (what ``/v2/templates/{id}`` shows for a catalog id)."""
    return next((t for t in _OFFICIAL if t.id == template_id), None)
