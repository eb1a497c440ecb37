"""Hugging Face Hub checks a runbook makes before it spends money: is the token valid, can it read
the (gated) model, how big are the weights, how much volume and GPU memory do they need.

Everything goes through ``huggingface_hub.HfApi(endpoint=settings.hub_url, ...)``, so the same code
talks to the real Hub or to localpod. The token is revealed only when the client is built; every
error of ``huggingface_hub`` is turned into ``HubError`` / ``GatedModelError`` with a message that
says what to do, passed through ``scrub()`` and raised ``from None`` (the original exception holds
the HTTP request, whose headers carry the token, and would add a second, less useful traceback).

The arithmetic on what these queries return (KV cache, GPU memory, which pool fits) is in
``rpbook.account.modelsize``. Errors are told apart by huggingface_hub's exception types and HTTP status
codes (``errors.py``; ``hf_raise_for_status`` in ``utils/_http.py`` picks the type from the Hub's
``X-Error-Code``), never by the text of the exception.

Links meant for people (model pages, token settings) always point at the real Hub,
https://huggingface.co, even in local mode: that is where a licence is accepted or a token created.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import errors as hf_errors
from tqdm.auto import tqdm

from rpbook import __version__
from rpbook.account.modelsize import GpuMemoryEstimate, check_sequence_arguments, gpu_memory_estimate
from rpbook.core.errors import GatedModelError, HubError
from rpbook.core.secrets import Secret, scrub
from rpbook.core.settings import HUB_URL, Settings

TOKENS_URL = f"{HUB_URL}/settings/tokens"
GATED_READ_SETTING = "Read access to contents of all public gated repos you can access"
"""The checkbox of a fine-grained token (User permissions → Repositories) that the Hub's
``canReadGatedRepos`` stands for."""

GATED_READ_ROLES = frozenset({"read", "write", "admin"})
"""Classic token roles that can read any gated repo whose licence the user accepted."""

Gated = Literal[False, "auto", "manual"]
AccessProblem = Literal["licence_not_accepted", "request_pending", "token_cannot_read_gated"]

_TransportErrors: tuple[type[BaseException], ...] = (getattr(hf_errors, "HTTPError", ConnectionError), ConnectionError)
"""Connection-level failures: the base error of the HTTP library huggingface_hub uses
(``HfHubHTTPError`` derives from it too, so it is caught first)."""


# --------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TokenInfo:
    """Who an HF token belongs to and whether it can read gated models."""

    user: str
    token_name: str
    role: str
    """``read``, ``write``, ``fineGrained`` (``admin`` on old tokens)."""
    can_read_gated: bool
    orgs: tuple[str, ...]
    problem: str | None = None
    """Why gated models will be refused with this token (None when they will not be)."""


@dataclass(frozen=True)
class ModelAccess:
    """Whether a token can download a model's files, and if not, why and where to fix it."""

    repo: str
    gated: Gated
    accessible: bool
    model_url: str
    """The model's page on the real Hub (where a person accepts the licence), also in local mode."""
    reason: str
    problem: AccessProblem | None = None


@dataclass(frozen=True)
class WeightsEstimate:
    """The weight files a model server downloads and loads, and their total size.

    ``skipped_files`` are other weight files at the repo root that were not counted, e.g. Mistral's
    ``consolidated.safetensors`` (the same weights in Mistral's own format). vLLM's default loader
    downloads every root ``*.safetensors`` unless told ``--ignore-patterns`` (worker-vllm:
    ``IGNORE_PATTERNS``), so size a volume for ``total_bytes + skipped_bytes`` when not ignoring them.
    """

    repo: str
    total_bytes: int
    files: tuple[str, ...]
    format: Literal["safetensors", "pytorch"]
    parameters: int | None
    """Parameter count from the Hub's ``safetensors`` metadata (None for pickle-only repos)."""
    dtype: str | None
    """Dominant checkpoint dtype from the same metadata: ``BF16``, ``F16``, ``F32`` …"""
    source: Literal["index", "file names"]
    """``index``: files listed by ``*.index.json``; ``file names``: chosen by name (index absent or
    unreadable, e.g. a gated repo the token cannot read yet)."""
    skipped_files: tuple[str, ...] = ()
    skipped_bytes: int = 0

    @property
    def total_gb(self) -> float:
        """Decimal gigabytes (1e9 bytes), as the Hub shows sizes."""
        return self.total_bytes / 1e9

    @property
    def download_bytes(self) -> int:
        """What vLLM's default loader downloads (every root weight file): size volumes for this."""
        return self.total_bytes + self.skipped_bytes


