"""The Hugging Face Hub subset under ``/huggingface.co``: what ``huggingface_hub`` requests for
``whoami``, ``model_info``, ``auth_check``, ``list_repo_files``, ``file_exists``,
``get_hf_file_metadata`` and ``hf_hub_download``.

Errors follow the Hub's wire format, because ``huggingface_hub`` picks its exception class from the
``X-Error-Code`` header (``hf_raise_for_status``): ``X-Error-Code`` + ``X-Error-Message`` headers, a JSON
``{"error": ...}`` body on ``/api/...`` and a plain-text body on ``/resolve/``, and
``WWW-Authenticate`` on 401. Who may read what is decided in ``localpod.hubdata``.

One deliberate difference: for LFS files the Hub answers ``/resolve/`` with a 302 to its CDN carrying
``X-Linked-Size``/``X-Linked-Etag``/``X-Repo-Commit``, and the client reads the metadata from that
redirect because the CDN is another host. localpod has a single origin, where the client would follow
the redirect and lose those headers, so it answers 200 directly with the same headers and the bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from localpod import hubdata
from localpod.context import ServerContext
from localpod.http import JSONResponse
from localpod.hubdata import Caller, Denial, HubFile, HubRepo

_MALFORMED_AUTH = "\x00malformed-authorization"
"""Stands for an Authorization header that is not ``Bearer <token>``: presented, never valid."""

_WWW_AUTHENTICATE = 'Bearer realm="Authentication required", charset="UTF-8"'

EXPAND_PROPERTIES = frozenset(
    {
        "author",
        "baseModels",
        "cardData",
        "childrenModelCount",
        "config",
        "createdAt",
        "disabled",
        "downloads",
        "downloadsAllTime",
        "evalResults",
        "gated",
        "gguf",
        "inference",
        "inferenceProviderMapping",
        "lastModified",
        "library_name",
        "likes",
        "mask_token",
        "model-index",
        "pipeline_tag",
        "private",
        "resourceGroup",
        "safetensors",
        "sha",
        "siblings",
        "spaces",
        "tags",
        "transformersInfo",
        "trendingScore",
        "usedStorage",
        "widgetData",
    }
)
"""Values ``expand`` accepts (huggingface_hub's ``ExpandModelProperty_T``); the ones the snapshot does
not model are accepted and left out of the answer."""

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Routes relative to the ``/huggingface.co`` mount; repo ids are ``namespace/name`` as on the Hub."""

    def caller_of(request: Request) -> Caller:
        """The token is read per request against the live settings (``hf_token`` may change)."""
        return Caller(_bearer_token(request), ctx.settings.hf_token)

    async def whoami(request: Request) -> Response:
        caller = caller_of(request)
        denial = hubdata.whoami_denial(caller)
        if denial is not None:
            return _api_error(denial)
        assert caller.grant is not None
        return JSONResponse(caller.grant.whoami())

    async def model_info(request: Request) -> Response:
        repo_id = _repo_id(request)
        denial = hubdata.metadata_denial(repo_id, caller_of(request))
        if denial is not None:
            return _api_error(denial)
        repo = hubdata.repos()[repo_id]
        revision = request.path_params.get("revision")
        if revision is not None and not repo.has_revision(revision):
            return _api_error(Denial(404, "RevisionNotFound", f"Invalid rev id: {revision}", "unknown revision"))
        query = request.query_params
        blobs = _flag(query.get("blobs"))
        security = _flag(query.get("securityStatus"))
        expand = query.getlist("expand") + query.getlist("expand[]")
        if expand and (blobs or security):
            return _bad_request("expand cannot be combined with blobs or securityStatus")
        unknown = sorted(set(expand) - EXPAND_PROPERTIES)
        if unknown:
            return _bad_request(f"Invalid expand value(s): {', '.join(unknown)}")
        info = repo.info(blobs=blobs)
        if security:
            info["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
        if expand:
            info = {"_id": info["_id"], "id": info["id"], **{k: info[k] for k in expand if k in info}}
        return JSONResponse(info)

    async def auth_check(request: Request) -> Response:
        denial = hubdata.content_denial(_repo_id(request), caller_of(request))
        if denial is not None:
            return _api_error(denial)
        return Response(b"OK", media_type="text/plain; charset=utf-8")

    async def tree(request: Request) -> Response:
        repo_id = _repo_id(request)
        denial = hubdata.metadata_denial(repo_id, caller_of(request))
        if denial is not None:
            return _api_error(denial)
        repo = hubdata.repos()[repo_id]
        revision = request.path_params["revision"]
        if not repo.has_revision(revision):
            return _api_error(Denial(404, "RevisionNotFound", f"Invalid rev id: {revision}", "unknown revision"))
        folder = request.path_params.get("path", "").strip("/")
        entries = _tree_entries(
            repo,
            folder,
            recursive=_flag(request.query_params.get("recursive")),
            expand=_flag(request.query_params.get("expand")),
        )
        if entries is None:
            return _api_error(Denial(404, "EntryNotFound", f'{folder} does not exist on "{revision}"', "unknown path"))
        return JSONResponse(entries)

    async def resolve(request: Request) -> Response:
        repo_id = _repo_id(request)
        head = request.method == "HEAD"
        path = request.path_params["path"]
        denial = hubdata.content_denial(repo_id, caller_of(request), path)
        if denial is not None:
            return _text_error(denial, head)
        repo = hubdata.repos()[repo_id]
        if not repo.has_revision(request.path_params["revision"]):
            return _text_error(Denial(404, "RevisionNotFound", "Revision not found", "unknown revision"), head)
        file = repo.files.get(path)
        if file is None:
            return _text_error(
                Denial(404, "EntryNotFound", "Entry not found", "unknown file"), head, {"X-Repo-Commit": repo.sha}
            )
        return _serve_file(repo, file, request.headers.get("range"), head)

    repo = "{namespace}/{name}"
    return [
        Route("/api/whoami-v2", whoami, methods=["GET"]),
        Route(f"/api/models/{repo}", model_info, methods=["GET"]),
        Route(f"/api/models/{repo}/revision/{{revision}}", model_info, methods=["GET"]),
        Route(f"/api/models/{repo}/auth-check", auth_check, methods=["GET"]),
        Route(f"/api/models/{repo}/tree/{{revision}}", tree, methods=["GET"]),
        Route(f"/api/models/{repo}/tree/{{revision}}/{{path:path}}", tree, methods=["GET"]),
        Route(f"/{repo}/resolve/{{revision}}/{{path:path}}", resolve, methods=["GET", "HEAD"]),
    ]


def _repo_id(request: Request) -> str:
    return f"{request.path_params['namespace']}/{request.path_params['name']}"


def _bearer_token(request: Request) -> str | None:
    """``huggingface_hub`` sends ``Authorization: Bearer <token>``; anything else is a bad credential."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return _MALFORMED_AUTH


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _error_headers(denial: Denial) -> dict[str, str]:
    headers = {"X-Error-Message": denial.message}
    if denial.code is not None:
        headers["X-Error-Code"] = denial.code
    if denial.status == 401:
        headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
    return headers


def _api_error(denial: Denial) -> Response:
    return JSONResponse({"error": denial.message}, status_code=denial.status, headers=_error_headers(denial))


def _bad_request(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400, headers={"X-Error-Message": message})


def _text_error(denial: Denial, head: bool, extra: dict[str, str] | None = None) -> Response:
    """Plain-text error as on ``/resolve/``; a HEAD gets the same headers and no body."""
    body = denial.message.encode()
    headers = {**_error_headers(denial), **(extra or {}), "Content-Length": str(len(body))}
    return Response(
        b"" if head else body, status_code=denial.status, headers=headers, media_type="text/plain; charset=utf-8"
    )


def _serve_file(repo: HubRepo, file: HubFile, range_header: str | None, head: bool) -> Response:
    """The file with the Hub's metadata headers; byte ranges honoured so interrupted downloads resume."""
    name = file.path.rsplit("/", 1)[-1]
    headers = {
        "X-Repo-Commit": repo.sha,
        "ETag": f'"{file.etag}"',
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"inline; filename*=UTF-8''{name}; filename=\"{name}\";",
    }
    if file.is_lfs:
        headers["X-Linked-Size"] = str(file.size)
        headers["X-Linked-Etag"] = f'"{file.lfs_sha256}"'
    media_type = "text/plain; charset=utf-8" if file.content is not None else "application/octet-stream"
    start, end, status = 0, file.size, 200
    if range_header:
        parsed = _parse_range(range_header, file.size)
        if parsed is None:
            headers["Content-Range"] = f"bytes */{file.size}"
            return Response(b"", status_code=416, headers=headers)
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    headers["Content-Length"] = str(end - start)
    if head:
        return Response(b"", status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(file.iter_bytes(start, end), status_code=status, headers=headers, media_type=media_type)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` as a half-open ``[start, end)``; None if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0:
            return None
        return max(0, size - length), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        return None
    return start, end


def _tree_entries(repo: HubRepo, folder: str, *, recursive: bool, expand: bool) -> list[dict[str, Any]] | None:
    """Entries of ``GET /api/models/{repo}/tree/{rev}[/{folder}]``; None if ``folder`` is not a folder."""
    prefix = f"{folder}/" if folder else ""
    folders = {"/".join(path.split("/")[:depth]) for path in repo.files for depth in range(1, path.count("/") + 1)}
    if folder and folder not in folders:
        return None
    entries: list[dict[str, Any]] = []
    for name in sorted(folders | set(repo.files)):
        if not name.startswith(prefix) or (not recursive and "/" in name[len(prefix) :]):
            continue
        if name in folders:
            entries.append({"type": "directory", "oid": _folder_oid(repo, name), "size": 0, "path": name})
            continue
        file = repo.files[name]
        entry: dict[str, Any] = {"type": "file", "oid": file.oid, "size": file.size, "path": name}
        if file.is_lfs:
            entry["lfs"] = {"oid": file.lfs_sha256, "size": file.size, "pointerSize": len(file.lfs_pointer)}
        if expand:
            entry["lastCommit"] = {
                "id": repo.sha,
                "title": "Upload folder using huggingface_hub",
                "date": repo.last_modified,
            }
        entries.append(entry)
    return entries


def _folder_oid(repo: HubRepo, folder: str) -> str:
    """A stable git-tree-shaped id for a folder (the snapshot stores no trees)."""
    return hashlib.sha1(f"localpod-tree:{repo.id}:{repo.sha}:{folder}".encode()).hexdigest()
