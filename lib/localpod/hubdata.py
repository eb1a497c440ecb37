"""The Hugging Face Hub as localpod knows it: a seed snapshot of a few model repos, the seed users and
tokens, and the access rules the Hub applies to them.

The repos (``data/hub_models.json``) are a **snapshot** written from knowledge of the real repos:
ids, gating, tags, file lists, file sizes, parameter counts and the small text files (config.json,
tokenizer_config.json, ...) are realistic; chat templates, licences and model cards are abbreviated.
Commit shas and LFS sha256 values are localpod's own stable values, not the Hub's. Files without inline
content (weights, tokenizer.json, vocab files) are served as deterministic stand-in bytes of the declared
size, so their declared sha256 is **not** the hash of those bytes; runbooks only read sizes and ETags
(``HEAD``), and nothing should parse a stand-in as a real model file.

The access rules live here once and serve both the HTTP routes (``services/hub.py``) and the serverless
platform (``download_denial``), so a worker is refused exactly what the Hub would refuse it.

Seed tokens (obviously fake and short, so none matches the ``hf_[A-Za-z0-9]{34,}`` shape of a real
token that secret scanners look for):

- ``settings.hf_token`` (env ``LOCALPOD_HF_TOKEN``, default ``localpod.DEFAULT_HF_TOKEN``): user
  ``localpod-dev``, a fineGrained token with ``canReadGatedRepos``; the user accepted every gated licence.
- ``hf_localpod_finegrained_no_gated``: the same user, but a fineGrained token without "read access to
  public gated repos", so the Hub answers 403 on gated files despite the accepted licence.
- ``hf_localpod_no_licence``: user ``localpod-newcomer``, read token, no licence accepted, and a pending
  access request on the manual Llama gate.
- ``hf_localpod_write``: user ``localpod-writer``, write token, accepted the Mistral (auto) gate only.

Org ``localpod-org`` has ``localpod-dev`` (write) and ``localpod-writer`` (admin) as members.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any, Literal

import yaml

NO_LICENCE_TOKEN = "hf_localpod_no_licence"
FINEGRAINED_NO_GATED_TOKEN = "hf_localpod_finegrained_no_gated"
WRITE_TOKEN = "hf_localpod_write"

Gated = Literal[False, "auto", "manual"]
AccessStatus = Literal["accepted", "pending"]

HUB_HOME = "https://huggingface.co"
"""Links in Hub messages point at the real Hub, as the real messages do."""

GATE_ALLOWLIST = frozenset({"README.md", ".gitattributes", "LICENSE.md"})
"""Root files of a gated repo that anyone may download: the Hub keeps the model card and the git
attributes readable so the gate page can be rendered (observed: LICENSE.md too)."""

BAD_CREDENTIALS = "Invalid username or password."


# ----------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class HubFile:
    """One file of a repo at its single commit.

    ``content`` holds the bytes of the small text files; ``None`` means stand-in bytes of ``size``.
    ``lfs_sha256`` is set for files stored in Git LFS (the Hub's ``X-Linked-Etag``)."""

    path: str
    size: int
    content: bytes | None = None
    lfs_sha256: str | None = None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    @property
    def lfs_pointer(self) -> bytes:
        """The Git LFS pointer committed in place of the file; its git oid is the Hub's ``blobId``."""
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.lfs_sha256}\nsize {self.size}\n"
        ).encode()

    @cached_property
    def oid(self) -> str:
        """Git blob id (sha1 of ``blob <len>\\0`` + bytes) of what git stores: the pointer for LFS
        files, the served bytes otherwise — so a regular file's ETag matches what is downloaded."""
        if self.is_lfs:
            return _git_blob_sha1([self.lfs_pointer], len(self.lfs_pointer))
        return _git_blob_sha1(self.iter_bytes(0, self.size), self.size)

    @property
    def etag(self) -> str:
        """What the Hub puts (quoted) in ``ETag``: the sha256 for LFS files, the git oid otherwise."""
        return self.lfs_sha256 if self.lfs_sha256 is not None else self.oid

    def iter_bytes(self, start: int, end: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``[start, end)`` in chunks, generated lazily: multi-GB weights never sit in memory."""
        if self.content is not None:
            for offset in range(start, end, chunk_size):
                yield self.content[offset : min(end, offset + chunk_size)]
            return
        tile = _standin_tile(f"{self.path}:{self.size}:{self.lfs_sha256}")
        offset = start
        while offset < end:
            n = min(chunk_size, end - offset)
            phase = offset % _STANDIN_BLOCK
            yield tile[phase : phase + n]
            offset += n


_STANDIN_BLOCK = 1 << 16


@lru_cache(maxsize=32)
def _standin_tile(seed: str) -> bytes:
    """A pseudo-random 64 KiB block repeated to cover any 1 MiB window at any phase."""
    block = hashlib.shake_256(seed.encode()).digest(_STANDIN_BLOCK)
    return block * ((1 << 20) // _STANDIN_BLOCK + 1)


def _git_blob_sha1(chunks: Iterable[bytes], size: int) -> str:
    digest = hashlib.sha1(b"blob %d\x00" % size)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- repos


@dataclass(frozen=True)
class HubRepo:
    """A model repo at one commit (``sha``), which ``main`` points to."""

    id: str
    sha: str
    gated: Gated
    created_at: str
    last_modified: str
    downloads: int
    likes: int
    library_name: str
    pipeline_tag: str
    tags: list[str]
    card_data: dict[str, Any]
    transformers_info: dict[str, Any]
    safetensors: dict[str, Any] | None
    files: dict[str, HubFile]

    @property
    def author(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def object_id(self) -> str:
        """Stable 24-hex ``_id`` (a Mongo ObjectId on the Hub)."""
        return hashlib.sha1(f"localpod-repo:{self.id}".encode()).hexdigest()[:24]

    def has_revision(self, revision: str) -> bool:
        """``main`` and the full commit sha are the only revisions of a seed repo."""
        return revision in ("main", self.sha)

    def config_summary(self) -> dict[str, Any]:
        """The ``config`` key of the model API: architectures, model_type and the special tokens and
        chat template of tokenizer_config.json, taken from the repo's own files."""
        summary: dict[str, Any] = {}
        config = self._json_file("config.json")
        for key in ("architectures", "model_type"):
            if key in config:
                summary[key] = config[key]
        tokenizer = self._json_file("tokenizer_config.json")
        tokens = {}
        for key in (
            "bos_token",
            "chat_template",
            "cls_token",
            "eos_token",
            "mask_token",
            "pad_token",
            "sep_token",
            "unk_token",
        ):
            value = tokenizer.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                tokens[key] = value
        if tokens:
            summary["tokenizer_config"] = tokens
        return summary

    def _json_file(self, path: str) -> dict[str, Any]:
        file = self.files.get(path)
        if file is None or file.content is None:
            return {}
        return json.loads(file.content)

    def siblings(self, blobs: bool) -> list[dict[str, Any]]:
        """``siblings`` as the model API lists them; sizes, blob ids and LFS info only with ``blobs``."""
        out: list[dict[str, Any]] = []
        for file in self.files.values():
            entry: dict[str, Any] = {"rfilename": file.path}
            if blobs:
                entry["blobId"] = file.oid
                entry["size"] = file.size
                if file.is_lfs:
                    entry["lfs"] = {"sha256": file.lfs_sha256, "size": file.size, "pointerSize": len(file.lfs_pointer)}
            out.append(entry)
        return out

    def info(self, *, blobs: bool = False) -> dict[str, Any]:
        """The ``GET /api/models/{repo_id}`` document (keys read by ``huggingface_hub.ModelInfo``)."""
        doc: dict[str, Any] = {
            "_id": self.object_id,
            "id": self.id,
            "private": False,
            "pipeline_tag": self.pipeline_tag,
            "library_name": self.library_name,
            "tags": list(self.tags),
            "downloads": self.downloads,
            "likes": self.likes,
            "modelId": self.id,
            "author": self.author,
            "sha": self.sha,
            "lastModified": self.last_modified,
            "gated": self.gated,
            "disabled": False,
            "config": self.config_summary(),
            "cardData": self.card_data,
            "transformersInfo": self.transformers_info,
            "siblings": self.siblings(blobs),
            "spaces": [],
            "createdAt": self.created_at,
            "usedStorage": self.used_storage,
        }
        if self.safetensors is not None:
            doc["safetensors"] = self.safetensors
        return doc

    @property
    def used_storage(self) -> int:
        """Bytes of the current files (the Hub also counts LFS history; a snapshot has none)."""
        return sum(f.size for f in self.files.values())

    def weights_size_bytes(self) -> int:
        """See the module-level ``weights_size_bytes``."""
        root = [f for f in self.files.values() if "/" not in f.path]
        safetensors = [f for f in root if f.path.endswith(".safetensors") and not f.path.startswith("consolidated")]
        if safetensors:
            return sum(f.size for f in safetensors)
        return sum(f.size for f in root if f.path.endswith(".bin"))

    def download_size_bytes(self) -> int:
        """See the module-level ``download_size_bytes``."""
        root = [f for f in self.files.values() if "/" not in f.path]
        safetensors = [f for f in root if f.path.endswith(".safetensors")]
        if safetensors:
            return sum(f.size for f in safetensors)
        return sum(f.size for f in root if f.path.endswith(".bin"))


@lru_cache(maxsize=1)
def repos() -> dict[str, HubRepo]:
    """All seed repos by id, loaded once from ``data/hub_models.json``."""
    raw = json.loads(resources.files("localpod").joinpath("data/hub_models.json").read_text("utf-8"))
    return {model["id"]: _build_repo(model, raw["gitattributes"]) for model in raw["models"]}


def _build_repo(model: dict[str, Any], base_gitattributes: str) -> HubRepo:
    files: dict[str, HubFile] = {}
    for spec in model["files"]:
        path = spec["path"]
        if "text" in spec:
            files[path] = _text_file(path, spec["text"])
        elif "json" in spec:
            files[path] = _text_file(path, json.dumps(spec["json"], indent=2, ensure_ascii=False) + "\n")
        elif "lfs" in spec:
            files[path] = HubFile(path, spec["lfs"]["size"], lfs_sha256=spec["lfs"]["sha256"])
        else:
            files[path] = HubFile(path, spec["size"])
    files[".gitattributes"] = _text_file(".gitattributes", _gitattributes(base_gitattributes, files))
    files["README.md"] = _text_file("README.md", _readme(model["cardData"], model["readme_body"]))
    return HubRepo(
        id=model["id"],
        sha=model["sha"],
        gated=model["gated"],
        created_at=model["createdAt"],
        last_modified=model["lastModified"],
        downloads=model["downloads"],
        likes=model["likes"],
        library_name=model["library_name"],
        pipeline_tag=model["pipeline_tag"],
        tags=model["tags"],
        card_data=model["cardData"],
        transformers_info=model["transformersInfo"],
        safetensors=model.get("safetensors"),
        files=dict(sorted(files.items())),
    )


def _text_file(path: str, text: str) -> HubFile:
    data = text.encode()
    return HubFile(path, len(data), content=data)


def _gitattributes(base: str, files: dict[str, HubFile]) -> str:
    """The Hub's default .gitattributes plus an explicit line per LFS file no pattern covers, as
    ``git lfs track <file>`` would add."""
    patterns = [line.split()[0] for line in base.splitlines() if line.strip()]
    extra = [
        f"{f.path} filter=lfs diff=lfs merge=lfs -text\n"
        for f in files.values()
        if f.is_lfs and not any(fnmatch.fnmatch(f.path.rsplit("/", 1)[-1], p) for p in patterns)
    ]
    return base + "".join(extra)


def _readme(card_data: dict[str, Any], body: str) -> str:
    """Model card = YAML front matter (the ``cardData`` the API returns) + markdown body."""
    front = yaml.safe_dump(card_data, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{body}"


# ------------------------------------------------------------------------------- users and tokens


@dataclass(frozen=True)
class HubOrg:
    name: str
    fullname: str

    @property
    def object_id(self) -> str:
        return hashlib.sha1(f"localpod-org:{self.name}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class HubUser:
    name: str
    fullname: str
    email: str
    orgs: dict[str, str] = field(default_factory=dict)
    """Org name -> role in the org."""
    access: dict[str, AccessStatus] = field(default_factory=dict)
    """Gated repo id -> the user's access request status there."""
    all_licences: bool = False
    """True for the dev user, who has accepted every gated licence in the seed."""

    @property
    def object_id(self) -> str:
        return hashlib.sha1(f"localpod-user:{self.name}".encode()).hexdigest()[:24]

    def access_status(self, repo_id: str) -> AccessStatus | None:
        return "accepted" if self.all_licences else self.access.get(repo_id)


@dataclass(frozen=True)
class HubToken:
    """What a valid token grants: its user, its role and, for fineGrained tokens, whether it may read
    the public gated repos the user has access to (the Hub's ``canReadGatedRepos``)."""

    user: HubUser
    display_name: str
    role: Literal["read", "write", "fineGrained"]
    created_at: str
    can_read_gated_repos: bool = True

    def whoami(self) -> dict[str, Any]:
        """The ``GET /api/whoami-v2`` document."""
        access_token: dict[str, Any] = {
            "displayName": self.display_name,
            "role": self.role,
            "createdAt": self.created_at,
        }
        if self.role == "fineGrained":
            access_token["fineGrained"] = {
                "canReadGatedRepos": self.can_read_gated_repos,
                "global": ["discussion.write", "post.write"],
                "scoped": [
                    {
                        "entity": {"_id": self.user.object_id, "type": "user", "name": self.user.name},
                        "permissions": ["repo.content.read", "repo.write", "inference.endpoints.infer.write"],
                    }
                ],
            }
        return {
            "type": "user",
            "id": self.user.object_id,
            "name": self.user.name,
            "fullname": self.user.fullname,
            "email": self.user.email,
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "avatarUrl": f"/avatars/{hashlib.md5(self.user.name.encode()).hexdigest()}.svg",
            "periodEnd": None,
            "orgs": [_org_entry(ORGS[name], role) for name, role in self.user.orgs.items()],
            "auth": {"type": "access_token", "accessToken": access_token},
        }


def _org_entry(org: HubOrg, role: str) -> dict[str, Any]:
    return {
        "type": "org",
        "id": org.object_id,
        "name": org.name,
        "fullname": org.fullname,
        "email": None,
        "canPay": False,
        "periodEnd": None,
        "avatarUrl": f"/avatars/{hashlib.md5(org.name.encode()).hexdigest()}.svg",
        "roleInOrg": role,
        "isEnterprise": False,
    }


ORGS = {"localpod-org": HubOrg("localpod-org", "Localpod Test Org")}

DEV_USER = HubUser(
    "localpod-dev", "Localpod Dev", "dev@localpod.invalid", orgs={"localpod-org": "write"}, all_licences=True
)
NEWCOMER_USER = HubUser(
    "localpod-newcomer",
    "Localpod Newcomer",
    "newcomer@localpod.invalid",
    access={"meta-llama/Llama-3.1-8B-Instruct": "pending"},
)
WRITER_USER = HubUser(
    "localpod-writer",
    "Localpod Writer",
    "writer@localpod.invalid",
    orgs={"localpod-org": "admin"},
    access={"mistralai/Mistral-7B-Instruct-v0.3": "accepted"},
)

SEED_TOKENS: dict[str, HubToken] = {
    FINEGRAINED_NO_GATED_TOKEN: HubToken(
        DEV_USER, "ci-no-gated", "fineGrained", "2025-03-02T09:12:44.000Z", can_read_gated_repos=False
    ),
    NO_LICENCE_TOKEN: HubToken(NEWCOMER_USER, "newcomer-read", "read", "2025-04-18T16:03:10.000Z"),
    WRITE_TOKEN: HubToken(WRITER_USER, "writer", "write", "2024-11-05T08:30:00.000Z"),
}
"""Documented test tokens (see the module docstring); the server token is added by ``token_for``."""

DEV_TOKEN_GRANT = HubToken(DEV_USER, "localpod", "fineGrained", "2025-01-10T10:00:00.000Z", can_read_gated_repos=True)


def token_for(token: str | None, default_token: str) -> HubToken | None:
    """The grant of a presented token, or None if it is not valid. ``default_token`` is the server's
    configured token (``settings.hf_token``); it wins over a seed token with the same value."""
    if not token:
        return None
    if token == default_token:
        return DEV_TOKEN_GRANT
    return SEED_TOKENS.get(token)


# ---------------------------------------------------------------------------------- access rules


@dataclass(frozen=True)
class Denial:
    """The Hub's refusal: HTTP status, ``X-Error-Code`` (None when the Hub sends none), the
    ``X-Error-Message`` text, and a short kind for humans."""

    status: int
    code: str | None
    message: str
    kind: str

    @property
    def reason(self) -> str:
        """One line for logs and worker errors; never contains a token."""
        return f"{self.kind} (HTTP {self.status}{', ' + self.code if self.code else ''}): {self.message}"


class Caller:
    """Who is asking: anonymous (no token), an invalid token, or a valid grant."""

    def __init__(self, token: str | None, default_token: str) -> None:
        self.presented = bool(token)
        self.grant = token_for(token, default_token)

    @property
    def anonymous(self) -> bool:
        return not self.presented

    @property
    def invalid(self) -> bool:
        return self.presented and self.grant is None


def whoami_denial(caller: Caller) -> Denial | None:
    """``/api/whoami-v2`` needs a valid token; huggingface_hub turns the 401 into "Invalid user token."."""
    if caller.grant is None:
        return Denial(401, None, BAD_CREDENTIALS, "invalid token")
    return None


def metadata_denial(repo_id: str, caller: Caller) -> Denial | None:
    """Reading a repo's metadata (model info, file tree). Gated metadata is public, as on the Hub.

    The Hub answers an invalid token, and an unknown repo asked anonymously, with a bare 401; the client
    maps any 401 on an https repo URL to ``RepositoryNotFoundError``. localpod is plain http, where that
    mapping does not apply, so these 401s carry ``X-Error-Code: RepoNotFound`` to get the same exception.
    """
    if caller.invalid:
        return Denial(401, "RepoNotFound", BAD_CREDENTIALS, "invalid token")
    if repo_id not in repos():
        if caller.anonymous:
            return Denial(401, "RepoNotFound", BAD_CREDENTIALS, "repository not found")
        return Denial(404, "RepoNotFound", "Repository not found", "repository not found")
    return None


def content_denial(repo_id: str, caller: Caller, path: str | None = None) -> Denial | None:
    """Downloading a file (``path``) or passing ``auth-check`` (``path=None``): metadata rules, then the
    gate. Messages are the Hub's own, per caller:

    - anonymous: 401 GatedRepo "... You must have access to it and be authenticated ...";
    - fineGrained token without canReadGatedRepos: 403 with no error code (so the client raises a plain
      ``HfHubHTTPError``, "403 Forbidden: Please enable access to public gated repositories ...") —
      even when the user accepted the licence;
    - user with a pending request: 403 GatedRepo "... awaiting a review ...";
    - user who never requested access: 403 GatedRepo "... not in the authorized list ...".
    """
    denial = metadata_denial(repo_id, caller)
    if denial is not None:
        return denial
    repo = repos()[repo_id]
    if not repo.gated or (path is not None and path in GATE_ALLOWLIST):
        return None
    grant = caller.grant
    if grant is None:
        return Denial(
            401,
            "GatedRepo",
            f"Access to model {repo_id} is restricted. You must have access to it and be "
            "authenticated to access it. Please log in.",
            "gated repo, not logged in",
        )
    if grant.role == "fineGrained" and not grant.can_read_gated_repos:
        return Denial(
            403,
            None,
            "Please enable access to public gated repositories in your fine-grained token settings "
            "to view this repository.",
            "token cannot read gated repos",
        )
    status = grant.user.access_status(repo_id)
    if status == "accepted":
        return None
    if status == "pending":
        return Denial(
            403,
            "GatedRepo",
            f"Your request to access model {repo_id} is awaiting a review from the repo authors.",
            "gated repo, access request pending",
        )
    return Denial(
        403,
        "GatedRepo",
        f"Access to model {repo_id} is restricted and you are not in the authorized list. "
        f"Visit {HUB_HOME}/{repo_id} to ask for access.",
        "gated repo, licence not accepted",
    )


# ------------------------------------------------------------------- interface for the platform


def weights_size_bytes(repo_id: str) -> int | None:
    """Bytes a model server downloads for this repo: the sharded *.safetensors when present (not
    consolidated.*), else the single model.safetensors, else *.bin; None for an unknown repo."""
    repo = repos().get(repo_id)
    return None if repo is None else repo.weights_size_bytes()


def architectures(repo_id: str) -> list[str]:
    """``architectures`` of the repo's config.json (empty for an unknown repo or no config): what
    model servers read to decide how to load a model (Infinity: ``*ForSequenceClassification`` is
    a reranker, anything else an embedding model)."""
    repo = repos().get(repo_id)
    return list(repo.config_summary().get("architectures", [])) if repo is not None else []


def download_size_bytes(repo_id: str) -> int | None:
    """Bytes vLLM downloads for this repo: every top-level ``*.safetensors`` (its allow pattern),
    which for Mistral repos means the sharded files AND ``consolidated.safetensors``
    (vllm-project/vllm#7523), else the ``*.bin`` files; None for an unknown repo."""
    repo = repos().get(repo_id)
    return None if repo is None else repo.download_size_bytes()


def download_denial(repo_id: str, token: str | None, default_token: str) -> str | None:
    """None if a worker holding `token` may download the repo's files; otherwise the Hub's reason as a
    short human message (unknown repo / invalid token / gated licence not accepted). `default_token` is
    the server's configured all-licences token (settings.hf_token)."""
    denial = content_denial(repo_id, Caller(token, default_token))
    return None if denial is None else denial.reason


def known_repo_ids() -> list[str]:
    """Ids of the seed repos, sorted."""
    return sorted(repos())