# ----------------------------------------------------------------------------------------- client


def hub_api(settings: Settings, token: Secret) -> HfApi:
    """The one place the HF token is revealed: into the client's Authorization header."""
    return HfApi(endpoint=settings.hub_url, token=token.reveal(), library_name="rpbook", library_version=__version__)


def model_url(repo_id: str) -> str:
    """The model's page on the real Hub (never localpod's URL: people open it in a browser)."""
    return f"{HUB_URL}/{repo_id}"


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _server_message(err: BaseException) -> str:
    """The Hub's own message (``X-Error-Message``) when present, else the exception text; scrubbed."""
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    message = None
    if headers is not None:
        message = headers.get("X-Error-Message")
    if not message:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
    return scrub(message)


def _local_hint(settings: Settings) -> str:
    if settings.target != "local":
        return ""
    return (
        " (Local mode: localpod accepts the HF token it was started with, LOCALPOD_HF_TOKEN, and its "
        "documented seed tokens; if a localpod started with another token is running, stop it with "
        "rpbook.runbook.local.stop_localpod() and run again.)"
    )


def _token_rejected(settings: Settings, token: Secret, repo_id: str | None = None) -> str:
    maybe_repo = f" (or the repo {repo_id} does not exist or is private)" if repo_id else ""
    return (
        f"The HF token {token.masked} (HF_TOKEN from {token.source}) was rejected by the Hub at "
        f"{settings.hub_url}: it is invalid, expired or revoked{maybe_repo}. Create a new one at {TOKENS_URL} "
        f"(type 'Read', or 'Fine-grained' with '{GATED_READ_SETTING}') and put it in HF_TOKEN in the "
        f"environment or the env file {settings.env_file}.{_local_hint(settings)}"
    )


def _fine_grained_message(repo_id: str | None, token_name: str | None = None) -> str:
    which = f"'{token_name}' " if token_name else ""
    subject = f"cannot read the gated model {repo_id}" if repo_id else "cannot read gated models"
    return (
        f"This fine-grained HF token {which}{subject}: it lacks the permission "
        f"'{GATED_READ_SETTING}'. At {TOKENS_URL}, edit the token and tick that box (User permissions → "
        "Repositories), or create a token of type 'Read'. Accepting the licence alone is not enough."
    )


def _gated_message(repo_id: str, problem: AccessProblem, gated: Gated | None, server: str = "") -> str:
    url = model_url(repo_id)
    if problem == "token_cannot_read_gated":
        return _fine_grained_message(repo_id)
    if problem == "request_pending":
        return (
            f"Your access request for {repo_id} is awaiting review by the model's authors (manual approval, "
            f"which can take hours or days). Check its status at {url} and run again once the Hub "
            "emails you that access was granted."
        )
    text = (
        f"The HF token cannot download {repo_id}: the account that owns it has not accepted the model's "
        f"licence. Open {url} while logged in to that account and accept the licence"
    )
    if gated == "manual":
        text += (
            " (submit the access request). This model's authors approve requests by hand, which can "
            "take hours or days; run again once the Hub emails you that access was granted."
        )
    else:
        text += "; access is granted at once for this model, then run again."
    if server:
        text += f" Hub said: {server}"
    return text


def _problem_from_gated_error(err: hf_errors.GatedRepoError) -> AccessProblem:
    """Licence not accepted, or access requested and still under review?

    huggingface_hub raises ``GatedRepoError`` alike for both (``hf_raise_for_status`` in its
    ``utils/_http.py`` maps ``X-Error-Code: GatedRepo`` to it; both are HTTP 403). The Hub tells
    them apart only in its ``X-Error-Message`` ("Your request to access model ... is awaiting a
    review from the repo authors."), which huggingface_hub keeps as ``server_message``: that field,
    not the formatted exception text, is read here, and nowhere else."""
    server = (err.server_message or "").lower()
    return "request_pending" if "awaiting a review" in server else "licence_not_accepted"


