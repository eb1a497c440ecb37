"""The worker images the runbooks deploy, and the template each one needs.

``vllm_template`` for Runpod's vLLM worker (``runpod/worker-v1-vllm``, runbook 02) and
``infinity_template`` for its Infinity embeddings worker (``runpod/worker-infinity-embedding``,
runbook 04): which env each image reads, which values must be pinned, and where an HF token may
go, read in the images' own code (named at each rule). The result is a plain
``rpbook.account.specs.TemplateSpec``, checked like any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rpbook.account.specs import _IMAGE_TAG, _REPO_ID, EnvValue, TemplateSpec, _fail, _int, check_secret_reference
from rpbook.core.secrets import Secret

# -- vLLM (runpod/worker-v1-vllm) ------------------------------------------------------------------

VLLM_IMAGE = "runpod/worker-v1-vllm"
VLLM_MANAGED_ENV = (
    "MODEL_NAME",
    "HUGGING_FACE_HUB_TOKEN",
    "BASE_PATH",
    "MAX_CONCURRENCY",
    "GPU_MEMORY_UTILIZATION",
    "MAX_MODEL_LEN",
)
"""Env keys ``vllm_template`` sets from its own parameters (``extra_env`` may not override them)."""
VLLM_TOKEN_ENV = "HUGGING_FACE_HUB_TOKEN"
"""Where ``vllm_template`` puts the HF token, never ``HF_TOKEN``: worker-vllm (v2.25.2,
``src/args_builder.py``) turns every env var named like a ``vllm serve`` flag into that flag,
``HF_TOKEN`` into ``--hf-token <token>``, and ``src/main.py`` logs the whole command line
(``Starting vLLM: ...``) into the worker's logs, where anyone with access to the endpoint reads it.
A Runpod secret reference does not help: it is resolved before the process starts.
huggingface_hub inside the worker also reads ``HUGGING_FACE_HUB_TOKEN`` (``utils/_auth.py``, after
``HF_TOKEN``), which names no vLLM flag, so the gated model still downloads."""
_HF_TOKEN_LEAK = (
    "the token would be printed in the worker's logs: worker-vllm turns HF_TOKEN into "
    "`--hf-token <token>` and logs the command line ('Starting vLLM: ...'), secret references "
    "included (Runpod resolves them before the process starts). Pass the token as vllm_template's "
    "hf_token_ref, which sets HUGGING_FACE_HUB_TOKEN (read by huggingface_hub, never a vLLM flag)"
)


def vllm_template(
    name: str,
    model: str,
    image_tag: str,
    hf_token_ref: Secret | str | None,
    max_model_len: int,
    gpu_memory_utilization: float,
    max_concurrency: int,
    base_path: str = "/runpod-volume",
    extra_env: Mapping[str, EnvValue] | None = None,
    disk_gb: int = 50,
) -> TemplateSpec:
    """A template for Runpod's vLLM worker (``runpod/worker-v1-vllm:<tag>``).

    ``image_tag`` must be pinned (e.g. ``v2.25.2``): ``latest`` moves, and a model that ran
    yesterday can fail on a newer vLLM (worker-vllm#276). ``hf_token_ref`` is the HF token as a
    ``Secret`` or a ``{{ RUNPOD_SECRET_name }}`` reference (None only for public, ungated models).
    ``base_path`` on the network volume (``/runpod-volume``) keeps downloaded weights across workers.
    The token goes into ``HUGGING_FACE_HUB_TOKEN``, never ``HF_TOKEN`` (see ``VLLM_TOKEN_ENV``:
    worker-vllm would print ``HF_TOKEN`` in its start line), and ``extra_env`` may not set ``HF_TOKEN``
    nor ``--hf-token`` in ``VLLM_EXTRA_ARGS``.
    """
    if not isinstance(model, str) or not _REPO_ID.match(model):
        raise _fail(
            "vllm_template.model", f"{model!r} is not a Hugging Face repo id like 'mistralai/Mistral-7B-Instruct-v0.3'"
        )
    tag = image_tag.strip() if isinstance(image_tag, str) else image_tag
    if not isinstance(tag, str) or not tag or tag.lower() == "latest":
        raise _fail(
            "vllm_template.image_tag",
            f"{image_tag!r}: pin a release tag such as 'v2.25.2' (not empty, not 'latest', which changes under you)",
        )
    if not _IMAGE_TAG.match(tag):
        raise _fail(
            "vllm_template.image_tag",
            f"{image_tag!r} is not a Docker tag (give only the tag, e.g. 'v2.25.2', not the image name)",
        )
    _int("vllm_template.max_model_len", max_model_len, 1, None, "tokens")
    if (
        isinstance(gpu_memory_utilization, bool)
        or not isinstance(gpu_memory_utilization, (int, float))
        or not 0 < gpu_memory_utilization <= 1
    ):
        raise _fail(
            "vllm_template.gpu_memory_utilization",
            f"must be a fraction with 0 < x <= 1 (e.g. 0.9), got {gpu_memory_utilization!r}",
        )
    _int("vllm_template.max_concurrency", max_concurrency, 1, None, "requests per worker")
    if not isinstance(base_path, str) or not base_path.startswith("/"):
        raise _fail("vllm_template.base_path", f"must be an absolute path such as '/runpod-volume', got {base_path!r}")
    env: dict[str, EnvValue] = {"MODEL_NAME": model}
    if hf_token_ref is not None and hf_token_ref != "":
        if isinstance(hf_token_ref, Secret):
            env[VLLM_TOKEN_ENV] = hf_token_ref
        elif isinstance(hf_token_ref, str):
            env[VLLM_TOKEN_ENV] = check_secret_reference("vllm_template.hf_token_ref", hf_token_ref)
        else:
            raise _fail(
                "vllm_template.hf_token_ref",
                "must be a Secret (settings.hf_token()) or a '{{ RUNPOD_SECRET_<name> }}' reference",
            )
    env.update(
        BASE_PATH=base_path,
        MAX_CONCURRENCY=str(max_concurrency),
        GPU_MEMORY_UTILIZATION=f"{float(gpu_memory_utilization):g}",
        MAX_MODEL_LEN=str(max_model_len),
    )
    for key, value in (extra_env or {}).items():
        if key == "HF_TOKEN":
            raise _fail("vllm_template.extra_env['HF_TOKEN']", _HF_TOKEN_LEAK)
        if (
            key == "VLLM_EXTRA_ARGS"
            and isinstance(value, (str, Secret))
            and re.search(r"--hf-token\b", value.reveal() if isinstance(value, Secret) else value)
        ):
            raise _fail(
                "vllm_template.extra_env['VLLM_EXTRA_ARGS']",
                "--hf-token: the token would be printed in the worker's logs, as worker-vllm logs its whole "
                "command line ('Starting vLLM: ...'). Pass the token as vllm_template's hf_token_ref, "
                "which sets HUGGING_FACE_HUB_TOKEN (read by huggingface_hub, never a vLLM flag)",
            )
        if key in VLLM_MANAGED_ENV:
            raise _fail(
                f"vllm_template.extra_env[{key!r}]", "is set by vllm_template's own parameter; pass it there instead"
            )
    env.update(extra_env or {})
    return TemplateSpec(name=name, image=f"{VLLM_IMAGE}:{tag}", env=env, disk_gb=disk_gb)


# -- embeddings (Runpod's Infinity worker) ---------------------------------------------------------

INFINITY_IMAGE = "runpod/worker-infinity-embedding"
INFINITY_BACKENDS = ("torch", "optimum", "ctranslate2")
INFINITY_DTYPES = ("auto", "fp16", "fp8")
INFINITY_DEFAULT_BATCH_SIZE = 32


def _pinned_tag(where: str, image_tag: Any, example: str) -> str:
    tag = image_tag.strip() if isinstance(image_tag, str) else image_tag
    if not isinstance(tag, str) or not tag or tag.lower() == "latest":
        raise _fail(
            where,
            f"{image_tag!r}: pin a release tag such as {example!r} (not empty, not 'latest', which changes under you)",
        )
    if not _IMAGE_TAG.match(tag):
        raise _fail(
            where, f"{image_tag!r} is not a Docker tag (give only the tag, e.g. {example!r}, not the image name)"
        )
    return tag


def _per_model(where: str, value: Any, count: int, default: Any) -> list[Any]:
    """One value per model: None means the default for all, a single value applies to all, a list
    (or a ';'-joined string) must have one entry per model, in the order of ``models``."""
    if value is None or value == "":
        return [default] * count
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(";")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if len(items) == 1 and count > 1 and not isinstance(value, (list, tuple)):
        items = items * count
    if len(items) != count:
        raise _fail(
            where,
            f"has {len(items)} value(s) {items!r} for {count} model(s): give one per model, in "
            "the order of MODEL_NAMES (or a single value for all)",
        )
    return items


def infinity_template(
    name: str,
    models: Sequence[str] | str,
    image_tag: str,
    *,
    batch_sizes: int | Sequence[int] | None = None,
    backend: str = "torch",
    dtypes: str | Sequence[str] | None = None,
    max_concurrency: int = 50,
    hf_token_ref: Secret | str | None = None,
    disk_gb: int = 20,
) -> TemplateSpec:
    """A template for Runpod's embedding worker (``runpod/worker-infinity-embedding:<tag>``).

    One worker serves every model in ``models`` (``MODEL_NAMES``, ``;``-joined; a string may hold
    one id or several joined by ``;``). ``batch_sizes`` and ``dtypes`` are per model (``BATCH_SIZES``,
    ``DTYPES``; default 32 and ``auto``; one value applies to all): the worker refuses to start
    when their count differs from the models'. ``backend`` is Infinity's engine for all models.
    ``image_tag`` must be pinned (e.g. ``1.1.4``). ``max_concurrency`` becomes
    ``RUNPOD_MAX_CONCURRENCY``: requests one worker takes at once (the worker's default is 300;
    Infinity batches concurrent requests together, so tens are useful, hundreds only queue inside
    one GPU). ``hf_token_ref`` (a ``Secret`` or ``{{ RUNPOD_SECRET_name }}``) only for gated models.
    It stays in ``HF_TOKEN``, huggingface_hub's first choice: worker-infinity-embedding 1.1.4 prints
    neither its env nor its arguments (``src/handler.py``, ``src/config.py``,
    ``src/embedding_service.py``), unlike worker-vllm (see ``VLLM_TOKEN_ENV``).
    """
    where = "infinity_template"
    names = [part.strip() for part in models.split(";")] if isinstance(models, str) else models
    if not isinstance(names, (list, tuple)) or not names:
        raise _fail(
            f"{where}.models",
            f"must list at least one Hugging Face repo id such as 'BAAI/bge-small-en-v1.5', got {models!r}",
        )
    for model in names:
        if not isinstance(model, str) or not _REPO_ID.match(model):
            raise _fail(f"{where}.models", f"{model!r} is not a Hugging Face repo id like 'BAAI/bge-small-en-v1.5'")
    if len(set(names)) != len(names):
        raise _fail(f"{where}.models", f"{list(names)} lists a model twice; list each once")
    tag = _pinned_tag(f"{where}.image_tag", image_tag, "1.1.4")
    sizes = [
        _int(
            f"{where}.batch_sizes",
            int(size) if isinstance(size, str) and size.isdigit() else size,
            1,
            None,
            "inputs per batch",
        )
        for size in _per_model(f"{where}.batch_sizes", batch_sizes, len(names), INFINITY_DEFAULT_BATCH_SIZE)
    ]
    if backend not in INFINITY_BACKENDS:
        raise _fail(f"{where}.backend", f"must be one of {', '.join(INFINITY_BACKENDS)}, got {backend!r}")
    kinds = _per_model(f"{where}.dtypes", dtypes, len(names), "auto")
    for kind in kinds:
        if kind not in INFINITY_DTYPES:
            raise _fail(f"{where}.dtypes", f"each dtype must be one of {', '.join(INFINITY_DTYPES)}, got {kind!r}")
    _int(f"{where}.max_concurrency", max_concurrency, 1, None, "requests per worker")
    env: dict[str, EnvValue] = {
        "MODEL_NAMES": ";".join(names),
        "BATCH_SIZES": ";".join(map(str, sizes)),
        "BACKEND": backend,
        "DTYPES": ";".join(kinds),
        "RUNPOD_MAX_CONCURRENCY": str(max_concurrency),
    }
    if hf_token_ref is not None and hf_token_ref != "":
        if isinstance(hf_token_ref, Secret):
            env["HF_TOKEN"] = hf_token_ref
        elif isinstance(hf_token_ref, str):
            env["HF_TOKEN"] = check_secret_reference(f"{where}.hf_token_ref", hf_token_ref)
        else:
            raise _fail(
                f"{where}.hf_token_ref",
                "must be a Secret (settings.hf_token()) or a '{{ RUNPOD_SECRET_<name> }}' reference",
            )
    return TemplateSpec(name=name, image=f"{INFINITY_IMAGE}:{tag}", env=env, disk_gb=disk_gb)
