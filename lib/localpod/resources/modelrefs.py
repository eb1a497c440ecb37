"""Cached models: the form of an endpoint's model references and the repos they name.

Source: runpodctl (runpod/runpodctl at 53ccd0f, 2026-06-11, "Add support for deploying serverless
with models"): ``cmd/serverless/create.go`` / ``update.go`` take ``--model-reference``, "hugging
face model url with a ref to cache on the endpoint, e.g. https://huggingface.co/<org>/<model>:main",
gpu only, repeatable; ``internal/api/endpoints.go`` sends them as ``modelReferences`` (a list of
strings) in GraphQL ``saveEndpoint``. Runpod's docs (``serverless/endpoints/model-caching.mdx``)
describe the effect: workers start on hosts that already hold the model, the download is not
billed, no network volume is needed. Neither says what Runpod answers for a malformed reference:
the refusal below and its wording are localpod's (runpodctl itself checks nothing but GPU-only).
"""

from __future__ import annotations

import re

HUB_MODEL_URL = "https://huggingface.co/"
_REFERENCE = re.compile(
    r"^https://huggingface\.co/(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*):(?P<ref>[A-Za-z0-9._/-]+)$"
)
MAX_REFERENCES = 10
"""localpod's bound on references per endpoint (no source states one; the console shows one Model)."""


def parse(reference: str) -> tuple[str, str] | None:
    """``https://huggingface.co/<org>/<model>:<ref>`` -> (``org/model``, ``ref``); None if malformed."""
    match = _REFERENCE.match(reference)
    return (match["repo"], match["ref"]) if match else None


def reference_errors(references: list[str]) -> list[str]:
    """What is wrong with an endpoint's model references, one message per problem (localpod's wording).
    runpodctl's other rule, GPU endpoints only, always holds here: localpod emulates no CPU endpoint."""
    problems: list[str] = []
    if len(references) > MAX_REFERENCES:
        problems.append(f"modelReferences lists {len(references)} models; localpod accepts at most {MAX_REFERENCES}")
    for i, reference in enumerate(references):
        if parse(reference) is None:
            problems.append(
                f"modelReferences[{i}] {reference!r} is not a Hugging Face model reference: write "
                "https://huggingface.co/<org>/<model>:<revision>, e.g. https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct:main"
            )
    if len(set(references)) != len(references):
        problems.append("modelReferences lists a model twice; list each once")
    return problems


def cached_repos(references: list[str]) -> set[str]:
    """The Hub repos an endpoint's hosts hold in their model cache (malformed ones never get stored)."""
    return {parsed[0] for parsed in map(parse, references) if parsed is not None}