def _is_gated_read_refusal(err: BaseException) -> bool:
    """A fine-grained token without the gated-read permission: the Hub refuses with HTTP 403 and no
    ``X-Error-Code``, so ``hf_raise_for_status`` raises a plain ``HfHubHTTPError`` (no subclass:
    not ``GatedRepoError``, ``RepositoryNotFoundError`` nor ``DisabledRepoError``), even when the
    licence was accepted."""
    return type(err) is hf_errors.HfHubHTTPError and _status(err) == 403


@contextmanager
def _hub_errors(
    settings: Settings, token: Secret, repo_id: str | None = None, gated: Gated | None = None
) -> Iterator[None]:
    """Turn ``huggingface_hub`` exceptions into rpbook's, with messages that say what to fix."""
    try:
        yield
    except hf_errors.GatedRepoError as err:
        raise GatedModelError(
            _gated_message(repo_id or "this model", _problem_from_gated_error(err), gated, _server_message(err))
        ) from None
    except hf_errors.RepositoryNotFoundError as err:
        if _status(err) == 401:
            raise HubError(_token_rejected(settings, token, repo_id)) from None
        raise HubError(
            f"Model repo {repo_id!r} was not found on the Hub at {settings.hub_url}: check the "
            f"spelling (namespace/name, as in {model_url(repo_id or 'namespace/name')}); a private "
            "repo needs a token of an account that can see it."
        ) from None
    except hf_errors.RevisionNotFoundError as err:
        raise HubError(f"Revision not found for {repo_id}: {_server_message(err)}") from None
    except hf_errors.LocalEntryNotFoundError:
        raise HubError(
            f"Cannot reach the Hub at {settings.hub_url} to download a file of {repo_id}.{_unreachable_hint(settings)}"
        ) from None
    except hf_errors.EntryNotFoundError as err:
        raise HubError(f"{repo_id} has no such file on the Hub: {_server_message(err)}") from None
    except hf_errors.HfHubHTTPError as err:
        status = _status(err)
        if _is_gated_read_refusal(err):
            raise GatedModelError(_fine_grained_message(repo_id)) from None
        if status == 401:
            raise HubError(_token_rejected(settings, token)) from None
        if status == 429:
            raise HubError(
                f"The Hub at {settings.hub_url} is rate-limiting this token (HTTP 429); wait a minute and run again."
            ) from None
        raise HubError(f"The Hub at {settings.hub_url} answered HTTP {status}: {_server_message(err)}") from None
    except _TransportErrors as err:
        raise HubError(
            f"Cannot reach the Hub at {settings.hub_url}: {scrub(str(err)) or type(err).__name__}."
            f"{_unreachable_hint(settings)}"
        ) from None


def _unreachable_hint(settings: Settings) -> str:
    if settings.target == "local":
        return (
            " Start localpod with rpbook.runbook.local.ensure_localpod(settings) (notebook 00 does)"
            " or `localpod serve`."
        )
    return " Check the network connection (and HF_HUB_OFFLINE, which must not be set)."


# ------------------------------------------------------------------------------------------ token


def check_token(settings: Settings, token: Secret, *, require_gated_read: bool = False) -> TokenInfo:
    """Ask the Hub who owns ``token`` (``whoami``) and whether it can read gated repos.

    A fine-grained token reads gated repos only with ``fineGrained.canReadGatedRepos``; classic
    read/write/admin tokens always can. Such a token is still returned (it is valid, and fine for
    public models) with ``problem`` set, unless ``require_gated_read`` asks for a ``GatedModelError``.
    Raises ``HubError`` for an invalid token, with where to create a new one."""
    api = hub_api(settings, token)
    with _hub_errors(settings, token):
        me = api.whoami()
    access: dict[str, Any] = (me.get("auth") or {}).get("accessToken") or {}
    role = str(access.get("role") or "unknown")
    token_name = str(access.get("displayName") or "")
    problem = None
    if role in GATED_READ_ROLES:
        can_read_gated = True
    elif role == "fineGrained":
        can_read_gated = bool((access.get("fineGrained") or {}).get("canReadGatedRepos"))
        if not can_read_gated:
            problem = _fine_grained_message(None, token_name or None)
    else:
        can_read_gated = False
        problem = (
            f"The HF token has role {role!r}, which rpbook does not know to read gated repos; "
            f"use a 'Read' token from {TOKENS_URL}."
        )
    info = TokenInfo(
        user=str(me.get("name") or ""),
        token_name=token_name,
        role=role,
        can_read_gated=can_read_gated,
        orgs=tuple(str(org.get("name")) for org in me.get("orgs") or [] if org.get("name")),
        problem=problem,
    )
    if require_gated_read and problem is not None:
        raise GatedModelError(problem)
    return info


