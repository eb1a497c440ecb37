"""Cached-model references: ``https://huggingface.co/<org>/<model>:<revision>``.

The form is runpodctl's (runpod/runpodctl at 53ccd0f, ``cmd/serverless/create.go``,
``--model-reference``: "hugging face model url with a ref to cache on the endpoint, e.g.
https://huggingface.co/<org>/<model>:main"). Kept apart from the GraphQL calls
(:mod:`rpbook.account.cachedmodels`) so that specs can check a reference before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rpbook.core.errors import ConfigError

HUB_MODEL_URL = "https://huggingface.co/"
DEFAULT_REVISION = "main"
_REPO = r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*"
_REVISION = r"[A-Za-z0-9._/-]+"
_REFERENCE = re.compile(rf"^https://huggingface\.co/(?P<repo>{_REPO}):(?P<revision>{_REVISION})$")
_EXAMPLE = "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct:main"


def model_reference(repo: str, revision: str = DEFAULT_REVISION) -> str:
    """The reference Runpod caches for ``repo`` at ``revision`` (a branch, tag or commit)."""
    if not isinstance(repo, str) or not re.fullmatch(_REPO, repo):
        raise ConfigError(f"model: {repo!r} is not a Hugging Face repo id like 'mistralai/Mistral-7B-Instruct-v0.3'")
    if not isinstance(revision, str) or not re.fullmatch(_REVISION, revision):
        raise ConfigError(f"model revision: {revision!r} is not a branch, tag or commit such as 'main'")
    return f"{HUB_MODEL_URL}{repo}:{revision}"


def repo_of(reference: str) -> str | None:
    """``org/model`` of a well-formed reference, else None."""
    match = _REFERENCE.match(reference) if isinstance(reference, str) else None
    return match["repo"] if match else None


def check_references(where: str, references: Any) -> tuple[str, ...]:
    """References as a tuple, each well formed and listed once; a ``ConfigError`` says what to write."""
    items: Sequence[Any] = (references,) if isinstance(references, str) else references
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: must list model references like {_EXAMPLE!r}, got {references!r}")
    for item in items:
        if repo_of(item) is None:
            raise ConfigError(
                f"{where}: {item!r} is not a cached-model reference; write https://huggingface.co/<org>/<model>:"
                f"<revision>, e.g. {_EXAMPLE!r} (modelrefs.model_reference(repo) builds one)"
            )
    if len(set(items)) != len(items):
        raise ConfigError(f"{where}: {list(items)} lists a model twice; list each once")
    return tuple(items)


WEIGHTS_CHOICES = ("volume", "cached")


def weights_settings(weights: str, model: str, volume_name: str) -> tuple[str | None, tuple[str, ...]]:
    """Runbook 02's ``weights`` as the endpoint's (network volume name, cached-model references).

    ``volume``: the volume from runbook 01 holds the Hub cache (it pins the endpoint to the volume's
    data center); no cached models. ``cached``: Runpod's cached models (no volume, no pinning, the
    download not billed; docs ``serverless/endpoints/model-caching.mdx``): ``model`` at ``main``."""
    if weights not in WEIGHTS_CHOICES:
        raise ConfigError(f"weights: {weights!r}; set one of {', '.join(map(repr, WEIGHTS_CHOICES))}")
    if weights == "cached":
        return None, (model_reference(model),)
    return (volume_name or None), ()