# ----------------------------------------------------------------------------------- model access


def check_model_access(settings: Settings, token: Secret, repo_id: str) -> ModelAccess:
    """Can ``token`` download ``repo_id``'s files? ``model_info`` gives the gating (metadata of gated
    repos is public), ``auth_check`` the answer. A refusal comes back as ``accessible=False`` with a
    reason; an unknown repo or an invalid token raises ``HubError``."""
    api = hub_api(settings, token)
    with _hub_errors(settings, token, repo_id):
        info = api.model_info(repo_id)
    gated: Gated = info.gated if info.gated in ("auto", "manual") else False
    url = model_url(repo_id)
    problem: AccessProblem | None = None
    server = ""
    with _hub_errors(settings, token, repo_id, gated):
        try:
            api.auth_check(repo_id)
        except hf_errors.GatedRepoError as err:
            problem, server = _problem_from_gated_error(err), _server_message(err)
        except hf_errors.HfHubHTTPError as err:
            if not _is_gated_read_refusal(err):
                raise
            problem = "token_cannot_read_gated"
    if problem is not None:
        return ModelAccess(
            repo=repo_id,
            gated=gated,
            accessible=False,
            model_url=url,
            reason=_gated_message(repo_id, problem, gated, server),
            problem=problem,
        )
    reason = "public model" if not gated else f"gated ({gated}); the licence is accepted and the token may read it"
    return ModelAccess(repo=repo_id, gated=gated, accessible=True, model_url=url, reason=reason)


def require_model_access(settings: Settings, token: Secret, repo_id: str) -> ModelAccess:
    """``check_model_access`` that raises ``GatedModelError`` (open the model page and accept the
    licence; manual approval can take time) instead of returning a refusal."""
    access = check_model_access(settings, token, repo_id)
    if not access.accessible:
        raise GatedModelError(access.reason)
    return access


# ---------------------------------------------------------------------------------------- weights

_SHARD = re.compile(r"^model-\d+-of-\d+\.safetensors$")
_BIN_SHARD = re.compile(r"^pytorch_model-\d+-of-\d+\.bin$")
_NOT_WEIGHTS = frozenset(
    {"training_args.bin", "optimizer.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}
)


def estimate_weights(settings: Settings, token: Secret, repo_id: str) -> WeightsEstimate:
    """Which weight files a server loads and how many bytes they are, from ``model_info`` with file
    metadata. Only root files count (``onnx/``, ``original/`` … are other formats of the same model).

    safetensors first: the files listed by ``model.safetensors.index.json`` when it can be read, else
    ``model-*-of-*.safetensors`` shards, else ``model.safetensors``, else other root safetensors,
    ``consolidated*`` last. Without safetensors, the same order for ``pytorch_model*.bin``, then other
    ``*.bin`` / ``*.pt``. Mistral-7B-Instruct-v0.3 ships its weights twice (shards and
    ``consolidated.safetensors``): this counts them once, ≈14.5 GB."""
    api = hub_api(settings, token)
    with _hub_errors(settings, token, repo_id):
        info = api.model_info(repo_id, files_metadata=True)
    sizes: dict[str, int] = {}
    for sibling in info.siblings or []:
        if "/" in sibling.rfilename:
            continue
        size = sibling.size if sibling.size is not None else (sibling.lfs.size if sibling.lfs else None)
        sizes[sibling.rfilename] = int(size or 0)

    def index_files(index_name: str) -> list[str] | None:
        if index_name not in sizes:
            return None
        try:
            data = _download_json(settings, token, repo_id, index_name)
        except HubError:  # e.g. gated and not yet accepted: fall back to names
            return None
        listed = sorted({str(v) for v in (data.get("weight_map") or {}).values()})
        return listed if listed and all(name in sizes for name in listed) else None

    fmt: Literal["safetensors", "pytorch"]
    safetensors = sorted(name for name in sizes if name.endswith(".safetensors"))
    if safetensors:
        fmt = "safetensors"
        candidates = safetensors
        listed = index_files("model.safetensors.index.json")
        chosen = listed or _choose(safetensors, _SHARD, "model.safetensors", "consolidated")
    else:
        fmt = "pytorch"
        candidates = sorted(name for name in sizes if name.endswith((".bin", ".pt")) and name not in _NOT_WEIGHTS)
        if not candidates:
            raise HubError(
                f"No weights found at the root of {repo_id} (neither *.safetensors nor *.bin/*.pt); "
                f"see the files at {model_url(repo_id)}. GGUF-only or adapter-only repos cannot be "
                "served by the vLLM worker as they are."
            )
        listed = index_files("pytorch_model.bin.index.json")
        chosen = listed or _choose(candidates, _BIN_SHARD, "pytorch_model.bin", "consolidated")
    skipped = tuple(name for name in candidates if name not in chosen)
    parameters = dtype = None
    if info.safetensors is not None and info.safetensors.parameters:
        parameters = int(info.safetensors.total)
        dtype = max(info.safetensors.parameters.items(), key=lambda item: item[1])[0]
    return WeightsEstimate(
        repo=repo_id,
        total_bytes=sum(sizes[name] for name in chosen),
        files=tuple(chosen),
        format=fmt,
        parameters=parameters,
        dtype=dtype,
        source="index" if listed else "file names",
        skipped_files=skipped,
        skipped_bytes=sum(sizes[name] for name in skipped),
    )


def _choose(names: list[str], shard: re.Pattern[str], single: str, last_resort_prefix: str) -> list[str]:
    shards = [name for name in names if shard.match(name)]
    if shards:
        return shards
    if single in names:
        return [single]
    others = [name for name in names if not name.startswith(last_resort_prefix)]
    return others or names


class _NoProgress(tqdm):
    """No bar for a few-kB JSON file: a headless run kept it at 0% above the real result."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _download_json(settings: Settings, token: Secret, repo_id: str, filename: str) -> dict[str, Any]:
    """A small JSON file of the repo, through ``hf_hub_download`` into a throwaway cache (the user's
    HF cache is left alone, and nothing stays on disk)."""
    with tempfile.TemporaryDirectory(prefix="rpbook-hub-") as cache:
        with _hub_errors(settings, token, repo_id):
            path = hf_hub_download(
                repo_id,
                filename,
                cache_dir=cache,
                endpoint=settings.hub_url,
                token=token.reveal(),
                library_name="rpbook",
                library_version=__version__,
                tqdm_class=_NoProgress,
            )
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    if not isinstance(data, dict):
        raise HubError(f"{filename} of {repo_id} is not a JSON object.")
    return data


def model_config(settings: Settings, token: Secret, repo_id: str) -> dict[str, Any]:
    """The repo's ``config.json`` (architecture, context length, sizes), read through the Hub client."""
    return _download_json(settings, token, repo_id, "config.json")


def embedding_dimension(settings: Settings, token: Secret, repo_id: str) -> int:
    """The size of the vectors an embedding model returns: ``hidden_size`` in its ``config.json``
    (384 for bge-small-en-v1.5), which sentence-transformers' pooling keeps."""
    config = _download_json(settings, token, repo_id, "config.json")
    size = config.get("hidden_size") or config.get("d_model")
    if not isinstance(size, int) or size <= 0:
        raise HubError(f"config.json of {repo_id} has no hidden_size; set embedding_dimension explicitly.")
    return size


# ------------------------------------------------------------------------------------- GPU memory


def min_gpu_memory_gb(
    settings: Settings,
    token: Secret,
    repo_id: str,
    max_model_len: int,
    gpu_memory_utilization: float = 0.9,
    *,
    weights: WeightsEstimate | None = None,
) -> GpuMemoryEstimate:
    """Estimate the smallest GPU that serves ``repo_id`` with vLLM for ONE sequence of
    ``max_model_len`` tokens, from the repo's weights and ``config.json`` read from the Hub (the
    arithmetic and its limits: :func:`rpbook.account.modelsize.gpu_memory_estimate`). ``weights`` reuses an
    ``estimate_weights`` result."""
    check_sequence_arguments(max_model_len, gpu_memory_utilization)
    if weights is None:
        weights = estimate_weights(settings, token, repo_id)
    config = _download_json(settings, token, repo_id, "config.json")
    return gpu_memory_estimate(
        repo_id, config, weights.total_bytes, weights.dtype, max_model_len, gpu_memory_utilization
    )
